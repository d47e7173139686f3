"""Pooling of padded id lists into one vector per row: a masked mean or sum (EmbeddingBag-style),
and target attention (DIN, Zhou et al., KDD 2018) of a candidate on a behaviour sequence.

Shapes for B rows, L entries per row, d-dim embeddings: ids ``[B, L]`` with ``lengths [B]``
(entries at positions ``>= length`` are padding and never read).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TargetAttention", "length_mask", "lookup", "pooled_bag", "weighted_sum"]


def lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``weight[ids]``, ``[*ids.shape, d]``, as one ``index_select``: on CPU it and its backward
    (an ``index_add``) take about 40 % of the time of ``F.embedding`` and its dense backward
    (2048 × 50 ids of a 7000 × 16 table, one thread)."""
    return weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.shape[1])


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, L]`` bool, True at the positions a row holds (``position < length``)."""
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def weighted_sum(weights: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``Σ_j weights[b, j] · rows[b, j]``, ``[B, d]``, as one batched matmul ``[B, 1, L] @ [B, L, d]``
    (forward and backward 0.7–0.95× the time of a multiply and a sum, whose broadcasts run along
    the d-wide inner dimension)."""
    return torch.bmm(weights.unsqueeze(1), rows).squeeze(1)


def pooled_bag(ids: torch.Tensor, lengths: torch.Tensor, weight: torch.Tensor, mode: str) -> torch.Tensor:
    """``[B, d]``: the mean (or sum) of ``weight[ids[b, :lengths[b]]]``; an empty row gives 0.

    The entries' rows weighted by ``1/length`` (``mean``) or 1 (``sum``), and 0 on the padding."""
    mask = length_mask(lengths, ids.shape[1]).to(weight.dtype)
    if mode == "mean":
        mask = mask / lengths.clamp_min(1)[:, None].to(weight.dtype)
    return weighted_sum(mask, lookup(weight, ids))


def _attend(keys: torch.Tensor, a_q: torch.Tensor, row: torch.Tensor, w: torch.Tensor, c: torch.Tensor,
            mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unit on ``keys [B, L, D]`` with the rows' matrices ``a_q [B, H, D]``, ``row [B, H]``
    (``W_q q + b``), the scoring layer ``w [H]``, ``c []`` and the padding ``mask [B, L]`` (0/1).

    Returns ``relu(h) [B, H, L]``, the weights ``[B, L]`` and the pooled ``[B, D]``. The hidden
    layer is laid out ``[B, H, L]`` (a batched matmul with the keys transposed), so every
    broadcast of a per-entry or per-unit factor runs along the contiguous ``L``."""
    r = torch.baddbmm(row.unsqueeze(2), a_q, keys.transpose(1, 2)).clamp_min_(0)  # [B, H, L]
    b, h, length = r.shape
    weights = torch.bmm(w.view(1, 1, h).expand(b, 1, h), r).view(b, length).add_(c).mul_(mask)
    return r, weights, weighted_sum(weights, keys)


class _AttendWithGradient(torch.autograd.Function):
    """:func:`_attend` with its backward written out: four batched matmuls, and two passes over
    ``[B, H, L]`` besides them: one writes ``m`` (ReLU's gradient of the broadcast scores'
    gradient), one sums it over ``L`` (autograd's backward of the same ops makes more passes, most
    of them broadcasts).

    The backward works with ``m = 1[r > 0] ⊙ grad_scores`` (``[B, H, L]``); the hidden layer's
    gradient is ``w_h · m``, and ``w`` is applied to the ``[B, H, D]`` factors instead. ``w``'s own
    gradient ``Σ_{b,l} relu(r)·grad_scores = Σ_{b,l} r·m`` is read from ``[B, H, D]`` and ``[B, H]``
    terms, since ``r = A_q k + row`` wherever ``m ≠ 0``: ``Σ_b (A_q ⊙ (m K)).sum(d) + row ⊙ m.sum(l)``,
    which saves a pass over ``[B, H, L]``. Forward and backward together take about 0.6× autograd's
    time (2048 rows × 50 entries, ``D = H = 16``, 2 threads; ``benchmarks/history.py``,
    docs/BENCHMARKS.md)."""

    @staticmethod
    def forward(ctx, keys, a_q, row, w, c, mask):  # noqa: ANN001, ANN205 (autograd's signature)
        r, weights, out = _attend(keys, a_q, row, w, c, mask)
        ctx.save_for_backward(keys, a_q, row, r, w, mask, weights)
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        keys, a_q, row, r, w, mask, weights = ctx.saved_tensors
        b, length, d = keys.shape
        h = r.shape[1]
        grad_scores = torch.bmm(grad.view(b, 1, d), keys.transpose(1, 2)).view(b, length).mul_(mask)  # [B, L]
        m = torch.ops.aten.threshold_backward(grad_scores.unsqueeze(1).expand_as(r), r, 0)  # ReLU's gradient [B, H, L]
        m_keys, m_sum = torch.bmm(m, keys), m.sum(2)  # [B, H, D], [B, H]
        grad_w = torch.linalg.vecdot(a_q, m_keys).addcmul_(row, m_sum).sum(0)
        grad_keys = torch.bmm(m.transpose(1, 2), a_q * w.view(1, h, 1))
        grad_keys.baddbmm_(weights.unsqueeze(2), grad.unsqueeze(1))
        return (grad_keys, m_keys.mul_(w.view(1, h, 1)), m_sum.mul_(w.view(1, h)), grad_w, grad_scores.sum(), None)


class TargetAttention(nn.Module):
    """DIN's activation unit: a weight for each sequence entry against the candidate, then the
    weighted sum ``Σ_j a(k_j, q) · k_j`` over the row's entries (padding masked; an empty row pools
    to 0).

    ``a(k_j, q) = w·ReLU(W [k_j; q; k_j − q; k_j ⊙ q] + b) + c`` for entry ``k_j`` and candidate ``q``
    (both ``D``-dim, e.g. the item embedding with its side features; DIN uses PReLU or Dice). The
    linear layer on the concatenation is the same function as ``W_k k_j + W_p (k_j ⊙ q) + W_q q + b``
    (``W_k`` and ``W_q`` absorb the ``k_j − q`` block), computed as one batched matmul of the
    entries with a per-row matrix ``A_q = W_k + W_p diag(q)`` (``[H, D]``, built once per row):
    no ``[B, L, 4D]`` concatenation and no ``k_j ⊙ q`` product per entry. As in DIN the weights are
    not normalised (no softmax), which keeps how strongly a history relates to the candidate
    ("intensity"): with a softmax, three entries like the candidate pool to the same vector as one.
    On the synthetic data's planted history signal this is what makes the signal learnable in a few
    epochs (docs/BENCHMARKS.md). ReLU rather than DIN's PReLU (a learned slope below 0): one
    elementwise pass fewer over ``[B, H, L]``, forward and backward. Training runs the unit through
    a hand-written backward (:class:`_AttendWithGradient`); under autocast it runs in the autocast
    dtype.

    Args:
        dim: ``D``.
        hidden: width of the unit's hidden layer (DIN: 36).

    Shapes:
        ``forward(query [B, D], keys [B, L, D], lengths [B]) -> [B, D]``.
    """

    def __init__(self, dim: int, hidden: int = 16) -> None:
        super().__init__()
        self.key = nn.Linear(dim, hidden)
        self.product = nn.Linear(dim, hidden, bias=False)
        self.query = nn.Linear(dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        args = self.unit_inputs(query, keys, lengths)
        if torch.is_grad_enabled():
            return _AttendWithGradient.apply(*args)
        return _attend(*args)[2]  # what export traces: plain operators

    def unit_inputs(self, query: torch.Tensor, keys: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """:func:`_attend`'s arguments for these rows, in the autocast dtype when autocast is on."""
        device = keys.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else keys.dtype
        a_q = self.key.weight + self.product.weight * query[:, None, :]  # A_q, [B, H, D]
        row = self.query(query) + self.key.bias  # W_q q + b, [B, H]
        return [t.to(dtype) for t in (keys, a_q, row, self.out.weight.view(-1), self.out.bias.view(()),
                                      length_mask(lengths, keys.shape[1]))]
