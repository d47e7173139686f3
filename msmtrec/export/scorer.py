"""Scoring raw rows with a trained model: :class:`Scorer`.

    scorer = Scorer.load("exports/ple")          # an export folder, or a run directory
    scored = scorer.predict(table)               # a pyarrow Table or pandas DataFrame of raw columns

The rows are encoded by the model's own fitted encoders through the code that encoded its
training data (:meth:`msmtrec.data.Encoders.transform_for_prediction`), then scored in batches
by the export's graph (ONNX Runtime or TorchScript) or, for a run directory, the eager model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.errors import DataError, ExportError
from msmtrec.export.artifact import MANIFEST, read_export
from msmtrec.export.backends import Backend, EagerBackend

DEFAULT_BATCH = 8192
UNKNOWN_SCENARIO = ("error", "skip")


class Scorer:
    """Encoders and a backend (see :func:`Scorer.load`).

    Attributes:
        encoders: the model's fitted :class:`~msmtrec.data.Encoders`.
        backend: called on an encoded batch, returns ``[n, T]`` probabilities.
        batch_size: rows per backend call.
    """

    def __init__(self, encoders: Any, backend: Backend, batch_size: int = DEFAULT_BATCH) -> None:
        self.encoders, self.backend, self.batch_size = encoders, backend, batch_size

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None, batch_size: int = DEFAULT_BATCH) -> "Scorer":
        """The scorer of an export folder (one with ``manifest.json``; every file checked against its
        sha256) or of a run directory (its eager model). ``threads``: ONNX Runtime's intra-op
        threads, or PyTorch's (set process-wide); None leaves the runtime's default.

        Raises:
            ExportError: an export folder that is incomplete, modified, or that this machine's
                runtime cannot run.
            CheckpointError: a run directory that cannot be loaded (or a path that is neither).
        """
        path = Path(path)
        if path.is_dir() and not (path / MANIFEST).is_file() and not (path / "config.yaml").is_file():
            raise ExportError(f"{path} is neither an export folder (no {MANIFEST}) nor a run directory (no config.yaml)")
        export = read_export(path) if (path / MANIFEST).is_file() else None
        if threads and (export is None or export.format != "onnx"):
            import torch

            torch.set_num_threads(threads)
        if export is not None:
            return cls(export.encoders, export.backend(threads), batch_size)
        from msmtrec.train.api import load_run

        run = load_run(path)
        return cls(run.encoders, EagerBackend(run.model), batch_size)

    @property
    def schema(self) -> DataSchema:
        return self.encoders.schema

    def score(self, data: EncodedData) -> np.ndarray:
        """``[N, T]`` probabilities of every task for each encoded row's own scenario."""
        parts = [self.backend(b) for b in iterate_batches(data, self.batch_size, shuffle=False)]
        return np.concatenate(parts) if parts else np.zeros((0, self.schema.num_tasks), dtype=np.float32)

    def predict(self, table: Any, *, unknown_scenario: str = "error", source: str = "table") -> Any:
        """``table`` (a pyarrow Table or pandas DataFrame with the spec's feature columns) with a
        ``<task>_prob`` column per task, of the same type. A row without a scenario, or with one
        the model does not know, is a :class:`DataError`, or with ``unknown_scenario="skip"`` gets
        null (NaN) probabilities. Label columns are not read."""
        if isinstance(table, pa.Table):
            return self.predict_table(table, unknown_scenario=unknown_scenario, source=source)[0]
        if type(table).__name__ == "DataFrame" and type(table).__module__.startswith("pandas"):
            try:
                arrow = pa.Table.from_pandas(table, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise DataError(f"{source}: the DataFrame cannot be read as columns ({e})") from None
            scored, _ = self.predict_table(arrow, unknown_scenario=unknown_scenario, source=source)
            out = table.copy()
            for task in self.schema.tasks:
                out[f"{task}_prob"] = scored.column(f"{task}_prob").to_numpy(zero_copy_only=False)
            return out
        raise DataError(f"Scorer.predict expects a pyarrow Table or a pandas DataFrame, got {type(table).__name__}")

    def predict_table(self, table: pa.Table, *, unknown_scenario: str = "error", source: str = "table",
                      first_row: int = 0, unknown_ids: Counter | None = None) -> tuple[pa.Table, int]:
        """:meth:`predict` on an Arrow table; also returns the number of rows left unscored.
        ``first_row``: the table's first row's position in ``source`` (for the row an error names).
        ``unknown_ids``: adds, per categorical column, the scored rows whose value the model reads
        as unknown (id 0: not seen in train, or missing)."""
        if unknown_scenario not in UNKNOWN_SCENARIO:
            raise DataError(f"unknown_scenario must be 'error' or 'skip', got '{unknown_scenario}'")
        result = self.encoders.transform_for_prediction(
            table, source=source, unknown_scenario="error" if unknown_scenario == "error" else "drop")
        kept = result.kept_rows
        if unknown_scenario == "error" and not kept.all():
            first = int(np.flatnonzero(~kept)[0])
            raise DataError(f"{source}: {int((~kept).sum()):,} row(s) have no value in scenario column "
                            f"'{self.encoders.spec.scenario.column}' (the first is row {first_row + first + 1}); a model scores "
                            f"each row for its own scenario: fill it in, or pass --unknown-scenario skip "
                            f"(unknown_scenario='skip') to leave such rows unscored")
        if unknown_ids is not None:
            columns = self.encoders.spec.categorical  # the first fields of the layout
            unknown_ids.update(dict(zip(columns, (result.data.categorical[:, :len(columns)] == 0).sum(0).tolist())))
        probs = self.score(result.data)
        out = table
        for j, task in enumerate(self.schema.tasks):
            col = np.full(table.num_rows, np.nan, dtype=np.float64)
            col[kept] = probs[:, j]
            name = f"{task}_prob"
            arr = pa.array(col, mask=~kept)
            if name in out.column_names:
                out = out.set_column(out.column_names.index(name), name, arr)
            else:
                out = out.append_column(name, arr)
        return out, int((~kept).sum())
