"""What a dataset report says a user should look at: the quiet degradations that do not stop
training — rows dropped, labels missing (masked, never read as 0), infinite numbers (or beyond
float32's range) read as missing, a categorical field or list collapsed to unknown, a categorical
column unknown in almost all val or test rows (or rows to score), lists cut to
their ``max_len``, a built history empty for every train row, a scenario with few train rows or none
in val/test, a task with one class in val or with one class (or none observed) in a scenario's train
rows — each one line of the report's ``warnings``.
"""

from __future__ import annotations

from typing import Any

from msmtrec.data.io import SPLITS

__all__ = ["FEW_SCENARIO_ROWS", "MOSTLY_UNKNOWN", "data_warnings", "mostly_unknown"]

#: A scenario with fewer train rows than this is reported: its own parameters learn from little.
FEW_SCENARIO_ROWS = 100

#: A categorical column read as unknown (not seen in train, or missing) in more than this share of
#: a split's rows (val, test, or rows to score) is reported: its ids are probably not those of the
#: training data, or it is empty (new users or items alone rarely reach it).
MOSTLY_UNKNOWN = 0.9


def data_warnings(report: dict[str, Any], min_count: int) -> list[str]:
    """The warnings of a dataset report (:attr:`Dataset.report`; the train-only keys
    ``categorical_values``, ``numeric_infinite`` and ``list_values``, and ``history_rows`` and
    ``unknown_rows`` (per split), are read when present)."""
    out = []
    if report["dropped_total"]:
        parts = [f"{n:,} in {s} ({why.replace('_', ' ')})" for s in SPLITS for why, n in report["dropped"][s].items()]
        out.append(f"dropped {report['dropped_total']:,} rows: " + "; ".join(parts))
    for task in report["label_observed"]["train"]:
        missing = [(s, report["rows"][s] - report["label_observed"][s][task], report["rows"][s]) for s in SPLITS]
        if any(m for _, m, _ in missing):
            out.append(f"task '{task}': labels missing (masked, not read as 0) in "
                       + ", ".join(f"{s} {m:,} of {n:,}" for s, m, n in missing if m))
        if report["label_positive_rate"]["val"][task] in (0.0, 1.0):
            out.append(f"task '{task}' has a single class in val: its AUC is undefined there and cannot guide "
                       f"model selection")
    for task, by_scenario in report.get("scenario_label_counts", {}).get("train", {}).items():
        for name, c in by_scenario.items():
            if c["observed"] == 0 and report["scenario_rows"]["train"].get(name):
                out.append(f"scenario '{name}' has no observed '{task}' label in train: nothing there to learn it from")
            elif c["positive"] in (0, c["observed"]) and c["observed"]:
                kind = "negative" if c["positive"] == 0 else "positive"
                out.append(f"scenario '{name}' has only {kind} '{task}' labels in train (all {c['observed']:,} observed): "
                           f"a model can learn no more there than that constant")
    for column, n in report.get("numeric_infinite", {}).items():
        out.append(f"numeric column '{column}' has {n:,} infinite or out-of-range value(s) in train (beyond "
                   f"float32's ±3.4e38); they are read as missing")
    for column, v in report.get("categorical_values", {}).items():
        if v["kept"] == 0:
            why = ("has no value in train" if v["distinct"] == 0 else
                   f"has no train value seen min_count={min_count} times (of {v['distinct']:,} distinct)")
            out.append(f"categorical column '{column}' {why}: every row maps to unknown (id 0), the field carries "
                       f"no information")
    for split in ("val", "test"):
        out += mostly_unknown(report.get("unknown_rows", {}).get(split, {}), report["rows"][split], f"{split} rows")
    for name, v in report.get("list_values", {}).items():
        if v["kept"] == 0:
            out.append(f"list feature '{name}' has no train entry seen min_count={min_count} times (of "
                       f"{v['distinct']:,} distinct): every entry maps to unknown (id 0)")
        if v["truncated"]:
            out.append(f"list feature '{name}': {v['truncated']:,} of {v['rows']:,} train rows hold more than "
                       f"max_len={v['max_len']} entries; only the first {v['max_len']} are kept")
    for name, by_split in report.get("history_rows", {}).items():
        train = by_split.get("train", {"rows": 0, "empty": 0})
        if train["rows"] and train["empty"] == train["rows"]:
            out.append(f"history '{name}' is empty for every train row: no user has an event strictly before "
                       f"another of theirs (check its user and time columns)")
    for name, n in report["scenario_rows"]["train"].items():
        if n < FEW_SCENARIO_ROWS:
            out.append(f"scenario '{name}' has only {n:,} train rows: its own parameters learn from few examples")
        empty = [s for s in ("val", "test") if report["scenario_rows"][s].get(name) == 0]
        if empty:
            out.append(f"scenario '{name}' has no {' or '.join(empty)} rows: it gets no metrics there")
    return out


def mostly_unknown(unknown_rows: dict[str, int], rows: int, what: str) -> list[str]:
    """A line per categorical column whose ``unknown_rows`` are more than :data:`MOSTLY_UNKNOWN` of
    ``rows`` (``what``: how the message names those rows)."""
    return [f"categorical column '{column}': {n:,} of the {rows:,} {what} ({n / rows:.0%}) hold a value the model "
            f"did not see in train, or none; they are read as unknown (id 0)"
            for column, n in unknown_rows.items() if rows and n / rows > MOSTLY_UNKNOWN]
