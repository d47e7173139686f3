"""Data warnings: each quiet degradation in a dataset report is one line, and a clean report has none."""

from __future__ import annotations

import copy

import pytest

from msmtrec.data.quality import FEW_SCENARIO_ROWS, data_warnings

CLEAN = {
    "rows": {"train": 800, "val": 100, "test": 100},
    "dropped": {"train": {}, "val": {}, "test": {}}, "dropped_total": 0,
    "scenario_rows": {"train": {"a": 500, "b": 300}, "val": {"a": 60, "b": 40}, "test": {"a": 70, "b": 30}},
    "label_observed": {"train": {"y": 800}, "val": {"y": 100}, "test": {"y": 100}},
    "label_positive_rate": {"train": {"y": 0.3}, "val": {"y": 0.2}, "test": {"y": 0.25}},
    "categorical_values": {"c": {"distinct": 40, "kept": 12}},
    "numeric_infinite": {},
    "unknown_rows": {"train": {"c": 0}, "val": {"c": 90}, "test": {"c": 12}},  # 90 % of val: at the limit, not over
    "scenario_label_counts": {"train": {"y": {"a": {"observed": 500, "positive": 150},
                                              "b": {"observed": 300, "positive": 90}}}},
}


def changed(**edits):
    report = copy.deepcopy(CLEAN)
    for path, value in edits.items():
        node = report
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return report


def test_a_clean_report_has_no_warnings():
    assert data_warnings(CLEAN, min_count=1) == []


@pytest.mark.parametrize("edits,warning", [
    ({"dropped__train": {"missing_scenario": 4}, "dropped__test": {"unknown_scenario": 1}, "dropped_total": 5},
     "dropped 5 rows: 4 in train (missing scenario); 1 in test (unknown scenario)"),
    ({"label_observed__train__y": 780, "label_observed__test__y": 99},
     "task 'y': labels missing (masked, not read as 0) in train 20 of 800, test 1 of 100"),
    ({"label_positive_rate__val__y": 0.0},
     "task 'y' has a single class in val: its AUC is undefined there and cannot guide model selection"),
    ({"numeric_infinite": {"price": 3}}, "numeric column 'price' has 3 infinite or out-of-range value(s) in train "
                                         "(beyond float32's ±3.4e38); they are read as missing"),
    ({"categorical_values__c": {"distinct": 40, "kept": 0}},
     "categorical column 'c' has no train value seen min_count=5 times (of 40 distinct): every row maps to unknown "
     "(id 0), the field carries no information"),
    ({"categorical_values__c": {"distinct": 0, "kept": 0}},
     "categorical column 'c' has no value in train: every row maps to unknown (id 0), the field carries no "
     "information"),
    ({"unknown_rows__test__c": 91},
     "categorical column 'c': 91 of the 100 test rows (91%) hold a value the model did not see in train, or none; "
     "they are read as unknown (id 0)"),
    ({"scenario_rows__train__b": FEW_SCENARIO_ROWS - 1},
     f"scenario 'b' has only {FEW_SCENARIO_ROWS - 1} train rows: its own parameters learn from few examples"),
    ({"scenario_rows__test__b": 0}, "scenario 'b' has no test rows: it gets no metrics there"),
    ({"scenario_label_counts__train__y__b": {"observed": 300, "positive": 0}},
     "scenario 'b' has only negative 'y' labels in train (all 300 observed): a model can learn no more there than "
     "that constant"),
    ({"scenario_label_counts__train__y__a": {"observed": 500, "positive": 500}},
     "scenario 'a' has only positive 'y' labels in train (all 500 observed): a model can learn no more there than "
     "that constant"),
    ({"scenario_label_counts__train__y__b": {"observed": 0, "positive": 0}},
     "scenario 'b' has no observed 'y' label in train: nothing there to learn it from"),
])
def test_each_degradation_is_one_warning(edits, warning):
    assert data_warnings(changed(**edits), min_count=5) == [warning]
