"""Human-readable results: the per-(scenario, task) table printed after training and saved as
``results.md`` in the run directory."""

from __future__ import annotations

from msmtrec.report.format import number


def results_table(metrics: dict, title: str | None = None) -> str:
    """Markdown table: one row per scenario (plus pooled and mean rows), AUC and logloss per target.

    ``metrics`` is the output of :func:`msmtrec.metrics.evaluate_predictions`.
    """
    targets = list(metrics["per_target"])
    has_gauc = metrics.get("mean_gauc") is not None
    head = ["scenario"]
    for t in targets:
        head += [f"{t} AUC", f"{t} logloss"] + ([f"{t} GAUC"] if has_gauc else [])
    head.append("rows")
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, by_target: dict, n: int | None) -> str:
        cells = [name]
        for t in targets:
            m = by_target.get(t, {})
            cells += [number(m.get("auc")), number(m.get("logloss"))] + ([number(m.get("gauc"))] if has_gauc else [])
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
    if metrics.get("undefined_auc"):
        summary += f". {metrics['undefined_auc']} (scenario, task) group(s) have a single class and no AUC"
    lines.append(summary + ".")
    return "\n".join(lines) + "\n"
