"""Task-weighting strategies: how the per-loss values of a model become one scalar to backprop.

A strategy sees the vector of losses (``model.loss_names`` order) each step and returns the
total; it may keep its own learnable weights and optimiser (``after_step``). Strategies are
looked up by name in :data:`WEIGHTINGS`, so every model can use every strategy.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch

from msmtrec.errors import ConfigError

WEIGHTINGS: dict[str, type["TaskWeighting"]] = {}


def register_weighting(name: str):
    def deco(cls: type[TaskWeighting]) -> type[TaskWeighting]:
        cls.name = name
        WEIGHTINGS[name] = cls
        return cls

    return deco


class TaskWeighting:
    """Base strategy. Subclasses implement :meth:`combine` and may override the rest."""

    name: ClassVar[str] = "?"

    def __init__(self, loss_names: list[str], model: torch.nn.Module, initial: dict[str, float] | None = None) -> None:
        self.loss_names = list(loss_names)
        self.model = model
        initial = dict(initial or {})
        unknown = sorted(set(initial) - set(self.loss_names))
        if unknown:
            raise ConfigError(f"task_weights: unknown loss name(s) {', '.join(unknown)}; losses are {', '.join(self.loss_names)}")
        self.initial = torch.tensor([float(initial.get(n, 1.0)) for n in self.loss_names])

    def combine(self, losses: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after the model's optimiser step (learnable strategies update here)."""

    def weights(self) -> dict[str, float]:
        return {n: float(w) for n, w in zip(self.loss_names, self.initial)}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register_weighting("fixed")
class FixedWeighting(TaskWeighting):
    """``Σ_i w_i L_i`` with constant weights (``task_weights`` in the config, default 1)."""

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.initial.to(losses.device) * losses).sum()


def build_weighting(name: str, loss_names: list[str], model: torch.nn.Module, initial: dict[str, float] | None,
                    params: dict[str, Any] | None) -> TaskWeighting:
    try:
        cls = WEIGHTINGS[name]
    except KeyError:
        raise ConfigError(f"unknown weighting '{name}'; available: {', '.join(sorted(WEIGHTINGS))}") from None
    params = dict(params or {})
    allowed = set(list(inspect.signature(cls.__init__).parameters)[4:])
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"weighting '{name}' has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(allowed)) or '(none)'}")
    return cls(loss_names, model, initial, **params)
