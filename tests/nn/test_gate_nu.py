"""GateNUBank is GateNU in bank form."""

import torch

from msmtrec.nn.gate_nu import GateNU, GateNUBank


def test_bank_equals_independent_gate_nus():
    torch.manual_seed(0)
    gates = [GateNU(6, 4, hidden_dim=5, zero_init=False) for _ in range(3)]
    bank = GateNUBank.from_gates(gates)
    z = torch.randn(7, 6)
    out = bank(z)
    assert out.shape == (7, 3, 4)
    for i, g in enumerate(gates):
        torch.testing.assert_close(out[:, i], g(z))
    torch.testing.assert_close(bank(z, slice(1, 3)), out[:, 1:3])


def test_starts_neutral_and_stays_in_zero_gamma():
    bank = GateNUBank(2, 5, 3, gamma=2.0)
    z = torch.randn(10, 5)
    torch.testing.assert_close(bank(z), torch.ones(10, 2, 3))  # γ/2 = 1 at the start
    with torch.no_grad():
        for p in bank.parameters():
            p.normal_(0, 0.5)
    d = bank(z)
    assert ((d > 0) & (d < 2)).all() and d.std() > 0.1
