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
from msmtrec.declared import show
from msmtrec.errors import CheckpointError, ConfigError, DataError, MsmtrecError
from msmtrec.files import atomic_write, write_json
from msmtrec.models.base import MSMTModel, build_model, get_model_class, resolve_preset
from msmtrec.models.options import validate_options
from msmtrec.report import plot_learning_curves, results_table
from msmtrec.tracking import RunLoggers, check_loggers
from msmtrec.train.checkpoint import (SPEC_FILE, STATE_FILE, check_run_location, create_run_dir, load_checkpoint,
                                     save_checkpoint, save_train_state)
from msmtrec.train.distributed import process_group, rank_seed
from msmtrec.train.evaluate import evaluate_model
from msmtrec.train.host_memory import keep_freed_memory
from msmtrec.train.run_dir import RunStatus, read_status, resumable_state, write_status
from msmtrec.train.trainer import FitResult, Trainer
from msmtrec.yaml_io import dump_yaml


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """The torch device called ``name`` (``cpu``, ``cuda``, ``cuda:N``), if this machine has it.

    Raises:
        ConfigError: another name, or CUDA (that device) is not available here.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got '{name}'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "has no CUDA support" if torch.version.cuda is None else "finds no GPU"
            raise ConfigError(f"device '{name}': CUDA is not available on this machine (this torch "
                              f"{torch.__version__} {why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}': this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return device


def configure_torch(config: TrainConfig) -> None:
    """The process settings of a run: threads, determinism, and freed blocks kept for the next
    step (:func:`msmtrec.train.host_memory.keep_freed_memory`)."""
    keep_freed_memory()
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
    test: dict | None  # None: trained with evaluate_test=False (a tuning trial)
    run_dir: Path | None
    num_parameters: int
    dataset: str = ""  # the dataset's name (its spec's ``name``)

    @property
    def comparable_targets(self) -> dict[str, str]:
        """Task → the evaluation target the model declares comparable across models."""
        return {t: self.model.comparable_target(t) for t in self.schema.tasks}

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.config.model, "dataset": self.dataset, "data": self.config.data, "seed": self.config.seed,
            "num_parameters": self.num_parameters, "train_seconds": round(self.fit.train_seconds, 3),
            "samples_per_second": round(self.fit.samples_per_second, 1), "epochs": len(self.fit.history),
            "best": self.fit.best, "comparable_targets": self.comparable_targets, "validation": self.validation,
            "test": self.test,
        }


def train(config: TrainConfig, *, echo: Callable[[str], None] | None = None, progress: bool | None = None,
          write_run: bool = True, dataset: Any = None, resume: str | Path | None = None,
          on_epoch: Callable[[dict], None] | None = None, evaluate_test: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data`` and evaluate it.

    A preset named in ``config.preset`` fills the keys the config does not set (:func:`resolve_preset`).
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
    config = resolve_preset(config)  # the run records the resolved settings and the preset's name
    resolve_device(config.device)  # before joining a process group: NCCL needs the GPUs
    configure_torch(config)
    with process_group(config.device) as (ranks, device):
        if not ranks.is_main:
            echo, progress = _silent, False
        state = ranks.from_main(lambda: check_start(config, write_run=write_run, resume=resume,
                                                    world_size=ranks.world_size, evaluate_test=evaluate_test))

        def setup() -> tuple[Any, MSMTModel, Trainer]:
            seed_everything(config.seed)
            data = dataset if dataset is not None else open_dataset(config)
            model = build_model(config.model, data.schema, config.model_params)
            # The same init whatever loading consumed from the RNGs; every other rank its own dropout stream.
            seed_everything(config.seed if ranks.is_main else rank_seed(config.seed, ranks.rank))
            model.to(device)
            # Built before the run directory, so a bad option (e.g. an unknown weighting) leaves nothing on disk.
            return data, model, Trainer(model, config, data, echo=echo, progress=progress, ranks=ranks)

        data, model, trainer = ranks.everywhere(setup)
        val_split, test_split = data.val.to(device), data.test.to(device)
        streamed = data.train is None
        name = getattr(data.spec, "name", None) or Path(str(config.data)).stem
        run_dir = None
        if write_run:
            run_dir = ranks.from_main(lambda: _open_run_dir(config, data, name, resume, state, ranks.world_size))
        loggers = RunLoggers()
        if run_dir is not None and ranks.is_main:
            _write_during_training(trainer, run_dir, config, data, on_epoch, loggers)
        elif on_epoch is not None:
            trainer.on_epoch = on_epoch
        where = f"; run directory {run_dir}" if run_dir else ""
        if resume is not None:
            where = f"; resuming {run_dir} after epoch {0 if state is None else state['global_epoch']}"
        echo(f"{config.model} on {name}: {data.num_train_rows:,} train{' (streamed)' if streamed else ''} / "
             f"{len(data.val):,} val / {len(data.test):,} test rows, {data.schema.num_scenarios} scenarios × "
             f"{data.schema.num_tasks} tasks, {model.num_parameters():,} parameters"
             + (f", {ranks.world_size} processes" if ranks.distributed else "") + where)
        for warning in data.report.get("warnings", []):
            echo(f"warning: {warning}")

        try:
            if run_dir is not None and ranks.is_main:
                loggers.open(config, run_dir, 0 if state is None else state["global_epoch"])
            fit = trainer.fit(resume=state)
            validation = evaluate_model(model, val_split, data.schema, config.eval_batch_size, ranks,
                                        forward=trainer.forward)
            test = None
            if evaluate_test:  # once, with the best weights
                test = evaluate_model(model, test_split, data.schema, config.eval_batch_size, ranks,
                                      forward=trainer.forward)
        except BaseException as exc:
            if run_dir is not None and ranks.is_main:
                write_status(run_dir, f"failed: {_reason(exc)}", world_size=ranks.world_size, epochs=trainer.global_epoch)
                loggers.finish(None, [], ok=False)
            raise
        result = TrainResult(config, model, data.schema, fit, validation, test, run_dir, model.num_parameters(), name)
        if ranks.is_main and evaluate_test:
            extra = model.extra_report(test_split, run_dir)
            if isinstance(extra.get("summary"), str):  # the model's findings in words (AutoIFS: flow selection)
                echo(extra.pop("summary"))
            if run_dir is not None:
                _write_results(run_dir, result, data, extra, ranks.world_size)
                loggers.finish(test, _artifacts(run_dir))
    return result


def check_start(config: TrainConfig, *, write_run: bool = True, resume: str | Path | None = None,
                world_size: int = 1, load: bool = True, evaluate_test: bool = True) -> dict | None:
    """Refuse what can be refused before any data is read: the model's options, a logger whose
    library is missing or that has no run directory to log, a run directory that could not be
    created, or a run that may not be resumed. Returns the state to resume from (None: a fresh
    run, no epoch completed yet, or ``load=False``).

    Raises:
        ConfigError, CheckpointError: one line naming what to change.
    """
    validate_options(get_model_class(config.model), config.model_params)
    if config.loggers and not write_run:
        raise ConfigError(f"logging to {', '.join(config.loggers)} needs a run directory (write_run=True)")
    if write_run and not evaluate_test:
        raise ConfigError("a run directory records the test metrics: evaluate_test=False needs write_run=False")
    check_loggers(config.loggers)
    if resume is None:
        if write_run:
            check_run_location(config.runs_root, config.run_dir)
        return None
    if not write_run:
        raise ConfigError("resuming a run needs write_run=True")
    return resumable_state(Path(resume), config, world_size, load=load)


def _silent(_message: str) -> None:
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, MsmtrecError) else f"{type(exc).__name__}: {text}"


def _open_run_dir(config: TrainConfig, data: Any, name: str, resume: str | Path | None, state: dict | None,
                  world_size: int) -> Path:
    """A fresh run directory with what describes the run; or, resuming, the run's own with its
    log cut back to the epochs of ``state`` (the log may hold one more, written after it)."""
    if resume is not None:
        run_dir = Path(resume)
        history = state["result"]["history"] if state is not None else []
        atomic_write(run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    else:
        run_dir = create_run_dir(config.runs_root, config.model, name, config.run_dir)
        atomic_write(run_dir / "config.yaml", dump_yaml(config.to_dict()))
        if data.spec is not None:  # what `evaluate` needs to read the same rows again
            from msmtrec.data.fingerprint import fingerprint_spec, write_fingerprint

            atomic_write(run_dir / SPEC_FILE, dump_yaml(data.spec.to_dict()))
            write_fingerprint(run_dir, fingerprint_spec(data.spec))
        write_json(run_dir / "schema.json", data.schema.to_dict())
        data.encoders.save(run_dir)
        write_json(run_dir / "data_report.json", data.report)
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
                                                                          f"{result.dataset} — test split"))
    plot_learning_curves(result.fit.history, run_dir / "learning_curves.png",
                         title=f"{result.config.model} on {result.dataset}")
    write_status(run_dir, "finished", world_size=world_size, epochs=len(result.fit.history))
    (run_dir / STATE_FILE).unlink(missing_ok=True)


def _artifacts(run_dir: Path) -> list[Path]:
    """What the loggers receive of a finished run: its config, results table, metrics and plots."""
    files = [run_dir / n for n in ("config.yaml", "results.md", "metrics.json")]
    return [p for p in files if p.is_file()] + sorted(run_dir.glob("*.png"))


@dataclass
class LoadedRun:
    """A trained run read back: ``spec`` and ``fingerprint`` (of its data files) are None for a
    run written without them (a dataset built in code, or an older msmtrec)."""

    run_dir: Path
    config: TrainConfig
    schema: DataSchema
    model: MSMTModel
    encoders: Any
    spec: Any = None
    fingerprint: dict | None = None
    status: RunStatus | None = None  # None: a run directory from before status.json


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory written by :func:`train` (config, encoders, best checkpoint, and the
    resolved spec with its data fingerprint) — also of a run that has not finished (its
    ``status`` says so)."""
    from msmtrec.data import Encoders, load_spec
    from msmtrec.data.fingerprint import FINGERPRINT_FILE, read_fingerprint

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
    if payload["model"] != config.model:
        raise CheckpointError(f"checkpoint {run_dir / 'checkpoint.pt'} holds a '{payload['model']}' model, but "
                              f"config.yaml trained '{config.model}'; it belongs to another run")
    schema = DataSchema.from_dict(payload["schema"])
    model = build_model(payload["model"], schema, payload["model_params"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        detail = [line.strip() for line in str(e).splitlines() if line.strip()][-1]  # the first line is a header
        raise CheckpointError(f"checkpoint {run_dir / 'checkpoint.pt'} does not match model '{payload['model']}': "
                              f"{detail}") from None
    model.eval()
    encoders = Encoders.load(run_dir)
    if encoders.schema != schema:  # e.g. a checkpoint copied from another run
        raise CheckpointError(f"checkpoint {run_dir / 'checkpoint.pt'} was not trained with this run's encoders "
                              f"({_schema_difference(schema, encoders.schema)}); it belongs to another run")
    spec = load_spec(run_dir / SPEC_FILE) if (run_dir / SPEC_FILE).is_file() else None
    fingerprint = read_fingerprint(run_dir) if (run_dir / FINGERPRINT_FILE).is_file() else None
    return LoadedRun(run_dir, config, schema, model, encoders, spec, fingerprint, status)


def run_dataset(run: LoadedRun, data: Any = None) -> Any:
    """The data to evaluate ``run`` on, encoded with its encoders, in memory.

    Without ``data``: the run's own data, read with its saved spec (the same files, rows and
    split as in training), refused when a data file changed since. With ``data`` (a spec path,
    built-in name, mapping or spec): that data, as it is now, split as its spec says.

    Raises:
        DataError: a data file of the run changed since training (the message says which and how).
        CheckpointError: the run has no saved spec or fingerprint and ``data`` is not given.
    """
    from msmtrec.data import load_dataset
    from msmtrec.data.fingerprint import FINGERPRINT_FILE, changed_files, fingerprint_spec

    options = {"batch_size": run.config.batch_size, "seed": run.config.seed, "encoders": run.encoders}
    if data is not None:
        return load_dataset(data, **options)
    if run.spec is None or run.fingerprint is None:
        raise CheckpointError(f"{run.run_dir} has no {SPEC_FILE} or {FINGERPRINT_FILE}, so its data cannot be "
                              f"checked; name the data to evaluate on with --data SPEC")
    changes = changed_files(run.fingerprint, fingerprint_spec(run.spec))
    if changes:
        raise DataError(f"the data of run {run.run_dir} changed since training ({'; '.join(changes)}), so its "
                        f"splits may not hold the same rows; to evaluate on the data as it is now, pass --data SPEC")
    return load_dataset(run.spec, row_limit=run.config.row_limit, **options)


def _schema_difference(checkpoint: DataSchema, encoders: DataSchema) -> str:
    """The first field where a checkpoint's schema and the encoders' differ, in words."""
    a, b = checkpoint.to_dict(), encoders.to_dict()
    key = next(k for k in a if a[k] != b.get(k))
    return f"{key}: {show(a[key])} in the checkpoint, {show(b.get(key))} in encoders.json"
