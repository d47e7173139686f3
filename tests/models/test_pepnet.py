"""Defining properties of PEPNet: Gate NU range and neutral start, EPNet/PPNet personalisation,
stop-gradient gate inputs, prior fields from the schema."""

import pytest
import torch

from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from tests.conftest import make_batch, make_schema

TINY = {"embed_dim": 4, "scenario_embed_dim": 3, "tower_dims": [8, 6]}


def pepnet(schema, **kw):
    return build_model("pepnet", schema, {**TINY, **kw})


def randomise_gates(model, scale: float = 1.0, seed: int = 0) -> None:
    """Gate NU output layers start at zero (δ = 1, no gradient to the gate input): move them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in [model.epnet_gate, *model.ppnet_gates]:
            gate.out.weight.copy_(scale * torch.randn(gate.out.weight.shape, generator=g))
            gate.out.bias.copy_(scale * torch.randn(gate.out.bias.shape, generator=g))


def test_output_shape_and_loss():
    schema = make_schema(scenarios=3, tasks=2, prior_fields=("f0",))
    model = pepnet(schema)
    batch = make_batch(schema, 21)
    out = model(batch)
    assert out.shape == (21, 2)
    assert torch.isfinite(model.task_losses(out, batch)).all()


def test_gates_start_at_one_so_the_model_starts_ungated():
    schema = make_schema(scenarios=3, tasks=2, prior_fields=("f1",))
    model = pepnet(schema).eval()
    batch = make_batch(schema, 16)
    e = model.embedding(batch.categorical, batch.numeric)
    torch.testing.assert_close(model.epnet(e, batch.scenario), e)
    for gate in model.ppnet_gates_for(e, batch.categorical):
        torch.testing.assert_close(gate, torch.ones_like(gate))
    torch.testing.assert_close(model(batch), model.towers(e).squeeze(-1))


def test_gates_lie_in_zero_two_and_personalise():
    schema = make_schema(scenarios=3, tasks=2, prior_fields=("f1",))
    model = pepnet(schema).eval()
    randomise_gates(model, scale=3.0)
    batch = make_batch(schema, 64)
    e = model.embedding(batch.categorical, batch.numeric)
    z = torch.cat([model.scenario_embedding(batch.scenario), e], 1)
    delta = model.epnet_gate(z)
    assert ((delta > 0) & (delta < 2)).all() and delta.min() < 0.5 and delta.max() > 1.5
    for gate in model.ppnet_gates_for(e, batch.categorical):
        assert ((gate > 0) & (gate < 2)).all()
    # EPNet: the same features under another scenario are scaled differently
    other = batch.scenario.clone().add_(1).remainder_(3)
    assert not torch.allclose(model.epnet(e, batch.scenario), model.epnet(e, other))


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_epnet_gate_input_sends_no_gradient_into_the_embedding(stop_gradient):
    """O_ep = δ(⊘E) ⊙ E, so dL/dE = δ ⊙ dL/dO_ep exactly — unless the gate input is not stopped."""
    schema = make_schema(scenarios=2, tasks=2)
    model = pepnet(schema, stop_gradient=stop_gradient)
    randomise_gates(model)
    batch = make_batch(schema, 8)
    e = model.embedding(batch.categorical, batch.numeric).detach().requires_grad_(True)
    upstream = torch.randn(8, e.shape[1])
    (model.epnet(e, batch.scenario) * upstream).sum().backward()
    delta = model.epnet_gate(torch.cat([model.scenario_embedding(batch.scenario), e.detach()], 1)).detach()
    if stop_gradient:
        torch.testing.assert_close(e.grad, delta * upstream)
    else:  # the control: the same construction does see the gate path
        assert (e.grad - delta * upstream).abs().max() > 1e-4


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_embedding_gets_no_gradient_through_the_ppnet_gates(stop_gradient):
    """Zero the towers' first layer: the embedding then reaches the loss only through the gate
    inputs (EPNet's and PPNet's), which stop the gradient, so the embedding gets none."""
    schema = make_schema(scenarios=3, tasks=2)  # no prior fields: PPNet reads ⊘O_ep alone
    model = pepnet(schema, stop_gradient=stop_gradient)
    randomise_gates(model)
    with torch.no_grad():
        model.towers.weights[0].zero_()
    batch = make_batch(schema, 32)
    model.task_losses(model(batch), batch).sum().backward()
    grad = model.embedding.table.weight.grad
    assert model.ppnet_gates[0].hidden.weight.grad.abs().sum() > 0  # the gate path itself is live
    if stop_gradient:
        assert grad is None or grad.abs().sum() == 0
    else:
        assert grad.abs().sum() > 0


def test_prior_fields_feed_the_ppnet_gates_with_gradient():
    schema = make_schema(scenarios=2, tasks=2, fields=3, vocab=10, prior_fields=("f2",))
    model = pepnet(schema)
    randomise_gates(model)
    with torch.no_grad():
        model.towers.weights[0].zero_()
    batch = make_batch(schema, 32)
    model.task_losses(model(batch), batch).sum().backward()
    rows = model.embedding.table.weight.grad.abs().sum(1)  # fields laid end to end: f0 0-9, f1 10-19, f2 20-29
    assert rows[:20].sum() == 0 and rows[20:].sum() > 0
    # and the prior field changes the gates
    e = model.embedding(batch.categorical, batch.numeric)
    changed = batch.categorical.clone()
    changed[:, 2] = (changed[:, 2] + 1) % 10
    g1, g2 = model.ppnet_gates_for(e, batch.categorical)[0], model.ppnet_gates_for(e, changed)[0]
    assert not torch.allclose(g1, g2)


def test_towers_are_per_task():
    schema = make_schema(scenarios=2, tasks=3)
    model = pepnet(schema)
    assert model.towers.num_heads == 3
    assert [g.out.out_features for g in model.ppnet_gates] == [3 * 8, 3 * 6]


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="prior field"):
        pepnet(make_schema(prior_fields=("nope",)))
    with pytest.raises(ConfigError, match="gamma"):
        pepnet(make_schema(), gamma=0)
    with pytest.raises(ConfigError, match="tower_dims"):
        pepnet(make_schema(), tower_dims=[])
