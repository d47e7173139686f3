"""The one reader of raw files, and the one way rows are divided into splits.

:class:`DataFile` reads a CSV (optionally compressed) or Parquet file, or a folder of Parquet
files, in record batches — Parquet row group by row group, CSV block by block — each batch with
the position of its first row in the file, so that a row keeps its number however it is read.
Loading, streaming, ``predict`` and the recipes all read through it.

Identifier columns are why this module exists: a CSV reader that guesses types may turn
``1099511627777`` into a float, and a float silently merges distinct ids above 2**53. Columns
named in ``id_columns`` are parsed as text and become ``int64`` exactly when every value of the
batch is an integer written as ``int64`` prints it, or with a zero fraction (``123.0``, as pandas
writes an integer column with missing values); otherwise (text, a leading zero as in ``00123``, a
``+`` sign) they stay text. No id ever passes through a float, and ``00123`` is not ``123``.

Splits: :class:`RandomSplit` tells the part of any row range without holding a permutation of the
file, so the in-memory and the streamed paths split a file identically; :class:`TimeSplit` sorts
the time column.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from msmtrec.data.columns import text_numbers, exact_ints, missing_columns, nan_to_null
from msmtrec.data.csv_options import CsvOptions
from msmtrec.errors import DataError

__all__ = ["DEFAULT_FRACTIONS", "DEFAULT_SPLIT_SEED", "DEFAULT_VAL_FRACTIONS", "ROW_COLUMN", "SPLITS", "CsvOptions", "DataFile",
           "RandomSplit", "TimeSplit", "detect_format", "hash_split", "read_table", "split_indices", "split_sizes",
           "splitmix64", "time_values"]

#: Split names, in order.
SPLITS = ("train", "val", "test")
#: Fractions of a single file divided into train/val/test.
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
#: Fractions of a train file divided into train/val (when no val file is given).
DEFAULT_VAL_FRACTIONS = (0.9, 0.1)
#: Seed of a random split when the spec gives none.
DEFAULT_SPLIT_SEED = 2024
#: Rows per record batch read from disk.
READ_ROWS = 65_536
#: Column a split's chunks carry: each row's position in its file (what a built history is keyed by).
ROW_COLUMN = "__row__"

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    """``fmt`` itself unless it is ``"auto"``, else the format from the extension (a folder is
    Parquet; ``.csv.gz`` is CSV)."""
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


@dataclass(frozen=True)
class _Piece:
    """A readable unit: one Parquet row group (``group`` ≥ 0) or a whole CSV (``group`` -1)."""

    path: Path
    group: int
    first_row: int
    rows: int | None


class DataFile:
    """One CSV or Parquet file (or folder of Parquet files), read in record batches.

    Args:
        path: the file or folder.
        fmt: ``auto`` (from the extension), ``csv`` or ``parquet``.
        id_columns: identifier columns (CSV: exact int64 or text, never float).
        number_columns: numeric columns (CSV: ``float64`` by :func:`text_numbers` in every block,
            not typed from the first block alone, which would refuse a later block's fractions).
        csv: CSV parsing options.
        column_types: CSV only: fixed Arrow types of some columns.
        read_rows: rows per batch.
    """

    def __init__(self, path: str | Path, fmt: str = "auto", *, id_columns: Iterable[str] = (),
                 number_columns: Iterable[str] = (), csv: CsvOptions = CsvOptions(),
                 column_types: dict[str, pa.DataType] | None = None, read_rows: int = READ_ROWS) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"data file not found: {self.path}")
        self.kind = detect_format(self.path, fmt)
        self.id_columns, self.csv, self.read_rows = set(id_columns), csv, read_rows
        self.number_columns = set(number_columns) - self.id_columns
        self.column_types = dict(column_types or {})

    @property
    def name(self) -> str:
        return self.path.name

    # -- layout ---------------------------------------------------------------------------------
    @functools.cached_property
    def columns(self) -> list[str]:
        """Column names (CSV: from the first block; Parquet: from the schema)."""
        try:
            if self.kind == "parquet":
                return list(pq.read_schema(self.files[0]).names)
            reader = pacsv.open_csv(self.path, parse_options=self.csv.parse_options(self.path),
                                    read_options=self.csv.read_options(1 << 16))
            return list(reader.schema.names)
        except (pa.ArrowException, OSError, UnicodeError) as exc:
            raise self._unreadable(self.path, exc) from None

    def require(self, columns: Sequence[str], *, options_of: str | None = None) -> None:
        """Raise a :class:`DataError` naming the missing columns, some available ones and close
        matches, or a column the header names more than once (which one is meant is ambiguous).
        ``options_of``: who fixed the CSV options (e.g. the model's training spec), for a file that
        must be written to match them rather than have them set."""
        have = self.columns
        present = set(have)
        missing = [c for c in columns if c not in present]
        if not missing:
            counts = Counter(have)
            if twice := next((c for c in columns if counts[c] > 1), None):
                where = " and ".join(str(i + 1) for i, c in enumerate(have) if c == twice)
                raise DataError(f"{self.name} has {counts[twice]} columns named '{twice}' (columns {where} of its "
                                f"header): which one is meant is ambiguous; rename all but one")
            return
        hints = [f"'{c}' → '{m[0]}'?" for c in missing if (m := difflib.get_close_matches(c, have, n=1))]
        hint = f"; did you mean {', '.join(hints)}" if hints else ""
        raise DataError(missing_columns(self.name, missing, have) + hint + self._delimiter_hint(options_of))

    def _delimiter_hint(self, options_of: str | None = None) -> str:
        """For a CSV whose header is one column holding delimiter-like characters: which to set."""
        if self.kind != "csv" or len(self.columns) != 1:
            return ""
        used = self.csv.parse_options(self.path).delimiter
        found = Counter(c for c in self.columns[0] if c in ",;\t|" and c != used).most_common(1)
        if not found:
            return ""

        def shown(char: str) -> str:
            return "\\t" if char == "\t" else char

        char = shown(found[0][0])
        ask = f"; its header is one column holding '{char}': is the file '{char}'-separated? "
        if options_of is not None:
            return ask + f"{options_of} reads CSV separated by '{shown(used)}': write the file so"
        return ask + f'set files.csv.delimiter: "{char}"'

    @functools.cached_property
    def files(self) -> list[Path]:
        """The files read: the file itself, or the ``.parquet`` files of a folder in name order."""
        files = sorted(self.path.rglob("*.parquet")) if self.path.is_dir() else [self.path]
        if not files:
            raise DataError(f"{self.path} holds no .parquet files")
        return files

    @functools.cached_property
    def pieces(self) -> list[_Piece]:
        """Row groups in file order with their first row (CSV: one piece of unknown size)."""
        if self.kind == "csv":
            return [_Piece(self.path, -1, 0, None)]
        out, first = [], 0
        for f in self.files:
            try:
                meta = pq.ParquetFile(f).metadata
            except (pa.ArrowException, OSError) as exc:
                raise self._unreadable(f, exc) from None
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                out.append(_Piece(f, g, first, rows))
                first += rows
        return out

    @functools.cached_property
    def num_rows(self) -> int:
        """Rows in the file (Parquet: from the metadata; CSV: counted once)."""
        if self.kind == "parquet":
            return sum(p.rows or 0 for p in self.pieces)
        return sum(t.num_rows for _, t in self.batches(self.columns[:1]))

    # -- reading --------------------------------------------------------------------------------
    def batches(self, columns: Sequence[str] | None = None, *, pieces: Sequence[int] | None = None,
                row_limit: int | None = None) -> Iterator[tuple[int, pa.Table]]:
        """``(first row, table)`` per record batch of ``columns`` (all when None).

        ``pieces`` reads only those row groups, in that order (CSV has one piece); ``row_limit``
        stops at that row of the file. Row numbers are positions in the file, whatever the order.
        """
        cols = list(dict.fromkeys(columns if columns is not None else self.columns))
        self.require(cols)
        order = range(len(self.pieces)) if pieces is None else pieces
        for i in order:
            piece = self.pieces[i]
            first = piece.first_row
            if row_limit is not None and first >= row_limit:
                continue
            for table in self._read_piece(piece, cols):
                if row_limit is not None:
                    if first >= row_limit:
                        break
                    table = table.slice(0, row_limit - first)
                yield first, table
                first += table.num_rows

    def read(self, columns: Sequence[str] | None = None, *, row_limit: int | None = None) -> pa.Table:
        """The whole file (or its first ``row_limit`` rows) as one table."""
        cols = list(dict.fromkeys(columns if columns is not None else self.columns))
        tables = [t for _, t in self.batches(cols, row_limit=row_limit)]
        return concat_tables(tables) if tables else pa.table({c: pa.array([], pa.null()) for c in cols})

    def _read_piece(self, piece: _Piece, columns: list[str]) -> Iterator[pa.Table]:
        try:
            if self.kind == "parquet":
                pf = pq.ParquetFile(piece.path)
                names = pf.schema_arrow.names
                if absent := [c for c in columns if c not in names]:  # a folder's later file
                    where = piece.path.relative_to(self.path.parent) if self.path.is_dir() else piece.path.name
                    raise DataError(missing_columns(str(where), absent, names)
                                    + f"; every file of {self.name} must hold the columns the spec reads")
                for batch in pf.iter_batches(batch_size=self.read_rows, row_groups=[piece.group], columns=columns):
                    yield pa.Table.from_batches([batch])
                return
            # Ids are parsed as text and converted exactly below: a float guess (one decimal
            # point, or a value above 2**63) would merge distinct ids.
            types = {c: pa.string() for c in columns if c in self.id_columns | self.number_columns}
            types.update({c: t for c, t in self.column_types.items() if c in columns})
            convert = pacsv.ConvertOptions(include_columns=columns, column_types=types, strings_can_be_null=True,
                                           null_values=self.csv.null_markers())
            reader = pacsv.open_csv(piece.path, parse_options=self.csv.parse_options(piece.path),
                                    convert_options=convert, read_options=self.csv.read_options(1 << 24))
            undecoded = [f.name for f in reader.schema if pa.types.is_binary(f.type)]  # Arrow's type for bad text
            if undecoded:
                raise UnicodeError(f"column '{undecoded[0]}' is not valid {self.csv.encoding} text")
            for batch in reader:
                yield self._typed(pa.Table.from_batches([batch]))
        except (pa.ArrowException, OSError, UnicodeError) as exc:
            raise self._unreadable(piece.path, exc) from None

    def _unreadable(self, path: Path, exc: BaseException) -> DataError:
        if self.kind == "parquet":
            return DataError(f"cannot read {path.name} as Parquet: {_first_line(exc)}")
        hint = ""
        if isinstance(exc, UnicodeError) or "UTF8" in str(exc):
            hint = f"; is it not {self.csv.encoding}? set files.csv.encoding (e.g. latin-1 or cp1252)"
        return DataError(f"cannot parse {path.name} as CSV: {_first_line(exc)}{hint}")

    def _typed(self, table: pa.Table) -> pa.Table:
        """A CSV batch's text ids → int64 when every value is a plain integer (:func:`exact_ints`),
        and its numeric columns' text → float64 (:func:`text_numbers`); else the text."""
        for i, f in enumerate(table.schema):
            if f.name in self.column_types:
                continue
            if f.name in self.id_columns:
                table = table.set_column(i, f.name, exact_ints(table.column(i)))
            elif f.name in self.number_columns:
                table = table.set_column(i, f.name, text_numbers(table.column(i), self.csv.decimal))
        return table


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Concatenate batches whose id columns may be int64 in some and text in others (→ text)."""
    if len({t.schema for t in tables}) > 1:
        text = {f.name for t in tables for f in t.schema if pa.types.is_string(f.type)}
        tables = [t.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in text else f for f in t.schema]))
                  for t in tables]
    return pa.concat_tables(tables)


def read_table(path: str | Path, columns: Sequence[str] | None = None, fmt: str = "auto", *,
               id_columns: Iterable[str] = (), row_limit: int | None = None) -> pa.Table:
    """``columns`` (all when None, in this order) of a CSV or Parquet file as one table; empty
    CSV fields and the usual null markers (``NA``, ``null``, ...) are nulls, also in text columns.

    Raises:
        DataError: the file does not exist or cannot be parsed, or columns are missing (the
            message names the file and the missing columns and lists some available ones).
    """
    if row_limit is not None and row_limit < 0:
        raise DataError(f"row_limit must be non-negative, got {row_limit}")
    return DataFile(path, fmt, id_columns=id_columns).read(columns, row_limit=row_limit)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Part sizes of ``n`` rows, rounded cumulatively so that they add up to ``n`` exactly."""
    cuts = [0] + [int(math.floor(c * n + 0.5)) for c in np.cumsum(fractions)[:-1]] + [n]
    return [b - a for a, b in zip(cuts, cuts[1:])]


class RandomSplit:
    """A seeded random split of ``n`` rows into parts of exact sizes (:func:`split_sizes`).

    The rows are cut into blocks of ``2**16``; how many rows of each part fall in each block is
    drawn block after block from the multivariate hypergeometric distribution, and a block's rows
    are assigned by a permutation seeded with the block's number. The result is a uniformly random
    assignment with exact sizes, and the part of any row range is computed from its blocks alone.
    """

    BLOCK = 1 << 16

    def __init__(self, n: int, fractions: Sequence[float], seed: int) -> None:
        self.n, self.seed = n, int(seed)
        self.sizes = split_sizes(n, fractions)
        remaining = np.array(self.sizes, dtype=np.int64)
        rng = np.random.default_rng([self.seed, 0])
        counts = []
        for start in range(0, n, self.BLOCK):
            c = rng.multivariate_hypergeometric(remaining, min(self.BLOCK, n - start), method="marginals")
            remaining -= c
            counts.append(c)
        self._counts = np.array(counts, dtype=np.int64).reshape(-1, len(self.sizes))
        self._recent: dict[int, np.ndarray] = {}  # batches straddle at most two blocks

    def _block(self, b: int) -> np.ndarray:
        if b not in self._recent:
            labels = np.repeat(np.arange(len(self.sizes), dtype=np.int8), self._counts[b])
            if len(self._recent) >= 2:
                self._recent.pop(next(iter(self._recent)))
            self._recent[b] = np.random.default_rng([self.seed, 1, b]).permutation(labels)
        return self._recent[b]

    def parts(self, first: int, count: int) -> np.ndarray:
        """Part index (int8) of rows ``first .. first + count - 1``."""
        if count <= 0:
            return np.zeros(0, dtype=np.int8)
        if first < 0 or first + count > self.n:
            raise ValueError(f"rows {first}..{first + count - 1} outside 0..{self.n - 1}")
        lo, hi = first // self.BLOCK, (first + count - 1) // self.BLOCK
        joined = np.concatenate([self._block(b) for b in range(lo, hi + 1)])
        start = first - lo * self.BLOCK
        return joined[start:start + count]


class TimeSplit:
    """A split by time: oldest rows → first part, part sizes as :func:`split_sizes`; equal times
    keep their file order (Arrow's sort is stable).

    The times must be timestamps, dates or numbers, or text parsed with ``fmt`` (strptime codes:
    ``%m/%d/%Y``): text compared as text would put 12/31/2001 after 01/01/2009.

    Raises:
        DataError: the time column has missing values, text without ``fmt`` (or that ``fmt`` does
            not parse), or values of another kind; the message names the column and a value.
    """

    def __init__(self, times: pa.ChunkedArray | pa.Array, fractions: Sequence[float], source: str,
                 column: str, fmt: str | None = None) -> None:
        times = time_values(times, fmt, f"time column '{column}' of {source}")
        order = pc.sort_indices(times).to_numpy()
        self.sizes = split_sizes(len(order), fractions)
        self._parts = np.empty(len(order), dtype=np.int8)
        for k, rows in enumerate(split_indices(len(order), fractions, order=order)):
            self._parts[rows] = k

    def parts(self, first: int, count: int) -> np.ndarray:
        """Part index (int8) of rows ``first .. first + count - 1``."""
        return self._parts[first:first + count]


def time_values(times: pa.ChunkedArray | pa.Array, fmt: str | None, what: str, key: str = "files.split.format"
                ) -> pa.ChunkedArray | pa.Array:
    """``times`` as values that sort in time order (see :class:`TimeSplit`); ``key`` is the spec key
    of ``fmt``, for messages."""
    times, t = nan_to_null(times), times.type
    if times.null_count:
        raise DataError(f"{what} has {times.null_count} missing value(s); every row needs a time")
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if fmt is not None and not text:
        raise DataError(f"{what} holds {t} values, not text: remove {key} (it is for text times)")
    if text and fmt is None:
        raise DataError(f"{what} holds text (e.g. {times[0].as_py()!r}), which would sort as text, not as time; "
                        f"declare how to read it, e.g. {key}: '%m/%d/%Y' for 12/31/2024 (strptime "
                        f"codes), or store timestamps, dates or numbers")
    if text:
        parsed = pc.strptime(times, format=fmt, unit="s", error_is_null=True)
        if parsed.null_count:
            bad = times.filter(pc.is_null(parsed))[0].as_py()
            raise DataError(f"{what}: {parsed.null_count} value(s) do not match {key} {fmt!r}, "
                            f"e.g. {bad!r}")
        return parsed
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t)):
        raise DataError(f"{what} must hold timestamps, dates or numbers (or text with {key}), got {t} "
                        f"values (e.g. {times[0].as_py()!r})")
    return times


def split_indices(n: int, fractions: Sequence[float], *, seed: int | None = None,
                  order: np.ndarray | None = None) -> list[np.ndarray]:
    """Row positions ``0..n-1`` of each part: a :class:`RandomSplit` (``seed``; file order within a
    part) or, with ``order`` (positions sorted oldest first), consecutive slices of that order."""
    if (seed is None) == (order is None):
        raise ValueError("give exactly one of seed (random split) or order (time split)")
    if order is not None:
        cuts = np.cumsum(split_sizes(n, fractions))[:-1]
        return np.split(np.asarray(order, dtype=np.int64), cuts)
    parts = RandomSplit(n, fractions, seed).parts(0, n)
    return [np.flatnonzero(parts == k) for k in range(len(fractions))]


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of ``uint64`` values: a seeded hash, uniform over 64 bits."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_split(first_row: int, n: int, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Part index (int8) of rows ``first_row .. first_row+n-1`` from a seeded hash of the row number
    (splitmix64): one pass over a file of unknown length, independent of chunking; the parts have
    the given fractions in expectation. The recipes use it for files they cannot count first."""
    x = splitmix64(np.arange(first_row, first_row + n, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64))
    u = (x >> np.uint64(11)).astype(np.float64) / float(2**53)
    cuts = np.cumsum(fractions)[:-1]
    return np.searchsorted(cuts, u, side="right").astype(np.int8)
