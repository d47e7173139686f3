"""Gate NU (PEPNet, Chang et al. KDD 2023; LHUC-style): a small MLP whose output scales a hidden
vector element-wise.

``δ = γ · sigmoid(W₂ ReLU(W₁ z + b₁) + b₂)`` with ``γ = 2``, so ``δ ∈ (0, γ)``. The last layer
starts at zero, so every gate starts at exactly ``γ / 2 = 1`` (the identity scaling) and the
network begins as the ungated model.
"""

from __future__ import annotations

import torch
from torch import nn


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
