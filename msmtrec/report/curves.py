"""Learning curves of a run from its epoch records (``log.jsonl``): train loss per task and the
validation mean AUC per global epoch, stage changes marked. Needs matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msmtrec.report.plotting import MISSING, pyplot, save_figure


def plot_learning_curves(history: list[dict[str, Any]], path: str | Path, title: str = "") -> str | None:
    """Write the two-panel figure to ``path``; returns None when written, else why not."""
    plt = pyplot()
    if plt is None:
        return f"{MISSING}; learning curves skipped"
    if not history:
        return "no epoch completed; learning curves skipped"
    epochs = [r["global_epoch"] for r in history]
    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in history[0]["train_loss"]:
        loss_ax.plot(epochs, [r["train_loss"].get(name) for r in history], marker="o", ms=3, label=name)
    auc = [r["val_mean_auc"] for r in history]
    auc_ax.plot(epochs, [float("nan") if a is None else a for a in auc], marker="o", ms=3, color="C3")
    best = [r for r in history if r.get("improved")]
    if best and best[-1]["val_mean_auc"] is not None:
        auc_ax.plot([best[-1]["global_epoch"]], [best[-1]["val_mean_auc"]], "*", ms=12, color="C3", label="best epoch")
        auc_ax.legend(fontsize=8)
    for r, prev in zip(history[1:], history):
        if r["stage"] != prev["stage"]:  # a multi-stage schedule (AutoIFS: search → retrain)
            for ax in (loss_ax, auc_ax):
                ax.axvline(r["global_epoch"] - 0.5, color="grey", ls="--", lw=0.8)
                ax.text(r["global_epoch"] - 0.45, 1.0, r["stage"], transform=ax.get_xaxis_transform(), fontsize=7,
                        va="top", color="grey")
    loss_ax.set(xlabel="epoch", ylabel="train loss", title="train loss per task")
    loss_ax.legend(fontsize=8)
    auc_ax.set(xlabel="epoch", ylabel="validation mean AUC", title="validation mean AUC over (scenario, task)")
    for ax in (loss_ax, auc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return None
