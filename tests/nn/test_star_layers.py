"""STAR's blocks: star-topology linear layer and partitioned normalisation."""

import pytest
import torch

from msmtrec.nn.star_layers import PartitionedNorm, StarLinear


def _randomise(layer: StarLinear, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.scenario_weight.copy_(torch.randn(layer.scenario_weight.shape, generator=g))
        layer.scenario_bias.copy_(torch.randn(layer.scenario_bias.shape, generator=g))


def test_star_linear_weight_is_elementwise_product():
    layer = StarLinear(3, 5, 4)
    _randomise(layer)
    x = torch.randn(7, 5)
    for s in range(3):
        w = layer.shared_weight * layer.scenario_weight[s]
        b = layer.shared_bias + layer.scenario_bias[s]
        expected = torch.stack([sum(x[r, i] * w[i] for i in range(5)) + b for r in range(7)])
        torch.testing.assert_close(layer(x, s), expected)
    assert not torch.allclose(layer(x, 0), layer(x, 1))


def test_star_linear_starts_as_shared_layer_and_trains_only_own_scenario():
    layer = StarLinear(2, 4, 3)
    x = torch.randn(6, 4)
    torch.testing.assert_close(layer(x, 0), layer(x, 1))  # scenario weights start at 1, biases at 0
    layer(x, 1).sum().backward()
    assert layer.scenario_weight.grad[0].abs().sum() == 0 and layer.scenario_bias.grad[0].abs().sum() == 0
    assert layer.scenario_weight.grad[1].abs().sum() > 0 and layer.shared_weight.grad.abs().sum() > 0


def test_partitioned_norm_keeps_separate_statistics():
    norm = PartitionedNorm(2, 3, momentum=0.5)
    before = norm.running_mean.clone(), norm.running_var.clone()
    rows_b = torch.randn(32, 3) * 4 + 10
    norm.train()(rows_b, 1)
    # scenario 0 untouched, scenario 1 moved halfway towards the batch statistics
    torch.testing.assert_close(norm.running_mean[0], before[0][0])
    torch.testing.assert_close(norm.running_var[0], before[1][0])
    torch.testing.assert_close(norm.running_mean[1], 0.5 * rows_b.mean(0))
    torch.testing.assert_close(norm.running_var[1], 0.5 + 0.5 * rows_b.var(0))


def test_partitioned_norm_training_normalises_each_scenario_with_its_own_scale():
    norm = PartitionedNorm(2, 4)
    with torch.no_grad():
        norm.scenario_scale[1].fill_(3.0)
        norm.scenario_shift[1].fill_(-2.0)
        norm.shared_shift.fill_(0.5)
    x = torch.randn(64, 4) * 5 + 7
    y0, y1 = norm.train()(x, 0), norm(x, 1)
    torch.testing.assert_close(y0.mean(0), torch.full((4,), 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(y0.var(0, correction=0), torch.ones(4), atol=1e-3, rtol=0)
    torch.testing.assert_close(y1, 3.0 * (y0 - 0.5) + 0.5 - 2.0, atol=1e-4, rtol=0)


def test_partitioned_norm_eval_uses_the_scenarios_moving_statistics():
    norm = PartitionedNorm(2, 2)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([[1.0, 2.0], [-3.0, 0.0]]))
        norm.running_var.copy_(torch.tensor([[4.0, 1.0], [1.0, 9.0]]))
    x = torch.tensor([[3.0, 3.0]])
    norm.eval()
    torch.testing.assert_close(norm(x, 0), torch.tensor([[1.0, 1.0]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(norm(x, 1), torch.tensor([[6.0, 1.0]]), atol=1e-4, rtol=0)


def test_partitioned_norm_rejects_bad_momentum():
    with pytest.raises(ValueError, match="momentum"):
        PartitionedNorm(2, 2, momentum=0.0)
