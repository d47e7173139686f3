"""STAR's scenario-aware layers (Sheng et al., "One Model to Serve All: Star Topology Adaptive
Recommender for Multi-Domain CTR Prediction", CIKM 2021, arXiv 2101.11427).

- :class:`StarLinear`: a fully connected layer whose weight for scenario ``p`` is the element-wise
  product of a shared weight and the scenario's own weight, ``W_p* = W ⊙ W_p``, and whose bias is
  the sum, ``b_p* = b + b_p`` (the star topology FCN).
- :class:`PartitionedNorm`: batch normalisation with shared scale and bias multiplied / added to a
  per-scenario scale and bias, ``z' = (γ·γ_p) (z − μ) / sqrt(σ² + ε) + (β + β_p)``, where the
  statistics are those of the current scenario's rows in training and that scenario's own moving
  averages in evaluation.

Both are applied to one scenario's rows at a time (``forward(x, s)``), e.g. inside
:meth:`msmtrec.nn.ScenarioGroups.apply`: a scenario's effective weight is built once per batch
(``in × out`` multiplications) and used in one matmul, instead of a weight per sample.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class StarLinear(nn.Module):
    """Star-topology fully connected layer for ``num_scenarios`` scenarios.

    Args:
        num_scenarios: number of scenarios ``M``.
        in_dim / out_dim: layer widths.

    Parameters: ``shared_weight [in, out]`` and ``shared_bias [out]`` initialised like
    ``nn.Linear``; ``scenario_weight [M, in, out]`` at 1 and ``scenario_bias [M, out]`` at 0, so
    every scenario starts as the shared layer and moves away from it only as its own rows ask.
    (The paper does not state an initialisation; this one keeps ``W ⊙ W_p`` at the scale of a
    freshly initialised linear layer.)

    ``forward(x [b, in], s) -> [b, out]`` with ``s`` the scenario of every row of ``x``.
    """

    def __init__(self, num_scenarios: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if num_scenarios < 1:
            raise ValueError(f"StarLinear needs at least one scenario, got {num_scenarios}")
        bound = 1.0 / math.sqrt(in_dim)
        self.shared_weight = nn.Parameter(torch.empty(in_dim, out_dim).uniform_(-bound, bound))
        self.shared_bias = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))
        self.scenario_weight = nn.Parameter(torch.ones(num_scenarios, in_dim, out_dim))
        self.scenario_bias = nn.Parameter(torch.zeros(num_scenarios, out_dim))
        self.in_dim, self.out_dim = in_dim, out_dim

    def effective_weight(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scenario ``s``'s weight ``W ⊙ W_s`` and bias ``b + b_s``."""
        return self.shared_weight * self.scenario_weight[s], self.shared_bias + self.scenario_bias[s]

    def forward(self, x: torch.Tensor, s: int) -> torch.Tensor:
        w, b = self.effective_weight(s)
        return torch.addmm(b, x, w)


class PartitionedNorm(nn.Module):
    """Partitioned normalisation (STAR §4.2) over ``dim`` features for ``num_scenarios`` scenarios.

    Args:
        num_scenarios: number of scenarios ``M``.
        dim: feature width.
        momentum: weight of the current batch in the moving statistics (as ``nn.BatchNorm1d``).
        eps: added to the variance.

    In training, ``forward(x, s)`` normalises with the mean and (biased) variance of ``x`` — the
    rows of scenario ``s`` in this batch — and updates only scenario ``s``'s moving mean and
    (unbiased) variance; in evaluation it uses scenario ``s``'s moving statistics. Scale is
    ``γ ⊙ γ_s`` and shift ``β + β_s`` (shared γ = 1, β = 0; per-scenario γ_s = 1, β_s = 0 at the
    start). A training chunk of a single row has no variance: it is normalised with the moving
    statistics instead and does not update them.
    """

    def __init__(self, num_scenarios: int, dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"PartitionedNorm momentum must be in (0, 1], got {momentum}")
        self.momentum, self.eps = momentum, eps
        self.shared_scale = nn.Parameter(torch.ones(dim))
        self.shared_shift = nn.Parameter(torch.zeros(dim))
        self.scenario_scale = nn.Parameter(torch.ones(num_scenarios, dim))
        self.scenario_shift = nn.Parameter(torch.zeros(num_scenarios, dim))
        self.register_buffer("running_mean", torch.zeros(num_scenarios, dim))
        self.register_buffer("running_var", torch.ones(num_scenarios, dim))

    def forward(self, x: torch.Tensor, s: int) -> torch.Tensor:
        if self.training and x.shape[0] > 1:
            var, mean = torch.var_mean(x, dim=0, correction=0)
            with torch.no_grad():
                n = x.shape[0]
                self.running_mean[s].lerp_(mean, self.momentum)
                self.running_var[s].lerp_(var * (n / (n - 1)), self.momentum)
        else:  # copies: other scenarios' updates bump the buffers' version counter before backward
            mean, var = self.running_mean[s].clone(), self.running_var[s].clone()
        scale = self.shared_scale * self.scenario_scale[s] * torch.rsqrt(var + self.eps)
        shift = self.shared_shift + self.scenario_shift[s] - mean * scale
        return torch.addcmul(shift, x, scale)
