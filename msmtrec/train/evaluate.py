"""Inference over a whole split in batches, and evaluation of the predictions."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.metrics import evaluate_predictions
from msmtrec.models.base import MSMTModel


@torch.no_grad()
def collect_targets(model: MSMTModel, data: EncodedData, batch_size: int,
                    forward: Callable[[EncodedData], Any] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run the model over ``data`` (in order, eval mode) and gather its evaluation targets.

    ``forward(batch)`` computes the model's output (default: ``model`` itself; the trainer passes
    its precision- and compile-aware :meth:`~msmtrec.train.Trainer.forward`)."""
    forward = forward or model
    was_training = model.training
    model.eval()
    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
    try:
        for batch in iterate_batches(data, batch_size, shuffle=False):
            out = forward(batch)
            for name, (p, y, m) in model.eval_targets(out, batch).items():
                parts.setdefault(name, []).append((p.float().cpu(), y.cpu(), m.cpu()))
    finally:
        model.train(was_training)
    return {name: tuple(torch.cat([x[i] for x in chunks]).numpy() for i in range(3)) for name, chunks in parts.items()}


def evaluate_model(model: MSMTModel, data: EncodedData, schema: DataSchema, batch_size: int = 16384,
                   forward: Callable[[EncodedData], Any] | None = None) -> dict:
    """AUC / logloss (/ GAUC) per (scenario, target), per target and their means on ``data``
    (``forward``: as in :func:`collect_targets`)."""
    targets = collect_targets(model, data, batch_size, forward)
    user = data.user.cpu().numpy() if data.user is not None else None
    return evaluate_predictions(data.scenario.cpu().numpy(), schema.scenarios, targets, user)


@torch.no_grad()
def predict_proba(model: MSMTModel, data: EncodedData, batch_size: int = 16384) -> np.ndarray:
    """``[N, T]`` probabilities of every task for each row's own scenario."""
    was_training = model.training
    model.eval()
    try:
        out = [model.probabilities(model(b)).float().cpu() for b in iterate_batches(data, batch_size, shuffle=False)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_tasks), dtype=np.float32)
