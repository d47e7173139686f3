"""HiNet's Scenario-aware Attentive Network."""

import pytest
import torch

from msmtrec.nn.san import ScenarioAttention


@pytest.mark.parametrize("mask", ["after_softmax", "before_softmax"])
def test_own_scenario_weight_is_exactly_zero(mask):
    san = ScenarioAttention(4, 8, (16,), mask=mask)
    w = san.weights()
    assert torch.equal(torch.diagonal(w), torch.zeros(4))
    off = w[~torch.eye(4, dtype=torch.bool)]
    assert (off > 0).all()


def test_mask_after_softmax_leaves_one_minus_own_weight():
    torch.manual_seed(0)
    san = ScenarioAttention(4, 8, (16,), mask="after_softmax")
    full = torch.softmax(san.gate(san.scenario_embedding.weight), dim=-1)
    torch.testing.assert_close(san.weights().sum(-1), 1 - torch.diagonal(full))
    assert (san.weights().sum(-1) < 1).all()


def test_mask_before_softmax_renormalises_other_scenarios():
    san = ScenarioAttention(4, 8, (16,), mask="before_softmax")
    torch.testing.assert_close(san.weights().sum(-1), torch.ones(4))


def test_output_ignores_own_scenario_and_uses_the_others():
    torch.manual_seed(0)
    san = ScenarioAttention(3, 8, (16,))
    specific = torch.randn(6, 3, 5)
    scenario = torch.tensor([0, 1, 2, 0, 1, 2])
    out = san(specific, scenario)
    # explicit weighted sum over the other scenarios
    w = san.weights()
    expected = torch.stack([sum(w[s, j] * specific[r, j] for j in range(3) if j != s) for r, s in enumerate(scenario.tolist())])
    torch.testing.assert_close(out, expected)
    changed = specific.clone()
    changed[torch.arange(6), scenario] += 100.0  # the sample's own scenario's representation
    torch.testing.assert_close(san(changed, scenario), out)
    other = specific.clone()
    other[torch.arange(6), (scenario + 1) % 3] += 1.0
    assert (san(other, scenario) - out).abs().sum(-1).min() > 0


def test_single_scenario_contributes_zeros():
    for mask in ("after_softmax", "before_softmax"):
        san = ScenarioAttention(1, 4, (8,), mask=mask)
        out = san(torch.randn(5, 1, 3), torch.zeros(5, dtype=torch.long))
        assert torch.equal(out, torch.zeros(5, 3))


def test_relu_output_variant_and_bad_options():
    san = ScenarioAttention(3, 4, (8,), output_activation="relu")
    assert torch.isfinite(san.weights()).all()
    with pytest.raises(ValueError, match="san_mask"):
        ScenarioAttention(3, 4, (8,), mask="sometimes")
    with pytest.raises(ValueError, match="activation"):
        ScenarioAttention(3, 4, (8,), output_activation="tanh")
