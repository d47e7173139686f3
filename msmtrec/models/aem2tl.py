"""AEM²TL — Adaptive Entire-space Multi-scenario Multi-task Transfer Learning (Yi, Tang, Zhao,
Zeng, Song, Wu; IEEE TKDE 37(4):1585–1598, 2025, DOI 10.1109/TKDE.2025.3536334).

Implements Eq. 3–25 of the paper; Eq. 26–29 (GradNorm) are the ``gradnorm`` task weighting
(:mod:`msmtrec.train.weighting`), this model's default. Stages, for B samples, F fields, d-dim
embeddings, S scenarios and J sub-targets (J = 5 with click, action and no-click conversion labels;
2 on click/conversion data such as Ali-CCP):

    embedding        x = [B, F·d (+D numeric)], one table shared by every scenario and task (Eq. 2)
    Scenario-CGC     shared SEI  G   = Σ_k softmax(W_sh x + b_sh)_k Q_sh^k(x)      [B, h_s]  (Eq. 3–4)
                     scenario SEI S_i = Σ_k softmax(W_sp x + b_sp)_k Q_sp^k(x)     [B, h_s]  (Eq. 5)
                     — only the sample's own scenario's SEI runs (batch grouped by scenario)
                     M_i = [G ‖ S_i]                                               [B, 2·h_s] (Eq. 6)
    Task-CGC         one CGC per scenario, over M_i: m task-shared experts and n experts per
                     sub-target; head j's gate δ_i^j = softmax(W_i^j M_i) (no bias) mixes its own
                     and the shared experts: T_i^j                                 [B, J, h_t] (Eq. 7–9)
    towers           one per (scenario, sub-target), h_t → tower_dims → 1; every layer's input is
                     scaled by a Personalized Gating Network (Gate NU, γ = 2):
                     δ^(l) = U^(l)(E_prior ⊕ stopgrad(x)),  H^(l+1) = ξ((δ^(l) ⊙ H^(l)) W^(l) + b^(l)),
                     H^(1) = T_i^j                                                 → y_1..y_J ∈ (0,1) (Eq. 10–14)
    entire space     p_ctr = y1, p_ctavr = y1·y4, p_cvr = y2(1 − y4) + y4·y5, p_ctcvr = y1·p_cvr,
                     p_xcvr = p_ctcvr + (1 − y1)·y3                                (Eq. 15–21)
    losses           ctr = BCE(c, p_ctr), ctavr = BCE(c ∧ a, p_ctavr), xcvr = BCE(b, p_xcvr),
                     over every impression, each through its own scenario's towers (Eq. 22–25)

Sub-targets (see :mod:`msmtrec.nn.entire_space`): y1 = p(click), y2 = p(conv | click, no action),
y3 = p(conv | no click), y4 = p(action | click), y5 = p(conv | click, action). A branch whose label
the data does not have is switched off rather than trained on zeros: without an action task y4, y5
and the ctavr loss go; when conversions need a click (``conversion_without_click: false``) y3 goes
and the xcvr loss becomes the ESMM ctcvr loss; with both, the entire-space module is ESMM's. The
model lists what it switched off in ``notes`` (the trainer logs them).

Ablations of the paper's Table VI: ``scenario_cgc=False`` (the Task-CGCs read the embedding
directly), ``task_cgc=False`` (the towers read M_i directly), ``personalized_gate=False`` (plain
towers), ``entire_space=False`` (one tower per task — click, action, conversion — predicting its
label directly with a sigmoid, trained with the same losses and labels), and "w/o adaptive loss" =
the ``fixed`` weighting (``--weighting fixed``).

Choices the paper leaves open (design notes ``models.md`` §3, marked [ASSUMPTION]; user notes
``docs/models/aem2tl.md``, "Choices where the paper is silent"): the sub-targets are the Task-CGC's
tasks; the gate's stop-gradient input E_ep is the shared embedding x; the prior features have their
own embedding table (``schema.prior_fields``); one Gate NU per (scenario, sub-target, layer) with
hidden width = the gated width; widths and expert counts below; GradNorm acts on the last layer of
the shared Scenario-CGC sub-experts (:meth:`shared_layer`).
"""

from __future__ import annotations


import torch
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import Preset, register_model
from msmtrec.models.options import Count, Positive, Rate, Size, Sizes
from msmtrec.models.entire_space_base import EntireSpaceModel
from msmtrec.nn import CGC, FeatureEmbedding, ScenarioGroups, SEIBank, TowerBank
from msmtrec.nn.entire_space import compose_entire_space
from msmtrec.nn.gate_nu import GateNUBank


@register_model("aem2tl")
class AEM2TL(EntireSpaceModel):
    """Args (the paper states only γ = 2 and, for training, Adam with lr 2e-5 and batch 1024; the
    widths and expert counts are the spec's proposed defaults):
        embed_dim: embedding dimension per field (shared table).
        scenario_shared_experts: sub-experts ``K_sh`` of the shared SEI.
        scenario_specific_experts: sub-experts ``K_sp`` of each scenario's SEI.
        scenario_expert_dims: widths of each Scenario-CGC sub-expert MLP (output ``h_s``).
        task_shared_experts: task-shared experts ``m_i`` of each scenario's Task-CGC.
        task_specific_experts: experts ``n_i^j`` per sub-target in each Task-CGC.
        task_expert_dims: widths of each Task-CGC expert MLP (output ``h_t``).
        tower_dims: hidden widths of each (scenario, sub-target) tower; a logit layer follows.
        gate_gamma: γ of the Personalized Gating Network (``δ ∈ (0, γ)``, neutral 1 for γ = 2).
        dropout: dropout in the experts and towers.
        scenario_cgc: use Scenario-CGC (False: ablation "w/o Scenario-CGC").
        task_cgc: use the per-scenario Task-CGC (False: ablation "w/o Task-CGC").
        personalized_gate: gate every tower layer (False: ablation "w/o Personalized Gating").
        entire_space: compose the sub-targets (False: ablation "w/o Entire-space module").
    """

    inputs = ("the scenario CGC's experts and gates, and the personalised gates (stop-gradient, after the prior "
              "fields' own embeddings).")

    default_weighting = "gradnorm"
    may_skip_parameters = True  # a scenario's Task-CGC runs only when the batch has rows of it
    #: ``--preset paper``: the training settings of §V-C ("Adam ... learning rate 2e-5, batch size
    #: 1024", for every method; on 400M industrial rows, so expect to need many more epochs than
    #: the default 20 on smaller data).
    presets = {"paper": Preset(settings={"lr": 2e-5, "batch_size": 1024},
                               source="AEM²TL paper (TKDE 2025) §V-C: Adam, lr 2e-5, batch 1024")}

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, scenario_shared_experts: Count = 4,
                 scenario_specific_experts: Count = 4, scenario_expert_dims: Sizes = (256, 128),
                 task_shared_experts: Count = 2, task_specific_experts: Count = 1, task_expert_dims: Sizes = (128, 64),
                 tower_dims: Sizes = (32,), gate_gamma: Positive = 2.0, dropout: Rate = 0.0,
                 scenario_cgc: bool = True, task_cgc: bool = True, personalized_gate: bool = True,
                 entire_space: bool = True) -> None:
        super().__init__(schema)
        if scenario_cgc and min(scenario_shared_experts, scenario_specific_experts) < 1:
            raise ValueError("scenario_shared_experts and scenario_specific_experts must be >= 1")
        if task_cgc and task_shared_experts + task_specific_experts < 1:
            raise ValueError("task_shared_experts + task_specific_experts must be >= 1")
        if gate_gamma <= 0:
            raise ValueError(f"gate_gamma must be > 0, got {gate_gamma}")
        self.use_gate, self.use_entire_space = personalized_gate, entire_space
        self._explain_branches()

        # What each scenario's towers predict: the sub-targets, or (ablation) the tasks directly.
        r = self.roles
        if entire_space:
            self.heads = r.sub_targets
        else:
            self.heads = ("ctr",) + (("ctavr",) if r.action is not None else ()) + \
                         (("xcvr",) if r.conversion is not None else ())
        j = len(self.heads)
        s = self.num_scenarios

        self.embedding = self.make_embedding(schema, embed_dim)
        d = self.embedding.output_dim

        # Scenario-CGC (Eq. 3–6): a shared SEI and one SEI per scenario.
        self.scenario_shared = self.scenario_specific = None
        if scenario_cgc:
            self.scenario_shared = SEIBank(1, d, scenario_shared_experts, scenario_expert_dims, dropout=dropout)
            self.scenario_specific = SEIBank(s, d, scenario_specific_experts, scenario_expert_dims, dropout=dropout)
            d = self.scenario_shared.output_dim + self.scenario_specific.output_dim

        # Task-CGC (Eq. 7–9): one per scenario, its heads are the sub-targets.
        self.task_cgc = None
        if task_cgc:
            self.task_cgc = nn.ModuleList(
                CGC(j, d, task_specific_experts, task_shared_experts, task_expert_dims, dropout=dropout) for _ in range(s))
            for cgc in self.task_cgc:
                # Eq. 8 has no bias in the gate: δ = softmax(W M_i).
                nn.init.zeros_(cgc.gates.bias)
                cgc.gates.bias.requires_grad_(False)
            d = task_expert_dims[-1]

        # Towers per (scenario, head) and their Personalized Gating Network (Eq. 10–14).
        self.towers = TowerBank(s * j, d, tower_dims, 1, dropout=dropout)
        self.prior_fields = tuple(schema.prior_fields)
        self.prior_embedding = self.tower_gates = None
        if personalized_gate:
            try:
                self.register_buffer("prior_index", torch.tensor([schema.field_index(f) for f in self.prior_fields],
                                                                 dtype=torch.int64), persistent=False)
            except KeyError as e:
                raise ValueError(f"prior field {e} is not a categorical field of the data") from None
            gate_in = self.embedding.output_dim
            if self.prior_fields:
                self.prior_embedding = FeatureEmbedding([schema.cardinalities[i] for i in self.prior_index.tolist()],
                                                        embed_dim)
                gate_in += self.prior_embedding.output_dim
            widths = [d, *tower_dims]  # the input of every tower layer, logit layer included
            self.tower_gates = nn.ModuleList(GateNUBank(s * j, gate_in, w, gamma=gate_gamma) for w in widths)

    def _explain_branches(self) -> None:
        r = self.roles
        if not self.use_entire_space:
            self.notes.append("aem2tl: entire_space=False (ablation): one tower per task predicts its label directly")
            return
        if r.action is None:
            self.notes.append("aem2tl: the data has no task with role action: the RAction branch (y4, y5) and the "
                              "ctavr loss are off")
        if r.conversion is None:
            self.notes.append("aem2tl: the data has no task with role conversion: the conversion branches (y2, y3, "
                              "y5) are off")
        elif not r.conversion_without_click:
            self.notes.append("aem2tl: conversions need a click in this data (conversion_without_click is false): "
                              "the no-click branch y3 is off, p_xcvr = p_ctcvr and the loss is ctcvr")
        if r.action is None and r.conversion is not None and not r.conversion_without_click:
            self.notes.append("aem2tl: the entire-space module reduces to the ESMM form (p_ctcvr = y1 · y2)")
        if self.use_gate and not self.schema.prior_fields:
            self.notes.append("aem2tl: the data declares no prior_fields: the personalized gate reads only the "
                              "stop-gradient shared embedding")

    # -- forward, in the order of the paper's Fig. 3 ---------------------------------------------
    def forward(self, batch: EncodedData) -> dict[str, torch.Tensor]:
        x = self.embedding(batch)
        inputs = [x]
        if self.scenario_shared is not None:
            inputs.append(self.scenario_shared(x).squeeze(1))  # G, shared by every scenario [B, h_s]
        if self.tower_gates is not None:
            inputs.append(self.gate_input(batch, x))
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        logits = groups.apply(self._scenario_heads, *inputs)  # [B, J]
        return self.compose(torch.sigmoid(logits.float()))  # probabilities composed in fp32, also under autocast

    def gate_input(self, batch: EncodedData, x: torch.Tensor) -> torch.Tensor:
        """``E_prior ⊕ stopgrad(E_ep)`` (Eq. 12): prior-feature embeddings, and the shared embedding
        with its gradient cut so the gates do not pull on the representation they scale."""
        if self.prior_embedding is None:
            return x.detach()
        prior = self.prior_embedding(batch.categorical.index_select(1, self.prior_index))
        return torch.cat([prior, x.detach()], dim=1)

    def _scenario_heads(self, s: int, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        """Logits of scenario ``s``'s heads for its own rows ``[b, J]``."""
        rest = list(rest)
        j = len(self.heads)
        heads = slice(s * j, (s + 1) * j)
        m = x
        if self.scenario_specific is not None:  # M_i = [G ‖ S_i]
            shared = rest.pop(0)
            m = torch.cat([shared, self.scenario_specific(x, slice(s, s + 1)).squeeze(1)], dim=1)
        t = self.task_cgc[s](m)[0] if self.task_cgc is not None else m  # [b, J, h_t] or [b, d]
        gates = None
        if self.tower_gates is not None:
            z = rest.pop(0)
            gates = [bank(z, heads) for bank in self.tower_gates]  # δ^(l): [b, J, width_l]
            t = (t if t.dim() == 3 else t.unsqueeze(1)) * gates[0]
            gates = gates[1:]
        return self.towers(t, heads, gates=gates).squeeze(-1)

    def compose(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head probabilities ``[B, J]`` → the entire-space probabilities (Eq. 15–21)."""
        cols = dict(zip(self.heads, y.unbind(1)))
        if self.use_entire_space:
            out = compose_entire_space(cols["y1"], cols.get("y2"), cols.get("y3"), cols.get("y4"), cols.get("y5"))
            out["sub_targets"] = y
            return out
        # Ablation: every task predicted directly; the conversion score stands in for cvr and ctcvr.
        out = {"ctr": cols["ctr"]}
        if "ctavr" in cols:
            out["ctavr"] = cols["ctavr"]
        if "xcvr" in cols:
            out["cvr"] = out["ctcvr"] = out["xcvr"] = cols["xcvr"]
        return out

    def shared_layer(self) -> torch.Tensor:
        """The last layer of the shared Scenario-CGC sub-experts — the last layer every scenario and
        task share (GradNorm's ``W``); the embedding table when Scenario-CGC is ablated."""
        if self.scenario_shared is not None:
            return self.scenario_shared.experts.weights[-1]
        return self.embedding.table.weight
