"""Task labels: a task's rule turns its raw column into 0/1 with a mask (a missing label is masked,
never read as 0), and :class:`LabelFitter` records what train's labels look like."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msmtrec.data.columns import as_float, nan_to_null, plain, shown, sum_by_value
from msmtrec.errors import DataError

_POSITIVE_WORDS = ("yes", "y", "true", "t", "positive", "pos")
_OPS = {"==": pc.equal, "!=": pc.not_equal, ">": pc.greater, ">=": pc.greater_equal, "<": pc.less,
        "<=": pc.less_equal}


def label_columns(task: Any) -> list[str]:
    """The raw columns a task's label is computed from."""
    return [task.column] + ([task.rule.column] if task.rule is not None and task.rule.column else [])


def encode_label(where: str, task: Any, table: pa.Table, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labels float32 [N], observed bool [N])`` of one task; null → not observed, never 0."""
    col = nan_to_null(plain(table.column(task.column)))
    rule = task.rule
    if rule is None:
        if pa.types.is_null(col.type):
            return np.zeros(len(col), np.float32), np.zeros(len(col), bool)
        try:
            x = as_float(col, "label")  # NaN = missing; "0"/"1" stored as text is still 0/1
        except DataError:  # not numbers
            bad = sorted((v for v in pc.unique(col.drop_null()).to_pylist() if str(v) not in ("0", "1")), key=str)
        else:
            observed = ~np.isnan(x)
            wrong = observed & (x != 0) & (x != 1)
            if not wrong.any():
                return np.where(observed, x, 0.0).astype(np.float32), observed
            if pa.types.is_integer(col.type):  # exactly, not through a float
                bad = sorted(set(pc.unique(col.drop_null()).to_pylist()) - {0, 1})
            else:
                bad = [int(v) if float(v).is_integer() else float(v) for v in np.unique(x[wrong])]
        raise DataError(f"{where}: task '{task.name}' column '{task.column}' must be 0/1 after its rule, "
                        f"found values {shown(bad)} in {source}; {_rule_hint(bad)}")
    if rule.column is not None:
        right: Any = nan_to_null(plain(table.column(rule.column)))
        right_text = f"column '{rule.column}' ({right.type})"
    else:
        right = rule.value
        right_text = f"{rule.value!r}"
    try:
        result = _OPS[rule.op](col, right)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        raise DataError(f"{where}: task '{task.name}' rule cannot compare column '{task.column}' ({col.type}) "
                        f"with {right_text} in {source}; use a value of the column's type") from None
    observed = pc.is_valid(result).to_numpy(zero_copy_only=False)
    labels = result.fill_null(False).to_numpy(zero_copy_only=False).astype(np.float32)
    return labels, observed


def _rule_hint(values: list[Any]) -> str:
    """A rule that binarises a column holding ``values``: ``== 'yes'`` for text, ``> 0`` for numbers."""
    text = [v for v in values if isinstance(v, str)]
    if not text:
        return 'give the task a rule to binarise it, e.g. rule: {op: ">", value: 0}'
    positive = next((v for v in text if v.strip().lower() in _POSITIVE_WORDS), text[0])
    return f'give the task a rule saying which value is positive, e.g. rule: {{op: "==", value: "{positive}"}}'


def check_two_classes(spec: Any, report: dict[str, Any], source: str) -> None:
    """Refuse a task whose train labels are all one class or all missing: a model cannot learn it,
    and every AUC of it would be undefined. ``report``: :attr:`EncodersFitter.report`.

    Raises:
        DataError: naming the task, its rule and the raw column's most frequent values with counts.
    """
    for task in spec.tasks:
        observed, rate = report["label_observed"][task.name], report["label_positive_rate"][task.name]
        if rate is not None and 0 < rate < 1:
            continue
        top = report["label_values"][task.name]
        shown_top = ", ".join(f"{'missing' if v is None else repr(v)} ({n:,})" for v, n in top)
        values = f"the most frequent values of column '{task.column}' in {source}: {shown_top}"
        if rate is None:
            raise DataError(f"{spec.where}: task '{task.name}' has no observed label in {source}; {values}")
        label = int(rate)
        if task.rule is None:
            why = f"column '{task.column}' holds only {label}"
        else:
            why = f"its rule {task.rule.describe(task.column)} is {'true' if label else 'false'} for every row"
            close = _close_value(task.rule.value, [v for v, _ in top])
            why += f" (did you mean {close!r}?)" if close is not None else ""
        raise DataError(f"{spec.where}: task '{task.name}' has a single class in {source} (all {observed:,} "
                        f"observed labels are {label}): {why}; {values}")


def _close_value(value: Any, values: list[str]) -> str | None:
    """The value of ``values`` that ``value`` was probably meant to be (case or spacing aside)."""
    if not isinstance(value, str):
        return None
    wanted = value.strip().lower()
    return next((v for v in values if v is not None and v != value and v.strip().lower() == wanted), None)


class LabelFitter:
    """Per task, over train chunks: labels observed, positives (in all and per raw scenario value),
    and the raw column's most frequent values as text (what a message needs to explain a rule that
    matches nothing; exact unless a chunk has more than ``10 × top`` distinct values)."""

    def __init__(self, spec: Any, top: int = 5) -> None:
        self.spec, self.top = spec, top
        self.observed = np.zeros(len(spec.tasks), dtype=np.int64)
        self.positive = np.zeros(len(spec.tasks), dtype=np.int64)
        self._values: list[list[pa.StructArray]] = [[] for _ in spec.tasks]
        self._by_scenario: list[pa.Table] = []

    def update(self, table: pa.Table, source: str, scenario: Any = None) -> None:
        """Count a train chunk's labels; ``scenario``: its raw scenario column (None: constant)."""
        counts = {}
        for j, task in enumerate(self.spec.tasks):
            labels, observed = encode_label(self.spec.where, task, table, source)
            self.observed[j] += int(observed.sum())
            self.positive[j] += int(labels[observed].sum())
            counts[f"o{j}"], counts[f"p{j}"] = observed.astype(np.int64), (labels * observed).astype(np.int64)
            vc = pc.value_counts(plain(table.column(task.column)))
            if len(vc) > 10 * self.top:  # a hint needs the head only (approximate for long tails)
                vc = vc.take(pc.select_k_unstable(vc.field("counts"), k=10 * self.top, sort_keys=[("", "descending")]))
            self._values[j].append(vc)
        if scenario is not None and (chunk := sum_by_value([pa.table({"v": scenario, **counts})])) is not None:
            self._by_scenario.append(chunk)  # one row per raw scenario value

    def by_scenario(self, coder: Any) -> dict[str, dict[str, dict[str, int]]]:
        """Task → scenario name → ``observed`` and ``positive`` train labels, through the fitted
        scenario ``coder`` (a constant scenario: the totals)."""
        names = list(coder.names)
        if coder.constant:
            return {t.name: {names[0]: {"observed": int(self.observed[j]), "positive": int(self.positive[j])}}
                    for j, t in enumerate(self.spec.tasks)}
        merged = sum_by_value(self._by_scenario)
        if merged is None:
            return {}
        codes, _ = coder.codes(merged.column("v").combine_chunks(), merged.num_rows)
        keep = codes >= 0
        out = {}
        for j, task in enumerate(self.spec.tasks):
            o, q = (np.bincount(codes[keep], weights=merged.column(f"{k}{j}").to_numpy()[keep], minlength=len(names))
                    for k in ("o", "p"))
            out[task.name] = {n: {"observed": int(o[i]), "positive": int(q[i])} for i, n in enumerate(names)}
        return out

    def finish(self, coder: Any) -> dict[str, dict[str, Any]]:
        """The report's label keys, by task: ``label_observed``, ``label_positive_rate``,
        ``scenario_label_counts`` (:meth:`by_scenario`) and ``label_values`` (the raw column's most
        frequent ``[value, count]`` pairs)."""
        names, top = [t.name for t in self.spec.tasks], {}
        for j, name in enumerate(names):
            merged = sum_by_value([pa.table({"v": pc.cast(vc.field("values"), pa.string()),
                                             "n": pc.cast(vc.field("counts"), pa.int64())}) for vc in self._values[j]])
            top[name] = [] if merged is None else [[r["v"], r["n"]] for r in merged.sort_by(
                [("n", "descending"), ("v", "ascending")]).slice(0, self.top).to_pylist()]
        return {"label_observed": {t: int(o) for t, o in zip(names, self.observed)},
                "label_positive_rate": {t: int(p) / int(o) if o else None
                                        for t, o, p in zip(names, self.observed, self.positive)},
                "scenario_label_counts": self.by_scenario(coder), "label_values": top}
