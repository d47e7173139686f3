"""Shared-Bottom (Caruana 1997), made multi-scenario: one MLP shared by every scenario and task,
then a tower per (scenario, task).

Stages (shapes for B samples, F fields, d-dim embeddings, S scenarios, T tasks):
    embedding        [B, F·d (+D numeric)]
    shared bottom    MLP → [B, h]
    towers           the T towers of the sample's scenario (a bank of S·T towers, run per
                     scenario group) → logits [B, T]
"""

from __future__ import annotations


import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, register_model
from msmtrec.models.options import Rate, Size, Sizes
from msmtrec.nn import MLP, ScenarioGroups, TowerBank


@register_model("shared_bottom")
class SharedBottom(MSMTModel):
    """Args:
        embed_dim: embedding dimension per field.
        bottom_dims: widths of the shared MLP.
        tower_dims: hidden widths of each (scenario, task) tower (a logit layer follows).
        dropout: dropout after each hidden layer.
        batch_norm: BatchNorm in the shared MLP.
    """

    inputs = "the shared bottom MLP."

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, bottom_dims: Sizes = (256, 128),
                 tower_dims: Sizes = (64,), dropout: Rate = 0.0, batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = self.make_embedding(schema, embed_dim)
        self.bottom = MLP(self.embedding.output_dim, bottom_dims, dropout=dropout, batch_norm=batch_norm)
        self.towers = TowerBank(self.num_scenarios * self.num_tasks, self.bottom.output_dim, tower_dims, 1, dropout=dropout)

    def forward(self, batch: EncodedData) -> torch.Tensor:
        h = self.bottom(self.embedding(batch))
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        t = self.num_tasks
        return groups.apply(lambda s, x: self.towers(x, slice(s * t, (s + 1) * t)).squeeze(-1), h)

    def shared_layer(self) -> torch.Tensor:
        return [m for m in self.bottom.net if isinstance(m, torch.nn.Linear)][-1].weight
