"""The building blocks of the declared dataset spec: an immutable part that refuses undeclared
keys, and the value types its keys share (non-empty text, a column name, a list of distinct
column names)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Iterable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from msmtrec.declared import problem, show

__all__ = ["Column", "Columns", "Part", "Text", "first_duplicate", "unique"]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem("{at} must be a non-empty string, got {got}", got=show(value))
    return value


def _column(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # YAML reads a bare `301` as an integer; file headers are always text
    if not isinstance(value, str) or value == "":
        raise problem("{at} must be a column name, got {got}", got=show(value))
    return value


def _column_list(value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise problem("{at} must be a list of column names, got {got}", got=show(value))
    return value


def unique(columns: tuple[str, ...]) -> tuple[str, ...]:
    """``columns`` unchanged, or a problem naming the first one listed twice."""
    dup = first_duplicate(columns)
    if dup is not None:
        raise problem("{at} lists column '{dup}' twice", dup=dup)
    return columns


def first_duplicate(items: Iterable[Any]) -> Any:
    return next((x for x, n in Counter(items).items() if n > 1), None)


Text = Annotated[str, BeforeValidator(_text)]
Column = Annotated[str, BeforeValidator(_column)]
Columns = Annotated[tuple[Column, ...], BeforeValidator(_column_list), AfterValidator(unique)]


class Part(BaseModel):
    """A part of the spec: immutable, and a key it does not declare is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
