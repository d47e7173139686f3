"""Models and their registry. Importing this package registers every built-in model."""

from msmtrec.models.base import (MODELS, MSMTModel, Preset, build_model, get_model_class, model_hyperparameters,
                                 register_model, resolve_preset)
from msmtrec.models.stages import Stage

# Each import registers one model (keep one line per model file).
from msmtrec.models import shared_bottom  # noqa: E402,F401
from msmtrec.models import mmoe  # noqa: E402,F401
from msmtrec.models import ple  # noqa: E402,F401
from msmtrec.models import esmm  # noqa: E402,F401
from msmtrec.models import aem2tl  # noqa: E402,F401
from msmtrec.models import autoifs  # noqa: E402,F401
from msmtrec.models import star  # noqa: E402,F401
from msmtrec.models import pepnet  # noqa: E402,F401
from msmtrec.models import hinet  # noqa: E402,F401

__all__ = ["MODELS", "MSMTModel", "Preset", "Stage", "build_model", "get_model_class", "model_hyperparameters",
           "register_model", "resolve_preset"]
