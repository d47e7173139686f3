"""The model contract: what the trainer reads is declared on MSMTModel, and msmtrec.models needs
nothing from the layers above it."""

import ast
from pathlib import Path

import torch

import msmtrec.models
from msmtrec.models import MSMTModel, build_model
from tests.conftest import make_schema, modules_loaded_by

MODELS_DIR = Path(msmtrec.models.__file__).parent
ABOVE = ("msmtrec.train", "msmtrec.bench", "msmtrec.cli", "msmtrec.predict")


def test_importing_the_models_loads_nothing_above_them():
    loaded = modules_loaded_by("msmtrec.models")
    assert "msmtrec.models.autoifs" in loaded
    assert not [m for m in loaded if m.startswith(ABOVE)]


def test_no_model_module_imports_from_above_even_lazily():
    for path in MODELS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.startswith(ABOVE)], f"{path.name} imports {names}"


def test_what_the_trainer_reads_is_declared():
    schema = make_schema(scenarios=2, tasks=2)
    assert MSMTModel.default_weighting == "fixed"
    model = build_model("shared_bottom", schema, {"bottom_dims": [8], "tower_dims": [4]})
    assert model.default_weighting == "fixed" and model.notes == []


def test_snapshot_is_a_deep_copy():
    model = build_model("shared_bottom", make_schema(), {"bottom_dims": [8], "tower_dims": [4]})
    snap = model.snapshot()
    assert snap.keys() == model.state_dict().keys()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(not torch.equal(snap[k], v) for k, v in model.state_dict().items() if v.is_floating_point())


def test_no_module_name_is_shared_by_nn_and_models():
    blocks = {p.name for p in (MODELS_DIR.parent / "nn").glob("*.py")} - {"__init__.py"}
    assert not blocks & {p.name for p in MODELS_DIR.glob("*.py")}
