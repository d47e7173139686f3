"""``msmtrec tune``: an Optuna study over a model's hyperparameters and training settings.

Each trial draws its settings from the search space (:mod:`msmtrec.tune.space`) with the TPE
sampler and trains them with :func:`msmtrec.train.train` on the dataset loaded once, without a
run directory and without touching the test split; after every epoch the trainer's record hands
its validation score to the median pruner, which may stop the trial there. A trial's value is the
validation score of its restored best weights (:func:`~msmtrec.train.trainer.selection_score`:
mean AUC over (scenario, task)).

The study lives in its storage (default ``sqlite:///OUT/study.db``): a second ``tune`` on the same
storage and study name shares its trials (parallel workers), and a killed tune started again goes
on with the same trial count. ``--trials N`` is the study's total of finished (complete or pruned)
trials; a trial whose process died is failed once it misses its heartbeats and run again.

At the end the best trial's config is trained once more into ``OUT/best-trial-<n>`` — with a run
directory, checkpoint and loggers — and only that run is evaluated on the test split. Its
validation score equals the trial's (same seed and data), which the summary shows.

Written to ``OUT`` (atomically, the tables after every trial): ``trials.md`` and ``trials.csv``
(trial → params, validation score, state, epochs, time), ``best_config.yaml`` (for ``msmtrec
train --config``), ``optimization_history.png`` and ``tune.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from msmtrec.config import TrainConfig
from msmtrec.errors import CheckpointError, ConfigError
from msmtrec.extras import require
from msmtrec.files import atomic_write, write_json
from msmtrec.progress import RunsProgress
from msmtrec.report.format import number
from msmtrec.report.tune_files import plot_history, trials_csv, trials_markdown
from msmtrec.tracking import check_loggers
from msmtrec.tune.space import SearchSpace, apply, load_space
from msmtrec.yaml_io import dump_yaml

__all__ = ["TuneResult", "run_tune"]

_MACHINE_KEYS = ("threads", "device", "eval_batch_size", "runs_root")  # workers of one study may differ in these
HEARTBEAT_SECONDS = 30  # a trial that misses its heartbeats for twice this long is stale: failed, then run again


@dataclass
class TuneResult:
    """What a tune leaves: the study's trials (as table rows), its best trial and the re-trained best run."""

    study: str
    storage: str
    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None       # trial, value, params, config
    final: dict[str, Any] | None = None      # run_dir, validation score, validation and test metrics
    files: dict[str, Path] = field(default_factory=dict)


def run_tune(model: str, space_path: str | Path, out: str | Path, *, trials: int, base: TrainConfig | None = None,
             timeout: float | None = None, storage: str | None = None, study_name: str | None = None,
             sampler_seed: int | None = None, pruner: Any = None, retrain: bool = True,
             echo: Callable[[str], None] | None = None, live: bool | None = None, dataset: Any = None) -> TuneResult:
    """Tune ``model`` on ``base.data`` over the space in ``space_path``; see the module docstring.

    Args:
        base: the settings a trial does not draw (data, epochs, patience, seed, fixed
            hyperparameters, loggers of the final run ...).
        trials: the study's total of complete + pruned trials to reach.
        timeout: no trial starts after this many seconds of this process.
        storage: an Optuna database URL (default: ``sqlite:///<out>/study.db``).
        study_name: default ``<model>-<dataset>``.
        sampler_seed: seeds the TPE sampler (a reproducible single-process study; a continued
            study adds its trial count to it); None: fresh randomness, so that parallel workers
            explore different points.
        pruner: an Optuna pruner (default ``MedianPruner(n_startup_trials=5, n_warmup_steps=2)``).
        retrain: train the best config again into ``out`` and evaluate it on the test split.
        dataset: a loaded dataset to reuse (default: opened here once).
    """
    optuna = require("optuna", "msmtrec tune", "tune")
    from msmtrec.data import open_dataset
    from msmtrec.models import build_model

    echo = echo or (lambda _m: None)
    base = base or TrainConfig()
    if base.model != model:
        base = base.replace(model=model, model_params={})
    check_loggers(base.loggers)  # the final run's, checked before hours of trials
    space = load_space(space_path, model)
    dataset = dataset if dataset is not None else open_dataset(base)
    base_dict = base.replace(run_dir=None, loggers=[]).to_dict()  # a trial writes no run directory
    for corner in space.ends():  # a space that cannot build its own ends fails now, not in trial 17
        cfg = TrainConfig.from_dict(apply(base_dict, corner), source=f"space {space_path} (at its ends)")
        build_model(cfg.model, dataset.schema, cfg.model_params)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study_name = study_name or f"{model}-{getattr(dataset.spec, 'name', None) or Path(str(base.data)).stem}"
    identity = {"model": model, "data": base.data, "space": space.to_dict(),
                "base": {k: v for k, v in base_dict.items() if k not in _MACHINE_KEYS}}

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        try:
            study = _open_study(optuna, storage, study_name, identity, sampler_seed, pruner)
        except ConfigError:
            if created:  # a refused tune leaves nothing behind
                shutil.rmtree(out, ignore_errors=True)
            raise
        for number in _fail_dead_trials(study, optuna):
            echo(f"trial {number} was left running by a process that is gone: failed, and queued again")
        finished = _count(study, optuna, ("COMPLETE", "PRUNED"))
        result = TuneResult(study_name, storage, out)
        to_run = max(trials - finished, 0)
        echo(f"study {study_name} in {storage}: {len(study.trials)} trial(s) so far, {finished} finished; "
             f"{'running ' + str(to_run) + ' more' if to_run else 'nothing left to run'}"
             + (f" (at most {timeout:g} s)" if timeout and to_run else ""))
        if to_run:
            deadline = time.monotonic() + timeout if timeout else None
            progress = RunsProgress(trials, echo, live=live, deadline=deadline, first=finished + 1)
            objective = _objective(optuna, space, base_dict, dataset, progress)
            states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            from msmtrec.train.trainer import TrainingDiverged

            try:
                study.optimize(objective, n_trials=to_run, timeout=timeout, catch=(TrainingDiverged,),
                               callbacks=[optuna.study.MaxTrialsCallback(trials, states=states),
                                          lambda s, _t: _write_tables(result, s, space, optuna)])
            finally:
                progress.close()
        _write_tables(result, study, space, optuna)
        if retrain and result.best is not None:
            result.final = _retrain(result, base, dataset, echo)
        _write_summary(result, study, space, optuna)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return result


def _open_study(optuna: Any, url: str, name: str, identity: dict, sampler_seed: int | None, pruner: Any) -> Any:
    """The study ``name`` in ``url``, created or loaded; a study made for another model, data,
    space or base config is refused."""
    if "://" not in url:
        raise ConfigError(f"--storage must be a database URL such as sqlite:///study.db, got '{url}'")
    storage = _storage(optuna, url)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                # steps are epochs 1, 2, ...: no trial is pruned after its first epoch alone
                                pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    # A continued study draws on from its trial count: the same seed would repeat its first draws.
    seed = None if sampler_seed is None else sampler_seed + len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    saved = study.user_attrs.get("msmtrec")
    if saved is None:
        study.set_user_attr("msmtrec", identity)
    elif saved != identity:
        diff = [k for k in identity if saved.get(k) != identity[k]]
        if "base" in diff:
            diff[diff.index("base")] = "base config (" + ", ".join(
                k for k in identity["base"] if saved["base"].get(k) != identity["base"][k]) + ")"
        raise ConfigError(f"study '{name}' in {url} was made with another {', '.join(diff)}; continue it with the "
                          f"same settings or give another --study")
    return study


def _storage(optuna: Any, url: str) -> Any:
    """The RDB storage at ``url``, with heartbeats. Two workers creating one new database at the same
    moment collide in its schema setup: the one that lost tries again."""
    import sqlalchemy.exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the heartbeat is marked experimental
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
        callback = ({"heartbeat_stale_trial_callback": retry(max_retry=1)} if retry is not None
                    else {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)})
        for attempt in range(4):
            try:
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS, **callback)
            except sqlalchemy.exc.SQLAlchemyError as exc:
                if attempt == 3:
                    raise ConfigError(f"--storage {url}: cannot open it: {str(exc).splitlines()[0]}") from None
                time.sleep(0.5 * (attempt + 1))
            except ImportError as exc:  # a database without its driver
                raise ConfigError(f"--storage {url}: {exc}") from None


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail_dead_trials(study: Any, optuna: Any) -> list[int]:
    """Fail the running trials of processes of this host that are gone (a killed tune) and queue
    their settings again; trials of other hosts are left to the heartbeat."""
    from msmtrec.train.run_dir import process_alive

    dead = []
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if pid.isdigit() and process_alive(int(pid), host) is False:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            dead.append(t.number)
    return dead


def _count(study: Any, optuna: Any, states: tuple[str, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState[s] for s in states]))


def _objective(optuna: Any, space: SearchSpace, base: dict, dataset: Any, progress: RunsProgress) -> Callable:
    from msmtrec.train import train
    from msmtrec.train.trainer import selection_score

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", _worker())  # a killed worker's trial is recognised (see _fail_dead_trials)
        settings = space.suggest(trial)
        config = TrainConfig.from_dict(apply(base, settings), source=f"trial {trial.number}")
        trial.set_user_attr("config", config.to_dict())
        progress.start(f"trial {trial.number}", config.max_epochs, detail=_short(settings))

        def report(record: dict) -> None:
            progress.epoch(record)
            trial.report(record["val_score"], record["global_epoch"])
            if trial.should_prune():
                trial.set_user_attr("epochs", record["global_epoch"])
                progress.end(f"pruned after epoch {record['global_epoch']} (validation score {record['val_score']:.4f})")
                raise optuna.TrialPruned()

        try:
            run = train(config, dataset=dataset, write_run=False, evaluate_test=False, progress=False, on_epoch=report)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            progress.end(f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            raise
        value = selection_score(run.validation)
        trial.set_user_attr("epochs", len(run.fit.history))
        trial.set_user_attr("best_epoch", run.fit.best.get("epoch"))
        trial.set_user_attr("samples_per_second", round(run.fit.samples_per_second, 1))
        progress.end(f"validation score {value:.4f} after {len(run.fit.history)} epochs")
        return value

    return objective


def _short(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k.rpartition('.')[2]}={f'{v:.3g}' if isinstance(v, float) else v}" for k, v in settings.items())


def _rows(study: Any, space: SearchSpace) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        steps = sorted(t.intermediate_values)
        value = t.value if t.state == t.state.COMPLETE else None  # Optuna gives a pruned trial its last report
        rows.append({"trial": t.number, "state": t.state.name, "value": value, "params": space.values(t.params),
                     "last_reported": t.intermediate_values[steps[-1]] if steps else None,
                     "epochs": t.user_attrs.get("epochs", len(steps) or None),
                     "seconds": t.duration.total_seconds() if t.duration is not None else None,
                     "started": t.datetime_start.strftime("%Y-%m-%d %H:%M:%S") if t.datetime_start else ""})
    return rows


def _best(study: Any, optuna: Any) -> Any:
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def _write_tables(result: TuneResult, study: Any, space: SearchSpace, optuna: Any) -> None:
    """The trials table and the best config as the storage has them now (also while other
    workers run)."""
    result.rows = _rows(study, space)
    best = _best(study, optuna)
    if best is not None:
        result.best = {"trial": best.number, "value": best.value, "params": space.values(best.params),
                       "config": best.user_attrs["config"]}
        result.files["best_config"] = result.out / "best_config.yaml"
        atomic_write(result.files["best_config"], dump_yaml(best.user_attrs["config"]))
    names = list(space.ranges)
    result.files["markdown"] = result.out / "trials.md"
    atomic_write(result.files["markdown"], trials_markdown(result.rows, names, _summary_lines(result)))
    result.files["csv"] = result.out / "trials.csv"
    atomic_write(result.files["csv"], trials_csv(result.rows, names))


def _summary_lines(result: TuneResult) -> list[str]:
    counts: dict[str, int] = {}
    for r in result.rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines = [f"Study `{result.study}` in `{result.storage}`: {len(result.rows)} trials ("
             + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + ")."]
    if result.best is not None:
        params = ", ".join(f"{k} = {f'{v:.4g}' if isinstance(v, float) else v}" for k, v in result.best["params"].items())
        lines.append(f"Best: trial {result.best['trial']}, validation score {result.best['value']:.4f} ({params}); "
                     f"its config: `best_config.yaml` (`msmtrec train --config {result.out / 'best_config.yaml'}`).")
    if result.final is not None:
        f = result.final
        lines.append(f"Re-trained into `{f['run_dir']}`: validation score {f['val_score']:.4f}, "
                     f"test mean AUC {number(f['test']['mean_auc'])}, logloss {number(f['test']['mean_logloss'])} "
                     f"(the only test evaluation of the study).")
    return lines


def _retrain(result: TuneResult, base: TrainConfig, dataset: Any, echo: Callable[[str], None]) -> dict[str, Any] | None:
    """Train the best trial's config into ``out/best-trial-<n>`` (or take that run when an earlier
    tune or another worker finished it; continue it when it was interrupted)."""
    from msmtrec.train import train
    from msmtrec.train.run_dir import read_status
    from msmtrec.train.trainer import selection_score

    run_dir = result.out / f"best-trial-{result.best['trial']}"
    config = TrainConfig.from_dict({**result.best["config"], "run_dir": str(run_dir), "loggers": base.loggers})
    status = read_status(run_dir) if run_dir.is_dir() else None
    if status is not None and status.state == "finished":
        metrics = json.loads((run_dir / "metrics.json").read_text())
        echo(f"best trial {result.best['trial']} was re-trained before: {run_dir}")
        return {"run_dir": str(run_dir), "val_score": selection_score(metrics["validation"]),
                "validation": metrics["validation"], "test": metrics["test"]}
    echo(f"re-training trial {result.best['trial']}'s config into {run_dir} (its test split is evaluated once)")
    try:
        run = train(config, dataset=dataset, resume=run_dir if status is not None else None, progress=False, echo=echo)
    except CheckpointError as exc:  # e.g. another worker is re-training it right now
        echo(f"note: {exc}; not re-trained here")
        return None
    return {"run_dir": str(run.run_dir), "val_score": selection_score(run.validation), "validation": run.validation,
            "test": run.test}


def _write_summary(result: TuneResult, study: Any, space: SearchSpace, optuna: Any) -> None:
    _write_tables(result, study, space, optuna)
    note = plot_history(result.rows, result.out / "optimization_history.png", title=f"study {result.study}")
    if note is None:
        result.files["plot"] = result.out / "optimization_history.png"
    result.files["json"] = result.out / "tune.json"
    write_json(result.files["json"], {"study": result.study, "storage": result.storage, "space": space.to_dict(),
                                      "best": result.best, "final": result.final, "trials": result.rows})
