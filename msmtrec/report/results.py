"""Human-readable results: the per-(scenario, task) table printed after training and saved as
``results.md`` in the run directory.

Each target has its positives per cell beside its AUC, and an AUC computed from fewer than
:data:`RELIABLE_CLASS_SIZE` positives (or negatives) is marked ``†``: with so few, it moves by
several points from one sample to the next. A cell without an AUC or GAUC shows ``–``, and the
footer says why.
"""

from __future__ import annotations

from msmtrec.report.format import integer, number

#: A cell's AUC is marked unreliable when its smaller class has fewer rows than this.
RELIABLE_CLASS_SIZE = 30


def results_table(metrics: dict, title: str | None = None) -> str:
    """Markdown table: one row per scenario (plus the pooled row); AUC, logloss, GAUC (when the
    data has users) and positives per target; then the means and what the marks mean.

    ``metrics`` is the output of :func:`msmtrec.metrics.evaluate_predictions`.
    """
    targets = list(metrics["per_target"])
    has_gauc = any("gauc" in m for m in metrics["per_target"].values())
    head = ["scenario"]
    for t in targets:
        head += [f"{t} AUC", f"{t} logloss"] + ([f"{t} GAUC"] if has_gauc else []) + [f"{t} pos"]
    head.append("rows")
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, by_target: dict, n: int | None) -> str:
        cells = [name]
        for t in targets:
            m = by_target.get(t, {})
            auc = number(m.get("auc")) + (" †" if m.get("auc") is not None and _unreliable(m) else "")
            cells += [auc, number(m.get("logloss"))] + ([number(m.get("gauc"))] if has_gauc else [])
            cells.append(integer(m.get("positives")))
        cells.append("" if n is None else f"{n:,}")
        return "| " + " | ".join(cells) + " |"

    for s, by_t in metrics["per_scenario"].items():
        n = max((m["n"] for m in by_t.values()), default=0)
        lines.append(row(s, by_t, n))
    lines.append(row("**all (pooled)**", metrics["per_target"], max((m["n"] for m in metrics["per_target"].values()), default=0)))
    lines.append("")
    summary = f"Mean AUC over (scenario, task) pairs: **{number(metrics['mean_auc'])}**; mean logloss {number(metrics['mean_logloss'])}"
    if has_gauc:
        summary += f"; mean GAUC {number(metrics['mean_gauc'])}"
    lines.append(summary + ".")
    rows = [*metrics["per_scenario"].values(), metrics["per_target"]]
    cells = [m for by_t in rows for m in by_t.values() if m["n"] > 0]
    notes = [(sum(1 for m in cells if m["auc"] is None), "AUC –", "have a single class, so no AUC"),
             (sum(1 for m in cells if m["auc"] is not None and _unreliable(m)), "†",
              f"have fewer than {RELIABLE_CLASS_SIZE} positives or negatives: their AUC is unreliable"),
             (sum(1 for m in cells if has_gauc and m.get("gauc") is None), "GAUC –",
              "have no user with both a positive and a negative label, so no GAUC")]
    lines += [f"{mark}: {n} cell(s) {why}." for n, mark, why in notes if n]
    return "\n".join(lines) + "\n"


def _unreliable(m: dict) -> bool:
    return min(m["positives"], m["n"] - m["positives"]) < RELIABLE_CLASS_SIZE
