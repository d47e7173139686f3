"""``msmtrec bench``: several models × several seeds on one dataset, compared in one table.

Every run goes through the library's own :func:`msmtrec.train.train` (same data pipeline, same
trainer, validation-based model selection, one test evaluation with the best weights), on a
dataset loaded once and shared by all runs. :class:`BenchResult` aggregates the runs (mean ± std
over seeds, RelaImpr); :mod:`msmtrec.report.bench_files` writes them as Markdown, CSV, JSON and a
plot.

RelaImpr (Yan et al., as in AEM²TL): ``((AUC_model − 0.5) / (AUC_base − 0.5) − 1) × 100``, on the
seed-averaged AUCs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.metrics import relative_improvement
from msmtrec.progress import RunsProgress
from msmtrec.report.format import number

__all__ = ["BenchResult", "run_bench"]


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
    def runs_of(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["model"] == model]

    def stat(self, model: str, key: Callable[[dict], float | None]) -> tuple[float | None, float | None, int]:
        """Mean, std (sample std over seeds; 0 with one seed) and count of ``key(run)``."""
        vals = [v for v in (key(r) for r in self.runs_of(model)) if v is not None and not math.isnan(v)]
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


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def run_bench(models: Sequence[str], data: str, seeds: Sequence[int], *, base: TrainConfig | None = None,
              baseline: str | None = None, model_params: dict[str, dict[str, Any]] | None = None,
              model_configs: dict[str, TrainConfig] | None = None, echo: Callable[[str], None] | None = None,
              live: bool | None = None, dataset: Any = None, runs_root: str | Path | None = None) -> BenchResult:
    """Train every model with every seed on ``data`` and collect the test metrics.

    Args:
        models: registered model names.
        data: built-in dataset name or spec path.
        seeds: one run per seed (the seed drives initialisation and shuffling; the split is the
            spec's).
        base: common training settings (epochs, batch size, lr, patience, threads, streaming ...);
            its ``model``, ``seed`` and ``data`` are replaced per run.
        baseline: model to compute RelaImpr against (must be one of ``models``); None: none.
        model_params: hyperparameters per model name (merged over those of its config).
        model_configs: a model's own training settings (e.g. the ``best_config.yaml`` of a tune):
            they replace ``base`` for that model, all but the bench's own settings (the data:
            ``data``, ``row_limit``, ``streaming``, ``shuffle_buffer``; the machine: ``threads``,
            ``device``; ``loggers``), which ``base`` gives every run.
        echo: progress lines (:class:`~msmtrec.progress.RunsProgress`).
        live: progress as one line rewritten on the terminal (None: when stderr is one).
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
    model_configs = dict(model_configs or {})
    stray = sorted(set(model_params) - set(models))
    if stray:
        raise ConfigError(f"bench: parameters given for model(s) {', '.join(stray)} that are not benchmarked")
    stray = sorted(set(model_configs) - set(models))
    if stray:
        raise ConfigError(f"bench: a config given for model(s) {', '.join(stray)} that are not benchmarked")
    base = base or TrainConfig()
    base = base.replace(data=str(data))
    if base.loggers and runs_root is None:
        raise ConfigError(f"bench: logging the runs to {', '.join(base.loggers)} needs their run directories "
                          f"(--keep-runs)")
    if dataset is None:
        from msmtrec.data import open_dataset

        dataset = open_dataset(base)
    result = BenchResult(data=str(data), models=models, seeds=seeds, baseline=baseline,
                         scenarios=list(dataset.schema.scenarios), tasks=list(dataset.schema.tasks),
                         config=base.to_dict(),
                         started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    targets: list[str] = []
    progress = RunsProgress(len(models) * len(seeds), echo, live=live)
    for model in models:
        for seed in seeds:
            config = _run_config(base, model_configs.get(model), model, seed, model_params.get(model, {}))
            if runs_root is not None:
                config = config.replace(runs_root=str(runs_root), run_dir=None)
            progress.start(f"{model} seed {seed}", config.max_epochs)
            t0 = time.perf_counter()
            run = train(config, dataset=dataset, write_run=runs_root is not None, progress=False,
                        on_epoch=progress.epoch)
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
            progress.end(f"test mean AUC {number(run.test['mean_auc'])}, logloss {number(run.test['mean_logloss'])}, "
                         f"{len(run.fit.history)} epochs, {run.fit.train_seconds:.1f} s")
    progress.close()
    result.targets = targets
    return result


_BENCH_KEYS = ("data", "row_limit", "streaming", "shuffle_buffer", "threads", "device", "loggers")


def _run_config(base: TrainConfig, own: TrainConfig | None, model: str, seed: int, params: dict[str, Any]) -> TrainConfig:
    """One run's config: ``own`` (the model's config) or ``base``, with the bench's settings, the
    model, the seed and the extra hyperparameters ``params``."""
    if own is None:
        return base.replace(model=model, seed=seed, model_params=dict(params))
    bench = {k: getattr(base, k) for k in _BENCH_KEYS}
    return own.replace(**bench, model=model, seed=seed, model_params={**own.model_params, **params})
