"""Behaviour histories built from the log: for each row, the ``max_len`` most recent events of the
same user strictly earlier in time, newest first (a built ``sequences`` entry of the spec).

Leakage is impossible by construction:

- **strictly earlier**: an event at the row's own time is never in its history — the row itself
  and every tie included — nor is a later one;
- **splits in order**: a row of split ``k`` (train 0, val 1, test 2) sees events of splits ``≤ k``
  only, so val and test rows see train-period events and train rows never see val or test ones,
  whatever the split (with a time split this changes nothing; with a random one it matters).

Built once after fitting (the entries are encoded with the item's and side fields' fitted
vocabularies) from one pass over the user, item, time and side columns of every split, and reused
by the in-memory and the streamed dataset alike. How: every row gets the dense rank of its
``(user, time)`` pair; the events a split may see, sorted by that rank, put each user's events
together in time order, so a row's history is the window ``[max(first, stop - L), stop)`` of that
array, ``stop`` being the number of visible events with a smaller rank and ``first`` the first
event of its user: two ``searchsorted`` calls for all rows at once. Events at equal earlier times
are ordered by split, then file row (the later one counts as more recent), whatever the chunking.

Memory held (what streaming costs): per row 24 bytes (its file row and window), plus 8 bytes per
channel (item + side fields) for each split that sees the event — about ``24 + 8·C·2.7`` bytes a
row for an 80/10/10 split, against ``8·L·C`` for the padded ``[N, L·C]`` tensors that an in-memory
split holds (50 entries: 400 bytes a row and channel).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.data.columns import as_ids
from msmtrec.data.fit.lists import padded
from msmtrec.data.io import ROW_COLUMN, time_values
from msmtrec.errors import DataError

__all__ = ["HistoryBuilder", "HistoryLookup", "Histories"]

#: ``(sequence name, file rows) -> (ids [n, L·C], lengths [n])`` for the rows of one split.
HistoryLookup = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class _SplitWindows:
    """One split's rows (file row numbers, sorted) and their windows into ``events``."""

    rows: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    events: np.ndarray  # [E, C] int64 ids of the events this split sees, by (user, time)


class Histories:
    """The built histories of a dataset, by sequence name and split: :meth:`lookup` gives the
    padded ids ``[n, L·C]`` and lengths ``[n]`` of any rows."""

    def __init__(self, windows: dict[str, dict[int, _SplitWindows]], max_len: dict[str, int],
                 report: dict[str, dict[str, Any]]) -> None:
        self._windows, self._max_len, self.report = windows, max_len, report

    def split(self, split: int) -> HistoryLookup:
        """:meth:`lookup` for the rows of one split (0 train, 1 val, 2 test)."""
        return functools.partial(self.lookup, split=split)

    def lookup(self, name: str, rows: np.ndarray, *, split: int) -> tuple[np.ndarray, np.ndarray]:
        """Histories of the rows at file positions ``rows`` of split ``split``."""
        w = self._windows[name][split]
        pos = np.searchsorted(w.rows, rows)
        if len(rows) and (pos.max() >= len(w.rows) or (w.rows[pos] != rows).any()):
            raise ValueError(f"rows outside split {split} of history '{name}'")  # a bug, not a user error
        return padded(w.events, w.start[pos], w.stop[pos], self._max_len[name], newest_first=True)


class HistoryBuilder:
    """Collects the history columns of every split's chunks (``update``), then builds
    :class:`Histories` (``finish``). Chunks must carry :data:`ROW_COLUMN` and come in file order
    within each split."""

    def __init__(self, encoders: Any) -> None:
        spec = encoders.spec
        self.encoders = encoders
        self.sequences = {n: s for n, s in spec.sequences.items() if s.built}
        self._parts: dict[str, list[tuple[int, np.ndarray, Any, np.ndarray, np.ndarray]]] = {n: [] for n in self.sequences}

    def update(self, split: int, table: pa.Table, source: str) -> None:
        """Add the rows of a chunk of split ``split`` (0 train, 1 val, 2 test)."""
        rows = table.column(ROW_COLUMN).to_numpy()
        for name, seq in self.sequences.items():
            times = _sortable(time_values(table.column(seq.time), seq.format,
                                          f"{self.encoders.spec.where}: {source}: history '{name}' time column "
                                          f"'{seq.time}'", f"sequences[{name!r}].format"))
            entries = np.stack([self.encoders.vocabularies[f].encode(table.column(f)) for f in seq.fields], axis=1)
            self._parts[name].append((split, rows, as_ids(table.column(seq.user)), times, entries))

    def finish(self) -> Histories:
        windows, report = {}, {}
        for name, seq in self.sequences.items():
            windows[name], report[name] = _build(self._parts.pop(name), seq.max_len)
        return Histories(windows, {n: s.max_len for n, s in self.sequences.items()}, report)


def _build(parts: list[tuple[int, np.ndarray, Any, np.ndarray, np.ndarray]], max_len: int
           ) -> tuple[dict[int, _SplitWindows], dict[str, Any]]:
    """The windows of every split (see the module docstring) and, for the report, per split the
    rows and the rows with an empty history."""
    if not parts:
        raise DataError("a history needs rows to be built from")
    splits, row_parts, users, times, entry_parts = zip(*parts)
    split = np.concatenate([np.full(len(r), k, dtype=np.int8) for k, r in zip(splits, row_parts)])
    rows, time, entries = (np.concatenate(p) for p in (row_parts, times, entry_parts))
    user = _user_codes(list(users))
    order = np.lexsort((rows, split, time, user))  # equal times: by split, then file row
    u, t = user[order], time[order]
    change = np.ones(len(order), dtype=bool)
    change[1:] = (u[1:] != u[:-1]) | (t[1:] != t[:-1])
    ranks = np.cumsum(change) - 1
    new_user = np.ones(len(order), dtype=bool)
    new_user[1:] = u[1:] != u[:-1]
    first = np.maximum.accumulate(np.where(new_user, ranks, 0))  # rank of the user's first event
    rank, user_first = np.empty_like(ranks), np.empty_like(ranks)
    rank[order], user_first[order] = ranks, first
    out, report = {}, {}
    for k in np.unique(split).tolist():
        events = order[(split[order] <= k) & (user[order] >= 0)]
        query = np.flatnonzero(split == k)
        ev_rank = rank[events]
        stop = np.searchsorted(ev_rank, rank[query], side="left")
        start = np.maximum(np.searchsorted(ev_rank, user_first[query], side="left"), stop - max_len)
        stop = np.where(user[query] >= 0, stop, 0)  # a row without a user has no history
        start = np.minimum(start, stop)
        by_row = np.argsort(rows[query], kind="stable")
        out[k] = _SplitWindows(rows[query][by_row], start[by_row], stop[by_row], entries[events])
        report[k] = {"rows": int(len(query)), "empty": int((stop == start).sum())}
    return out, report


def _user_codes(columns: list[Any]) -> np.ndarray:
    """One int64 code per row for the user columns of all chunks (equal ids, equal codes), -1 for
    a missing user; integer ids compare as integers unless some chunk holds text."""
    if all(c.type == pa.int64() or pa.types.is_null(c.type) for c in columns):
        return np.concatenate([np.asarray(pc.fill_null(pc.cast(c, pa.int64()), -1)) for c in columns]).astype(np.int64)
    text = pa.chunked_array([pc.cast(c, pa.string()) for c in columns], type=pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(text)
    return np.asarray(encoded.indices.fill_null(-1)).astype(np.int64)


def _sortable(times: Any) -> np.ndarray:
    """Times as int64 (integers; timestamps and dates in nanoseconds) or float64 numbers, whose
    order is the times' order."""
    t = times.type
    if pa.types.is_temporal(t):
        times = pc.cast(pc.cast(times, pa.timestamp("ns")) if not pa.types.is_timestamp(t) or t.unit != "ns"
                        else times, pa.int64())
    elif pa.types.is_decimal(t):
        times = pc.cast(times, pa.float64())
    values = np.asarray(times.to_numpy(zero_copy_only=False) if isinstance(times, pa.Array) else times.to_numpy())
    return values.astype(np.int64 if np.issubdtype(values.dtype, np.integer) else np.float64)
