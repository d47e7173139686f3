"""HiNet: Hierarchical information extraction Network (Zhou et al., Meituan, ICDE 2023,
arXiv 2303.06095; official TF code ``mrchor/HiNet``). Spec: ``models.md`` §2 of the design notes
(``../shared/docs/``, beside the repository); user notes: ``docs/models/hinet.md``.

Coarse to fine: a *scenario extraction layer* separates what is shared by all scenarios from what
is specific to each and adds what the other scenarios know (SAN); a *task extraction layer* (CGC)
then separates the tasks. Shapes for B samples, F fields, d-dim embeddings (+D numeric), M
scenarios, T tasks, K sub-experts, at the defaults (hidden widths 128 → 64):

    embedding                 x = [B, F·d (+D)]           (optionally normalised: input_norm)
    scenario-shared SEI       G   = Σ_k w_k(x) Q_k(x)                    → [B, 64]
    scenario-specific SEIs    S_j = SEI_j(x) for every scenario j        → [B, M, 64]
                              (all (M+1)·K sub-experts in one batched matmul per layer; every
                              sample runs every scenario's SEI because SAN needs them)
    SAN                       a_i = softmax(MLP(e_i)) over the M scenarios, own weight set to 0
                              A_i = Σ_{j≠i} a_{i,j} S_j                  → [B, 64]
    scenario representation   C_i = [A_i ; S_i ; G]                      → [B, 192]
    task extraction (CGC)     the sample's scenario's T heads only (batch grouped by scenario):
                              head h mixes its own experts and the shared ones with
                              g_h = softmax(φ(W_h C_i + b_h))            → [B, T, 64]
                              (task_levels levels; cgc_gate=sum: g_h = 1, the code's)
    towers                    one per (scenario, task) head, 128 → 64 → 1 → logits [B, T]

SEI and gate equations: ``G = Σ_k softmax(φ(W x + b))_k Q_k(x)`` (spec §2.3 items 1–2); SAN:
§2.3 item 3; ``C_i``: item 4; CGC and towers: the task extraction layer; loss: §2.4.

Task layouts (``task_layout``):

- ``pair`` (official code): every (scenario, task) pair is a CGC head with its own experts; the
  task-shared experts are shared by all ``M·T`` heads. ``task_levels`` CGC levels are stacked
  (the code's ``level_number``, default 1) as in PLE (:class:`~msmtrec.nn.CGCStack`).
- ``scenario``: one CGC per scenario (the paper's figure; AEM²TL's Task-CGC), its task-shared
  experts shared by that scenario's tasks only; one level.

CGC gates (``cgc_gate``): ``softmax`` (the paper's CGC; default) or ``sum``, the released code's
behaviour — its task-layer gates take a softmax over a singleton axis (``[B, E, 1]``, axis −1),
so every expert weight is 1, the experts are summed and the gate never trains. The SEI and SAN
gates of the code are real softmaxes.

Loss: by default a sample trains only its own scenario's heads (masked BCE per task). With
``loss_on_all_heads=True`` every head ``(m, t)`` is trained on every sample, as the released code
does: it sums the BCE of all ``M·T`` heads, each against its own per-scenario label column
(``scernario_<m>_is_<t>``, ``default_value: 0`` when a record lacks it). msmtrec data carry each
row's labels for the row's own scenario only, so head ``(m, t)`` sees a row of scenario ``m``
with its label of task ``t`` (masked when missing) and a row of any other scenario as a
negative — what the code computes on such data. Only in that mode are all ``M·T`` heads computed
for every sample, and the output is a :class:`HiNetOutput`.

Input: the released code feeds the raw numeric features of its sample schema through
``tf.layers.batch_normalization`` called without ``training=True``, so in training too it
normalises with its initial running statistics (mean 0, variance 1) and never updates them: an
affine layer (``input_norm="affine"``, :class:`~msmtrec.nn.norm.FrozenBatchNorm`). Here
categorical fields are embedded (``embed_dim``, default 16; the code's ``embedding_size`` flag is
unused) and concatenated with the numeric ones.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, Preset, masked_bce_with_logits, register_model
from msmtrec.models.options import Count, Rate, Size, Sizes
from msmtrec.nn import CGCStack, ScenarioGroups, TowerBank
from msmtrec.nn.fused_sei import FusedSEIBank
from msmtrec.nn.norm import FrozenBatchNorm
from msmtrec.nn.san import ScenarioAttention
from msmtrec.nn.scenario_cgc import ScenarioCGC

TASK_LAYOUTS = ("pair", "scenario")
INPUT_NORMS = ("none", "batch_norm", "affine")


class HiNetOutput(NamedTuple):
    """Output with ``loss_on_all_heads``: ``logits [B, T]`` of the sample's own scenario and
    ``all_logits [B, M, T]`` of every scenario's heads."""

    logits: torch.Tensor
    all_logits: torch.Tensor


@register_model("hinet")
class HiNet(MSMTModel):
    """Args (defaults from the official code, ``models.md`` §2.5, unless marked; ``--preset code``
    switches every marked one to the code's behaviour):
        embed_dim: embedding dimension per categorical field (16; the code feeds raw features).
        input_norm: normalisation of the concatenated input: ``none`` (default), ``batch_norm``
            (a training-mode BatchNorm) or ``affine`` (the code's: see the module docstring).
        sub_experts: sub-experts ``K`` in every SEI (shared and per scenario): 5.
        sub_expert_dims: widths of each sub-expert MLP: ``128, 64``.
        sei_dropout: dropout after every sub-expert layer in training: 0.5 (keep-prob 0.5 in code).
        gate_activation: ``identity`` (linear → softmax; library default) or ``relu`` (the code's
            ReLU before the softmax), for the SEI and CGC gates.
        scenario_embed_dim: width of the scenario-indicator embedding that drives SAN: 64.
        san_gate_dims: hidden widths of SAN's gate MLP (a linear ``M``-wide layer follows):
            ``128, 64`` (the code has ``128, 64, 1`` and a ReLU output, see ``san_gate_activation``).
        san_gate_activation: ``identity`` (default) or ``relu`` on SAN's gate logits (code).
        san_mask: ``after_softmax`` (code: own weight zeroed after the softmax) or
            ``before_softmax`` (weights of the other scenarios renormalised to sum to 1).
        task_layout: ``pair`` (code) or ``scenario`` (see the module docstring).
        task_levels: CGC levels of the task extraction layer (``pair`` layout): 1 (code's
            ``level_number``).
        cgc_gate: ``softmax`` (paper; default) or ``sum`` (code: every expert weight 1).
        specific_experts: task-specific experts per head: 2.
        shared_experts: task-shared experts (per model in ``pair``, per scenario in ``scenario``): 2.
        expert_dims: widths of each task expert MLP: ``128, 64``.
        expert_dropout: dropout inside the task experts: 0 (the code has none).
        tower_dims: hidden widths of each (scenario, task) tower, then a logit: ``128, 64``.
        tower_dropout: dropout in the towers: 0 (the code's flag is never used).
        loss_on_all_heads: train every scenario's heads on every sample against per-scenario
            labels (code; see the module docstring) instead of the sample's own scenario's heads
            only (default).
    """

    inputs = ("the scenario experts (shared and specific) and so the scenario-aware attentive network (after the "
              "optional input normalisation).")

    #: ``--preset code``: the released code's training settings (Adam at 1e-4, batch 4096, a fixed
    #: 8 epochs, no L2 reaching the loss) and its behaviour where the defaults differ.
    presets = {"code": Preset(
        settings={"lr": 1e-4, "batch_size": 4096, "max_epochs": 8, "patience": 8, "weight_decay": 0.0,
                  "model_params": {"input_norm": "affine", "gate_activation": "relu", "san_gate_dims": [128, 64, 1],
                                   "san_gate_activation": "relu", "cgc_gate": "sum", "loss_on_all_heads": True}},
        source="mrchor/HiNet src/HiNet.py: flags learning_rate, batch_size, num_epochs, scenario_gate_units; "
               "ReLU gates, singleton-axis CGC softmax, inference-mode input BatchNorm, loss over all 12 heads")}

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, input_norm: str = "none",
                 sub_experts: Size = 5, sub_expert_dims: Sizes = (128, 64), sei_dropout: Rate = 0.5,
                 gate_activation: str = "identity", scenario_embed_dim: Size = 64,
                 san_gate_dims: Sizes = (128, 64), san_gate_activation: str = "identity",
                 san_mask: str = "after_softmax", task_layout: str = "pair", task_levels: Size = 1,
                 cgc_gate: str = "softmax", specific_experts: Count = 2, shared_experts: Count = 2,
                 expert_dims: Sizes = (128, 64), expert_dropout: Rate = 0.0,
                 tower_dims: Sizes = (128, 64), tower_dropout: Rate = 0.0,
                 loss_on_all_heads: bool = False) -> None:
        super().__init__(schema)
        if task_layout not in TASK_LAYOUTS:
            raise ValueError(f"task_layout must be one of {', '.join(TASK_LAYOUTS)}, got '{task_layout}'")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got '{input_norm}'")
        if task_levels > 1 and task_layout != "pair":
            raise ValueError(f"task_levels must be 1 with task_layout 'scenario', got {task_levels}")
        m, t = self.num_scenarios, self.num_tasks
        self.task_layout = task_layout
        self.loss_on_all_heads = bool(loss_on_all_heads)

        self.embedding = self.make_embedding(schema, embed_dim)
        d = self.embedding.output_dim
        self.input_norm = {"none": nn.Identity, "batch_norm": nn.BatchNorm1d, "affine": FrozenBatchNorm}[input_norm](
            *(() if input_norm == "none" else (d,)))

        # Scenario extraction layer. SEI 0 is the scenario-shared expert, SEI 1 + j scenario j's
        # specific expert: one bank, so all (M+1)·K sub-experts run as one matmul per layer
        # (FusedSEIBank: SEIBank's parameters and results with fewer passes over the activations).
        self.scenario_experts = FusedSEIBank(m + 1, d, sub_experts, sub_expert_dims, gate_activation=gate_activation,
                                             dropout=sei_dropout)
        self.san = ScenarioAttention(m, scenario_embed_dim, san_gate_dims, mask=san_mask,
                                     output_activation=san_gate_activation)
        rep = 3 * self.scenario_experts.output_dim  # [A ; S ; G]

        # Task extraction layer.
        if task_layout == "pair":
            self.task_experts = CGCStack(task_levels, m, t, rep, specific_experts, shared_experts, expert_dims,
                                         gate_activation=gate_activation, gate=cgc_gate, dropout=expert_dropout)
        else:
            self.task_experts = ScenarioCGC(m, t, rep, specific_experts, shared_experts, expert_dims,
                                            gate_activation=gate_activation, gate=cgc_gate, dropout=expert_dropout)
        self.towers = TowerBank(m * t, self.task_experts.output_dim, tower_dims, 1, dropout=tower_dropout)

    # -- stages ---------------------------------------------------------------------------------
    def scenario_representation(self, x: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """``C = [A ; S_own ; G]`` ``[B, 3·64]`` from the (normalised) input ``x [B, in]``."""
        seis = self.scenario_experts(x)  # [B, 1+M, 64]
        shared, specific = seis[:, 0], seis[:, 1:]
        own = specific[torch.arange(x.shape[0], device=x.device), scenario]
        transfer = self.san(specific, scenario)
        return torch.cat([transfer, own, shared], dim=1)

    def heads(self, chunks: list[tuple[int, torch.Tensor]]) -> list[torch.Tensor]:
        """Task extraction and towers: for each ``(s, c_s)``, the logits ``[n_s, T]`` of scenario
        ``s``'s heads on the rows ``c_s``."""
        t = self.num_tasks
        if self.task_layout == "pair":
            hidden = self.task_experts(chunks)
        else:
            hidden = [self.task_experts(c, slice(s, s + 1)) for s, c in chunks]
        return [self.towers(h, slice(s * t, (s + 1) * t)).squeeze(-1) for (s, _), h in zip(chunks, hidden)]

    def forward(self, batch: EncodedData) -> torch.Tensor | HiNetOutput:
        x = self.input_norm(self.embedding(batch))
        c = self.scenario_representation(x, batch.scenario)
        if self.loss_on_all_heads:
            all_logits = torch.stack(self.heads([(s, c) for s in range(self.num_scenarios)]), dim=1)  # [B, M, T]
            own = all_logits[torch.arange(c.shape[0], device=c.device), batch.scenario]
            return HiNetOutput(own, all_logits)
        groups = ScenarioGroups(batch.scenario, self.num_scenarios, rowwise=True)
        present = groups.present
        chunks = groups.split(c)
        return groups.merge(self.heads([(s, chunks[s]) for s in present]))

    # -- contract -------------------------------------------------------------------------------
    def probabilities(self, output: torch.Tensor | HiNetOutput) -> torch.Tensor:
        return torch.sigmoid(output.logits if isinstance(output, HiNetOutput) else output)

    def task_losses(self, output: torch.Tensor | HiNetOutput, batch: EncodedData) -> torch.Tensor:
        if not isinstance(output, HiNetOutput):
            return super().task_losses(output, batch)
        # Head (m, t) against its per-scenario label: the row's own label in its scenario's head
        # (masked when missing), 0 in every other scenario's head; task t's loss sums its M heads'
        # mean BCEs (the code sums every head's loss).
        logits = output.all_logits
        own = F.one_hot(batch.scenario, self.num_scenarios).bool().unsqueeze(-1)  # [B, M, 1]
        labels = torch.where(own, batch.labels.unsqueeze(1), torch.zeros_like(logits))
        mask = torch.where(own, batch.label_mask.unsqueeze(1), torch.ones_like(own))
        per_head = masked_bce_with_logits(logits.flatten(1), labels.flatten(1), mask.flatten(1))
        return per_head.view(self.num_scenarios, self.num_tasks).sum(0)

    def shared_layer(self) -> tuple[torch.Tensor, slice]:
        """The scenario-shared SEI's last sub-expert layer: rows ``0..K-1`` of the fused bank's last
        weight (the bank holds every scenario's SEIs after it)."""
        return self.scenario_experts.experts.weights[-1], slice(0, self.scenario_experts.k)

