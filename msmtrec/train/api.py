"""High-level entry points: ``train(config)`` runs a whole experiment into a run directory;
``load_run(dir)`` brings a trained model back for evaluation or prediction."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from msmtrec.config import TrainConfig
from msmtrec.data.encoded import DataSchema
from msmtrec.errors import CheckpointError
from msmtrec.files import atomic_write, write_json
from msmtrec.models.base import MSMTModel, build_model, resolve_preset
from msmtrec.report import results_table
from msmtrec.train.checkpoint import create_run_dir, load_checkpoint, save_checkpoint
from msmtrec.train.evaluate import evaluate_model
from msmtrec.train.trainer import FitResult, Trainer
from msmtrec.yaml_io import dump_yaml


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch(config: TrainConfig) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)


@dataclass
class TrainResult:
    config: TrainConfig
    model: MSMTModel
    schema: DataSchema
    fit: FitResult
    validation: dict
    test: dict
    run_dir: Path | None
    num_parameters: int

    @property
    def comparable_targets(self) -> dict[str, str]:
        """Task → the evaluation target the model declares comparable across models."""
        return {t: self.model.comparable_target(t) for t in self.schema.tasks}

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.config.model, "dataset": self.config.data, "seed": self.config.seed,
            "num_parameters": self.num_parameters, "train_seconds": round(self.fit.train_seconds, 3),
            "samples_per_second": round(self.fit.samples_per_second, 1), "epochs": len(self.fit.history),
            "best": self.fit.best, "comparable_targets": self.comparable_targets, "validation": self.validation,
            "test": self.test,
        }


def train(config: TrainConfig, *, echo: Callable[[str], None] | None = None, progress: bool | None = None,
          write_run: bool = True, dataset: Any = None) -> TrainResult:
    """Train ``config.model`` on ``config.data`` and evaluate it.

    A preset named in ``config.preset`` fills the keys the config does not set (:func:`resolve_preset`).
    Validation drives early stopping and model selection; the test split is evaluated exactly
    once, with the restored best weights. With ``write_run`` the run directory receives the
    resolved config, schema, encoders, the best checkpoint (atomically, at every improvement),
    per-epoch logs, ``metrics.json`` and ``results.md``.

    ``dataset`` may be a ready :class:`msmtrec.data.Dataset` (e.g. one shared by several runs);
    otherwise :func:`msmtrec.data.open_dataset` opens ``config.data`` (streamed when
    ``config.streaming``).
    """
    from msmtrec.data import open_dataset  # deferred: keeps `import msmtrec.train` light

    echo = echo or (lambda _m: None)
    config = resolve_preset(config)  # the run records the resolved settings and the preset's name
    configure_torch(config)
    seed_everything(config.seed)
    data = dataset if dataset is not None else open_dataset(config)
    model = build_model(config.model, data.schema, config.model_params)
    seed_everything(config.seed)  # the same init whatever loading consumed from the RNGs
    device = torch.device(config.device)
    model.to(device)
    val_split, test_split = data.val.to(device), data.test.to(device)
    streamed = data.train is None

    # Built before the run directory, so a bad option (e.g. an unknown weighting) leaves nothing on disk.
    trainer = Trainer(model, config, data, echo=echo, progress=progress)
    run_dir = None
    if write_run:
        run_dir = create_run_dir(config.runs_root, config.model, getattr(data.spec, "name", None) or Path(str(config.data)).stem,
                                 config.run_dir)
        atomic_write(run_dir / "config.yaml", dump_yaml(config.to_dict()))
        write_json(run_dir / "schema.json", data.schema.to_dict())
        data.encoders.save(run_dir)
        write_json(run_dir / "data_report.json", data.report)
        log_path = run_dir / "log.jsonl"
        log_path.touch()

        def save(state_dict: dict, best: dict) -> None:
            save_checkpoint(run_dir / "checkpoint.pt", model_name=config.model, model_params=config.model_params,
                            schema=data.schema.to_dict(), state_dict=state_dict, extra={"best": best})

        def append_log(record: dict) -> None:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

        trainer.on_epoch = append_log
        trainer.on_improvement = lambda m, record: save(m.state_dict(), record)
    echo(f"{config.model} on {config.data}: {data.num_train_rows:,} train{' (streamed)' if streamed else ''} / {len(data.val):,} val / {len(data.test):,} test rows, "
         f"{data.schema.num_scenarios} scenarios × {data.schema.num_tasks} tasks, {model.num_parameters():,} parameters"
         + (f"; run directory {run_dir}" if run_dir else ""))

    fit = trainer.fit()
    validation = evaluate_model(model, val_split, data.schema, config.eval_batch_size)
    test = evaluate_model(model, test_split, data.schema, config.eval_batch_size)  # once, with the best weights
    result = TrainResult(config, model, data.schema, fit, validation, test, run_dir, model.num_parameters())
    extra = model.extra_report(test_split, run_dir)
    if isinstance(extra.get("summary"), str):  # the model's findings in words (AutoIFS: flow selection)
        echo(extra.pop("summary"))

    if run_dir is not None:
        # The final weights (restored best of the last selecting stage) are the deliverable.
        save(model.state_dict(), fit.best)
        summary = result.summary()
        summary["data"] = data.report
        if extra:
            summary["model_report"] = extra
        write_json(run_dir / "metrics.json", summary)
        atomic_write(run_dir / "results.md", results_table(test, title=f"{config.model} on {config.data} — test split"))
    return result


@dataclass
class LoadedRun:
    run_dir: Path
    config: TrainConfig
    schema: DataSchema
    model: MSMTModel
    encoders: Any


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory written by :func:`train` (config, encoders, best checkpoint)."""
    from msmtrec.data import Encoders

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir} is not a msmtrec run directory (no config.yaml)")
    config = TrainConfig.from_yaml(cfg_path)
    payload = load_checkpoint(run_dir / "checkpoint.pt")
    schema = DataSchema.from_dict(payload["schema"])
    model = build_model(payload["model"], schema, payload["model_params"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {run_dir / 'checkpoint.pt'} does not match model '{payload['model']}': "
                              f"{str(e).splitlines()[0]}") from None
    model.eval()
    encoders = Encoders.load(run_dir)
    return LoadedRun(run_dir, config, schema, model, encoders)
