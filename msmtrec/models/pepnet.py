"""PEPNet: Parameter and Embedding Personalized Network (Chang et al., KDD 2023, arXiv 2302.01115).

One network for every scenario and task, personalised by Gate NU gates
(``δ = γ·sigmoid(W₂ ReLU(W₁ z + b₁) + b₂)``, γ = 2, starting at 1; :class:`msmtrec.nn.GateNU`):

- **EPNet** (embedding personalisation, per scenario): ``δ_domain = GateNU([e_s ; ⊘(E)])`` and
  ``O_ep = δ_domain ⊙ E``, where ``E`` is the general (shared) embedding, ``e_s`` the embedding
  of the scenario indicator and ``⊘`` stop-gradient — the gate reads the embedding but sends no
  gradient back into it.
- **PPNet** (parameter personalisation, per task): every hidden layer ``l`` of every task tower is
  scaled element-wise, ``H'_l = δ^l_task ⊙ H_l``, with ``δ^l_task = GateNU_l([E_prior ; ⊘(O_ep)])``
  (one gate per layer whose output is split across the ``T`` towers). ``E_prior`` is the
  embeddings of the personal prior fields the dataset spec names (``schema.prior_fields``: user
  id, item id, author id, …). **Without prior fields** the gates read the stop-gradient embedding
  ``⊘(O_ep)`` alone.

Shapes for B samples, F fields, d-dim embeddings (+D numeric), T tasks, P prior fields:

    general embedding   E      = [B, F·d (+D)]
    EPNet               δ_dom  = GateNU([e_s ; ⊘E])  [B, F·d (+D)];  O_ep = δ_dom ⊙ E
    PPNet gates         z      = [E_prior ; ⊘O_ep]   [B, P·d + F·d (+D)]
                        δ^l    = GateNU_l(z) → [B, T, width_l] for each hidden layer l
    task towers         T towers (256 → 128 → 1) on O_ep, hidden layer l scaled by δ^l → [B, T]

The towers are per task and shared by the scenarios (as in the paper): scenario personalisation
comes from EPNet, task personalisation from the towers and PPNet.
"""

from __future__ import annotations


import torch
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, register_model
from msmtrec.models.options import Positive, Rate, Size, Sizes
from msmtrec.nn import GateNU, TowerBank


@register_model("pepnet")
class PEPNet(MSMTModel):
    """Args:
        embed_dim: embedding dimension per categorical field.
        scenario_embed_dim: width of the scenario-indicator embedding (EPNet's domain input).
        tower_dims: hidden widths of each task tower (a logit layer follows).
        gate_hidden: hidden width of every Gate NU (None: the width of the vector it scales — the
            embedding width for EPNet, the layer width of one task's tower for PPNet's layer gates).
        gamma: Gate NU scale γ (2 in the paper: gates lie in (0, 2) and start at 1).
        dropout: dropout after each hidden tower layer.
        stop_gradient: stop the gradient of the embeddings fed to the gates, as the paper does
            (False only for ablations).
    """

    inputs = ("EPNet, which scales it by a gate of the scenario and the stop-gradient row itself, then the PPNet "
              "towers (whose gates also read the prior fields' embeddings).")

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, scenario_embed_dim: Size = 16,
                 tower_dims: Sizes = (256, 128), gate_hidden: Size | None = None, gamma: Positive = 2.0,
                 dropout: Rate = 0.0, stop_gradient: bool = True) -> None:
        super().__init__(schema)
        if not tower_dims:
            raise ValueError("tower_dims needs at least one hidden layer for PPNet to gate")
        fields = [n for n, _ in schema.categorical]
        missing = [p for p in schema.prior_fields if p not in fields]
        if missing:
            raise ValueError(f"prior field(s) {', '.join(missing)} are not categorical fields of the schema")
        self.stop_gradient = bool(stop_gradient)
        self.embedding = self.make_embedding(schema, embed_dim)
        d = self.embedding.output_dim
        self.register_buffer("prior_index", torch.tensor([fields.index(p) for p in schema.prior_fields],
                                                         dtype=torch.int64), persistent=False)
        self.scenario_embedding = nn.Embedding(self.num_scenarios, scenario_embed_dim)
        self.epnet_gate = GateNU(scenario_embed_dim + d, d, gate_hidden, gamma=gamma)
        prior_dim = len(schema.prior_fields) * embed_dim
        t = self.num_tasks
        self.ppnet_gates = nn.ModuleList(GateNU(prior_dim + d, t * w, gate_hidden or w, gamma=gamma) for w in tower_dims)
        self.towers = TowerBank(t, d, tower_dims, 1, dropout=dropout)

    def _sg(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach() if self.stop_gradient else x

    def epnet(self, embedded: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """``O_ep = GateNU([e_s ; ⊘E]) ⊙ E``: ``[B, in]`` → ``[B, in]``."""
        delta = self.epnet_gate(torch.cat([self.scenario_embedding(scenario), self._sg(embedded)], dim=1))
        return delta * embedded

    def ppnet_gates_for(self, personalised: torch.Tensor, categorical: torch.Tensor) -> list[torch.Tensor]:
        """One ``[B, T, width_l]`` gate per hidden tower layer from ``[E_prior ; ⊘O_ep]``."""
        z = self._sg(personalised)
        if self.prior_index.numel():
            ids = categorical[:, self.prior_index] + self.embedding.offsets[self.prior_index]
            prior = self.embedding.table(ids).flatten(1)
            z = torch.cat([prior, z], dim=1)
        b, t = z.shape[0], self.num_tasks
        return [gate(z).view(b, t, -1) for gate in self.ppnet_gates]

    def forward(self, batch: EncodedData) -> torch.Tensor:
        embedded = self.embedding(batch)
        personalised = self.epnet(embedded, batch.scenario)
        gates = self.ppnet_gates_for(personalised, batch.categorical)
        return self.towers(personalised, gates=gates).squeeze(-1)

    def shared_layer(self) -> torch.Tensor:
        return self.epnet_gate.out.weight
