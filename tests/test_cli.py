"""End to end through the command line: train 1 epoch on the embedded data, evaluate, predict,
and the one-line errors."""

import csv
import subprocess
import sys

import pyarrow as pa
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


def test_predict_warns_of_a_categorical_column_the_model_almost_never_knows(trained, tmp_path):
    """Ids from another id space score as unknown, silently but for this warning; known ids, or
    two thirds new ones (new items, as tomorrow's traffic has), give none."""
    import pyarrow.parquet as pq

    run_dir, _ = trained
    table = pq.read_table("msmtrec/data/builtin/womens_ecommerce.parquet").slice(0, 300)
    ids = table.column("Clothing ID").to_pylist()
    at = table.schema.names.index("Clothing ID")

    def predict(name, every):  # every ``every``-th id kept, the others moved out of the id space
        shifted = [i if k % every == 0 else i + 10**9 for k, i in enumerate(ids)]
        pq.write_table(table.set_column(at, "Clothing ID", pa.array(shifted)), tmp_path / f"{name}.parquet")
        res = CliRunner().invoke(main, ["predict", str(run_dir), "-i", str(tmp_path / f"{name}.parquet"), "-o",
                                        str(tmp_path / f"{name}.csv")], catch_exceptions=False)
        assert res.exit_code == 0 and (tmp_path / f"{name}.csv").is_file(), res.output
        return [w for w in res.output.splitlines() if w.startswith("warning:")]

    assert predict("known", 1) == [] and predict("two_thirds_new", 3) == []
    (line,) = predict("other_id_space", 20)
    assert line.startswith("warning: categorical column 'Clothing ID': ") and " of the 300 scored rows (" in line
    assert int(line.split(": ")[2].split(" of")[0]) >= 285  # the 285 moved ids, and any the model did not keep


def test_predict_of_a_csv_written_otherwise_than_training_read_says_how_to_write_it(trained, tmp_path):
    """The input is read with the training spec's CSV options, which predict cannot change: the
    refusal names the columns and says how to write the file, before a row is scored."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    run_dir, _ = trained
    table = pq.read_table("msmtrec/data/builtin/womens_ecommerce.parquet").slice(0, 50)
    pacsv.write_csv(table, tmp_path / "in.csv", pacsv.WriteOptions(delimiter=";"))
    res = CliRunner().invoke(main, ["predict", str(run_dir), "-i", str(tmp_path / "in.csv"), "-o",
                                    str(tmp_path / "out.csv")])
    assert res.exit_code == 2 and not (tmp_path / "out.csv").exists(), res.output
    (line,) = res.output.splitlines()
    assert line.startswith("error: in.csv is missing column(s) 'Department Name', ")
    assert line.endswith("its header is one column holding ';': is the file ';'-separated? the model's training "
                         "spec reads CSV separated by ',': write the file so")


def test_predict_streams_a_parquet_input_and_writes_what_the_whole_table_gives(trained, tmp_path):
    """A Parquet input is scored chunk by chunk (an output row group each) into the numbers the
    scorer gives on the whole table; an error in a later chunk names the file's row and leaves no
    output."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from msmtrec.errors import DataError
    from msmtrec.export import Scorer
    from msmtrec.predict import predict_file

    run_dir, _ = trained
    table = pq.read_table("msmtrec/data/builtin/womens_ecommerce.parquet").slice(0, 600)
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=100)
    expected, _ = Scorer.load(run_dir).predict_table(table)
    for out in (tmp_path / "out.parquet", tmp_path / "out.csv"):
        assert predict_file(run_dir, src, out, chunk_rows=64) == (600, 0)
        written = pq.read_table(out) if out.suffix == ".parquet" else pa.csv.read_csv(out)
        assert written.column_names == expected.column_names and written.num_rows == 600
        for task in ("recommend", "five_star", "helpful"):
            np.testing.assert_allclose(written.column(f"{task}_prob").to_numpy(),
                                       expected.column(f"{task}_prob").to_numpy(), rtol=1e-6)
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups == 12  # 6 groups × (64 + 36)
    scenario = table.schema.names.index("Department Name")
    values = table.column(scenario).to_pylist()
    values[433] = None
    pq.write_table(table.set_column(scenario, "Department Name", pa.array(values)), src, row_group_size=100)
    with pytest.raises(DataError, match=r"have no value in scenario column 'Department Name' \(the first is row 434\)"):
        predict_file(run_dir, src, tmp_path / "refused.parquet", chunk_rows=64)
    assert not (tmp_path / "refused.parquet").exists()
    assert predict_file(run_dir, src, tmp_path / "skipped.parquet", unknown_scenario="skip", chunk_rows=64) == (600, 1)
    assert pq.read_table(tmp_path / "skipped.parquet").column("recommend_prob").null_count == 1


@pytest.mark.parametrize("args,needle", [
    (["train", "--model", "nope"], "unknown model 'nope'"),
    (["train", "--model", "HiNet"], "did you mean 'hinet'?"),
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
