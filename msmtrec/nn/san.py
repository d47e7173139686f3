"""Scenario-aware Attentive Network (SAN), HiNet §III-B (Zhou et al., ICDE 2023, arXiv 2303.06095).

For a sample of scenario ``i``, SAN transfers what the *other* scenarios' specific experts see in
the sample: ``A_i = Σ_{j ≠ i} a_{i,j} S_j`` with ``a_i = softmax(MLP_gate(e_i))`` computed from a
learned scenario-indicator embedding ``e_i``. The weights depend on the scenario only, so the
``[M, M]`` weight table is computed once per batch from the ``M`` embeddings and then gathered by
each sample's scenario index. The own-scenario weight is exactly 0:

- ``mask="after_softmax"`` (HiNet's released code): the softmax runs over all ``M`` scenarios and
  the own entry is then zeroed, so the remaining weights sum to ``1 − a_{i,i}``;
- ``mask="before_softmax"``: the own logit is removed first, so the other ``M − 1`` weights sum
  to 1.

With a single scenario there is no other scenario to attend to and ``A`` is zero.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from msmtrec.nn.mlp import MLP

SAN_MASKS = ("after_softmax", "before_softmax")


class ScenarioAttention(nn.Module):
    """Args:
        num_scenarios: ``M``.
        embed_dim: width of the scenario-indicator embedding ``e_s`` (64 in HiNet's code).
        gate_hidden: hidden widths of the gate MLP ``e_s → … → M`` (ReLU between layers).
            HiNet's code uses ``128, 64, 1`` with a ReLU on the output too; our default
            ``(128, 64)`` with a linear output drops the 1-unit bottleneck, which its own comment
            does not expect.
        mask: ``after_softmax`` (code) or ``before_softmax`` (see the module docstring).
        output_activation: ``identity`` (default) or ``relu`` (the code's ReLU on the gate logits).

    ``weights() -> [M, M]`` (row ``i``: scenario ``i``'s attention over the scenarios; diagonal 0);
    ``forward(specific [B, M, d], scenario [B]) -> [B, d]``.
    """

    def __init__(self, num_scenarios: int, embed_dim: int = 64, gate_hidden: Sequence[int] = (128, 64), *,
                 mask: str = "after_softmax", output_activation: str = "identity") -> None:
        super().__init__()
        if mask not in SAN_MASKS:
            raise ValueError(f"san_mask must be one of {', '.join(SAN_MASKS)}, got '{mask}'")
        if output_activation not in ("identity", "relu"):
            raise ValueError(f"SAN output activation must be 'identity' or 'relu', got '{output_activation}'")
        self.num_scenarios = num_scenarios
        self.mask = mask
        self.relu_output = output_activation == "relu"
        self.scenario_embedding = nn.Embedding(num_scenarios, embed_dim)
        self.gate = MLP(embed_dim, gate_hidden, out_dim=num_scenarios)
        self.register_buffer("own", torch.eye(num_scenarios, dtype=torch.bool), persistent=False)

    def weights(self) -> torch.Tensor:
        m = self.num_scenarios
        logits = self.gate(self.scenario_embedding.weight)  # [M, M]
        if self.relu_output:
            logits = torch.relu(logits)
        if m == 1:
            return logits * 0.0
        if self.mask == "before_softmax":
            return torch.softmax(logits.masked_fill(self.own, float("-inf")), dim=-1)
        return torch.softmax(logits, dim=-1).masked_fill(self.own, 0.0)

    def forward(self, specific: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        a = self.weights()[scenario]  # [B, M]
        return torch.bmm(a.unsqueeze(1), specific).squeeze(1)
