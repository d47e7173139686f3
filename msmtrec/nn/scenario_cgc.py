"""A CGC per scenario, all scenarios' parameters stored as banks.

Scenario ``s`` has its own CGC (PLE, Tang et al. RecSys 2020) over its ``T`` tasks: task-specific
experts per (scenario, task) and task-shared experts per scenario (shared by the scenario's tasks,
not across scenarios). This is the per-scenario layout of HiNet's task extraction layer
(``models.md`` §2.3, layout (b)) and AEM²TL's Task-CGC (Eq. 7–9). Compare :class:`msmtrec.nn.CGC`,
whose shared experts are common to every head.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from msmtrec.nn.experts import ExpertBank, MixingGateBank, mix


class ScenarioCGC(nn.Module):
    """Args:
        num_scenarios: ``M``.
        num_tasks: ``T`` heads per scenario.
        in_dim: input width.
        n_specific: experts per (scenario, task) head.
        n_shared: task-shared experts per scenario.
        expert_hidden: widths of each expert MLP.
        gate_activation: ``identity`` or ``relu`` before the gate softmax.
        gate: ``softmax`` or ``sum`` (every expert weight 1, see :class:`~msmtrec.nn.MixingGateBank`).
        dropout: dropout inside the experts.

    ``forward(x [B, in], scenarios=slice) -> [B, n·T, out]`` runs the CGCs of the scenarios in the
    slice (usually one: the scenario of every row of ``x``); head ``(s, t)`` mixes its own experts
    and scenario ``s``'s shared experts with ``softmax(φ(W_{s,t} x + b_{s,t}))``.
    """

    def __init__(self, num_scenarios: int, num_tasks: int, in_dim: int, n_specific: int, n_shared: int,
                 expert_hidden: Sequence[int], *, gate_activation: str = "identity", gate: str = "softmax",
                 dropout: float = 0.0) -> None:
        super().__init__()
        if n_specific < 0 or n_shared < 0 or n_specific + n_shared == 0:
            raise ValueError(f"CGC needs at least one expert (got {n_specific} specific, {n_shared} shared)")
        self.num_scenarios, self.num_tasks = num_scenarios, num_tasks
        self.n_specific, self.n_shared = n_specific, n_shared
        self.specific = ExpertBank(num_scenarios * num_tasks * n_specific, in_dim, expert_hidden,
                                   dropout=dropout) if n_specific else None
        self.shared = ExpertBank(num_scenarios * n_shared, in_dim, expert_hidden, dropout=dropout) if n_shared else None
        self.gates = MixingGateBank(num_scenarios * num_tasks, in_dim, n_specific + n_shared, activation=gate_activation,
                                    kind=gate)
        self.output_dim = expert_hidden[-1]

    def gate_weights(self, x: torch.Tensor, scenarios: slice = slice(None)) -> torch.Tensor:
        start, stop, _ = scenarios.indices(self.num_scenarios)
        return self.gates(x, slice(start * self.num_tasks, stop * self.num_tasks))

    def forward(self, x: torch.Tensor, scenarios: slice = slice(None)) -> torch.Tensor:
        start, stop, _ = scenarios.indices(self.num_scenarios)
        b, n, t = x.shape[0], stop - start, self.num_tasks
        parts = []
        if self.specific is not None:
            k = self.n_specific
            spec = self.specific(x, slice(start * t * k, stop * t * k))  # [B, n*T*k, d]
            parts.append(spec.view(b, n, t, k, self.output_dim))  # no -1: b may be 0
        if self.shared is not None:
            m = self.n_shared
            shared = self.shared(x, slice(start * m, stop * m)).view(b, n, 1, m, self.output_dim)  # [B, n, 1, m, d]
            parts.append(shared.expand(b, n, t, m, shared.shape[-1]))
        experts = torch.cat(parts, dim=3) if len(parts) > 1 else parts[0]  # [B, n, T, k+m, d]
        experts = experts.reshape(b, n * t, self.n_specific + self.n_shared, self.output_dim)  # [B, n*T, k+m, d]
        return mix(self.gate_weights(x, scenarios), experts)
