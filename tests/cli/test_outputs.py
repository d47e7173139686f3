"""What the command line writes and prints: files with the umask's permissions, titles with the
dataset's name, model descriptions in whole sentences."""

from __future__ import annotations

import os
import stat

import pytest

from tests.cli.conftest import SMALL, census_rows, cli, succeeded, write_csv


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
