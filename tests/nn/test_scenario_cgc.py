"""A CGC per scenario with banked parameters."""

import torch

from msmtrec.nn.scenario_cgc import ScenarioCGC


def test_slices_match_the_full_computation_and_gates_sum_to_one():
    torch.manual_seed(0)
    cgc = ScenarioCGC(3, 2, 6, n_specific=2, n_shared=1, expert_hidden=(8, 4))
    x = torch.randn(5, 6)
    full = cgc(x)
    assert full.shape == (5, 6, 4)
    for s in range(3):
        torch.testing.assert_close(cgc(x, slice(s, s + 1)), full[:, 2 * s:2 * s + 2])
    g = cgc.gate_weights(x)
    assert g.shape == (5, 6, 3)
    torch.testing.assert_close(g.sum(-1), torch.ones(5, 6))


def test_a_scenario_uses_only_its_own_shared_and_specific_experts():
    torch.manual_seed(0)
    cgc = ScenarioCGC(3, 2, 6, n_specific=1, n_shared=2, expert_hidden=(8,))
    cgc(torch.randn(4, 6), slice(1, 2)).sum().backward()
    shared_grad = cgc.shared.weights[0].grad.abs().sum((1, 2))  # [M * n_shared]
    specific_grad = cgc.specific.weights[0].grad.abs().sum((1, 2))  # [M * T * n_specific]
    assert (shared_grad[2:4] > 0).all() and shared_grad[:2].sum() == 0 and shared_grad[4:].sum() == 0
    assert (specific_grad[2:4] > 0).all() and specific_grad[:2].sum() == 0 and specific_grad[4:].sum() == 0


def test_without_shared_or_specific_experts():
    x = torch.randn(3, 4)
    assert ScenarioCGC(2, 2, 4, 0, 2, (5,))(x).shape == (3, 4, 5)
    assert ScenarioCGC(2, 2, 4, 2, 0, (5,))(x).shape == (3, 4, 5)
