"""Scoring a file with a trained model — a run directory or an export folder: the input's
columns plus one probability column per task."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.data.columns import is_list_type
from msmtrec.data.quality import mostly_unknown
from msmtrec.errors import DataError, DataWarning
from msmtrec.files import atomic_write


#: Rows read, encoded and scored at a time when a Parquet input is streamed (one row group of the
#: output each); what predict holds in memory is a few of these, whatever the file's size.
PREDICT_ROWS = 262_144


def predict_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 unknown_scenario: str = "error", overwrite: bool = False, threads: int | None = None,
                 chunk_rows: int = PREDICT_ROWS) -> tuple[int, int]:
    """Score ``input_path`` with the model in ``model_dir`` (a run directory or an export folder,
    see :meth:`msmtrec.export.Scorer.load`) and write ``output_path``.

    The output has the input's columns and ``<task>_prob`` for every task: the probability for
    the row's own scenario. A row without a scenario, or with one the model does not know, raises
    a :class:`DataError` naming it, or with ``unknown_scenario="skip"`` gets null probabilities and
    is counted. Label columns of the input are not read. Returns ``(rows written, rows skipped)``.

    A Parquet input is streamed: read, encoded, scored and written ``chunk_rows`` rows at a time,
    the next chunk read while one is scored. A CSV input (its column types are settled by the
    whole file) and a model whose history is built from the input's own rows (a row's history is
    the earlier rows of its user, anywhere in the file) are read whole. Either way the output
    appears only once complete: a failure leaves no file.

    A categorical column whose value is unknown to the model (not seen in train, or missing) in
    more than :data:`~msmtrec.data.quality.MOSTLY_UNKNOWN` of the scored rows is named in a :class:`DataWarning`: those
    rows are scored without it, which is rarely what was meant.
    """
    from msmtrec.data.stream import prefetched
    from msmtrec.export.scorer import Scorer

    input_path, output_path = Path(input_path), Path(output_path)
    if unknown_scenario not in ("error", "skip"):
        raise DataError(f"unknown_scenario must be 'error' or 'skip', got '{unknown_scenario}'")
    if output_path.exists() and not overwrite:
        raise DataError(f"output {output_path} already exists; pass --overwrite to replace it")
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"output {output_path} is the input file; choose another path")
    writer = _writer_for(output_path)
    scorer = Scorer.load(model_dir, threads=threads)
    spec = scorer.encoders.spec
    data = spec.data_file(input_path, "auto", read_rows=chunk_rows)  # a CSV read as in training
    data.require(spec.required_columns(labels=False), options_of="the model's training spec")  # before any row
    whole = data.kind == "csv" or any(s.built for s in spec.sequences.values())
    chunks = iter([(0, data.read())]) if whole else prefetched(data.batches(), depth=1)
    counts = [0, 0]  # rows read, rows skipped
    unknown: Counter = Counter()

    def write(tmp: Path) -> None:
        out = None
        try:
            for first, table in chunks:
                scored, skipped = scorer.predict_table(table, unknown_scenario=unknown_scenario,
                                                       source=f"input {input_path}", first_row=first,
                                                       unknown_ids=unknown)
                if out is None:
                    out = writer(tmp, scored.schema, spec)
                out.write(scored)
                counts[0] += table.num_rows
                counts[1] += skipped
        finally:
            if out is not None:
                out.close()
        if counts[0] == 0:
            raise DataError(f"input {input_path} has no rows")

    atomic_write(output_path, write)
    for line in mostly_unknown(dict(unknown), counts[0] - counts[1], "scored rows"):
        warnings.warn(line, DataWarning, stacklevel=2)
    return counts[0], counts[1]


class _ParquetOut:
    """Scored chunks into one Parquet file, a row group each. The probability columns are stored
    byte-stream-split, without a dictionary: nearly every value differs, so a dictionary is built
    only to be dropped, and split bytes compress (2.5x faster to write than the defaults, and
    smaller, on 1M rows: docs/BENCHMARKS.md)."""

    def __init__(self, path: Path, schema: pa.Schema, spec: Any) -> None:
        import pyarrow.parquet as pq

        probs = {f"{t.name}_prob" for t in spec.tasks} & set(schema.names)
        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema, compression="zstd",
                                        use_dictionary=[c for c in schema.names if c not in probs],
                                        column_encoding={c: "BYTE_STREAM_SPLIT" for c in probs})

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(_conform(table, self.schema))

    def close(self) -> None:
        self._writer.close()


class _CsvOut:
    """Scored chunks into one CSV file; a list column is text, its entries joined by the spec's
    ``sep`` for it (else ``|``)."""

    def __init__(self, path: Path, schema: pa.Schema, spec: Any) -> None:
        import pyarrow.csv as pacsv

        self._seps = {e.column: e.sep for e in [*spec.multi_categorical.values(), *spec.sequences.values()] if e.column}
        self.schema = self._as_text(schema.empty_table()).schema
        self._writer = pacsv.CSVWriter(path, self.schema)

    def _as_text(self, table: pa.Table) -> pa.Table:
        for i, field in enumerate(table.schema):
            if is_list_type(field.type):
                text = pc.binary_join(pc.cast(table.column(i), pa.list_(pa.string())), self._seps.get(field.name) or "|")
                table = table.set_column(i, field.name, text)
        return table

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(_conform(self._as_text(table), self.schema))

    def close(self) -> None:
        self._writer.close()


def _writer_for(path: Path) -> Any:
    """The output's writer class, by extension; refused before anything is scored."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"output {path}: unsupported extension '{suffix}', use .csv or .parquet")
    if not path.parent.exists():
        raise DataError(f"output folder {path.parent} does not exist")
    return _CsvOut if suffix == ".csv" else _ParquetOut


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A later chunk in the first chunk's column types (the files of a Parquet folder may differ)."""
    if table.schema.equals(schema):
        return table
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise DataError(f"the input's columns change type between row groups: {exc}") from None
