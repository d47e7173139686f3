"""List columns: raw lists → flat entries with per-row offsets, the vocabulary of a
``multi_categorical`` fitted over train's entries, and ids padded to ``[N, L]``.

A list column is a Parquet list (``list``, ``large_list``, ``fixed_size_list``) or text split on
the entry's ``sep``. A missing list is an empty one; missing entries and blank text entries are
left out (never read as id 0); text entries are trimmed, and are ``int64`` when every entry of the
chunk is an integer literal (as categorical ids are). Entries the vocabulary does not hold map to
0 (unknown).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.data.columns import Column, as_ids, exact_ints, is_list_type, plain
from msmtrec.data.fit.vocabulary import Vocabulary, VocabularyFitter
from msmtrec.errors import DataError

__all__ = ["ListFitter", "list_entries", "padded"]


def list_entries(col: Column, sep: str | None, what: str) -> tuple[pa.Array, np.ndarray]:
    """``(entries, offsets)``: the rows' entries one after another (ids: ``int64`` or text) and
    ``offsets [N + 1]`` int64, row ``i`` holding ``entries[offsets[i]:offsets[i + 1]]``.

    Raises:
        DataError: text without ``sep``, a column that is neither lists nor text, or lists of
            lists; ``what`` names the column and the file.
    """
    col = plain(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    t = col.type
    if pa.types.is_null(t):
        return pa.array([], pa.int64()), np.zeros(len(col) + 1, dtype=np.int64)
    if not is_list_type(t):
        if sep is None:
            example = col.drop_null()[0].as_py() if len(col.drop_null()) else None
            raise DataError(f"{what} holds {t} values (e.g. {example!r}), not lists; for text such as 'a|b' set the "
                            f"entry's sep (e.g. sep: \"|\")")
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            col = pc.cast(col, pa.string())  # a number is a list of one entry
        col = pc.split_pattern(col, sep)
    if is_list_type(col.type.value_type):
        raise DataError(f"{what} holds lists of lists ({col.type}); expected one list of ids per row")
    parents = pc.list_parent_indices(col).to_numpy(zero_copy_only=False).astype(np.int64)
    entries = plain(pc.list_flatten(col))
    if pa.types.is_string(entries.type) or pa.types.is_large_string(entries.type):
        entries = pc.utf8_trim_whitespace(entries)
        keep = pc.and_(pc.is_valid(entries), pc.not_equal(entries, ""))
    else:
        keep = pc.is_valid(entries)
    keep = keep.fill_null(False)
    if not pc.all(keep).as_py():
        entries, parents = entries.filter(keep), parents[keep.to_numpy(zero_copy_only=False)]
    counts = np.bincount(parents, minlength=len(col))
    return as_ids(exact_ints(entries)), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def padded(values: np.ndarray, start: np.ndarray, stop: np.ndarray, max_len: int, *,
           newest_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(ids [N, L·C], lengths [N])``: row ``i`` takes ``values[start[i]:stop[i]]`` (``values``
    ``[E]`` or ``[E, C]``, one column per channel), at most ``L = max_len`` of them — the first
    ones, or with ``newest_first`` the last ones in reverse order — entry by entry (the ``C``
    channels of an entry side by side), padded with 0 after the row's length."""
    values = values[:, None] if values.ndim == 1 else values
    channels = values.shape[1]
    lengths = np.minimum(stop - start, max_len).astype(np.int64)
    pos = np.arange(max_len, dtype=np.int64)
    valid = pos[None, :] < lengths[:, None]
    if not len(values):
        return np.zeros((len(start), channels * max_len), dtype=np.int64), lengths
    index = (stop[:, None] - 1 - pos[None, :]) if newest_first else (start[:, None] + pos[None, :])
    out = np.where(valid[:, :, None], values[np.where(valid, index, 0)], 0)  # [N, L, C]
    return out.reshape(len(start), max_len * channels), lengths


class ListFitter:
    """The vocabulary of one ``multi_categorical`` over train chunks, and how long train's lists
    are (rows, empty rows, rows longer than ``max_len``)."""

    def __init__(self, entry: Any, min_count: int) -> None:
        self.entry = entry
        self.vocabulary = VocabularyFitter(entry.column, min_count)
        self.rows = self.empty = self.truncated = 0

    def update(self, col: Column, what: str) -> None:
        entries, offsets = list_entries(col, self.entry.sep, what)
        self.vocabulary.update(entries)
        lengths = np.diff(offsets)
        self.rows += len(lengths)
        self.empty += int((lengths == 0).sum())
        self.truncated += int((lengths > self.entry.max_len).sum())

    def finish(self) -> Vocabulary:
        return self.vocabulary.finish()

    def report(self) -> dict[str, int]:
        """Train rows, rows with an empty list and rows cut to ``max_len``; distinct and kept values."""
        return {"rows": self.rows, "empty": self.empty, "truncated": self.truncated, "max_len": self.entry.max_len,
                "distinct": self.vocabulary.distinct}
