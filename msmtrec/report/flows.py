"""AutoIFS's flow selection for people: the kept fractions per (scenario, task) from the hard gate
decisions, the table, its warnings, its heatmap and the run's summary. A report
(:func:`flow_selection`, :meth:`msmtrec.models.autoifs.AutoIFS.flow_report`) holds ``flows``,
``decomposition``, ``kept_fraction[scenario][task][flow]``, optionally
``no_flow_fraction[scenario][task]``, ``gates_changed_in_search`` and ``ticket_from``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from msmtrec.report.plotting import MISSING, pyplot, save_figure

if TYPE_CHECKING:
    from msmtrec.data.encoded import DataSchema


def flow_selection(pruned: torch.Tensor, scenario: torch.Tensor, schema: "DataSchema", flows: Sequence[str], *,
                   decomposition: str, selector: str, gates_changed: float = math.nan,
                   ticket_from: str = "gates") -> dict[str, Any]:
    """The report of hard decisions ``pruned`` [N, T, F] (True = prune) of rows of ``scenario`` [N]:
    per present (scenario, task) the share of rows keeping each flow and the share keeping none."""
    pruned = pruned.to(torch.float64)
    s, n_scen, n_tasks = scenario, schema.num_scenarios, schema.num_tasks
    counts = torch.bincount(s, minlength=n_scen).to(torch.float64)
    kept = torch.zeros(n_scen, n_tasks, len(flows), dtype=torch.float64).index_add_(0, s, 1 - pruned)
    none = torch.zeros(n_scen, n_tasks, dtype=torch.float64).index_add_(0, s, pruned.prod(-1))
    frac, none = kept / counts.clamp_min(1)[:, None, None], none / counts.clamp_min(1)[:, None]
    scen, tasks = schema.scenarios, schema.tasks
    present = [i for i in range(len(scen)) if counts[i] > 0]
    return {
        "flows": list(flows),
        "decomposition": decomposition,
        "selector": selector,
        "ticket_from": ticket_from,
        "samples": {scen[i]: int(counts[i]) for i in range(len(scen))},
        "kept_fraction": {scen[i]: {tasks[t]: {f: round(float(frac[i, t, j]), 4) for j, f in enumerate(flows)}
                                     for t in range(len(tasks))} for i in present},
        "no_flow_fraction": {scen[i]: {tasks[t]: round(float(none[i, t]), 4) for t in range(len(tasks))}
                             for i in present},
        "gates_changed_in_search": None if math.isnan(gates_changed) else round(gates_changed, 4),
    }


def flow_warnings(report: dict[str, Any]) -> list[str]:
    """What a reader of the table must not miss: a search that changed no gate decision (the ticket
    is the selector's initialisation, not a selection), and every (scenario, task) whose samples
    lose every flow (in the linear decomposition its prediction is then a constant)."""
    out = []
    if report.get("gates_changed_in_search") == 0:
        checked = " less what the validation check pruned" if report.get("ticket_from") == "validation" else ""
        out.append("no gate decision changed during search: the kept flows are the selection network's random "
                   f"initialisation{checked}, not a selection (see docs/models/autoifs.md)")
    for scen, tasks in report.get("no_flow_fraction", {}).items():
        for task, share in tasks.items():
            if share > 0:
                out.append(f"{scen} / {task}: every flow is pruned for {share:.1%} of its samples")
    return out


def format_flow_report(report: dict[str, Any]) -> str:
    """The flow-selection table as text (one row per (scenario, task), one column per flow)."""
    short = ["sh>sh", "sh>task", "scen>sh", "scen>task"]
    rows = [f"{'scenario / task':<28}" + "".join(f"{c:>10}" for c in short)]
    for scen, tasks in report["kept_fraction"].items():
        for task, fr in tasks.items():
            rows.append(f"{(scen + ' / ' + task)[:28]:<28}" + "".join(f"{fr[f]:>10.2f}" for f in report["flows"]))
    text = ("share of samples keeping each flow (sh = shared unit, scen = scenario-specific unit, "
            "task = task-specific unit)\n" + "\n".join(rows))
    return text + "".join(f"\nwarning: {w}" for w in flow_warnings(report))


def plot_flow_selection(report: dict[str, Any], path: str | Path) -> str | None:
    """Heatmap of the kept fractions; returns None when written, else a note saying why not."""
    plt = pyplot()
    if plt is None:
        return f"{MISSING}; heatmap skipped"
    labels, values = [], []
    for scen, tasks in report["kept_fraction"].items():
        for task, fr in tasks.items():
            labels.append(f"{scen} / {task}")
            values.append([fr[f] for f in report["flows"]])
    warnings = flow_warnings(report)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.8 + 0.3 * len(warnings)))
    im = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(report["flows"])))
    ax.set_xticklabels([f.replace("->", "\n→ ") for f in report["flows"]], fontsize=8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    ax.set_title(f"AutoIFS: share of samples keeping each flow ({report['decomposition']} decomposition)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    if warnings:
        fig.text(0.01, 0.005, "\n".join(f"warning: {w}" for w in warnings), color="darkred", fontsize=7, va="bottom",
                 wrap=True)
        fig.subplots_adjust(bottom=0.12 + 0.06 * len(warnings))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    return None


def flow_selection_summary(flows: dict[str, Any], params: dict[str, int],
                           run_dir: str | Path | None = None) -> dict[str, Any]:
    """What a run reports of AutoIFS: the selection with its warnings, the parameter split, the
    heatmap ``flow_selection.png`` in ``run_dir`` (when matplotlib is installed) and the summary in words."""
    flows = {**flows, "warnings": flow_warnings(flows)}
    lines = [f"AutoIFS flow selection ({flows['decomposition']} decomposition, {sum(flows['samples'].values()):,} samples)",
             format_flow_report(flows),
             f"parameters: {params['total']:,} ({params['predictor']:,} predictor + {params['selector']:,} selector"
             + (f"; plus a frozen {params['selector_embedding_copy']:,}-value embedding copy for the selector)"
                if params["selector_embedding_copy"] else ")")]
    if run_dir is not None:
        path = Path(run_dir) / "flow_selection.png"
        note = plot_flow_selection(flows, path)
        flows["heatmap"] = str(path) if note is None else None
        lines.append(f"heatmap: {path}" if note is None else f"note: {note}")
        if note:
            flows["heatmap_note"] = note
    return {"flow_selection": flows, "parameters": params, "summary": "\n".join(lines)}
