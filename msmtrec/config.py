"""Run configuration: one declared model, loadable from YAML, overridable from the CLI.

An unknown key or a value of the wrong type or range is a one-line
:class:`~msmtrec.errors.ConfigError` naming the key (no silently ignored options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
                      ValidationInfo, ValidatorFunctionWrapHandler, field_validator, model_validator)

from msmtrec.declared import explain
from msmtrec.errors import ConfigError
from msmtrec.yaml_io import load_yaml

#: Training precisions (:mod:`msmtrec.train.precision`).
PRECISIONS = ("fp32", "bf16", "fp16")

_Positive = Annotated[StrictInt, Field(gt=0)]
_AtLeastOne = Annotated[StrictInt, Field(ge=1)]


class TrainConfig(BaseModel):
    """Everything that defines a training run.

    Attributes:
        model: registered model name (``msmtrec models`` lists them).
        model_params: the model's hyperparameters (its constructor keywords).
        data: a built-in dataset name or the path of a dataset spec YAML.
        preset: a named set of training settings the model declares (``msmtrec models`` lists
            them, e.g. ``code`` or ``paper``); it fills every key this config does not set itself
            (:func:`msmtrec.models.base.resolve_preset`). None: the defaults below.
        seed: seeds Python, NumPy and PyTorch, the split (when the spec has none) and shuffling.
        batch_size / eval_batch_size: training / evaluation batch sizes (training: of each process
            when data-parallel, so a step trains on ``batch_size × processes`` rows).
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
        loggers: experiment trackers that also receive the run (``tensorboard``, ``mlflow``; each an
            optional extra, see :mod:`msmtrec.tracking`); ``log.jsonl`` is always written.
        precision: ``fp32``, ``bf16`` (autocast; CPU or CUDA) or ``fp16`` (CUDA, with a gradient
            scaler); weights, losses, metrics and checkpoints stay fp32
            (:mod:`msmtrec.train.precision`).
        compile: run the model (training and evaluation) through ``torch.compile``; falls back to
            eager execution, with a note, if compiling fails.

    ``TrainConfig(**values)`` validates like :meth:`from_dict` (its messages start with ``config:``).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: StrictStr = "shared_bottom"
    model_params: dict[str, Any] = Field(default_factory=dict)
    data: StrictStr = "womens-ecommerce"
    preset: StrictStr | None = None
    seed: StrictInt = 2024
    batch_size: _Positive = 256
    eval_batch_size: _Positive = 16384
    lr: Annotated[StrictFloat, Field(gt=0)] = 1e-3
    weight_decay: Annotated[StrictFloat, Field(ge=0)] = 0.0
    max_epochs: _AtLeastOne = 20
    patience: _AtLeastOne = 3
    task_weights: dict[str, StrictFloat] | None = None
    weighting: StrictStr | None = None
    weighting_params: dict[str, Any] = Field(default_factory=dict)
    threads: _AtLeastOne | None = None
    device: StrictStr = "cpu"
    runs_root: StrictStr = "runs"
    run_dir: StrictStr | None = None
    row_limit: StrictInt | None = None
    deterministic: StrictBool = False
    streaming: StrictBool = False
    shuffle_buffer: _AtLeastOne = 262_144
    loggers: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)
    precision: Literal[PRECISIONS] = "fp32"  # type: ignore[valid-type]
    compile: StrictBool = False

    @field_validator("loggers")
    @classmethod
    def _each_logger_once(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))

    @model_validator(mode="wrap")
    @classmethod
    def _one_line_errors(cls, values: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """Wraps all validation, so ``TrainConfig(**values)`` and :meth:`from_dict` alike raise one
        ConfigError line (pydantic passes an exception that is not a ValueError through as is)."""
        try:
            return handler(values)
        except ValidationError as exc:
            source = (info.context or {}).get("source", "config")
            raise ConfigError(f"{source}: {explain(exc, cls, 'the config')}") from None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Validate ``d``; ``source`` starts every message (``"config run.yaml"``, ``"command line"``)."""
        return cls.model_validate(d, context={"source": source})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Load a YAML file of TrainConfig keys (an empty file gives the defaults)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        d = load_yaml(path, f"config {path}", ConfigError)
        return cls.from_dict({} if d is None else d, source=f"config {path}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied (keys this config leaves at their defaults stay
        unset, so a preset can still fill them)."""
        return self.from_dict({**self.model_dump(exclude_unset=True), **changes})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()
