"""MMoE (Ma et al., KDD 2018), made multi-scenario: experts shared by every scenario and task, a
softmax gate and a tower per (scenario, task).

Stages:
    embedding            x = [B, F·d (+D)]
    experts              E experts, one batched matmul → [B, E, h]
    gates                the T gates of the sample's scenario, softmax over E → [B, T, E]
    mixture              Σ_k g_{t,k} E_k → [B, T, h]
    towers               the sample's scenario's T towers → logits [B, T]
"""

from __future__ import annotations


import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, register_model
from msmtrec.models.options import Rate, Size, Sizes
from msmtrec.nn import ExpertBank, MixingGateBank, ScenarioGroups, TowerBank
from msmtrec.nn.experts import mix


@register_model("mmoe")
class MMoE(MSMTModel):
    """Args:
        embed_dim: embedding dimension per field.
        num_experts: number of shared experts.
        expert_dims: widths of each expert MLP.
        tower_dims: hidden widths of each (scenario, task) tower.
        dropout: dropout inside experts and towers.
    """

    inputs = "every expert and every (scenario, task) gate."

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, num_experts: Size = 4,
                 expert_dims: Sizes = (128, 64), tower_dims: Sizes = (64,), dropout: Rate = 0.0) -> None:
        super().__init__(schema)
        self.embedding = self.make_embedding(schema, embed_dim)
        d = self.embedding.output_dim
        self.experts = ExpertBank(num_experts, d, expert_dims, dropout=dropout)
        heads = self.num_scenarios * self.num_tasks
        self.gates = MixingGateBank(heads, d, num_experts)
        self.towers = TowerBank(heads, self.experts.output_dim, tower_dims, 1, dropout=dropout)

    def forward(self, batch: EncodedData) -> torch.Tensor:
        x = self.embedding(batch)
        experts = self.experts(x)  # [B, E, h]
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        t = self.num_tasks

        def scenario_heads(s: int, xs: torch.Tensor, es: torch.Tensor) -> torch.Tensor:
            heads = slice(s * t, (s + 1) * t)
            mixed = mix(self.gates(xs, heads), es.unsqueeze(1))  # [b, T, h]
            return self.towers(mixed, heads).squeeze(-1)

        return groups.apply(scenario_heads, x, experts)

    def shared_layer(self) -> torch.Tensor:
        return self.experts.weights[-1]
