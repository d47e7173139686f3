"""Run configuration: one dataclass, loadable from YAML, overridable from the CLI.

Unknown keys are errors (no silently ignored options)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from msmtrec.errors import ConfigError


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        model: registered model name (``msmtrec models`` lists them).
        model_params: the model's hyperparameters (its constructor keywords).
        data: a built-in dataset name or the path of a dataset spec YAML.
        seed: seeds Python, NumPy and PyTorch, the split (when the spec has none) and shuffling.
        batch_size / eval_batch_size: training / evaluation batch sizes.
        lr / weight_decay: Adam settings (weight decay is L2 added to the gradient, as in the papers).
        max_epochs: upper bound on epochs (per stage for multi-stage models).
        patience: epochs without improvement of the validation mean AUC before stopping.
        task_weights: fixed weight per loss name (default 1 each).
        weighting: task-weighting strategy (``fixed`` | ``gradnorm`` | ``uncertainty``); None
            uses the model's default (``fixed`` for all but AEM²TL).
        weighting_params: options of the weighting strategy.
        threads: torch intra-op threads (None = PyTorch's default).
        device: ``cpu`` or ``cuda``.
        runs_root: where run directories are created.
        run_dir: explicit run directory (must not exist yet).
        row_limit: use only the first N rows of the data (quick experiments).
        deterministic: ask PyTorch for deterministic algorithms.
        streaming: stream the train split from disk through a shuffle buffer instead of holding
            it in memory (:mod:`msmtrec.data.stream`); validation and test stay in memory.
        shuffle_buffer: rows in the streaming shuffle buffer.
    """

    model: str = "shared_bottom"
    model_params: dict[str, Any] = field(default_factory=dict)
    data: str = "womens-ecommerce"
    seed: int = 2024
    batch_size: int = 256
    eval_batch_size: int = 16384
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 20
    patience: int = 3
    task_weights: dict[str, float] | None = None
    weighting: str | None = None
    weighting_params: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    device: str = "cpu"
    runs_root: str = "runs"
    run_dir: str | None = None
    row_limit: int | None = None
    deterministic: bool = False
    streaming: bool = False
    shuffle_buffer: int = 262_144

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size > 0, "batch_size must be positive"),
            (self.eval_batch_size > 0, "eval_batch_size must be positive"),
            (self.lr > 0, "lr must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.shuffle_buffer >= 1, "shuffle_buffer must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"config: {msg}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys, found {type(d).__name__}")
        return cls.from_dict(d, source=str(path))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
