"""Ranking metrics per (scenario, target): AUC, logloss and GAUC, and their aggregates.

AUC is the Mann–Whitney statistic with tied scores given average ranks, so it equals
``sklearn.metrics.roc_auc_score``. A group with a single class has no AUC: it is reported as
``None`` and counted in ``undefined_auc``, never an exception.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

EPS = 1e-7


def auc(pred: np.ndarray, label: np.ndarray) -> float | None:
    """ROC AUC of scores ``pred`` for binary ``label``; None when only one class is present."""
    label = np.asarray(label).astype(bool)
    n_pos = int(label.sum())
    n_neg = label.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(np.asarray(pred, dtype=np.float64), return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score value.
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = avg_rank[inverse][label].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(pred: np.ndarray, label: np.ndarray, eps: float = EPS) -> float | None:
    """Mean binary cross-entropy with predictions clipped to ``[eps, 1 - eps]``."""
    if len(label) == 0:
        return None
    p = np.clip(np.asarray(pred, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(label, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def gauc(pred: np.ndarray, label: np.ndarray, group: np.ndarray) -> float | None:
    """Group AUC (DIN): AUC per group (user), averaged with weights = the group's impression count,
    over groups that contain both classes. Vectorised: one lexsort, no loop over users."""
    pred = np.asarray(pred, dtype=np.float64)
    label = np.asarray(label).astype(np.float64)
    group = np.asarray(group)
    if pred.size == 0:
        return None
    order = np.lexsort((pred, group))
    g, p, y = group[order], pred[order], label[order]
    n = g.size
    pos = np.arange(n)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    gid = np.cumsum(new_group) - 1
    group_start = pos[new_group][gid]
    new_run = new_group.copy()
    new_run[1:] |= p[1:] != p[:-1]
    run_id = np.cumsum(new_run) - 1
    run_start = pos[new_run]
    run_end = np.append(run_start[1:], n) - 1
    rank = (run_start[run_id] + run_end[run_id]) / 2.0 - group_start + 1  # 1-based, ties averaged
    n_g = np.bincount(gid).astype(np.float64)
    n_pos = np.bincount(gid, weights=y)
    r_pos = np.bincount(gid, weights=rank * y)
    n_neg = n_g - n_pos
    valid = (n_pos > 0) & (n_neg > 0)
    if not valid.any():
        return None
    aucs = (r_pos[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2.0) / (n_pos[valid] * n_neg[valid])
    return float(np.sum(aucs * n_g[valid]) / np.sum(n_g[valid]))


def _group_metrics(pred: np.ndarray, label: np.ndarray, user: np.ndarray | None) -> dict:
    out = {"n": int(label.size), "positives": int(label.sum()), "auc": auc(pred, label), "logloss": logloss(pred, label)}
    if user is not None:
        out["gauc"] = gauc(pred, label, user)
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def evaluate_predictions(scenario: np.ndarray, scenario_names: Sequence[str],
                         targets: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                         user: np.ndarray | None = None) -> dict:
    """Metrics for every (scenario, target), every target pooled over scenarios, and means.

    Args:
        scenario: ``[N]`` scenario index per row.
        scenario_names: names for the indices.
        targets: name → ``(prediction [N], label [N], mask [N])``; rows with mask False are
            ignored for that target (a missing label, or outside the target's space such as CVR
            on non-clicked impressions).
        user: optional ``[N]`` user ids for GAUC.

    Returns:
        ``{"per_scenario": {scenario: {target: {...}}}, "per_target": {target: {...}},
        "mean_auc", "mean_logloss", "mean_gauc", "mean_target_auc", "undefined_auc"}``, where
        ``mean_auc`` (the model-selection criterion) averages the AUC over (scenario, target)
        pairs that have one.
    """
    scenario = np.asarray(scenario)
    per_scenario: dict[str, dict] = {str(s): {} for s in scenario_names}
    per_target: dict[str, dict] = {}
    for name, (pred, label, mask) in targets.items():
        pred, label, mask = np.asarray(pred), np.asarray(label), np.asarray(mask).astype(bool)
        u = None if user is None else np.asarray(user)
        per_target[name] = _group_metrics(pred[mask], label[mask], None if u is None else u[mask])
        for s, sname in enumerate(scenario_names):
            rows = mask & (scenario == s)
            per_scenario[str(sname)][name] = _group_metrics(pred[rows], label[rows], None if u is None else u[rows])
    pairs = [m for by_t in per_scenario.values() for m in by_t.values() if m["n"] > 0]
    return {
        "per_scenario": per_scenario,
        "per_target": per_target,
        "mean_auc": _mean([m["auc"] for m in pairs]),
        "mean_logloss": _mean([m["logloss"] for m in pairs]),
        "mean_gauc": _mean([m.get("gauc") for m in pairs]) if user is not None else None,
        "mean_target_auc": _mean([m["auc"] for m in per_target.values()]),
        "undefined_auc": sum(1 for m in pairs if m["auc"] is None),
    }


def relative_improvement(auc_model: float, auc_base: float) -> float:
    """RelaImpr (AEM²TL, Yan et al.): ``((AUC_model − 0.5) / (AUC_base − 0.5) − 1) × 100``."""
    return ((auc_model - 0.5) / (auc_base - 0.5) - 1.0) * 100.0
