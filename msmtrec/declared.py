"""Declared settings: pydantic models whose validation errors read as one line for a person.

A :class:`pydantic.ValidationError` never reaches the user. :func:`explain` turns its first
problem into ``<key path> must be <expected>, got <found>`` (``tasks[1].rule.op must be one of ==,
!=, >, >=, <, <=, got '=>'``), or ``unknown key '<path>' (did you mean '<key>'?) (allowed: ...)``;
the caller prefixes the file and raises its own :class:`~msmtrec.errors.MsmtrecError`. Validators
raise :func:`problem` for rules a type cannot say.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

__all__ = ["explain", "problem", "show"]

_PROBLEM = "msmtrec"
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping", "model_type": "a mapping",
    "list_type": "a list", "tuple_type": "a list", "sequence_str": "a list",
}
_UNKNOWN_KEY = ("extra_forbidden", "invalid_key")  # a key that is not declared, or not even text
_BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}


def problem(template: str, **values: Any) -> PydanticCustomError:
    """An error for a validator to raise: ``template`` with ``{name}`` filled from ``values``, and
    ``{at}`` standing for the key path of the value being validated (``files.split``), so that a
    nested model need not know where it sits."""
    return PydanticCustomError(_PROBLEM, template, values or None)


def show(value: Any) -> str:
    """A short, typed rendering of a bad value: ``'abc'``, ``[1, 2] (list)``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if isinstance(value, str) else f"{text} ({type(value).__name__})"


def explain(exc: ValidationError, model: type[BaseModel], root: str) -> str:
    """The first problem of ``exc`` (an unknown key before anything else) as one line.

    ``model`` is the class that was validated; ``root`` names the whole document in messages about
    it (``"the spec"``).
    """
    errors = exc.errors(include_url=False)
    err = next((e for e in errors if e["type"] in _UNKNOWN_KEY), errors[0])
    tag = _union_tag(model, err["loc"])
    if tag is not None:
        err = _within_union(errors, err["loc"][:tag + 1])
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx") or {}
    path, declared = _follow(model, loc)
    if kind == "union":
        return f"{path or root} must be {err['msg']}, got {show(err['input'])}"
    if kind == _PROBLEM:
        return err["msg"].replace("{at}", path)
    if kind in _UNKNOWN_KEY or kind == "missing":
        parent, owner = _follow(model, loc[:-1])
        if kind == "missing":
            return f"{parent or root} is missing required key '{loc[-1]}'"
        allowed = tuple(_bare(owner).model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{path}'{hint} (allowed: {', '.join(allowed)})"
    got = show(err["input"])
    if kind in _EXPECTED:
        expected = f"must be {_EXPECTED[kind]}"
    elif kind == "literal_error":
        expected = f"must be one of {', '.join(map(str, get_args(_bare(declared))))}"
    elif kind == "too_short" and ctx["min_length"] == 1:
        expected = "must be a non-empty list"
    elif kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = f"{ctx[key]:g}" if isinstance(ctx[key], float) else ctx[key]
        expected = "must be positive" if kind == "greater_than" and ctx[key] == 0 else f"must be {words} {bound}"
        got = repr(err["input"])  # the type is right, only the size is not
    else:  # a check pydantic knows by a name not listed above: keep its own words
        expected = f"is invalid ({err['msg'][0].lower()}{err['msg'][1:]})"
    return f"{path or root} {expected}, got {got}"


def _bare(tp: Any) -> Any:
    """``tp`` without ``Annotated`` metadata and without ``| None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _union(tp: Any) -> bool:
    """``tp`` is a union of several types (not merely ``X | None``)."""
    tp = _bare(tp)
    return get_origin(tp) is Union or get_origin(tp) is types.UnionType


def _union_tag(model: type[BaseModel], loc: tuple[Any, ...]) -> int | None:
    """The position in ``loc`` of the name pydantic gives the member of a union it tried, if any."""
    for i in range(1, len(loc)):
        if isinstance(loc[i], str) and _union(_follow(model, loc[:i])[1]):
            return i
    return None


def _within_union(errors: list[dict[str, Any]], at: tuple[Any, ...]) -> dict[str, Any]:
    """One error for the union value at ``at[:-1]`` (``at[-1]`` is a member's tag): the deepest
    problem inside a member the value has the shape of, else a range problem of one, else that
    it is none of the members (kind ``union``, the members' types as ``msg``)."""
    tried = [e for e in errors if e["loc"][:len(at) - 1] == at[:-1] and len(e["loc"]) >= len(at)]
    deepest = max(tried, key=lambda e: (len(e["loc"]), e["type"] in _BOUNDS))
    if len(deepest["loc"]) > len(at) or deepest["type"] in _BOUNDS:
        return {**deepest, "loc": at[:-1] + deepest["loc"][len(at):]}
    kinds = dict.fromkeys(_EXPECTED.get(e["type"]) or _instance_of(e) for e in tried)
    return {"type": "union", "loc": at[:-1], "msg": " or ".join(kinds), "input": deepest["input"]}


def _instance_of(err: dict[str, Any]) -> str:
    cls = str((err.get("ctx") or {}).get("class", ""))
    return "a list" if cls in ("Sequence", "list", "tuple") else f"a {cls or 'value of another type'}"


def _follow(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, Any]:
    """``loc`` written as a key path (``tasks[1].rule.op``, ``scenario.mapping['Tops']``) and the
    type declared there (``None`` past an undeclared key)."""
    path, tp = "", model
    for part in loc:
        tp = _bare(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and str(part).isprintable():
            path += f".{part}" if path else str(part)
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
            continue
        path += f"[{part}]" if isinstance(part, int) else f"[{part!r}]"
        args = get_args(tp)
        tp = args[-1] if get_origin(tp) is dict else args[0] if args else None
    return path, tp

