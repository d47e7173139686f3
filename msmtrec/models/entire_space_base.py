"""Entire-space learning: task roles, the losses over all impressions, and the evaluation targets.

A dataset declares the behaviour graph of its labels in the schema: ``DataSchema.task_roles`` maps a
task to ``click``, ``action`` (a post-click action, AEM²TL's "RAction") or ``conversion``, and
``conversion_without_click`` says whether a conversion can happen without a click (an app install
from an impression, as in AEM²TL's industrial data; Ali-CCP purchases always follow a click).
:func:`entire_space_roles` reads and validates them; :class:`EntireSpaceModel` is the base of the
models that predict the sub-targets of :mod:`msmtrec.nn.entire_space` and compose them (ESMM,
AEM²TL).

Labels in the entire space. The behaviour graph fixes some labels that a log may leave empty: an
impression that was not clicked has no action, and — when conversions need a click — no
conversion. So the entire-space label of "click and action" (CTAVR) and "click and conversion"
(CTCVR) is 0 on an observed non-click, whatever the action/conversion column holds there; elsewhere
it is the action/conversion label, and it is masked where that label is missing — and, when
conversions may skip the click (``conversion_without_click``), where a conversion is 1 and the
click is unknown (the conversion may have come without one). Nothing else is filled in: a missing
click label stays masked.

Losses (AEM²TL Eq. 22–25; ESMM), one per entry of ``loss_names``, all over every impression:

- ``ctr``: BCE(click, p_ctr);
- ``ctavr``: BCE(click ∧ action, p_ctavr) — only with an action task;
- ``ctcvr``: BCE(click ∧ conversion, p_ctcvr) — when the model has no no-click path, or
  ``xcvr``: BCE(conversion, p_xcvr) — when conversions may happen without a click and the model
  predicts that path (y3).

Evaluation targets (per scenario and pooled; named after the schema's tasks — with tasks ``click``
and ``purchase``):

==========================  =========================  ==============================================
 target                      prediction                 rows / label
==========================  =========================  ==============================================
 ``click``                   p_ctr                      all impressions / click
 ``purchase(ctcvr)``         p_ctcvr                    all impressions / click ∧ purchase
 ``purchase(cvr@click)``     p_cvr (post-click)         clicked impressions only / purchase
 ``purchase(xcvr)``          p_xcvr                     all impressions / purchase — only when the
                                                        data has ``conversion_without_click``
 ``<action>(ctavr)``         p_ctavr                    all impressions / click ∧ action
==========================  =========================  ==============================================

These are the three numbers the literature mixes up: CTR and CTCVR AUC are computed on all
impressions, CVR AUC only on clicked ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel, masked_bce

ROLES = ("click", "action", "conversion")


@dataclass(frozen=True)
class EntireSpaceRoles:
    """Column indices of the role tasks in ``EncodedData.labels`` (None: the data has no such task)."""

    click: int
    action: int | None
    conversion: int | None
    conversion_without_click: bool

    @property
    def sub_targets(self) -> tuple[str, ...]:
        """The sub-targets (``y1..y5`` of :mod:`msmtrec.nn.entire_space`) this data supports."""
        out = ["y1"]
        if self.conversion is not None:
            out.append("y2")
            if self.conversion_without_click:
                out.append("y3")
        if self.action is not None:
            out.append("y4")
            if self.conversion is not None:
                out.append("y5")
        return tuple(sorted(out))


def entire_space_roles(schema: DataSchema) -> EntireSpaceRoles:
    """Read and validate the task roles of ``schema``.

    Every task must have a role (an entire-space model predicts only click, action and conversion
    tasks); exactly one task is the click, at most one the action and at most one the conversion.
    Raises ``ValueError`` naming the task and what was expected.
    """
    roles = dict(schema.task_roles)
    if not roles:
        raise ValueError("entire-space models need task roles in the dataset spec (role: click | action | conversion "
                         f"on the tasks); tasks {', '.join(schema.tasks)} have none")
    unknown = sorted(set(roles) - set(schema.tasks))
    if unknown:
        raise ValueError(f"task_roles names unknown task(s) {', '.join(unknown)}; tasks are {', '.join(schema.tasks)}")
    for task, role in roles.items():
        if role not in ROLES:
            raise ValueError(f"task '{task}' has role '{role}'; expected one of {', '.join(ROLES)}")
    missing = [t for t in schema.tasks if t not in roles]
    if missing:
        raise ValueError(f"task(s) {', '.join(missing)} have no role; entire-space models predict only tasks with "
                         f"role click, action or conversion")
    by_role: dict[str, list[int]] = {r: [i for i, t in enumerate(schema.tasks) if roles[t] == r] for r in ROLES}
    if len(by_role["click"]) != 1:
        found = ", ".join(schema.tasks[i] for i in by_role["click"]) or "none"
        raise ValueError(f"entire-space models need exactly one task with role click, found {found}")
    for r in ("action", "conversion"):
        if len(by_role[r]) > 1:
            raise ValueError(f"at most one task may have role {r}, found {', '.join(schema.tasks[i] for i in by_role[r])}")
    return EntireSpaceRoles(
        click=by_role["click"][0],
        action=by_role["action"][0] if by_role["action"] else None,
        conversion=by_role["conversion"][0] if by_role["conversion"] else None,
        conversion_without_click=bool(schema.conversion_without_click) and bool(by_role["conversion"]),
    )


def _after_click(label: torch.Tensor, mask: torch.Tensor, click: torch.Tensor, click_mask: torch.Tensor,
                 implies_click: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Entire-space label of "click and <label>": 0 on an observed non-click (the graph allows no
    action/conversion there), the label elsewhere. Observed where the impression is known not to
    be clicked, and where the label is observed and so is the answer: the click is known, or the
    label is 0, or a positive label implies the click (``implies_click``: an action; a conversion
    when conversions need a click). A positive conversion that may have skipped the click, on an
    impression whose click is unknown, leaves "click and conversion" unknown: masked."""
    no_click = click_mask & (click == 0)
    known = click_mask | (label == 0) if not implies_click else torch.ones_like(mask)
    return torch.where(no_click, torch.zeros_like(label), label), (mask & known) | no_click


class EntireSpaceModel(MSMTModel):
    """Base of the entire-space models: ``forward`` returns a dict of probabilities ``[B]`` with the
    keys of :func:`~msmtrec.nn.entire_space.compose_entire_space` (``ctr`` always; ``ctavr`` with an
    action task; ``cvr``, ``ctcvr``, ``xcvr`` with a conversion task); this class turns it into the
    schema-ordered probabilities, the entire-space losses and the evaluation targets.

    ``no_click_path`` says whether the model predicts conversions without a click (AEM²TL's y3): it
    decides between the ``xcvr`` and the ``ctcvr`` loss.
    """

    def __init__(self, schema: DataSchema) -> None:
        super().__init__(schema)
        self.roles = entire_space_roles(schema)
        self.no_click_path = self.roles.conversion_without_click

    # -- what the trainer sees -----------------------------------------------------------------------
    def probabilities(self, output: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, T]`` in schema order: click → p_ctr, action → p_ctavr, conversion → p_xcvr
        (= p_ctcvr when the model has no no-click path)."""
        cols: list[torch.Tensor] = [output["ctr"]] * self.num_tasks
        if self.roles.action is not None:
            cols[self.roles.action] = output["ctavr"]
        if self.roles.conversion is not None:
            cols[self.roles.conversion] = output["xcvr"]
        cols[self.roles.click] = output["ctr"]
        return torch.stack(cols, dim=1)

    @property
    def loss_names(self) -> list[str]:
        names = ["ctr"]
        if self.roles.action is not None:
            names.append("ctavr")
        if self.roles.conversion is not None:
            names.append("xcvr" if self.no_click_path else "ctcvr")
        return names

    def entire_space_labels(self, batch: EncodedData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Label and mask ``[B]`` per entire-space target (see the module docstring)."""
        y, m, r = batch.labels, batch.label_mask, self.roles
        click, click_mask = y[:, r.click], m[:, r.click]
        out = {"ctr": (click, click_mask)}
        if r.action is not None:
            out["ctavr"] = _after_click(y[:, r.action], m[:, r.action], click, click_mask, implies_click=True)
        if r.conversion is not None:
            conv, conv_mask = y[:, r.conversion], m[:, r.conversion]
            out["ctcvr"] = _after_click(conv, conv_mask, click, click_mask,
                                        implies_click=not r.conversion_without_click)
            out["xcvr"] = (conv, conv_mask) if r.conversion_without_click else out["ctcvr"]
            out["cvr"] = (conv, conv_mask & click_mask & (click == 1))
        # The value under a False mask is meaningless (it may be NaN): zero it so that 0 · NaN
        # cannot reach a loss.
        return {k: (torch.where(mk, lab, torch.zeros_like(lab)), mk) for k, (lab, mk) in out.items()}

    def task_losses(self, output: dict[str, torch.Tensor], batch: EncodedData) -> torch.Tensor:
        labels = self.entire_space_labels(batch)
        names = self.loss_names
        probs = torch.stack([output[n] for n in names], dim=1)
        y = torch.stack([labels[n][0] for n in names], dim=1)
        mask = torch.stack([labels[n][1] for n in names], dim=1)
        return masked_bce(probs, y, mask)

    def eval_targets(self, output: dict[str, torch.Tensor], batch: EncodedData
                     ) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        labels = self.entire_space_labels(batch)
        tasks, r = self.schema.tasks, self.roles
        out = {tasks[r.click]: (output["ctr"], *labels["ctr"])}
        if r.conversion is not None:
            conv = tasks[r.conversion]
            out[f"{conv}(ctcvr)"] = (output["ctcvr"], *labels["ctcvr"])
            out[f"{conv}(cvr@click)"] = (output["cvr"], *labels["cvr"])
            if r.conversion_without_click:
                out[f"{conv}(xcvr)"] = (output["xcvr"], *labels["xcvr"])
        if r.action is not None:
            out[f"{tasks[r.action]}(ctavr)"] = (output["ctavr"], *labels["ctavr"])
        return out

    def comparable_target(self, task: str) -> str:
        """The all-impressions target of ``task``: the click itself, ``<action>(ctavr)``, and
        ``<conversion>(xcvr)`` when conversions may skip the click, else ``<conversion>(ctcvr)`` —
        each the task's own label when actions and conversions follow clicks."""
        i, r = self.schema.tasks.index(task), self.roles
        if i == r.action:
            return f"{task}(ctavr)"
        if i == r.conversion:
            return f"{task}(xcvr)" if r.conversion_without_click else f"{task}(ctcvr)"
        return task
