"""Declared model hyperparameters: a model's constructor annotations are the types of its options.

Every keyword of a model's ``__init__`` after ``schema`` is an option; its annotation says what
it takes, checked strictly before the model is built (``-p num_levels=abc`` is one line naming the
option, the expected type and the value, not a ``TypeError`` from deep inside torch). The
aliases below add the ranges sizes and rates share::

    def __init__(self, schema, embed_dim: Size = 16, expert_dims: Sizes = (128, 64),
                 num_shared: Count = 2, dropout: Rate = 0.0, gamma: Positive = 2.0) -> None:

Rules that span options (or need the schema) stay in the constructor, raising ``ValueError``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from typing import Annotated, Any, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from msmtrec.declared import explain
from msmtrec.errors import ConfigError

__all__ = ["Count", "NonNegative", "Positive", "Rate", "Size", "Sizes", "option_types", "validate_options"]

#: A width or a number of layers/experts/units that must exist: an integer ≥ 1.
Size = Annotated[int, Field(ge=1)]
#: Layer widths, each ≥ 1 (may be empty where no layer is a valid choice).
Sizes = Sequence[Size]
#: A number of experts that may be zero (another kind of expert remains): an integer ≥ 0.
Count = Annotated[int, Field(ge=0)]
#: A probability of dropping a unit: 0 ≤ p < 1.
Rate = Annotated[float, Field(ge=0, lt=1)]
#: A learning rate, temperature or exponent: > 0.
Positive = Annotated[float, Field(gt=0)]
#: A weight decay or penalty: ≥ 0.
NonNegative = Annotated[float, Field(ge=0)]


def _options(cls: type) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self, schema
    return [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


@functools.cache
def option_types(cls: type) -> type[BaseModel]:
    """A pydantic model of ``cls``'s options: one strict field per constructor keyword."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    fields: dict[str, Any] = {p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
                              for p in _options(cls)}
    return create_model(f"{cls.__name__}Options", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def validate_options(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked against ``cls``'s declared options; returns them validated.

    Raises:
        ConfigError: an option ``cls`` does not have (with the closest name), or a value of the
            wrong type or range, in one line naming the model, the option and the value.
    """
    name = getattr(cls, "name", cls.__name__)
    known = [p.name for p in _options(cls)]
    unknown = sorted(set(params) - set(known), key=str)
    if unknown:
        close = [repr(m[0]) for u in unknown if (m := difflib.get_close_matches(str(u), known, n=1))]
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"model '{name}' has no option(s) {', '.join(map(str, unknown))}{hint}; "
                          f"its options are: {', '.join(sorted(known)) or '(none)'}")
    model = option_types(cls)
    try:
        checked = model.model_validate(params)
    except ValidationError as exc:
        raise ConfigError(f"model '{name}': option {explain(exc, model, 'the options')}") from None
    return {k: getattr(checked, k) for k in params}
