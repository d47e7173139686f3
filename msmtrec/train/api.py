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
from msmtrec.errors import CheckpointError, ConfigError, MsmtrecError
from msmtrec.files import atomic_write, write_json
from msmtrec.models.base import MSMTModel, build_model
from msmtrec.report import plot_learning_curves, results_table
from msmtrec.tracking import RunLoggers, check_loggers
from msmtrec.train.checkpoint import STATE_FILE, create_run_dir, load_checkpoint, save_checkpoint, save_train_state
from msmtrec.train.distributed import process_group, rank_seed
from msmtrec.train.evaluate import evaluate_model
from msmtrec.train.run_dir import (FINGERPRINT_FILE, RunStatus, data_fingerprint, read_status, resumable_state,
                                   write_status)
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
          write_run: bool = True, dataset: Any = None, resume: str | Path | None = None,
          on_epoch: Callable[[dict], None] | None = None, evaluate_test: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data`` and evaluate it.

    Validation drives early stopping and model selection; the test split is evaluated exactly
    once, with the restored best weights (not at all without ``evaluate_test``: a tuning trial's
    result is its validation score). With ``write_run`` the run directory receives the
    resolved config, schema, encoders, the data fingerprint, the best checkpoint (atomically, at
    every improvement), per-epoch logs and resumable state, its status, ``metrics.json``,
    ``results.md`` and ``learning_curves.png`` (with matplotlib); ``config.loggers`` receive
    the same (:mod:`msmtrec.tracking`).

    Launched by torchrun (``WORLD_SIZE`` > 1) every rank calls this: each trains on its share of
    the data, rank 0 alone logs and writes the run directory, and every rank returns the result.

    ``dataset`` may be a ready :class:`msmtrec.data.Dataset` (e.g. one shared by several runs);
    otherwise :func:`msmtrec.data.open_dataset` opens ``config.data`` (streamed when
    ``config.streaming``). ``resume``: an unfinished run directory of the same config and data,
    continued after its last completed epoch (see :func:`msmtrec.train.run_dir.resumable_state`).
    ``on_epoch``: ``fn(record)`` called on every rank after each epoch, once the run directory
    holds it.
    """
    from msmtrec.data import open_dataset  # deferred: keeps `import msmtrec.train` light

    echo = echo or _silent
    if resume is not None and not write_run:
        raise ConfigError("resuming a run needs write_run=True")
    if config.loggers and not write_run:
        raise ConfigError(f"logging to {', '.join(config.loggers)} needs a run directory (write_run=True)")
    if write_run and not evaluate_test:
        raise ConfigError("a run directory records the test metrics: evaluate_test=False needs write_run=False")
    check_loggers(config.loggers)
    configure_torch(config)
    with process_group(config.device) as (ranks, device):
        if not ranks.is_main:
            echo, progress = _silent, False
        state = None
        if resume is not None:
            state = ranks.from_main(lambda: resumable_state(Path(resume), config, ranks.world_size))
        seed_everything(config.seed)
        data = dataset if dataset is not None else open_dataset(config)
        model = build_model(config.model, data.schema, config.model_params)
        # The same init whatever loading consumed from the RNGs; every other rank its own dropout stream.
        seed_everything(config.seed if ranks.is_main else rank_seed(config.seed, ranks.rank))
        model.to(device)
        val_split, test_split = data.val.to(device), data.test.to(device)
        streamed = data.train is None

        # Built before the run directory, so a bad option (e.g. an unknown weighting) leaves nothing on disk.
        trainer = Trainer(model, config, data, echo=echo, progress=progress, ranks=ranks)
        run_dir = None
        if write_run:
            run_dir = ranks.from_main(lambda: _open_run_dir(config, data, resume, state, ranks.world_size))
        loggers = RunLoggers()
        if run_dir is not None and ranks.is_main:
            _write_during_training(trainer, run_dir, config, data, on_epoch, loggers)
        elif on_epoch is not None:
            trainer.on_epoch = on_epoch
        where = f"; run directory {run_dir}" if run_dir else ""
        if resume is not None:
            where = f"; resuming {run_dir} after epoch {0 if state is None else state['global_epoch']}"
        echo(f"{config.model} on {config.data}: {data.num_train_rows:,} train{' (streamed)' if streamed else ''} / "
             f"{len(data.val):,} val / {len(data.test):,} test rows, {data.schema.num_scenarios} scenarios × "
             f"{data.schema.num_tasks} tasks, {model.num_parameters():,} parameters"
             + (f", {ranks.world_size} processes" if ranks.distributed else "") + where)

        try:
            if run_dir is not None and ranks.is_main:
                loggers.open(config, run_dir, 0 if state is None else state["global_epoch"])
            fit = trainer.fit(resume=state)
            validation = evaluate_model(model, val_split, data.schema, config.eval_batch_size, ranks)
            test = None
            if evaluate_test:  # once, with the best weights
                test = evaluate_model(model, test_split, data.schema, config.eval_batch_size, ranks)
        except BaseException as exc:
            if run_dir is not None and ranks.is_main:
                write_status(run_dir, f"failed: {_reason(exc)}", world_size=ranks.world_size, epochs=trainer.global_epoch)
                loggers.finish(None, [], ok=False)
            raise
        result = TrainResult(config, model, data.schema, fit, validation, test, run_dir, model.num_parameters())
        if ranks.is_main and evaluate_test:
            extra = model.extra_report(test_split, run_dir)
            if isinstance(extra.get("summary"), str):  # the model's findings in words (AutoIFS: flow selection)
                echo(extra.pop("summary"))
            if run_dir is not None:
                _write_results(run_dir, result, data, extra, ranks.world_size)
                loggers.finish(test, _artifacts(run_dir))
    return result


def _silent(_message: str) -> None:
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, MsmtrecError) else f"{type(exc).__name__}: {text}"


def _open_run_dir(config: TrainConfig, data: Any, resume: str | Path | None, state: dict | None,
                  world_size: int) -> Path:
    """A fresh run directory with what describes the run; or, resuming, the run's own with its
    log cut back to the epochs of ``state`` (the log may hold one more, written after it)."""
    if resume is not None:
        run_dir = Path(resume)
        history = state["result"]["history"] if state is not None else []
        atomic_write(run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    else:
        run_dir = create_run_dir(config.runs_root, config.model,
                                 getattr(data.spec, "name", None) or Path(str(config.data)).stem, config.run_dir)
        atomic_write(run_dir / "config.yaml", dump_yaml(config.to_dict()))
        write_json(run_dir / "schema.json", data.schema.to_dict())
        data.encoders.save(run_dir)
        write_json(run_dir / "data_report.json", data.report)
        if data.spec is not None:
            write_json(run_dir / FINGERPRINT_FILE, data_fingerprint(data.spec))
        (run_dir / "log.jsonl").touch()
    write_status(run_dir, "running", world_size=world_size, epochs=0 if state is None else state["global_epoch"])
    return run_dir


def _save_checkpoint(run_dir: Path, config: TrainConfig, data: Any, state_dict: dict, best: dict) -> None:
    save_checkpoint(run_dir / "checkpoint.pt", model_name=config.model, model_params=config.model_params,
                    schema=data.schema.to_dict(), state_dict=state_dict, extra={"best": best})


def _write_during_training(trainer: Trainer, run_dir: Path, config: TrainConfig, data: Any,
                           on_epoch: Callable[[dict], None] | None, loggers: RunLoggers) -> None:
    """Rank 0's hooks: the checkpoint at every improvement, then every epoch the resumable state
    with the status, then the log record (to ``loggers``, and ``on_epoch``)."""

    def save_state(state: dict) -> None:
        save_train_state(run_dir / STATE_FILE, state)
        write_status(run_dir, "running", world_size=state["world_size"], epochs=state["global_epoch"])

    def append_log(record: dict) -> None:
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        loggers.epoch(record)
        if on_epoch is not None:
            on_epoch(record)

    trainer.on_improvement = lambda model, record: _save_checkpoint(run_dir, config, data, model.state_dict(), record)
    trainer.on_state = save_state
    trainer.on_epoch = append_log


def _write_results(run_dir: Path, result: TrainResult, data: Any, extra: dict, world_size: int) -> None:
    """The final weights (restored best of the last selecting stage), metrics and table; the run
    is finished, its resumable state goes."""
    _save_checkpoint(run_dir, result.config, data, result.model.state_dict(), result.fit.best)
    summary = result.summary()
    summary["data"] = data.report
    if extra:
        summary["model_report"] = extra
    write_json(run_dir / "metrics.json", summary)
    atomic_write(run_dir / "results.md", results_table(result.test, title=f"{result.config.model} on "
                                                                          f"{result.config.data} — test split"))
    plot_learning_curves(result.fit.history, run_dir / "learning_curves.png",
                         title=f"{result.config.model} on {result.config.data}")
    write_status(run_dir, "finished", world_size=world_size, epochs=len(result.fit.history))
    (run_dir / STATE_FILE).unlink(missing_ok=True)


def _artifacts(run_dir: Path) -> list[Path]:
    """What the loggers receive of a finished run: its config, results table, metrics and plots."""
    files = [run_dir / n for n in ("config.yaml", "results.md", "metrics.json")]
    return [p for p in files if p.is_file()] + sorted(run_dir.glob("*.png"))


@dataclass
class LoadedRun:
    run_dir: Path
    config: TrainConfig
    schema: DataSchema
    model: MSMTModel
    encoders: Any
    status: RunStatus | None = None  # None: a run directory from before status.json


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory written by :func:`train` (config, encoders, best checkpoint) — also
    of a run that has not finished (its ``status`` says so)."""
    from msmtrec.data import Encoders

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir} is not a msmtrec run directory (no config.yaml)")
    config = TrainConfig.from_yaml(cfg_path)
    status = read_status(run_dir)
    if status is not None and status.state != "finished" and not (run_dir / "checkpoint.pt").is_file():
        raise CheckpointError(f"run {run_dir} is {status.describe()} and has no checkpoint yet")
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
    return LoadedRun(run_dir, config, schema, model, encoders, status)
