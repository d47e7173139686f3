"""Scoring a file with a trained run: the input's columns plus one probability column per task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from msmtrec.errors import DataError
from msmtrec.files import atomic_write
from msmtrec.train.api import load_run
from msmtrec.train.evaluate import predict_proba


def predict_file(run_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 unknown_scenario: str = "error", overwrite: bool = False) -> tuple[int, int]:
    """Score ``input_path`` with the run's model and encoders and write ``output_path``.

    The output has the input's columns and ``<task>_prob`` for every task: the probability for
    the row's own scenario. A row without a scenario, or with one the model does not know, raises
    a :class:`DataError` naming it, or with ``unknown_scenario="skip"`` gets null probabilities and
    is counted. Label columns of the input are not read. Returns ``(rows written, rows skipped)``.
    """
    from msmtrec.data.io import DataFile

    input_path, output_path = Path(input_path), Path(output_path)
    if unknown_scenario not in ("error", "skip"):
        raise DataError(f"unknown_scenario must be 'error' or 'skip', got '{unknown_scenario}'")
    if output_path.exists() and not overwrite:
        raise DataError(f"output {output_path} already exists; pass --overwrite to replace it")
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"output {output_path} is the input file; choose another path")
    run = load_run(run_dir)
    spec = run.encoders.spec
    table = DataFile(input_path, id_columns=spec.id_columns, csv=spec.files.csv).read()  # a CSV read as in training
    if table.num_rows == 0:
        raise DataError(f"input {input_path} has no rows")
    source = f"input {input_path}"
    result = run.encoders.transform_for_prediction(table, source=source,
                                                   unknown_scenario="error" if unknown_scenario == "error" else "drop")
    kept = result.kept_rows
    if unknown_scenario == "error" and not kept.all():
        first = int(np.flatnonzero(~kept)[0])
        raise DataError(f"{source}: {int((~kept).sum()):,} row(s) have no value in scenario column "
                        f"'{spec.scenario.column}' (the first is row {first + 1}); a model scores each row for its "
                        f"own scenario: fill it in, or pass --unknown-scenario skip to leave such rows unscored")
    probs = predict_proba(run.model, result.data, run.config.eval_batch_size)
    out = table
    for j, task in enumerate(run.schema.tasks):
        col = np.full(table.num_rows, np.nan, dtype=np.float64)
        col[kept] = probs[:, j]
        name = f"{task}_prob"
        arr = pa.array(col, mask=~kept)
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    _write_table(out, output_path)
    return table.num_rows, int((~kept).sum())


def _write_table(table: pa.Table, path: Path) -> None:
    """Write CSV or Parquet by extension, atomically (a failure leaves nothing half-written)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"output {path}: unsupported extension '{suffix}', use .csv or .parquet")
    if not path.parent.exists():
        raise DataError(f"output folder {path.parent} does not exist")
    if suffix == ".csv":
        atomic_write(path, lambda tmp: pacsv.write_csv(table, tmp))
    else:
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
