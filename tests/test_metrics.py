import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from msmtrec.metrics import auc, evaluate_predictions, gauc, logloss, relative_improvement


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.random(n) < 0.3
    pred = np.round(rng.random(n) * 0.5 + 0.4 * y, 2)  # rounding creates many ties
    assert abs(auc(pred, y) - roc_auc_score(y, pred)) < 1e-6


def test_auc_single_class_is_none():
    assert auc(np.array([0.1, 0.2]), np.array([1, 1])) is None
    assert auc(np.array([]), np.array([])) is None


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = rng.uniform(0.01, 0.99, 500)
    assert abs(logloss(p, y) - log_loss(y, p)) < 1e-9


def test_gauc_matches_weighted_per_user_sklearn():
    rng = np.random.default_rng(1)
    n = 3000
    user = rng.integers(0, 60, n)
    y = rng.random(n) < 0.4
    pred = np.round(rng.random(n) + 0.3 * y, 1)
    num = den = 0.0
    for u in np.unique(user):
        m = user == u
        if y[m].all() or not y[m].any():
            continue
        num += m.sum() * roc_auc_score(y[m], pred[m])
        den += m.sum()
    assert abs(gauc(pred, y, user) - num / den) < 1e-9


def test_evaluate_predictions_groups_by_scenario_and_mask():
    rng = np.random.default_rng(2)
    n = 1000
    scen = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.5).astype(float)
    p = rng.random(n) * 0.5 + 0.3 * y
    mask = rng.random(n) < 0.8
    y2 = np.ones(n)  # task "b" has a single class in every scenario
    m = evaluate_predictions(scen, ["x", "y", "z"], {"a": (p, y, mask), "b": (p, y2, np.ones(n, bool))})
    for s, name in enumerate(["x", "y", "z"]):
        rows = (scen == s) & mask
        assert abs(m["per_scenario"][name]["a"]["auc"] - roc_auc_score(y[rows], p[rows])) < 1e-6
        assert m["per_scenario"][name]["a"]["n"] == rows.sum()
        assert m["per_scenario"][name]["b"]["auc"] is None
    assert abs(m["per_target"]["a"]["auc"] - roc_auc_score(y[mask], p[mask])) < 1e-6
    assert m["undefined_auc"] == 3
    expected_mean = np.mean([roc_auc_score(y[(scen == s) & mask], p[(scen == s) & mask]) for s in range(3)])
    assert abs(m["mean_auc"] - expected_mean) < 1e-9


def test_relative_improvement_matches_aem2tl_table():
    # AEM²TL Tables II/III: 0.7299 vs 0.7241 is +2.59 %
    assert round(relative_improvement(0.7299, 0.7241), 2) == 2.59
