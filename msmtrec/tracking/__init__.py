"""Experiment trackers: a run's figures in TensorBoard and MLflow, beside its own ``log.jsonl``.

A :class:`RunLogger` is one tracking backend of one run, driven by rank 0 only. It learns the
resolved config once (:meth:`~RunLogger.start`), then every epoch the scalars of the trainer's
log record — the same dict that goes to ``log.jsonl``, flattened by :func:`epoch_scalars` —, and
at the end the test metrics and the run directory's files (:meth:`~RunLogger.finish`).

Scalar names (``/`` groups them in both tools): ``train/loss/<loss>``, ``val/mean_auc``,
``val/mean_logloss``, ``val/auc/<scenario>/<target>``, ``val/logloss/<scenario>/<target>``,
``lr`` (``lr/<group>`` for a stage with several parameter groups), ``task_weight/<loss>``,
``samples_per_second``, ``epoch_seconds``; at the end ``test/...`` in the same shape. The step is
the run's global epoch (1, 2, ... across stages).

The backends are optional extras: ``pip install 'msmtrec[tensorboard]'`` / ``'msmtrec[mlflow]'``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from msmtrec.config import TrainConfig
from msmtrec.extras import require
from msmtrec.yaml_io import dump_yaml

__all__ = ["LOGGERS", "RunLogger", "RunLoggers", "check_loggers", "config_params", "epoch_scalars", "metric_scalars"]

# logger name → (the module it needs, what asks for it, the extra that installs it)
LOGGERS = {"tensorboard": ("tensorboard", "--log-to tensorboard", "tensorboard"),
           "mlflow": ("mlflow", "--log-to mlflow", "mlflow")}


def check_loggers(names: Iterable[str]) -> None:
    """Raise a one-line ConfigError naming the pip command for a logger whose library is missing."""
    for name in names:
        require(*LOGGERS[name])


class RunLogger:
    """One tracking backend of one run."""

    def start(self, config: dict[str, Any], config_text: str) -> None:
        """The resolved config, as a nested dict and as the YAML of ``config.yaml``."""

    def epoch(self, step: int, scalars: dict[str, float]) -> None:
        """One epoch's scalars at global epoch ``step``."""

    def finish(self, step: int, scalars: dict[str, float], files: list[Path], ok: bool) -> None:
        """The final scalars (test metrics) and the run's files; ``ok`` False: the run failed."""


class RunLoggers:
    """A run's loggers fed together: opened once the run directory exists, then ``epoch(record)``
    with each log record, then ``finish`` once. Without any it does nothing."""

    def __init__(self) -> None:
        self.loggers: list[RunLogger] = []
        self.step = 0

    def open(self, config: TrainConfig, run_dir: Path, resumed_after: int = 0) -> None:
        """Open ``config.loggers`` for the run in ``run_dir`` (``resumed_after``: the epochs it
        already has when it is being resumed) and give them the config. MLflow's default store
        lives in ``config.runs_root``."""
        self.step = resumed_after
        for name in config.loggers:
            if name == "tensorboard":
                from msmtrec.tracking.tensorboard_logger import TensorBoardLogger

                self.loggers.append(TensorBoardLogger(run_dir, resumed_after))
            elif name == "mlflow":
                from msmtrec.tracking.mlflow_logger import MLflowLogger

                self.loggers.append(MLflowLogger(run_dir, Path(config.runs_root), resumed=resumed_after > 0))
        values = config.to_dict()
        for logger in self.loggers:
            logger.start(values, dump_yaml(values))

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.loggers:
            return
        self.step = record["global_epoch"]
        scalars = epoch_scalars(record)
        for logger in self.loggers:
            logger.epoch(self.step, scalars)

    def finish(self, test: dict | None, files: list[Path], ok: bool = True) -> None:
        scalars = metric_scalars("test", test) if test is not None else {}
        for logger in self.loggers:
            logger.finish(self.step, scalars, files, ok)
        self.loggers = []


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _grid(prefix: str, grid: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {f"{prefix}/{s}/{t}": float(v) for s, by_t in grid.items() for t, v in by_t.items() if _finite(v)}


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The scalars of one epoch's log record (see the module docstring for the names)."""
    out = {f"train/loss/{k}": float(v) for k, v in record["train_loss"].items() if _finite(v)}
    for key in ("mean_auc", "mean_logloss"):
        if _finite(record.get(f"val_{key}")):
            out[f"val/{key}"] = float(record[f"val_{key}"])
    out.update(_grid("val/auc", record.get("val", {})))
    out.update(_grid("val/logloss", record.get("val_logloss", {})))
    lrs = record.get("lr") or []
    out.update({"lr": float(lrs[0])} if len(lrs) == 1 else {f"lr/{i}": float(v) for i, v in enumerate(lrs)})
    out.update({f"task_weight/{k}": float(v) for k, v in (record.get("task_weights") or {}).items() if _finite(v)})
    for key, name in (("samples_per_second", "samples_per_second"), ("seconds", "epoch_seconds")):
        if _finite(record.get(key)):
            out[name] = float(record[key])
    return out


def metric_scalars(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """An evaluation's metrics (:func:`msmtrec.metrics.evaluate_predictions`) as scalars:
    ``<prefix>/mean_<m>``, ``<prefix>/<m>/<scenario>/<target>`` and ``<prefix>/<m>/pooled/<target>``."""
    out = {f"{prefix}/{k}": float(v) for k, v in metrics.items() if k.startswith("mean_") and _finite(v)}
    for m in ("auc", "logloss", "gauc"):
        out.update(_grid(f"{prefix}/{m}", {s: {t: v.get(m) for t, v in by_t.items()}
                                           for s, by_t in metrics["per_scenario"].items()}))
        out.update(_grid(f"{prefix}/{m}", {"pooled": {t: v.get(m) for t, v in metrics["per_target"].items()}}))
    return out


def config_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as flat ``key.sub`` → text parameters (lists and None as their repr)."""
    out: dict[str, str] = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(config_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out
