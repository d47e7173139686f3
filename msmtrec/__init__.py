"""msmtrec: multi-scenario multi-task recommendation in PyTorch.

One ranking model serves several scenarios and predicts several tasks for each. The package is
organised along the data flow: :mod:`msmtrec.data` (spec, encoding, batches) → :mod:`msmtrec.models`
(built from :mod:`msmtrec.nn` blocks) → :mod:`msmtrec.train` (trainer, task weighting) →
:mod:`msmtrec.metrics`.
"""

from msmtrec.errors import MsmtrecError

__version__ = "0.1.0"
__all__ = ["MsmtrecError", "__version__"]
