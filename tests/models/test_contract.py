"""The model contract: what the trainer reads is declared on MSMTModel, and msmtrec.models needs
nothing from the layers above it."""

import ast
from pathlib import Path

import torch

import msmtrec.models
from msmtrec.models import MSMTModel, build_model
from tests.conftest import make_batch, make_schema, modules_loaded_by

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


def test_a_model_that_does_not_declare_skipped_parameters_trains_all_of_them_every_step():
    # Data-parallel training relies on it (DDP waits for every parameter's gradient otherwise).
    from msmtrec.models import MODELS

    schema = make_schema(scenarios=3, tasks=2, task_roles={"t0": "click", "t1": "conversion"}, prior_fields=("f0",))
    batch = make_batch(schema, 32)
    one_scenario = batch.take(torch.nonzero(batch.scenario == 1).flatten())
    skipping = set()
    for name in sorted(MODELS):
        torch.manual_seed(0)
        model = build_model(name, schema, {})
        out = model(one_scenario)
        loss = model.task_losses(out, one_scenario).sum()
        aux = model.aux_loss(out)
        (loss if aux is None else loss + aux).backward()
        if any(p.requires_grad and p.grad is None for p in model.parameters()):
            skipping.add(name)
            assert model.may_skip_parameters, f"{name} leaves parameters without a gradient but does not declare it"
    # ... nor declares it needlessly (DDP would search for unused parameters every step).
    assert {n for n, cls in MODELS.items() if cls.may_skip_parameters} == skipping == {"aem2tl"}
