"""msmtrec tune on the embedded data, with the real Optuna and its SQLite storage: a 3-trial study
end to end (one trial pruned by a forced rule, the test split evaluated once, for the best trial,
whose config re-trains to its validation score); a continued study counts on; a killed tune
continues, its dead trial failed and run again; two processes share one study; declared spaces."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner

import msmtrec.train.api as api
from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.data import open_dataset
from msmtrec.errors import ConfigError
from msmtrec.train import train
from msmtrec.train.trainer import selection_score
from msmtrec.tune import load_space, run_tune

ROOT = Path(__file__).resolve().parents[1]
SPACE = """\
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
batch_size: {type: categorical, choices: [128, 256]}
model_params:
  embed_dim: {type: int, low: 4, high: 8, step: 4}
  bottom_dims: {type: categorical, choices: [[16], [32, 16]]}
"""


def base(**changes) -> TrainConfig:
    return TrainConfig(**{"model": "shared_bottom", "model_params": {"tower_dims": [8]}, "max_epochs": 2,
                          "patience": 5, "row_limit": 3000, "threads": 1, **changes})


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def dataset():
    return open_dataset(base())


class PruneTrialOne(optuna.pruners.BasePruner):
    """The forced rule: trial 1 is pruned at its first report, no other trial ever."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, space, dataset):
    out = tmp_path_factory.mktemp("tune")
    evaluated = []
    real = api.evaluate_model

    def spy(model, data, *args, **kwargs):  # which split each evaluation in train() scores
        split = "test" if torch.equal(data.labels, dataset.test.labels) else "val"
        evaluated.append(split)
        return real(model, data, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api, "evaluate_model", spy)
        lines = []
        result = run_tune("shared_bottom", space, out, trials=3, base=base(), sampler_seed=0, pruner=PruneTrialOne(),
                          dataset=dataset, echo=lines.append, live=False)
    return result, out, evaluated, lines


def test_a_three_trial_tune_end_to_end(tuned, space):
    result, out, evaluated, lines = tuned
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [(r["trial"], r["state"]) for r in rows] == [("0", "COMPLETE"), ("1", "PRUNED"), ("2", "COMPLETE")]
    assert rows[1]["epochs"] == "1" and rows[1]["val_score"] == ""  # stopped after its first epoch
    assert [r["epochs"] for r in (rows[0], rows[2])] == ["2", "2"]
    ranges = load_space(space, "shared_bottom").ranges
    for r in rows:  # every draw lies in its range
        assert 1e-3 <= float(r["lr"]) <= 1e-2 and r["batch_size"] in ("128", "256")
        assert r["model_params.embed_dim"] in ("4", "8") and r["model_params.bottom_dims"] in ("[16]", "[32, 16]")
    assert set(ranges) == {"lr", "batch_size", "model_params.embed_dim", "model_params.bottom_dims"}
    complete = {int(r["trial"]): float(r["val_score"]) for r in rows if r["state"] == "COMPLETE"}
    best = max(complete, key=complete.get)
    assert result.best["trial"] == best and result.best["value"] == complete[best]
    # Selection on validation only: the trials never scored the test split; the best one's re-run did, once.
    assert evaluated.count("test") == 1 and evaluated[-1] == "test" and evaluated.count("val") >= 3
    assert Path(result.final["run_dir"]) == out / f"best-trial-{best}"
    assert result.final["val_score"] == result.best["value"]  # the same seed and data give the same weights
    assert (out / f"best-trial-{best}" / "results.md").is_file() and (out / "optimization_history.png").is_file()
    md = (out / "trials.md").read_text()
    assert "3 trials (2 complete, 1 pruned)" in md and f"Best: trial {best}" in md and "when pruned" in md
    assert "[1/3] trial 0" in lines[1] and any("pruned after epoch 1" in line for line in lines)


def test_the_best_config_re_trains_to_the_same_validation_score(tuned, dataset):
    result, out, _, _ = tuned
    config = TrainConfig.from_yaml(out / "best_config.yaml")
    assert config.to_dict() == {**result.best["config"]}
    for name, value in result.best["params"].items():
        group, _, key = name.partition(".")
        assert (config.model_params[key] if key else getattr(config, name)) == value
    again = train(config, write_run=False, evaluate_test=False, dataset=dataset)
    assert selection_score(again.validation) == result.best["value"]


def test_a_continued_study_counts_on_and_refuses_another_space(tmp_path, space, dataset):
    kwargs = dict(base=base(max_epochs=1), dataset=dataset, retrain=False, sampler_seed=1)
    run_tune("shared_bottom", space, tmp_path, trials=2, **kwargs)
    lines = []
    result = run_tune("shared_bottom", space, tmp_path, trials=3, echo=lines.append, live=False, **kwargs)
    assert [r["trial"] for r in result.rows] == [0, 1, 2] and "2 trial(s) so far, 2 finished; running 1 more" in lines[0]
    assert result.rows[2]["params"] != result.rows[0]["params"]  # the sampler draws on, it does not repeat itself
    other = tmp_path / "other.yaml"
    other.write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")
    with pytest.raises(ConfigError, match="was made with another space; continue it with the same settings"):
        run_tune("shared_bottom", other, tmp_path, trials=4, **kwargs)
    with pytest.raises(ConfigError, match=r"another base config \(max_epochs\)"):
        run_tune("shared_bottom", space, tmp_path, trials=4, **{**kwargs, "base": base(max_epochs=3)})


def tune_command(space: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "msmtrec", "tune", "-m", "shared_bottom", "--space", str(space), "--out", str(out),
            "--row-limit", "3000", "--threads", "1", "-p", "tower_dims=[8]", "--no-retrain", *extra]


def test_a_killed_tune_continues_its_study(tmp_path, space):
    """SIGKILL in the middle of trial 1; the same command again fails that trial (its process is
    gone), runs its settings again and reaches the study's 3 finished trials."""
    # 10 epochs: the kill lands while trial 1 still runs, however fast an epoch trains on this machine
    command = tune_command(space, tmp_path, "--trials", "3", "--epochs", "10", "--patience", "10", "--sampler-seed", "2")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    try:
        while proc.poll() is None:  # until trial 1, still running, has reported an epoch (progress, not a time)
            try:
                trials = optuna.load_study(study_name="shared_bottom-womens-ecommerce", storage=storage).trials
            except Exception:  # not created yet (or its schema being created by the tune right now)
                trials = []
            if len(trials) > 1 and trials[1].state.name == "RUNNING" and trials[1].intermediate_values:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "trial 1 was left running by a process that is gone: failed, and queued again" in again.stderr
    trials = optuna.load_study(study_name="shared_bottom-womens-ecommerce", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == trials[1].params and trials[2].user_attrs["retry_of"] == 1


def test_two_processes_share_one_study(tmp_path, space):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [subprocess.Popen(tune_command(space, tmp_path / f"w{i}", "--trials", "4", "--epochs", "1",
                                             "--storage", storage, "--study", "shared"),
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    errors = [w.communicate()[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert 4 <= len(finished) <= 5  # a worker may start one more while the other finishes the 4th
    workers_seen = {t.user_attrs["worker"] for t in trials}
    assert len(workers_seen) == 2  # both took trials from the one study
    last = [list(csv.DictReader((tmp_path / f"w{i}" / "trials.csv").open())) for i in (0, 1)]
    assert max(len(rows) for rows in last) == len(trials)  # the last to finish lists every trial


@pytest.mark.parametrize("text, message", [
    ("seed: {type: int, low: 1, high: 2}\n", "space {path}: unknown key 'seed' (allowed: lr, weight_decay, batch_size"),
    ("model_params: {embed: {type: int, low: 4, high: 8}}\n",
     "space {path}: unknown key 'model_params.embed' (did you mean 'embed_dim'?)"),
    ("lr: {type: float, low: 1.0e-3, hihg: 1.0e-2}\n", "space {path}: unknown key 'lr.hihg' (did you mean 'high'?)"),
    ("lr: {type: float, low: 0, high: 1, log: true}\n", "space {path}: lr: a log range needs low > 0 and no step"),
    ("batch_size: {type: int, low: 0, high: 8}\n", "batch_size must be positive, got 0"),  # at the space's low end
    ("model_params: {embed_dim: {type: categorical, choices: [4, 4]}}\n", "model_params.embed_dim.choices has the same"),
])
def test_a_bad_space_is_one_line_and_leaves_nothing(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["tune", "-m", "shared_bottom", "--space", str(path), "--trials", "2",
                                    "--out", str(out), "--row-limit", "300"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert message.format(path=path) in res.output and not out.exists()


def test_tune_without_optuna_names_the_pip_command(tmp_path, space, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    res = CliRunner().invoke(main, ["tune", "-m", "mmoe", "--space", str(space), "--trials", "1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.output.strip() == (
        "error: msmtrec tune needs optuna, which is not installed: pip install 'msmtrec[tune]'")
