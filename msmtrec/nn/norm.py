"""Normalisation layers that are not in ``torch.nn``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm(nn.BatchNorm1d):
    """BatchNorm that always normalises with its running statistics and never updates them:
    ``γ · (x − μ) / √(σ² + ε) + β`` with ``μ = 0, σ² = 1`` from the start (unless loaded), i.e. an
    affine layer with trainable ``γ`` (1) and ``β`` (0).

    That is what ``tf.layers.batch_normalization(x)`` computes when it is called without
    ``training=True`` (HiNet's released code): inference mode in training too, with TensorFlow's
    ``ε = 1e-3``.
    """

    def __init__(self, num_features: int, eps: float = 1e-3) -> None:
        super().__init__(num_features, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                            momentum=0.0, eps=self.eps)
