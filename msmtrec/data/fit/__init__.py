"""The fitted pieces of the encoders, one per module, each fitted chunk by chunk with
``update(chunk)`` then ``finish()``: :mod:`.vocabulary`, :mod:`.numeric`, :mod:`.scenario`,
:mod:`.labels`, :mod:`.lists`; :class:`msmtrec.data.fitter.EncodersFitter` runs them all."""
