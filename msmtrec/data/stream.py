"""Training on data larger than memory: the train split is streamed from disk, in chunks, through
a shuffle buffer, as the same :class:`EncodedData` batches the in-memory path yields.

When to use it: the in-memory path (:func:`msmtrec.data.load_dataset`) holds every split as
tensors — about ``8·F + 4·D + 8 + 5·T`` bytes per row (F categorical fields, D numerics, T tasks),
plus the raw table while encoding. When the train split does not fit, set ``streaming: true`` in
the config (``msmtrec train --stream``): only the validation and test splits are held in memory
(model selection and the final evaluation need them whole), the train split is read again every
epoch.

How it works:

1. **Fit pass** — one pass over the train file(s) fits exactly what :meth:`Encoders.fit` fits on
   an in-memory train table: category counts per field (kept if seen ``min_count`` times, sorted,
   ids ``1..K``), mean/std of the numeric features (merged per chunk, Chan et al.), the scenarios.
   Quantile edges of ``bucketize`` features come from a uniform sample of at most
   ``quantile_sample`` values (exact when train has fewer). The result is a normal
   :class:`Encoders`, saved with the run like any other.
2. **Epochs** — chunks of ``read_rows`` rows are read (Parquet row groups in a seeded order that
   changes every epoch; CSV blocks in file order), encoded with the fitted encoders, and pushed
   through a shuffle buffer of ``shuffle_buffer`` rows: when the buffer is full, it is permuted
   and everything but a reserve of half the buffer leaves as batches of ``batch_size``. A
   background thread reads and encodes the next chunk while the model trains on the current one.

Splits: a spec with ``files.train`` (+ ``val`` + ``test``) streams the train file as it is. A
single file (``files.path`` with a random split), or a train file without ``val``, is split row by
row with a seeded hash of the row number (:func:`~msmtrec.data.recipes.base.hash_split`), so the
split needs no permutation of the whole file; the parts match the fractions in expectation, and
the rows differ from the in-memory path's permutation split. Time splits need the whole table and
are not streamed.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from msmtrec.data.encode import Encoders, NumericStats, ScenarioCoder, Vocabulary, _as_ids, check_no_label_leak
from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.data.io import detect_format
from msmtrec.data.spec import DatasetSpec
from msmtrec.errors import ConfigError, DataError

__all__ = ["StreamingDataset", "open_streaming"]

SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------------------
# Reading chunks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """One readable unit of a file: a Parquet row group, or (``index`` -1) a whole CSV."""

    path: Path
    index: int
    rows: int | None


class _Source:
    """The chunks of one split file (or folder of Parquet files), read with the spec's columns.

    Parquet is read row group by row group (``read_rows`` at a time inside a big group); CSV in
    blocks, its identifier columns parsed as text and made int64 exactly when they are integers
    (never through a float), as the in-memory reader does.
    """

    def __init__(self, path: Path, fmt: str, columns: list[str], id_columns: list[str], read_rows: int,
                 row_limit: int | None) -> None:
        if not path.exists():
            raise DataError(f"data file not found: {path}")
        self.path, self.columns, self.read_rows, self.row_limit = path, columns, read_rows, row_limit
        self.kind = detect_format(path, fmt)
        self.id_columns = id_columns
        self.pieces: list[_Piece] = []
        if self.kind == "parquet":
            files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
            for f in files:
                try:
                    meta = pq.ParquetFile(f).metadata
                except (pa.ArrowException, OSError) as exc:
                    raise DataError(f"cannot read {f.name} as Parquet: {str(exc).splitlines()[0]}") from None
                names = set(pq.read_schema(f).names)
                missing = [c for c in columns if c not in names]
                if missing:
                    raise DataError(f"{f.name} is missing column(s) {', '.join(repr(c) for c in missing)}")
                self.pieces += [_Piece(f, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
        else:
            self.pieces = [_Piece(path, -1, None)]

    @property
    def rows(self) -> int | None:
        """Rows in the file(s) when the format says so without reading them (Parquet)."""
        if any(p.rows is None for p in self.pieces):
            return None
        n = sum(p.rows for p in self.pieces)  # type: ignore[misc]
        return n if self.row_limit is None else min(n, self.row_limit)

    def chunks(self, order: np.ndarray | None = None) -> Iterator[tuple[int, pa.Table]]:
        """``(first row number, table)`` per chunk; ``order`` permutes the Parquet row groups.

        Row numbers are positions in the file (before ``order``), so a row keeps its number —
        and its hash split — whatever order the pieces are read in.
        """
        starts = np.cumsum([0] + [p.rows or 0 for p in self.pieces])
        idx = range(len(self.pieces)) if order is None else order
        for i in idx:
            piece = self.pieces[i]
            first = int(starts[i])
            if self.row_limit is not None and first >= self.row_limit:
                continue
            for table in self._read_piece(piece):
                if self.row_limit is not None:
                    if first >= self.row_limit:
                        break
                    table = table.slice(0, self.row_limit - first)
                yield first, table
                first += table.num_rows

    def _read_piece(self, piece: _Piece) -> Iterator[pa.Table]:
        try:
            if self.kind == "parquet":
                pf = pq.ParquetFile(piece.path)
                for batch in pf.iter_batches(batch_size=self.read_rows, row_groups=[piece.index], columns=self.columns):
                    yield pa.Table.from_batches([batch])
            else:
                header = pacsv.open_csv(piece.path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
                missing = [c for c in self.columns if c not in header]
                if missing:
                    raise DataError(f"{piece.path.name} is missing column(s) {', '.join(repr(c) for c in missing)}")
                types = {c: pa.string() for c in self.id_columns}
                reader = pacsv.open_csv(piece.path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                        convert_options=pacsv.ConvertOptions(include_columns=self.columns,
                                                                             column_types=types,
                                                                             strings_can_be_null=True))
                for batch in reader:
                    yield _exact_int_ids(pa.Table.from_batches([batch]), self.id_columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {piece.path.name}: {str(exc).splitlines()[0]}") from None


def _exact_int_ids(table: pa.Table, id_columns: list[str]) -> pa.Table:
    """Text ids → int64 when every value of the chunk is an integer literal (as the in-memory CSV
    reader does for the whole column); a chunk with a non-integer id keeps the column as text, and
    :func:`_unify` / the vocabulary merge make all chunks text then."""
    for c in id_columns:
        if c in table.column_names and pa.types.is_string(table.schema.field(c).type):
            try:
                table = table.set_column(table.schema.get_field_index(c), c, pc.cast(table.column(c), pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    return table


def _unify(tables: list[pa.Table]) -> pa.Table:
    """Concatenate chunks whose id columns may be int64 in some and text in others (→ text)."""
    if len({t.schema for t in tables}) > 1:
        text = {f.name for t in tables for f in t.schema if pa.types.is_string(f.type)}
        tables = [t.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in text else f for f in t.schema]))
                  for t in tables]
    return pa.concat_tables(tables)


# --------------------------------------------------------------------------------------------
# Fitting the encoders in one pass
# --------------------------------------------------------------------------------------------


class _CategoryCounts:
    """Counts of one categorical column over chunks: int64 values in sorted arrays, text in a dict."""

    def __init__(self) -> None:
        self.int_values = np.zeros(0, dtype=np.int64)
        self.int_counts = np.zeros(0, dtype=np.int64)
        self.text: dict[str, int] = {}

    def add(self, col: pa.ChunkedArray) -> None:
        col = _as_ids(col)
        if pa.types.is_null(col.type):
            return
        if col.type == pa.int64():
            v, c = np.unique(col.drop_null().to_numpy(), return_counts=True)
            values = np.concatenate([self.int_values, v])
            counts = np.concatenate([self.int_counts, c])
            self.int_values, inverse = np.unique(values, return_inverse=True)
            self.int_counts = np.bincount(inverse, weights=counts, minlength=len(self.int_values)).astype(np.int64)
        else:
            vc = pc.value_counts(col.drop_null())
            for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                self.text[v] = self.text.get(v, 0) + c

    def vocabulary(self, column: str, min_count: int) -> Vocabulary:
        if not self.text:
            kept = self.int_values[self.int_counts >= min_count]
            return Vocabulary(column=column, dtype="int64", values=kept.tolist())
        merged = dict(self.text)
        for v, c in zip(self.int_values.tolist(), self.int_counts.tolist()):
            merged[str(v)] = merged.get(str(v), 0) + c
        kept = [v for v, c in merged.items() if c >= min_count]
        return Vocabulary(column=column, dtype="string", values=sorted(kept))


class _Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n


class _Sample:
    """A uniform sample of at most ``cap`` values from a stream (thinning: when the kept values
    exceed ``cap``, keep a random half and halve the keep probability of what follows)."""

    def __init__(self, cap: int, rng: np.random.Generator) -> None:
        self.cap, self.rng, self.p = cap, rng, 1.0
        self.values: list[np.ndarray] = []
        self.size = 0

    def add(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        if self.p < 1.0:
            x = x[self.rng.random(x.size) < self.p]
        self.values.append(x)
        self.size += x.size
        while self.size > self.cap:
            allv = np.concatenate(self.values)
            allv = allv[self.rng.random(allv.size) < 0.5]
            self.values, self.size, self.p = [allv], allv.size, self.p / 2

    def array(self) -> np.ndarray:
        return np.concatenate(self.values) if self.values else np.zeros(0)


def _fit_streaming(spec: DatasetSpec, chunks: Callable[[], Iterator[pa.Table]], source: str, *,
                   quantile_sample: int, seed: int) -> tuple[Encoders, dict[str, Any]]:
    """One pass over the train chunks → :class:`Encoders` and a small report."""
    check_no_label_leak(spec)
    vocab_cols = [c for c, kind in Encoders._field_layout(spec) if kind == "vocab"]
    counts = {c: _CategoryCounts() for c in vocab_cols}
    moments = {n.column: _Moments() for n in spec.numeric if n.transform != "bucketize"}
    rng = np.random.default_rng(seed)
    samples = {n.column: _Sample(quantile_sample, rng) for n in spec.numeric if n.transform == "bucketize"}
    transforms = {n.column: n.transform for n in spec.numeric}
    scen_col = spec.scenario.column
    scen_values: dict[str, tuple[Any, int]] = {}
    rows = 0
    for table in chunks():
        rows += table.num_rows
        if scen_col is not None:
            raw = _as_ids(table.column(scen_col))
            vc = pc.value_counts(raw)
            for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                key = "\0null" if v is None else str(v)
                scen_values[key] = (v, scen_values.get(key, (v, 0))[1] + c)
            # Rows without a scenario are not fitted on (as in Encoders.fit).
            text = pc.cast(raw, pa.string())
            has = pc.and_(pc.is_valid(text), pc.not_equal(pc.utf8_trim_whitespace(text.fill_null("")), ""))
            if pc.sum(pc.invert(has)).as_py():
                table = table.filter(has)
        for c in vocab_cols:
            counts[c].add(table.column(c))
        for c, m in moments.items():
            m.add(NumericStats._prepare(_floats(table.column(c), c, source), transforms[c]))
        for c, s in samples.items():
            s.add(NumericStats._prepare(_floats(table.column(c), c, source), transforms[c]))
    if rows == 0:
        raise DataError(f"{spec.where}: {source} has no rows")
    scenario = _fit_scenario_coder(spec, scen_values, source)
    vocabularies = {c: counts[c].vocabulary(c, spec.min_count) for c in vocab_cols}
    numeric: dict[str, NumericStats] = {}
    for n in spec.numeric:
        if n.transform == "bucketize":
            x = samples[n.column].array()
            if x.size == 0:
                raise DataError(f"{spec.where}: numeric column '{n.column}' has no values in train")
            edges = np.unique(np.quantile(x, np.arange(1, n.buckets) / n.buckets))
            numeric[n.column] = NumericStats(column=n.column, transform="bucketize", edges=[float(e) for e in edges])
        else:
            m = moments[n.column]
            if m.n == 0:
                raise DataError(f"{spec.where}: numeric column '{n.column}' has no values in train")
            std = math.sqrt(m.m2 / m.n)
            numeric[n.column] = NumericStats(column=n.column, transform=n.transform, mean=m.mean,
                                             std=std if std > 0 else 1.0)
    return Encoders(spec, scenario, vocabularies, numeric), {"rows_read": rows}


def _floats(col: pa.ChunkedArray, name: str, source: str) -> np.ndarray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    try:
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"{source} numeric column '{name}' must hold numbers") from None


def _fit_scenario_coder(spec: DatasetSpec, values: dict[str, tuple[Any, int]], source: str) -> ScenarioCoder:
    """The scenario coder from the distinct raw values seen in train (one row each is enough for
    the checks of :meth:`Encoders._fit_scenarios`: unknown values, declared-but-empty scenarios)."""
    if spec.scenario.constant is not None:
        return ScenarioCoder(names=[spec.scenario.constant], constant=True)
    raw = [v for v, _ in values.values()]
    if all(v is None or isinstance(v, int) for v in raw):
        arr = pa.array(raw, type=pa.int64())
    else:
        arr = pa.array([None if v is None else str(v) for v in raw], type=pa.string())
    table = pa.table({spec.scenario.column: arr})
    coder, _ = Encoders._fit_scenarios(spec, table, source)
    return coder


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------


class StreamingDataset:
    """A dataset whose train split streams from disk (see the module docstring).

    It offers what :func:`msmtrec.train.train` uses of a ``PreparedDataset`` — ``val``, ``test``,
    ``schema``, ``encoders``, ``spec``, ``report`` — with ``train`` None and :meth:`train_batches`
    instead.

    Args:
        spec: the dataset spec.
        batch_size: rows per training batch.
        shuffle_buffer: rows held in the shuffle buffer (the larger, the closer to a full shuffle;
            memory ≈ ``shuffle_buffer × bytes per encoded row``).
        read_rows: rows per chunk read from disk.
        seed: seeds the hash split, the row-group order and the buffer permutations.
        row_limit: read at most this many rows of each file.
        prefetch: chunks read and encoded ahead by a background thread (0: no thread).
        quantile_sample: at most this many values per ``bucketize`` feature for its quantiles.
    """

    train: EncodedData | None = None

    def __init__(self, spec: DatasetSpec, *, batch_size: int = 2048, shuffle_buffer: int = 262_144,
                 read_rows: int = 65_536, seed: int = 2024, row_limit: int | None = None, prefetch: int = 2,
                 quantile_sample: int = 1_000_000) -> None:
        for name, value, low in (("batch_size", batch_size, 1), ("shuffle_buffer", shuffle_buffer, 1),
                                 ("read_rows", read_rows, 1), ("prefetch", prefetch, 0),
                                 ("quantile_sample", quantile_sample, 100)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"streaming: {name} must be an integer >= {low}, got {value!r}")
        self.spec, self.batch_size, self.shuffle_buffer, self.seed = spec, batch_size, shuffle_buffer, seed
        self.prefetch = prefetch
        f = spec.files
        if f.split is not None and f.split.method == "time":
            raise ConfigError(f"{spec.where}: a time split cannot be streamed (it sorts the whole table); write "
                              f"the splits to separate files (files.train/val/test) or use the in-memory path")
        columns = spec.required_columns(labels=True)
        ids = list(spec.id_columns)

        def source(path: Path) -> _Source:
            return _Source(path, f.format, columns, ids, read_rows, row_limit)

        # Where each split comes from: a whole file, or the hash-split parts of one.
        self._hash: tuple[float, ...] | None = None
        if f.path is not None:
            self._train_src = source(f.path)
            self._hash = tuple(f.split.fractions) if f.split else (0.8, 0.1, 0.1)
            self._hash_seed = f.split.seed if f.split and f.split.seed is not None else seed
            held = {"val": 1, "test": 2}
        else:
            self._train_src = source(f.train)
            held = {}
            if f.val is None:
                self._hash = tuple(f.split.fractions) if f.split else (0.9, 0.1)
                self._hash_seed = f.split.seed if f.split and f.split.seed is not None else seed
                held = {"val": 1}
        self._train_part = 0 if self._hash is not None else None

        # Fit pass over train (collecting hash-split val/test rows as they go by).
        held_tables: dict[str, list[pa.Table]] = {s: [] for s in held}

        def train_chunks() -> Iterator[pa.Table]:
            for first, table in self._train_src.chunks():
                if self._hash is None:
                    yield table
                    continue
                part = _hash_parts(first, table.num_rows, self._hash, self._hash_seed)
                for split, code in held.items():
                    rows = np.flatnonzero(part == code)
                    if len(rows):
                        held_tables[split].append(table.take(pa.array(rows)))
                rows = np.flatnonzero(part == 0)
                if len(rows):
                    yield table.take(pa.array(rows))

        self.encoders, fit_report = _fit_streaming(spec, train_chunks, f"train ({self._train_src.path.name})",
                                                   quantile_sample=quantile_sample, seed=seed)
        self.schema: DataSchema = self.encoders.schema

        def encode_whole(tables: list[pa.Table], what: str) -> EncodedData:
            if not tables:
                raise DataError(f"{spec.where}: split '{what}' is empty")
            return self.encoders.encode(_unify(tables), source=what).data

        splits: dict[str, EncodedData] = {}
        for split in ("val", "test"):
            if split in held:
                splits[split] = encode_whole(held_tables.pop(split), f"{split} (hashed part of "
                                             f"{self._train_src.path.name})")
            else:
                path = getattr(f, split)
                splits[split] = encode_whole([t for _, t in source(path).chunks()], f"{split} ({path.name})")
        self.val, self.test = splits["val"], splits["test"]
        self.train_rows = int(fit_report["rows_read"])
        self.report = {
            "dataset": spec.name, "spec": spec.source, "streaming": True,
            "rows": {"train": self.train_rows, "val": len(self.val), "test": len(self.test)},
            "files": {k: str(v) for k, v in (("path", f.path), ("train", f.train), ("val", f.val), ("test", f.test))
                      if v is not None},
            "hash_split": list(self._hash) if self._hash is not None else None,
            "shuffle_buffer": shuffle_buffer, "read_rows": read_rows, "row_limit": row_limit,
        }

    def __len__(self) -> int:
        return self.train_rows

    # -- epochs -------------------------------------------------------------------------------
    def _encoded_chunks(self, epoch: int, seed: int) -> Iterator[EncodedData]:
        src = self._train_src
        order = None
        if src.kind == "parquet" and len(src.pieces) > 1:
            order = np.random.default_rng([seed, epoch, 1]).permutation(len(src.pieces))
        name = src.path.name
        for first, table in src.chunks(order):
            if self._hash is not None:
                rows = np.flatnonzero(_hash_parts(first, table.num_rows, self._hash, self._hash_seed) == 0)
                if len(rows) == 0:
                    continue
                table = table.take(pa.array(rows))
            yield self.encoders.encode(table, source=f"train ({name})", allow_empty=True).data

    def _batches(self, epoch: int, seed: int) -> Iterator[EncodedData]:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        bs, cap = self.batch_size, self.shuffle_buffer
        reserve = cap // 2
        buffer: list[EncodedData] = []
        held = 0
        for chunk in self._encoded_chunks(epoch, seed):
            if len(chunk) == 0:
                continue
            buffer.append(chunk)
            held += len(chunk)
            if held < cap:
                continue
            data = EncodedData.concat(buffer)
            perm = torch.randperm(held, generator=gen)
            n_out = (held - reserve) // bs * bs
            for start in range(0, n_out, bs):
                yield _gather(data, perm[start:start + bs])
            buffer, held = [_gather(data, perm[n_out:])], held - n_out
        if held:
            data = EncodedData.concat(buffer)
            perm = torch.randperm(held, generator=gen)
            for start in range(0, held, bs):
                yield _gather(data, perm[start:start + bs])

    def train_batches(self, epoch: int = 0, seed: int | None = None) -> Iterator[EncodedData]:
        """Shuffled training batches of one epoch (a different order every epoch, deterministic
        given the seed: ``seed``, else the dataset's), read ahead by a background thread when
        ``prefetch`` > 0. The hash split does not depend on ``seed``."""
        seed = self.seed if seed is None else int(seed)
        if self.prefetch == 0:
            return self._batches(epoch, seed)
        return _prefetched(self._batches(epoch, seed), self.prefetch * max(1, self.shuffle_buffer // self.batch_size))


def _gather(data: EncodedData, index: torch.Tensor) -> EncodedData:
    """Rows ``index`` of every tensor with ``index_select``: the same result as
    :meth:`EncodedData.take`, but ``tensor[index]`` on a 2-D CPU tensor enters an OpenMP parallel
    region that costs ~20 ms per call when the cores are busy (measured with torch 2.13 on a
    loaded 2-core machine), while ``index_select`` stays at tens of microseconds."""
    return EncodedData(**{f: (None if getattr(data, f) is None else getattr(data, f).index_select(0, index))
                          for f in ("categorical", "numeric", "scenario", "labels", "label_mask", "user")})


def _hash_parts(first: int, n: int, fractions: tuple[float, ...], seed: int) -> np.ndarray:
    from msmtrec.data.recipes.base import hash_split

    return hash_split(first, n, fractions, seed)


_DONE = object()


def _prefetched(it: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``it`` in a background thread, ``depth`` items ahead. Errors are re-raised here; a
    consumer that stops early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # forwarded to the consumer
            q.put(exc)

    thread = threading.Thread(target=work, name="msmtrec-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def open_streaming(spec_or_name_or_path: str | Path | DatasetSpec | Mapping[str, Any], **options: Any
                   ) -> StreamingDataset:
    """A :class:`StreamingDataset` for a built-in name, a spec path, a mapping or a spec."""
    from msmtrec.data import resolve_spec

    return StreamingDataset(resolve_spec(spec_or_name_or_path), **options)
