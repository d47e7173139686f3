"""Defining properties of the baseline models (shared_bottom, mmoe, ple) and the model contract."""

import pytest
import torch

from msmtrec.errors import ConfigError
from msmtrec.models import MODELS, build_model
from tests.conftest import make_batch, make_schema

BASELINES = ["shared_bottom", "mmoe", "ple"]
SMALL = {
    "shared_bottom": {"bottom_dims": [16, 8], "tower_dims": [8]},
    "mmoe": {"num_experts": 3, "expert_dims": [16, 8], "tower_dims": [8]},
    "ple": {"num_levels": 2, "expert_dims": [16, 8], "tower_dims": [8]},
}


@pytest.mark.parametrize("name", BASELINES)
def test_output_shape_and_loss(name):
    schema = make_schema(scenarios=3, tasks=2)
    model = build_model(name, schema, SMALL[name])
    batch = make_batch(schema, 32)
    out = model(batch)
    assert out.shape == (32, 2)
    losses = model.task_losses(out, batch)
    assert losses.shape == (2,) and torch.isfinite(losses).all()
    p = model.probabilities(out)
    assert ((p > 0) & (p < 1)).all()


@pytest.mark.parametrize("name", BASELINES)
def test_gradient_reaches_every_parameter(name):
    schema = make_schema(scenarios=3, tasks=2)
    model = build_model(name, schema, SMALL[name])
    batch = make_batch(schema, 256)
    batch.scenario[:3] = torch.tensor([0, 1, 2])  # every scenario present
    model.task_losses(model(batch), batch).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", BASELINES)
def test_prediction_depends_only_on_own_row(name):
    """Changing other samples' scenarios (and features) must not change a sample's prediction."""
    schema = make_schema(scenarios=3, tasks=2)
    model = build_model(name, schema, SMALL[name]).eval()
    batch = make_batch(schema, 40, seed=1)
    ref = model(batch)[0]
    other = make_batch(schema, 40, seed=2)
    other.categorical[0], other.numeric[0], other.scenario[0] = batch.categorical[0], batch.numeric[0], batch.scenario[0]
    torch.testing.assert_close(model(other)[0], ref)
    torch.testing.assert_close(model(batch.take(slice(0, 1)))[0], ref)


@pytest.mark.parametrize("name", BASELINES)
def test_scenario_selects_its_own_towers(name):
    """Two scenarios' towers differ: the same features under another scenario give another output,
    and each scenario's towers receive gradient only from its own rows."""
    schema = make_schema(scenarios=2, tasks=1)
    model = build_model(name, schema, SMALL[name])
    batch = make_batch(schema, 16)
    batch.scenario[:] = 0
    model.task_losses(model(batch), batch).sum().backward()
    w = model.towers.weights[0]
    assert w.grad[0].abs().sum() > 0
    assert w.grad[1].abs().sum() == 0


@pytest.mark.parametrize("name", BASELINES)
def test_tiny_batch_can_be_overfit(name):
    torch.manual_seed(0)
    schema = make_schema(scenarios=2, tasks=2, fields=3, vocab=50)
    model = build_model(name, schema, SMALL[name])
    batch = make_batch(schema, 32, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        loss = model.task_losses(model(batch), batch).sum()
        loss.backward()
        opt.step()
    pred = model.probabilities(model(batch)) > 0.5
    assert (pred == batch.labels.bool()).float().mean() > 0.95


def test_masked_labels_do_not_contribute():
    schema = make_schema(scenarios=1, tasks=2)
    model = build_model("shared_bottom", schema, SMALL["shared_bottom"])
    batch = make_batch(schema, 16)
    batch.label_mask[:, 1] = False
    out = model(batch)
    flipped = batch.take(slice(None))
    flipped.labels = batch.labels.clone()
    flipped.labels[:, 1] = 1 - flipped.labels[:, 1]
    l1, l2 = model.task_losses(out, batch), model.task_losses(out, flipped)
    assert l1[1] == 0 and l2[1] == 0
    torch.testing.assert_close(l1[0], l2[0])
    # a NaN under a False mask must not leak into the loss or its gradient
    nan = batch.take(slice(None))
    nan.labels = batch.labels.clone()
    nan.labels[:, 1] = float("nan")
    l3 = model.task_losses(out, nan)
    assert torch.isfinite(l3).all()
    l3.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_registry_and_option_errors():
    assert set(BASELINES) <= set(MODELS)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope", make_schema(), {})
    with pytest.raises(ConfigError, match="no option.*bogus"):
        build_model("mmoe", make_schema(), {"bogus": 1})
    with pytest.raises(ConfigError, match="num_levels"):
        build_model("ple", make_schema(), {"num_levels": 0})
