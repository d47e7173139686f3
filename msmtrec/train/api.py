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
from msmtrec.errors import CheckpointError, ConfigError, DataError
from msmtrec.files import atomic_write, write_json
from msmtrec.models.base import MSMTModel, build_model, get_model_class, resolve_preset
from msmtrec.models.options import validate_options
from msmtrec.report import results_table
from msmtrec.train.checkpoint import (SPEC_FILE, check_run_location, create_run_dir, load_checkpoint,
                                     save_checkpoint)
from msmtrec.train.evaluate import evaluate_model
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
    # What can be refused without the data is refused before reading it.
    validate_options(get_model_class(config.model), config.model_params)
    device = resolve_device(config.device)
    if write_run:
        check_run_location(config.runs_root, config.run_dir)
    configure_torch(config)
    seed_everything(config.seed)
    data = dataset if dataset is not None else open_dataset(config)
    model = build_model(config.model, data.schema, config.model_params)
    seed_everything(config.seed)  # the same init whatever loading consumed from the RNGs
    model.to(device)
    val_split, test_split = data.val.to(device), data.test.to(device)
    streamed = data.train is None

    # Built before the run directory, so a bad option (e.g. an unknown weighting) leaves nothing on disk.
    trainer = Trainer(model, config, data, echo=echo, progress=progress)
    name = getattr(data.spec, "name", None) or Path(str(config.data)).stem
    run_dir = None
    if write_run:
        run_dir = create_run_dir(config.runs_root, config.model, name, config.run_dir)
        atomic_write(run_dir / "config.yaml", dump_yaml(config.to_dict()))
        if data.spec is not None:  # what `evaluate` needs to read the same rows again
            from msmtrec.data.fingerprint import fingerprint_spec, write_fingerprint

            atomic_write(run_dir / SPEC_FILE, dump_yaml(data.spec.to_dict()))
            write_fingerprint(run_dir, fingerprint_spec(data.spec))
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
    echo(f"{config.model} on {name}: {data.num_train_rows:,} train{' (streamed)' if streamed else ''} / {len(data.val):,} val / {len(data.test):,} test rows, "
         f"{data.schema.num_scenarios} scenarios × {data.schema.num_tasks} tasks, {model.num_parameters():,} parameters"
         + (f"; run directory {run_dir}" if run_dir else ""))
    for warning in data.report.get("warnings", []):
        echo(f"warning: {warning}")

    fit = trainer.fit()
    validation = evaluate_model(model, val_split, data.schema, config.eval_batch_size)
    test = evaluate_model(model, test_split, data.schema, config.eval_batch_size)  # once, with the best weights
    result = TrainResult(config, model, data.schema, fit, validation, test, run_dir, model.num_parameters(), name)
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
        atomic_write(run_dir / "results.md", results_table(test, title=f"{config.model} on {name} — test split"))
    return result


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


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory written by :func:`train` (config, encoders, best checkpoint, and the
    resolved spec with its data fingerprint)."""
    from msmtrec.data import Encoders, load_spec
    from msmtrec.data.fingerprint import FINGERPRINT_FILE, read_fingerprint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir} is not a msmtrec run directory (no config.yaml)")
    config = TrainConfig.from_yaml(cfg_path)
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
    return LoadedRun(run_dir, config, schema, model, encoders, spec, fingerprint)


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
