"""Pooling of padded id lists into one vector per row: a masked mean or sum (EmbeddingBag-style),
and target attention (DIN, Zhou et al., KDD 2018) of a candidate on a behaviour sequence.

Shapes for B rows, L entries per row, d-dim embeddings: ids ``[B, L]`` with ``lengths [B]``
(entries at positions ``>= length`` are padding and never read).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msmtrec.nn.grouping import capturing

__all__ = ["TargetAttention", "length_mask", "pooled_bag"]


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, L]`` bool, True at the positions a row holds (``position < length``)."""
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def pooled_bag(ids: torch.Tensor, lengths: torch.Tensor, weight: torch.Tensor, mode: str) -> torch.Tensor:
    """``[B, d]``: the mean (or sum) of ``weight[ids[b, :lengths[b]]]``; an empty row gives 0.

    One fused ``embedding_bag`` whose per-entry weights are ``1/length`` (``mean``) or 1 (``sum``)
    on the row's entries and 0 on its padding."""
    mask = length_mask(lengths, ids.shape[1]).to(weight.dtype)
    if mode == "mean":
        mask = mask / lengths.clamp_min(1)[:, None].to(weight.dtype)
    if capturing():  # the ONNX exporter writes embedding_bag as a loop over the bags
        return torch.bmm(mask.unsqueeze(1), F.embedding(ids, weight)).squeeze(1)
    return F.embedding_bag(ids, weight, per_sample_weights=mask, mode="sum")


class TargetAttention(nn.Module):
    """DIN's activation unit: a weight for each sequence entry against the candidate, then the
    weighted sum ``Σ_j a(k_j, q) · k_j`` over the row's entries (padding masked; an empty row pools
    to 0).

    ``a(k_j, q) = w·PReLU(W [k_j; q; k_j − q; k_j ⊙ q] + b) + c`` for entry ``k_j`` and candidate ``q``
    (both ``D``-dim, e.g. the item embedding with its side features). The linear layer on the
    concatenation is computed as ``W_k k_j + W_p (k_j ⊙ q) + W_q q`` (the same functions: ``W_k`` and
    ``W_q`` absorb the ``k_j − q`` block), so the ``q`` term is computed once per row, not once per
    entry, and no ``[B, L, 4D]`` tensor is built. As in DIN the weights are not normalised (no
    softmax), which keeps how strongly a history relates to the candidate ("intensity"): with a
    softmax, three entries like the candidate pool to the same vector as one. On the synthetic
    data's planted history signal this is what makes the signal learnable in a few epochs
    (docs/BENCHMARKS.md).

    Args:
        dim: ``D``.
        hidden: width of the unit's hidden layer (DIN: 36).

    Shapes:
        ``forward(query [B, D], keys [B, L, D], lengths [B]) -> [B, D]``;
        ``scores(...) -> [B, L]`` (before masking), ``weights(...) -> [B, L]``.
    """

    def __init__(self, dim: int, hidden: int = 16) -> None:
        super().__init__()
        self.key = nn.Linear(dim, hidden)
        self.product = nn.Linear(dim, hidden, bias=False)
        self.query = nn.Linear(dim, hidden, bias=False)
        self.act = nn.PReLU(hidden)
        self.out = nn.Linear(hidden, 1)

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        h = self.key(keys) + self.product(keys * query[:, None]) + self.query(query)[:, None]  # [B, L, H]
        return self.out(self.act(h.flatten(0, 1)).view_as(h)).squeeze(-1)  # PReLU's slopes on dim 1

    def weights(self, query: torch.Tensor, keys: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, L]``: the scores on each row's entries, 0 on padding."""
        return self.scores(query, keys) * length_mask(lengths, keys.shape[1])

    def forward(self, query: torch.Tensor, keys: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        w = self.weights(query, keys, lengths)
        return torch.bmm(w.unsqueeze(1).to(keys.dtype), keys).squeeze(1)
