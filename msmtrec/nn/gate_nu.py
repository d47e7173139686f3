"""Gate NU (PEPNet, Chang et al. KDD 2023; LHUC-style): a small MLP whose output scales a hidden
vector element-wise — one gate (:class:`GateNU`) or many stored as stacked weights
(:class:`GateNUBank`).

``δ = γ · sigmoid(W₂ ReLU(W₁ z + b₁) + b₂)`` with ``γ = 2``, so ``δ ∈ (0, γ)``. The last layer
starts at zero, so every gate starts at exactly ``γ / 2 = 1`` (the identity scaling) and the
network begins as the ungated model.

A bank runs a slice of its gates as two ``einsum`` calls (built on
:class:`~msmtrec.nn.mlp.TowerBank`), which is what a model needs when every (scenario, task,
layer) has its own gate (PPNet, AEM²TL Eq. 10–14).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from msmtrec.nn.mlp import TowerBank


class GateNU(nn.Module):
    """Args:
        in_dim: width of the gate input ``z`` (e.g. prior-feature embeddings ⊕ stop-gradient
            general embedding).
        out_dim: width of the vector being scaled.
        hidden_dim: width of the hidden layer (default: ``out_dim``).
        gamma: scale ``γ`` (2 in the paper).
        zero_init: start the output layer at zero so that ``δ = γ/2`` initially.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, gamma: float = 2.0,
                 zero_init: bool = True) -> None:
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.gamma = gamma
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, out_dim)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.out(torch.relu(self.hidden(z))))


class GateNUBank(nn.Module):
    """``G`` independent :class:`GateNU` networks, stored as stacked weights.

    Args:
        num_gates: number of independent gates ``G``.
        in_dim: width of the gate input ``z``.
        out_dim: width of the vector each gate scales.
        hidden_dim: hidden width of each gate (default ``out_dim``, as in ``GateNU``).
        gamma: scale ``γ`` (2 in PEPNet and AEM²TL), so ``δ ∈ (0, γ)``.
        zero_init: start every output layer at zero so that ``δ = γ/2`` initially.

    ``forward(z [B, in], gates=slice) -> δ [B, g, out]`` for the selected gates.
    """

    def __init__(self, num_gates: int, in_dim: int, out_dim: int, hidden_dim: int | None = None, gamma: float = 2.0,
                 zero_init: bool = True) -> None:
        super().__init__()
        self.num_gates, self.gamma = num_gates, gamma
        self.mlp = TowerBank(num_gates, in_dim, [hidden_dim or out_dim], out_dim)
        if zero_init:
            nn.init.zeros_(self.mlp.weights[-1])
            nn.init.zeros_(self.mlp.biases[-1])

    def forward(self, z: torch.Tensor, gates: slice = slice(None)) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.mlp(z, gates))

    @classmethod
    def from_gates(cls, gates: Sequence[GateNU]) -> "GateNUBank":
        """A bank holding copies of the weights of the given ``GateNU`` modules (same γ)."""
        g0 = gates[0]
        bank = cls(len(gates), g0.hidden.in_features, g0.out.out_features, g0.hidden.out_features, g0.gamma)
        with torch.no_grad():
            for i, g in enumerate(gates):
                bank.mlp.weights[0][i].copy_(g.hidden.weight.T)
                bank.mlp.biases[0][i].copy_(g.hidden.bias)
                bank.mlp.weights[1][i].copy_(g.out.weight.T)
                bank.mlp.biases[1][i].copy_(g.out.bias)
        return bank
