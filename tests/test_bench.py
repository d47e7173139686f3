"""msmtrec bench: aggregation over seeds, RelaImpr, output files, CLI."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from msmtrec.bench import run_bench
from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.data.synthetic import SyntheticConfig, write_synthetic
from msmtrec.errors import ConfigError
from msmtrec.metrics import relative_improvement
from msmtrec.progress import RunsProgress
from msmtrec.report.bench_files import write_bench
from msmtrec.train import train

TINY = {"shared_bottom": {"embed_dim": 4, "bottom_dims": [16], "tower_dims": [8]},
        "mmoe": {"embed_dim": 4, "num_experts": 2, "expert_dims": [8], "tower_dims": [8]}}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_data")
    return str(write_synthetic(out, SyntheticConfig(rows=3000, num_fields=3, vocab=30, scenarios=2, seed=1)))


@pytest.fixture(scope="module")
def result(spec):
    base = TrainConfig(max_epochs=1, batch_size=256)
    return run_bench(["shared_bottom", "mmoe"], spec, [1, 2], base=base, baseline="shared_bottom", model_params=TINY)


def test_runs_and_aggregates_over_seeds(result):
    assert [(r["model"], r["seed"]) for r in result.runs] == [("shared_bottom", 1), ("shared_bottom", 2),
                                                               ("mmoe", 1), ("mmoe", 2)]
    assert result.scenarios == ["s0", "s1"] and result.targets == ["click", "conversion"]
    assert all(r["comparable_targets"] == PLAIN for r in result.runs)  # as the models declared them
    aucs = [r["test"]["mean_auc"] for r in result.runs if r["model"] == "mmoe"]
    mean, std, n = result.overall("mmoe", "auc")
    assert n == 2 and mean == pytest.approx(np.mean(aucs)) and std == pytest.approx(np.std(aucs, ddof=1))
    cell = [r["test"]["per_scenario"]["s1"]["click"]["auc"] for r in result.runs if r["model"] == "shared_bottom"]
    assert result.cell("shared_bottom", "s1", "click", "auc")[0] == pytest.approx(np.mean(cell))
    # Different seeds are different runs.
    assert result.runs[0]["test"]["mean_auc"] != result.runs[1]["test"]["mean_auc"]
    assert result.runs[0]["num_parameters"] != result.runs[2]["num_parameters"]


def _run(model, aucs, comparable):
    per_s = {s: {t: {"auc": a, "logloss": 0.5} for t, a in aucs[s].items()} for s in aucs}
    targets = {t for s in aucs for t in aucs[s]}
    return {"model": model, "seed": 1, "comparable_targets": comparable,
            "test": {"per_scenario": per_s, "per_target": {t: {"auc": 0.0} for t in targets},
                     "mean_auc": 0.0, "mean_logloss": 0.0}}


PLAIN = {"click": "click", "conversion": "conversion"}


def test_entire_space_models_are_compared_on_their_all_impressions_targets():
    """ESMM-style runs report click, conversion(ctcvr) and conversion(cvr@click); the comparable
    mean uses click and ctcvr (same rows/labels as the others' conversion), not cvr@click."""
    from msmtrec.bench import BenchResult

    res = BenchResult(data="d", models=["sb", "esmm"], seeds=[1], baseline="sb", scenarios=["a", "b"],
                      tasks=["click", "conversion"],
                      runs=[_run("sb", {"a": {"click": 0.7, "conversion": 0.8}, "b": {"click": 0.6, "conversion": 0.9}},
                                 PLAIN),
                            _run("esmm", {"a": {"click": 0.7, "conversion(ctcvr)": 0.9, "conversion(cvr@click)": 0.55},
                                          "b": {"click": 0.6, "conversion(ctcvr)": 0.8,
                                                "conversion(cvr@click)": 0.51}},
                                 {"click": "click", "conversion": "conversion(ctcvr)"})])
    assert res.overall("esmm", "auc")[0] == pytest.approx((0.7 + 0.9 + 0.6 + 0.8) / 4)
    assert res.overall("sb", "auc")[0] == pytest.approx((0.7 + 0.8 + 0.6 + 0.9) / 4)
    assert res.rela_impr("esmm") == pytest.approx(0.0)


def test_the_comparable_target_is_the_declared_one_not_a_guess():
    """A run reporting both ``conversion`` and ``conversion(ctcvr)`` is scored on the one its model
    declared, whatever the names."""
    from msmtrec.bench import BenchResult

    aucs = {"a": {"click": 0.7, "conversion": 0.6, "conversion(ctcvr)": 0.9, "conversion(own)": 0.8}}
    res = BenchResult(data="d", models=["x"], seeds=[1], baseline=None, scenarios=["a"], tasks=["click", "conversion"],
                      runs=[_run("x", aucs, {"click": "click", "conversion": "conversion(own)"})])
    assert res.overall("x", "auc")[0] == pytest.approx((0.7 + 0.8) / 2)


def test_relative_improvement_against_the_baseline(result):
    assert result.rela_impr("shared_bottom") == pytest.approx(0.0)
    expected = relative_improvement(result.overall("mmoe", "auc")[0], result.overall("shared_bottom", "auc")[0])
    assert result.rela_impr("mmoe") == pytest.approx(expected)
    per_cell = relative_improvement(result.cell("mmoe", "s0", "click", "auc")[0],
                                    result.cell("shared_bottom", "s0", "click", "auc")[0])
    assert result.rela_impr("mmoe", "s0", "click") == pytest.approx(per_cell)


def test_written_files(result, tmp_path):
    paths = write_bench(result, tmp_path)
    md = paths["markdown"].read_text()
    assert "| shared_bottom |" in md and "RelaImpr vs shared_bottom" in md and "### Test AUC — click" in md
    rows = list(csv.DictReader(open(paths["csv"])))
    got = {(r["model"], r["scenario"], r["target"], r["metric"]): r for r in rows}
    m = got[("mmoe", "s0", "conversion", "auc")]
    assert float(m["mean"]) == pytest.approx(result.cell("mmoe", "s0", "conversion", "auc")[0]) and m["n"] == "2"
    assert ("mmoe", "(mean over pairs)", "(tasks)", "relaimpr_vs_shared_bottom") in got
    assert len(list(csv.DictReader(open(paths["runs"])))) == 4
    payload = json.loads(paths["json"].read_text())
    assert payload["baseline"] == "shared_bottom" and len(payload["runs"]) == 4
    assert paths["plot"].stat().st_size > 1000
    with pytest.raises(ConfigError, match="already holds"):
        write_bench(result, tmp_path)


def test_plot_is_skipped_with_a_note_without_matplotlib(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    paths = write_bench(result, tmp_path)
    assert "plot" not in paths and not (tmp_path / "bench_auc.png").exists()
    assert "matplotlib is not installed" in paths["markdown"].read_text()


@pytest.mark.parametrize("models, kwargs, match", [
    (["shared_bottom", "no_such_model"], {}, "no_such_model"),
    (["shared_bottom"], {"baseline": "mmoe"}, "baseline 'mmoe'"),
    (["shared_bottom"], {"model_params": {"ple": {}}}, "ple"),
    (["shared_bottom"], {"model_configs": {"mmoe": TrainConfig(model="mmoe")}}, "a config given for model.*mmoe"),
    (["shared_bottom"], {"base": TrainConfig(loggers=["tensorboard"])}, "needs their run directories"),
    ([], {}, "at least one model"),
])
def test_bad_requests_fail_before_training(spec, models, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_bench(models, spec, [1], **kwargs)


def test_cli_bench(spec, tmp_path):
    out = tmp_path / "b"
    args = ["bench", "-m", "shared_bottom,mmoe", "--data", spec, "--seeds", "3", "--epochs", "1", "--out", str(out)]
    for model, params in TINY.items():
        for k, v in params.items():
            args += ["-p", f"{model}.{k}={json.dumps(v)}"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (out / "bench.md").is_file() and (out / "bench.csv").is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already holds" in again.output
    bad = CliRunner().invoke(main, ["bench", "-m", "shared_bottom", "--seeds", "x", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "--seeds" in bad.output


def test_a_model_config_gives_its_model_its_own_settings_and_the_bench_its_data(spec, tmp_path):
    """One config per model (e.g. the tuned ones): its training settings and hyperparameters, with
    the bench's data, row limit and seed; a run equals training that config directly."""
    own = tmp_path / "mmoe.yaml"
    own.write_text(f"model: mmoe\nlr: 0.004\nbatch_size: 128\nmax_epochs: 2\ndata: womens-ecommerce\nrow_limit: 99\n"
                   f"model_params: {json.dumps(TINY['mmoe'])}\n")
    out = tmp_path / "b"
    res = CliRunner().invoke(main, ["bench", "-m", "shared_bottom", "--model-config", str(own), "--data", spec,
                                    "--seeds", "5", "--epochs", "1", "-p", "shared_bottom.embed_dim=4",
                                    "-p", "shared_bottom.bottom_dims=[16]", "--out", str(out)])
    assert res.exit_code == 0, res.output
    runs = {r["model"]: r for r in json.loads((out / "bench.json").read_text())["runs"]}
    assert list(runs) == ["shared_bottom", "mmoe"]
    cfg = runs["mmoe"]["config"]
    assert (cfg["lr"], cfg["batch_size"], cfg["model_params"]) == (0.004, 128, TINY["mmoe"])
    assert (cfg["data"], cfg["row_limit"], cfg["seed"], cfg["max_epochs"]) == (spec, None, 5, 1)  # the bench's, --epochs
    direct = train(TrainConfig.from_dict(cfg), write_run=False)
    assert direct.test == runs["mmoe"]["test"]
    assert "[2/2] mmoe seed 5" in res.output  # progress: which run of how many


def test_progress_lines_say_which_run_epoch_auc_speed_and_time_left():
    """Plain lines (not a terminal): each run's start and end, epoch lines at most every interval."""
    now = [0.0]
    lines = []
    p = RunsProgress(3, lines.append, live=False, interval=25, clock=lambda: now[0])
    p.start("mmoe seed 1", max_epochs=4)
    for epoch in (1, 2, 3):
        now[0] += 10
        p.epoch({"stage": "train", "epoch": epoch, "max_epochs": 4, "global_epoch": epoch, "val_mean_auc": 0.71234,
                 "samples_per_second": 12345.6})
    # 10 s per epoch of at most 4: 40 s a run, 10 s left of this one and 2 runs to go.
    assert lines == ["[1/3] mmoe seed 1",
                     "[1/3] mmoe seed 1: epoch 3/4, val AUC 0.7123, 12,346 samples/s, about 90 s left"]
    now[0] += 10
    p.end("done")
    p.start("mmoe seed 2", max_epochs=4)
    now[0] += 30
    p.epoch({"stage": "retrain", "epoch": 1, "max_epochs": 2, "global_epoch": 1, "val_mean_auc": None,
             "samples_per_second": None})
    # Runs took 40 s: 10 s left of this one, 1 to go.
    assert lines[2:] == ["[1/3] mmoe seed 1: done", "[2/3] mmoe seed 2",
                         "[2/3] mmoe seed 2: retrain epoch 1/2, val AUC n/a, about 50 s left"]
    p.close()


def test_a_time_budget_caps_the_time_left():
    now = [0.0]
    p = RunsProgress(None, lambda _m: None, live=False, deadline=100.0, first=8, clock=lambda: now[0])
    p.start("trial 7")
    now[0] += 60
    p.end("pruned")
    assert p.seconds_left() == pytest.approx(40.0) and p._which() == "[8]"
