"""Scoring a file with a trained model — a run directory or an export folder: the input's
columns plus one probability column per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.errors import DataError
from msmtrec.files import atomic_write


def predict_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 unknown_scenario: str = "error", overwrite: bool = False, threads: int | None = None) -> tuple[int, int]:
    """Score ``input_path`` with the model in ``model_dir`` (a run directory or an export folder,
    see :meth:`msmtrec.export.Scorer.load`) and write ``output_path``.

    The output has the input's columns and ``<task>_prob`` for every task: the probability for
    the row's own scenario. A row without a scenario, or with one the model does not know, raises
    a :class:`DataError` naming it, or with ``unknown_scenario="skip"`` gets null probabilities and
    is counted. Label columns of the input are not read. Returns ``(rows written, rows skipped)``.
    """
    from msmtrec.export.scorer import Scorer

    input_path, output_path = Path(input_path), Path(output_path)
    if unknown_scenario not in ("error", "skip"):
        raise DataError(f"unknown_scenario must be 'error' or 'skip', got '{unknown_scenario}'")
    if output_path.exists() and not overwrite:
        raise DataError(f"output {output_path} already exists; pass --overwrite to replace it")
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"output {output_path} is the input file; choose another path")
    scorer = Scorer.load(model_dir, threads=threads)
    spec = scorer.encoders.spec
    table = spec.data_file(input_path, "auto").read()  # a CSV read as in training
    if table.num_rows == 0:
        raise DataError(f"input {input_path} has no rows")
    out, skipped = scorer.predict_table(table, unknown_scenario=unknown_scenario, source=f"input {input_path}")
    _write_table(out, output_path, spec)
    return table.num_rows, skipped


def _write_table(table: pa.Table, path: Path, spec: Any) -> None:
    """Write CSV or Parquet by extension, atomically (a failure leaves nothing half-written); in a
    CSV a list column is text, its entries joined by the spec's ``sep`` for it (else ``|``). In
    Parquet the probability columns are stored byte-stream-split, without a dictionary: nearly
    every value differs, so a dictionary is built only to be dropped, and split bytes compress
    (2.5x faster to write than the defaults, and smaller, on 1M rows: docs/BENCHMARKS.md)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"output {path}: unsupported extension '{suffix}', use .csv or .parquet")
    if not path.parent.exists():
        raise DataError(f"output folder {path.parent} does not exist")
    if suffix == ".csv":
        seps = {e.column: e.sep for e in [*spec.multi_categorical.values(), *spec.sequences.values()] if e.column}
        for i, field in enumerate(table.schema):
            if pa.types.is_list(field.type) or pa.types.is_large_list(field.type) or pa.types.is_fixed_size_list(field.type):
                text = pc.binary_join(pc.cast(table.column(i), pa.list_(pa.string())), seps.get(field.name) or "|")
                table = table.set_column(i, field.name, text)
        atomic_write(path, lambda tmp: pacsv.write_csv(table, tmp))
    else:
        probs = {f"{t.name}_prob" for t in spec.tasks} & set(table.column_names)
        atomic_write(path, lambda tmp: pq.write_table(
            table, tmp, compression="zstd", use_dictionary=[c for c in table.column_names if c not in probs],
            column_encoding={c: "BYTE_STREAM_SPLIT" for c in probs}))
