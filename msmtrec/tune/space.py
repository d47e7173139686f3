"""The search space of ``msmtrec tune``: a YAML file declaring, for some training settings and
some of the model's hyperparameters, the range a trial draws them from. Everything it does not
name comes from the base config (``--config`` and the command line).

.. code-block:: yaml

    lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    batch_size: {type: categorical, choices: [128, 256, 512]}
    weighting: {type: categorical, choices: [fixed, uncertainty]}
    model_params:
      embed_dim: {type: int, low: 4, high: 16, step: 4}
      tower_dims: {type: categorical, choices: [[16], [32, 16]]}

A range is ``int`` or ``float`` (``low``/``high`` inclusive, optional ``step`` or ``log``) or
``categorical`` (``choices``: any YAML values, lists included). The keys are declared: the
training settings :data:`TRAINING_KEYS`, ``model_params`` the model's own hyperparameters,
``weighting_params`` the weighting's options; a key that is not one of them is the usual one-line
error (``space space.yaml: unknown key 'model_params.embed' (did you mean 'embed_dim'?) ...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError,
                      create_model, model_validator)

from msmtrec.declared import explain, problem
from msmtrec.errors import ConfigError
from msmtrec.yaml_io import load_yaml

__all__ = ["Range", "SearchSpace", "TRAINING_KEYS", "load_space"]

# The training settings a trial may vary (the others say where and how fast, not what is learnt).
TRAINING_KEYS = ("lr", "weight_decay", "batch_size", "max_epochs", "patience", "weighting")
_Number = StrictInt | StrictFloat


class Range(BaseModel):
    """Where one setting is drawn from (Optuna's ``suggest_int/float/categorical``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int", "float", "categorical"]
    low: _Number | None = None
    high: _Number | None = None
    step: _Number | None = Field(default=None, gt=0)
    log: StrictBool = False
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Range:
        if self.type == "categorical":
            if self.choices is None:
                raise problem("{at} is categorical: it needs choices")
            if (self.low, self.high, self.step) != (None, None, None) or self.log:
                raise problem("{at} is categorical: low, high, step and log are for int and float ranges")
            labels = [self.label(c) for c in self.choices]
            if len(set(labels)) != len(labels):
                raise problem("{at}.choices has the same choice twice")
            return self
        kind = "an int" if self.type == "int" else "a float"
        if self.choices is not None:
            raise problem("{at} is {kind} range: choices are for categorical", kind=kind)
        if self.low is None or self.high is None:
            raise problem("{at} is {kind} range: it needs low and high", kind=kind)
        if self.type == "int" and not all(isinstance(v, int) for v in (self.low, self.high, self.step or 1)):
            raise problem("{at} is an int range: low, high and step must be integers")
        if self.low > self.high:
            raise problem("{at}.low must be at most high, got low {low} > high {high}", low=self.low, high=self.high)
        if self.log and (self.step is not None or self.low <= 0):
            raise problem("{at}: a log range needs low > 0 and no step")
        return self

    @staticmethod
    def label(choice: Any) -> Any:
        """How Optuna stores a choice: scalars as they are, a list or mapping as its JSON text."""
        return choice if choice is None or isinstance(choice, (bool, int, float, str)) else json.dumps(choice)

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw the value of setting ``name`` for an Optuna ``trial``."""
        if self.type == "categorical":
            labels = [self.label(c) for c in self.choices]
            return self.choices[labels.index(trial.suggest_categorical(name, labels))]
        suggest = trial.suggest_int if self.type == "int" else trial.suggest_float
        if self.type == "int":
            return suggest(name, self.low, self.high, step=self.step or 1, log=self.log)
        return suggest(name, float(self.low), float(self.high), step=self.step, log=self.log)

    def value(self, stored: Any) -> Any:
        """The setting's value from what Optuna stored for it (a choice's label)."""
        if self.type != "categorical":
            return stored
        return self.choices[[self.label(c) for c in self.choices].index(stored)]

    def ends(self) -> tuple[Any, Any]:
        """The lowest and highest values (first and last choice)."""
        return (self.choices[0], self.choices[-1]) if self.type == "categorical" else (self.low, self.high)


class SearchSpace:
    """A validated space: ``ranges`` maps the names Optuna sees (``lr``, ``model_params.embed_dim``)
    to their :class:`Range`."""

    def __init__(self, ranges: dict[str, Range]) -> None:
        self.ranges = ranges

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {name: r.suggest(trial, name) for name, r in self.ranges.items()}

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """Settings from a trial's stored parameters."""
        return {name: self.ranges[name].value(v) for name, v in params.items() if name in self.ranges}

    def ends(self) -> list[dict[str, Any]]:
        """The space's two corners: every setting at its low end, and at its high end."""
        return [{name: r.ends()[i] for name, r in self.ranges.items()} for i in (0, 1)]

    def to_dict(self) -> dict[str, Any]:
        return {name: r.model_dump(exclude_none=True, exclude_defaults=True) | {"type": r.type}
                for name, r in self.ranges.items()}


def apply(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``config`` (a TrainConfig dict) with the drawn ``settings`` in place."""
    out = {**config, "model_params": dict(config["model_params"]), "weighting_params": dict(config["weighting_params"])}
    for name, value in settings.items():
        group, _, key = name.partition(".")
        if key:
            out[group][key] = value
        else:
            out[name] = value
    return out


def _document(model_keys: list[str]) -> type[BaseModel]:
    """The declared space for a model with hyperparameters ``model_keys``."""
    strict = ConfigDict(extra="forbid")
    params = create_model("ModelParams", __config__=strict, **{k: (Range | None, None) for k in model_keys})
    fields: dict[str, Any] = {k: (Range | None, None) for k in TRAINING_KEYS}
    fields.update(model_params=(params | None, None), weighting_params=(dict[str, Range], {}))
    return create_model("Space", __config__=strict, **fields)


def load_space(path: str | Path, model: str) -> SearchSpace:
    """Read and validate the space in ``path`` for ``model``; a ConfigError names the key at fault."""
    from msmtrec.models import get_model_class, model_hyperparameters

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path} does not exist")
    what = f"space {path}"
    raw = load_yaml(path, what, ConfigError)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{what}: expected a mapping of settings to ranges (see msmtrec tune --help)")
    document = _document(list(model_hyperparameters(get_model_class(model))))
    try:
        doc = document.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{what}: {explain(exc, document, 'the space')}") from None
    ranges = {k: getattr(doc, k) for k in TRAINING_KEYS if getattr(doc, k) is not None}
    if doc.model_params is not None:
        ranges.update({f"model_params.{k}": v for k, v in doc.model_params if v is not None})
    ranges.update({f"weighting_params.{k}": v for k, v in doc.weighting_params.items()})
    if not ranges:
        raise ConfigError(f"{what}: it names no setting to search")
    return SearchSpace(ranges)
