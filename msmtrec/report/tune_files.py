"""The tables and plot of a tune (:mod:`msmtrec.tune.study`), from its trial rows: ``trial``,
``state`` (COMPLETE / PRUNED / FAIL / RUNNING / WAITING), ``value`` (validation score of a
complete trial), ``params`` (setting → value), ``last_reported`` (the last validation score given
to the pruner), ``epochs``, ``seconds`` and ``started``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from msmtrec.report.format import number
from msmtrec.report.plotting import MISSING, pyplot, save_figure


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def trials_markdown(rows: list[dict[str, Any]], names: list[str], summary: list[str]) -> str:
    """``trials.md``: the summary lines, then one table row per trial, best value in bold."""
    best = max((r["value"] for r in rows if r["state"] == "COMPLETE" and r["value"] is not None), default=None)
    lines = ["## Tune", "", *summary, "",
             "| trial | state | validation score | " + " | ".join(names) + " | epochs | seconds | started |",
             "|---|---|---|" + "---|" * len(names) + "---|---|---|"]
    for r in rows:
        value = number(r["value"]) if r["value"] is not None else "–"
        if r["state"] == "PRUNED" and r["last_reported"] is not None:
            value = f"({number(r['last_reported'])} when pruned)"
        elif r["value"] is not None and r["value"] == best:
            value = f"**{value}**"
        cells = [str(r["trial"]), r["state"].lower(), value] + [_text(r["params"].get(n)) for n in names]
        cells += [_text(r["epochs"]), "" if r["seconds"] is None else f"{r['seconds']:.1f}", r["started"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def trials_csv(rows: list[dict[str, Any]], names: list[str]) -> str:
    """``trials.csv``: trial, state, value, one column per setting, epochs, seconds, started."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["trial", "state", "val_score", *names, "last_reported", "epochs", "seconds", "started"])
    for r in rows:
        seconds = None if r["seconds"] is None else round(r["seconds"], 3)
        w.writerow([_cell(v) for v in (r["trial"], r["state"], r["value"], *[r["params"].get(n) for n in names],
                                       r["last_reported"], r["epochs"], seconds, r["started"])])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    """A CSV cell: numbers in full, lists as JSON, nothing as empty."""
    return "" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v


def plot_history(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> str | None:
    """Optimisation history: each complete trial's validation score, the best so far, and pruned
    trials at the score they were pruned with. Returns None when written, else why not."""
    plt = pyplot()
    if plt is None:
        return f"{MISSING}; optimisation history skipped"
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_reported"] is not None]
    if not complete and not pruned:
        return "no finished trial; optimisation history skipped"
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([r["trial"] for r in complete], [r["value"] for r in complete], "o", color="C0", label="complete")
    if pruned:
        ax.plot([r["trial"] for r in pruned], [r["last_reported"] for r in pruned], "x", color="grey",
                label="pruned (score when pruned)")
    best, xs, ys = None, [], []
    for r in sorted(complete, key=lambda r: r["trial"]):
        best = r["value"] if best is None else max(best, r["value"])
        xs.append(r["trial"])
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="C3", label="best so far")
    ax.set(xlabel="trial", ylabel="validation score (mean AUC)", title=title or "optimisation history")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return None
