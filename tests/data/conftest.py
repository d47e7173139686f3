"""Helpers shared by the data-layer tests: the fixture folder and a compact spec builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from msmtrec.data.spec import DatasetSpec, load_spec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """A minimal valid spec as a mapping: scenario column ``s``, task ``y``, categorical ``c``."""
    d: dict[str, Any] = {
        "name": "tiny",
        "files": {"path": "unused.csv"},
        "scenario": {"column": "s"},
        "tasks": [{"name": "y", "column": "y"}],
        "categorical": ["c"],
    }
    d.update(overrides)
    return d


def make_spec(**overrides: Any) -> DatasetSpec:
    return load_spec(spec_dict(**overrides))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
