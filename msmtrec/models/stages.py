"""Training stages, part of the model contract (:meth:`MSMTModel.training_stages`): a model's
schedule is a list of stages run one after another by the same trainer loop (AutoIFS: search →
retrain). A stage says how to build its optimiser and what to do
at its edges; the loop itself never changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from msmtrec.models.base import MSMTModel


@dataclass
class Stage:
    """One stage of training.

    Attributes:
        name: shown in logs (``train``, ``search``, ``retrain``).
        max_epochs: epochs in this stage (None: the config's ``max_epochs``).
        lr / weight_decay: Adam settings (None: the config's).
        param_groups: ``fn(model, lr, weight_decay) -> list of torch param-group dicts``; the
            default trains every parameter with ``requires_grad``. Parameters left out are not
            stepped (they still receive gradients unless frozen by the stage).
        early_stopping: stop after ``patience`` epochs without a better validation mean AUC.
            Without it the stage runs ``max_epochs`` epochs.
        restore_best: at the end of the stage load the weights of its best validation epoch.
        select_best: whether this stage's validation scores compete for the final checkpoint
            (a search stage's weights are not a deliverable model).
        on_stage_start / on_epoch_start / on_epoch_end / on_stage_end: hooks
            ``fn(trainer, model, ...)`` (``trainer``: the :class:`msmtrec.train.Trainer` running them): ``on_epoch_start(trainer, model, epoch)``,
            ``on_epoch_end(trainer, model, epoch, val_metrics)``.
        state: what the hooks keep between epochs (AutoIFS: its rewind snapshot); saved with the
            run's resumable state every epoch. A resumed run restores it, then calls
            ``on_stage_start`` of the stage it resumes in again before loading the saved weights
            and optimiser state over the model: that hook must set again whatever the weights
            do not hold (frozen parameters), from ``state`` only.
    """

    name: str = "train"
    max_epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    param_groups: Callable[["MSMTModel", float, float], list[dict[str, Any]]] | None = None
    early_stopping: bool = True
    restore_best: bool = True
    select_best: bool = True
    on_stage_start: Callable[..., None] | None = None
    on_epoch_start: Callable[..., None] | None = None
    on_epoch_end: Callable[..., None] | None = None
    on_stage_end: Callable[..., None] | None = None
    state: dict[str, Any] = field(default_factory=dict)
