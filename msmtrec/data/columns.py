"""Raw column normalisation shared by fitting and encoding: one rule per kind of value, so that a
column read from CSV in one file and from Parquet in another compares equal value by value."""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.errors import DataError

Column = pa.ChunkedArray | pa.Array


def plain(col: Column) -> Column:
    """Dictionary-encoded columns (Parquet written from pandas ``category``) as their values."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def nan_to_null(col: Column) -> Column:
    if pa.types.is_floating(col.type):
        return pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    return col


def as_ids(col: Column) -> Column:
    """A categorical column as ``int64`` (integers, booleans, integral floats) or text (the rest),
    with blank text (empty or only spaces) missing, as a CSV's empty field and a list's blank entry are.

    Two types only, so that columns read from different files (CSV vs Parquet, int32 vs int64)
    compare equal value by value. Null-typed (all-missing) columns are returned as they are.
    """
    col = nan_to_null(plain(col))
    t = col.type
    if pa.types.is_null(t) or t == pa.int64():
        return col
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t):
        try:
            # Safe cast: fails (rather than rounds) on fractions and on uint64 above 2**63.
            return pc.cast(col, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    try:
        text = col if t == pa.string() else pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column of type {t} cannot be used as categories: {exc}") from None
    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""), pa.scalar(None, pa.string()), text)


def is_list_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of Arrow's list types (list, large list, fixed-size list)."""
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def sum_by_value(parts: list[pa.Table]) -> pa.Table | None:
    """Chunks' tables of a value column ``v`` and count columns, the counts summed per value and
    sorted by it (numeric order for integers; as text when the chunks disagree on its type). A part
    whose ``v`` is typed null (no value at all) is left out; None when no part is left."""
    parts = [p for p in parts if not pa.types.is_null(p.schema.field("v").type)]
    if not parts:
        return None
    if len({p.schema.field("v").type for p in parts}) > 1:
        parts = [p.set_column(0, "v", pc.cast(p.column("v"), pa.string())) for p in parts]
    merged = pa.concat_tables(parts).group_by("v").aggregate([(c, "sum") for c in parts[0].column_names[1:]])
    return merged.sort_by("v").rename_columns([n.removesuffix("_sum") for n in merged.column_names])


def exact_ints(col: Column) -> Column:
    """Text ids as ``int64`` when every value is an integer written the one way ``int64`` prints it,
    else the text unchanged: a float guess would merge distinct ids above 2**53, and ``"00123"``,
    ``"0123"`` and ``"123"`` (zip codes, product codes) are three ids, not one. An integer with a zero
    fraction (``"123.0"``: pandas writes an integer column with missing values so) is that integer,
    as the same column's float64 in Parquet is (:func:`as_ids`)."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return col
    ints = _written_as_int64(col)
    if ints is None and pc.any(pc.match_substring(col, ".0")).as_py() and \
            pc.all(pc.match_substring_regex(col, r"^-?[0-9]+(\.0+)?$")).as_py():
        ints = _written_as_int64(pc.replace_substring_regex(col, r"\.0+$", ""))
    return col if ints is None else ints


def _written_as_int64(col: Column) -> Column | None:
    """``col`` as ``int64`` if every value is an integer as ``int64`` prints it, else None."""
    try:
        ints = pc.cast(col, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # Of the literals the cast accepts, those int64 prints otherwise: "+7", "-0…", "0…" but "0".
    written_otherwise = pc.or_(pc.or_(pc.starts_with(col, "+"), pc.starts_with(col, "-0")),
                               pc.and_(pc.starts_with(col, "0"), pc.not_equal(col, "0")))
    return None if pc.any(written_otherwise).as_py() else ints


def text_numbers(text: Column, decimal: str = ".") -> Column:
    """Numbers written as text (a CSV's, or a Parquet string column's) as ``float64``: spaces around
    a value ignored, ``decimal`` read as the decimal mark, ``true``/``false`` as 1/0 (as a CSV
    reader types them), blank as missing. The text comes back unchanged when a value is not a
    number, for :func:`as_float` to name."""
    numbers = pc.utf8_trim_whitespace(text)
    numbers = pc.if_else(pc.equal(numbers, ""), pa.scalar(None, pa.string()), numbers)
    if decimal != ".":
        numbers = pc.replace_substring(numbers, decimal, ".")
    for via in (pa.float64(), pa.bool_()):
        try:
            return pc.cast(pc.cast(numbers, via), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return text


def as_float(col: Column, what: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values."""
    col = plain(col)
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise DataError(f"{what} has type {t}; expected numbers")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        col = text_numbers(col)  # as a CSV's numbers are read; unchanged text fails the cast below
    try:  # integers beyond 2**53 become the nearest float (a number is a number); text must parse
        col = pc.cast(col, pa.float64(), safe=not (pa.types.is_integer(t) or pa.types.is_decimal(t)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        found = unparsable(col)
        comma = any(re.fullmatch(r"[+-]?[0-9]+,[0-9]+", v) for v in found)
        hint = "; a decimal comma (1,5) in a CSV file is read with files.csv.decimal: ','" if comma else ""
        raise DataError(f"{what} must hold numbers, found values {found} (texts that mean a missing value "
                        f"in a CSV file go in files.csv.null_values{hint})") from None
    return np.asarray(col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array) else col.to_numpy(),
                      dtype=np.float64)


def unparsable(col: Column, limit: int = 5) -> list[str]:
    """A few text values that do not parse as numbers, for an error message."""
    out = []  # error path only: a loop over distinct values is fine here
    for value in pc.unique(col.drop_null()).to_pylist():
        try:
            float(value)
        except (TypeError, ValueError):
            out.append(value)
            if len(out) == limit:
                break
    return out


def present(col: Column) -> Column:
    """Bool per row: the value is neither missing nor blank text (what "has a scenario" means)."""
    return pc.is_valid(as_ids(col))


def missing_columns(name: str, missing: Sequence[str], have: Sequence[str]) -> str:
    """``"NAME is missing column(s) 'a' (available: 'x', 'y', ... (3 more))"``, for a message."""
    more = f", ... ({len(have) - 8} more)" if len(have) > 8 else ""
    return (f"{name} is missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(available: {', '.join(repr(c) for c in have[:8])}{more})")


def shown(values: Sequence[Any], limit: int = 8) -> str:
    """``values`` for a message: the first ``limit`` and how many more."""
    head = list(values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{head}{more}"
