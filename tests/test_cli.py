"""End to end through the command line: train 1 epoch on the embedded data, evaluate, predict,
and the one-line errors."""

import csv
import subprocess
import sys

import pytest
from click.testing import CliRunner

from msmtrec.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    res = run("train", "--epochs", "1", "--runs-root", str(root), "-p", "bottom_dims=[32]", "-q")
    assert res.exit_code == 0, res.output
    (run_dir,) = list(root.iterdir())
    return run_dir, res.output


def test_train_prints_table_and_writes_run(trained):
    run_dir, out = trained
    assert "| tops |" in out and "recommend AUC" in out
    for f in ["config.yaml", "encoders.json", "checkpoint.pt", "metrics.json", "log.jsonl", "results.md", "schema.json"]:
        assert (run_dir / f).is_file(), f


def test_evaluate_reproduces_training_test_metrics(trained):
    run_dir, out = trained
    res = run("evaluate", str(run_dir))
    assert res.exit_code == 0, res.output
    pooled = [line for line in out.splitlines() if "all (pooled)" in line][0]
    assert pooled in res.output


def test_predict_writes_one_probability_per_task(trained, tmp_path):
    run_dir, _ = trained
    src = tmp_path / "in.csv"
    src.write_text("Clothing ID,Age,Division Name,Department Name,Class Name\n"
                   "767,33,Initmates,Intimate,Intimates\n1080,34,General,Dresses,Dresses\n"
                   "99999,50,General,Shoes,Shoes\n")
    out = tmp_path / "out.csv"
    res = run("predict", str(run_dir), "-i", str(src), "-o", str(out))
    assert res.exit_code == 2 and "Shoes" in res.output and not out.exists()
    res = run("predict", str(run_dir), "-i", str(src), "-o", str(out), "--unknown-scenario", "skip")
    assert res.exit_code == 0, res.output
    assert "1 row(s) had no scenario or one the model does not know" in res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3
    for task in ["recommend", "five_star", "helpful"]:
        assert 0 < float(rows[0][f"{task}_prob"]) < 1
        assert rows[2][f"{task}_prob"] == ""
    res = run("predict", str(run_dir), "-i", str(src), "-o", str(out))
    assert res.exit_code == 2 and "already exists" in res.output


@pytest.mark.parametrize("args,needle", [
    (["train", "--model", "nope"], "unknown model 'nope'"),
    (["train", "--data", "nope"], "nope"),
    (["train", "-p", "bogus=1"], "bogus"),
    (["train", "--weighting", "magic"], "magic"),
    (["train", "--precision", "fp16"], "precision fp16 needs a CUDA device"),
    (["train", "--precision", "fp8"], "precision must be one of fp32, bf16, fp16"),
    (["train", "--config", "/nonexistent.yaml"], "does not exist"),
    (["evaluate", "/nonexistent/run"], "does not exist"),
])
def test_errors_are_one_or_two_lines_without_traceback(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, args)
    assert list(tmp_path.iterdir()) == []  # a refused run leaves no run directory behind
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2


def test_models_and_datasets_listing():
    res = run("models")
    assert res.exit_code == 0 and "shared_bottom" in res.output and "ple" in res.output
    from msmtrec.models import MODELS

    # Every model says where its embedded row (list and sequence features included) goes.
    assert all(cls.inputs != "?" for cls in MODELS.values())
    assert res.output.count(" input: ") == len(MODELS)
    assert "target attention" in run("models", "--help").output
    res = run("datasets")
    assert res.exit_code == 0 and "womens-ecommerce" in res.output and "23,4" in res.output


def test_console_script_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "msmtrec.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "train" in res.stdout


def test_set_values_are_read_as_yaml_1_2_like_config_files():
    from msmtrec.cli import _parse_value

    values = [_parse_value(t) for t in ["32", "[128,64]", "1e-3", "true", "yes", "010", "a: ["]]
    assert values == [32, [128, 64], 0.001, True, "yes", "010", "a: ["]  # not YAML: the text itself
