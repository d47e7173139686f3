"""Where each split's rows come from: a :class:`SplitSource` per split — a file, whole or one part
of its row split (:class:`~msmtrec.data.io.RandomSplit` or :class:`~msmtrec.data.io.TimeSplit`) —
planned from a dataset spec by :func:`plan_splits`, and read chunk by chunk (:func:`read_splits`
reads several splits of one file in one pass)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from msmtrec.data.io import READ_ROWS, ROW_COLUMN, SPLITS, DataFile, RandomSplit, TimeSplit
from msmtrec.data.spec import DatasetSpec
from msmtrec.errors import DataError

__all__ = ["SplitSource", "plan_splits", "read_splits"]


@dataclass
class SplitSource:
    """The rows of one split: a file, whole or the ``part``-th part of its row split.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        label: how to call these rows in messages (``"train split of d.csv"``).
        row_split: the file's :class:`RandomSplit` or :class:`TimeSplit`; None: every row.
        part: which part of ``row_split``.
        row_limit: read at most this many rows of the file.
    """

    split: str
    file: DataFile
    label: str
    row_split: RandomSplit | TimeSplit | None = None
    part: int = 0
    row_limit: int | None = None

    @property
    def rows(self) -> int | None:
        """Rows of this split when known without reading (a row split, or Parquet metadata)."""
        if self.row_split is not None:
            return int(self.row_split.sizes[self.part])
        if self.file.kind == "parquet":
            n = self.file.num_rows
            return n if self.row_limit is None else min(n, self.row_limit)
        return None

    @property
    def index(self) -> int:
        """Position of the split in :data:`SPLITS` (0 train, 1 val, 2 test)."""
        return SPLITS.index(self.split)

    def select(self, first: int, table: pa.Table) -> pa.Table:
        """The rows of a batch that starts at file row ``first`` which belong to this split, with
        their file rows in :data:`ROW_COLUMN`."""
        table = table.append_column(ROW_COLUMN, pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
        if self.row_split is None:
            return table
        return table.filter(pa.array(self.row_split.parts(first, table.num_rows) == self.part))

    def chunks(self, columns: list[str], pieces: Iterable[int] | None = None) -> Iterator[pa.Table]:
        for first, table in self.file.batches(columns, pieces=pieces, row_limit=self.row_limit):
            rows = self.select(first, table)
            if rows.num_rows:
                yield rows


def read_splits(sources: list[SplitSource], columns: list[str]) -> Iterator[tuple[SplitSource, pa.Table]]:
    """``(source, rows)`` for every chunk of the given splits, each file read once in file order
    (the splits of one file are selected from the same batches)."""
    by_file: dict[int, list[SplitSource]] = {}
    for s in sources:
        by_file.setdefault(id(s.file), []).append(s)
    for group in by_file.values():
        for first, table in group[0].file.batches(columns, row_limit=group[0].row_limit):
            for s in group:
                rows = s.select(first, table)
                if rows.num_rows:
                    yield s, rows


def plan_splits(spec: DatasetSpec, *, row_limit: int | None = None, read_rows: int = READ_ROWS
                ) -> dict[str, SplitSource]:
    """The :class:`SplitSource` of each split.

    Raises:
        DataError: a file is missing or empty, or the split fractions leave a split no rows.
    """
    f = spec.files

    def whole(split: str, path: Path) -> SplitSource:
        file = spec.data_file(path, read_rows=read_rows)
        return SplitSource(split, file, f"{split} ({file.name})", row_limit=row_limit)

    def divided(file: DataFile, names: tuple[str, ...], what: str) -> dict[str, SplitSource]:
        n = file.num_rows if row_limit is None else min(file.num_rows, row_limit)
        if n == 0:
            raise DataError(f"{spec.where}: {what} has no rows")
        split = f.split  # never None here: the spec fills in the default fractions and seed
        assert split is not None and len(split.fractions) == len(names)
        if split.method == "time":
            times = file.read([split.column], row_limit=row_limit).column(split.column)
            row_split: RandomSplit | TimeSplit = TimeSplit(times, split.fractions, file.name, split.column, split.format)
        else:
            row_split = RandomSplit(n, split.fractions, split.seed)
        out = {}
        for k, name in enumerate(names):
            source = SplitSource(name, file, f"{name} split of {file.name}", row_split, k, row_limit)
            if source.rows == 0:
                raise DataError(f"{spec.where}: split '{name}' is empty: {source.label} has no rows (the split "
                                f"fractions leave it no rows; use more rows)")
            out[name] = source
        return out

    if f.path is not None:
        return divided(spec.data_file(f.path, read_rows=read_rows), SPLITS, f.path.name)
    assert f.train is not None and f.test is not None
    sources = {"test": whole("test", f.test)}
    if f.val is not None:
        sources.update(train=whole("train", f.train), val=whole("val", f.val))
    else:
        train = spec.data_file(f.train, read_rows=read_rows)
        sources.update(divided(train, ("train", "val"), f"train ({train.name})"))
    return {s: sources[s] for s in SPLITS}
