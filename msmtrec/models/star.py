"""STAR: Star Topology Adaptive Recommender (Sheng et al., "One Model to Serve All", CIKM 2021,
arXiv 2101.11427), with one output per task.

A multi-scenario baseline: one network whose every fully connected layer is the element-wise
product of a shared (centre) weight and the scenario's own weight. Shapes for B samples, F fields,
d-dim embeddings (+D numeric), M scenarios, T tasks, at the defaults:

    embedding                  x = [B, F·d (+D)]
    partitioned normalisation  z = (γ·γ_s)(x − μ_s)/sqrt(σ²_s + ε) + (β + β_s)   (per-scenario
                               batch statistics in training, per-scenario moving averages in
                               evaluation)                                         → [B, F·d (+D)]
    star topology FCN          h = ReLU(h (W ⊙ W_s) + (b + b_s)) for every hidden layer
                               (256 → 128), then a star-topology output layer     → [B, T]
    auxiliary network          MLP([e_s ; x]) on the scenario-indicator embedding e_s and the
                               features, 64 → T                                    → [B, T]
    logits                     star output + auxiliary output                      → [B, T]

The scenario-specific parts (PN statistics, scale and shift; star weights) run per scenario group
(the batch is split by scenario), each with that scenario's effective weights.

Multi-task: the paper predicts one CTR; here the last star layer has one column per task, so the
tasks share the hidden star layers and differ in the output layer (and in the auxiliary network's
output), and every output stays scenario-specific through ``W ⊙ W_s``.
"""

from __future__ import annotations

import torch
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, register_model
from msmtrec.models.options import Rate, Size, Sizes
from msmtrec.nn import MLP, ScenarioGroups
from msmtrec.nn.dropout import BitDropout
from msmtrec.nn.star_layers import PartitionedNorm, StarLinear


@register_model("star")
class STAR(MSMTModel):
    """Args:
        embed_dim: embedding dimension per categorical field.
        star_dims: hidden widths of the star-topology FCN (an output layer with ``T`` columns
            follows).
        aux_dims: hidden widths of the auxiliary network (a ``T``-wide output follows); the paper
            describes a small two-layer network.
        scenario_embed_dim: width of the scenario-indicator embedding fed to the auxiliary network.
        partitioned_norm: apply partitioned normalisation to the input (the paper's PN).
        norm_momentum: momentum of PN's per-scenario moving statistics.
        dropout: dropout after each hidden star layer.
    """

    inputs = "the row's scenario's star-topology network, and the auxiliary network with the scenario embedding."

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, star_dims: Sizes = (256, 128),
                 aux_dims: Sizes = (64,), scenario_embed_dim: Size = 16, partitioned_norm: bool = True,
                 norm_momentum: Rate = 0.1, dropout: Rate = 0.0) -> None:
        super().__init__(schema)
        m, t = self.num_scenarios, self.num_tasks
        self.embedding = self.make_embedding(schema, embed_dim)
        d = self.embedding.output_dim
        self.norm = PartitionedNorm(m, d, momentum=norm_momentum) if partitioned_norm else None
        widths = [d, *star_dims, t]
        self.star_layers = nn.ModuleList(StarLinear(m, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = BitDropout(dropout) if dropout > 0 else nn.Identity()
        self.scenario_embedding = nn.Embedding(m, scenario_embed_dim)
        self.auxiliary = MLP(scenario_embed_dim + d, aux_dims, out_dim=t)

    def star_network(self, s: int, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """PN and the star FCN of scenario ``s`` on its block ``x [b, in]`` → logits ``[b, T]``.
        Only the first ``rows`` rows (default all) are the scenario's: PN's statistics come from
        them, and the rest (padding) passes PN unchanged."""
        h = x
        if self.norm is not None:
            rows = x.shape[0] if rows is None else rows
            h = self.norm(x[:rows], s)
            if rows < x.shape[0]:
                h = torch.cat([h, x[rows:]])
        last = len(self.star_layers) - 1
        for i, layer in enumerate(self.star_layers):
            h = layer(h, s)
            if i < last:
                h = self.dropout(torch.relu(h))
        return h

    def forward(self, batch: EncodedData) -> torch.Tensor:
        x = self.embedding(batch)
        # The star FCN is row-wise and PN is not: blocks padded under autocast (one bf16 kernel per
        # block shape, ScenarioGroups), PN's statistics from each block's real rows.
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        rows = groups.counts if groups.padded else [None] * self.num_scenarios
        main = groups.apply(lambda s, block: self.star_network(s, block, rows[s]), x)
        aux = self.auxiliary(torch.cat([self.scenario_embedding(batch.scenario), x], dim=1))
        return main + aux

    def shared_layer(self) -> torch.Tensor:
        return self.star_layers[-2].shared_weight if len(self.star_layers) > 1 else self.star_layers[-1].shared_weight
