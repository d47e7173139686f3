"""Trainer: model selection on validation, best weights restored, test evaluated once, seeds,
multi-stage schedules and task weights."""

import json

import pytest
import torch

import msmtrec.train.api as api
import msmtrec.train.trainer as trainer_mod
from msmtrec.data import InMemoryDataset
from msmtrec.config import TrainConfig
from msmtrec.errors import CheckpointError, ConfigError
from msmtrec.models import Stage, build_model
from msmtrec.train import Trainer, load_run, train
from msmtrec.train.checkpoint import load_checkpoint
from tests.conftest import make_batch, make_schema

SMALL = {"bottom_dims": [16], "tower_dims": [8]}


def _fake_scores(monkeypatch, scores):
    it = iter(scores)

    def fake_eval(model, data, schema, batch_size=0, ranks=None, forward=None):
        s = next(it)
        return {"mean_auc": s, "mean_logloss": 0.5, "per_scenario": {}, "per_target": {}}

    monkeypatch.setattr(trainer_mod, "evaluate_model", fake_eval)


@pytest.mark.parametrize("patience", [10, 2])
def test_best_weights_restored_also_at_max_epochs(monkeypatch, patience):
    schema = make_schema()
    model = build_model("shared_bottom", schema, SMALL)
    data = make_batch(schema, 200)
    snapshots = []
    _fake_scores(monkeypatch, [0.60, 0.70, 0.65, 0.62])
    stage = Stage(max_epochs=4, on_epoch_end=lambda tr, m, e, val: snapshots.append(m.snapshot()))
    monkeypatch.setattr(model, "training_stages", lambda cfg: [stage])
    config = TrainConfig(batch_size=32, patience=patience)
    result = Trainer(model, config, InMemoryDataset(data, data, data, schema)).fit()
    assert result.best["epoch"] == 2
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k])
    assert not all(torch.equal(snapshots[1][k], snapshots[-1][k]) for k in snapshots[1])
    assert len(result.history) == 4  # with patience 2, epochs 3 and 4 are the two bad ones


def test_early_stopping_stops_after_patience(monkeypatch):
    schema = make_schema()
    model = build_model("shared_bottom", schema, SMALL)
    data = make_batch(schema, 100)
    _fake_scores(monkeypatch, [0.7, 0.6, 0.6, 0.6, 0.9])
    result = Trainer(model, TrainConfig(batch_size=32, patience=3, max_epochs=5), InMemoryDataset(data, data, data, schema)).fit()
    assert len(result.history) == 4 and result.best["epoch"] == 1


def test_multi_stage_hooks_param_groups_and_selection(monkeypatch):
    schema = make_schema()
    model = build_model("shared_bottom", schema, SMALL)
    data = make_batch(schema, 100)
    calls = []
    frozen_before = model.embedding.table.weight.detach().clone()

    def only_towers(m, lr, wd):
        return [{"params": list(m.towers.parameters()), "lr": lr * 10}]

    stages = [
        Stage(name="search", max_epochs=2, early_stopping=False, restore_best=False, select_best=False,
              on_stage_start=lambda tr, m: calls.append("start-search"),
              on_epoch_start=lambda tr, m, e: calls.append(f"search-{e}")),
        Stage(name="retrain", max_epochs=2, lr=0.01, param_groups=only_towers,
              on_stage_end=lambda tr, m: calls.append(f"end-retrain-lr{tr.optimizer.param_groups[0]['lr']}")),
    ]
    monkeypatch.setattr(model, "training_stages", lambda cfg: stages)
    _fake_scores(monkeypatch, [0.9, 0.95, 0.6, 0.7])
    result = Trainer(model, TrainConfig(batch_size=32), InMemoryDataset(data, data, data, schema)).fit()
    assert calls == ["start-search", "search-0", "search-1", "end-retrain-lr0.1"]
    # the search stage scored higher but does not compete for selection
    assert result.best == {"stage": "retrain", "epoch": 2, "val_mean_auc": 0.7, "val_score": 0.7}
    assert [r["stage"] for r in result.history] == ["search", "search", "retrain", "retrain"]
    # the search stage trained every parameter (default groups)
    assert not torch.equal(frozen_before, model.embedding.table.weight)


def test_task_weights_scale_losses():
    schema = make_schema(tasks=2)
    model = build_model("shared_bottom", schema, SMALL)
    data = make_batch(schema, 64)
    tr = Trainer(model, TrainConfig(task_weights={"t0": 2.0, "t1": 0.0}), InMemoryDataset(data, data, data, schema))
    losses = model.task_losses(model(data), data)
    torch.testing.assert_close(tr.weighting.combine(losses), 2.0 * losses[0])
    with pytest.raises(ConfigError, match="unknown loss name.*nope"):
        Trainer(model, TrainConfig(task_weights={"nope": 1.0}), InMemoryDataset(data, data, data, schema))
    with pytest.raises(ConfigError, match="unknown weighting 'magic'"):
        Trainer(model, TrainConfig(weighting="magic"), InMemoryDataset(data, data, data, schema))


def test_train_is_deterministic_and_evaluates_test_once(tmp_path, monkeypatch):
    calls = []
    real = api.evaluate_model

    def counting(model, data, schema, batch_size=0, ranks=None, forward=None):
        calls.append(len(data))
        return real(model, data, schema, batch_size, ranks, forward=forward)

    monkeypatch.setattr(api, "evaluate_model", counting)
    cfg = TrainConfig(max_epochs=2, row_limit=3000, runs_root=str(tmp_path), model_params=SMALL)
    r1 = train(cfg)
    r2 = train(cfg)
    assert r1.test == r2.test and r1.validation == r2.validation
    assert r1.run_dir != r2.run_dir  # never overwritten
    # train(): validation once + test once after fitting (the trainer's own per-epoch validation
    # goes through its module's function, not this one)
    assert len(calls) == 4
    metrics = json.loads((r1.run_dir / "metrics.json").read_text())
    assert metrics["test"]["mean_auc"] == pytest.approx(r1.test["mean_auc"])
    assert metrics["comparable_targets"] == {t: t for t in r1.schema.tasks}  # recorded for bench
    assert len((r1.run_dir / "log.jsonl").read_text().splitlines()) == len(r1.fit.history)


def test_checkpoint_round_trip_and_corruption(tmp_path):
    cfg = TrainConfig(max_epochs=1, row_limit=2000, runs_root=str(tmp_path), model_params=SMALL)
    result = train(cfg)
    run = load_run(result.run_dir)
    for k, v in result.model.state_dict().items():
        torch.testing.assert_close(run.model.state_dict()[k], v)
    assert load_checkpoint(result.run_dir / "checkpoint.pt")["model"] == "shared_bottom"
    config_yaml = result.run_dir / "config.yaml"
    original = config_yaml.read_text()
    config_yaml.write_text(original.replace("model: shared_bottom", "model: mmoe"))
    with pytest.raises(CheckpointError, match="holds a 'shared_bottom' model, but config.yaml trained 'mmoe'; it "
                                              "belongs to another run"):
        load_run(result.run_dir)
    config_yaml.write_text(original)
    ckpt = result.run_dir / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(result.run_dir)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="already exists"):
        train(cfg.replace(run_dir=str(result.run_dir)))


@pytest.mark.parametrize("name,params", [("shared_bottom", {**SMALL, "batch_norm": True}),
                                         ("hinet", {"input_norm": "batch_norm"}),
                                         ("shared_bottom", SMALL)])
def test_a_last_batch_of_one_row_trains_a_batchnorm_model(name, params):
    """33 rows in batches of 16 leave a last batch of one row: a model normalising with batch
    statistics skips it (it cannot normalise one row), any other model trains on it."""
    schema = make_schema()
    data = make_batch(schema, 33)
    model = build_model(name, schema, params)
    trainer = Trainer(model, TrainConfig(batch_size=16, max_epochs=1), InMemoryDataset(data, data, data, schema))
    _, seen = trainer.train_epoch()
    assert seen == (32 if trainer_mod.uses_batch_statistics(model) else 33)
    assert trainer_mod.uses_batch_statistics(model) == (params is not SMALL)
    assert not trainer_mod.uses_batch_statistics(build_model("hinet", schema, {"input_norm": "affine"}))  # frozen: no batch statistics
    if trainer_mod.uses_batch_statistics(model):
        with pytest.raises(ConfigError, match="batch_size 1: .* normalises with batch statistics"):
            Trainer(model, TrainConfig(batch_size=1), InMemoryDataset(data, data, data, schema))
