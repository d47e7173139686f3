"""PLE — Progressive Layered Extraction (Tang et al., RecSys 2020), made multi-scenario: the
"tasks" of CGC are the (scenario, task) pairs.

Stages (L levels):
    embedding                   x = [B, F·d (+D)]
    level 1 .. L-1 (CGC)        head experts of the sample's scenario's T heads + shared experts;
                                per-head gates → [B, T, h]; a per-scenario shared gate over all
                                of them → [B, h] (input of the next level's shared experts)
    level L (CGC)               per-head gates only → [B, T, h]
    towers                      the sample's scenario's T towers → logits [B, T]

Only the sample's own scenario's experts, gates and towers run (the batch is grouped by
scenario); the shared experts are common to every scenario and task.
"""

from __future__ import annotations


import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, register_model
from msmtrec.models.options import Count, Rate, Size, Sizes
from msmtrec.nn import CGCStack, ScenarioGroups, TowerBank


@register_model("ple")
class PLE(MSMTModel):
    """Args:
        embed_dim: embedding dimension per field.
        num_levels: number of stacked CGC levels (1 = CGC alone).
        specific_experts: experts per (scenario, task) head at each level.
        shared_experts: shared experts at each level.
        expert_dims: widths of each expert MLP.
        tower_dims: hidden widths of each (scenario, task) tower.
        dropout: dropout inside experts and towers.
    """

    inputs = "the experts and gates of the first extraction level."

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, num_levels: Size = 2, specific_experts: Count = 1,
                 shared_experts: Count = 2, expert_dims: Sizes = (128, 64), tower_dims: Sizes = (64,),
                 dropout: Rate = 0.0) -> None:
        super().__init__(schema)
        self.embedding = self.make_embedding(schema, embed_dim)
        self.levels = CGCStack(num_levels, self.num_scenarios, self.num_tasks, self.embedding.output_dim,
                               specific_experts, shared_experts, expert_dims, dropout=dropout)
        self.towers = TowerBank(self.num_scenarios * self.num_tasks, self.levels.output_dim, tower_dims, 1,
                                dropout=dropout)

    def forward(self, batch: EncodedData) -> torch.Tensor:
        x = self.embedding(batch)
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        t = self.num_tasks
        # Rows are sorted by scenario once; per-scenario pieces are views of the sorted tensors.
        present = groups.present
        chunks = groups.split(x)
        heads = self.levels([(s, chunks[s]) for s in present])
        logits = [self.towers(h, slice(s * t, (s + 1) * t)).squeeze(-1) for s, h in zip(present, heads)]
        return groups.merge(logits)

    def shared_layer(self) -> torch.Tensor:
        return self.levels[0].shared.weights[-1] if self.levels[0].shared is not None else self.embedding.table.weight
