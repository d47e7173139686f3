"""Finding a dataset: built-in names, spec files, and a quick description without encoding."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from msmtrec.data.spec import DatasetSpec, load_spec
from msmtrec.errors import SpecError
from msmtrec.yaml_io import load_yaml

__all__ = ["builtin_datasets", "describe_dataset", "resolve_spec"]

_BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


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

    Raises:
        SpecError: neither a built-in name nor an existing file; the message lists the built-in names.
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
    wanted = re.sub(r"[_\s]+", "-", text.strip().lower())  # "womens_ecommerce" → "womens-ecommerce"
    for name, spec_path in builtins.items():
        if name.lower() == wanted:
            return load_spec(spec_path)
    names = ", ".join(builtins) or "none"
    if path.suffix.lower() in (".yaml", ".yml") or "/" in text or "\\" in text:
        raise SpecError(f"spec file not found: {text} (built-in datasets: {names})")
    raise SpecError(f"unknown dataset '{text}': not a built-in dataset ({names}) nor a spec file")


def describe_dataset(name_or_path: str | Path | DatasetSpec | Mapping[str, Any]) -> dict[str, Any]:
    """``name``, ``spec`` (file name), ``rows`` (in the data files, before any row is dropped),
    ``scenarios`` (declared, else the distinct values of the scenario column), ``tasks`` and
    ``files`` of a dataset, without encoding it (for listings such as ``msmtrec datasets``)."""
    spec = resolve_spec(name_or_path)
    paths = spec.files.paths
    rows = 0
    distinct: set[Any] = set()
    col = spec.scenario.column
    for path in paths:
        data = spec.data_file(path)
        if col is None:
            rows += data.num_rows
            continue
        for _, table in data.batches([col]):
            rows += table.num_rows
            distinct.update(v for v in table.column(col).unique().to_pylist() if v is not None and str(v).strip())
    scenarios = spec.scenario.declared_names() or [str(v) for v in sorted(distinct, key=lambda v: (str(type(v)), v))]
    return {"name": spec.name, "spec": spec.source, "rows": rows, "scenarios": scenarios,
            "tasks": list(spec.task_names), "files": [str(p) for p in paths]}
