"""The one fitter: :class:`EncodersFitter` runs every piece of :mod:`msmtrec.data.fit` over the
train chunks, so that one chunk (in memory) and many (streamed) give the same encoders."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from msmtrec.data.columns import as_float, as_ids, present
from msmtrec.data.encode import Encoders, check_no_label_leak, field_layout, require_columns
from msmtrec.data.fit.labels import LabelFitter, label_columns
from msmtrec.data.fit.lists import ListFitter
from msmtrec.data.fit.numeric import QUANTILE_SAMPLE, NumericFitter
from msmtrec.data.fit.scenario import ScenarioFitter
from msmtrec.data.fit.vocabulary import VocabularyFitter
from msmtrec.data.spec import DatasetSpec
from msmtrec.errors import DataError

__all__ = ["EncodersFitter"]


class EncodersFitter:
    """Fits :class:`Encoders` on train chunks: ``update(chunk)`` per chunk, then ``finish()``.

    Rows without a scenario are not fitted on (they are dropped from every split). Besides the
    encoders it keeps what train looked like (:attr:`report` after :meth:`finish`, in the form of
    a dataset report's split): rows kept and read, rows dropped, rows per scenario, per task the
    labels observed, their positive rate and the raw column's most frequent values, per categorical
    column its distinct and kept values, and per numeric column its infinite values (if any).

    Args:
        quantile_sample: values of a ``bucketize`` column kept exactly before sampling starts.
        seed: seeds that sampling.
    """

    def __init__(self, spec: DatasetSpec, *, quantile_sample: int = QUANTILE_SAMPLE, seed: int = 0) -> None:
        check_no_label_leak(spec)
        self.spec = spec
        self.scenario = ScenarioFitter(spec)
        self.vocabularies = {c: VocabularyFitter(c, spec.min_count) for c, kind in field_layout(spec) if kind == "vocab"}
        self.numeric = {n.column: NumericFitter(n.column, n.transform, n.buckets, spec.where,
                                                quantile_sample=quantile_sample, seed=seed + i)
                        for i, n in enumerate(spec.numeric)}
        self.labels = LabelFitter(spec)
        self.lists = {n: ListFitter(e, spec.min_count) for n, e in spec.multi_categorical.items()}
        self.report: dict[str, Any] = {}

    def update(self, table: pa.Table, source: str = "train") -> None:
        spec = self.spec
        require_columns(spec, table, spec.required_columns(labels=False), source)
        col = None if spec.scenario.constant is not None else table.column(spec.scenario.column)
        if self.scenario.update(col, table.num_rows):
            table = table.filter(present(col))
        for c, fitter in self.vocabularies.items():
            try:
                fitter.update(table.column(c))
            except DataError as exc:
                raise DataError(f"{spec.where}: {source} column '{c}': {exc}") from None
        for c, fitter in self.numeric.items():
            fitter.update(as_float(table.column(c), f"{spec.where}: {source} numeric column '{c}'"))
        for n, fitter in self.lists.items():
            fitter.update(table.column(fitter.entry.column),
                          f"{spec.where}: {source} column '{fitter.entry.column}' (multi_categorical[{n!r}])")
        if all(c in table.column_names for t in spec.tasks for c in label_columns(t)):
            self.labels.update(table, source, None if col is None else as_ids(table.column(spec.scenario.column)))

    def finish(self, source: str = "train") -> Encoders:
        """The fitted encoders.

        Raises:
            DataError: train has no rows; a scenario value is not in the mapping; a declared
                scenario has no train rows; a numeric column has no values.
        """
        if self.scenario.rows == 0:
            raise DataError(f"{self.spec.where}: {source} has no rows")
        coder = self.scenario.finish(source)
        encoders = Encoders(self.spec, coder, {c: f.finish() for c, f in self.vocabularies.items()},
                            {c: f.finish() for c, f in self.numeric.items()}, {n: f.finish() for n, f in self.lists.items()})
        missing = self.scenario.missing
        self.report = {"rows": self.scenario.rows - missing, "rows_read": self.scenario.rows,
                       "dropped": {"missing_scenario": missing} if missing else {},
                       "scenario_rows": self.scenario.scenario_rows, **self.labels.finish(coder),
                       "categorical_values": {c: {"distinct": f.distinct, "kept": len(encoders.vocabularies[c].values)}
                                              for c, f in self.vocabularies.items()},
                       "numeric_infinite": {c: f.infinite for c, f in self.numeric.items() if f.infinite},
                       "list_values": {n: {**f.report(), "kept": len(encoders.lists[n].values)}
                                       for n, f in self.lists.items()}}
        return encoders
