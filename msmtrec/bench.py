"""``msmtrec bench``: several models × several seeds on one dataset, compared in one table.

Every run goes through the library's own :func:`msmtrec.train.train` (same data pipeline, same
trainer, validation-based model selection, one test evaluation with the best weights), on a
dataset loaded once and shared by all runs. The comparison is written as:

- ``bench.md`` — overall table (mean ± std over seeds of the test mean AUC and logloss over
  (scenario, task) pairs — entire-space models scored on their all-impressions target of each
  task —, RelaImpr against the baseline, parameters, training time, samples/s),
  then per target: AUC and logloss per scenario (rows) and model (columns), and RelaImpr;
- ``bench.csv`` — the same figures in long form (model, scenario, target, metric, mean, std, n);
- ``runs.csv`` — one line per (model, seed) run;
- ``bench.json`` — everything, including each run's configuration;
- ``bench_auc.png`` — per-scenario test AUC per model (one panel per task, error bars = std);
  needs matplotlib (``pip install msmtrec[plot]``), skipped with a note otherwise.

RelaImpr (Yan et al., as in AEM²TL): ``((AUC_model − 0.5) / (AUC_base − 0.5) − 1) × 100``, on the
seed-averaged AUCs.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.metrics import relative_improvement

__all__ = ["BenchResult", "run_bench", "write_bench"]

OUTPUT_FILES = ("bench.md", "bench.csv", "runs.csv", "bench.json", "bench_auc.png")


@dataclass
class BenchResult:
    """Runs and their aggregates.

    Attributes:
        data: the dataset (name or spec path).
        models / seeds: what was run.
        baseline: the RelaImpr reference model (None: no RelaImpr).
        runs: one dict per (model, seed): summary figures and the test metrics.
        scenarios / targets: row and column order of the per-(scenario, target) tables.
        tasks: the schema's tasks (what :meth:`overall` averages over, see there).
    """

    data: str
    models: list[str]
    seeds: list[int]
    baseline: str | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    started: str = ""

    # -- aggregation --------------------------------------------------------------------------
    def _runs_of(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["model"] == model]

    def stat(self, model: str, key: Callable[[dict], float | None]) -> tuple[float | None, float | None, int]:
        """Mean, std (sample std over seeds; 0 with one seed) and count of ``key(run)``."""
        vals = [v for v in (key(r) for r in self._runs_of(model)) if v is not None and not math.isnan(v)]
        if not vals:
            return None, None, 0
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        return float(np.mean(vals)), std, len(vals)

    def cell(self, model: str, scenario: str | None, target: str, metric: str) -> tuple[float | None, float | None, int]:
        """Aggregate of one test metric; ``scenario`` None means the target pooled over scenarios."""
        def get(r: dict) -> float | None:
            test = r["test"]
            m = test["per_target"].get(target) if scenario is None else test["per_scenario"].get(scenario, {}).get(target)
            return None if m is None else m.get(metric)
        return self.stat(model, get)

    @staticmethod
    def task_target(run: dict[str, Any], task: str) -> str | None:
        """The evaluation target that scores ``task`` on the same rows and labels as the other
        models, as ``run``'s model declared it (:meth:`~msmtrec.models.MSMTModel.comparable_target`;
        entire-space models: their all-impressions target)."""
        return run["comparable_targets"].get(task)

    def _task_mean(self, run: dict[str, Any], metric: str) -> float | None:
        vals = []
        for task in self.tasks:
            target = self.task_target(run, task)
            if target is None:
                continue
            for s in self.scenarios:
                v = run["test"]["per_scenario"].get(s, {}).get(target, {}).get(metric)
                if v is not None and not math.isnan(v):
                    vals.append(v)
        return float(np.mean(vals)) if vals else None

    def overall(self, model: str, metric: str) -> tuple[float | None, float | None, int]:
        """Mean over (scenario, task) pairs of the schema's tasks (entire-space models scored on
        their all-impressions target, see :meth:`task_target`), then mean ± std over seeds. This is
        the comparable figure; ``own_targets`` averages every target a model reports instead."""
        return self.stat(model, lambda r: self._task_mean(r, metric))

    def own_targets(self, model: str, metric: str) -> tuple[float | None, float | None, int]:
        """The run's own ``mean_<metric>`` (over all its targets, e.g. also CVR on clicks)."""
        return self.stat(model, lambda r: r["test"].get(f"mean_{metric}"))

    def rela_impr(self, model: str, scenario: str | None = None, target: str | None = None) -> float | None:
        """RelaImpr of ``model`` over the baseline on the seed-averaged AUC (overall mean AUC when
        no scenario/target is given)."""
        if self.baseline is None:
            return None
        if target is None:
            m, b = self.overall(model, "auc")[0], self.overall(self.baseline, "auc")[0]
        else:
            m, b = self.cell(model, scenario, target, "auc")[0], self.cell(self.baseline, scenario, target, "auc")[0]
        if m is None or b is None or abs(b - 0.5) < 1e-12:
            return None
        return relative_improvement(m, b)

    def rows(self) -> list[dict[str, Any]]:
        """Long-form aggregates (what ``bench.csv`` holds)."""
        out = []
        for model in self.models:
            for metric in ("auc", "logloss"):
                mean, std, n = self.overall(model, metric)
                out.append({"model": model, "scenario": "(mean over pairs)", "target": "(tasks)", "metric": metric,
                            "mean": mean, "std": std, "n": n})
                mean, std, n = self.own_targets(model, metric)
                out.append({"model": model, "scenario": "(mean over pairs)", "target": "(own targets)",
                            "metric": metric, "mean": mean, "std": std, "n": n})
            for key, name in (("num_parameters", "parameters"), ("train_seconds", "train_seconds"),
                              ("samples_per_second", "samples_per_second"), ("epochs", "epochs")):
                mean, std, n = self.stat(model, lambda r, k=key: r[k])
                out.append({"model": model, "scenario": "", "target": "", "metric": name, "mean": mean, "std": std,
                            "n": n})
            ri = self.rela_impr(model)
            if ri is not None:
                out.append({"model": model, "scenario": "(mean over pairs)", "target": "(tasks)",
                            "metric": f"relaimpr_vs_{self.baseline}", "mean": ri, "std": None, "n": None})
            for scenario in self.scenarios + [None]:
                for target in self.targets:
                    for metric in ("auc", "logloss"):
                        mean, std, n = self.cell(model, scenario, target, metric)
                        if n:
                            out.append({"model": model, "scenario": scenario or "(pooled)", "target": target,
                                        "metric": metric, "mean": mean, "std": std, "n": n})
                    ri = self.rela_impr(model, scenario, target)
                    if ri is not None:
                        out.append({"model": model, "scenario": scenario or "(pooled)", "target": target,
                                    "metric": f"relaimpr_vs_{self.baseline}", "mean": ri, "std": None, "n": None})
        return out

    # -- rendering ------------------------------------------------------------------------------
    def markdown(self, plot_note: str | None = None) -> str:
        seeds = ", ".join(map(str, self.seeds))
        lines = [f"## Bench: {', '.join(self.models)} on {self.data}", "",
                 f"Test split, mean ± std over seeds {seeds} (each run: model selection on validation, best weights "
                 f"restored, test evaluated once). Started {self.started}.", ""]
        ri_head = f" | RelaImpr vs {self.baseline} (%)" if self.baseline else ""
        lines += [f"| model | mean AUC | mean logloss{ri_head} | mean AUC, own targets | parameters | train time (s) "
                  f"| samples/s | epochs |",
                  "|---|---|---" + ("|---" if self.baseline else "") + "|---|---|---|---|---|"]
        for model in self.models:
            ri = self.rela_impr(model)
            ri_cell = f" | {_num(ri, 2, signed=True)}" if self.baseline else ""
            lines.append(f"| {model} | {_pm(self.overall(model, 'auc'))} | {_pm(self.overall(model, 'logloss'))}{ri_cell}"
                         f" | {_pm(self.own_targets(model, 'auc'))}"
                         f" | {_int(self.stat(model, lambda r: r['num_parameters'])[0])}"
                         f" | {_pm(self.stat(model, lambda r: r['train_seconds']), 1)}"
                         f" | {_int(self.stat(model, lambda r: r['samples_per_second'])[0])}"
                         f" | {_pm(self.stat(model, lambda r: r['epochs']), 1)} |")
        lines.append("")
        lines.append("Mean AUC / logloss: averaged over the (scenario, task) pairs of a run, then over seeds; "
                     "entire-space models are scored on their all-impressions target of each task (CTCVR for a "
                     "conversion), the same rows and labels as the others. \"Own targets\" averages every target a "
                     "model reports (for ESMM/AEM²TL also CVR on clicked rows), so it is not comparable across "
                     "model families. A small scenario weighs as much as a large one in these means; the pooled "
                     "rows of the tables below do not have that noise.")
        lines.append("")
        for target in self.targets:
            for metric, title in (("auc", "AUC"), ("logloss", "logloss")):
                lines += [f"### Test {title} — {target}", "", "| scenario | " + " | ".join(self.models) + " |",
                          "|---|" + "---|" * len(self.models)]
                for s in self.scenarios + [None]:
                    name = s if s is not None else "**pooled**"
                    lines.append(f"| {name} | " + " | ".join(_pm(self.cell(m, s, target, metric)) for m in self.models)
                                 + " |")
                lines.append("")
            others = [m for m in self.models if m != self.baseline]
            if self.baseline and others:
                lines += [f"### RelaImpr (%) of the AUC vs {self.baseline} — {target}", "",
                          "| scenario | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
                for s in self.scenarios + [None]:
                    name = s if s is not None else "**pooled**"
                    lines.append(f"| {name} | " + " | ".join(_num(self.rela_impr(m, s, target), 2, signed=True)
                                                             for m in others) + " |")
                lines.append("")
        if plot_note:
            lines += [plot_note, ""]
        return "\n".join(lines)


def _num(v: float | None, digits: int = 4, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _int(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _pm(stat: tuple[float | None, float | None, int], digits: int = 4) -> str:
    mean, std, n = stat
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def run_bench(models: Sequence[str], data: str, seeds: Sequence[int], *, base: TrainConfig | None = None,
              baseline: str | None = None, model_params: dict[str, dict[str, Any]] | None = None,
              echo: Callable[[str], None] | None = None, dataset: Any = None, runs_root: str | Path | None = None
              ) -> BenchResult:
    """Train every model with every seed on ``data`` and collect the test metrics.

    Args:
        models: registered model names.
        data: built-in dataset name or spec path.
        seeds: one run per seed (the seed drives initialisation and shuffling; the split is the
            spec's).
        base: common training settings (epochs, batch size, lr, patience, threads, streaming ...);
            its ``model``, ``seed`` and ``data`` are replaced per run.
        baseline: model to compute RelaImpr against (must be one of ``models``); None: none.
        model_params: hyperparameters per model name.
        echo: progress lines.
        dataset: a loaded dataset to reuse (default: loaded once here).
        runs_root: if given, every run also writes its run directory below it.
    """
    from msmtrec.models import get_model_class
    from msmtrec.train import train

    echo = echo or (lambda _m: None)
    models = list(dict.fromkeys(models))
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not models:
        raise ConfigError("bench: give at least one model")
    if not seeds:
        raise ConfigError("bench: give at least one seed")
    for m in models:
        get_model_class(m)  # unknown names fail before any training
    if baseline is not None and baseline not in models:
        raise ConfigError(f"bench: baseline '{baseline}' is not among the models ({', '.join(models)})")
    model_params = dict(model_params or {})
    stray = sorted(set(model_params) - set(models))
    if stray:
        raise ConfigError(f"bench: parameters given for model(s) {', '.join(stray)} that are not benchmarked")
    base = base or TrainConfig()
    base = base.replace(data=str(data))
    if dataset is None:
        if base.streaming:
            from msmtrec.data.stream import open_streaming

            dataset = open_streaming(base.data, batch_size=base.batch_size, shuffle_buffer=base.shuffle_buffer,
                                     seed=base.seed, row_limit=base.row_limit)
        else:
            from msmtrec.data import load_dataset

            dataset = load_dataset(base.data, row_limit=base.row_limit)
    result = BenchResult(data=str(data), models=models, seeds=seeds, baseline=baseline,
                         scenarios=list(dataset.schema.scenarios), tasks=list(dataset.schema.tasks),
                         config=base.to_dict(),
                         started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    targets: list[str] = []
    total = len(models) * len(seeds)
    for i, model in enumerate(models):
        for j, seed in enumerate(seeds):
            config = base.replace(model=model, seed=seed, model_params=dict(model_params.get(model, {})))
            if runs_root is not None:
                config = config.replace(runs_root=str(runs_root), run_dir=None)
            echo(f"[{i * len(seeds) + j + 1}/{total}] {model} seed {seed}")
            t0 = time.perf_counter()
            run = train(config, dataset=dataset, write_run=runs_root is not None, progress=False)
            for t in run.test["per_target"]:
                if t not in targets:
                    targets.append(t)
            result.runs.append({
                "model": model, "seed": seed, "num_parameters": run.num_parameters,
                "train_seconds": run.fit.train_seconds, "samples_per_second": run.fit.samples_per_second,
                "wall_seconds": time.perf_counter() - t0, "epochs": len(run.fit.history), "best": run.fit.best,
                "comparable_targets": run.comparable_targets, "test": run.test, "config": config.to_dict(),
                "run_dir": None if run.run_dir is None else str(run.run_dir),
            })
            echo(f"      test mean AUC {_num(run.test['mean_auc'])}  logloss {_num(run.test['mean_logloss'])}  "
                 f"{len(run.fit.history)} epochs, {run.fit.train_seconds:.1f} s")
    result.targets = targets
    return result


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def plot_auc(result: BenchResult, path: Path) -> str | None:
    """Per-scenario test AUC per model: one panel per task (entire-space models on their
    all-impressions target, as in the tables' comparable means), grouped bars by scenario, error
    bars = std over seeds. Returns a note when matplotlib is missing (the plot is then skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "Plot skipped: matplotlib is not installed (`pip install msmtrec[plot]`)."
    tasks = result.tasks or result.targets
    scenarios, models = result.scenarios, result.models
    width_in = min(16.0, max(6.0, 0.22 * len(scenarios) * len(models) + 2.5))
    fig, axes = plt.subplots(len(tasks), 1, figsize=(width_in, 3.2 * len(tasks)), squeeze=False)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(scenarios))
    for ax, task in zip(axes[:, 0], tasks):
        lows = []
        for k, model in enumerate(models):
            runs = result._runs_of(model)
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
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return None


def write_bench(result: BenchResult, out_dir: str | Path, *, overwrite: bool = False, plot: bool = True) -> dict[str, Path]:
    """Write ``bench.md``, ``bench.csv``, ``runs.csv``, ``bench.json`` and (with matplotlib)
    ``bench_auc.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    existing = [n for n in OUTPUT_FILES if (out / n).exists()]
    if existing and not overwrite:
        raise ConfigError(f"bench: {out} already holds {', '.join(existing)}; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    note = None
    if plot:
        note = plot_auc(result, out / "bench_auc.png")
        if note is None:
            paths["plot"] = out / "bench_auc.png"
    (out / "bench.md").write_text(result.markdown(note) + "\n")
    paths["markdown"] = out / "bench.md"
    with open(out / "bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["model", "scenario", "target", "metric", "mean", "std", "n"])
        w.writeheader()
        w.writerows(result.rows())
    paths["csv"] = out / "bench.csv"
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "seed", "test_mean_auc", "test_mean_logloss", "parameters", "train_seconds",
                    "samples_per_second", "epochs", "best_epoch", "run_dir"])
        for r in result.runs:
            w.writerow([r["model"], r["seed"], r["test"]["mean_auc"], r["test"]["mean_logloss"], r["num_parameters"],
                        round(r["train_seconds"], 3), round(r["samples_per_second"], 1), r["epochs"],
                        r["best"].get("epoch"), r["run_dir"] or ""])
    paths["runs"] = out / "runs.csv"
    payload = {"data": result.data, "models": result.models, "seeds": result.seeds, "baseline": result.baseline,
               "started": result.started, "config": result.config, "scenarios": result.scenarios,
               "tasks": result.tasks,
               "targets": result.targets, "runs": result.runs, "aggregates": result.rows()}
    (out / "bench.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    paths["json"] = out / "bench.json"
    return paths
