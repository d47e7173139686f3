"""What every public-dataset recipe shares: finding the raw files, checksums, a fixed split,
Parquet output written in row groups, the spec and the manifest.

A recipe turns a folder of downloaded files into a ready dataset folder::

    OUT/train.parquet  OUT/val.parquet  OUT/test.parquet   the fixed split
    OUT/spec.yaml                                          `msmtrec train --data OUT/spec.yaml`
    OUT/manifest.json                                      inputs (name, bytes, sha256), options,
                                                           rows and positives per split, outputs' sha256

Outputs are written under temporary names and renamed at the end, so an interrupted run never
leaves a folder that looks complete. Nothing already in ``OUT`` is replaced unless asked.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from msmtrec.data.io import SPLITS, DataFile, hash_split
from msmtrec.errors import ConfigError, DataError
from msmtrec.files import atomic_write, sha256_file, write_json
from msmtrec.yaml_io import dump_yaml

OUTPUT_FILES = tuple(f"{s}.parquet" for s in SPLITS) + ("spec.yaml", "manifest.json")
ROW_GROUP_ROWS = 262_144


@dataclass(frozen=True)
class Recipe:
    """A registered dataset recipe.

    Attributes:
        name: the name given to ``msmtrec prepare``.
        title: one line describing the dataset and its framing.
        expected: the raw files, as a human would list them (used in "missing files" errors).
        build: ``fn(raw_dir, writer, options) -> (spec dict, inputs)`` writing rows with
            ``writer`` and returning the spec (without ``files``: the writer's files) and the raw
            files it read.
        options: option name → ``(default, help)``.
        source: where a user downloads the raw files.
    """

    name: str
    title: str
    expected: str
    build: Callable[[Path, "SplitWriter", dict[str, Any]], tuple[dict[str, Any], list[Path]]]
    options: dict[str, tuple[Any, str]] = field(default_factory=dict)
    source: str = ""

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "(none)"
            raise ConfigError(f"recipe {self.name}: unknown option(s) {', '.join(unknown)}; its options are: {known}")
        return {k: self._typed(k, given[k], default) if k in given else default
                for k, (default, _) in self.options.items()}

    def _typed(self, key: str, value: Any, default: Any) -> Any:
        """``value`` as a number when the option's default is one (an integer stays integral)."""
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            return value
        kind = "an integer" if isinstance(default, int) else "a number"
        try:
            typed = type(default)(value)
            if isinstance(value, bool) or (isinstance(default, int) and typed != float(value)):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"recipe {self.name}: option {key} must be {kind}, got {value!r}") from None
        return typed


def find_file(raw: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` found in ``raw`` or any folder below it (archives often unpack into
    a subfolder such as ``ml-1m/`` or ``KuaiRand-Pure/data/``)."""
    for name in names:
        direct = raw / name
        if direct.is_file():
            return direct
    for name in names:
        hits = sorted(p for p in raw.rglob(name) if p.is_file())
        if hits:
            return hits[0]
    return None


def require_files(recipe: str, raw: Path, wanted: dict[str, Sequence[str]], expected: str) -> dict[str, Path]:
    """Locate every entry of ``wanted`` (key → accepted file names) or fail naming what is missing."""
    found = {key: find_file(raw, names) for key, names in wanted.items()}
    missing = [" or ".join(wanted[key]) for key, path in found.items() if path is None]
    if missing:
        raise DataError(f"{recipe}: {raw} is missing {', '.join(missing)} (expected {expected})")
    return {key: path for key, path in found.items() if path is not None}


class Lookup:
    """A left join that keeps the order of the left rows: built once on a side table with a unique
    integer key, then :meth:`take` fetches the side columns for any batch of keys (null when a key
    is absent). Sorted keys + ``searchsorted``, so a large side table (KuaiRand-1K's 4M videos)
    is indexed once, not once per batch."""

    def __init__(self, table: pa.Table, key: str, source: str) -> None:
        keys = pc.cast(table.column(key), pa.int64()).to_numpy(zero_copy_only=False)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        if len(self.keys) > 1 and (self.keys[1:] == self.keys[:-1]).any():
            dup = self.keys[1:][self.keys[1:] == self.keys[:-1]][0]
            raise DataError(f"{source}: key '{key}' is not unique (value {dup} appears more than once)")
        self.table = table.take(pa.array(order))

    def take(self, keys: pa.ChunkedArray | pa.Array, columns: Sequence[str]) -> dict[str, pa.Array]:
        k = pc.cast(keys, pa.int64()).to_numpy(zero_copy_only=False)
        pos = np.minimum(np.searchsorted(self.keys, k), max(len(self.keys) - 1, 0))
        hit = (self.keys[pos] == k) if len(self.keys) else np.zeros(len(k), dtype=bool)
        idx = pa.array(pos, mask=~hit, type=pa.int64())
        return {c: self.table.column(c).take(idx) for c in columns}


def click_conversion_batches(path: Path, columns: Sequence[str], floats: Sequence[str], labels: Sequence[str],
                             source: str) -> Iterator[tuple[int, pa.Table, int]]:
    """``(first row, table, rows with conversion = 1 but click = 0)`` per batch of a CSV of int64
    ids and float32 ``floats``, whose ``labels`` (click, conversion) must be 0/1 (else a one-line
    :class:`DataError` naming ``source`` and the column) and are cast to int8."""
    types = {c: pa.float32() if c in floats else pa.int64() for c in columns}
    click, conversion = labels
    for first, table in DataFile(path, column_types=types).batches(columns):
        for c in labels:
            col = table.column(c)
            bad = pc.sum(pc.cast(pc.invert(pc.is_in(col, pa.array([0, 1], col.type))), pa.int64())).as_py()
            if bad:
                raise DataError(f"{source} column '{c}' has {bad} value(s) other than 0/1")
            table = table.set_column(table.schema.get_field_index(c), c, pc.cast(col, pa.int8()))
        both = pc.and_(pc.equal(table.column(conversion), 1), pc.equal(table.column(click), 0))
        yield first, table, int(pc.sum(pc.cast(both, pa.int64())).as_py() or 0)


def check_share(value: float, option: str) -> float:
    """A recipe option that is a share of rows (a number, as resolve_options typed it): in (0, 1)."""
    if not 0 < value < 1:
        raise ConfigError(f"{option} must be in (0, 1), got {value!r}")
    return value


def check_fractions(fractions: Sequence[float], parts: int, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a list of {parts} numbers, got {fractions!r}") from None
    if len(values) != parts or any(v <= 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"{option} must be {parts} positive numbers summing to 1, got {list(values)}")
    return values


class SplitWriter:
    """Writes rows to ``train/val/test.parquet`` (temporary names until :meth:`commit`), counting
    rows, positives per label column and rows per scenario value."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._schema: pa.Schema | None = None
        self.rows = {s: 0 for s in SPLITS}
        self.scenario_rows: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        self.notes: dict[str, Any] = {}  # recipe findings copied into the manifest
        self.track()

    def track(self, *, labels: Sequence[str] = (), scenario: str | None = None) -> None:
        """Count positives of these 0/1 ``labels`` columns and rows per ``scenario`` value."""
        self.labels = list(labels)
        self.scenario = scenario
        self.positives: dict[str, dict[str, int]] = {s: {c: 0 for c in self.labels} for s in SPLITS}

    def _tmp(self, split: str) -> Path:
        return self.out / f".{split}.parquet.partial"

    def write(self, split: str, table: pa.Table) -> None:
        """Append ``table`` to ``split`` (every call must have the same columns and types)."""
        if table.num_rows == 0:
            return
        if self._schema is None:
            self._schema = table.schema
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        if split not in self._writers:
            self._writers[split] = pq.ParquetWriter(self._tmp(split), self._schema, compression="zstd")
        self._writers[split].write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows[split] += table.num_rows
        for c in self.labels:
            self.positives[split][c] += int(pc.sum(pc.cast(table.column(c), pa.int64())).as_py() or 0)
        if self.scenario is not None:
            counts = pc.value_counts(table.column(self.scenario))
            for v, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
                key = str(v)
                self.scenario_rows[split][key] = self.scenario_rows[split].get(key, 0) + n

    def write_assigned(self, table: pa.Table, assignment: np.ndarray) -> None:
        """Write each row of ``table`` to the split ``assignment`` gives it (0/1/2)."""
        for i, split in enumerate(SPLITS):
            rows = np.flatnonzero(assignment == i)
            if len(rows) == len(assignment):
                self.write(split, table)
            elif len(rows):
                self.write(split, table.take(pa.array(rows)))

    def write_carved(self, table: pa.Table, first: int, val_fraction: float, seed: int) -> None:
        """Write rows of a train file, the first at file row ``first``: a seeded ``val_fraction`` of
        them (:func:`~msmtrec.data.io.hash_split`) to val, the others to train."""
        self.write_assigned(table, hash_split(first, table.num_rows, [1 - val_fraction, val_fraction], seed))

    def commit(self) -> list[Path]:
        empty = [s for s in SPLITS if self.rows[s] == 0]
        if empty:
            self.abort()
            raise DataError(f"split(s) {', '.join(empty)} received no rows; the raw files are too small for the "
                            f"split fractions")
        paths = []
        for split in SPLITS:
            self._writers.pop(split).close()
            final = self.out / f"{split}.parquet"
            os.replace(self._tmp(split), final)
            paths.append(final)
        return paths

    def abort(self) -> None:
        for split, w in list(self._writers.items()):
            w.close()
            self._tmp(split).unlink(missing_ok=True)
        self._writers.clear()


def prepare_with(recipe: Recipe, raw_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False,
                 options: dict[str, Any] | None = None, echo: Callable[[str], None] | None = None) -> Path:
    """Run ``recipe`` on ``raw_dir`` into ``out_dir``; return the written spec's path."""
    echo = echo or (lambda _m: None)
    raw, out = Path(raw_dir), Path(out_dir)
    opts = recipe.resolve_options(options or {})
    if not raw.is_dir():
        raise DataError(f"{recipe.name}: raw folder {raw} does not exist (expected {recipe.expected})")
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; choose another --out folder or pass --overwrite")
    if out.resolve() == raw.resolve():
        raise ConfigError(f"--out must differ from --raw ({raw})")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    writer = SplitWriter(out)
    try:
        spec, inputs = recipe.build(raw, writer, opts)
        outputs = writer.commit()
    except BaseException:
        writer.abort()
        if created and not any(out.iterdir()):  # a refused recipe leaves no folder behind
            out.rmdir()
        raise
    echo(f"{recipe.name}: wrote " + ", ".join(f"{s} {writer.rows[s]:,}" for s in SPLITS) + " rows")
    echo(f"{recipe.name}: checksumming {len(inputs)} input file(s)")
    manifest = {
        "recipe": recipe.name,
        "title": recipe.title,
        "source": recipe.source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - t0, 1),
        "options": opts,
        "inputs": [{"file": str(p.relative_to(raw)), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
                   for p in inputs],
        "rows": writer.rows,
        "positives": writer.positives,
        "scenario_rows": writer.scenario_rows,
        "notes": writer.notes,
        "outputs": [{"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in outputs],
    }
    header = (f"# {recipe.title}\n# Written by `msmtrec prepare {recipe.name}`; the split is fixed by the "
              f"files below. See manifest.json for the inputs' sha256.\n")
    spec = {"name": spec["name"], "files": {s: f"{s}.parquet" for s in SPLITS}, **spec}
    atomic_write(out / "spec.yaml", header + dump_yaml(spec))
    write_json(out / "manifest.json", manifest)
    return out / "spec.yaml"
