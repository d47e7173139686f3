"""Resuming: a run stopped after epoch k — by an exception, or killed with SIGKILL — and resumed
ends with the weights and metrics of the uninterrupted run (1 thread), a streamed run, AutoIFS
stopped inside its search stage and a 2-rank run included; refused resumes are one line and change nothing; the
run directory says whether its run is running, interrupted, failed or finished."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import msmtrec.train.checkpoint as checkpoint
from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.data.catalog import builtin_datasets
from msmtrec.train import load_run, train
from msmtrec.train.checkpoint import STATE_FILE, load_train_state, save_train_state
from msmtrec.train.run_dir import RunStatus, read_status, write_status
from tests.ranks import run_ranks

MMOE = {"num_experts": 2, "expert_dims": [16], "tower_dims": [8], "dropout": 0.2}
AUTOIFS = {"mlp_dims": [32, 16], "search_epochs": 3, "rewind_epoch": 1, "retrain_epochs": 3, "dropout": 0.1}


class Stop(Exception):
    """The injected stop."""


def stop_after(epoch: int):
    def hook(record: dict) -> None:
        if record["global_epoch"] == epoch:
            raise Stop(f"stopped after epoch {epoch}")
    return hook


def config(root: Path, **changes) -> TrainConfig:
    base = dict(model="mmoe", model_params=MMOE, weighting="uncertainty", max_epochs=4, patience=10, batch_size=256,
                row_limit=3000, threads=1, runs_root=str(root))
    return TrainConfig(**{**base, **changes})


def only_run(root: Path) -> Path:
    (run_dir,) = list(Path(root).iterdir())
    return run_dir


def assert_same_run(a, b) -> None:
    assert a.test == b.test and a.validation == b.validation
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["val_mean_auc"] for r in a.fit.history] == [r["val_mean_auc"] for r in b.fit.history]
    assert a.fit.best == b.fit.best


def files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(config(tmp_path_factory.mktemp("full")))


def test_a_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted):
    cfg = config(tmp_path)
    with pytest.raises(Stop):
        train(cfg, on_epoch=stop_after(2))
    run_dir = only_run(tmp_path)
    assert read_status(run_dir).state == "failed" and "stopped after epoch 2" in read_status(run_dir).status
    assert load_train_state(run_dir / STATE_FILE)["global_epoch"] == 2
    resumed = train(cfg, resume=run_dir)
    assert resumed.run_dir == run_dir and only_run(tmp_path) == run_dir  # the same directory, continued
    assert_same_run(resumed, uninterrupted)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["global_epoch"] for r in log] == [1, 2, 3, 4]
    assert read_status(run_dir).state == "finished" and not (run_dir / STATE_FILE).exists()


def test_a_streamed_run_resumes_with_its_epoch_order(tmp_path):
    # The streamed epoch's row-group order and shuffle come from (seed, epoch): resumed after
    # epoch 2, epochs 3 and 4 read the rows in the uninterrupted run's order.
    cfg = config(tmp_path / "stopped", streaming=True, shuffle_buffer=2000, max_epochs=3)
    full = train(cfg.replace(runs_root=str(tmp_path / "full")))
    with pytest.raises(Stop):
        train(cfg, on_epoch=stop_after(2))
    assert_same_run(train(cfg, resume=only_run(tmp_path / "stopped")), full)


@pytest.fixture(scope="module")
def autoifs_uninterrupted(tmp_path_factory):
    return train(config(tmp_path_factory.mktemp("full"), model="autoifs", model_params=AUTOIFS, weighting=None,
                        patience=1, max_epochs=3))


@pytest.mark.parametrize("stop", [2, 3, 4], ids=["in-search-after-rewind", "end-of-search", "in-retrain"])
def test_autoifs_resumes_inside_and_between_its_stages(tmp_path, autoifs_uninterrupted, stop):
    cfg = config(tmp_path, model="autoifs", model_params=AUTOIFS, weighting=None, patience=1, max_epochs=3)
    with pytest.raises(Stop):
        train(cfg, on_epoch=stop_after(stop))
    state = load_train_state(only_run(tmp_path) / STATE_FILE)
    assert (state["stage"], state["progress"]["epoch"]) == {2: (0, 2), 3: (0, 3), 4: (1, 1)}[stop]
    assert ("rewind" in state["stage_states"][0]) == (stop < 4)  # the snapshot is kept until retrain takes it
    assert_same_run(train(cfg, resume=only_run(tmp_path)), autoifs_uninterrupted)


def resume_on_ranks(root: str) -> dict:
    import torch.distributed as dist

    dist.init_process_group("gloo")  # one group for the three runs (train() uses it as it is)
    cfg_full, cfg = config(Path(root) / "full"), config(Path(root) / "stopped")
    full = train(cfg_full)
    try:
        train(cfg, on_epoch=stop_after(1))
    except Stop:
        pass
    run_dir = Path(root) / "stopped"
    dist.barrier()
    resumed = train(cfg, resume=only_run(run_dir))
    dist.destroy_process_group()
    return {"full": (full.test, full.model.state_dict()), "resumed": (resumed.test, resumed.model.state_dict()),
            "dropout_draw": torch.rand(4)}


def test_a_two_rank_run_resumes_to_the_uninterrupted_result(tmp_path):
    r0, r1 = run_ranks(resume_on_ranks, str(tmp_path), tmp_path=tmp_path)
    (test_a, weights_a), (test_b, weights_b) = r0["full"], r0["resumed"]
    assert test_a == test_b and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert all(torch.equal(weights_b[k], r1["resumed"][1][k]) for k in weights_b)
    assert not torch.equal(r0["dropout_draw"], r1["dropout_draw"])  # each rank its own random stream
    assert read_status(only_run(tmp_path / "stopped")).world_size == 2


KILLED = """
import os, signal, sys
from msmtrec.config import TrainConfig
from msmtrec.train import train
cfg = TrainConfig.from_dict(__import__("json").loads(sys.argv[1]))
train(cfg, on_epoch=lambda r: os.kill(os.getpid(), signal.SIGKILL) if r["global_epoch"] == 2 else None)
"""


def test_kill_9_leaves_an_interrupted_run_that_evaluates_and_resumes(tmp_path, uninterrupted):
    cfg = config(tmp_path)
    proc = subprocess.run([sys.executable, "-c", KILLED, json.dumps(cfg.to_dict())], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = only_run(tmp_path)
    status = read_status(run_dir)
    assert status.status == "running" and status.state == "interrupted" and status.epochs == 2
    res = CliRunner().invoke(main, ["evaluate", str(run_dir)])
    assert res.exit_code == 0 and "interrupted after 2 epochs" in res.output and "all (pooled)" in res.output
    res = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "-q"])
    assert res.exit_code == 0, res.output
    assert read_status(run_dir).state == "finished"
    assert load_run(run_dir).status.state == "finished"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["mean_auc"] == uninterrupted.test["mean_auc"]


@pytest.fixture
def stopped(tmp_path):
    """A run stopped after epoch 1, on data of its own (a copy of the embedded file)."""
    builtin = builtin_datasets()["womens-ecommerce"]
    data = tmp_path / "data.parquet"
    data.write_bytes((builtin.parent / "womens_ecommerce.parquet").read_bytes())
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(builtin.read_text().replace("womens_ecommerce.parquet", "data.parquet"))
    cfg = config(tmp_path / "runs", data=str(spec_path), max_epochs=2)
    with pytest.raises(Stop):
        train(cfg, on_epoch=stop_after(1))
    return only_run(tmp_path / "runs"), data


def refuse(args: list[str], needle: str, run_dir: Path) -> None:
    before = files(run_dir)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and needle in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert files(run_dir) == before  # a refused resume changes nothing


def test_refused_resumes_are_one_line_and_change_nothing(stopped):
    run_dir, data = stopped
    refuse(["train", "--resume", str(run_dir), "--epochs", "3"], "max_epochs (2 → 3)", run_dir)
    refuse(["train", "--resume", str(run_dir), "--nproc", "2"], "ran on 1 process(es), not 2", run_dir)
    original = data.read_bytes()
    data.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])  # same size, other content
    refuse(["train", "--resume", str(run_dir)], "its data changed since it started: data.parquet has other content",
           run_dir)
    data.write_bytes(original)
    spec_path = data.parent / "spec.yaml"
    spec_text = spec_path.read_text()
    spec_path.write_text(spec_text.replace("min_count: 1", "min_count: 2"))
    refuse(["train", "--resume", str(run_dir)], "its data changed since it started: the dataset spec changed", run_dir)
    spec_path.write_text(spec_text)
    write_status(run_dir, "running", world_size=1, epochs=1)  # as if this live process were training it
    refuse(["train", "--resume", str(run_dir)], "still running", run_dir)
    write_status(run_dir, "failed: stopped", world_size=1, epochs=1)
    assert CliRunner().invoke(main, ["train", "--resume", str(run_dir), "-q"]).exit_code == 0
    refuse(["train", "--resume", str(run_dir)], "already finished", run_dir)
    refuse(["train", "--resume", str(run_dir.parent)], "not a msmtrec run directory", run_dir)


def test_run_status_tells_interrupted_from_running(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    assert RunStatus("running", dead.pid, here).state == "interrupted"
    assert RunStatus("running", os.getpid(), here).state == "running"
    assert RunStatus("running", dead.pid, "another-host").state == "running"  # cannot be checked from here
    assert RunStatus("failed: diverged", os.getpid(), here).state == "failed"
    assert read_status(tmp_path) is None


def test_a_state_write_that_dies_leaves_the_previous_state(tmp_path, monkeypatch):
    path = tmp_path / STATE_FILE
    save_train_state(path, {"global_epoch": 1})

    def dies_half_way(obj, f):
        Path(f).write_bytes(b"half a state")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_train_state(path, {"global_epoch": 2})
    assert load_train_state(path)["global_epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == [STATE_FILE]
