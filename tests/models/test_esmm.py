"""ESMM: pCTCVR = pCTR · pCVR, both losses over every impression, towers per scenario."""

import pytest
import torch

from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from tests.conftest import make_batch, make_schema

ROLES = {"t0": "click", "t1": "conversion"}
SMALL = {"tower_dims": [8, 4]}


def _model(**params):
    return build_model("esmm", make_schema(scenarios=3, tasks=2, task_roles=ROLES), {**SMALL, **params})


def test_ctcvr_is_product_and_predictions_in_schema_order():
    model = _model()
    batch = make_batch(model.schema, 32)
    out = model(batch)
    torch.testing.assert_close(out["ctcvr"], out["ctr"] * out["cvr"])
    assert (out["ctcvr"] <= out["ctr"]).all()
    p = model.probabilities(out)
    assert p.shape == (32, 2)
    torch.testing.assert_close(p, torch.stack([out["ctr"], out["ctcvr"]], 1))
    assert model.loss_names == ["ctr", "ctcvr"]


def test_losses_cover_unclicked_impressions_and_train_the_cvr_tower_through_ctcvr():
    """The conversion loss sees every impression (an unclicked row's label counts as a negative)."""
    model = _model()
    batch = make_batch(model.schema, 64, seed=3)
    batch.labels[:, 1] = batch.labels[:, 1] * batch.labels[:, 0]  # conversions imply clicks
    base = model.task_losses(model(batch), batch)
    unclicked = torch.nonzero(batch.labels[:, 0] == 0)[:, 0]
    assert len(unclicked) > 0
    # Making an unclicked row "unlabelled" for conversion changes nothing: it is a structural negative.
    batch.label_mask[unclicked, 1] = False
    torch.testing.assert_close(model.task_losses(model(batch), batch), base)
    # The CVR towers get gradient from the ctcvr loss alone (there is no loss on pCVR itself).
    model.zero_grad()
    model.task_losses(model(batch), batch)[1].backward()
    cvr_heads = model.towers.weights[0].grad[1::2]
    assert cvr_heads.abs().sum() > 0


def test_each_scenario_uses_its_own_towers():
    model = _model()
    batch = make_batch(model.schema, 48, seed=4)
    batch.scenario[:] = 1
    model.task_losses(model(batch), batch).sum().backward()
    g = model.towers.weights[0].grad  # heads 2s, 2s+1 belong to scenario s
    assert g[2:4].abs().sum() > 0 and g[[0, 1, 4, 5]].abs().sum() == 0


def test_shared_bottom_variant():
    model = _model(bottom_dims=[12])
    assert model.bottom is not None
    assert model.shared_layer().shape == (12, model.embedding.output_dim)
    batch = make_batch(model.schema, 16)
    model.task_losses(model(batch), batch).sum().backward()
    assert model.shared_layer().grad.abs().sum() > 0


def test_needs_conversion_and_rejects_action():
    with pytest.raises(ConfigError, match="role conversion"):
        build_model("esmm", make_schema(tasks=1, task_roles={"t0": "click"}), {})
    with pytest.raises(ConfigError, match="use aem2tl"):
        build_model("esmm", make_schema(tasks=3, task_roles={"t0": "click", "t1": "action", "t2": "conversion"}), {})


def test_no_click_path_is_noted_and_loss_stays_ctcvr():
    schema = make_schema(tasks=2, task_roles=ROLES, conversion_without_click=True)
    model = build_model("esmm", schema, SMALL)
    assert model.loss_names == ["ctr", "ctcvr"]
    assert any("without a click" in n for n in model.notes)
