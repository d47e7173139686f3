"""What the command line writes and prints: files with the umask's permissions, titles with the
dataset's name, model descriptions in whole sentences."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from tests.cli.conftest import COLUMNS, SMALL, census_rows, cli, succeeded, write_csv, write_spec


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_every_file_a_run_and_predict_write_follows_the_umask(user_dir, umask_027):
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))
    (run_dir,) = list((user_dir / "runs").iterdir())
    write_csv(user_dir / "new.csv", census_rows(3, seed=1))
    succeeded(cli("predict", run_dir, "-i", "new.csv", "-o", "scored.parquet"))
    succeeded(cli("predict", run_dir, "-i", "new.csv", "-o", "scored.csv"))
    files = sorted(run_dir.iterdir()) + [user_dir / "scored.parquet", user_dir / "scored.csv"]
    assert {p.name for p in files} >= {"checkpoint.pt", "metrics.json", "config.yaml", "encoders.json",
                                       "spec.resolved.yaml", "data_fingerprint.json", "log.jsonl", "results.md"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o640" for p in files}
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o750


def test_quiet_degradations_are_warned_about_and_shown_in_the_table(user_dir):
    rows = census_rows()
    col = {c: i for i, c in enumerate(COLUMNS)}
    for i, r in enumerate(rows):
        r[col["user"]] = i  # every user once: no GAUC anywhere, and min_count 2 keeps no user id
        if i % 20 == 0:
            r[col["income"]] = "?"  # 30 labels missing
        if i % 50 == 1:
            r[col["hours"]] = "inf"  # 12 infinite numbers
        if i % 50 == 3:
            r[col["hours"]] = "1e300"  # and 12 no float32 holds
        if i % 25 == 2:
            r[col["sex"]] = "Other"  # a scenario of 24 rows
    write_csv(user_dir / "census.csv", rows)
    write_spec(user_dir, files={"path": "census.csv", "csv": {"null_values": ["?"]}}, categorical=["education", "user"],
               numeric=["age", "hours"], user="user", min_count=2)
    res = cli("train", "--data", "spec.yaml", *SMALL)
    succeeded(res)
    warnings = [line[len("warning: "):] for line in res.stderr.splitlines() if line.startswith("warning: ")]
    masked = next(w for w in warnings if w.startswith("task 'rich': labels missing (masked, not read as 0) in "))
    assert sum(int(n) for n in re.findall(r"(?:train|val|test) (\d+) of \d+", masked)) == 30
    infinite = next(w for w in warnings if w.startswith("numeric column 'hours' has "))
    assert re.fullmatch(r"numeric column 'hours' has \d+ infinite or out-of-range value\(s\) in train \(beyond "
                        r"float32's ±3.4e38\); they are read as missing", infinite)
    assert any(re.fullmatch(r"categorical column 'user' has no train value seen min_count=2 times \(of \d{3} "
                            r"distinct\): every row maps to unknown \(id 0\), the field carries no information", w)
               for w in warnings)
    assert any(re.fullmatch(r"scenario 'Other' has only \d+ train rows: its own parameters learn from few examples", w)
               for w in warnings)

    (run_dir,) = list((user_dir / "runs").iterdir())
    assert json.loads((run_dir / "data_report.json").read_text())["warnings"] == warnings
    hours = json.loads((run_dir / "encoders.json").read_text())["numeric"]["hours"]
    assert 10 < hours["mean"] < 80 and 5 < hours["std"] < 40  # fitted on the hours, not on the 1e300s
    table = res.stdout
    head = next(line for line in table.splitlines() if line.startswith("| scenario"))
    assert head == "| scenario | rich AUC | rich logloss | rich GAUC | rich pos | rows |"
    cells = [line.split(" | ") for line in table.splitlines() if line.startswith(("| Female", "| Male", "| Other"))]
    assert len(cells) == 3 and all(c[3] == "–" for c in cells)  # the GAUC column stays, with "–"
    assert all(c[1] == "–" or c[1].endswith(" †") for c in cells if int(c[4]) < 30)  # few positives: marked
    assert sum(c[1].endswith(" †") for c in cells) >= 2
    assert "GAUC –: 4 cell(s) have no user with both a positive and a negative label, so no GAUC." in table
    assert re.search(r"†: \d cell\(s\) have fewer than 30 positives or negatives: their AUC is unreliable\.", table)


def test_model_descriptions_are_whole_sentences():
    import sys

    from msmtrec.models import MODELS

    out = succeeded(cli("models"))
    blocks = re.split(r"\n(?=\S)", out.strip())
    assert [b.split()[0] for b in blocks] == sorted(MODELS)
    for block in blocks:
        name, text = block.split(None, 1)
        description = " ".join(text.split(" options: ")[0].split())
        doc = " ".join(sys.modules[MODELS[name].__module__].__doc__.split("\n\n")[0].split())
        assert description.endswith(".") and doc.startswith(description), (name, description)
        assert all(len(line) <= 100 for line in block.splitlines())


def test_result_titles_name_the_dataset_not_the_spec_path(user_dir):
    out = succeeded(cli("train", "--data", "spec.yaml", *SMALL))
    assert "### shared_bottom on census — test split" in out and "shared_bottom on census: 480 train" in out
    (run_dir,) = list((user_dir / "runs").iterdir())
    assert (run_dir / "results.md").read_text().startswith("### shared_bottom on census — test split")
    assert f"### shared_bottom ({run_dir}) on census — test split" in succeeded(cli("evaluate", run_dir))
