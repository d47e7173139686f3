"""AutoIFS's two-stage schedule (lottery-ticket style): search, then retrain with the ticket.

The stages' hooks, as :meth:`msmtrec.models.autoifs.AutoIFS.training_stages` returns them (the
schedule itself is described in ``msmtrec/models/autoifs.py``'s module docstring): search trains
the model and its selector with soft gates, the temperature rising each epoch, the selector left
untrained for the warm-up epochs and a rewind snapshot taken; it logs how many gate decisions
changed on the first validation rows, then draws the ticket (checked against the validation loss
with ``ticket_from="validation"``). Retrain restores the snapshot and trains with hard gates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msmtrec.data.encoded import EncodedData
from msmtrec.models.stages import Stage

if TYPE_CHECKING:  # pragma: no cover
    from msmtrec.models.autoifs import AutoIFS

DECISION_PROBE_ROWS = 16384  # validation rows on which search tracks how many gate decisions change


def search_then_retrain(model: "AutoIFS") -> list[Stage]:
    """The search and retrain :class:`Stage` s of ``model``."""
    # Both stages' state (saved with a resumable run): the rewind snapshot, from search to retrain,
    # and the selector's decisions at the start of search on the probe rows.
    memo: dict[str, Any] = {}
    probe: list[EncodedData] = []  # the first validation rows (not state: taken again on resume)

    def search_groups(model: "AutoIFS", lr: float, wd: float) -> list[dict[str, Any]]:
        return [{"params": model.main_parameters(), "lr": lr, "weight_decay": wd},
                {"params": list(model.selector.parameters()), "lr": lr * model.gate_lr_scale, "weight_decay": 0.0}]

    def retrain_groups(model: "AutoIFS", lr: float, wd: float) -> list[dict[str, Any]]:
        return [{"params": model.main_parameters(), "lr": lr, "weight_decay": wd}]

    def search_start(trainer: Any, model: "AutoIFS") -> None:
        model.start_search()
        probe[:] = [trainer.val_data.take(slice(0, min(len(trainer.val_data), DECISION_PROBE_ROWS)))]
        if "start" not in memo:  # a resumed search keeps the decisions its first epoch started from
            memo["start"] = model.gate_decisions(probe[0])

    def search_epoch_start(trainer: Any, model: "AutoIFS", epoch: int) -> None:
        model.temperature.fill_(model.temperature_at(epoch))
        trainer.optimizer.param_groups[1]["lr"] = (0.0 if epoch < model.gate_warmup_epochs
                                                   else model.search_lr * model.gate_lr_scale)
        if epoch == model.rewind_epoch:
            memo["rewind"] = model.snapshot()

    def search_epoch_end(trainer: Any, model: "AutoIFS", epoch: int, val: dict) -> dict[str, float]:
        now = model.gate_decisions(probe[0])
        changed, kept = float((now != memo["start"]).float().mean()), float((~now).float().mean())
        model.gates_changed.fill_(changed)
        trainer.log(f"[search] gates: {changed:.1%} of the decisions differ from the start; {kept:.1%} of the "
                    f"flows kept (τ = {float(model.temperature):g})")
        return {"gates_changed": round(changed, 4), "flows_kept": round(kept, 4)}

    def search_end(trainer: Any, model: "AutoIFS") -> None:
        model.draw_ticket()
        if model.ticket_from == "validation":
            changed = model.ticket_from_validation(trainer.val_data)
            trainer.log(f"[search] ticket from the validation loss: {changed} of {model.selector.logits.numel()} "
                        f"gate decisions changed (tolerance {model.ticket_tolerance:g})")

    def retrain_start(trainer: Any, model: "AutoIFS") -> None:
        model.start_retrain(memo.pop("rewind", None))

    return [
        Stage(name="search", max_epochs=model.search_epochs, lr=model.search_lr, weight_decay=model.search_weight_decay,
              param_groups=search_groups, early_stopping=False, restore_best=False, select_best=False,
              on_stage_start=search_start, on_epoch_start=search_epoch_start, on_epoch_end=search_epoch_end,
              on_stage_end=search_end, state=memo),
        Stage(name="retrain", max_epochs=model.retrain_epochs, lr=model.retrain_lr, weight_decay=model.retrain_weight_decay,
              param_groups=retrain_groups, early_stopping=True, restore_best=True, select_best=True,
              on_stage_start=retrain_start, state=memo),
    ]
