"""ESMM — Entire Space Multi-task Model (Ma et al., SIGIR 2018, arXiv 1804.07931), made
multi-scenario.

ESMM learns the post-click conversion rate without sample-selection bias: it never trains the CVR
tower on clicked impressions alone, but composes ``pCTCVR = pCTR · pCVR`` and supervises pCTR and
pCTCVR over *all* impressions (the paper's Eq. 2–3). pCVR is an intermediate variable.

Stages (shapes for B samples, F fields, d-dim embeddings, S scenarios):
    embedding            x = [B, F·d (+D numeric)]   (one table shared by both towers — the
                                                      paper's feature-representation transfer)
    shared bottom        optional MLP → [B, h]        (``bottom_dims``; empty = the paper's form)
    towers               the sample's scenario's CTR and CVR towers (a bank of S·2 towers run per
                         scenario group) → logits [B, 2]
    composition          pCTR = σ(z_ctr), pCVR = σ(z_cvr), pCTCVR = pCTR · pCVR   (in probability
                         space; the losses clamp before the log)
    losses               ctr = BCE(click, pCTR), ctcvr = BCE(click ∧ conversion, pCTCVR), both over
                         every impression (:class:`~msmtrec.models.entire_space_base.EntireSpaceModel`)

The data must declare a click task and a conversion task (``role:`` in the dataset spec). ESMM has
no no-click conversion path: on data where conversions can happen without a click its conversion
prediction is still pCTCVR, trained on click ∧ conversion (AEM²TL's y3 models that path).
"""

from __future__ import annotations


import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import register_model
from msmtrec.models.options import Rate, Size, Sizes
from msmtrec.models.entire_space_base import EntireSpaceModel
from msmtrec.nn import MLP, ScenarioGroups, TowerBank
from msmtrec.nn.entire_space import compose_entire_space


@register_model("esmm")
class ESMM(EntireSpaceModel):
    """Args:
        embed_dim: embedding dimension per field (the paper uses 18 on its public data; 16 here as
            for every model in the library).
        tower_dims: hidden widths of each CTR / CVR tower (the paper's MLP is 360 → 200 → 80 → 2,
            i.e. hidden widths 200 and 80); a logit layer follows.
        bottom_dims: widths of an optional MLP shared by both towers and every scenario (the
            shared-bottom variant); empty = towers straight on the embedding, as in the paper.
        dropout: dropout after each hidden layer.
    """

    inputs = "the CTR and CVR towers (through the shared bottom MLP when bottom_dims is set)."

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, tower_dims: Sizes = (200, 80),
                 bottom_dims: Sizes = (), dropout: Rate = 0.0) -> None:
        super().__init__(schema)
        if self.roles.conversion is None:
            raise ValueError("esmm needs a task with role conversion (and one with role click)")
        if self.roles.action is not None:
            raise ValueError(f"esmm models click and conversion only; task '{schema.tasks[self.roles.action]}' has "
                             f"role action — use aem2tl, or remove that task or its role")
        self.no_click_path = False
        if self.roles.conversion_without_click:
            self.notes.append("esmm: conversions may happen without a click in this data, but ESMM models the click "
                              "path only: its conversion prediction is pCTCVR, trained on click ∧ conversion")
        self.embedding = self.make_embedding(schema, embed_dim)
        self.bottom = MLP(self.embedding.output_dim, bottom_dims, dropout=dropout) if bottom_dims else None
        d = self.bottom.output_dim if self.bottom is not None else self.embedding.output_dim
        # Heads 2s and 2s+1 are scenario s's CTR and CVR towers.
        self.towers = TowerBank(2 * self.num_scenarios, d, tower_dims, 1, dropout=dropout)

    def forward(self, batch: EncodedData) -> dict[str, torch.Tensor]:
        h = self.embedding(batch)
        if self.bottom is not None:
            h = self.bottom(h)
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        logits = groups.apply(lambda s, x: self.towers(x, slice(2 * s, 2 * s + 2)).squeeze(-1), h)  # [B, 2]
        p_ctr, p_cvr = torch.sigmoid(logits.float()).unbind(1)  # probabilities in fp32, also under autocast
        return compose_entire_space(p_ctr, p_cvr)

    def shared_layer(self) -> torch.Tensor:
        if self.bottom is not None:
            return [m for m in self.bottom.net if isinstance(m, torch.nn.Linear)][-1].weight
        return self.embedding.table.weight
