"""Bad input through the command line: each case is one line naming what and where, exit 2, and
leaves everything the user had as it was (no run directory either)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from msmtrec.errors import SpecError
from msmtrec.yaml_io import load_yaml
from tests.cli.conftest import (COLUMNS, SMALL, census_rows, cli, refused_untouched, succeeded, write_csv,
                               write_spec)


def test_a_rule_that_matches_nothing_names_the_task_the_rule_and_the_values(user_dir):
    write_spec(user_dir, tasks=[{"name": "rich", "column": "income", "rule": {"op": "==", "value": ">50k"}}])
    message = refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                                needles=("task 'rich' has a single class in train split of census.csv",
                                         "its rule 'income' == '>50k' is false for every row (did you mean '>50K'?)"))
    counts = re.search(r"column 'income' in train split of census\.csv: '(.+?)' \(([\d,]+)\), '(.+?)' \(([\d,]+)\)$",
                       message)
    assert counts and {counts[1], counts[3]} == {">50K", "<=50K"}
    assert sum(int(counts[i].replace(",", "")) for i in (2, 4)) == 480  # the 80 % of 600 rows in train


def test_text_labels_get_a_rule_that_works(user_dir):
    write_spec(user_dir, tasks=[{"name": "subscribed", "column": "subscribed"}])
    message = refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                                needles=("task 'subscribed' column 'subscribed' must be 0/1 after its rule, found "
                                         "values ['no', 'yes']",))
    hint = load_yaml(message.split("e.g. ")[1], "hint", SpecError)
    assert hint == {"rule": {"op": "==", "value": "yes"}}
    write_spec(user_dir, tasks=[{"name": "subscribed", "column": "subscribed", **hint}])  # the hint, as given, works
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))


@pytest.fixture(scope="module")
def census_run(tmp_path_factory) -> Path:
    """A run trained on the census data, in a folder of its own."""
    folder = tmp_path_factory.mktemp("census")
    write_csv(folder / "census.csv", census_rows())
    succeeded(cli("train", "--data", write_spec(folder), "--runs-root", folder / "runs", *SMALL, "-q"))
    (run_dir,) = list((folder / "runs").iterdir())
    return run_dir


def test_predict_on_rows_without_a_scenario_is_an_error_or_skips_them(census_run, tmp_path):
    rows = census_rows(4, seed=3)
    rows[1][COLUMNS.index("sex")] = ""
    rows[2][COLUMNS.index("sex")] = " "
    write_csv(tmp_path / "in.csv", rows)
    refused_untouched(tmp_path, "predict", census_run, "-i", tmp_path / "in.csv", "-o", tmp_path / "out.csv",
                      needles=(f"input {tmp_path / 'in.csv'}: 2 row(s) have no value in scenario column 'sex' (the "
                               f"first is row 2)", "--unknown-scenario skip"))
    out = succeeded(cli("predict", census_run, "-i", tmp_path / "in.csv", "-o", tmp_path / "out.csv",
                        "--unknown-scenario", "skip"))
    assert "wrote 4 rows" in out and "2 row(s) had no scenario" in out
    probs = [r["rich_prob"] for r in csv.DictReader(open(tmp_path / "out.csv"))]
    assert probs[1] == probs[2] == "" and all(0 < float(p) < 1 for p in (probs[0], probs[3]))
    assert probs[0] != probs[3]  # each row its own probability (not one broadcast over the rows)


def test_csv_options_from_the_spec_read_a_semicolon_file_with_question_marks(user_dir):
    write_csv(user_dir / "semi.csv", census_rows(), delimiter=";")
    files = {"path": "semi.csv", "split": {"seed": 1}}
    write_spec(user_dir, files=files, numeric=["age", "hours"])
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("semi.csv is missing column(s) 'sex'", "its header is one column holding ';': is the "
                               "file ';'-separated? set files.csv.delimiter: \";\""))
    write_spec(user_dir, files={**files, "csv": {"delimiter": ";"}}, numeric=["age", "hours"])
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("numeric column 'hours' must hold numbers, found values ['?']", "files.csv.null_values"))
    write_spec(user_dir, files={**files, "csv": {"delimiter": ";", "null_values": ["?"]}}, numeric=["age", "hours"])
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))
    (run_dir,) = list((user_dir / "runs").iterdir())
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["rows"]["train"] == 480

    rows = census_rows(3, seed=5)
    rows[0][COLUMNS.index("hours")] = "?"
    write_csv(user_dir / "new.csv", rows, delimiter=";")  # predict reads a CSV as the run's data was read
    succeeded(cli("predict", run_dir, "-i", "new.csv", "-o", "scored.csv"))
    scored = list(csv.DictReader(open(user_dir / "scored.csv")))
    assert [r["hours"] for r in scored] == ["", *(str(r[COLUMNS.index("hours")]) for r in rows[1:])]
    assert all(0 < float(r["rich_prob"]) < 1 for r in scored)


@pytest.mark.parametrize("csv_options,needle", [
    ({"delimiter": ";;"}, "spec spec.yaml: files.csv.delimiter must be a single character (not a line break), got ';;'"),
    ({"encoding": "utf-9"}, "spec spec.yaml: files.csv.encoding must be a text encoding such as utf-8, latin-1 or "
                            "cp1252, got 'utf-9'"),
    ({"null_values": "?"}, "spec spec.yaml: files.csv.null_values must be a list, got '?'"),
])
def test_bad_csv_options_are_refused(user_dir, csv_options, needle):
    write_spec(user_dir, files={"path": "census.csv", "csv": csv_options})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL, needles=(needle,))


def test_a_column_the_header_names_twice_is_refused_when_used(user_dir):
    """Which of two 'education' columns is meant is ambiguous (pyarrow alone takes the first, silently)."""
    columns = [*COLUMNS, "education"]
    write_csv(user_dir / "census.csv", [[*row, "other"] for row in census_rows()], columns)
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=(f"census.csv has 2 columns named 'education' (columns 3 and {len(columns)} of its "
                               f"header): which one is meant is ambiguous; rename all but one",))
    write_spec(user_dir, categorical=["workclass"])  # the twice-named column unused: no ambiguity
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))


def test_a_time_split_on_text_dates_needs_their_format(user_dir):
    split = {"method": "time", "column": "date"}
    write_spec(user_dir, files={"path": "census.csv", "split": split})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("time column 'date' of census.csv holds text (e.g. '", "which would sort as text",
                               "files.split.format: '%m/%d/%Y'"))
    write_spec(user_dir, files={"path": "census.csv", "split": {**split, "format": "%d.%m.%Y"}})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("time column 'date' of census.csv: 600 value(s) do not match files.split.format "
                               "'%d.%m.%Y', e.g. '",))
    write_spec(user_dir, files={"path": "census.csv", "split": {**split, "format": "%m/%d/%Y"}})
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))
    write_spec(user_dir, files={"path": "census.csv", "split": {"method": "time", "column": "age", "format": "%Y"}})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("time column 'age' of census.csv holds int64 values, not text: remove "
                               "files.split.format",))


@pytest.mark.parametrize("args,needle", [
    (["--model", "ple", "-p", "num_levels=abc"], "error: model 'ple': option num_levels must be an integer, got 'abc'"),
    (["--model", "mmoe", "-p", "expert_dims=abc"], "error: model 'mmoe': option expert_dims must be a list, got 'abc'"),
    (["-p", "embed_dim=0"], "error: model 'shared_bottom': option embed_dim must be at least 1, got 0"),
    (["-p", "tower_dims=[8,0]"], "error: model 'shared_bottom': option tower_dims[1] must be at least 1, got 0"),
    (["--config", "run.yaml"], "error: model 'ple': option dropout must be less than 1, got 1.5"),
    (["--config", "bad.yaml"], "error: config bad.yaml: batch_size must be an integer, got 'abc'"),
])
def test_option_type_errors_name_the_key_the_type_and_the_value(user_dir, args, needle):
    (user_dir / "run.yaml").write_text("model: ple\nmodel_params: {dropout: 1.5}\n")
    (user_dir / "bad.yaml").write_text("batch_size: abc\n")
    message = refused_untouched(user_dir, "train", "--data", "spec.yaml", "--epochs", "1", *args)
    assert message == needle


def test_a_checkpoint_from_another_run_is_refused_by_evaluate_and_predict(user_dir, census_run):
    write_spec(user_dir, categorical=["education"], numeric=["age", "hours"],
               files={"path": "census.csv", "csv": {"null_values": ["?"]}})
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))
    (other,) = list((user_dir / "runs").iterdir())
    (other / "checkpoint.pt").write_bytes((census_run / "checkpoint.pt").read_bytes())
    write_csv(user_dir / "new.csv", census_rows(3))
    needle = (f"checkpoint {other / 'checkpoint.pt'} was not trained with this run's encoders (categorical: ",
              "in encoders.json); it belongs to another run")
    refused_untouched(user_dir, "evaluate", other, needles=needle)
    refused_untouched(user_dir, "predict", other, "-i", "new.csv", "-o", "out.csv", needles=needle)


@pytest.mark.parametrize("args,cuda,needle", [
    (["--device", "cuda"], (False, 0), "error: device 'cuda': CUDA is not available on this machine"),
    (["--device", "cuda:3"], (True, 1), "error: device 'cuda:3': this machine has 1 CUDA device(s) (cuda:0 .. cuda:0)"),
    (["--device", "gpu"], (False, 0), "error: device must be cpu, cuda or cuda:N, got 'gpu'"),
    (["--runs-root", "notes.txt"], (False, 0), "error: cannot create a run directory in notes.txt: notes.txt is a "
                                               "file, not a folder; choose another --runs-root"),
    (["--run-dir", "notes.txt/run"], (False, 0), "error: cannot create a run directory in notes.txt: notes.txt is a "
                                                 "file, not a folder; choose another --run-dir"),
])
def test_device_and_run_location_mistakes_are_one_line(user_dir, monkeypatch, args, cuda, needle):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda[0])  # whatever this machine has
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda[1])
    (user_dir / "notes.txt").write_text("mine\n")
    message = refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL, *args)
    assert message.startswith(needle)
