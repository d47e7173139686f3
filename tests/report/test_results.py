"""The results table: positives per cell, unreliable AUCs marked, and every "–" explained."""

from __future__ import annotations

import numpy as np

from msmtrec.metrics import evaluate_predictions
from msmtrec.report import results_table


def _table(user: bool) -> str:
    rng = np.random.default_rng(0)
    n = 600
    scenario = np.repeat([0, 1], n // 2)
    label = np.concatenate([rng.random(n // 2) < 0.5, rng.random(n // 2) < 0.04]).astype(float)  # b: ~12 positives
    pred = rng.random(n)
    users = np.arange(n) if user else None  # one row per user: no user has both classes
    metrics = evaluate_predictions(scenario, ["a", "b"], {"click": (pred, label, np.ones(n, bool)),
                                                          "buy": (pred, np.zeros(n), np.ones(n, bool))}, users)
    return results_table(metrics)


def test_positives_per_cell_and_few_of_a_class_marks_the_auc_unreliable():
    lines = _table(user=False).splitlines()
    assert lines[0] == "| scenario | click AUC | click logloss | click pos | buy AUC | buy logloss | buy pos | rows |"
    a, b, pooled = (line.split(" | ") for line in lines[2:5])
    assert int(b[3]) < 30 and b[1].endswith(" †") and not a[1].endswith("†") and not pooled[1].endswith("†")
    assert int(a[3]) + int(b[3]) == int(pooled[3]) and a[4] == "–" and a[6] == "0"
    assert "AUC –: 3 cell(s) have a single class, so no AUC." in lines
    assert "†: 1 cell(s) have fewer than 30 positives or negatives: their AUC is unreliable." in lines


def test_an_undefined_gauc_keeps_its_column_and_says_why():
    lines = _table(user=True).splitlines()
    assert lines[0].startswith("| scenario | click AUC | click logloss | click GAUC | click pos |")
    assert all(line.split(" | ")[3] == "–" for line in lines[2:5])
    assert lines[6].endswith("; mean GAUC –.")
    assert "GAUC –: 6 cell(s) have no user with both a positive and a negative label, so no GAUC." in lines
