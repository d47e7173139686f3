"""List and sequence features in the dataset spec (keys ``multi_categorical`` and ``sequences``)::

    multi_categorical:                 # name → entry; column defaults to the name
      genres: {column: genres, sep: "|", max_len: 6, pooling: mean}
    sequences:
      history:                         # built from the log: the user's earlier events
        {user: user_id, item: movie_id, time: timestamp, max_len: 50, side: [genre], pooling: attention}
      recent:                          # given as a list column, newest entry first
        {column: recent_items, sep: ",", item: movie_id, max_len: 30, pooling: mean}

A ``multi_categorical`` has its own vocabulary (fitted on train, ``min_count`` applies) and is
pooled by ``mean`` or ``sum``. A sequence's entries are ids of the categorical field ``item``:
they share its vocabulary and embedding rows, and ``pooling: attention`` weighs each entry against
the row's own item (target attention). A built history holds, for each row, the ``max_len`` most
recent events of the same ``user`` *strictly* earlier in ``time`` (newest first); ``side`` adds
each event's values of other categorical fields. ``sep`` splits a text value (CSV); a list column
(Parquet) is read as it is. The first ``max_len`` entries of a list are kept.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, model_validator

from msmtrec.data.spec_types import Column, Columns, Part, Text
from msmtrec.declared import problem

__all__ = ["ListSpec", "SequenceSpec"]

_Sep = Annotated[str, Field(min_length=1)]
_MaxLen = Annotated[StrictInt, Field(ge=1, le=10_000)]


class ListSpec(Part):
    """A multi-valued categorical feature (``multi_categorical``): a list of ids per row."""

    column: Column
    sep: _Sep | None = None  # text values are split on it (needed for CSV files)
    max_len: _MaxLen = 10  # entries kept per row (the first ones)
    pooling: Literal["mean", "sum"] = "mean"


class SequenceSpec(Part):
    """An ordered behaviour sequence of ids of the categorical field ``item``: built from the log
    (``user`` + ``time``) or given as a list ``column``."""

    item: Column  # the candidate field whose vocabulary and embedding rows the entries share
    user: Column | None = None  # built: whose events
    time: Column | None = None  # built: when (timestamps, dates, numbers, or text with `format`)
    format: Text | None = None  # built, text times: strptime codes
    side: Columns = ()  # built: more categorical fields of each event
    column: Column | None = None  # given: the list column (newest entry first)
    sep: _Sep | None = None  # given: text values are split on it (needed for CSV files)
    max_len: _MaxLen = 50  # entries kept per row (the newest)
    pooling: Literal["mean", "sum", "attention"] = "attention"

    @property
    def built(self) -> bool:
        """Whether msmtrec builds it from the log (else it is read from ``column``)."""
        return self.column is None

    @property
    def fields(self) -> tuple[str, ...]:
        """The categorical fields of its channels: the item, then the side features."""
        return (self.item, *self.side)

    @model_validator(mode="after")
    def _built_or_given(self) -> SequenceSpec:
        if self.column is not None:
            extra = [k for k in ("user", "time", "format") if getattr(self, k) is not None] + (["side"] if self.side else [])
            if extra:
                raise problem("{at}.{key} is only used for a history built from the log (without column)", key=extra[0])
            return self
        missing = [k for k in ("user", "time") if getattr(self, k) is None]
        if missing:
            raise problem("{at} needs either column (a list column) or user and time (a history built from the log; "
                          "missing: {missing})", missing=", ".join(missing))
        if self.sep is not None:
            raise problem("{at}.sep is only used with column (a list column)")
        if self.user in self.fields or self.time in (self.user, *self.fields):
            raise problem("{at}: user, time, item and side must be different columns")
        return self
