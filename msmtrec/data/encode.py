"""Encoders: everything fitted on the TRAIN split (by :class:`~msmtrec.data.fitter.EncodersFitter`)
that turns raw rows into :class:`EncodedData`, chunk by chunk (:class:`SplitEncoder`) into
preallocated tensors. Everything is vectorised with ``pyarrow.compute`` and numpy, ids are
``int64`` from file to tensor, and the fitted state is saved as human-readable JSON
(``encoders.json``) that reloads to bit-identical tensors.

Data checks that need the rows raise :class:`~msmtrec.errors.DataError` with the spec file, the
column and the split (``source``) in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from msmtrec.data.columns import as_float, as_ids, missing_columns, shown
from msmtrec.data.encoded import DataSchema, EncodedBuilder, EncodedData, ListFeature
from msmtrec.data.fit.labels import encode_label, label_columns
from msmtrec.data.fit.lists import list_entries, padded
from msmtrec.data.fit.numeric import NumericStats
from msmtrec.data.fit.scenario import MISSING, UNKNOWN, ScenarioCoder, no_scenario, unmapped
from msmtrec.data.fit.vocabulary import Vocabulary
from msmtrec.data.history import HistoryBuilder, HistoryLookup
from msmtrec.data.io import ROW_COLUMN
from msmtrec.data.spec import SCENARIO_FIELD, DatasetSpec, load_spec
from msmtrec.errors import CheckpointError, DataError, SpecError
from msmtrec.files import atomic_write, check_format, read_json

__all__ = ["ENCODERS_FILE", "EncodeResult", "Encoders", "NumericStats", "ScenarioCoder",
           "SplitEncoder", "UserIds", "Vocabulary", "check_no_label_leak"]

#: File name written by :meth:`Encoders.save`.
ENCODERS_FILE = "encoders.json"
_FORMAT = "msmtrec.encoders"
_VERSION = 1

UnknownScenario = Literal["error", "drop"]


def check_no_label_leak(spec: DatasetSpec) -> None:
    """Refuse a spec where a label column is also an input of the model (it would see the answer).

    Raises:
        DataError: a task's label column is also a categorical/numeric/list feature, the user
            column, the scenario column, or the user or time of a built history (rows would see
            the events of rows with the same label, or be ordered by it).
    """
    features = {c: "categorical" for c in spec.categorical}
    features.update({n.column: "numeric" for n in spec.numeric})
    features.update({e.column: f"multi_categorical[{n!r}]" for n, e in spec.multi_categorical.items()})
    for n, s in spec.sequences.items():
        features.update({s.column: f"sequences[{n!r}]"} if s.column is not None else
                        {s.user: f"sequences[{n!r}].user", s.time: f"sequences[{n!r}].time"})
    also = {spec.scenario.column: "the scenario column", spec.user: "the user column"}
    also.update({c: f"a {kind} feature; remove it from {kind.split('[')[0]} (the model would see the answer)"
                 for c, kind in features.items()})
    for t in spec.tasks:
        if t.column in also:
            raise DataError(f"{spec.where}: column '{t.column}' is the label of task '{t.name}' and also {also[t.column]}")


def field_layout(spec: DatasetSpec) -> list[tuple[str, str]]:
    """``(field name, kind)`` per categorical field, kind ``vocab``, ``bucket`` or ``scenario``: the
    ``categorical`` columns, the ``bucketize`` numerics, the user column when it is a prior feature
    (and not already categorical), then ``__scenario__`` when ``scenario_as_feature`` is set."""
    fields = [(c, "vocab") for c in spec.categorical]
    fields += [(n.column, "bucket") for n in spec.numeric if n.transform == "bucketize"]
    if spec.user is not None and spec.user in spec.prior_features and spec.user not in spec.categorical:
        fields.append((spec.user, "vocab"))
    if spec.scenario_as_feature:
        fields.append((SCENARIO_FIELD, "scenario"))
    return fields


@dataclass
class EncodeResult:
    """What :meth:`Encoders.encode` produced from one table.

    Attributes:
        data: the encoded rows that were kept.
        kept_rows: ``[n_input]`` bool: which input rows are in ``data`` (in order).
        dropped: reason → number of input rows dropped (``missing_scenario``, ``unknown_scenario``).
    """

    data: EncodedData
    kept_rows: np.ndarray
    dropped: dict[str, int]


class UserIds:
    """User ids ``[N]`` int64 for grouping (GAUC): integer ids as they are, exactly; text ids
    numbered by first appearance, consistently across the chunks of one split. Missing → -1."""

    def __init__(self) -> None:
        self._text: dict[str, int] = {}

    def __call__(self, col: pa.ChunkedArray | pa.Array) -> np.ndarray:
        col = as_ids(col)
        if col.type == pa.int64():
            return np.array(col.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        if pa.types.is_null(col.type):
            return np.full(len(col), -1, dtype=np.int64)
        encoded = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
        ids = np.array([self._text.setdefault(v, len(self._text)) for v in encoded.dictionary.to_pylist()] + [-1],
                       dtype=np.int64)
        return ids[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)]


class Encoders:
    """Everything fitted on train that turns a raw table into :class:`EncodedData`.

    Build with :meth:`fit` (or :class:`~msmtrec.data.fitter.EncodersFitter`), reload with :meth:`load`; both give the
    same :attr:`schema` and the same tensors for the same table. Categorical fields follow
    :func:`field_layout`; numeric features are the ``standardize`` and ``log1p`` columns in spec
    order.
    """

    def __init__(self, spec: DatasetSpec, scenario: ScenarioCoder, vocabularies: dict[str, Vocabulary],
                 numeric: dict[str, NumericStats], lists: dict[str, Vocabulary] | None = None) -> None:
        self.spec, self.scenario, self.vocabularies, self.numeric = spec, scenario, vocabularies, numeric
        self.lists = lists or {}  # the multi_categorical vocabularies, by feature name
        self._fields = field_layout(spec)
        self._dense = [n.column for n in spec.numeric if n.transform != "bucketize"]

    @property
    def schema(self) -> DataSchema:
        """What a model needs to size itself."""
        size = {"vocab": lambda c: self.vocabularies[c].cardinality, "bucket": lambda c: self.numeric[c].cardinality,
                "scenario": lambda _: len(self.scenario.names) + 1}
        spec = self.spec
        lists = [ListFeature(n, e.max_len, e.pooling, cardinality=self.lists[n].cardinality)
                 for n, e in spec.multi_categorical.items()]
        lists += [ListFeature(n, s.max_len, s.pooling, fields=s.fields) for n, s in spec.sequences.items()]
        return DataSchema(
            categorical=tuple((name, size[kind](name)) for name, kind in self._fields), numeric=tuple(self._dense),
            scenarios=tuple(self.scenario.names),
            tasks=spec.task_names, task_roles={t.name: t.role for t in spec.tasks if t.role is not None},
            conversion_without_click=spec.conversion_without_click, prior_fields=tuple(spec.prior_features),
            has_user=spec.user is not None, lists=tuple(lists))

    @classmethod
    def fit(cls, spec: DatasetSpec, train: pa.Table | Iterable[pa.Table], *, source: str = "train") -> "Encoders":
        """Fit on the train rows: one table, or an iterable of chunks (see
        :class:`~msmtrec.data.fitter.EncodersFitter`)."""
        from msmtrec.data.fitter import EncodersFitter  # it builds Encoders: imported when called

        fitter = EncodersFitter(spec)
        for table in [train] if isinstance(train, pa.Table) else train:
            fitter.update(table, source)
        return fitter.finish(source)

    # ---- transforming ----------------------------------------------------------------------

    def encode(self, table: pa.Table, *, source: str, require_labels: bool = True,
               unknown_scenario: UnknownScenario = "error", drop_missing: bool | None = None,
               allow_empty: bool = False, users: UserIds | None = None,
               history: HistoryLookup | None = None) -> EncodeResult:
        """Encode raw rows, reporting which were kept and why the others were dropped.

        Args:
            table: raw rows with the spec's columns.
            source: how to call them in messages, e.g. ``"test (c.csv)"``.
            require_labels: if False, absent label columns give ``label_mask`` False.
            unknown_scenario: ``"error"`` (a scenario train did not have is a :class:`DataError`)
                or ``"drop"`` (such rows are dropped and counted).
            drop_missing: drop (and count) rows without a scenario, or refuse them; None: as the
                spec's ``scenario.drop_missing`` says.
            allow_empty: accept a table with no (remaining) rows instead of raising.
            users: the text-user numbering to continue (chunks of one split share one).
            history: the built histories of the table's rows (by their :data:`ROW_COLUMN`);
                None: built from the table itself (its rows are the whole log).
        """
        spec, where = self.spec, self.spec.where
        if unknown_scenario not in ("error", "drop"):
            raise ValueError(f"unknown_scenario must be 'error' or 'drop', got {unknown_scenario!r}")
        require_columns(spec, table, spec.required_columns(labels=False), source)
        if require_labels:
            require_columns(spec, table, [c for t in spec.tasks for c in label_columns(t)], source)
        n_in = table.num_rows
        if n_in == 0 and not allow_empty:
            raise DataError(f"{where}: {source} has no rows")
        if ROW_COLUMN not in table.column_names:
            table = table.append_column(ROW_COLUMN, pa.array(np.arange(n_in, dtype=np.int64)))
        if history is None and any(s.built for s in spec.sequences.values()):  # the table is the whole log
            builder = HistoryBuilder(self)
            builder.update(0, table, source)
            history = builder.finish().split(0)

        col = None if self.scenario.constant else table.column(spec.scenario.column)
        codes, unknown = self.scenario.codes(col, n_in)
        dropped: dict[str, int] = {}
        n_missing = int((codes == MISSING).sum())
        if n_missing:
            if not (spec.scenario.drop_missing if drop_missing is None else drop_missing):
                raise no_scenario(where, n_missing, source, spec.scenario.column)
            dropped["missing_scenario"] = n_missing
        if unknown:
            if unknown_scenario == "error":
                if spec.scenario.mapping is not None:
                    raise unmapped(where, spec.scenario.column, unknown, source)
                raise DataError(f"{where}: scenario value(s) {shown(unknown)} of column '{spec.scenario.column}' "
                                f"occur in {source} but not in train; a model has no parameters for them: map them onto a "
                                f"trained scenario with scenario.mapping and scenario.other, or remove those rows")
            dropped["unknown_scenario"] = int((codes == UNKNOWN).sum())
        keep = codes >= 0
        if not keep.all():
            table = table.filter(pa.array(keep))
            codes = codes[keep]
        n = table.num_rows
        if n == 0 and n_in > 0 and not allow_empty:
            why = ", ".join(f"{v:,} with {k.replace('_', ' ')}" for k, v in dropped.items())
            raise DataError(f"{where}: {source} has no rows left after dropping {why}")

        categorical = np.zeros((n, len(self._fields)), dtype=np.int64)
        for j, (name, kind) in enumerate(self._fields):
            if kind == "vocab":
                try:
                    categorical[:, j] = self.vocabularies[name].encode(table.column(name))
                except DataError as exc:
                    raise DataError(f"{where}: {source} column '{name}': {exc}") from None
            elif kind == "bucket":
                categorical[:, j] = self.numeric[name].encode_buckets(self._floats(table, name, source))
            else:
                categorical[:, j] = codes + 1  # id 0 stays "unknown", as in every field
        numeric = np.zeros((n, len(self._dense)), dtype=np.float32)
        for j, name in enumerate(self._dense):
            numeric[:, j] = self.numeric[name].encode_dense(self._floats(table, name, source))
        labels = np.zeros((n, len(spec.tasks)), dtype=np.float32)
        mask = np.zeros((n, len(spec.tasks)), dtype=bool)
        for j, task in enumerate(spec.tasks):
            if all(c in table.column_names for c in label_columns(task)):
                labels[:, j], mask[:, j] = encode_label(where, task, table, source)
        user = lists = lengths = None
        if spec.user is not None:
            user = torch.from_numpy((users or UserIds())(table.column(spec.user)))
        if spec.multi_categorical or spec.sequences:
            lists, lengths = (torch.from_numpy(a) for a in self._lists(table, source, history))
        data = EncodedData(categorical=torch.from_numpy(categorical), numeric=torch.from_numpy(numeric),
                           scenario=torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64)),
                           labels=torch.from_numpy(labels), label_mask=torch.from_numpy(mask), user=user,
                           lists=lists, list_lengths=lengths)
        return EncodeResult(data=data, kept_rows=keep, dropped=dropped)

    def _lists(self, table: pa.Table, source: str, history: HistoryLookup | None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [n, W], lengths [n, K])`` of the schema's list features (see :class:`EncodedData`)."""
        spec, blocks = self.spec, []
        features: list[tuple[str, str, Any, Vocabulary | None]] = [
            ("multi_categorical", n, e, self.lists[n]) for n, e in spec.multi_categorical.items()]
        features += [("sequences", n, s, None if s.built else self.vocabularies[s.item]) for n, s in spec.sequences.items()]
        for key, name, entry, vocabulary in features:
            if vocabulary is None:  # a history built from the log
                assert history is not None
                blocks.append(history(name, table.column(ROW_COLUMN).to_numpy()))
                continue
            entries, offsets = list_entries(table.column(entry.column), entry.sep,
                                            f"{spec.where}: {source} column '{entry.column}' ({key}[{name!r}])")
            blocks.append(padded(vocabulary.encode(entries), offsets[:-1], offsets[1:], entry.max_len))
        return (np.concatenate([ids for ids, _ in blocks], axis=1),
                np.ascontiguousarray(np.stack([n for _, n in blocks], axis=1)))

    def _floats(self, table: pa.Table, name: str, source: str) -> np.ndarray:
        return as_float(table.column(name), f"{self.spec.where}: {source} numeric column '{name}'")

    def transform(self, table: pa.Table, *, source: str, require_labels: bool = True,
                  unknown_scenario: UnknownScenario = "error") -> EncodedData:
        """The encoded kept rows of :meth:`encode`."""
        return self.encode(table, source=source, require_labels=require_labels,
                           unknown_scenario=unknown_scenario).data

    def transform_for_prediction(self, table: pa.Table, *, source: str,
                                 unknown_scenario: UnknownScenario = "drop") -> EncodeResult:
        """Rows to score: label columns are not read, and rows without a scenario (or, with
        ``unknown_scenario="drop"``, with one the model does not know) are dropped and counted."""
        label_only = {c for t in self.spec.tasks for c in label_columns(t)} - set(self.spec.required_columns(labels=False))
        features = table.drop_columns([c for c in table.column_names if c in label_only])
        return self.encode(features, source=source, require_labels=False, unknown_scenario=unknown_scenario,
                           drop_missing=True, allow_empty=True)

    def empty(self) -> EncodedData:
        """No rows, with this encoder's columns (a template for :class:`EncodedBuilder`)."""
        spec, schema = self.spec, self.schema
        return EncodedData(categorical=torch.zeros(0, len(self._fields), dtype=torch.int64),
                           numeric=torch.zeros(0, len(self._dense)), scenario=torch.zeros(0, dtype=torch.int64),
                           labels=torch.zeros(0, len(spec.tasks)), label_mask=torch.zeros(0, len(spec.tasks), dtype=torch.bool),
                           user=None if spec.user is None else torch.zeros(0, dtype=torch.int64),
                           lists=torch.zeros(0, schema.list_width, dtype=torch.int64) if schema.lists else None,
                           list_lengths=torch.zeros(0, len(schema.lists), dtype=torch.int64) if schema.lists else None)

    # ---- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT, "version": _VERSION, "spec_source": self.spec.source, "spec": self.spec.to_dict(),
            "scenario": self.scenario.to_dict(),
            "vocabularies": {c: v.to_dict() for c, v in self.vocabularies.items()},
            "numeric": {c: s.to_dict() for c, s in self.numeric.items()},
            "lists": {n: v.to_dict() for n, v in self.lists.items()},
            "schema": self.schema.to_dict(),
        }

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``encoders.json`` into ``directory`` (created if needed), atomically; returns its path.

        Raises:
            CheckpointError: the file exists and ``overwrite`` is False.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ENCODERS_FILE
        if path.exists() and not overwrite:
            raise CheckpointError(f"{path} already exists; pass overwrite=True to replace it")
        # allow_nan=False: every number is finite by construction; a NaN would not be JSON.
        atomic_write(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "Encoders":
        """Read encoders saved by :meth:`save` (``directory`` or the ``encoders.json`` path itself).

        Raises:
            CheckpointError: the file is missing, not JSON, or not an encoders file of a supported
                version.
        """
        path = Path(directory)
        if path.is_dir():
            path = path / ENCODERS_FILE
        if not path.is_file():
            raise CheckpointError(f"encoders file not found: {path}")
        d = check_format(read_json(path, CheckpointError), path, _FORMAT, _VERSION, "encoders file", CheckpointError)
        try:
            spec = load_spec(d["spec"], source=str(d.get("spec_source", "<dict>")))
            scenario = ScenarioCoder(**d["scenario"])
            vocabularies = {c: Vocabulary(c, **v) for c, v in d["vocabularies"].items()}
            numeric = {c: NumericStats(column=c, **s) for c, s in d["numeric"].items()}
            lists = {n: Vocabulary(spec.multi_categorical[n].column, **v) for n, v in d.get("lists", {}).items()}
            enc = cls(spec, scenario, vocabularies, numeric, lists)
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


class SplitEncoder:
    """Encodes the raw chunks of one split, as they come, into one :class:`EncodedData`
    preallocated for ``capacity`` rows (see :class:`EncodedBuilder`).

    Attributes (while adding): ``rows`` read, ``kept`` rows encoded, ``dropped`` rows per reason.
    """

    def __init__(self, encoders: Encoders, source: str, capacity: int = 0, **options: Any) -> None:
        self.encoders, self.source, self.options = encoders, source, options
        self._builder = EncodedBuilder(encoders.empty(), capacity)
        self._users = UserIds()
        self.rows = self.kept = 0
        self.dropped: dict[str, int] = {}

    def add(self, table: pa.Table) -> None:
        """Encode one chunk (``options`` of :meth:`Encoders.encode` apply)."""
        self.rows += table.num_rows
        result = self.encoders.encode(table, source=self.source, allow_empty=True, users=self._users, **self.options)
        self.kept += len(result.data)
        self._builder.append(result.data)
        for k, v in result.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v

    def finish(self) -> EncodedData:
        return self._builder.finish()


def require_columns(spec: DatasetSpec, table: pa.Table, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in set(table.column_names)]
    if missing:
        have = [c for c in table.column_names if c != ROW_COLUMN]
        raise DataError(f"{spec.where}: {missing_columns(source, missing, have)}")
