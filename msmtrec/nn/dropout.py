"""Inverted dropout with a cheap random mask, for every block of the library.

``nn.Dropout`` on CPU draws one Bernoulli variate per element (``bernoulli_``) and multiplies by
the mask: on a ``[2048, 256]`` activation, forward and backward, 5–12 ms at 2 threads (``p`` 0.2–0.5),
more than a SharedBottom training step without dropout. :class:`BitDropout` draws 16 random bits per element (1 at
``p = 0.5``, :func:`keep_bits`) and keeps an element when they are at or above a threshold, so the
drop probability is ``p`` rounded to a multiple of 1/65536, and applies the mask as an integer AND
(:func:`zero_dropped_`) in forward and backward: 1.1–2.9 ms for the same tensor, and training with
dropout 0.2 1.3–1.9× faster (``benchmarks/dropout_cost.py``, docs/BENCHMARKS.md). Same semantics as
``nn.Dropout``: the kept elements are scaled by ``1 / (1 − p)`` in training; the identity in
evaluation. The random stream is PyTorch's, so ``torch.manual_seed`` makes it reproducible. The
library's blocks (:class:`~msmtrec.nn.MLP`, the banks, the models) build their dropout with it.
"""

from __future__ import annotations

import torch
from torch import nn


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor of ``shape`` whose elements are True with probability ``1 − p``."""
    n = 1
    for s in shape:
        n *= s
    words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    bits = words.view(torch.int16)[:n].view(shape)
    return bits >= int(round(p * 65536)) - 32768


_SAME_WIDTH_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def keep_bits(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The mask :func:`zero_dropped_` applies to a tensor of ``shape`` and ``dtype``: integers of
    ``dtype``'s width, all ones (keep) with probability ``1 − p``, else 0.

    With ``p = 0.5`` each element costs one random bit (a fair coin), not 16: bit ``j`` of every
    random word is shifted to the sign and spread over the word by an arithmetic shift, one
    vectorised pass per bit position. The random number generator is serial on the CPU, and at
    HiNet's sizes the 16-bit masks of :func:`keep_mask` took a third of a bf16 step at 2 threads.
    Other rates go through :func:`keep_mask`."""
    ints = _SAME_WIDTH_INT[dtype.itemsize]
    if p != 0.5:
        return keep_mask(shape, p, device).view(torch.uint8).to(ints).neg_()
    n, width = shape.numel(), 8 * dtype.itemsize
    words = torch.randint(-2**63, 2**63 - 1, ((n + 63) // 64,), dtype=torch.int64, device=device).view(ints)
    shifts = torch.arange(width - 1, -1, -1, dtype=ints, device=device).unsqueeze(1)  # bit j → the sign
    return (words.unsqueeze(0) << shifts).__irshift__(width - 1).view(-1)[:n].view(shape)


def zero_dropped_(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """``x`` with the elements where ``bits`` (from :func:`keep_bits` for ``x``'s shape and dtype)
    is 0 set to 0, in place, outside autograd: a bitwise AND of ``x``'s bits with the all-ones /
    all-zeros integer mask (on CPU, multiplying by a bool mask converts it element by element,
    unvectorised, several times the cost of this pass). Returns ``x``."""
    return x.view(bits.dtype).bitwise_and_(bits).view(x.dtype)


class _KeepScaled(torch.autograd.Function):
    """``x ⊙ keep / (1 − p)``, ``keep`` from :func:`keep_bits`; the gradient gets the same mask and
    scale (the mask is saved: integers of ``x``'s width)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        bits = keep_bits(x.shape, p, x.dtype, x.device)
        ctx.save_for_backward(bits)
        ctx.scale = 1.0 / (1.0 - p)
        return zero_dropped_(x * ctx.scale, bits)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (bits,) = ctx.saved_tensors
        return zero_dropped_(grad * ctx.scale, bits), None


class BitDropout(nn.Module):
    """Drop-in replacement for ``nn.Dropout(p)`` (see the module docstring)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return _KeepScaled.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
