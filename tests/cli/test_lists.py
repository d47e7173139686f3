"""List and sequence features from the command line: a history built from a CSV log trains,
evaluates and predicts (the input's own rows are its log); the mistakes are one line, exit 2."""

from __future__ import annotations

import csv

from tests.cli.conftest import COLUMNS, SMALL, census_rows, cli, refused_untouched, succeeded, write_csv, write_spec

HISTORY = {"h": {"user": "user", "item": "education", "time": "date", "format": "%m/%d/%Y", "max_len": 5,
                 "side": ["workclass"]}}


def test_a_history_from_a_csv_log_trains_evaluates_and_predicts(user_dir):
    rows = [r + ["a|b" if i % 3 else ""] for i, r in enumerate(census_rows())]
    write_csv(user_dir / "census.csv", rows, COLUMNS + ["tags"])
    write_spec(user_dir, sequences=HISTORY, multi_categorical={"tags": {"sep": "|", "max_len": 2}})
    out = succeeded(cli("train", "--data", "spec.yaml", *SMALL))
    assert "warning: history" not in out
    (run,) = list((user_dir / "runs").iterdir())
    succeeded(cli("evaluate", run))
    write_csv(user_dir / "new.csv", rows[:40], COLUMNS + ["tags"])
    succeeded(cli("predict", run, "-i", "new.csv", "-o", "scored.csv"))
    with open(user_dir / "scored.csv", newline="") as f:
        scored = list(csv.DictReader(f))
    assert len(scored) == 40 and scored[1]["tags"] == "a|b" and all(0 < float(r["rich_prob"]) < 1 for r in scored)


def test_list_and_history_mistakes_are_one_line(user_dir):
    write_spec(user_dir, multi_categorical={"tags": {"column": "education"}})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("spec spec.yaml: multi_categorical['tags'].sep is needed: census.csv is CSV",))
    write_spec(user_dir, sequences={"h": {**HISTORY["h"], "format": None}})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("history 'h' time column 'date' holds text", "sequences['h'].format: '%m/%d/%Y'"))
    write_spec(user_dir, sequences={"h": {**HISTORY["h"], "time": "income"}})
    refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                      needles=("column 'income' is the label of task 'rich' and also a sequences['h'].time feature",))
