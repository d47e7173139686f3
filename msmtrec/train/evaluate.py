"""Inference over a whole split in batches, and evaluation of the predictions.

With several data-parallel ranks (:class:`~msmtrec.train.distributed.Ranks`) the split's batches
are dealt out — rank ``r`` runs batches ``r, r + world_size, ...`` —, rank 0 puts the batches back
in order and computes the metrics on the whole split once, and every rank receives them. The
batches are the ones a single process forms, so the metrics equal a single-process evaluation of
the same weights.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np
import torch

from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.metrics import evaluate_predictions
from msmtrec.models.base import MSMTModel
from msmtrec.train.distributed import Ranks

Targets = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@torch.no_grad()
def batch_targets(model: MSMTModel, data: EncodedData, batch_size: int, ranks: Ranks = Ranks(),
                  forward: Callable[[EncodedData], Any] | None = None) -> list[Targets]:
    """The model's evaluation targets (eval mode) of this rank's batches of ``data``, in order.

    ``forward(batch)`` computes the model's output (default: ``model`` itself; the trainer passes
    its precision- and compile-aware :meth:`~msmtrec.train.Trainer.forward`)."""
    forward = forward or model
    was_training = model.training
    model.eval()
    out = []
    try:
        batches = iterate_batches(data, batch_size, shuffle=False)
        for batch in itertools.islice(batches, ranks.rank, None, ranks.world_size):
            targets = model.eval_targets(forward(batch), batch)
            out.append({name: (p.float().cpu(), y.cpu(), m.cpu()) for name, (p, y, m) in targets.items()})
    finally:
        model.train(was_training)
    return out


def collect_targets(model: MSMTModel, data: EncodedData, batch_size: int, ranks: Ranks = Ranks(),
                    forward: Callable[[EncodedData], Any] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """Every batch's targets concatenated in row order, on rank 0 (None on the other ranks)."""
    shards = ranks.gather(batch_targets(model, data, batch_size, ranks, forward))
    if shards is None:
        return None
    n = sum(len(s) for s in shards)
    batches = [shards[k % ranks.world_size][k // ranks.world_size] for k in range(n)]
    names = batches[0].keys() if batches else ()
    return {name: tuple(torch.cat([b[name][i] for b in batches]).numpy() for i in range(3)) for name in names}


def evaluate_model(model: MSMTModel, data: EncodedData, schema: DataSchema, batch_size: int = 16384,
                   ranks: Ranks = Ranks(), forward: Callable[[EncodedData], Any] | None = None) -> dict:
    """AUC / logloss (/ GAUC) per (scenario, target), per target and their means on ``data``
    (with several ranks: on every rank, computed once by rank 0 with its buffers; ``forward``:
    as in :func:`batch_targets`)."""
    ranks.sync_buffers(model)
    targets = collect_targets(model, data, batch_size, ranks, forward)
    metrics = None
    if targets is not None:
        user = data.user.cpu().numpy() if data.user is not None else None
        metrics = evaluate_predictions(data.scenario.cpu().numpy(), schema.scenarios, targets, user)
    return ranks.broadcast(metrics)


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
