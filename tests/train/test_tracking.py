"""Experiment tracking against the real libraries: a run logged to TensorBoard and to a local
MLflow store, read back with TensorBoard's EventAccumulator and MLflow's client and compared with
the run's own log.jsonl and metrics.json; a resumed run continues its MLflow run; a missing extra
or a bad logger name is one line and leaves no run directory."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.data.synthetic import SyntheticConfig, write_synthetic
from msmtrec.train import train

ESMM = {"embed_dim": 4, "tower_dims": [8]}


class Stop(Exception):
    """The injected stop."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A runs root whose default MLflow store (runs/mlflow.db) every test here shares: creating one
    costs seconds."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        yield tmp_path_factory.mktemp("tracked")


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """Entire-space data: ESMM's targets are named like conversion(ctcvr), which MLflow refuses as is."""
    return str(write_synthetic(tmp_path_factory.mktemp("data"), SyntheticConfig(rows=2000, num_fields=3, vocab=30,
                                                                                scenarios=2, seed=3)))


def config(store: Path, spec: str, **changes) -> TrainConfig:
    return TrainConfig(**{"model": "esmm", "model_params": ESMM, "data": spec, "max_epochs": 3, "patience": 5,
                          "batch_size": 256, "threads": 1, "runs_root": str(store / "runs"),
                          "loggers": ["tensorboard", "mlflow"], **changes})


@pytest.fixture(scope="module")
def tracked(store, spec):
    result = train(config(store, spec))
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    return result, log, json.loads((result.run_dir / "metrics.json").read_text())


def client(store: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{store / 'runs' / 'mlflow.db'}")


def mlflow_run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "mlflow.json").read_text())["run_id"]


def test_tensorboard_event_file_holds_every_epoch_and_the_test_metrics(tracked):
    result, log, metrics = tracked
    events = EventAccumulator(str(result.run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]

    def series(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    assert series("val/mean_auc") == [(r["global_epoch"], pytest.approx(r["val_mean_auc"], abs=1e-6)) for r in log]
    for name in result.model.loss_names:
        assert series(f"train/loss/{name}") == [(r["global_epoch"], pytest.approx(r["train_loss"][name], abs=1e-6))
                                                for r in log]
    last = log[-1]
    for s, by_t in last["val_logloss"].items():
        for t, v in by_t.items():
            assert series(f"val/logloss/{s}/{t}")[-1] == (last["global_epoch"], pytest.approx(v, abs=1e-6))
    assert "val/logloss/s1/conversion(ctcvr)" in scalars
    assert series("lr") == [(r["global_epoch"], pytest.approx(1e-3)) for r in log]
    assert {f"task_weight/{n}" for n in result.model.loss_names} <= set(scalars)
    assert [s for s, _ in series("samples_per_second")] == [r["global_epoch"] for r in log]
    assert series("test/mean_auc") == [(len(log), pytest.approx(metrics["test"]["mean_auc"], abs=1e-6))]
    assert series("test/auc/pooled/click")[0][1] == pytest.approx(metrics["test"]["per_target"]["click"]["auc"], abs=1e-6)
    # The learning curves as an image: TensorBoard got the PNG's own bytes.
    png = (result.run_dir / "learning_curves.png").read_bytes()
    (image,) = events.Images("learning_curves")
    assert image.encoded_image_string == png and (image.width, image.height) == struct.unpack(">II", png[16:24])
    (text,) = events.Tensors("results/text_summary")  # the results table as text
    assert text.tensor_proto.string_val[0].decode() == (result.run_dir / "results.md").read_text()
    assert "config/text_summary" in events.Tags()["tensors"]


def test_mlflow_store_holds_params_metrics_and_artifacts(tracked, store, tmp_path):
    result, log, metrics = tracked
    c = client(store)
    run = c.get_run(mlflow_run_id(result.run_dir))
    assert run.info.status == "FINISHED" and run.info.run_name == result.run_dir.name
    assert c.get_experiment(run.info.experiment_id).name == "msmtrec"
    params = run.data.params
    assert params["model"] == "esmm" and params["model_params.embed_dim"] == "4" and params["lr"] == "0.001"
    assert params["model_params.tower_dims"] == "[8]" and params["loggers"] == "['tensorboard', 'mlflow']"
    history = c.get_metric_history(run.info.run_id, "val/mean_auc")
    assert sorted((m.step, m.value) for m in history) == [(r["global_epoch"], r["val_mean_auc"]) for r in log]
    # A name MLflow refuses (parentheses) arrives with them replaced.
    ctcvr = c.get_metric_history(run.info.run_id, "val/logloss/s0/conversion_ctcvr_")
    assert sorted((m.step, m.value) for m in ctcvr) == [
        (r["global_epoch"], r["val_logloss"]["s0"]["conversion(ctcvr)"]) for r in log]
    assert run.data.metrics["test/mean_logloss"] == pytest.approx(metrics["test"]["mean_logloss"])
    names = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"results.md", "metrics.json", "config.yaml", "learning_curves.png"} <= names
    local = c.download_artifacts(run.info.run_id, "results.md", str(tmp_path))
    assert Path(local).read_text() == (result.run_dir / "results.md").read_text()
    # The default store lives in the runs root, its artifacts beside it.
    assert (store / "runs" / "mlflow.db").is_file() and (store / "runs" / "mlartifacts").is_dir()


def test_a_resumed_run_continues_its_mlflow_run_and_its_tensorboard_steps(store, spec):
    cfg = config(store, spec, runs_root=str(store / "runs"), run_dir=str(store / "resumed"))

    def stop(record):
        if record["global_epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, on_epoch=stop)
    run_dir = store / "resumed"
    c = client(store)
    run_id = mlflow_run_id(run_dir)
    assert c.get_run(run_id).info.status == "FAILED"
    train(cfg, resume=run_dir)
    assert mlflow_run_id(run_dir) == run_id and c.get_run(run_id).info.status == "FINISHED"
    steps = [m.step for m in c.get_metric_history(run_id, "val/mean_auc")]
    assert sorted(steps) == [1, 2, 3]
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("val/mean_auc")] == [1, 2, 3]


def test_autoifs_flow_heatmap_reaches_tensorboard(tmp_path, spec):
    cfg = TrainConfig(model="autoifs", data=spec, runs_root=str(tmp_path), loggers=["tensorboard"], threads=1,
                      model_params={"embed_dim": 4, "mlp_dims": [16, 8], "search_epochs": 1, "retrain_epochs": 1})
    result = train(cfg)
    events = EventAccumulator(str(result.run_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"flow_selection", "learning_curves"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("lr/1")] == [1]  # the search stage trains its gates in a second group


def test_a_missing_extra_is_one_line_naming_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    out = CliRunner().invoke(main, ["train", "--log-to", "mlflow", "--runs-root", str(tmp_path / "runs")])
    assert out.exit_code == 2 and out.output.strip().splitlines() == [
        "error: --log-to mlflow needs mlflow, which is not installed: pip install 'msmtrec[mlflow]'"]
    assert not (tmp_path / "runs").exists()


def test_an_unknown_logger_is_one_line(tmp_path):
    out = CliRunner().invoke(main, ["train", "--log-to", "tensorboard,wandb", "--runs-root", str(tmp_path / "runs")])
    assert out.exit_code == 2 and out.output.strip().splitlines() == [
        "error: command line: loggers[1] must be one of tensorboard, mlflow, got 'wandb'"]
    assert not (tmp_path / "runs").exists()
