"""Hyperparameter search: ``msmtrec tune`` (:func:`run_tune`) over a declared search space
(:func:`load_space`). Needs Optuna: ``pip install 'msmtrec[tune]'``."""

from msmtrec.tune.space import SearchSpace, load_space
from msmtrec.tune.study import TuneResult, run_tune

__all__ = ["SearchSpace", "TuneResult", "load_space", "run_tune"]
