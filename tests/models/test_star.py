"""Defining properties of STAR: per-scenario star weights and partitioned normalisation inside the
model, the auxiliary network's additive logit, no leakage across the batch."""

import pytest
import torch

from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from tests.conftest import make_batch, make_schema

TINY = {"embed_dim": 4, "star_dims": [8, 6], "aux_dims": [5], "scenario_embed_dim": 3}


def star(schema, **kw):
    model = build_model("star", schema, {**TINY, **kw})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # scenario parameters away from their neutral start
        for layer in model.star_layers:
            layer.scenario_weight.copy_(1 + 0.5 * torch.randn(layer.scenario_weight.shape, generator=g))
            layer.scenario_bias.copy_(0.1 * torch.randn(layer.scenario_bias.shape, generator=g))
    return model


def test_output_shape_and_loss():
    schema = make_schema(scenarios=3, tasks=2)
    model = star(schema)
    batch = make_batch(schema, 30)
    out = model(batch)
    assert out.shape == (30, 2)
    assert torch.isfinite(model.task_losses(out, batch)).all()


def test_logits_are_star_network_plus_auxiliary_network_computed_explicitly():
    schema = make_schema(scenarios=2, tasks=2)
    model = star(schema).eval()
    with torch.no_grad():
        model.norm.running_mean.normal_()
        model.norm.running_var.uniform_(0.5, 2.0)
    batch = make_batch(schema, 9)
    x = model.embedding(batch.categorical, batch.numeric)
    expected = []
    for r in range(9):
        s = int(batch.scenario[r])
        n = model.norm
        h = (n.shared_scale * n.scenario_scale[s]) * (x[r] - n.running_mean[s]) / torch.sqrt(n.running_var[s] + n.eps) \
            + n.shared_shift + n.scenario_shift[s]
        for i, layer in enumerate(model.star_layers):
            h = h @ (layer.shared_weight * layer.scenario_weight[s]) + layer.shared_bias + layer.scenario_bias[s]
            if i < len(model.star_layers) - 1:
                h = torch.relu(h)
        aux = model.auxiliary(torch.cat([model.scenario_embedding.weight[s], x[r]]).unsqueeze(0))[0]
        expected.append(h + aux)
    torch.testing.assert_close(model(batch), torch.stack(expected))


def test_partitioned_norm_statistics_move_only_for_scenarios_in_the_batch():
    schema = make_schema(scenarios=3, tasks=2)
    model = star(schema).train()
    batch = make_batch(schema, 40)
    batch.scenario[:] = 2
    mean0, var0 = model.norm.running_mean.clone(), model.norm.running_var.clone()
    model(batch)
    assert torch.equal(model.norm.running_mean[:2], mean0[:2]) and torch.equal(model.norm.running_var[:2], var0[:2])
    assert not torch.equal(model.norm.running_mean[2], mean0[2])


def test_a_scenario_with_a_single_row_in_a_training_batch():
    """One row has no batch variance: PN uses that scenario's moving statistics (and leaves them),
    while the other scenarios' updates in the same forward must not break backward."""
    schema = make_schema(scenarios=3, tasks=2)
    model = star(schema).train()
    batch = make_batch(schema, 20)
    batch.scenario[:] = 2
    batch.scenario[0] = 0
    mean0 = model.norm.running_mean[0].clone()
    model.task_losses(model(batch), batch).sum().backward()
    assert torch.equal(model.norm.running_mean[0], mean0)
    assert model.norm.scenario_shift.grad[0].abs().sum() > 0


def test_each_scenario_trains_only_its_own_star_weights():
    schema = make_schema(scenarios=3, tasks=2)
    model = star(schema)
    batch = make_batch(schema, 40)
    batch.scenario[:] = 1
    model.task_losses(model(batch), batch).sum().backward()
    for layer in model.star_layers:
        g = layer.scenario_weight.grad.abs().sum((1, 2))
        assert g[1] > 0 and g[0] == 0 and g[2] == 0
        assert layer.shared_weight.grad.abs().sum() > 0


def test_prediction_depends_only_on_own_row():
    schema = make_schema(scenarios=3, tasks=2)
    model = star(schema)
    model(make_batch(schema, 64, seed=4))  # fill the moving statistics
    model.eval()
    batch = make_batch(schema, 40, seed=1)
    ref = model(batch)[0]
    other = make_batch(schema, 40, seed=2)
    other.categorical[0], other.numeric[0], other.scenario[0] = batch.categorical[0], batch.numeric[0], batch.scenario[0]
    torch.testing.assert_close(model(other)[0], ref)
    torch.testing.assert_close(model(batch.take(slice(0, 1)))[0], ref)


def test_without_partitioned_norm_and_bad_options():
    schema = make_schema()
    model = build_model("star", schema, {**TINY, "partitioned_norm": False})
    assert model.norm is None and model(make_batch(schema, 5)).shape == (5, 2)
    with pytest.raises(ConfigError, match="dropout"):
        build_model("star", schema, {"dropout": 1.5})
    with pytest.raises(ConfigError, match="momentum"):
        build_model("star", schema, {"norm_momentum": 0})


def test_under_autocast_padded_blocks_leave_the_statistics_and_outputs_of_the_real_rows():
    """bf16 autocast pads each scenario's block (one kernel per shape); PN still normalises with,
    and updates its moving statistics from, the scenario's real rows only."""
    schema = make_schema(scenarios=3, tasks=2)
    batch = make_batch(schema, 90)
    models = [star(schema).train() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    x = models[0].embedding(batch).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = models[0](batch)
        expected = torch.empty_like(out)
        for s in range(3):  # scenario by scenario, unpadded
            rows = batch.scenario == s
            expected[rows] = models[1].star_network(s, x[rows]).to(out.dtype)
    expected += models[1].auxiliary(torch.cat([models[1].scenario_embedding(batch.scenario), x], 1)).detach()
    torch.testing.assert_close(out.float(), expected.float(), rtol=0.02, atol=0.02)
    for s in range(3):
        real = x[batch.scenario == s]
        torch.testing.assert_close(models[0].norm.running_mean[s], 0.9 * 0 + 0.1 * real.mean(0))
