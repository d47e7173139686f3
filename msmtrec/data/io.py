"""Reading raw tables (CSV or Parquet) into :class:`pyarrow.Table`, columnar and typed, and
dividing one table into splits.

Identifier columns are the reason this module exists: a CSV reader that guesses types (pandas, or
pyarrow on a column whose first block looks numeric) may turn ``1099511627777`` into a float, and
float32 or float64 silently merge distinct ids above 2**24 or 2**53. Columns named in
``id_columns`` are therefore parsed as text and converted to ``int64`` exactly when every value is
an integer; otherwise they stay text. No id ever passes through a float.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from msmtrec.errors import DataError

__all__ = ["detect_format", "read_table", "split_indices", "split_table"]

#: The splits of a dataset, in order.
SPLITS = ("train", "val", "test")
#: Default train/val/test fractions of a single file.
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
#: Default train/val fractions when validation rows are carved out of a train file.
DEFAULT_VAL_FRACTIONS = (0.9, 0.1)
#: Default seed of a random split.
DEFAULT_SPLIT_SEED = 2024

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    """The format of ``path``: ``fmt`` itself unless it is ``"auto"``, else from the extension.

    A directory is read as a Parquet dataset. Compressed CSVs (``.csv.gz``, ...) are CSV.

    Raises
    ------
    DataError
        ``fmt`` is unknown, or ``"auto"`` cannot tell the format from the name.
    """
    if fmt in ("csv", "parquet"):
        return fmt
    if fmt != "auto":
        raise DataError(f"unknown file format {fmt!r} for {path}; use auto, csv or parquet")
    p = Path(path)
    if p.is_dir():
        return "parquet"
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _CSV_SUFFIXES:
        return "csv"
    if last in _PARQUET_SUFFIXES:
        return "parquet"
    raise DataError(f"cannot tell the format of {p.name} from its extension; set files.format to csv or parquet")


def read_table(path: str | Path, columns: Sequence[str] | None = None, fmt: str = "auto", *,
               id_columns: Iterable[str] = (), row_limit: int | None = None) -> pa.Table:
    """Read ``columns`` of a CSV or Parquet file.

    Parameters
    ----------
    path:
        A ``.csv``/``.tsv`` (optionally compressed) or ``.parquet`` file, or a folder of Parquet
        files.
    columns:
        Columns to read, in this order; ``None`` reads all of them.
    fmt:
        ``"auto"`` (from the extension), ``"csv"`` or ``"parquet"``.
    id_columns:
        Identifier columns: in a CSV they are parsed as text and become ``int64`` when every value
        is an integer (exactly, beyond 2**53), else stay text. Parquet keeps its stored types.
    row_limit:
        Read at most this many rows from the start of the file.

    Returns
    -------
    pyarrow.Table
        Empty CSV fields and the usual null markers (``NA``, ``null``, ...) are nulls, also in text
        columns.

    Raises
    ------
    DataError
        The file does not exist or cannot be parsed, or some ``columns`` are missing (the message
        names the file and the missing columns and lists some available ones).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    if row_limit is not None and row_limit < 0:
        raise DataError(f"row_limit must be non-negative, got {row_limit}")
    kind = detect_format(p, fmt)
    cols = None if columns is None else list(dict.fromkeys(columns))
    if kind == "parquet":
        return _read_parquet(p, cols, row_limit)
    return _read_csv(p, cols, set(id_columns), row_limit)


def _read_parquet(path: Path, columns: list[str] | None, row_limit: int | None) -> pa.Table:
    try:
        if path.is_dir():
            schema_names = pq.ParquetDataset(path).schema.names
        else:
            schema_names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path.name} as Parquet: {_first_line(exc)}") from None
    if columns is not None:
        _check_columns(path, columns, schema_names)
    try:
        if row_limit is not None and not path.is_dir():
            # Stream batches so a quick run on a huge file reads only its head.
            pf = pq.ParquetFile(path)
            batches, n = [], 0
            for batch in pf.iter_batches(batch_size=min(max(row_limit, 1), 65536), columns=columns):
                batches.append(batch)
                n += batch.num_rows
                if n >= row_limit:
                    break
            schema = pf.schema_arrow if columns is None else pa.schema([pf.schema_arrow.field(c) for c in columns])
            table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
            return table.slice(0, row_limit)
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path.name} as Parquet: {_first_line(exc)}") from None
    return table if row_limit is None else table.slice(0, row_limit)


def _read_csv(path: Path, columns: list[str] | None, id_columns: set[str], row_limit: int | None) -> pa.Table:
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    parse = pacsv.ParseOptions(delimiter=delimiter)
    header = _csv_header(path, parse)
    if columns is not None:
        _check_columns(path, columns, header)
    wanted = columns if columns is not None else header
    # Ids are parsed as text and converted exactly below; an int64 guess by the reader would
    # be fine, but a float guess (one decimal point, or a value above 2**63) would not.
    types = {c: pa.string() for c in wanted if c in id_columns}
    convert = pacsv.ConvertOptions(include_columns=wanted, column_types=types, strings_can_be_null=True)
    try:
        if row_limit is None:
            table = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
        else:
            table = _read_csv_head(path, parse, convert, row_limit)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot parse {path.name} as CSV: {_first_line(exc)}") from None
    for name in types:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, _ids_to_int64(table.column(name)))
    return table


def _read_csv_head(path: Path, parse: pacsv.ParseOptions, convert: pacsv.ConvertOptions, row_limit: int) -> pa.Table:
    reader = pacsv.open_csv(path, parse_options=parse, convert_options=convert)
    batches, n = [], 0
    while n < row_limit:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        batches.append(batch)
        n += batch.num_rows
    table = pa.Table.from_batches(batches, schema=reader.schema) if batches else reader.schema.empty_table()
    return table.slice(0, row_limit)


def _csv_header(path: Path, parse: pacsv.ParseOptions) -> list[str]:
    """Column names of a CSV file, reading only its first block."""
    try:
        reader = pacsv.open_csv(path, parse_options=parse, read_options=pacsv.ReadOptions(block_size=1 << 16))
        return list(reader.schema.names)
    except (pa.ArrowException, OSError) as exc:
        # Only the first block is parsed; a failure here is a malformed or empty file.
        raise DataError(f"cannot parse {path.name} as CSV: {_first_line(exc)}") from None


def _ids_to_int64(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text ids → int64 when every non-null value is an integer literal, else unchanged text."""
    try:
        return pc.cast(column, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column


def _check_columns(path: Path, columns: Sequence[str], available: Sequence[str]) -> None:
    have = set(available)
    missing = [c for c in columns if c not in have]
    if not missing:
        return
    hints = []
    for c in missing:
        close = difflib.get_close_matches(c, list(available), n=1)
        if close:
            hints.append(f"'{c}' → '{close[0]}'?")
    shown = ", ".join(f"'{a}'" for a in list(available)[:8])
    more = f", ... ({len(available) - 8} more)" if len(available) > 8 else ""
    hint = f"; did you mean {', '.join(hints)}" if hints else ""
    raise DataError(f"{path.name} is missing column(s) {', '.join(repr(c) for c in missing)} "
                    f"(available: {shown}{more}){hint}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def split_indices(n: int, fractions: Sequence[float], *, seed: int | None = None,
                  order: np.ndarray | None = None) -> list[np.ndarray]:
    """Divide row positions ``0..n-1`` into consecutive parts of the given fractions.

    Parameters
    ----------
    n:
        Number of rows.
    fractions:
        Fraction per part, summing to 1. Part sizes are rounded cumulatively, so they add up to
        ``n`` exactly.
    seed:
        Random split: the parts are cut from ``numpy.random.default_rng(seed).permutation(n)``.
    order:
        Time split: row positions sorted oldest first; the parts are cut from it in that order.

    Returns
    -------
    list of numpy.ndarray
        Disjoint int64 row positions per part, covering every row. Within a random part the rows
        keep their file order (shuffling is the batcher's job); a time part is in time order.
    """
    if (seed is None) == (order is None):
        raise ValueError("give exactly one of seed (random split) or order (time split)")
    if order is None:
        perm = np.random.default_rng(seed).permutation(n)
    else:
        perm = np.asarray(order, dtype=np.int64)
    cuts = [int(math.floor(c * n + 0.5)) for c in np.cumsum(fractions)[:-1]]
    parts = np.split(perm, cuts)
    return [np.sort(p) if order is None else p for p in parts]


def split_table(table: pa.Table, fractions: Sequence[float], *, method: str = "random", seed: int | None = None,
                column: str | None = None, source: str = "table") -> list[pa.Table]:
    """Split ``table`` into parts (train, val[, test]) by seeded permutation or by time.

    Parameters
    ----------
    table:
        The rows to split.
    fractions:
        Fraction of rows per part, summing to 1.
    method:
        ``"random"`` (needs ``seed``) or ``"time"`` (needs ``column``; oldest rows → first part).
    seed:
        Seed of the random permutation.
    column:
        Time column; any orderable type (numbers, timestamps, ISO dates as text).
    source:
        How to call ``table`` in messages.

    Raises
    ------
    DataError
        The time column has missing values.
    """
    n = table.num_rows
    if method == "random":
        parts = split_indices(n, fractions, seed=seed if seed is not None else 0)
    elif method == "time":
        if column is None:
            raise ValueError("a time split needs its column")
        times = table.column(column)
        if times.null_count:
            raise DataError(f"time column '{column}' of {source} has {times.null_count} missing value(s); "
                            f"a time split needs a time for every row")
        # Arrow's sort is stable: rows with equal times keep their file order.
        order = pc.sort_indices(times).to_numpy().astype(np.int64)
        parts = split_indices(n, fractions, order=order)
    else:
        raise ValueError(f"unknown split method {method!r}")
    return [table.take(pa.array(p, type=pa.int64())) for p in parts]
