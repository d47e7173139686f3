"""LoRABank (low-rank banks gathered by index / per group / for every group), FlowSelector and the
AutoIFS pruning function."""

import pytest
import torch

from msmtrec.nn.lora import FlowSelector, LoRABank, flow_gates


def randomised(bank: LoRABank, seed: int = 0) -> LoRABank:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bank.B.copy_(torch.randn(bank.B.shape, generator=g))
        bank.bias.copy_(torch.randn(bank.bias.shape, generator=g))
    return bank


def test_starts_as_its_bias_only():
    torch.manual_seed(0)
    bank = LoRABank(3, 10, 6, rank=2)
    assert torch.count_nonzero(bank.A) > 0
    x, idx = torch.randn(20, 10), torch.randint(0, 3, (20,))
    assert torch.equal(bank(x, idx), torch.zeros(20, 6))
    with torch.no_grad():
        bank.bias.copy_(torch.randn(3, 6))
    # B = 0: whatever the input, each row gets exactly its group's bias.
    assert torch.allclose(bank(x, idx), bank.bias[idx])
    assert torch.allclose(bank(x * 100, idx), bank.bias[idx])


def test_gather_matches_per_row_equation():
    torch.manual_seed(1)
    bank = randomised(LoRABank(4, 7, 5, rank=3))
    x, idx = torch.randn(13, 7), torch.randint(0, 4, (13,))
    expected = torch.stack([x[i] @ bank.A[g] @ bank.B[g] + bank.bias[g] for i, g in enumerate(idx.tolist())])
    assert torch.allclose(bank(x, idx), expected, atol=1e-5)
    assert torch.allclose(bank(x, idx, with_bias=False), expected - bank.bias[idx], atol=1e-5)


def test_group_and_all_groups_agree_with_gather():
    torch.manual_seed(2)
    for out_dim in (1, 4):  # the out=1 path is a multiply-and-sum, the other an einsum
        bank = randomised(LoRABank(3, 8, out_dim, rank=2), seed=out_dim)
        x = torch.randn(11, 8)
        every = bank.all_groups(x)
        assert every.shape == (11, 3, out_dim)
        for g in range(3):
            idx = torch.full((11,), g)
            assert torch.allclose(bank.group(x, g), bank(x, idx), atol=1e-5)
            assert torch.allclose(every[:, g], bank(x, idx), atol=1e-5)
        # Leading dimensions are kept.
        assert bank.all_groups(x.view(1, 11, 8)).shape == (1, 11, 3, out_dim)


def test_only_groups_in_the_batch_get_gradient():
    torch.manual_seed(3)
    bank = randomised(LoRABank(3, 6, 4, rank=2))
    x, idx = torch.randn(10, 6), torch.tensor([0, 2] * 5)
    bank(x, idx).pow(2).sum().backward()
    assert bank.A.grad[1].abs().sum() == 0 and bank.B.grad[1].abs().sum() == 0
    assert bank.A.grad[0].abs().sum() > 0 and bank.B.grad[2].abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        LoRABank(2, 4, 4, rank=0)
    with pytest.raises(ValueError, match="group"):
        LoRABank(0, 4, 4, rank=2)
    with pytest.raises(ValueError, match="hidden"):
        FlowSelector(4, [], num_tasks=2)


def test_flow_selector_shape_and_rows_independent():
    torch.manual_seed(4)
    sel = FlowSelector(12, [16, 8], num_tasks=3, num_flows=4).eval()
    x = torch.randn(9, 12)
    w = sel(x)
    assert w.shape == (9, 3, 4)
    x2 = x.clone()
    x2[1:] = torch.randn(8, 12)
    assert torch.allclose(sel(x2)[0], w[0])


def test_soft_gate_tends_to_hard_gate():
    torch.manual_seed(5)
    w = torch.randn(200, 2, 4)
    w = w[w.abs() > 1e-3].view(-1)  # away from the tie at 0
    hard = flow_gates(w, 1.0, hard=True)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hard, (w > 0).float())
    assert torch.allclose(flow_gates(w, 1.0, hard=False), torch.sigmoid(w))
    gap = [(flow_gates(w, tau, hard=False) - hard).abs().max().item() for tau in (1.0, 100.0, 1e5)]
    assert gap[0] > gap[1] > gap[2] and gap[2] < 1e-6
