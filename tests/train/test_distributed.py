"""Data parallelism on real gloo ranks (2 processes, 1 thread each): steps on 2 ranks with half
the batch each are the steps of one process on the whole batches; every model trains on 2 ranks
in sync, adaptive task weighting and skipped parameters included; every rank gets a disjoint,
equal share of an epoch, in memory and streamed; sharded evaluation equals a single-process one;
``msmtrec train --nproc 2`` writes one run directory (and one TensorBoard event file) whose metrics its checkpoint
reproduces."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from msmtrec.config import TrainConfig
from msmtrec.data import InMemoryDataset, open_dataset, open_streaming
from msmtrec.models import MODELS, build_model
from msmtrec.train import Trainer, evaluate_model, load_run
from msmtrec.train.distributed import Ranks, process_group
from msmtrec.train.run_dir import read_status
from tests.conftest import make_batch, make_schema
from tests.ranks import run_ranks

SMALL = {"shared_bottom": {"bottom_dims": [16], "tower_dims": [8]},
         "mmoe": {"num_experts": 2, "expert_dims": [8], "tower_dims": [4]}}
ROWS, STEPS = 128, 2


def _steps(name: str, weighting: str, world_size: int, ranks: Ranks = Ranks()) -> dict:
    """STEPS training steps on ROWS rows, each step's batch split over ``world_size`` ranks:
    parameters, last gradients and task weights after them, and the rows this rank trained on.
    (Two steps, not one: Adam's first step is about the sign of the gradient, not its size.)"""
    schema = make_schema(scenarios=3, tasks=2)
    data = make_batch(schema, ROWS, seed=3)
    torch.manual_seed(0)
    model = build_model(name, schema, SMALL[name])
    config = TrainConfig(model=name, batch_size=ROWS // STEPS // world_size, weighting=weighting, seed=5)
    trainer = Trainer(model, config, InMemoryDataset(data, data, data, schema), progress=False, ranks=ranks)
    rows = [b.categorical for b in trainer._batches(0)]
    trainer.train_epoch(0)
    return {"params": {k: p.detach().clone() for k, p in model.named_parameters()},
            "grads": {k: p.grad.clone() for k, p in model.named_parameters()},
            "weights": trainer.weighting.weights(), "rows": rows}


def one_step_on_ranks(cases: list[tuple[str, str]]) -> list[dict]:
    with process_group("cpu") as (ranks, _):
        return [_steps(name, weighting, ranks.world_size, ranks) for name, weighting in cases]


STEP_CASES = [("shared_bottom", "fixed"), ("mmoe", "uncertainty")]


def test_steps_on_two_ranks_equal_one_process_with_the_whole_batches(tmp_path):
    on_ranks = run_ranks(one_step_on_ranks, STEP_CASES, tmp_path=tmp_path)  # one start of the ranks for all cases
    for (name, weighting), r0, r1 in zip(STEP_CASES, *on_ranks):
        single = _steps(name, weighting, 1)
        # At every step the ranks trained on the two halves of the single process's batch.
        for a, b, whole in zip(r0["rows"], r1["rows"], single["rows"], strict=True):
            assert Counter(map(tuple, torch.cat([a, b]).tolist())) == Counter(map(tuple, whole.tolist()))
        for key in single["params"]:
            assert torch.equal(r0["params"][key], r1["params"][key]), (name, key)
            torch.testing.assert_close(r0["grads"][key], single["grads"][key], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(r0["params"][key], single["params"][key], atol=1e-6, rtol=0)
        assert r0["weights"] == r1["weights"]
        assert r0["weights"] == pytest.approx(single["weights"], abs=1e-6), name


def train_on_ranks(cases: list[tuple[str, dict, str | None]]) -> list[dict]:
    """Two epochs of each model on the ranks, with batches that leave some scenario out."""
    schema = make_schema(scenarios=3, tasks=2, task_roles={"t0": "click", "t1": "conversion"})
    train, val = make_batch(schema, 96, seed=1), make_batch(schema, 50, seed=2)
    train.labels[:, 1] *= train.labels[:, 0]
    train.scenario[:48] = 0  # half the batches see one scenario only
    out = []
    with process_group("cpu") as (ranks, _):
        for name, params, weighting in cases:
            torch.manual_seed(0)
            model = build_model(name, schema, params)
            config = TrainConfig(model=name, batch_size=8, max_epochs=2, weighting=weighting, eval_batch_size=16)
            trainer = Trainer(model, config, InMemoryDataset(train, val, val, schema), progress=False, ranks=ranks)
            fit = trainer.fit()
            out.append({"params": {k: v.clone() for k, v in model.state_dict().items()},
                        "weights": trainer.weighting.weights(), "val": [r["val_mean_auc"] for r in fit.history],
                        "eval": evaluate_model(model, val, schema, 16, ranks),
                        "single_eval": evaluate_model(model, val, schema, 16)})
    return out


SYNC_CASES = [
    ("aem2tl", {"scenario_expert_dims": [8], "task_expert_dims": [8], "tower_dims": [4],
                "scenario_shared_experts": 2, "scenario_specific_experts": 2}, "gradnorm"),
    ("autoifs", {"mlp_dims": [16, 8], "search_epochs": 1, "retrain_epochs": 1, "dropout": 0.2}, None),
] + [(name, {}, None) for name in sorted(MODELS) if name not in ("aem2tl", "autoifs")]


def test_every_model_trains_on_two_ranks_in_sync(tmp_path):
    # AEM²TL: a scenario's Task-CGC gets no gradient from a batch without its rows; GradNorm's
    # weights live outside the model. AutoIFS: two stages (DDP rebuilt after the selector freezes),
    # buffers switched by hooks, dropout drawn differently on each rank. STAR: per-scenario
    # normalisation statistics (buffers). HiNet: bit dropout.
    for (name, _, weighting), r0, r1 in zip(SYNC_CASES, *run_ranks(train_on_ranks, SYNC_CASES, tmp_path=tmp_path)):
        for key, value in r0["params"].items():
            assert torch.equal(value, r1["params"][key]), (name, key)
        assert r0["weights"] == r1["weights"] and r0["val"] == r1["val"]
        if weighting == "gradnorm":
            assert r0["weights"] != {"ctr": 1.0, "ctcvr": 1.0}  # learned, identically on both ranks
        # Sharded evaluation (the ranks take turns over the batches) equals one process's.
        assert r0["eval"] == r1["eval"] == r0["single_eval"]


def epoch_shares(spec: str, epoch: int) -> dict:
    with process_group("cpu") as (ranks, _):
        streamed = open_streaming(spec, batch_size=64, shuffle_buffer=500, read_rows=300, seed=7)
        batches = list(streamed.train_batches(epoch, rank=ranks.rank, world_size=ranks.world_size))
        memory = InMemoryDataset(streamed.val, streamed.val, streamed.val, streamed.schema, seed=7)
        in_memory = list(memory.train_batches(epoch, rank=ranks.rank, world_size=ranks.world_size, batch_size=64))
        return {"streamed": [b.numeric[:, 0].tolist() for b in batches], "rows": streamed.num_train_rows,
                "in_memory": [b.numeric[:, 0].tolist() for b in in_memory], "val": streamed.val.numeric[:, 0].tolist()}


@pytest.fixture(scope="module")
def row_id_data(tmp_path_factory) -> Path:
    """2,001 rows in 4 row groups; numeric column ``rid`` is unique per row (its standardised value
    identifies the row after encoding)."""
    out = tmp_path_factory.mktemp("rowid")
    n = 2001
    rng = np.random.default_rng(0)
    table = pa.table({"rid": np.arange(n, dtype=np.float64), "s": rng.choice(["a", "b", "c"], n),
                      "c": rng.integers(0, 30, n).astype(str), "y": rng.integers(0, 2, n)})
    pq.write_table(table, out / "rows.parquet", row_group_size=520)
    (out / "spec.yaml").write_text("name: rows\nfiles: {path: rows.parquet, split: {method: random, "
                                   "fractions: [0.8, 0.1, 0.1], seed: 1}}\nscenario: {column: s}\n"
                                   "tasks: [{name: y, column: y}]\ncategorical: [c]\n"
                                   "numeric: [{column: rid, transform: standardize}]\n")
    return out / "spec.yaml"


def test_each_rank_gets_a_disjoint_equal_share_of_an_epoch(tmp_path, row_id_data):
    r0, r1 = run_ranks(epoch_shares, str(row_id_data), 1, tmp_path=tmp_path)
    n = r0["rows"]
    assert n % 2 == 1  # so one row is left over
    for kind, total in (("streamed", n), ("in_memory", len(r0["val"]))):
        a, b = (sum(r[kind], []) for r in (r0, r1))
        assert len(r0[kind]) == len(r1[kind]) and len(a) == len(b) == total // 2, kind  # the same steps
        seen = Counter(a + b)
        assert max(seen.values()) == 1, kind  # disjoint
        assert total - len(seen) == total % 2, kind  # each row once, up to the remainder < world_size
    assert set(sum(r0["in_memory"] + r1["in_memory"], [])) <= set(r0["val"])


def test_train_nproc_2_writes_one_run_whose_metrics_match_its_checkpoint(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model_params: {bottom_dims: [32], tower_dims: [8]}\neval_batch_size: 100\n")
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "msmtrec", "train", "--nproc", "2", "--config", str(config),
                           "--epochs", "2", "--row-limit", "3000", "--runs-root", str(runs), "--log-to", "tensorboard"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = list(runs.iterdir())
    assert proc.stdout.count("| tops |") == 1 and f"run directory: {run_dir}" in proc.stdout  # rank 0 prints
    assert read_status(run_dir).state == "finished" and read_status(run_dir).world_size == 2
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 2
    (event_file,) = run_dir.glob("events.out.tfevents.*")  # only rank 0 logs
    events = EventAccumulator(str(event_file))
    events.Reload()
    assert [e.step for e in events.Scalars("val/mean_auc")] == [1, 2]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    run = load_run(run_dir)
    again = evaluate_model(run.model, open_dataset(run.config, encoders=run.encoders).test, run.schema,
                           run.config.eval_batch_size)
    assert json.loads(json.dumps(again, default=float)) == metrics["test"]


def user_errors_on_ranks() -> list:
    """What each rank sees of a user error raised on one rank only, inside ``everywhere`` and
    ``from_main``; and ``everywhere``'s result without an error."""
    from msmtrec.errors import DataError

    def fails_on(rank: int, ranks: Ranks):
        def fn():
            if ranks.rank == rank:
                raise DataError(f"bad rows on rank {rank}")
            return ranks.rank
        return fn

    seen = []
    with process_group("cpu") as (ranks, _):
        seen.append(ranks.everywhere(lambda: ranks.rank * 10))
        for call in (ranks.everywhere, ranks.from_main):
            try:
                call(fails_on(1 if call == ranks.everywhere else 0, ranks))
                seen.append(None)
            except DataError as exc:
                seen.append((str(exc), exc.from_main))
    return seen


def test_a_user_error_on_one_rank_is_raised_on_every_rank_for_rank_0_to_print(tmp_path):
    r0, r1 = run_ranks(user_errors_on_ranks, tmp_path=tmp_path)
    assert (r0[0], r1[0]) == (0, 10)  # no error: each rank's own result
    for seen in (r0, r1):  # neither rank waits for the other forever; both stop with the one error
        assert seen[1:] == [("bad rows on rank 1", True), ("bad rows on rank 0", True)]


def test_train_nproc_2_prints_a_data_error_once_and_leaves_no_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "msmtrec", "train", "--nproc", "2", "--data", str(tmp_path / "no.yaml"),
                           "--runs-root", str(tmp_path / "runs")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: spec file not found: {tmp_path / 'no.yaml'} "
                                                f"(built-in datasets: womens-ecommerce)"], proc.stderr
    assert not (tmp_path / "runs").exists()
