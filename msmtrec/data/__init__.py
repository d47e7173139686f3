"""The data layer: raw files → :class:`EncodedData` tensors, fitted on the train split only.

Typical use::

    from msmtrec.data import load_dataset, iterate_batches

    ds = load_dataset("womens-ecommerce")          # a built-in name, or a path to a YAML spec
    print(ds.summary())                              # rows per split, dropped rows, label rates
    for batch in iterate_batches(ds.train, 2048, shuffle=True):
        ...

Steps (each in its own module): :mod:`~msmtrec.data.spec` validates the YAML spec,
:mod:`~msmtrec.data.io` reads and splits the tables, :mod:`~msmtrec.data.encode` fits the
encoders on train and encodes every split, :mod:`~msmtrec.data.encoded` holds the tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msmtrec.data.encode import EncodeResult, Encoders, check_no_label_leak
from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.data.io import detect_format, read_table, split_table
from msmtrec.data.spec import DatasetSpec, load_spec
from msmtrec.errors import DataError, SpecError
from msmtrec.yaml_io import load_yaml

__all__ = [
    "DataSchema",
    "DatasetSpec",
    "EncodedData",
    "Encoders",
    "PreparedDataset",
    "builtin_datasets",
    "describe_dataset",
    "iterate_batches",
    "load_dataset",
    "load_spec",
    "read_table",
    "resolve_spec",
]

_BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
SPLITS = ("train", "val", "test")


@dataclass
class PreparedDataset:
    """A dataset ready for training: encoded splits, their schema and the fitted encoders.

    Attributes
    ----------
    train, val, test:
        The encoded splits.
    schema:
        What a model needs to size itself.
    encoders:
        Fitted on ``train``; save them with the model to encode new data the same way.
    spec:
        The resolved spec.
    report:
        Plain-data summary (JSON-serialisable): ``rows`` per split, ``rows_read`` before
        dropping, ``dropped`` per split and reason, ``scenario_rows`` and
        ``label_positive_rate`` / ``label_observed`` per split and task, ``files``,
        ``row_limit``. :meth:`summary` renders it for people.
    """

    train: EncodedData
    val: EncodedData
    test: EncodedData
    schema: DataSchema
    encoders: Encoders
    spec: DatasetSpec
    report: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> EncodedData:
        """The split called ``name`` (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def summary(self) -> str:
        """A few human-readable lines: rows per split, what was dropped, label rates."""
        r = self.report
        lines = [f"dataset {self.spec.name}: " + ", ".join(f"{s} {r['rows'][s]:,}" for s in SPLITS) + " rows; "
                 f"{len(self.schema.scenarios)} scenarios ({', '.join(self.schema.scenarios)}); "
                 f"{self.schema.num_fields} categorical fields, {len(self.schema.numeric)} numeric"]
        total = r.get("dropped_total", 0)
        if total:
            parts = [f"{n:,} in {s} ({why.replace('_', ' ')})" for s in SPLITS
                     for why, n in r["dropped"].get(s, {}).items()]
            lines.append(f"dropped {total:,} rows: " + "; ".join(parts))
        for task in self.schema.tasks:
            rates = []
            for s in SPLITS:
                rate = r["label_positive_rate"][s][task]
                rates.append(f"{s} {'n/a' if rate is None else f'{rate:.3f}'}")
            lines.append(f"task {task}: positive rate " + ", ".join(rates))
        return "\n".join(lines)


@lru_cache(maxsize=1)
def _builtin_index() -> tuple[tuple[str, Path], ...]:
    out = []
    for path in sorted(_BUILTIN_DIR.glob("*.yaml")):
        try:
            name = (load_yaml(path, f"spec {path.name}", SpecError) or {}).get("name")
        except SpecError:
            name = None
        out.append((str(name) if name else path.stem.replace("_", "-"), path))
    return tuple(out)


def builtin_datasets() -> dict[str, Path]:
    """Built-in datasets shipped inside the package: name → spec path."""
    return dict(_builtin_index())


def resolve_spec(name_or_path: str | Path | DatasetSpec | Mapping[str, Any]) -> DatasetSpec:
    """A spec from a built-in dataset name, a YAML path, a mapping or a spec itself.

    Raises
    ------
    SpecError
        Neither a built-in name nor an existing file; the message lists the built-in names.
    """
    if isinstance(name_or_path, DatasetSpec):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return load_spec(name_or_path)
    path = Path(name_or_path)
    if path.is_file():
        return load_spec(path)
    builtins = builtin_datasets()
    text = str(name_or_path)
    # Accept "womens_ecommerce" and "Womens-Ecommerce" for "womens-ecommerce".
    wanted = re.sub(r"[_\s]+", "-", text.strip().lower())
    for name, spec_path in builtins.items():
        if name.lower() == wanted:
            return load_spec(spec_path)
    names = ", ".join(builtins) or "none"
    if path.suffix.lower() in (".yaml", ".yml") or "/" in text or "\\" in text:
        raise SpecError(f"spec file not found: {text} (built-in datasets: {names})")
    raise SpecError(f"unknown dataset '{text}': not a built-in dataset ({names}) nor a spec file")


def describe_dataset(name_or_path: str | Path | DatasetSpec | Mapping[str, Any]) -> dict[str, Any]:
    """A quick description of a dataset without encoding it (for listings such as
    ``msmtrec datasets``).

    Returns
    -------
    dict
        ``name``, ``spec`` (the spec file's name), ``rows`` (rows in the data files, before any
        row is dropped), ``scenarios`` (the declared names, else the distinct values of the
        scenario column), ``tasks`` and ``files`` (paths).
    """
    spec = resolve_spec(name_or_path)
    f = spec.files
    paths = [f.path] if f.path is not None else [p for p in (f.train, f.val, f.test) if p is not None]
    rows = 0
    distinct: set[Any] = set()
    col = spec.scenario.column
    for path in paths:
        if col is None and detect_format(path, f.format) == "parquet" and path.is_file():
            rows += pq.ParquetFile(path).metadata.num_rows  # no need to read any data
            continue
        first = col if col is not None else spec.required_columns(labels=False)[0]
        table = read_table(path, [first], f.format, id_columns=spec.id_columns)
        rows += table.num_rows
        if col is not None:
            distinct.update(v for v in table.column(col).unique().to_pylist() if v is not None and str(v).strip())
    scenarios = spec.scenario.declared_names() or [str(v) for v in sorted(distinct, key=lambda v: (str(type(v)), v))]
    return {"name": spec.name, "spec": spec.source, "rows": rows, "scenarios": scenarios,
            "tasks": list(spec.task_names), "files": [str(p) for p in paths]}


def load_dataset(spec_or_name_or_path: str | Path | DatasetSpec | Mapping[str, Any], *,
                 row_limit: int | None = None, encoders: Encoders | None = None) -> PreparedDataset:
    """Read, split and encode a dataset; the encoders are fitted on the train split only.

    Parameters
    ----------
    spec_or_name_or_path:
        A built-in dataset name (see :func:`builtin_datasets`), a path to a YAML spec, a parsed
        mapping or a :class:`DatasetSpec`.
    row_limit:
        Read at most this many rows from the start of each file (for quick runs); with a single
        file the limit applies before splitting.
    encoders:
        Already fitted encoders (e.g. a trained run's) to encode with instead of fitting new
        ones, so the ids match the model's embeddings. The spec still says which files to read
        and how to split them; the columns come from the encoders' own spec.

    Returns
    -------
    PreparedDataset

    Raises
    ------
    SpecError
        The spec is invalid or cannot be found.
    DataError
        A file or column is missing, a label is not 0/1, a split is empty, a scenario of val/test
        is absent from train, ...: the message names the file, column and split.
    """
    spec = resolve_spec(spec_or_name_or_path)
    if row_limit is not None and (not isinstance(row_limit, int) or row_limit < 1):
        raise DataError(f"row_limit must be a positive integer, got {row_limit!r}")
    check_no_label_leak(spec)  # before reading anything: a leak is a spec mistake
    columns = spec.required_columns(labels=True)
    if encoders is not None:
        split = spec.files.split
        extra = [split.column] if split is not None and split.column is not None else []
        columns = list(dict.fromkeys(encoders.spec.required_columns(labels=True) + extra))
    tables, sources, files_report = _read_splits(spec, columns, row_limit)

    if encoders is None:
        encoders = Encoders.fit(spec, tables["train"], source=sources["train"])
    results: dict[str, EncodeResult] = {s: encoders.encode(tables[s], source=sources[s]) for s in SPLITS}
    report = _report(spec, encoders, tables, results, files_report, row_limit)
    return PreparedDataset(train=results["train"].data, val=results["val"].data, test=results["test"].data,
                           schema=encoders.schema, encoders=encoders, spec=spec, report=report)


def _read_splits(spec: DatasetSpec, columns: list[str], row_limit: int | None
                 ) -> tuple[dict[str, pa.Table], dict[str, str], dict]:
    """Raw train/val/test tables, how to name each in messages, and the files part of the report."""
    f = spec.files

    def read(path: Path) -> pa.Table:
        return read_table(path, columns, f.format, id_columns=spec.id_columns, row_limit=row_limit)

    def cut(table: pa.Table, names: tuple[str, ...], what: str) -> dict[str, pa.Table]:
        split = f.split
        assert split is not None
        parts = split_table(table, split.fractions, method=split.method, seed=split.seed, column=split.column,
                            source=what)
        return dict(zip(names, parts))

    if f.path is not None:
        whole = read(f.path)
        if whole.num_rows == 0:
            raise DataError(f"{spec.where}: {f.path.name} has no rows")
        tables = cut(whole, SPLITS, f.path.name)
        sources = {s: f"{s} split of {f.path.name}" for s in SPLITS}
        files = {"path": str(f.path), "split": f.split.model_dump(mode="json") if f.split else None}
    else:
        assert f.train is not None and f.test is not None
        tables = {"test": read(f.test)}
        sources = {"test": f"test ({f.test.name})"}
        if f.val is not None:
            tables.update(train=read(f.train), val=read(f.val))
            sources.update(train=f"train ({f.train.name})", val=f"val ({f.val.name})")
        else:
            train = read(f.train)
            if train.num_rows == 0:
                raise DataError(f"{spec.where}: train ({f.train.name}) has no rows")
            tables.update(cut(train, ("train", "val"), f.train.name))
            sources.update(train=f"train split of {f.train.name}", val=f"val split of {f.train.name}")
        files = {k: str(getattr(f, k)) for k in SPLITS if getattr(f, k) is not None}
        if f.split is not None:
            files["val_from_train"] = f.split.model_dump(mode="json")
    for s in SPLITS:
        if tables[s].num_rows == 0:
            how = " (the split fractions leave it no rows; use more rows)" if f.split is not None else ""
            raise DataError(f"{spec.where}: split '{s}' is empty: {sources[s]} has no rows{how}")
    return tables, sources, files


def _report(spec: DatasetSpec, encoders: Encoders, tables: dict[str, pa.Table], results: dict[str, EncodeResult],
            files: dict, row_limit: int | None) -> dict[str, Any]:
    schema = encoders.schema
    rows, rows_read, dropped, scen, rate, observed = {}, {}, {}, {}, {}, {}
    for s in SPLITS:
        data = results[s].data
        rows[s] = len(data)
        rows_read[s] = tables[s].num_rows
        dropped[s] = dict(results[s].dropped)
        counts = np.bincount(data.scenario.numpy(), minlength=schema.num_scenarios)
        scen[s] = {name: int(c) for name, c in zip(schema.scenarios, counts)}
        mask = data.label_mask.numpy()
        labels = data.labels.numpy()
        n_obs = mask.sum(axis=0)
        pos = (labels * mask).sum(axis=0)
        observed[s] = {t: int(n_obs[j]) for j, t in enumerate(schema.tasks)}
        rate[s] = {t: (float(pos[j] / n_obs[j]) if n_obs[j] else None) for j, t in enumerate(schema.tasks)}
    return {
        "dataset": spec.name,
        "spec": spec.source,
        "files": files,
        "row_limit": row_limit,
        "rows": rows,
        "rows_read": rows_read,
        "dropped": dropped,
        "dropped_total": int(sum(sum(d.values()) for d in dropped.values())),
        "scenario_rows": scen,
        "label_positive_rate": rate,
        "label_observed": observed,
    }
