"""Mixture-of-experts blocks: an expert bank computed as one batched matmul, a bank of softmax
gates that mix experts (not the Gate NU scaling gates of :mod:`msmtrec.nn.gate_nu`), SEI (HiNet's
sub-expert integration) and CGC (PLE's customised gate control)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from msmtrec.nn.bank_slices import bank_slice
from msmtrec.nn.mlp import TowerBank, bank_parameters


class ExpertBank(TowerBank):
    """``E`` expert MLPs with identical shapes, computed together.

    Input ``[B, in]`` (every expert sees the same input) or ``[B, E', in]`` (one input per expert);
    output ``[B, E', out]`` where ``E'`` is the number of experts selected by ``experts`` (a slice).
    Every layer, activation included (the expert output is a representation, not a logit).
    """

    def __init__(self, num_experts: int, in_dim: int, hidden: Sequence[int], *, activation: str = "relu",
                 dropout: float = 0.0) -> None:
        if not hidden:
            raise ValueError("an expert needs at least one layer")
        super().__init__(num_experts, in_dim, hidden, out_dim=None, activation=activation, dropout=dropout)
        self.num_experts = num_experts


GATE_KINDS = ("softmax", "sum")


class MixingGateBank(nn.Module):
    """``G`` gates mixing ``E`` entries each: ``softmax(φ(W_g x + b_g))``.

    Args:
        num_gates: number of gates ``G``.
        in_dim: gate input width.
        num_entries: entries per gate ``E`` (the experts it mixes).
        activation: ``identity`` (plain linear → softmax, the PLE/AEM²TL form) or ``relu``
            (HiNet's released code applies a ReLU before the softmax).
        kind: ``softmax`` (the gate above) or ``sum``: every weight is 1 and the gate has no
            parameters — what HiNet's released code computes for its CGC gates (a softmax over a
            singleton axis is 1 whatever its input, so those gates never train).

    ``forward(x [B, in] or [B, g, in], gates=slice) -> [B, g, E]``, rows summing to 1 (softmax)
    or all ones (sum).
    """

    def __init__(self, num_gates: int, in_dim: int, num_entries: int, *, activation: str = "identity",
                 kind: str = "softmax") -> None:
        super().__init__()
        if activation not in ("identity", "relu"):
            raise ValueError(f"gate activation must be 'identity' or 'relu', got '{activation}'")
        if kind not in GATE_KINDS:
            raise ValueError(f"gate kind must be one of {', '.join(GATE_KINDS)}, got '{kind}'")
        self.num_gates, self.num_entries, self.kind = num_gates, num_entries, kind
        if kind == "softmax":
            self.weight, self.bias = bank_parameters(num_gates, in_dim, num_entries)
        self.relu = activation == "relu"

    def forward(self, x: torch.Tensor, gates: slice = slice(None)) -> torch.Tensor:
        if self.kind == "sum":
            n = len(range(*gates.indices(self.num_gates)))
            return x.new_ones(x.shape[0], n, self.num_entries)
        logits = torch.einsum("bi,gie->bge" if x.dim() == 2 else "bgi,gie->bge", x, bank_slice(self.weight, gates))
        logits = logits + bank_slice(self.bias, gates).to(logits.dtype)  # the autocast dtype, if any
        if self.relu:
            logits = torch.relu(logits)
        return torch.softmax(logits, dim=-1)


def mix(gate: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum: ``gate [B, g, E]`` × ``experts [B, g, E, d]`` → ``[B, g, d]``."""
    return (gate.unsqueeze(-1) * experts).sum(dim=-2)


class SEIBank(nn.Module):
    """``N`` independent SEI modules (sub-expert integration), all computed at once.

    SEI ``n`` has ``K`` sub-expert MLPs ``Q_{n,k}`` and a softmax gate ``w_n = softmax(φ(W_n x + b_n))``
    over them; its output is ``Σ_k w_{n,k} Q_{n,k}(x)`` (HiNet §III-B, AEM²TL Eq. 3–6).
    ``forward(x [B, in], seis=slice) -> [B, n, out]``.
    """

    def __init__(self, num_seis: int, in_dim: int, num_sub_experts: int, hidden: Sequence[int], *,
                 gate_activation: str = "identity", dropout: float = 0.0) -> None:
        super().__init__()
        self.num_seis, self.k = num_seis, num_sub_experts
        self.experts = ExpertBank(num_seis * num_sub_experts, in_dim, hidden, dropout=dropout)
        self.gates = MixingGateBank(num_seis, in_dim, num_sub_experts, activation=gate_activation)
        self.output_dim = self.experts.output_dim

    def gate_weights(self, x: torch.Tensor, seis: slice = slice(None)) -> torch.Tensor:
        return self.gates(x, seis)

    def forward(self, x: torch.Tensor, seis: slice = slice(None)) -> torch.Tensor:
        start, stop, _ = seis.indices(self.num_seis)
        sub = self.experts(x, slice(start * self.k, stop * self.k))  # [B, n*K, d]
        sub = sub.view(x.shape[0], stop - start, self.k, self.output_dim)  # no -1: a chunk may be empty
        return mix(self.gates(x, seis), sub)


class CGC(nn.Module):
    """Customised Gate Control (PLE, Tang et al. RecSys 2020), one extraction level.

    ``H`` heads, each with ``n_specific`` experts of its own; ``n_shared`` experts shared by all
    heads. Head ``h``'s gate covers only its own experts and the shared ones:
    ``g_h = softmax(W_h x_h)`` over ``n_specific + n_shared`` entries, ``out_h = Σ g_h,k E_k``.
    With ``shared_gate_groups=G > 0`` (lower PLE levels) the heads are split into ``G`` equal
    groups (the scenarios, in MSMT use) and each group has a shared gate over its heads' specific
    experts plus the shared experts; it produces the input of the next level's shared experts.
    (Textbook PLE has one shared gate over every expert; per-group gates keep a scenario's rows
    from running other scenarios' experts.) ``gate``: ``softmax`` or ``sum`` (see
    :class:`MixingGateBank`), for every gate of the level.

    ``forward(x_heads, x_shared, heads=slice)``: ``x_heads`` is ``[B, in]`` (same input for every
    head) or ``[B, h, in]``; ``x_shared`` is ``[B, in]`` (defaults to ``x_heads`` when 2-D). Returns
    ``(head_out [B, h, out], shared_out [B, out] or None)``. Selecting a slice of heads runs only
    those heads' experts and gates — the models pass the heads of one scenario's rows.
    """

    def __init__(self, num_heads: int, in_dim: int, n_specific: int, n_shared: int, expert_hidden: Sequence[int], *,
                 shared_gate_groups: int = 0, gate_activation: str = "identity", gate: str = "softmax",
                 dropout: float = 0.0) -> None:
        super().__init__()
        if n_specific + n_shared == 0:
            raise ValueError("CGC needs at least one expert")
        self.num_heads, self.n_specific, self.n_shared = num_heads, n_specific, n_shared
        self.specific = ExpertBank(num_heads * n_specific, in_dim, expert_hidden, dropout=dropout) if n_specific else None
        self.shared = ExpertBank(n_shared, in_dim, expert_hidden, dropout=dropout) if n_shared else None
        self.gates = MixingGateBank(num_heads, in_dim, n_specific + n_shared, activation=gate_activation, kind=gate)
        self.shared_gate = None
        if shared_gate_groups:
            if num_heads % shared_gate_groups:
                raise ValueError(f"{num_heads} heads cannot be split into {shared_gate_groups} equal groups")
            self.heads_per_group = num_heads // shared_gate_groups
            self.shared_gate = MixingGateBank(shared_gate_groups, in_dim, self.heads_per_group * n_specific + n_shared,
                                              activation=gate_activation, kind=gate)
        self.output_dim = expert_hidden[-1]

    def gate_weights(self, x_heads: torch.Tensor, heads: slice = slice(None)) -> torch.Tensor:
        return self.gates(x_heads, heads)

    def forward(self, x_heads: torch.Tensor, x_shared: torch.Tensor | None = None, heads: slice = slice(None),
                shared_experts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``shared_experts`` (optional ``[B, m, d]``) are this level's shared-expert outputs for
        these rows, computed by the caller (e.g. once for a whole batch before it is split by
        scenario); by default they are computed here from ``x_shared``."""
        if x_shared is None:
            if x_heads.dim() != 2:
                raise ValueError("x_shared is required when heads have separate inputs")
            x_shared = x_heads
        b = x_heads.shape[0]
        start, stop, _ = heads.indices(self.num_heads)
        h = stop - start
        parts = []
        spec = None
        if self.specific is not None:
            # Each head's input once per expert of it (repeat_interleave, written so that an
            # exported graph keeps an empty chunk's shape).
            xin = x_heads if x_heads.dim() == 2 else x_heads.unsqueeze(2).expand(
                b, h, self.n_specific, x_heads.shape[-1]).reshape(b, h * self.n_specific, x_heads.shape[-1])
            spec = self.specific(xin, slice(start * self.n_specific, stop * self.n_specific))  # [B, h*n, d]
            parts.append(spec.view(b, h, self.n_specific, self.output_dim))  # no -1: b may be 0
        shared = shared_experts
        if shared is None and self.shared is not None:
            shared = self.shared(x_shared)  # [B, m, d]
        if shared is not None:
            parts.append(shared.unsqueeze(1).expand(b, h, self.n_shared, shared.shape[-1]))
        experts = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        head_out = mix(self.gates(x_heads, heads), experts)
        shared_out = None
        if self.shared_gate is not None:
            if h != self.heads_per_group or start % self.heads_per_group:
                raise ValueError("the shared gate runs on exactly one group of heads at a time")
            g = start // self.heads_per_group
            everything = torch.cat([t for t in (spec, shared) if t is not None], dim=1)  # [B, h*n+m, d]
            gate = self.shared_gate(x_shared, slice(g, g + 1))  # [B, 1, h*n+m]
            shared_out = mix(gate, everything.unsqueeze(1)).squeeze(1)
        return head_out, shared_out


class CGCStack(nn.ModuleList):
    """``L`` CGC levels over ``M·T`` (scenario, task) heads: PLE's progressive layered extraction
    with the (scenario, task) pairs as its tasks.

    Every level but the last has a shared gate per scenario whose output is the next level's
    shared-expert input; head ``(s, t)``'s output is the next level's input of its own experts and
    gate. Only a scenario's own heads run on its rows.

    ``forward(chunks)``: ``chunks`` is a list of ``(s, x_s [n_s, in])`` — rows that all belong to
    scenario ``s`` (the same ``s`` may appear more than once); returns the head outputs
    ``[n_s, T, out]`` in the same order. Each level runs its shared experts once over all the rows.
    """

    def __init__(self, num_levels: int, num_scenarios: int, num_tasks: int, in_dim: int, n_specific: int,
                 n_shared: int, expert_hidden: Sequence[int], *, gate_activation: str = "identity",
                 gate: str = "softmax", dropout: float = 0.0) -> None:
        if num_levels < 1:
            raise ValueError(f"a CGC stack needs at least one level, got {num_levels}")
        levels, d = [], in_dim
        for level in range(num_levels):
            last = level == num_levels - 1
            levels.append(CGC(num_scenarios * num_tasks, d, n_specific, n_shared, expert_hidden,
                              shared_gate_groups=0 if last else num_scenarios, gate_activation=gate_activation,
                              gate=gate, dropout=dropout))
            d = levels[-1].output_dim
        super().__init__(levels)
        self.num_tasks, self.output_dim = num_tasks, d

    def forward(self, chunks: Sequence[tuple[int, torch.Tensor]]) -> list[torch.Tensor]:  # type: ignore[override]
        t = self.num_tasks
        scenarios = [s for s, _ in chunks]
        heads_in = [x for _, x in chunks]
        shared_in = list(heads_in)
        sizes = [x.shape[0] for x in heads_in]
        for level in self:
            shared = (level.shared(torch.cat(shared_in)).split(sizes) if level.shared is not None
                      else [None] * len(chunks))
            outs = [level(h, sh, slice(s * t, (s + 1) * t), shared_experts=e)
                    for s, h, sh, e in zip(scenarios, heads_in, shared_in, shared)]
            heads_in = [h for h, _ in outs]
            if outs and outs[0][1] is not None:
                shared_in = [sh for _, sh in outs]
        return heads_in
