"""Training: the loop (:class:`Trainer`), task weighting, checkpoints and the
high-level :func:`train` / :func:`load_run`."""

from msmtrec.train.api import LoadedRun, TrainResult, load_run, run_dataset, seed_everything, train
from msmtrec.train.evaluate import evaluate_model, predict_proba
from msmtrec.train.trainer import FitResult, Trainer
from msmtrec.train.weighting import WEIGHTINGS, TaskWeighting, build_weighting, register_weighting

__all__ = ["Trainer", "FitResult", "train", "TrainResult", "load_run", "LoadedRun", "run_dataset", "seed_everything",
           "evaluate_model", "predict_proba", "TaskWeighting", "WEIGHTINGS", "build_weighting", "register_weighting"]
