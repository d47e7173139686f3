"""AutoIFS — Automated Information Flow Selection for multi-scenario multi-task recommendation
(Yang, Liu et al., arXiv 2512.13396, WSDM 2026). Spec: ``models.md`` §4 of the design notes
(``../shared/docs/``, beside the repository); user notes: ``docs/models/autoifs.md``. Where the
paper's text and the official code (``ChaohuaYang/AutoIFS``) differ, the default follows
the code, so results are comparable with it.

Four information units, LoRA-decoupled (paper §4.1):
    scenario-shared  f_s^sh(h) = W_s h + b_s                 full rank
    scenario-specific f_s^k(h) = (h A_s^k) B_s^k + c_s^k     rank r, one per scenario k
    task-shared      f_t^sh(u) = W_t u + b_t                 full rank
    task-specific    f_t^m(u)  = (u A_t^m) B_t^m + c_t^m     rank r, one per task m
and the four information flows they make for a sample of scenario k and task m:
    φ_{sh,sh} = f_t^sh(u_sh)   φ_{sh,m} = f_t^m(u_sh)   φ_{k,sh} = f_t^sh(u_k)   φ_{k,m} = f_t^m(u_k)
(``FLOWS`` below names them in this order). An information-flow selection network decides, per
sample and per task, which flows to drop.

Stages (B batch, D = F·d (+ numeric) input width, defaults mlp_dims = [1024, 512, 256], r = 2):
    embedding            x = [B, D]
    shared bottom        h0 = MLP_{1024,512}(x)                                  [B, 512]
    scenario layer       u_sh = W_s h0 + b_s;  u_k = (h0 A_s^k) B_s^k + c_s^k    [B, 256] each
                         (A/B of the sample's scenario, gathered per sample);
                         h1 = ReLU(u_sh + u_k)                                   [B, 256]
    task layer           z_m = W_t h1 + b_t + (h1 A_t^m) B_t^m + c_t^m           [B, T]
                         flows φ_j from the *pre-activation* units u_sh, u_k     [B, T, 4]
    selection network    w = heads(MLP_{1024,512}(stopgrad(x)))                  [B, T, 4]
    pruning              g = sigmoid(τ·w) (search) or 1[w > 0] (retrain)         [B, T, 4]
    output               logit_m = z_m − Σ_j g_{m,j} φ_{m,j}                     [B, T]

So a gate of **1 removes** a flow from the full prediction ``z`` (the code's convention). The
code's decomposition is not exact — ``z`` goes through the ReLU, the flows do not, and the task
biases appear in several flows — and that is what ``decomposition="code"`` (default) reproduces.
``decomposition="linear"`` (a deviation, not in the paper or the code) makes it exact: no ReLU
between the scenario and task layers, every bias counted once, and
``logit_m = b_t + c_t^m + Σ_j (1 − g_{m,j}) φ_{m,j}`` with bias-free flows, so a gate of 0 keeps a
flow whole and a gate of 1 removes exactly that flow.

Training (two stages, lottery-ticket style; :meth:`AutoIFS.training_stages`):
    search   ``search_epochs`` epochs, no early stopping; soft gates with τ rising geometrically
             from 1 to ``final_temp`` (τ_e = final_temp^{e/(E−1)}); the selection network in its own
             parameter group (lr × ``gate_lr_scale``, no weight decay); optional gate penalty
             λ_m·mean(g_m), returned with the logits (:class:`AutoIFSOutput`) for ``aux_loss``;
             a snapshot of the whole model at the start of epoch ``rewind_epoch``.
             At the end the selection network and a frozen copy of the embedding table are kept.
    retrain  the rewind snapshot is restored, the selection network (end-of-search weights) reads
             its frozen embedding copy and gives hard gates; everything else trains with
             ``retrain_lr`` / ``retrain_weight_decay``, early stopping on validation, best
             weights restored.

Generalised from the code's hard-wired 3 scenarios × 2 tasks to any S × T (one selection head per
task). ``flow_report`` says which flows the selection network keeps, per (scenario, task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.models.base import MSMTModel, register_model
from msmtrec.models.options import Count, NonNegative, Positive, Rate, Size, Sizes
from msmtrec.models.stages import Stage
from msmtrec.nn import MLP, ScenarioGroups
from msmtrec.nn.lora import FlowSelector, LoRABank, flow_gates
from msmtrec.report.flows import format_flow_report, plot_flow_selection

FLOWS = (
    "scen_shared->task_shared",
    "scen_shared->task_specific",
    "scen_specific->task_shared",
    "scen_specific->task_specific",
)
DECOMPOSITIONS = ("code", "linear")
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
        decomposition: ``code`` (gate 1 removes a flow from the full prediction, as released) or
            ``linear`` (exact linear decomposition; a deviation, see the module docstring).
        scenario_routing: how the scenario-specific LoRA is applied: ``gather`` (A/B picked per
            sample, two batched matmuls) or ``group`` (batch split by scenario). Same result.
        search_epochs: epochs of the search stage (10).
        final_temp: temperature τ at the last search epoch (100; τ starts at 1).
        rewind_epoch: 0-based search epoch at whose start the rewind snapshot is taken (None: the
            last, ``search_epochs − 1``, as the code's ``rewind = 9``).
        search_lr / search_weight_decay: Adam lr / L2 of the model weights in search (3e-4 / 3e-5).
        gate_lr_scale: selection-network lr = ``search_lr × gate_lr_scale`` (0.01), no L2.
        retrain_lr / retrain_weight_decay: Adam lr / L2 in retraining (1e-4 / 3e-4).
        retrain_epochs: max retrain epochs (None: the run config's ``max_epochs``; the code uses
            50 with a patience of 1 — set ``patience`` in the run config).
        gate_penalty: λ of the search-stage penalty ``λ_m·mean(sigmoid(τ w_m))``, one float for
            every task or one per task (0). Positive λ discourages pruning (g = 1 prunes).

    The run config's ``lr`` / ``weight_decay`` are not used: each stage has its own (above).
    """

    inputs = ("the shared bottom, then the scenario layers; the selection network reads it stop-gradient while "
              "searching, and from the frozen copy of the table once the ticket is drawn.")

    def __init__(self, schema: DataSchema, embed_dim: Size = 16, mlp_dims: Sizes = (1024, 512, 256),
                 lora_rank: Size = 2, selector_dims: Sizes | None = None, dropout: Rate = 0.0,
                 batch_norm: bool = False, decomposition: str = "code", scenario_routing: str = "group",
                 search_epochs: Size = 10, final_temp: Positive = 100.0, rewind_epoch: Count | None = None,
                 search_lr: Positive = 3e-4, search_weight_decay: NonNegative = 3e-5, gate_lr_scale: Positive = 0.01,
                 retrain_lr: Positive = 1e-4, retrain_weight_decay: NonNegative = 3e-4, retrain_epochs: Size | None = None,
                 gate_penalty: float | Sequence[float] = 0.0) -> None:
        super().__init__(schema)
        mlp_dims = list(mlp_dims)
        if len(mlp_dims) < 2 or any(int(w) < 1 for w in mlp_dims):
            raise ValueError(f"mlp_dims must hold >= 2 positive widths (bottom..., scenario layer), got {mlp_dims}")
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(f"decomposition must be one of {', '.join(DECOMPOSITIONS)}, got '{decomposition}'")
        if scenario_routing not in SCENARIO_ROUTINGS:
            raise ValueError(f"scenario_routing must be one of {', '.join(SCENARIO_ROUTINGS)}, got '{scenario_routing}'")
        if search_epochs < 1:
            raise ValueError(f"search_epochs must be >= 1, got {search_epochs}")
        rewind_epoch = search_epochs - 1 if rewind_epoch is None else rewind_epoch
        if not 0 <= rewind_epoch < search_epochs:
            raise ValueError(f"rewind_epoch must be in [0, {search_epochs - 1}] (a 0-based search epoch), got {rewind_epoch}")
        if final_temp <= 0:
            raise ValueError(f"final_temp must be > 0, got {final_temp}")
        for name, v in (("search_lr", search_lr), ("retrain_lr", retrain_lr), ("gate_lr_scale", gate_lr_scale)):
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        for name, v in (("search_weight_decay", search_weight_decay), ("retrain_weight_decay", retrain_weight_decay)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if retrain_epochs is not None and retrain_epochs < 1:
            raise ValueError(f"retrain_epochs must be >= 1 or null, got {retrain_epochs}")
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
        self.scenario_dropout = nn.Dropout(dropout) if dropout > 0 and decomposition == "code" else nn.Identity()
        # Task layer: full-rank shared unit (one logit) + one rank-r unit per task.
        self.task_shared = nn.Linear(scen_width, 1)
        self.task_specific = LoRABank(self.num_tasks, scen_width, 1, lora_rank)
        for lin in (self.scenario_shared, self.task_shared):
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

        # Information-flow selection network and its frozen copy of the embedding table (filled at
        # the end of the search stage; a buffer, so checkpoints carry it).
        self.selector = FlowSelector(d, list(selector_dims) if selector_dims is not None else bottom, self.num_tasks,
                                     len(FLOWS), dropout=dropout, batch_norm=batch_norm)
        self.register_buffer("selector_table", self.embedding.table.weight.detach().clone())
        self.register_buffer("gate_penalty", torch.tensor(penalty))
        # Gate mode lives in buffers so that a checkpoint restores it: soft with temperature τ,
        # or hard ("ticket", retraining and inference after it).
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("ticket", torch.tensor(False))

    # -- forward, in the order of the figure ------------------------------------------------------
    def scenario_units(self, x: torch.Tensor, scenario: torch.Tensor,
                       counts: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Shared bottom then scenario layer: ``(u_sh, u_k)``, both ``[B, W]``, pre-activation.

        With ``counts`` the rows are sorted by scenario and ``counts[s]`` rows of scenario ``s``
        follow each other: each scenario's LoRA runs on its own contiguous block."""
        h0 = self.bottom(x)
        u_sh = self.scenario_shared(h0)
        if counts is None:
            u_k = self.scenario_specific(h0, scenario)
        else:
            u_k = torch.cat([self.scenario_specific.group(h, s) for s, h in enumerate(h0.split(counts))])
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
        if bool(self.ticket):
            with torch.no_grad():
                return self.selector(self.embedding(batch, weight=self.selector_table))
        if x is None:
            x = self.embedding(batch)
        return self.selector(x.detach())

    def gates(self, w: torch.Tensor) -> torch.Tensor:
        """The pruning function applied to selection logits (1 = remove the flow)."""
        return flow_gates(w, self.temperature, hard=bool(self.ticket))

    def forward(self, batch: EncodedData) -> AutoIFSOutput:
        groups = None
        if self.scenario_routing == "group":
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
            penalty = (g.mean(dim=(0, 2)) * self.gate_penalty).sum()  # the mean is order-free
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
        """End of search: keep a frozen copy of the current embedding table for the selector."""
        self.selector_table.copy_(self.embedding.table.weight.detach())

    def start_retrain(self, rewind: dict[str, torch.Tensor] | None = None) -> None:
        """Restore the rewind snapshot (except the selector and its embedding copy, which keep
        their end-of-search values), switch to hard gates and freeze the selector."""
        if rewind is not None:
            keep = {k: v for k, v in self.snapshot().items() if k.startswith("selector.") or k == "selector_table"}
            self.load_state_dict({**rewind, **keep})
        self.ticket.fill_(True)
        for p in self.selector.parameters():
            p.requires_grad_(False)
            p.grad = None
        self.selector.eval()

    def training_stages(self, config: Any) -> list[Stage]:
        memo: dict[str, Any] = {}

        def search_groups(model: "AutoIFS", lr: float, wd: float) -> list[dict[str, Any]]:
            return [{"params": model.main_parameters(), "lr": lr, "weight_decay": wd},
                    {"params": list(model.selector.parameters()), "lr": lr * model.gate_lr_scale, "weight_decay": 0.0}]

        def retrain_groups(model: "AutoIFS", lr: float, wd: float) -> list[dict[str, Any]]:
            return [{"params": model.main_parameters(), "lr": lr, "weight_decay": wd}]

        def search_start(trainer: Any, model: "AutoIFS") -> None:
            model.start_search()

        def search_epoch_start(trainer: Any, model: "AutoIFS", epoch: int) -> None:
            model.temperature.fill_(model.temperature_at(epoch))
            if epoch == model.rewind_epoch:
                memo["rewind"] = model.snapshot()

        def search_end(trainer: Any, model: "AutoIFS") -> None:
            model.draw_ticket()

        def retrain_start(trainer: Any, model: "AutoIFS") -> None:
            model.start_retrain(memo.pop("rewind", None))

        return [
            Stage(name="search", max_epochs=self.search_epochs, lr=self.search_lr, weight_decay=self.search_weight_decay,
                  param_groups=search_groups, early_stopping=False, restore_best=False, select_best=False,
                  on_stage_start=search_start, on_epoch_start=search_epoch_start, on_stage_end=search_end),
            Stage(name="retrain", max_epochs=self.retrain_epochs, lr=self.retrain_lr, weight_decay=self.retrain_weight_decay,
                  param_groups=retrain_groups, early_stopping=True, restore_best=True, select_best=True,
                  on_stage_start=retrain_start),
        ]

    # -- what AutoIFS tells its user ------------------------------------------------------------------
    @torch.no_grad()
    def flow_report(self, data: EncodedData, batch_size: int = 16384) -> dict[str, Any]:
        """Fraction of samples for which each flow is **kept** (hard gate 0, i.e. ``w ≤ 0``), per
        (scenario, task), computed with the selection network as it stands (during search: the
        ticket it would draw now)."""
        was_training = self.training
        self.eval()
        kept = torch.zeros(self.num_scenarios, self.num_tasks, len(FLOWS), dtype=torch.float64)
        counts = torch.zeros(self.num_scenarios, dtype=torch.float64)
        device = next(self.parameters()).device
        try:
            for batch in iterate_batches(data, batch_size, shuffle=False):
                batch = batch.to(device)
                keep = (self.selection_logits(batch) <= 0).to(torch.float64).cpu()  # [b, T, 4]
                s = batch.scenario.cpu()
                kept.index_add_(0, s, keep)
                counts.index_add_(0, s, torch.ones_like(s, dtype=torch.float64))
        finally:
            self.train(was_training)
        frac = kept / counts.clamp_min(1)[:, None, None]
        scen, tasks = self.schema.scenarios, self.schema.tasks
        return {
            "flows": list(FLOWS),
            "decomposition": self.decomposition,
            "samples": {scen[s]: int(counts[s]) for s in range(len(scen))},
            "kept_fraction": {scen[s]: {tasks[t]: {f: round(float(frac[s, t, j]), 4) for j, f in enumerate(FLOWS)}
                                         for t in range(len(tasks))} for s in range(len(scen)) if counts[s] > 0},
        }

    def parameter_report(self) -> dict[str, int]:
        selector = sum(p.numel() for p in self.selector.parameters())
        total = self.num_parameters()
        return {"total": total, "selector": selector, "predictor": total - selector,
                "selector_embedding_copy": int(self.selector_table.numel())}

    def extra_report(self, data: EncodedData, run_dir: str | Path | None = None) -> dict[str, Any]:
        """Flow selection on ``data`` (+ heatmap ``flow_selection.png`` in ``run_dir`` when
        matplotlib is installed) and the parameter split."""
        flows = self.flow_report(data)
        params = self.parameter_report()
        lines = [f"AutoIFS flow selection ({flows['decomposition']} decomposition, {sum(flows['samples'].values()):,} samples)",
                 format_flow_report(flows),
                 f"parameters: {params['total']:,} ({params['predictor']:,} predictor + {params['selector']:,} selection "
                 f"network; plus a frozen {params['selector_embedding_copy']:,}-value embedding copy for the selector)"]
        if run_dir is not None:
            path = Path(run_dir) / "flow_selection.png"
            note = plot_flow_selection(flows, path)
            flows["heatmap"] = str(path) if note is None else None
            lines.append(f"heatmap: {path}" if note is None else f"note: {note}")
            if note:
                flows["heatmap_note"] = note
        return {"flow_selection": flows, "parameters": params, "summary": "\n".join(lines)}


__all__ = ["AutoIFS", "AutoIFSOutput", "FLOWS"]
