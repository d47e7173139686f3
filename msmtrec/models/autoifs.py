"""AutoIFS — Automated Information Flow Selection for multi-scenario multi-task recommendation
(Yang, Liu et al., arXiv 2512.13396, WSDM 2026). Spec: ``models.md`` §4 of the design notes
(``../shared/docs/``, beside the repository); user notes: ``docs/models/autoifs.md``. The architecture
follows the official code (``ChaohuaYang/AutoIFS``); its selection does not select (no gate decision
changes during its search), so the default *selection* is the one that recovered a planted flow
structure without losing AUC in the issue 16 study (``benchmarks/autoifs_selection.py``): a table
of gates searched under a pruning pressure, its ticket then checked against the validation loss
(``ticket_from``) — and ``--preset code`` gives the code's.

Four information units, LoRA-decoupled (paper §4.1):
    scenario-shared  f_s^sh(h) = W_s h + b_s                 full rank
    scenario-specific f_s^k(h) = (h A_s^k) B_s^k + c_s^k     rank r, one per scenario k
    task-shared      f_t^sh(u) = W_t u + b_t                 full rank
    task-specific    f_t^m(u)  = (u A_t^m) B_t^m + c_t^m     rank r, one per task m
and the four information flows they make for a sample of scenario k and task m:
    φ_{sh,sh} = f_t^sh(u_sh)   φ_{sh,m} = f_t^m(u_sh)   φ_{k,sh} = f_t^sh(u_k)   φ_{k,m} = f_t^m(u_k)
(``FLOWS`` below names them in this order). A selector decides which flows to drop: per
(scenario, task) — a learned table of logits, ``selector="table"`` (default) — or per sample — the
paper's selection network on the stop-gradient embedding (``instance``: its heads start at 0;
``code``: PyTorch's random initialisation, as released).

Stages (B batch, D = F·d (+ numeric) input width, defaults mlp_dims = [1024, 512, 256], r = 2):
    embedding            x = [B, D]
    shared bottom        h0 = MLP_{1024,512}(x)                                  [B, 512]
    scenario layer       u_sh = W_s h0 + b_s;  u_k = (h0 A_s^k) B_s^k + c_s^k    [B, 256] each
                         (A/B of the sample's scenario, gathered per sample);
                         h1 = ReLU(u_sh + u_k)                                   [B, 256]
    task layer           z_m = W_t h1 + b_t + (h1 A_t^m) B_t^m + c_t^m           [B, T]
                         flows φ_j from the *pre-activation* units u_sh, u_k     [B, T, 4]
    selector             w = table[scenario] (default) or
                         w = heads(MLP_{1024,512}(stopgrad(x)))                  [B, T, 4]
    pruning              g = sigmoid(τ·w) (search) or 1[w > 0] (retrain)         [B, T, 4]
    output               logit_m = z_m − Σ_j g_{m,j} φ_{m,j}                     [B, T]

(shown for ``decomposition="code"``). So a gate of **1 removes** a flow from the full prediction ``z``
(the code's convention). The code's decomposition is not exact — ``z`` goes through the ReLU, the
flows do not, and the task biases appear in several flows — so pruning every flow still leaves a
full predictor ``z − Σφ``; ``decomposition="code"`` reproduces that. ``decomposition="linear"``
(default; a deviation, in neither the paper nor the code) makes it exact: no ReLU between the
scenario and task layers, every bias counted once, and
``logit_m = b_t + c_t^m + Σ_j (1 − g_{m,j}) φ_{m,j}`` with bias-free flows, so a gate of 0 keeps a
flow whole and a gate of 1 removes exactly that flow; a hard ticket never removes every flow of a
(sample, task) (:meth:`AutoIFS.pruned`).

Training (two stages, lottery-ticket style; :meth:`AutoIFS.training_stages`):
    search   ``search_epochs`` epochs, no early stopping; soft gates with τ rising geometrically
             from 1 to ``final_temp`` (τ_e = final_temp^{e/(E−1)}); the selection network in its own
             parameter group (lr × ``gate_lr_scale``, no weight decay), left untrained for the
             first ``gate_warmup_epochs``; gate penalty λ_m·mean_j(c_j·mean(g_{m,j})) with a cost
             c_j per flow, returned with the logits (:class:`AutoIFSOutput`) for ``aux_loss``
             (λ < 0 is a pressure to prune; the default costs make a flow dearer the more
             specific units it passes through); a snapshot of the whole model at the start of
             epoch ``rewind_epoch``; the share of gate decisions changed since the start is logged
             every epoch and kept for the flow report.
             At the end the selection network and a frozen copy of the embedding table are kept;
             with ``ticket_from="validation"`` the table's ticket loses the units that a refit of
             the task layer on validation rows says a (scenario, task) does not need
             (:meth:`AutoIFS.ticket_from_validation`, ``msmtrec/models/flow_ticket.py``).
    retrain  the rewind snapshot is restored, the selection network (end-of-search weights) reads
             its frozen embedding copy and gives hard gates; everything else trains with
             ``retrain_lr`` / ``retrain_weight_decay``, early stopping on validation, best
             weights restored.

Generalised from the code's hard-wired 3 scenarios × 2 tasks to any S × T (one selection head per
task). ``flow_report`` says which flows the selection network keeps, per (scenario, task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.models.autoifs_stages import search_then_retrain
from msmtrec.models.base import MSMTModel, Preset, register_model
from msmtrec.models.flow_ticket import check_ticket
from msmtrec.models.options import Count, NonNegative, Positive, Rate, Size, Sizes
from msmtrec.models.stages import Stage
from msmtrec.nn import MLP, ScenarioGroups
from msmtrec.nn.dropout import BitDropout
from msmtrec.nn.grouping import capturing
from msmtrec.nn.lora import FlowGateTable, FlowSelector, LoRABank, flow_gates
from msmtrec.report.flows import flow_selection, flow_selection_summary

#: Search epochs before the selector trains, unless the search is shorter (``gate_warmup_epochs``).
DEFAULT_WARMUP_EPOCHS = 3

FLOWS = (
    "scen_shared->task_shared",
    "scen_shared->task_specific",
    "scen_specific->task_shared",
    "scen_specific->task_specific",
)
DECOMPOSITIONS = ("code", "linear")
SELECTORS = ("code", "instance", "table")
SCENARIO_ROUTINGS = ("gather", "group")


class AutoIFSOutput(NamedTuple):
    """``logits [B, T]`` and the search-stage gate penalty ``Σ_m λ_m·mean(g_m)`` (a scalar; None
    outside search training or when every λ is 0), which :meth:`AutoIFS.aux_loss` returns."""

    logits: torch.Tensor
    gate_penalty: torch.Tensor | None


@register_model("autoifs")
class AutoIFS(MSMTModel):
    """Args (defaults: the official code's, ``models.md`` §4.4):
        embed_dim: embedding dimension per field (16; Xavier-uniform init as in the code).
        mlp_dims: ``[bottom..., scenario]`` widths: the shared bottom is ``mlp_dims[:-1]``, the
            scenario layer outputs ``mlp_dims[-1]``, the task layer outputs one logit
            (``[1024, 512, 256]``).
        lora_rank: rank ``r`` of the scenario- and task-specific units (2).
        selector_dims: hidden widths of the selection network (None: the shared bottom's).
        dropout: dropout after each hidden layer (0).
        batch_norm: BatchNorm in the shared bottom, the scenario layer and the selector (off).
        decomposition: ``linear`` (exact linear decomposition, default; a deviation, see the
            module docstring) or ``code`` (gate 1 removes a flow from the full prediction, as
            released).
        scenario_routing: how the scenario-specific LoRA is applied: ``gather`` (A/B picked per
            sample, two batched matmuls) or ``group`` (batch split by scenario). Same result.
        search_epochs: epochs of the search stage (10).
        final_temp: temperature τ at the last search epoch (100; τ starts at 1).
        rewind_epoch: 0-based search epoch at whose start the rewind snapshot is taken (None: the
            last, ``search_epochs − 1``, as the code's ``rewind = 9``).
        search_lr / search_weight_decay: Adam lr / L2 of the model weights in search (3e-4 / 3e-5).
        gate_lr_scale: selector lr = ``search_lr × gate_lr_scale`` (1; the code's 0.01), no L2.
        retrain_lr / retrain_weight_decay: Adam lr / L2 in retraining (1e-4 / 3e-4).
        retrain_epochs: max retrain epochs (None: the run config's ``max_epochs``; the code uses
            50 with a patience of 1 — set ``patience`` in the run config).
        selector: ``table`` (one logit per (scenario, task, flow), zero at the start; default),
            ``instance`` (the per-sample selection network with zero-initialised heads) or
            ``code`` (the selection network as released).
        gate_warmup_epochs: search epochs at the start in which the selector is not trained, so
            that the flows carry what they can before the gates judge them (null: 3, or
            ``search_epochs − 1`` in a shorter search; the code's 0).
        gate_penalty: λ of the search-stage penalty ``λ_m·mean_j(c_j·mean(sigmoid(τ w_{m,j})))``,
            one float for every task or one per task (−0.01; the code's 0). Negative λ pushes
            towards pruning, positive discourages it (g = 1 prunes).
        flow_costs: ``c_j`` per flow in ``FLOWS`` order: sh→sh, sh→task, scen→sh, scen→task
            (``0, 1, 1, 2``: the number of specific units a flow passes through, so a specific
            flow must earn its place and the shared one is free; the code's penalty is uniform).
        ticket_from: how the ticket is drawn at the end of search: ``gates`` (the selector's hard
            decisions, as in the paper and the code) or ``validation`` (the gates' ticket less the
            units — task-specific, scenario-specific — that a (scenario, task) does not need by a
            refit of the task layer on validation rows: ``msmtrec/models/flow_ticket.py``; table
            selector and linear decomposition only). None: ``validation`` where it applies, else
            ``gates``.
        ticket_tolerance: the relative rise of a pair's refit validation log-loss without a unit
            under which the pair does without it (0.01).

    The run config's ``lr`` / ``weight_decay`` are not used: each stage has its own (above).
    """

    inputs = ("the shared bottom, then the scenario layers; a selection network other than the default table "
              "reads it stop-gradient while searching, and from the frozen copy of the table once the ticket "
              "is drawn.")

    #: ``--preset code``: the released trainer's settings (batch 4096, up to 50 retrain epochs
    #: stopped at the first epoch without improvement) and its selector, whatever the defaults.
    presets = {"code": Preset(
        settings={"batch_size": 4096, "max_epochs": 50, "patience": 1,
                  "model_params": {"selector": "code", "decomposition": "code", "gate_lr_scale": 0.01,
                                   "gate_warmup_epochs": 0, "gate_penalty": 0.0, "flow_costs": [1.0, 1.0, 1.0, 1.0],
                                   "ticket_from": "gates", "final_temp": 100.0, "search_epochs": 10}},
        source="ChaohuaYang/AutoIFS autoifs_trainer.py: bsize 4096, max_epoch 50 with early stop, search_epoch 10, "
               "final_temp 100, reg_lambda 0, gate lr 0.01 x lr; modules/autoifs.py gate heads and flows")}

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, mlp_dims: Sizes = (1024, 512, 256),
                 lora_rank: Size = 2, selector_dims: Sizes | None = None, dropout: Rate = 0.0,
                 batch_norm: bool = False, decomposition: str = "linear", scenario_routing: str = "group",
                 search_epochs: Size = 10, final_temp: Positive = 100.0, rewind_epoch: Count | None = None,
                 search_lr: Positive = 3e-4, search_weight_decay: NonNegative = 3e-5, gate_lr_scale: Positive = 1.0,
                 retrain_lr: Positive = 1e-4, retrain_weight_decay: NonNegative = 3e-4, retrain_epochs: Size | None = None,
                 selector: str = "table", gate_warmup_epochs: Count | None = None, gate_penalty: float | Sequence[float] = -0.01,
                 flow_costs: Sequence[NonNegative] = (0.0, 1.0, 1.0, 2.0),
                 ticket_from: Literal["gates", "validation"] | None = None, ticket_tolerance: NonNegative = 0.01) -> None:
        super().__init__(schema)  # single options' ranges: their declared types (models/options.py)
        mlp_dims = list(mlp_dims)
        if len(mlp_dims) < 2 or any(int(w) < 1 for w in mlp_dims):
            raise ValueError(f"mlp_dims must hold >= 2 positive widths (bottom..., scenario layer), got {mlp_dims}")
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(f"decomposition must be one of {', '.join(DECOMPOSITIONS)}, got '{decomposition}'")
        if selector not in SELECTORS:
            raise ValueError(f"selector must be one of {', '.join(SELECTORS)}, got '{selector}'")
        if scenario_routing not in SCENARIO_ROUTINGS:
            raise ValueError(f"scenario_routing must be one of {', '.join(SCENARIO_ROUTINGS)}, got '{scenario_routing}'")
        rewind_epoch = search_epochs - 1 if rewind_epoch is None else rewind_epoch
        if not 0 <= rewind_epoch < search_epochs:
            raise ValueError(f"rewind_epoch must be in [0, {search_epochs - 1}] (a 0-based search epoch), got {rewind_epoch}")
        if gate_warmup_epochs is None:  # 3, or fewer in a shorter search (the selector trains at least once)
            gate_warmup_epochs = min(DEFAULT_WARMUP_EPOCHS, search_epochs - 1)
        if not 0 <= gate_warmup_epochs < search_epochs:
            raise ValueError(f"gate_warmup_epochs must be in [0, {search_epochs - 1}] (fewer than the search epochs), "
                             f"got {gate_warmup_epochs}")
        checkable = selector == "table" and decomposition == "linear"
        if ticket_from is None:
            ticket_from = "validation" if checkable else "gates"
        if ticket_from == "validation" and not checkable:
            raise ValueError(f"ticket_from 'validation' needs selector 'table' and decomposition 'linear' (one ticket row "
                             f"per (scenario, task), flows that add up), got selector '{selector}', decomposition "
                             f"'{decomposition}'; use ticket_from 'gates'")
        self.ticket_from, self.ticket_tolerance = ticket_from, float(ticket_tolerance)
        penalty = [float(gate_penalty)] * self.num_tasks if isinstance(gate_penalty, (int, float)) else [float(v) for v in gate_penalty]
        if len(penalty) != self.num_tasks:
            raise ValueError(f"gate_penalty must be one float or one per task ({self.num_tasks}), got {len(penalty)} values")

        self.decomposition, self.scenario_routing = decomposition, scenario_routing
        self.search_epochs, self.final_temp, self.rewind_epoch = search_epochs, float(final_temp), rewind_epoch
        self.search_lr, self.search_weight_decay, self.gate_lr_scale = search_lr, search_weight_decay, gate_lr_scale
        self.retrain_lr, self.retrain_weight_decay, self.retrain_epochs = retrain_lr, retrain_weight_decay, retrain_epochs

        # Embedding (one table shared by every scenario and task).
        self.embedding = self.make_embedding(schema, embed_dim)
        nn.init.xavier_uniform_(self.embedding.table.weight)
        d = self.embedding.output_dim
        bottom, scen_width = mlp_dims[:-1], mlp_dims[-1]

        # Shared bottom.
        self.bottom = MLP(d, bottom, dropout=dropout, batch_norm=batch_norm)
        h = self.bottom.output_dim
        # Scenario layer: full-rank shared unit + one rank-r unit per scenario.
        self.scenario_shared = nn.Linear(h, scen_width)
        self.scenario_specific = LoRABank(self.num_scenarios, h, scen_width, lora_rank)
        self.scenario_norm = nn.BatchNorm1d(scen_width) if batch_norm and decomposition == "code" else nn.Identity()
        self.scenario_dropout = BitDropout(dropout) if dropout > 0 and decomposition == "code" else nn.Identity()
        # Task layer: full-rank shared unit (one logit) + one rank-r unit per task.
        self.task_shared = nn.Linear(scen_width, 1)
        self.task_specific = LoRABank(self.num_tasks, scen_width, 1, lora_rank)
        for lin in (self.scenario_shared, self.task_shared):
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

        # Information-flow selection network and its frozen copy of the embedding table (filled at
        # the end of the search stage; a buffer, so checkpoints carry it).
        self.selector_kind = selector
        self.gate_warmup_epochs = gate_warmup_epochs
        if selector == "table":
            self.selector = FlowGateTable(self.num_scenarios, self.num_tasks, len(FLOWS))
        else:
            self.selector = FlowSelector(d, list(selector_dims) if selector_dims is not None else bottom, self.num_tasks,
                                         len(FLOWS), dropout=dropout, batch_norm=batch_norm,
                                         zero_heads=selector == "instance")
        # (The table selector reads no features: its copy stays empty.)
        self.register_buffer("selector_table", self.embedding.table.weight.detach().clone() if selector != "table"
                             else torch.empty(0))
        self.register_buffer("gate_penalty", torch.tensor(penalty))
        if len(flow_costs) != len(FLOWS) or any(float(c) < 0 for c in flow_costs):
            raise ValueError(f"flow_costs must be {len(FLOWS)} numbers >= 0 (one per flow, in the order "
                             f"{', '.join(FLOWS)}), got {list(flow_costs)}")
        self.register_buffer("flow_costs", torch.tensor([float(c) for c in flow_costs]))
        # Gate mode lives in buffers so that a checkpoint restores it: soft with temperature τ,
        # or hard ("ticket", retraining and inference after it).
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("ticket", torch.tensor(False))
        # Share of the selector's hard decisions (on the first validation rows) that differ at the
        # end of search from the start; NaN until a search stage has run.
        self.register_buffer("gates_changed", torch.tensor(float("nan")))

    # -- forward, in the order of the figure ------------------------------------------------------
    def scenario_units(self, x: torch.Tensor, scenario: torch.Tensor,
                       counts: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Shared bottom then scenario layer: ``(u_sh, u_k)``, both ``[B, W]``, pre-activation.

        With ``counts`` the rows are sorted by scenario and ``counts[s]`` rows of scenario ``s``
        follow each other: each scenario's LoRA runs on its own contiguous block. Without, routing
        ``group`` takes each scenario's rows out and puts them back (:class:`ScenarioGroups`, as a
        captured graph does) and ``gather`` picks A/B per row."""
        h0 = self.bottom(x)
        u_sh = self.scenario_shared(h0)
        if counts is not None:
            u_k = torch.cat([self.scenario_specific.group(h, s) for s, h in enumerate(h0.split(counts))])
        elif self.scenario_routing == "group":
            groups = ScenarioGroups(scenario, self.num_scenarios)
            u_k = groups.apply(lambda s, h: self.scenario_specific.group(h, s), h0)
        else:
            u_k = self.scenario_specific(h0, scenario)
        return u_sh, u_k

    def task_flows(self, u_sh: torch.Tensor, u_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Task layer: ``(base [B, T] or [T], flows [B, T, 4])`` in ``FLOWS`` order.

        ``code``: ``base`` is the full prediction ``z`` (through ReLU(u_sh + u_k)) and every flow
        includes its target unit's bias. ``linear``: ``base`` is the bias ``b_t + c_t^m`` and the
        flows are bias-free, so ``base + Σ_j flows_j`` is the whole model."""
        b, t = u_sh.shape[0], self.num_tasks
        if self.decomposition == "code":
            h1 = self.scenario_dropout(torch.relu(self.scenario_norm(u_sh + u_k)))
            stacked = torch.stack([h1, u_sh, u_k])                              # [3, B, W]
            shared = self.task_shared(stacked).squeeze(-1)                       # [3, B]
            specific = self.task_specific.all_groups(stacked).squeeze(-1)        # [3, B, T]
            base = shared[0, :, None] + specific[0]                              # z, [B, T]
            shared, specific = shared[1:], specific[1:]
        else:
            stacked = torch.stack([u_sh, u_k])                                  # [2, B, W]
            shared = F.linear(stacked, self.task_shared.weight).squeeze(-1)      # [2, B]
            specific = self.task_specific.all_groups(stacked, with_bias=False).squeeze(-1)  # [2, B, T]
            base = self.task_shared.bias + self.task_specific.bias.squeeze(-1)  # [T]
        # shared / specific: index 0 = from u_sh, 1 = from u_k.
        sh_sh, k_sh = shared[0, :, None].expand(b, t), shared[1, :, None].expand(b, t)
        sh_m, k_m = specific[0], specific[1]
        return base, torch.stack([sh_sh, sh_m, k_sh, k_m], dim=-1)

    def selection_logits(self, batch: EncodedData, x: torch.Tensor | None = None) -> torch.Tensor:
        """Selection network output ``w [B, T, 4]``: on the stop-gradient embedding while
        searching, on the frozen end-of-search embedding copy once the ticket is drawn."""
        if self.selector_kind == "table":
            with torch.set_grad_enabled(torch.is_grad_enabled() and not bool(self.ticket)):
                return self.selector(batch.scenario)
        if bool(self.ticket):
            with torch.no_grad():
                return self.selector(self.embedding(batch, weight=self.selector_table))
        if x is None:
            x = self.embedding(batch)
        return self.selector(x.detach())

    def pruned(self, w: torch.Tensor) -> torch.Tensor:
        """Hard decisions ``[B, T, 4]`` (True = prune, ``w > 0``). In the linear decomposition a
        (sample, task) whose every flow would go keeps its flow with the lowest ``w``: with no
        flow its prediction would be a constant. (In the code decomposition ``z − Σφ`` remains, and
        the decisions are the code's; the flow report warns instead.)"""
        prune = w > 0
        if self.decomposition == "linear":
            lowest = F.one_hot(w.argmin(dim=-1), w.shape[-1]).bool()
            prune = prune & ~(prune.all(dim=-1, keepdim=True) & lowest)
        return prune

    def gates(self, w: torch.Tensor) -> torch.Tensor:
        """The pruning function applied to selection logits (1 = remove the flow): soft while
        searching, the hard decisions of :meth:`pruned` once the ticket is drawn."""
        if bool(self.ticket):
            return self.pruned(w).to(w.dtype)
        return flow_gates(w, self.temperature, hard=False)

    def forward(self, batch: EncodedData) -> AutoIFSOutput:
        groups = None
        if self.scenario_routing == "group" and not capturing():  # a graph cannot sort: scenario_units groups
            # Sort the (small) batch tensors once by scenario; every scenario's rows are then a
            # contiguous block, and only the [B, T] logits are put back in row order at the end.
            groups = ScenarioGroups(batch.scenario, self.num_scenarios)
            batch = batch.take(groups.order)
        x = self.embedding(batch)
        u_sh, u_k = self.scenario_units(x, batch.scenario, None if groups is None else groups.counts)
        base, flows = self.task_flows(u_sh, u_k)
        g = self.gates(self.selection_logits(batch, x))
        if self.decomposition == "code":
            logits = base - (g * flows).sum(-1)
        else:
            logits = base + ((1 - g) * flows).sum(-1)
        penalty = None
        if self.training and not bool(self.ticket) and bool(self.gate_penalty.any()):
            # λ_m · mean_j(c_j · mean_b g_{b,m,j}); the means are order-free (rows may be sorted).
            penalty = ((g.mean(dim=0) * self.flow_costs).mean(dim=-1) * self.gate_penalty).sum()
        return AutoIFSOutput(logits if groups is None else groups.restore(logits), penalty)

    def probabilities(self, output: AutoIFSOutput) -> torch.Tensor:
        return torch.sigmoid(output.logits)

    def task_losses(self, output: AutoIFSOutput, batch: EncodedData) -> torch.Tensor:
        return super().task_losses(output.logits, batch)

    def aux_loss(self, output: AutoIFSOutput) -> torch.Tensor | None:
        return output.gate_penalty

    def shared_layer(self) -> torch.Tensor:
        return self.scenario_shared.weight

    def train(self, mode: bool = True) -> "AutoIFS":
        super().train(mode)
        if bool(self.ticket):
            self.selector.eval()  # frozen: no dropout, no BatchNorm statistics update
        return self

    # -- two-stage training -------------------------------------------------------------------------
    def temperature_at(self, epoch: int) -> float:
        """τ of 0-based search epoch ``epoch``: ``final_temp^{epoch/(search_epochs−1)}``."""
        if self.search_epochs == 1:
            return 1.0
        return self.final_temp ** (min(epoch, self.search_epochs - 1) / (self.search_epochs - 1))

    def main_parameters(self) -> list[nn.Parameter]:
        selector = {id(p) for p in self.selector.parameters()}
        return [p for p in self.parameters() if id(p) not in selector and p.requires_grad]

    def start_search(self) -> None:
        self.ticket.fill_(False)
        self.temperature.fill_(1.0)
        for p in self.selector.parameters():
            p.requires_grad_(True)

    def draw_ticket(self) -> None:
        """End of search: keep a frozen copy of the current embedding table for a network selector."""
        if self.selector_kind != "table":
            self.selector_table.copy_(self.embedding.table.weight.detach())

    def ticket_from_validation(self, data: EncodedData) -> int:
        """The ticket checked against ``data`` (:func:`check_ticket`); returns how many
        (scenario, task, flow) decisions changed."""
        return check_ticket(self, data)

    def start_retrain(self, rewind: dict[str, torch.Tensor] | None = None) -> None:
        """Restore the rewind snapshot (except the selector, its embedding copy and the record of
        changed decisions, which keep their end-of-search values), switch to hard gates and
        freeze the selector."""
        if rewind is not None:
            keep = {k: v for k, v in self.snapshot().items()
                    if k.startswith("selector.") or k in ("selector_table", "gates_changed")}
            self.load_state_dict({**rewind, **keep})
        self.ticket.fill_(True)
        for p in self.selector.parameters():
            p.requires_grad_(False)
            p.grad = None
        self.selector.eval()

    def training_stages(self, config: Any) -> list[Stage]:
        return search_then_retrain(self)

    # -- what AutoIFS tells its user ------------------------------------------------------------------
    @torch.no_grad()
    def gate_decisions(self, data: EncodedData, batch_size: int = 16384) -> torch.Tensor:
        """The hard decisions ``[N, T, 4]`` (True = prune, :meth:`pruned`) of the selector as it stands
        (during search: the ticket it would draw now), on CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            return torch.cat([self.pruned(self.selection_logits(batch.to(device))).cpu()
                              for batch in iterate_batches(data, batch_size, shuffle=False)])
        finally:
            self.train(was_training)

    def flow_report(self, data: EncodedData, batch_size: int = 16384) -> dict[str, Any]:
        """Per (scenario, task): the share of samples for which each flow is **kept** (hard gate 0,
        ``w ≤ 0``) and the share that keep none; with how many decisions search changed
        (:func:`msmtrec.report.flows.flow_selection`)."""
        return flow_selection(self.gate_decisions(data, batch_size), data.scenario.cpu(), self.schema, FLOWS,
                              decomposition=self.decomposition, selector=self.selector_kind,
                              gates_changed=float(self.gates_changed), ticket_from=self.ticket_from)

    def parameter_report(self) -> dict[str, int]:
        selector = sum(p.numel() for p in self.selector.parameters())
        total = self.num_parameters()
        return {"total": total, "selector": selector, "predictor": total - selector,
                "selector_embedding_copy": int(self.selector_table.numel())}

    def extra_report(self, data: EncodedData, run_dir: str | Path | None = None) -> dict[str, Any]:
        """Flow selection on ``data`` (+ heatmap ``flow_selection.png`` in ``run_dir`` when
        matplotlib is installed) and the parameter split."""
        return flow_selection_summary(self.flow_report(data), self.parameter_report(), run_dir)


__all__ = ["AutoIFS", "AutoIFSOutput", "FLOWS"]
