"""Scenario coder: raw scenario value → scenario index.

Without a mapping every distinct train value (numeric order for integer values) is a scenario;
with a mapping several raw values may share a name and ``other`` catches the rest. A missing or
blank value has no scenario (such rows are dropped and counted, or refused); a value train never
had is unknown (an error, or dropped for prediction).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.data.columns import Column, as_ids, shown, sum_by_value
from msmtrec.errors import DataError

#: Scenario index codes of rows without a scenario.
MISSING = -1
UNKNOWN = -2


def unmapped(where: str, column: str | None, values: list[str], source: str) -> DataError:
    return DataError(f"{where}: scenario column '{column}' has value(s) {shown(values)} in {source} that are not in "
                     f"scenario.mapping; add them or set scenario.other")


def no_scenario(where: str, rows: int, source: str, column: str | None) -> DataError:
    return DataError(f"{where}: {rows} row(s) of {source} have no value in scenario column '{column}'; set "
                     f"scenario.drop_missing: true to drop them")


@dataclass
class ScenarioCoder:
    """Raw scenario value → scenario index.

    Attributes:
        names: scenario names; index ``i`` is ``names[i]``.
        keys: raw values as text (``"1"`` for the integer 1) that have a scenario.
        key_index: scenario index of each key.
        other: index of the scenario for raw values not in ``keys`` (None: those are unknown).
        constant: the dataset has a single scenario and no scenario column.
    """

    names: list[str]
    keys: list[str] = field(default_factory=list)
    key_index: list[int] = field(default_factory=list)
    other: int | None = None
    constant: bool = False

    def codes(self, col: Column | None, n: int) -> tuple[np.ndarray, list[str]]:
        """Scenario index per row (:data:`MISSING`, :data:`UNKNOWN`) and the unknown raw values.

        The column is dictionary-encoded first, so the lookup runs once per distinct value and
        spreads to the rows with one ``take``.
        """
        if self.constant or col is None:
            return np.zeros(n, dtype=np.int64), []
        raw = as_ids(col)
        if pa.types.is_null(raw.type):
            return np.full(n, MISSING, dtype=np.int64), []
        if isinstance(raw, pa.ChunkedArray):
            raw = raw.combine_chunks()
        encoded = pc.dictionary_encode(raw)
        distinct = pc.cast(encoded.dictionary, pa.string())
        pos = pc.index_in(distinct, value_set=pa.array(self.keys, type=pa.string())).fill_null(-1).to_numpy()
        lookup = np.where(pos >= 0, np.asarray(self.key_index + [0], dtype=np.int64)[pos],
                          UNKNOWN if self.other is None else self.other)
        idx = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
        out = np.where(idx >= 0, lookup[np.maximum(idx, 0)] if len(lookup) else MISSING, MISSING)
        unknown = [v for v, c in zip(distinct.to_pylist(), lookup) if c == UNKNOWN]
        return out.astype(np.int64), unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScenarioFitter:
    """Counts the raw scenario values of train chunks; :meth:`finish` builds the coder and refuses
    what a model could not learn (unmapped values, declared scenarios without rows)."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.sc = spec.scenario
        self._counts: list[pa.Table] = []
        self.rows = 0
        self.missing = 0
        self.scenario_rows: dict[str, int] = {}  # train rows per scenario, after finish()

    def update(self, col: Column | None, rows: int) -> int:
        """Count the scenario column of a train chunk of ``rows`` rows (None: constant scenario);
        returns how many of its rows have no scenario."""
        self.rows += rows
        if col is None or self.sc.constant is not None:
            return 0
        raw = as_ids(col)
        if pa.types.is_null(raw.type):
            self.missing += rows
            return rows
        vc = pc.value_counts(raw.drop_null())  # a few distinct values: checks run on them, not on rows
        values, counts = vc.field("values"), pc.cast(vc.field("counts"), pa.int64())
        missing = raw.null_count  # blank text included (as_ids)
        self.missing += missing
        self._counts.append(pa.table({"v": values, "n": counts}))
        return missing

    def finish(self, source: str) -> ScenarioCoder:
        sc, where = self.sc, self.spec.where
        if sc.constant is not None:
            self.scenario_rows = {sc.constant: self.rows - self.missing}
            return ScenarioCoder(names=[sc.constant], constant=True)
        merged = sum_by_value(self._counts)
        values = pa.array([], pa.string()) if merged is None else merged.column("v").combine_chunks()
        counts = np.zeros(0, dtype=np.int64) if merged is None else merged.column("n").to_numpy()
        if sc.mapping is not None:
            names = sc.declared_names()
            keys = list(sc.mapping)
            coder = ScenarioCoder(names=names, keys=keys, key_index=[names.index(sc.mapping[k]) for k in keys],
                                  other=None if sc.other is None else names.index(sc.other))
        else:
            names = pc.cast(values, pa.string()).to_pylist()
            if not names:
                raise DataError(f"{where}: scenario column '{sc.column}' is empty in {source}")
            coder = ScenarioCoder(names=names, keys=list(names), key_index=list(range(len(names))))
        codes, unknown = coder.codes(values, len(values))
        if unknown:
            raise unmapped(where, sc.column, unknown, source)
        if self.missing and not sc.drop_missing:
            raise no_scenario(where, self.missing, source, sc.column)
        rows_per = np.bincount(codes[codes >= 0], weights=counts[codes >= 0], minlength=len(coder.names))
        empty = [name for name, c in zip(coder.names, rows_per) if c == 0]
        if empty:
            raise DataError(f"{where}: scenario(s) {empty} declared in the spec (scenario.mapping/other) have no rows "
                            f"in {source}; a model could not learn them, remove them from the spec")
        if self.rows and self.missing == self.rows:
            raise DataError(f"{where}: {source} has no rows left after dropping {self.missing} row(s) with a "
                            f"missing scenario")
        self.scenario_rows = {name: int(c) for name, c in zip(coder.names, rows_per)}
        return coder
