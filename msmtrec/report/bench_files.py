"""The files of a bench (:class:`msmtrec.bench.BenchResult`), all written atomically:

- ``bench.md`` — overall table (mean ± std over seeds of the test mean AUC and logloss over
  (scenario, task) pairs — each model scored on the target it declares comparable, e.g. the
  all-impressions target of an entire-space model —, RelaImpr against the baseline, parameters,
  training time, samples/s), then per target: AUC and logloss per scenario (rows) and model
  (columns), and RelaImpr;
- ``bench.csv`` — the same figures in long form (model, scenario, target, metric, mean, std, n);
- ``runs.csv`` — one line per (model, seed) run;
- ``bench.json`` — everything, including each run's configuration;
- ``bench_auc.png`` — per-scenario test AUC per model (one panel per task, error bars = std);
  needs matplotlib, skipped with a note otherwise.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msmtrec.errors import ConfigError
from msmtrec.files import atomic_write, write_json
from msmtrec.report.format import integer, mean_std, number
from msmtrec.report.plotting import MISSING, pyplot, save_figure

if TYPE_CHECKING:  # pragma: no cover
    from msmtrec.bench import BenchResult

OUTPUT_FILES = ("bench.md", "bench.csv", "runs.csv", "bench.json", "bench_auc.png")


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that already holds bench files, unless ``overwrite``."""
    existing = [n for n in OUTPUT_FILES if (out / n).exists()]
    if existing and not overwrite:
        raise ConfigError(f"bench: {out} already holds {', '.join(existing)}; choose another --out or pass --overwrite")


def write_bench(result: BenchResult, out_dir: str | Path, *, overwrite: bool = False, plot: bool = True) -> dict[str, Path]:
    """Write ``bench.md``, ``bench.csv``, ``runs.csv``, ``bench.json`` and (with matplotlib)
    ``bench_auc.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    check_out_dir(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    note = None
    if plot:
        note = plot_bench_auc(result, out / "bench_auc.png")
        if note is None:
            paths["plot"] = out / "bench_auc.png"
    paths["markdown"] = out / "bench.md"
    atomic_write(paths["markdown"], bench_markdown(result, note) + "\n")
    columns = ["model", "scenario", "target", "metric", "mean", "std", "n"]
    paths["csv"] = out / "bench.csv"
    atomic_write(paths["csv"], _csv([columns] + [[r[c] for c in columns] for r in result.rows()]))
    paths["runs"] = out / "runs.csv"
    atomic_write(paths["runs"], _csv(
        [["model", "seed", "test_mean_auc", "test_mean_logloss", "parameters", "train_seconds", "samples_per_second",
          "epochs", "best_epoch", "run_dir"]]
        + [[r["model"], r["seed"], r["test"]["mean_auc"], r["test"]["mean_logloss"], r["num_parameters"],
            round(r["train_seconds"], 3), round(r["samples_per_second"], 1), r["epochs"], r["best"].get("epoch"),
            r["run_dir"] or ""] for r in result.runs]))
    paths["json"] = out / "bench.json"
    write_json(paths["json"], {"data": result.data, "models": result.models, "seeds": result.seeds,
                               "baseline": result.baseline, "started": result.started, "config": result.config,
                               "scenarios": result.scenarios, "tasks": result.tasks, "targets": result.targets,
                               "runs": result.runs, "aggregates": result.rows()})
    return paths


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def bench_markdown(result: BenchResult, plot_note: str | None = None) -> str:
    """``bench.md``: the overall table, then AUC, logloss and RelaImpr per target and scenario."""
    r = result
    seeds = ", ".join(map(str, r.seeds))
    lines = [f"## Bench: {', '.join(r.models)} on {r.data}", "",
             f"Test split, mean ± std over seeds {seeds} (each run: model selection on validation, best weights "
             f"restored, test evaluated once). Started {r.started}.", ""]
    ri_head = f" | RelaImpr vs {r.baseline} (%)" if r.baseline else ""
    lines += [f"| model | mean AUC | mean logloss{ri_head} | mean AUC, own targets | parameters | train time (s) "
              f"| samples/s | epochs |",
              "|---|---|---" + ("|---" if r.baseline else "") + "|---|---|---|---|---|"]
    for model in r.models:
        ri_cell = f" | {number(r.rela_impr(model), 2, signed=True)}" if r.baseline else ""
        lines.append(f"| {model} | {mean_std(r.overall(model, 'auc'))} | {mean_std(r.overall(model, 'logloss'))}{ri_cell}"
                     f" | {mean_std(r.own_targets(model, 'auc'))}"
                     f" | {integer(r.stat(model, lambda run: run['num_parameters'])[0])}"
                     f" | {mean_std(r.stat(model, lambda run: run['train_seconds']), 1)}"
                     f" | {integer(r.stat(model, lambda run: run['samples_per_second'])[0])}"
                     f" | {mean_std(r.stat(model, lambda run: run['epochs']), 1)} |")
    lines.append("")
    lines.append("Mean AUC / logloss: averaged over the (scenario, task) pairs of a run, then over seeds; "
                 "entire-space models are scored on their all-impressions target of each task (CTCVR for a "
                 "conversion), the same rows and labels as the others. \"Own targets\" averages every target a "
                 "model reports (for ESMM/AEM²TL also CVR on clicked rows), so it is not comparable across "
                 "model families. A small scenario weighs as much as a large one in these means; the pooled "
                 "rows of the tables below do not have that noise.")
    lines.append("")
    for target in r.targets:
        for metric, title in (("auc", "AUC"), ("logloss", "logloss")):
            lines += [f"### Test {title} — {target}", "", "| scenario | " + " | ".join(r.models) + " |",
                      "|---|" + "---|" * len(r.models)]
            for s in r.scenarios + [None]:
                name = s if s is not None else "**pooled**"
                lines.append(f"| {name} | " + " | ".join(mean_std(r.cell(m, s, target, metric)) for m in r.models)
                             + " |")
            lines.append("")
        others = [m for m in r.models if m != r.baseline]
        if r.baseline and others:
            lines += [f"### RelaImpr (%) of the AUC vs {r.baseline} — {target}", "",
                      "| scenario | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
            for s in r.scenarios + [None]:
                name = s if s is not None else "**pooled**"
                lines.append(f"| {name} | " + " | ".join(number(r.rela_impr(m, s, target), 2, signed=True)
                                                         for m in others) + " |")
            lines.append("")
    if plot_note:
        lines += [plot_note, ""]
    return "\n".join(lines)


def plot_bench_auc(result: BenchResult, path: Path) -> str | None:
    """Per-scenario test AUC per model: one panel per task (each model on its comparable target,
    as in the tables' means), grouped bars by scenario, error bars = std over seeds. Returns a
    note when matplotlib is missing (the plot is then skipped)."""
    plt = pyplot()
    if plt is None:
        return f"Plot skipped: {MISSING}."
    tasks = result.tasks or result.targets
    scenarios, models = result.scenarios, result.models
    width_in = min(16.0, max(6.0, 0.22 * len(scenarios) * len(models) + 2.5))
    fig, axes = plt.subplots(len(tasks), 1, figsize=(width_in, 3.2 * len(tasks)), squeeze=False)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(scenarios))
    for ax, task in zip(axes[:, 0], tasks):
        lows = []
        for k, model in enumerate(models):
            runs = result.runs_of(model)
            means, stds = [], []
            for s in scenarios:
                vals = [r["test"]["per_scenario"].get(s, {}).get(result.task_target(r, task) or "", {}).get("auc")
                        for r in runs]
                vals = [v for v in vals if v is not None]
                means.append(float(np.mean(vals)) if vals else np.nan)
                stds.append(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)
            ax.bar(x + (k - (len(models) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=model)
            lows += [m - sd for m, sd in zip(means, stds) if not np.isnan(m)]
        ax.set_xticks(x)
        ax.set_xticklabels(scenarios)
        ax.set_ylabel(f"{task} AUC")
        if lows:
            ax.set_ylim(max(0.0, min(lows) - 0.02), None)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncol=min(len(models), 8), loc="lower left", bbox_to_anchor=(0, 1.02))
    fig.suptitle(f"{Path(result.data).name if '/' in result.data else result.data}: test AUC per scenario "
                 f"(mean ± std over seeds {', '.join(map(str, result.seeds))})", fontsize=10, y=1.0)
    save_figure(fig, path, bbox_inches="tight")
    return None
