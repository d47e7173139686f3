"""A run is evaluated from its own directory: its saved spec (absolute paths, the training split),
never the spec file typed at training time, and never on data that changed since."""

from __future__ import annotations

import json
import os

from msmtrec.data.spec import load_spec
from tests.cli.conftest import SMALL, cli, refused_untouched, snapshot, succeeded, write_spec


def pooled(output: str) -> str:
    return next(line for line in output.splitlines() if "all (pooled)" in line)


def test_evaluate_uses_the_runs_own_spec_and_refuses_changed_data(user_dir, tmp_path_factory):
    out = succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))
    (run_dir,) = list((user_dir / "runs").iterdir())
    resolved = load_spec(run_dir / "spec.resolved.yaml")
    assert resolved.files.path == user_dir / "census.csv" and resolved.files.split.seed == 1
    assert list(json.loads((run_dir / "data_fingerprint.json").read_text())["files"]) == [str(user_dir / "census.csv")]

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    os.chdir(elsewhere)  # the spec path typed at training time means nothing here
    assert pooled(succeeded(cli("evaluate", run_dir))) == pooled(out)
    write_spec(user_dir, files={"path": "census.csv", "split": {"seed": 7}})  # an edited split seed is not used
    assert pooled(succeeded(cli("evaluate", run_dir))) == pooled(out)

    with open(user_dir / "census.csv", "a") as f:
        f.write("30,Private,HS,Male,40,>50K,yes,01/01/2001,3\n")
    refused_untouched(user_dir, "evaluate", run_dir,
                      needles=(f"the data of run {run_dir} changed since training (census.csv has ", "--data SPEC"))
    before = snapshot(user_dir)
    other = succeeded(cli("evaluate", run_dir, "--data", user_dir / "spec.yaml"))  # explicitly: the data as it is now
    assert pooled(other) != pooled(out) and snapshot(user_dir) == before

    (run_dir / "data_fingerprint.json").unlink()  # as an older msmtrec wrote it: the data cannot be checked
    refused_untouched(user_dir, "evaluate", run_dir, needles=("has no spec.resolved.yaml or data_fingerprint.json",
                                                              "--data SPEC"))
