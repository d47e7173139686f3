"""The command line as a new user meets it: a census-like CSV of their own (text labels, ``?`` for
missing, MM/DD/YYYY dates), a spec for it, and the checks every refusal must pass — one line,
exit 2, no traceback, and nothing the user had changed or added (no run directory)."""

from __future__ import annotations

import copy
import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from msmtrec.cli import main
from msmtrec.yaml_io import dump_yaml

COLUMNS = ["age", "workclass", "education", "sex", "hours", "income", "subscribed", "date", "user"]
SPEC: dict[str, Any] = {
    "name": "census",
    "files": {"path": "census.csv", "split": {"seed": 1}},
    "scenario": {"column": "sex"},
    "tasks": [{"name": "rich", "column": "income", "rule": {"op": "==", "value": ">50K"}}],
    "categorical": ["workclass", "education"],
    "numeric": ["age"],
}
SMALL = ["--epochs", "1", "-p", "bottom_dims=[16]", "-p", "tower_dims=[8]", "-p", "embed_dim=4"]


def census_rows(n: int = 600, seed: int = 0) -> list[list[Any]]:
    """Rows of :data:`COLUMNS`; ``workclass`` and ``hours`` are sometimes ``?`` (missing)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        age = int(rng.integers(18, 80))
        edu = str(rng.choice(["HS", "Bachelors", "Masters", "Doctorate"]))
        score = (age - 40) / 20 + (edu in ("Masters", "Doctorate")) + rng.normal()
        year, month, day = int(rng.integers(2001, 2020)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        rows.append([age, str(rng.choice(["Private", "Self-emp", "Gov", "?"])), edu,
                     str(rng.choice(["Male", "Female"])), int(rng.integers(10, 80)) if rng.random() > 0.05 else "?",
                     ">50K" if score > 0.8 else "<=50K", "yes" if score > 0.5 else "no",
                     f"{month:02d}/{day:02d}/{year}", i % 50])
    return rows


def write_csv(path: Path, rows: list[list[Any]], columns: list[str] = COLUMNS, delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_spec(folder: Path, name: str = "spec.yaml", **changes: Any) -> Path:
    """:data:`SPEC` with top-level keys replaced (``None`` removes one), as YAML in ``folder``."""
    spec = copy.deepcopy(SPEC)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    path = folder / name
    path.write_text(dump_yaml(spec))
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: relative path → (bytes, mtime in ns, sha256)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(res: Result, *needles: str) -> str:
    """Assert ``res`` is a one-line error (exit 2, no traceback) containing ``needles``; return it."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def succeeded(res: Result) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder: ``census.csv`` and ``spec.yaml`` (runs go to ``./runs``)."""
    write_csv(tmp_path / "census.csv", census_rows())
    write_spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused_untouched(folder: Path, *args: Any, needles: tuple[str, ...] = ()) -> str:
    """Run the command; it must be refused in one line and leave ``folder`` exactly as it was."""
    before = snapshot(folder)
    message = refused(cli(*args), *needles)
    assert snapshot(folder) == before
    return message
