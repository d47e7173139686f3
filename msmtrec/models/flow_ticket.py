"""AutoIFS's ticket checked against the validation loss (``ticket_from: validation``; issue 16).

At the end of search the soft gates have shaped the weights, but which of two redundant flows
their signs keep depends on the search's dynamics (``benchmarks/autoifs_selection.py``). This
check asks each (scenario, task) which *units* it needs instead. With the scenario layer's units
``u_sh, u_k`` fixed (as search left them), the task layer — the shared ``w`` and bias and, per
task, ``v_m = A_t^m B_t^m`` and ``c_m``: every parameter the flows are made of downstream — is
refit by logistic regression under four tickets: every flow kept; no task-specific unit
anywhere (sh→task and scen→task pruned); no scenario-specific unit anywhere (scen→sh and
scen→task pruned); and scen→task alone pruned. Refitting matters: removing a flow from the
searched weights over-states what it carries (the other units were trained leaning on it), and
the task-shared unit is one vector for every (scenario, task), so whether a pair can do without
its task unit is a joint question. The fits are two-fold (fit on alternate validation rows,
score on the others), so a larger ticket gains nothing from fitting noise. A pair keeps a unit
when its validation log-loss without it is at least ``tolerance`` (relative) above the full
ticket's, and scen→task when it keeps both units and scen→task alone passes the same test;
sh→sh stays (the shared path is free). :func:`check_ticket` then prunes from
the gates' ticket what a pair does not need and adds nothing back: a flow the search had pruned
enters the retraining untrained, and in the issue 16 study adding such flows back cost up to
0.019 AUC in the controls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from msmtrec.data.encoded import EncodedData, iterate_batches

if TYPE_CHECKING:
    from msmtrec.models.autoifs import AutoIFS

__all__ = ["TaskLayer", "check_ticket", "needed_flows", "refit_pair_losses"]

#: The validation rows the check reads (the first ones). Its eight L-BFGS fits cost about a
#: minute at this size for AutoIFS at its default width on 2 CPU threads (41 s at 20k rows, 290 s
#: at 100k), far more than a training epoch; the issue 16 study decided with ~2,000 rows per
#: (scenario, task), a 3 × 2 set gets ~5,000 here.
TICKET_ROWS = 1 << 15

#: The tickets refit against the full one: which flows (``FLOWS`` order) each prunes everywhere.
WITHOUT = {"task unit": (1, 3), "scenario unit": (2, 3), "scen->task": (3,)}


class TaskLayer(NamedTuple):
    """The task layer's parameters, as the flows use them: ``w [W]``, ``b []`` (task-shared),
    ``v [T, W]``, ``c [T]`` (task-specific; ``v_m = A_t^m B_t^m``)."""

    w: torch.Tensor
    b: torch.Tensor
    v: torch.Tensor
    c: torch.Tensor


def _logits(layer: TaskLayer, u_sh: torch.Tensor, u_k: torch.Tensor, open_: torch.Tensor) -> torch.Tensor:
    """``[n, T]``: ``b + c_m + Σ_j open_j · φ_j`` with ``open_ [n, T, 4]`` (1 = flow kept)."""
    sh, k = (u_sh @ layer.w)[:, None], (u_k @ layer.w)[:, None]
    return (layer.b + layer.c + open_[..., 0] * sh + open_[..., 1] * (u_sh @ layer.v.T)
            + open_[..., 2] * k + open_[..., 3] * (u_k @ layer.v.T))


def refit_pair_losses(u_sh: torch.Tensor, u_k: torch.Tensor, scenario: torch.Tensor, labels: torch.Tensor,
                      label_mask: torch.Tensor, keep: torch.Tensor, start: TaskLayer, num_scenarios: int,
                      steps: int = 200) -> torch.Tensor:
    """Validation log-loss ``[S, T]`` per (scenario, task) of the task layer refit under the
    ticket ``keep [S, T, 4]`` (True = flow kept), two-fold: fitted (L-BFGS from ``start``,
    float64) on the even rows and scored on the odd ones, and the other way round. NaN for a pair
    without labelled rows."""
    u_sh, u_k, y, m = u_sh.double(), u_k.double(), labels.double(), label_mask.double()
    open_ = keep.double()[scenario]                                                             # [n, T, 4]
    rows = torch.arange(len(scenario), device=scenario.device)
    total = torch.zeros(num_scenarios, labels.shape[1], dtype=torch.float64, device=u_sh.device)
    count = torch.zeros_like(total)
    for fold in (0, 1):
        fit, score = rows[rows % 2 == fold], rows[rows % 2 != fold]
        layer = TaskLayer(*(p.detach().double().clone().requires_grad_(True) for p in start))
        opt = torch.optim.LBFGS(list(layer), max_iter=steps, history_size=20, tolerance_grad=1e-9,
                                tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            bce = F.binary_cross_entropy_with_logits(_logits(layer, u_sh[fit], u_k[fit], open_[fit]), y[fit],
                                                     reduction="none")
            loss = (bce * m[fit]).sum() / m[fit].sum().clamp_min(1)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        with torch.no_grad():
            bce = F.binary_cross_entropy_with_logits(_logits(layer, u_sh[score], u_k[score], open_[score]), y[score],
                                                     reduction="none") * m[score]
            total.index_add_(0, scenario[score], bce)
            count.index_add_(0, scenario[score], m[score])
    return total / count


@torch.no_grad()
def needed_flows(u_sh: torch.Tensor, u_k: torch.Tensor, scenario: torch.Tensor, labels: torch.Tensor,
                 label_mask: torch.Tensor, start: TaskLayer, num_scenarios: int,
                 tolerance: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """``(keep [S, T, 4], judged [S, T], rise)``: the flows each (scenario, task) needs (module
    docstring), whether it had labelled rows to judge by (False: its ``keep`` row is meaningless),
    and, per ticket of ``WITHOUT``, the relative rise ``[S, T]`` of its refit validation loss."""
    num_tasks = labels.shape[1]
    full = torch.ones(num_scenarios, num_tasks, 4, dtype=torch.bool, device=u_sh.device)
    base = refit_pair_losses(u_sh, u_k, scenario, labels, label_mask, full, start, num_scenarios)
    rise = {}
    for name, pruned in WITHOUT.items():
        ticket = full.clone()
        ticket[..., list(pruned)] = False
        loss = refit_pair_losses(u_sh, u_k, scenario, labels, label_mask, ticket, start, num_scenarios)
        rise[name] = (loss - base) / base
    task, scen = rise["task unit"] >= tolerance, rise["scenario unit"] >= tolerance
    both = task & scen & (rise["scen->task"] >= tolerance)
    keep = torch.stack([torch.ones_like(task), task, scen, both], dim=-1)
    return keep, ~base.isnan(), rise


@torch.no_grad()
def check_ticket(model: "AutoIFS", data: EncodedData, batch_size: int = 16384) -> int:
    """Check ``model``'s table ticket against the units each (scenario, task) needs on ``data``'s
    first ``TICKET_ROWS`` rows (:func:`needed_flows`, ``model.ticket_tolerance``): the flows of a
    unit it does not need are pruned (and scen→task unless it needs both), nothing is added back,
    and a pair that would keep no flow, or has no labelled rows, keeps the gates' decisions. The
    table's logits become ±1; returns how many (scenario, task, flow) decisions changed."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    data = data.take(slice(0, min(len(data), TICKET_ROWS))).to(device)
    try:
        units = [model.scenario_units(model.embedding(b), b.scenario) for b in iterate_batches(data, batch_size, shuffle=False)]
    finally:
        model.train(was_training)
    u_sh, u_k = (torch.cat(u) for u in zip(*units))
    spec = model.task_specific
    start = TaskLayer(model.task_shared.weight[0], model.task_shared.bias[0], (spec.A @ spec.B)[..., 0], spec.bias[:, 0])
    keep, judged, _ = needed_flows(u_sh, u_k, data.scenario, data.labels, data.label_mask, start, model.num_scenarios,
                                   model.ticket_tolerance)
    logits = model.selector.logits
    gates = ~model.pruned(logits)
    kept = gates & keep
    kept = torch.where((judged & kept.any(-1))[..., None], kept, gates)
    decided = (~kept).to(logits.dtype) * 2 - 1
    changed = int(((decided > 0) != (logits > 0)).sum())
    logits.copy_(decided)
    return changed
