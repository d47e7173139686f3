"""Low-rank (LoRA-parameterised) banks and AutoIFS's information-flow selector.

:class:`LoRABank` holds ``G`` low-rank linear maps ``f_g(x) = (x A_g) B_g + c_g`` with
``A_g ∈ R^{in×r}``, ``B_g ∈ R^{r×out}`` and a bias ``c_g ∈ R^{out}``, stacked as tensors with a
leading group dimension (LoRA, Hu et al. 2021, used only as a parameterisation: nothing is
pretrained or frozen). ``B`` and ``c`` start at zero, so every map starts as the zero function.
Three ways to apply the bank, all batched matmuls (no loop over groups):

- ``forward(x, index)``: each row uses the map of its own group (``index [B]``), gathering
  ``A[index]`` / ``B[index]`` — for a rank of 2 that is a ``[B, in, 2]`` gather, cheap;
- ``group(x, g)``: the map of one group ``g`` for rows that all belong to it (to be used with
  :class:`~msmtrec.nn.ScenarioGroups`);
- ``all_groups(x)``: every map for every row, ``[..., G, out]`` (AutoIFS's task units: every
  sample needs every task).

:class:`FlowSelector` is AutoIFS's information-flow selection network: an MLP over its input and
one linear head per task giving one selection logit per flow, ``[B, T, n_flows]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from msmtrec.nn.mlp import MLP


class LoRABank(nn.Module):
    """``G`` low-rank linear maps ``(x A_g) B_g + c_g`` of rank ``r``.

    Args:
        num_groups: number of maps ``G`` (scenarios or tasks).
        in_dim / out_dim: input and output widths.
        rank: LoRA rank ``r``.
        bias: give each map its own bias ``c_g`` (zero at the start).

    Initialisation: ``A`` Xavier-normal over the stacked ``[G, in, r]`` tensor (PyTorch's fan
    rule for a 3-D tensor, which is what AutoIFS's released code does), ``B = 0``, ``c = 0``.
    """

    def __init__(self, num_groups: int, in_dim: int, out_dim: int, rank: int, *, bias: bool = True) -> None:
        super().__init__()
        if num_groups < 1:
            raise ValueError(f"LoRABank needs at least one group, got {num_groups}")
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.num_groups, self.in_dim, self.out_dim, self.rank = num_groups, in_dim, out_dim, rank
        self.A = nn.Parameter(torch.empty(num_groups, in_dim, rank))
        self.B = nn.Parameter(torch.zeros(num_groups, rank, out_dim))
        self.bias = nn.Parameter(torch.zeros(num_groups, out_dim)) if bias else None
        nn.init.xavier_normal_(self.A)

    def forward(self, x: torch.Tensor, index: torch.Tensor, *, with_bias: bool = True) -> torch.Tensor:
        """``x [B, in]``, ``index [B]`` (each row's group) → ``[B, out]``."""
        # Cast the (small) banks before gathering them per row, not the [B, in, r] gathers after.
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        low = torch.bmm(x.unsqueeze(1), self.A.to(dtype)[index])  # [B, 1, r]
        out = torch.bmm(low, self.B.to(dtype)[index]).squeeze(1)
        if with_bias and self.bias is not None:
            out = out + self.bias.to(out.dtype)[index]
        return out

    def group(self, x: torch.Tensor, g: int, *, with_bias: bool = True) -> torch.Tensor:
        """``x [n, in]``, all rows of group ``g`` → ``[n, out]``."""
        out = (x @ self.A[g]) @ self.B[g]
        if with_bias and self.bias is not None:
            out = out + self.bias[g].to(out.dtype)
        return out

    def all_groups(self, x: torch.Tensor, *, with_bias: bool = True) -> torch.Tensor:
        """``x [..., in]`` → ``[..., G, out]``: every group's map applied to every row.

        The ``G`` down-projections are one matmul against ``[in, G·r]``; the up-projections
        are one batched product over ``G`` (for ``out = 1``, a multiply-and-sum)."""
        lead = x.shape[:-1]
        low = (x.reshape(-1, self.in_dim) @ self.A.transpose(0, 1).reshape(self.in_dim, -1)).view(-1, self.num_groups, self.rank)
        if self.out_dim == 1:
            out = (low * self.B.squeeze(-1).to(low.dtype)).sum(-1, keepdim=True)
        else:
            out = torch.einsum("ngr,gro->ngo", low, self.B)
        if with_bias and self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.view(*lead, self.num_groups, self.out_dim)

    def extra_repr(self) -> str:
        return f"groups={self.num_groups}, in={self.in_dim}, out={self.out_dim}, rank={self.rank}"


class FlowSelector(nn.Module):
    """Information-flow selection network (AutoIFS): per-sample selection logits for every
    (task, flow).

    ``q = MLP(x)`` (``Linear → (BN) → ReLU → (Dropout)`` per hidden width), then one linear head
    per task, ``w_t = V_t q + e_t ∈ R^{n_flows}``; the heads are stored as one ``Linear`` to
    ``T · n_flows`` outputs. ``forward(x [B, in]) → w [B, T, n_flows]``. The pruning function
    that turns ``w`` into gates is :func:`flow_gates`.

    ``zero_heads``: the heads start at ``V = 0, e = 0``, so every logit starts at exactly 0 (no
    decision) instead of at PyTorch's random ``Linear`` initialisation (the released code's).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], num_tasks: int, num_flows: int = 4, *,
                 dropout: float = 0.0, batch_norm: bool = False, zero_heads: bool = False) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("the flow selector needs at least one hidden layer")
        self.num_tasks, self.num_flows = num_tasks, num_flows
        self.hypernet = MLP(in_dim, hidden, dropout=dropout, batch_norm=batch_norm)
        self.heads = nn.Linear(self.hypernet.output_dim, num_tasks * num_flows)
        if zero_heads:
            nn.init.zeros_(self.heads.weight)
            nn.init.zeros_(self.heads.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.hypernet(x)).view(x.shape[0], self.num_tasks, self.num_flows)


class FlowGateTable(nn.Module):
    """Selection logits per (scenario, task, flow), a learned table that starts at 0:
    ``forward(scenario [B]) → w [B, T, n_flows]`` (the rows of each sample's scenario)."""

    def __init__(self, num_scenarios: int, num_tasks: int, num_flows: int = 4) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_scenarios, num_tasks, num_flows))

    def forward(self, scenario: torch.Tensor) -> torch.Tensor:
        return self.logits[scenario]


def flow_gates(logits: torch.Tensor, temperature: float | torch.Tensor, hard: bool) -> torch.Tensor:
    """AutoIFS's pruning function: ``sigmoid(τ · w)`` (soft, search stage) or ``1[w > 0]``
    (hard, retraining). As ``τ → ∞`` the soft gate tends to the hard one (except at ``w = 0``)."""
    if hard:
        return (logits > 0).to(logits.dtype)
    return torch.sigmoid(temperature * logits)
