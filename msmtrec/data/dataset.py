"""Datasets: a spec's files read, split, fitted on train and encoded — held in memory or streamed,
behind one interface (:class:`Dataset`): ``schema``, ``encoders``, ``val``, ``test`` and
``train_batches(epoch, rank=, world_size=)``.

One pipeline serves both (``../shared/docs/DESIGN.md``, "How data flows"):

1. **Plan** — each split's rows come from a file, either whole or one part of a row split of it
   (:class:`~msmtrec.data.io.RandomSplit` or a time split; :mod:`msmtrec.data.sources`), so both
   kinds of dataset hold exactly the same rows in each split.
2. **Fit** — one pass over the train rows, chunk by chunk, through
   :class:`~msmtrec.data.fitter.EncodersFitter` (skipped when encoders are given).
3. **Histories** — when the spec builds a history from the log, one pass over the user, item,
   time and side columns of every split builds them all (:mod:`msmtrec.data.history`); both
   kinds of dataset look their rows' histories up there.
4. **Encode** — :func:`load_dataset` encodes every split chunk by chunk into preallocated tensors
   (one more pass; a file holding several splits is read once). :func:`open_streaming` encodes
   val and test that way and reads the train split again every epoch, in a seeded order of its
   row groups, through a shuffle buffer (:mod:`msmtrec.data.stream`).

In memory is the fastest path, with an exact shuffle; it holds about ``8·F + 4·D + 8 + 5·T``
bytes per row (F categorical fields, D numerics, T tasks), plus ``8·(W + K)`` with K list
features of ``W`` ids in all (a 50-entry history: 408 bytes). Streaming holds val, test, the
shuffle buffer and the built histories (about 24 + 22·C bytes per row of the whole dataset for a
history of C channels: :mod:`msmtrec.data.history`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from msmtrec.data.catalog import resolve_spec
from msmtrec.data.encode import Encoders, SplitEncoder, check_no_label_leak
from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.data.fit.labels import check_two_classes
from msmtrec.data.fit.numeric import QUANTILE_SAMPLE
from msmtrec.data.fitter import EncodersFitter
from msmtrec.data.history import HistoryBuilder, Histories
from msmtrec.data.io import READ_ROWS, SPLITS
from msmtrec.data.quality import data_warnings
from msmtrec.data.sources import SplitSource, plan_splits, read_splits
from msmtrec.data.spec import DatasetSpec
from msmtrec.data.stream import prefetched, shuffled_batches
from msmtrec.errors import ConfigError, DataError

__all__ = ["Dataset", "InMemoryDataset", "StreamedDataset", "load_dataset", "open_dataset", "open_streaming"]

SpecLike = str | Path | DatasetSpec | Mapping[str, Any]


def _plan(spec_like: SpecLike, row_limit: int | None, encoders: Encoders | None, read_rows: int = READ_ROWS
          ) -> tuple[DatasetSpec, dict[str, SplitSource], list[str]]:
    """The resolved spec, each split's source and the columns to read (the given encoders' spec's,
    if any); without encoders, a label used as a feature is refused before anything is read."""
    spec = resolve_spec(spec_like)
    if row_limit is not None and (not isinstance(row_limit, int) or isinstance(row_limit, bool) or row_limit < 1):
        raise DataError(f"row_limit must be a positive integer, got {row_limit!r}")
    if encoders is None:
        check_no_label_leak(spec)
    return (spec, plan_splits(spec, row_limit=row_limit, read_rows=read_rows),
            (spec if encoders is None else encoders.spec).required_columns(labels=True))


def _fit(spec: DatasetSpec, train: SplitSource, columns: list[str], **options: Any) -> tuple[Encoders, dict]:
    fitter = EncodersFitter(spec, **options)
    for table in train.chunks(columns):
        fitter.update(table, train.label)
    if fitter.scenario.rows == 0:
        raise DataError(f"{spec.where}: split 'train' is empty: {train.label} has no rows")
    encoders = fitter.finish(train.label)
    check_two_classes(spec, fitter.report, train.label)
    return encoders, fitter.report


def _histories(encoders: Encoders, sources: dict[str, SplitSource]) -> Histories | None:
    """The built histories of every split (one pass over their user, item, time and side columns),
    or None when the spec builds none."""
    built = [s for s in encoders.spec.sequences.values() if s.built]
    if not built:
        return None
    builder = HistoryBuilder(encoders)
    columns = list(dict.fromkeys(c for s in built for c in (s.user, s.time, *s.fields)))
    for source, table in read_splits(list(sources.values()), columns):
        builder.update(source.index, table, source.label)
    return builder.finish()


def _encode(encoders: Encoders, sources: list[SplitSource], columns: list[str], histories: Histories | None
            ) -> tuple[dict[str, EncodedData], dict[str, dict[str, Any]]]:
    """The given splits encoded in memory, and each one's part of the report; the splits of one
    file are encoded in one pass over it."""
    out = {s.split: SplitEncoder(encoders, s.label, s.rows or 0,
                                 history=None if histories is None else histories.split(s.index)) for s in sources}
    for s, rows in read_splits(sources, columns):
        out[s.split].add(rows)
    for s in sources:
        enc = out[s.split]
        if enc.rows == 0:
            raise DataError(f"{encoders.spec.where}: split '{s.split}' is empty: {s.label} has no rows")
        if enc.kept == 0:
            why = ", ".join(f"{n:,} with {k.replace('_', ' ')}" for k, n in enc.dropped.items())
            raise DataError(f"{encoders.spec.where}: split '{s.split}' is empty: every row of {s.label} was dropped "
                            f"({why})")
    data = {s: e.finish() for s, e in out.items()}
    return data, {s: _summary(data[s], e, encoders.schema, encoders.spec.categorical) for s, e in out.items()}


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's shuffle: a function of ``(seed, epoch)`` alone, so an epoch
    can be replayed (or resumed) without replaying the ones before it."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(epoch)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state % 2**63))


class Dataset:
    """What training, evaluation and ``bench`` use of a dataset, in memory or streamed.

    Attributes:
        schema: what a model needs to size itself.
        encoders: fitted on train; saved with a run to encode new data the same way.
        spec: the resolved spec (None for tensors built in code).
        val, test: the encoded validation and test splits (always in memory).
        report: plain-data summary (JSON-serialisable): ``rows`` per split, ``rows_read`` before
            dropping, ``dropped`` per split and reason, ``scenario_rows``, ``label_positive_rate``
            and ``label_observed`` per split and task, ``files``, ``row_limit``, what fitting saw of
            train, and ``warnings`` (lines for a person); :meth:`summary` renders it.
        batch_size, seed: defaults of :meth:`train_batches`.
    """

    train: EncodedData | None = None

    def __init__(self, schema: DataSchema, val: EncodedData, test: EncodedData, *, encoders: Encoders | None = None,
                 spec: DatasetSpec | None = None, report: dict[str, Any] | None = None, batch_size: int = 2048,
                 seed: int = 0) -> None:
        self.schema, self.val, self.test, self.encoders, self.spec = schema, val, test, encoders, spec
        self.report = report or {}
        self.batch_size, self.seed = batch_size, seed

    @property
    def num_train_rows(self) -> int:
        return len(self.train)  # a streamed dataset, whose train is None, counts it otherwise

    def train_batches(self, epoch: int, *, rank: int = 0, world_size: int = 1, batch_size: int | None = None,
                      seed: int | None = None) -> Iterator[EncodedData]:
        """Shuffled training batches of one epoch: deterministic given ``(seed, epoch)`` and
        different across epochs; with ``world_size > 1`` each rank gets a disjoint share."""
        seed = self.seed if seed is None else int(seed)
        return self._batches(epoch, seed, batch_size or self.batch_size, rank, world_size)

    def _batches(self, epoch: int, seed: int, batch_size: int, rank: int, world_size: int) -> Iterator[EncodedData]:
        raise NotImplementedError

    def split(self, name: str) -> EncodedData:
        """The split called ``name`` (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        data = getattr(self, name)
        if data is None:
            raise DataError(f"the {name} split of {self.report.get('dataset', 'this dataset')} is streamed, "
                            f"not held in memory")
        return data

    def summary(self) -> str:
        """A few human-readable lines: rows per split, label rates and the report's warnings."""
        r = self.report
        lines = [f"dataset {r.get('dataset')}: " + ", ".join(f"{s} {r['rows'][s]:,}" for s in SPLITS) + " rows; "
                 f"{len(self.schema.scenarios)} scenarios ({', '.join(self.schema.scenarios)}); "
                 f"{self.schema.num_fields} categorical fields, {len(self.schema.numeric)} numeric"]
        for task in self.schema.tasks:
            rates = [f"{s} {'n/a' if (v := r['label_positive_rate'][s][task]) is None else f'{v:.3f}'}" for s in SPLITS]
            lines.append(f"task {task}: positive rate " + ", ".join(rates))
        lines += [f"warning: {w}" for w in r.get("warnings", [])]
        return "\n".join(lines)


class InMemoryDataset(Dataset):
    """Every split as tensors; an epoch's batches are slices of a seeded permutation of train
    (each rank a disjoint, equal share of it)."""

    def __init__(self, train: EncodedData, val: EncodedData, test: EncodedData, schema: DataSchema,
                 **kwargs: Any) -> None:
        super().__init__(schema, val, test, **kwargs)
        self.train = train

    def _batches(self, epoch: int, seed: int, batch_size: int, rank: int, world_size: int) -> Iterator[EncodedData]:
        return iterate_batches(self.train, batch_size, shuffle=True, generator=epoch_generator(seed, epoch), rank=rank,
                               world_size=world_size)


class StreamedDataset(Dataset):
    """Val and test in memory; the train split read from disk again every epoch: row groups in a
    seeded order, chunks encoded as they are read, batches drawn through a shuffle buffer.

    With ``world_size > 1`` every rank reads the same order and keeps every ``world_size``-th
    train row of it (disjoint shares of equal size; the remainder is dropped)."""

    def __init__(self, source: SplitSource, columns: list[str], schema: DataSchema, val: EncodedData,
                 test: EncodedData, *, train_rows: int, shuffle_buffer: int, prefetch: int,
                 histories: Histories | None = None, **kwargs: Any) -> None:
        super().__init__(schema, val, test, **kwargs)
        self._source, self._columns, self._train_rows = source, columns, train_rows
        self._history = None if histories is None else histories.split(source.index)
        self.shuffle_buffer, self.prefetch = shuffle_buffer, prefetch

    @property
    def num_train_rows(self) -> int:
        return self._train_rows

    def __len__(self) -> int:
        return self._train_rows

    def _chunks(self, epoch: int, seed: int, rank: int, world_size: int) -> Iterator[EncodedData]:
        src, encoders = self._source, self.encoders
        assert encoders is not None
        pieces = None
        if len(src.file.pieces) > 1:
            pieces = np.random.default_rng([seed, epoch, 1]).permutation(len(src.file.pieces)).tolist()
        share, seen, kept = self._train_rows // world_size, 0, 0
        for table in src.chunks(self._columns, pieces):
            data = encoders.encode(table, source=src.label, allow_empty=True, history=self._history).data
            if world_size > 1:
                index = torch.arange((rank - seen) % world_size, len(data), world_size)[:share - kept]
                seen, kept = seen + len(data), kept + len(index)
                data = data.take(index)
            yield data

    def _batches(self, epoch: int, seed: int, batch_size: int, rank: int, world_size: int) -> Iterator[EncodedData]:
        batches = shuffled_batches(self._chunks(epoch, seed, rank, world_size), batch_size, self.shuffle_buffer,
                                   epoch_generator(seed, epoch))
        if self.prefetch == 0:
            return batches
        return prefetched(batches, self.prefetch * max(1, self.shuffle_buffer // batch_size))


def _summary(data: EncodedData, encoder: SplitEncoder, schema: DataSchema, categorical: Sequence[str]
             ) -> dict[str, Any]:
    """One split's part of the report (the form of :attr:`EncodersFitter.report`), and per
    ``categorical`` column (the first fields) its rows read as unknown (id 0)."""
    codes, m = data.scenario.numpy(), schema.num_scenarios
    counts = np.bincount(codes, minlength=m)
    mask, labels = data.label_mask.numpy(), data.labels.numpy()
    n_obs, pos = mask.sum(axis=0), (labels * mask).sum(axis=0)
    by_scenario = {t: {name: {"observed": int(o), "positive": int(q)} for name, o, q in
                       zip(schema.scenarios, np.bincount(codes, weights=mask[:, j], minlength=m),
                           np.bincount(codes, weights=labels[:, j] * mask[:, j], minlength=m))}
                   for j, t in enumerate(schema.tasks)}
    return {"rows": len(data), "rows_read": encoder.rows, "dropped": encoder.dropped,
            "scenario_rows": {name: int(c) for name, c in zip(schema.scenarios, counts)},
            "label_observed": {t: int(n_obs[j]) for j, t in enumerate(schema.tasks)},
            "label_positive_rate": {t: (float(pos[j] / n_obs[j]) if n_obs[j] else None)
                                    for j, t in enumerate(schema.tasks)},
            "scenario_label_counts": by_scenario,
            "unknown_rows": dict(zip(categorical, (data.categorical[:, :len(categorical)] == 0).sum(0).tolist()))}


def _report(spec: DatasetSpec, summaries: dict[str, dict[str, Any]], row_limit: int | None,
            fitted: dict[str, Any] | None, histories: Histories | None, **extra: Any) -> dict[str, Any]:
    """The dataset report: the spec's files and split, each split's summary by key, what fitting
    saw of train (``fitted``: :attr:`EncodersFitter.report`, None when encoders were given), per
    built history and split its rows and rows with an empty history, and the warnings all of it
    gives (:func:`~msmtrec.data.quality.data_warnings`)."""
    if histories is not None:
        extra["history_rows"] = {name: {SPLITS[k]: v for k, v in by_split.items()}
                                 for name, by_split in histories.report.items()}
    f = spec.files
    files: dict[str, Any] = {k: str(getattr(f, k)) for k in ("path", *SPLITS) if getattr(f, k) is not None}
    if f.split is not None:
        files["split" if f.path is not None else "val_from_train"] = f.split.model_dump(mode="json")
    by_key = {key: {s: summaries[s][key] for s in SPLITS}
              for key in ("rows", "rows_read", "dropped", "scenario_rows", "label_positive_rate", "label_observed",
                          "scenario_label_counts")}
    report = {"dataset": spec.name, "spec": spec.source, "files": files, "row_limit": row_limit, **by_key,
              "dropped_total": int(sum(sum(d.values()) for d in by_key["dropped"].values())), **extra}
    report.update({k: fitted[k] for k in ("label_values", "categorical_values", "numeric_infinite", "list_values")}
                  if fitted else {})
    report["unknown_rows"] = {s: summaries[s]["unknown_rows"] for s in SPLITS if "unknown_rows" in summaries[s]}
    report["warnings"] = data_warnings(report, spec.min_count)
    return report


def load_dataset(spec: SpecLike, *, row_limit: int | None = None, encoders: Encoders | None = None,
                 batch_size: int = 2048, seed: int = 0) -> InMemoryDataset:
    """Read, split and encode a dataset into memory; the encoders are fitted on train only.

    Args:
        spec: a built-in dataset name, a YAML spec path, a parsed mapping or a :class:`DatasetSpec`.
        row_limit: read at most this many rows of each file (with a single file, before splitting).
        encoders: already fitted encoders (e.g. a trained run's) to encode with, so the ids match
            the model's embeddings; the spec still says which files to read and how to split them.
        batch_size, seed: defaults of :meth:`Dataset.train_batches`.

    Raises:
        SpecError: the spec is invalid or cannot be found.
        DataError: a file or column is missing, a label is not 0/1, a split is empty, a scenario
            of val/test is absent from train, ...: the message names the file, column and split.
    """
    spec, sources, columns = _plan(spec, row_limit, encoders)
    fitted = None
    if encoders is None:
        encoders, fitted = _fit(spec, sources["train"], columns)
    histories = _histories(encoders, sources)
    data, summaries = _encode(encoders, list(sources.values()), columns, histories)
    report = _report(spec, summaries, row_limit, fitted, histories)
    return InMemoryDataset(data["train"], data["val"], data["test"], encoders.schema, encoders=encoders, spec=spec,
                           report=report, batch_size=batch_size, seed=seed)


def open_streaming(spec: SpecLike, *, batch_size: int = 2048, shuffle_buffer: int = 262_144,
                   read_rows: int = READ_ROWS, seed: int = 0, row_limit: int | None = None, prefetch: int = 2,
                   quantile_sample: int = QUANTILE_SAMPLE) -> StreamedDataset:
    """A dataset whose train split streams from disk (val and test are encoded into memory).

    Args:
        spec: as for :func:`load_dataset`.
        batch_size, seed: defaults of :meth:`Dataset.train_batches` (the seed orders row groups and
            the shuffle buffer; the row split is the spec's).
        shuffle_buffer: rows held in the shuffle buffer (memory ≈ rows × bytes per encoded row).
        read_rows: rows per chunk read from disk.
        row_limit: read at most this many rows of each file.
        prefetch: chunks read and encoded ahead by a background thread (0: no thread).
        quantile_sample: values of a ``bucketize`` column kept exactly for its quantiles.
    """
    for name, value, low in (("batch_size", batch_size, 1), ("shuffle_buffer", shuffle_buffer, 1),
                             ("read_rows", read_rows, 1), ("prefetch", prefetch, 0),
                             ("quantile_sample", quantile_sample, 100)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"streaming: {name} must be an integer >= {low}, got {value!r}")
    spec, sources, columns = _plan(spec, row_limit, None, read_rows)
    # The thinning of a bucketized column's sample is seeded alike in both paths (not by ``seed``,
    # the shuffle's): the encoders are a function of the data and the spec.
    encoders, fitted = _fit(spec, sources["train"], columns, quantile_sample=quantile_sample)
    histories = _histories(encoders, sources)
    data, summaries = _encode(encoders, [sources["val"], sources["test"]], columns, histories)
    report = _report(spec, {"train": fitted, **summaries}, row_limit, fitted, histories, streaming=True,
                     shuffle_buffer=shuffle_buffer, read_rows=read_rows)
    return StreamedDataset(sources["train"], columns, encoders.schema, data["val"], data["test"], train_rows=fitted["rows"],
                           shuffle_buffer=shuffle_buffer, prefetch=prefetch, histories=histories, encoders=encoders, spec=spec,
                           report=report, batch_size=batch_size, seed=seed)


def open_dataset(config: Any, *, encoders: Encoders | None = None) -> Dataset:
    """The dataset of a run configuration (:class:`~msmtrec.config.TrainConfig`): ``data``,
    ``row_limit``, ``batch_size``, ``seed``, and ``streaming`` with ``shuffle_buffer``. With
    ``encoders`` (evaluating a trained run) the data is encoded in memory with them."""
    if config.streaming and encoders is None:
        return open_streaming(config.data, batch_size=config.batch_size, shuffle_buffer=config.shuffle_buffer,
                              seed=config.seed, row_limit=config.row_limit)
    return load_dataset(config.data, row_limit=config.row_limit, encoders=encoders, batch_size=config.batch_size,
                        seed=config.seed)
