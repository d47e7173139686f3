"""Export folders: a trained run's model as a graph, with the run's encoders and schema and a
manifest, written all at once and checked whole when read.

An export folder holds ``model.onnx`` or ``model.pt`` (TorchScript), ``encoders.json`` (the run's
fitted encoders, which also carry its dataset spec), ``schema.json`` and ``manifest.json``: the
format and (ONNX) opset, the msmtrec and torch versions it was written with, the graph's inputs and
output with their dtypes and shapes, the model and its options, the largest difference from eager
PyTorch found when it was written, and the sha256 of every other file. :func:`read_export`
refuses a folder whose files are missing or differ from their sha256.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import msmtrec
from msmtrec.data.encoded import DataSchema
from msmtrec.errors import ExportError
from msmtrec.export.backends import (DEFAULT_OPSET, FORMATS, GRAPH_FILES, OPSETS, EagerBackend, OnnxBackend,
                                     TorchScriptBackend, first_line, write_onnx, write_torchscript)
from msmtrec.export.graph import OUTPUT, example_batch, graph_inputs
from msmtrec.files import check_format, read_json, sha256_file, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "msmtrec-export"
MANIFEST_VERSION = 1
#: Largest absolute difference from eager PyTorch an export may show on its check rows.
TOLERANCE = 1e-5


@dataclass
class Export:
    """An export folder read back: its manifest, schema, encoders and graph file."""

    folder: Path
    manifest: dict[str, Any]
    schema: DataSchema
    encoders: Any

    @property
    def format(self) -> str:
        return self.manifest["graph"]["format"]

    @property
    def graph_path(self) -> Path:
        return self.folder / self.manifest["graph"]["file"]

    def backend(self, threads: int | None = None):
        """The graph ready to run (TorchScript, or ONNX Runtime with ``threads`` intra-op threads)."""
        if self.format == "onnx":
            return OnnxBackend(self.graph_path, self.schema, self.manifest["graph"]["opset"], threads)
        return TorchScriptBackend(self.graph_path, self.schema)


def export_run(run_dir: str | Path, fmt: str, out: str | Path, *, overwrite: bool = False,
               opset: int = DEFAULT_OPSET) -> Path:
    """Write the export folder ``out`` for the run in ``run_dir``; returns ``out``.

    The graph is checked against the eager model on rows of every scenario and on batches of
    other sizes before anything is written in ``out``; the folder appears whole or not at all.

    Raises:
        ExportError: an unknown format or opset, ``out`` exists (without ``overwrite``, or it is
            not an export folder), or the graph differs from the eager model.
        CheckpointError: ``run_dir`` is not a readable run directory.
    """
    from msmtrec.train.api import load_run

    if fmt not in FORMATS:
        raise ExportError(f"export format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if fmt == "onnx" and opset not in OPSETS:
        raise ExportError(f"--opset must be between {OPSETS.start} and {OPSETS.stop - 1}, got {opset}")
    out = Path(out)
    check_out(out, overwrite)
    run = load_run(run_dir)
    model, schema = run.model, run.schema
    example = example_batch(schema, 64 * max(1, schema.num_scenarios))
    tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"
    try:
        tmp.mkdir(parents=True)
        graph = tmp / GRAPH_FILES[fmt]
        if fmt == "onnx":
            write_onnx(model, example, graph, opset)
            backend = OnnxBackend(graph, schema, opset)
        else:
            write_torchscript(model, example, graph)
            backend = TorchScriptBackend(graph, schema)
        worst = check_parity(EagerBackend(model), backend, schema)
        if not worst <= TOLERANCE:
            raise ExportError(f"the {fmt} graph of {run_dir} differs from the eager model by {worst:.3g} (more than "
                              f"{TOLERANCE:g}) on its check rows; nothing was written")
        run.encoders.save(tmp)
        write_json(tmp / "schema.json", schema.to_dict())
        write_json(tmp / MANIFEST, _manifest(run, fmt, opset, worst, tmp))
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that exists (unless ``overwrite`` and it is an export folder or empty)."""
    if not out.exists():
        blocking = next((p for p in out.parents if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise ExportError(f"cannot write {out}: {blocking} is a file, not a folder")
        return
    if not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it (nothing was written)")
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file()):
        raise ExportError(f"{out} exists and is not an export folder (no {MANIFEST}); it is not replaced, even with "
                          f"--overwrite: choose another --out")


def check_parity(reference, backend, schema: DataSchema) -> float:
    """Largest absolute difference between two backends on check rows: every scenario in turn,
    one scenario alone (the others absent from the batch), and a single row."""
    worst = 0.0
    n = 97 * schema.num_scenarios
    single = example_batch(schema, 37, seed=2)
    single.scenario.fill_(schema.num_scenarios - 1)
    for batch in (example_batch(schema, n, seed=1), single, example_batch(schema, 1, seed=3)):
        a = reference(batch)
        try:
            b = backend(batch)
        except Exception as e:  # the runtimes raise their own types
            raise ExportError(f"the {backend.name} graph fails on {len(batch)} check rows ({first_line(e)}); "
                              f"nothing was written") from None
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, float(np.abs(a - b).max()) if a.size else 0.0)
    return worst


def _manifest(run: Any, fmt: str, opset: int, worst: float, folder: Path) -> dict[str, Any]:
    schema = run.schema
    graph = {"format": fmt, "file": GRAPH_FILES[fmt]}
    if fmt == "onnx":
        graph["opset"] = opset
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "graph": graph,
        "model": run.config.model, "model_params": run.config.model_params, "run": str(run.run_dir.resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "msmtrec_version": msmtrec.__version__,
        "torch_version": torch.__version__,
        "inputs": [i.to_dict() for i in graph_inputs(schema)],
        "outputs": [{"name": OUTPUT, "dtype": "float32", "shape": ["batch", schema.num_tasks],
                     "columns": list(schema.tasks)}],
        "scenarios": list(schema.scenarios),
        "max_difference_from_eager": worst,
        "files": {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST},
    }


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an old ``out`` only once it is complete."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.{secrets.token_hex(6)}.old"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_export(folder: str | Path) -> Export:
    """Read an export folder, checking every file against its sha256 in the manifest.

    Raises:
        ExportError: no or a corrupt manifest, a file missing or modified, another manifest version.
    """
    from msmtrec.data import Encoders

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder} is not an export folder (no {MANIFEST})")
    manifest = check_format(read_json(path, ExportError), path, MANIFEST_FORMAT, MANIFEST_VERSION, "export manifest",
                            ExportError)
    files = manifest.get("files")
    graph = manifest.get("graph")
    if not isinstance(files, dict) or not isinstance(graph, dict) or graph.get("format") not in FORMATS \
            or not {graph.get("file"), "encoders.json", "schema.json"} <= set(files):
        raise ExportError(f"{path} is incomplete (it must list the graph and every file with its sha256)")
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise ExportError(f"export folder {folder} is missing {', '.join(missing)} (listed in {MANIFEST}); export the "
                          f"run again")
    for name, digest in files.items():
        f = folder / name
        if sha256_file(f) != digest:
            raise ExportError(f"{f} differs from its sha256 in {MANIFEST} (modified or corrupt); export the run again")
    encoders = Encoders.load(folder)
    schema = DataSchema.from_dict(json.loads((folder / "schema.json").read_text(encoding="utf-8")))
    if encoders.schema != schema:
        raise ExportError(f"{folder}: encoders.json and schema.json describe different data")
    return Export(folder, manifest, schema, encoders)

