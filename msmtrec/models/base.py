"""The model contract and the registry.

Every model is an :class:`MSMTModel`: it is built from a :class:`~msmtrec.data.DataSchema` plus
keyword hyperparameters (with the paper's defaults), receives a batch (:class:`EncodedData`) and
returns, for every sample, the prediction of every task *for that sample's own scenario*.

The trainer only talks to a model through the methods below, so a model that needs something
special (entire-space losses, a two-stage schedule, extra evaluation targets) overrides a method
instead of the trainer growing a special case:

- ``forward(batch)`` → model output (default: logits ``[B, T]``);
- ``probabilities(output)`` → ``[B, T]`` probabilities, in the schema's task order;
- ``task_losses(output, batch)`` → ``[L]`` one loss per entry of ``loss_names`` (default: masked
  BCE per task — a missing label is masked, never treated as 0);
- ``aux_loss(output)`` → an unweighted extra term (regularisers) or ``None``;
- ``eval_targets(output, batch)`` → what to evaluate: name → ``(prediction, label, mask)``;
- ``comparable_target(task)`` → the name of the evaluation target that scores ``task`` on the same
  rows and labels as every other model (default: the task itself); runs record it and
  ``msmtrec bench`` compares models on it;
- ``training_stages(config)`` → a list of :class:`~msmtrec.models.stages.Stage`, or ``None`` for
  the trainer's default (one stage);
- ``shared_layer()`` → the shared parameter GradNorm measures gradient norms on, or
  ``(parameter, rows)`` when the shared layer is the slice ``rows`` of a bank's parameter;
- ``snapshot()`` → a deep copy of the weights (the trainer keeps the best epoch's with it);
- ``extra_report(data, run_dir)`` → model-specific findings for ``metrics.json`` (a ``summary`` string in
  it is printed after training instead of stored);
- ``default_weighting`` (class attribute, ``"fixed"``) → the task weighting used when the run
  config names none;
- ``presets`` (class attribute, name → :class:`Preset`) → named training settings (``--preset``),
  e.g. the official code's or the paper's, applied by :func:`resolve_preset`;
- ``notes`` (list of str, empty unless the model adds to it) → lines the trainer logs at the start
  (e.g. disabled branches);
- ``inputs`` (class attribute) → where the model sends its embedded row: every model reads its
  input through one :class:`~msmtrec.nn.FeatureEmbedding` (field embeddings, numeric features and
  one pooled vector per ``multi_categorical`` and sequence, side by side), so list and sequence
  features reach every model without model code; ``msmtrec models`` prints it;
- ``may_skip_parameters`` (class attribute, False) → True when a training step can leave a
  trainable parameter without a gradient (a module run only on some scenarios' rows, skipped when
  the batch has none): data-parallel training then looks for such parameters every step.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from msmtrec.config import TrainConfig
from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.errors import ConfigError
from msmtrec.models.options import validate_options
from msmtrec.models.stages import Stage
from msmtrec.nn.embedding import FeatureEmbedding

MODELS: dict[str, type["MSMTModel"]] = {}


def register_model(name: str):
    """Class decorator adding a model to the registry under ``name`` (the CLI/config name)."""

    def deco(cls: type[MSMTModel]) -> type[MSMTModel]:
        if name in MODELS and MODELS[name] is not cls:
            raise RuntimeError(f"model name '{name}' registered twice")
        cls.name = name
        MODELS[name] = cls
        return cls

    return deco


def get_model_class(name: str) -> type["MSMTModel"]:
    try:
        return MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name).lower(), list(MODELS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}{hint}") from None


def build_model(name: str, schema: DataSchema, params: dict[str, Any] | None = None) -> "MSMTModel":
    """Instantiate a registered model, rejecting hyperparameters it does not have."""
    return get_model_class(name).from_params(schema, params or {})


@dataclass(frozen=True)
class Preset:
    """Named training settings of a model: ``settings`` are :class:`~msmtrec.config.TrainConfig`
    keys (``model_params`` among them), ``source`` says where they come from (paper section,
    code file and flag)."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def describe(self) -> str:
        """``key=value, ...`` of the settings, model parameters flattened (for ``msmtrec models``)."""
        items = {k: v for k, v in self.settings.items() if k != "model_params"}
        items.update(self.settings.get("model_params", {}))
        return ", ".join(f"{k}={v!r}".replace(", ", ",") for k, v in items.items())  # a value never wraps


def resolve_preset(config: TrainConfig) -> TrainConfig:
    """``config`` with the settings of its model's preset ``config.preset`` filled in wherever the
    config does not set the key itself (a key set explicitly — in the config file, on the command
    line or in the constructor — wins; ``model_params`` are merged key by key). No preset: the
    config as it is. An unknown preset is a :class:`ConfigError` naming the model's presets."""
    if config.preset is None:
        return config
    cls = get_model_class(config.model)
    preset = cls.presets.get(config.preset)
    if preset is None:
        raise ConfigError(f"model '{cls.name}' has no preset '{config.preset}'; its presets: "
                          f"{', '.join(sorted(cls.presets)) or '(none)'}")
    explicit = config.model_dump(exclude_unset=True)
    merged = {**preset.settings, **explicit,
              "model_params": {**preset.settings.get("model_params", {}), **explicit.get("model_params", {})}}
    return TrainConfig.from_dict(merged, source=f"preset '{config.preset}' of model '{cls.name}'")


def model_hyperparameters(cls: type["MSMTModel"]) -> dict[str, Any]:
    """Constructor keyword arguments with their defaults (what a config may set)."""
    out = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[2:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


class MSMTModel(nn.Module):
    """Base class of every multi-scenario multi-task model (see the module docstring)."""

    name: ClassVar[str] = "?"
    default_weighting: ClassVar[str] = "fixed"
    presets: ClassVar[dict[str, Preset]] = {}
    may_skip_parameters: ClassVar[bool] = False
    inputs: ClassVar[str] = "?"

    def __init__(self, schema: DataSchema) -> None:
        super().__init__()
        self.schema = schema
        self.num_scenarios = schema.num_scenarios
        self.num_tasks = schema.num_tasks
        self.notes: list[str] = []

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_params(cls, schema: DataSchema, params: dict[str, Any]) -> "MSMTModel":
        """The model with ``params`` checked against its declared options (:mod:`~msmtrec.models.options`)."""
        params = validate_options(cls, params)
        try:
            return cls(schema, **params)
        except (TypeError, ValueError) as e:
            # One line, whatever value the message quotes (an option given as a line break).
            one_line = str(e).replace("\r", "\\r").replace("\n", "\\n")
            raise ConfigError(f"model '{cls.name}': {one_line}") from None

    @staticmethod
    def make_embedding(schema: DataSchema, dim: int) -> FeatureEmbedding:
        return FeatureEmbedding.for_schema(schema, dim)

    # -- the contract -------------------------------------------------------------------------------
    def forward(self, batch: EncodedData) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def probabilities(self, output: Any) -> torch.Tensor:
        return torch.sigmoid(output)

    @property
    def loss_names(self) -> list[str]:
        return list(self.schema.tasks)

    def task_losses(self, output: Any, batch: EncodedData) -> torch.Tensor:
        return masked_bce_with_logits(output, batch.labels, batch.label_mask)

    def aux_loss(self, output: Any) -> torch.Tensor | None:
        return None

    def eval_targets(self, output: Any, batch: EncodedData) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        p = self.probabilities(output)
        return {t: (p[:, i], batch.labels[:, i], batch.label_mask[:, i]) for i, t in enumerate(self.schema.tasks)}

    def comparable_target(self, task: str) -> str:
        return task

    def training_stages(self, config: Any) -> list[Stage] | None:
        return None

    def shared_layer(self) -> torch.Tensor | tuple[torch.Tensor, slice] | None:
        return None

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A deep copy of the weights and buffers (``state_dict``), for rewinding or restoring."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def extra_report(self, data: EncodedData, run_dir: Any) -> dict:
        """Model-specific findings written to ``metrics.json`` after training (default: none)."""
        return {}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def masked_bce_with_logits(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-task mean BCE over observed labels only: ``[B, T]`` → ``[T]``.

    A task with no observed label in the batch contributes 0 (and no gradient)."""
    # The label under a False mask is meaningless (possibly NaN): zero it so 0·NaN never leaks in.
    labels = torch.where(mask, labels, torch.zeros_like(labels))
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    m = mask.to(loss.dtype)
    return (loss * m).sum(0) / m.sum(0).clamp_min(1.0)


def masked_bce(probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Like :func:`masked_bce_with_logits` for probabilities composed in probability space
    (entire-space models): clamps to ``[eps, 1 - eps]`` before the log."""
    p = probs.clamp(eps, 1 - eps)
    labels = torch.where(mask, labels, torch.zeros_like(labels))
    loss = -(labels * torch.log(p) + (1 - labels) * torch.log1p(-p))
    m = mask.to(loss.dtype)
    return (loss * m).sum(0) / m.sum(0).clamp_min(1.0)
