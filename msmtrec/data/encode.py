"""Encoding raw tables into :class:`EncodedData`, with everything fitted on the TRAIN split only.

:class:`Encoders` holds what was learned from train:

- a :class:`Vocabulary` per categorical column: the values seen at least ``min_count`` times in
  train, sorted, get ids ``1..K``; id 0 is reserved for unknown, rare and missing values (so a
  value seen only in val/test maps to 0, as it would at serving time);
- :class:`NumericStats` per numeric column: mean/std for ``standardize`` and ``log1p``, quantile
  edges for ``bucketize`` (whose bucket ids become a categorical field);
- a :class:`ScenarioCoder`: raw scenario value → scenario index.

Everything is vectorised with ``pyarrow.compute`` and numpy (``index_in`` is a hash lookup per
column, not a Python loop per row), ids are ``int64`` from file to tensor, and the fitted state is
saved as human-readable JSON (``encoders.json``) that reloads to bit-identical tensors.

Data checks that need the rows live here and raise :class:`~msmtrec.errors.DataError` with the
spec file, the column and the split (``source``) in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.data.spec import SCENARIO_FIELD, DatasetSpec, NumericSpec, TaskSpec, load_spec
from msmtrec.errors import CheckpointError, DataError, SpecError

__all__ = [
    "ENCODERS_FILE",
    "EncodeResult",
    "Encoders",
    "NumericStats",
    "ScenarioCoder",
    "Vocabulary",
    "check_no_label_leak",
]

#: File name written by :meth:`Encoders.save`.
ENCODERS_FILE = "encoders.json"
_FORMAT = "msmtrec.encoders"
_VERSION = 1

# Scenario index codes for rows that do not get a scenario.
_MISSING = -1
_UNKNOWN = -2

UnknownScenario = Literal["error", "drop"]


# --------------------------------------------------------------------------------------------
# Column normalisation
# --------------------------------------------------------------------------------------------


def _decode_dictionary(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Parquet written from pandas ``category`` columns arrives dictionary-encoded."""
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _nan_to_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_floating(col.type):
        return pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    return col


def _as_ids(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A categorical column as ``int64`` (integers, booleans, integral floats) or text (the rest).

    Two types only, so that train and val/test columns read from different files (CSV vs
    Parquet, int32 vs int64) compare equal value by value. Null-typed (all-missing) columns are
    left as they are and match nothing.
    """
    col = _nan_to_null(_decode_dictionary(col))
    t = col.type
    if pa.types.is_null(t) or t == pa.int64() or t == pa.string():
        return col
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t):
        try:
            # Safe cast: fails (rather than rounds) on fractions and on uint64 above 2**63.
            return pc.cast(col, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column of type {t} cannot be used as categories: {exc}") from None


def _as_float(col: pa.ChunkedArray, what: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values."""
    col = _decode_dictionary(col)
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise DataError(f"{what} has type {t}; expected numbers")
    try:
        col = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _sample_unparsable(col)
        raise DataError(f"{what} must hold numbers, found values {bad}") from None
    return col.to_numpy()


def _sample_unparsable(col: pa.ChunkedArray, limit: int = 5) -> list[str]:
    """A few text values that do not parse as numbers, for an error message."""
    uniq = pc.unique(col.drop_null())
    out = []  # error path only: a loop over distinct values is fine here
    for value in uniq.to_pylist():
        try:
            float(value)
        except (TypeError, ValueError):
            out.append(value)
            if len(out) == limit:
                break
    return out


def _text_values(values: Sequence[Any], limit: int = 8) -> str:
    shown = list(values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{shown}{more}"


def _blank(text: pa.Array) -> np.ndarray:
    """Bool mask of empty or whitespace-only strings (nulls are not blank)."""
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), False).to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------------------------
# Fitted pieces
# --------------------------------------------------------------------------------------------


@dataclass
class Vocabulary:
    """Category → id for one column: ``values[i]`` has id ``i + 1``; 0 is unknown/missing.

    Attributes
    ----------
    column:
        Source column.
    dtype:
        ``"int64"`` or ``"string"``: how the values are compared.
    values:
        Kept train values (count ≥ ``min_count``), sorted.
    """

    column: str
    dtype: str
    values: list[Any]
    _array: pa.Array = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._array = pa.array(self.values, type=pa.int64() if self.dtype == "int64" else pa.string())

    @property
    def cardinality(self) -> int:
        """Number of ids including 0."""
        return len(self.values) + 1

    @classmethod
    def fit(cls, column: str, col: pa.ChunkedArray, min_count: int) -> "Vocabulary":
        col = _as_ids(col)
        if col.type == pa.int64():
            # Sort-based unique is faster than a hash table for many distinct int64 ids, and its
            # output is already sorted.
            values, n = np.unique(col.drop_null().to_numpy(), return_counts=True)
            return cls(column=column, dtype="int64", values=values[n >= min_count].tolist())
        counts = pc.value_counts(col)
        values, n = counts.field("values"), counts.field("counts")
        keep = pc.and_(pc.is_valid(values), pc.greater_equal(n, min_count))
        kept = values.filter(keep)
        if pa.types.is_null(kept.type):
            kept = pa.array([], type=pa.string())
        kept = kept.take(pc.array_sort_indices(kept))
        return cls(column=column, dtype="string", values=kept.to_pylist())

    def encode(self, col: pa.ChunkedArray) -> np.ndarray:
        """Ids ``[N]`` int64 for a raw column: known values → ``1..K``, everything else → 0."""
        col = _as_ids(col)
        if pa.types.is_null(col.type) or len(self.values) == 0:
            return np.zeros(len(col), dtype=np.int64)
        vocab = self._array
        if col.type != vocab.type:
            # e.g. train ids were all integers but this file has a text id: compare as text,
            # which is exact for integers and simply finds no match for the text ones.
            col, vocab = pc.cast(col, pa.string()), pc.cast(vocab, pa.string())
        pos = pc.index_in(col, value_set=vocab)
        return pos.fill_null(-1).to_numpy().astype(np.int64) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "values": list(self.values)}


@dataclass
class NumericStats:
    """Train statistics of one numeric column.

    Attributes
    ----------
    column:
        Source column.
    transform:
        ``standardize``, ``log1p`` or ``bucketize``.
    mean, std:
        Of the (log1p-transformed) train values; ``std`` is 1 for a constant column so that it
        encodes to 0 rather than dividing by zero.
    edges:
        Inner quantile edges (``bucketize``): value ``x`` gets id
        ``1 + #{edges <= x}``, missing gets 0.
    """

    column: str
    transform: str
    mean: float = 0.0
    std: float = 1.0
    edges: list[float] | None = None

    @property
    def cardinality(self) -> int:
        return len(self.edges or []) + 2

    @staticmethod
    def _prepare(x: np.ndarray, transform: str) -> np.ndarray:
        x = np.where(np.isfinite(x), x, np.nan)
        if transform == "log1p":
            # Signed log1p: heavy tails are compressed and negative values stay defined
            # (plain log1p would give NaN below -1).
            x = np.sign(x) * np.log1p(np.abs(x))
        return x

    @classmethod
    def fit(cls, spec: NumericSpec, x: np.ndarray, where: str) -> "NumericStats":
        x = cls._prepare(x, spec.transform)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            raise DataError(f"{where}: numeric column '{spec.column}' has no values in train")
        if spec.transform == "bucketize":
            q = np.arange(1, spec.buckets) / spec.buckets
            edges = np.unique(np.quantile(finite, q))
            return cls(column=spec.column, transform="bucketize", edges=[float(e) for e in edges])
        mean, std = float(finite.mean()), float(finite.std())
        return cls(column=spec.column, transform=spec.transform, mean=mean, std=std if std > 0 else 1.0)

    def encode_dense(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 values; missing → 0 (the train mean)."""
        x = self._prepare(x, self.transform)
        z = (x - self.mean) / self.std
        return np.where(np.isfinite(z), z, 0.0).astype(np.float32)

    def encode_buckets(self, x: np.ndarray) -> np.ndarray:
        """Bucket ids int64: ``1..len(edges)+1``, missing → 0."""
        x = self._prepare(x, self.transform)
        ids = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x, side="right") + 1
        return np.where(np.isfinite(x), ids, 0).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        if self.transform == "bucketize":
            return {"transform": self.transform, "edges": list(self.edges or [])}
        return {"transform": self.transform, "mean": self.mean, "std": self.std}


@dataclass
class ScenarioCoder:
    """Raw scenario value → scenario index.

    Attributes
    ----------
    names:
        Scenario names; index ``i`` is ``names[i]``.
    keys:
        Raw values as text (``"1"`` for the integer 1) that have a scenario.
    key_index:
        Scenario index of each key.
    other:
        Index of the scenario for raw values not in ``keys`` (``None``: those are unknown).
    constant:
        True when the dataset has a single scenario and no scenario column.
    """

    names: list[str]
    keys: list[str] = field(default_factory=list)
    key_index: list[int] = field(default_factory=list)
    other: int | None = None
    constant: bool = False

    def codes(self, col: pa.ChunkedArray | None, n: int) -> tuple[np.ndarray, list[str]]:
        """Scenario index per row (``-1`` missing, ``-2`` unknown) and the unknown raw values.

        The column is dictionary-encoded first, so the raw → scenario lookup runs once per
        distinct value, then spreads to the rows with one ``take``.
        """
        if self.constant or col is None:
            return np.zeros(n, dtype=np.int64), []
        raw = _as_ids(col)
        if pa.types.is_null(raw.type):
            return np.full(n, _MISSING, dtype=np.int64), []
        encoded = pc.dictionary_encode(raw.combine_chunks())
        distinct = pc.cast(encoded.dictionary, pa.string())
        pos = pc.index_in(distinct, value_set=pa.array(self.keys, type=pa.string())).fill_null(-1).to_numpy()
        lookup = np.where(pos >= 0, np.asarray(self.key_index + [0], dtype=np.int64)[pos],
                          _UNKNOWN if self.other is None else self.other)
        # Blank text counts as missing (CSV writers disagree on how to write a missing value).
        lookup[_blank(distinct)] = _MISSING
        idx = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
        out = np.where(idx >= 0, lookup[np.maximum(idx, 0)] if len(lookup) else _MISSING, _MISSING)
        unknown = [v for v, c in zip(distinct.to_pylist(), lookup) if c == _UNKNOWN]
        return out.astype(np.int64), unknown

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "keys": list(self.keys), "key_index": list(self.key_index),
                "other": self.other, "constant": self.constant}


@dataclass
class EncodeResult:
    """What :meth:`Encoders.encode` produced from one table.

    Attributes
    ----------
    data:
        The encoded rows that were kept.
    kept_rows:
        ``[n_input]`` bool: which input rows are in ``data`` (in order).
    dropped:
        Reason → number of input rows dropped (``missing_scenario``, ``unknown_scenario``).
    """

    data: EncodedData
    kept_rows: np.ndarray
    dropped: dict[str, int]


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------


def check_no_label_leak(spec: DatasetSpec) -> None:
    """Refuse specs where a label column is also an input of the model.

    Parameters
    ----------
    spec:
        The dataset spec.

    Raises
    ------
    DataError
        A task's label column is also a categorical/numeric feature, the user column or the
        scenario column: the model would see the answer.
    """
    features = {c: "categorical" for c in spec.categorical}
    features.update({n.column: "numeric" for n in spec.numeric})
    for t in spec.tasks:
        if t.column in features:
            kind = features[t.column]
            raise DataError(f"{spec.where}: column '{t.column}' is the label of task '{t.name}' and also a "
                            f"{kind} feature; remove it from {kind} (the model would see the answer)")
        if spec.user is not None and t.column == spec.user:
            raise DataError(f"{spec.where}: column '{t.column}' is the label of task '{t.name}' and also the "
                            f"user column")
        if spec.scenario.column is not None and t.column == spec.scenario.column:
            raise DataError(f"{spec.where}: column '{t.column}' is the label of task '{t.name}' and also the "
                            f"scenario column")


class Encoders:
    """Everything fitted on train that turns a raw table into :class:`EncodedData`.

    Build with :meth:`fit`, reload with :meth:`load`; both give the same :attr:`schema` and the
    same tensors for the same table.

    Categorical fields, in this order: the ``categorical`` columns, the ``bucketize`` numerics,
    the user column when it is a prior feature (and not already categorical), then
    ``__scenario__`` when ``scenario_as_feature`` is set. Numeric features: the ``standardize``
    and ``log1p`` columns in spec order.
    """

    def __init__(self, spec: DatasetSpec, scenario: ScenarioCoder, vocabularies: dict[str, Vocabulary],
                 numeric: dict[str, NumericStats]) -> None:
        self.spec = spec
        self.scenario = scenario
        self.vocabularies = vocabularies
        self.numeric = numeric
        self._fields = self._field_layout(spec)
        self._dense = [n.column for n in spec.numeric if n.transform != "bucketize"]

    # ---- layout ----------------------------------------------------------------------------

    @staticmethod
    def _field_layout(spec: DatasetSpec) -> list[tuple[str, str]]:
        """``(field name, kind)`` per categorical field; kind is vocab, bucket or scenario."""
        fields = [(c, "vocab") for c in spec.categorical]
        fields += [(n.column, "bucket") for n in spec.numeric if n.transform == "bucketize"]
        if spec.user is not None and spec.user in spec.prior_features and spec.user not in spec.categorical:
            fields.append((spec.user, "vocab"))
        if spec.scenario_as_feature:
            fields.append((SCENARIO_FIELD, "scenario"))
        return fields

    @property
    def schema(self) -> DataSchema:
        """What a model needs to size itself."""
        cards = []
        for name, kind in self._fields:
            if kind == "vocab":
                cards.append((name, self.vocabularies[name].cardinality))
            elif kind == "bucket":
                cards.append((name, self.numeric[name].cardinality))
            else:
                cards.append((name, len(self.scenario.names) + 1))
        spec = self.spec
        return DataSchema(
            categorical=tuple(cards),
            numeric=tuple(self._dense),
            scenarios=tuple(self.scenario.names),
            tasks=spec.task_names,
            task_roles={t.name: t.role for t in spec.tasks if t.role is not None},
            conversion_without_click=spec.conversion_without_click,
            prior_fields=tuple(spec.prior_features),
            has_user=spec.user is not None,
        )

    # ---- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(cls, spec: DatasetSpec, train_table: pa.Table, *, source: str = "train") -> "Encoders":
        """Fit vocabularies, numeric statistics and scenarios on the train split.

        Parameters
        ----------
        spec:
            The dataset spec.
        train_table:
            The raw train rows (at least the spec's feature and scenario columns).
        source:
            How to call this table in messages, e.g. ``"train (reviews.csv)"``.

        Raises
        ------
        DataError
            A label column is also a feature; a column is missing; train is empty; a scenario
            value is not in the mapping; a declared scenario has no train rows; a numeric column
            has no values.
        """
        check_no_label_leak(spec)
        where = spec.where
        _require_columns(spec, train_table, spec.required_columns(labels=False), source)
        if train_table.num_rows == 0:
            raise DataError(f"{where}: {source} has no rows")
        scenario, keep = cls._fit_scenarios(spec, train_table, source)
        if not keep.all():
            train_table = train_table.filter(pa.array(keep))
        vocab_cols = [c for c, kind in cls._field_layout(spec) if kind == "vocab"]
        vocabularies = {}
        for c in vocab_cols:
            try:
                vocabularies[c] = Vocabulary.fit(c, train_table.column(c), spec.min_count)
            except DataError as exc:
                raise DataError(f"{where}: {source} column '{c}': {exc}") from None
        numeric = {}
        for n in spec.numeric:
            x = _as_float(train_table.column(n.column), f"{where}: {source} numeric column '{n.column}'")
            numeric[n.column] = NumericStats.fit(n, x, where)
        return cls(spec, scenario, vocabularies, numeric)

    @staticmethod
    def _fit_scenarios(spec: DatasetSpec, table: pa.Table, source: str) -> tuple[ScenarioCoder, np.ndarray]:
        """The scenario coder, and which train rows have a scenario (the others are not fitted on)."""
        sc = spec.scenario
        n = table.num_rows
        if sc.constant is not None:
            return ScenarioCoder(names=[sc.constant], constant=True), np.ones(n, dtype=bool)
        col = table.column(sc.column)
        if sc.mapping is not None:
            names = sc.declared_names()
            keys = list(sc.mapping)
            coder = ScenarioCoder(names=names, keys=keys, key_index=[names.index(sc.mapping[k]) for k in keys],
                                  other=None if sc.other is None else names.index(sc.other))
        else:
            raw = _as_ids(col)
            uniq = pc.unique(raw.drop_null()) if not pa.types.is_null(raw.type) else pa.array([], pa.string())
            uniq = uniq.take(pc.array_sort_indices(uniq))  # numeric order for integer scenarios
            text = pc.cast(uniq, pa.string())
            names = text.filter(pc.invert(pa.array(_blank(text)))).to_pylist()
            if not names:
                raise DataError(f"{spec.where}: scenario column '{sc.column}' is empty in {source}")
            coder = ScenarioCoder(names=names, keys=list(names), key_index=list(range(len(names))))
        codes, unknown = coder.codes(col, n)
        if unknown:
            raise DataError(f"{spec.where}: scenario column '{sc.column}' has value(s) {_text_values(unknown)} in "
                            f"{source} that are not in scenario.mapping; add them or set scenario.other")
        keep = codes >= 0
        n_missing = int((codes == _MISSING).sum())
        if n_missing and not sc.drop_missing:
            raise DataError(f"{spec.where}: {n_missing} row(s) of {source} have no value in scenario column "
                            f"'{sc.column}'; set scenario.drop_missing: true to drop them")
        counts = np.bincount(codes[keep], minlength=len(coder.names))
        empty_names = [name for name, c in zip(coder.names, counts) if c == 0]
        if empty_names:
            raise DataError(f"{spec.where}: scenario(s) {empty_names} declared in the spec (scenario.mapping/other) "
                            f"have no rows in {source}; a model could not learn them, remove them from the spec")
        if not keep.any():
            raise DataError(f"{spec.where}: {source} has no rows left after dropping {n_missing} row(s) with a "
                            f"missing scenario")
        return coder, keep

    # ---- transforming ----------------------------------------------------------------------

    def encode(self, table: pa.Table, *, source: str, require_labels: bool = True,
               unknown_scenario: UnknownScenario = "error", allow_empty: bool = False) -> EncodeResult:
        """Encode a raw table, reporting which rows were kept and why the others were dropped.

        Parameters
        ----------
        table:
            Raw rows with the spec's columns.
        source:
            How to call this table in messages, e.g. ``"test (c.csv)"``.
        require_labels:
            If False, absent label columns give ``label_mask`` False instead of an error.
        unknown_scenario:
            ``"error"``: a scenario value that train did not have is a :class:`DataError`;
            ``"drop"``: such rows are dropped and counted.
        allow_empty:
            Accept a table with no (remaining) rows instead of raising.

        Returns
        -------
        EncodeResult
        """
        spec = self.spec
        where = spec.where
        if unknown_scenario not in ("error", "drop"):
            raise ValueError(f"unknown_scenario must be 'error' or 'drop', got {unknown_scenario!r}")
        _require_columns(spec, table, spec.required_columns(labels=False), source)
        if require_labels:
            label_cols = [c for t in spec.tasks for c in (t.column, t.rule.column if t.rule else None) if c]
            _require_columns(spec, table, label_cols, source)
        n_in = table.num_rows
        if n_in == 0 and not allow_empty:
            raise DataError(f"{where}: {source} has no rows")

        col = None if self.scenario.constant else table.column(spec.scenario.column)
        codes, unknown = self.scenario.codes(col, n_in)
        dropped: dict[str, int] = {}
        n_missing = int((codes == _MISSING).sum())
        if n_missing:
            if not spec.scenario.drop_missing:
                raise DataError(f"{where}: {n_missing} row(s) of {source} have no value in scenario column "
                                f"'{spec.scenario.column}'; set scenario.drop_missing: true to drop them")
            dropped["missing_scenario"] = n_missing
        if unknown:
            if unknown_scenario == "error":
                if spec.scenario.mapping is not None:
                    raise DataError(f"{where}: scenario column '{spec.scenario.column}' has value(s) "
                                    f"{_text_values(unknown)} in {source} that are not in scenario.mapping; add "
                                    f"them or set scenario.other")
                raise DataError(f"{where}: scenario value(s) {_text_values(unknown)} of column "
                                f"'{spec.scenario.column}' occur in {source} but not in train; a model has no "
                                f"parameters for them")
            dropped["unknown_scenario"] = int((codes == _UNKNOWN).sum())
        keep = codes >= 0
        if not keep.all():
            table = table.filter(pa.array(keep))
            codes = codes[keep]
        n = table.num_rows
        if n == 0 and n_in > 0 and not allow_empty:
            why = ", ".join(f"{v} with {k.replace('_', ' ')}" for k, v in dropped.items())
            raise DataError(f"{where}: {source} has no rows left after dropping {why}")

        categorical = np.zeros((n, len(self._fields)), dtype=np.int64)
        for j, (name, kind) in enumerate(self._fields):
            if kind == "vocab":
                try:
                    categorical[:, j] = self.vocabularies[name].encode(table.column(name))
                except DataError as exc:
                    raise DataError(f"{where}: {source} column '{name}': {exc}") from None
            elif kind == "bucket":
                x = _as_float(table.column(name), f"{where}: {source} numeric column '{name}'")
                categorical[:, j] = self.numeric[name].encode_buckets(x)
            else:
                categorical[:, j] = codes + 1  # id 0 stays "unknown", as in every field
        numeric = np.zeros((n, len(self._dense)), dtype=np.float32)
        for j, name in enumerate(self._dense):
            x = _as_float(table.column(name), f"{where}: {source} numeric column '{name}'")
            numeric[:, j] = self.numeric[name].encode_dense(x)

        labels = np.zeros((n, len(spec.tasks)), dtype=np.float32)
        mask = np.zeros((n, len(spec.tasks)), dtype=bool)
        for j, task in enumerate(spec.tasks):
            needed = [task.column] + ([task.rule.column] if task.rule and task.rule.column else [])
            if all(c in table.column_names for c in needed):
                labels[:, j], mask[:, j] = _encode_label(spec, task, table, source)

        user = None
        if spec.user is not None:
            user = torch.from_numpy(_user_ids(table.column(spec.user)))
        data = EncodedData(
            categorical=torch.from_numpy(categorical),
            numeric=torch.from_numpy(numeric),
            scenario=torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64)),
            labels=torch.from_numpy(labels),
            label_mask=torch.from_numpy(mask),
            user=user,
        )
        return EncodeResult(data=data, kept_rows=keep, dropped=dropped)

    def transform(self, table: pa.Table, *, source: str, require_labels: bool = True,
                  unknown_scenario: UnknownScenario = "error") -> EncodedData:
        """Encode a raw table (see :meth:`encode`); rows dropped for their scenario are not
        reported here, use :meth:`encode` or :meth:`transform_for_prediction` to know which."""
        return self.encode(table, source=source, require_labels=require_labels,
                           unknown_scenario=unknown_scenario).data

    def transform_for_prediction(self, table: pa.Table, *, source: str) -> tuple[EncodedData, np.ndarray]:
        """Encode rows to score: labels optional, rows whose scenario is missing or unknown to
        the model are dropped instead of failing.

        Returns
        -------
        (EncodedData, numpy.ndarray)
            The encoded kept rows, and the ``[n_input]`` bool mask of kept input rows (so
            predictions can be written back next to the right input rows).
        """
        result = self.encode(table, source=source, require_labels=False, unknown_scenario="drop", allow_empty=True)
        return result.data, result.kept_rows

    # ---- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "spec_source": self.spec.source,
            "spec": self.spec.to_dict(),
            "scenario": self.scenario.to_dict(),
            "vocabularies": {c: v.to_dict() for c, v in self.vocabularies.items()},
            "numeric": {c: s.to_dict() for c, s in self.numeric.items()},
            "schema": self.schema.to_dict(),
        }

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``encoders.json`` into ``directory`` (created if needed); returns its path.

        The file is written to a temporary name and renamed, so a crash never leaves half a file.

        Raises
        ------
        CheckpointError
            The file exists and ``overwrite`` is False.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ENCODERS_FILE
        if path.exists() and not overwrite:
            raise CheckpointError(f"{path} already exists; pass overwrite=True to replace it")
        tmp = path.with_suffix(".json.tmp")
        # allow_nan=False: every number is finite by construction; a NaN would not be JSON.
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "Encoders":
        """Read encoders saved by :meth:`save` (``directory`` or the ``encoders.json`` path itself).

        Raises
        ------
        CheckpointError
            The file is missing, not JSON, or not an encoders file of a supported version.
        """
        path = Path(directory)
        if path.is_dir():
            path = path / ENCODERS_FILE
        if not path.is_file():
            raise CheckpointError(f"encoders file not found: {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise CheckpointError(f"{path} is not an msmtrec encoders file")
        if d.get("version") != _VERSION:
            raise CheckpointError(f"{path} has encoders format version {d.get('version')}; this msmtrec reads "
                                  f"version {_VERSION}")
        try:
            spec = load_spec(d["spec"], source=str(d.get("spec_source", "<dict>")))
            scenario = ScenarioCoder(**d["scenario"])
            vocabularies = {c: Vocabulary(column=c, dtype=v["dtype"], values=v["values"])
                            for c, v in d["vocabularies"].items()}
            numeric = {c: NumericStats(column=c, **s) for c, s in d["numeric"].items()}
            enc = cls(spec, scenario, vocabularies, numeric)
            stored = DataSchema.from_dict(d["schema"])
        except (KeyError, TypeError, ValueError, pa.ArrowException, SpecError) as exc:
            raise CheckpointError(f"{path} is incomplete or corrupt: {type(exc).__name__}: {exc}") from None
        if enc.schema != stored:
            raise CheckpointError(f"{path} is inconsistent: its schema does not match its encoders")
        return enc

    def __repr__(self) -> str:
        s = self.schema
        return (f"Encoders(spec={self.spec.name!r}, fields={s.num_fields}, numeric={len(s.numeric)}, "
                f"scenarios={list(s.scenarios)}, tasks={list(s.tasks)})")


# --------------------------------------------------------------------------------------------
# Labels, users, column checks
# --------------------------------------------------------------------------------------------

_RULE_HINT = "give the task a rule to binarise it, e.g. rule: {op: '>', value: 0}"
_OPS = {"==": pc.equal, "!=": pc.not_equal, ">": pc.greater, ">=": pc.greater_equal, "<": pc.less,
        "<=": pc.less_equal}


def _encode_label(spec: DatasetSpec, task: TaskSpec, table: pa.Table, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labels float32 [N], observed bool [N])`` for one task; null → not observed, never 0."""
    col = _nan_to_null(_decode_dictionary(table.column(task.column)))
    rule = task.rule
    if rule is None:
        if pa.types.is_null(col.type):
            return np.zeros(len(col), np.float32), np.zeros(len(col), bool)
        x = _as_float_label(col)
        if x is None:
            bad = pc.unique(col.drop_null()).to_pylist()
            bad = [v for v in bad if str(v) not in ("0", "1")]
            raise DataError(f"{spec.where}: task '{task.name}' column '{task.column}' must be 0/1 after its rule, "
                            f"found values {_text_values(sorted(bad, key=str))} in {source}; {_RULE_HINT}")
        observed = ~np.isnan(x)
        values = x[observed]
        bad_mask = (values != 0) & (values != 1)
        if bad_mask.any():
            bad = np.unique(values[bad_mask])
            shown = [int(v) if float(v).is_integer() else float(v) for v in bad]
            raise DataError(f"{spec.where}: task '{task.name}' column '{task.column}' must be 0/1 after its rule, "
                            f"found values {_text_values(shown)} in {source}; {_RULE_HINT}")
        return np.where(observed, x, 0.0).astype(np.float32), observed
    if rule.column is not None:
        right: Any = _nan_to_null(_decode_dictionary(table.column(rule.column)))
        right_text = f"column '{rule.column}' ({right.type})"
    else:
        right = rule.value
        right_text = f"{rule.value!r}"
    try:
        result = _OPS[rule.op](col, right)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        raise DataError(f"{spec.where}: task '{task.name}' rule cannot compare column '{task.column}' ({col.type}) "
                        f"with {right_text} in {source}; use a value of the column's type") from None
    observed = pc.is_valid(result).to_numpy(zero_copy_only=False)
    labels = result.fill_null(False).to_numpy(zero_copy_only=False).astype(np.float32)
    return labels, observed


def _as_float_label(col: pa.ChunkedArray) -> np.ndarray | None:
    """A label column as float64 (NaN = missing), or None if it is not numeric/boolean."""
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return pc.cast(col, pa.float64()).to_numpy()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:  # "0"/"1" stored as text is still 0/1; anything else is reported by the caller
            return _nan_to_null(pc.cast(col, pa.float64())).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    return None


def _user_ids(col: pa.ChunkedArray) -> np.ndarray:
    """User ids ``[N]`` int64 for grouping (GAUC): integer ids as they are, exactly; text ids
    numbered by first appearance within this table. Missing → -1."""
    col = _as_ids(col)
    if col.type == pa.int64():
        return np.array(col.fill_null(-1).to_numpy(), dtype=np.int64)  # a writable copy for torch
    if pa.types.is_null(col.type):
        return np.full(len(col), -1, dtype=np.int64)
    encoded = pc.dictionary_encode(col.combine_chunks())
    return encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _require_columns(spec: DatasetSpec, table: pa.Table, columns: Sequence[str], source: str) -> None:
    have = set(table.column_names)
    missing = [c for c in columns if c not in have]
    if missing:
        shown = ", ".join(f"'{c}'" for c in table.column_names[:8])
        more = f", ... ({table.num_columns - 8} more)" if table.num_columns > 8 else ""
        raise DataError(f"{spec.where}: {source} is missing column(s) {', '.join(repr(c) for c in missing)} "
                        f"(available: {shown}{more})")
