"""A faster forward for :class:`msmtrec.nn.SEIBank` (same parameters, same results).

HiNet runs ``(M+1)·K`` sub-experts on every sample, and at its defaults (5 sub-experts of
``128 → 64``, dropout 0.5 after every layer) the step time went less into the matmuls than into
element-wise passes over the ``[B, (M+1)·K, 128]`` hidden tensor: bias add, ReLU, dropout mask and
scale, their backward passes, and a layout copy between the two layers. This forward:

- computes the first layer of every sub-expert as one ``addmm`` (bias fused) on the shared input;
- relays the first hidden tensor out once into a contiguous ``[sub-expert, B, width]`` tensor, so
  the next layers are ``baddbmm`` on contiguous operands forward and backward (oneDNN's bf16
  matmul copies a strided view, and a strided view's weight gradient was a slow transposing copy);
- applies ReLU and the dropout mask in one autograd function that saves only its output
  (backward is one ``threshold_backward``: the gradient passes where the output is non-zero); the
  mask is an integer AND-mask (:func:`~msmtrec.nn.dropout.keep_bits`, one random bit per element
  at HiNet's ``p = 0.5``) applied with :func:`~msmtrec.nn.dropout.zero_dropped_`;
- folds the dropout scale ``1/(1−p)`` into the next layer's weights and, after the last layer,
  into the SEI gate weights, instead of a pass over the activations (forward or backward: a
  ``baddbmm`` ``alpha`` costs a pass over the input gradient).

Dropout masks come from PyTorch's random stream, so ``torch.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

import torch

from msmtrec.nn.bank_slices import bank_slice
from msmtrec.nn.dropout import keep_bits, zero_dropped_
from msmtrec.nn.experts import SEIBank


class _ReLUKeep(torch.autograd.Function):
    """``relu(h) ⊙ keep`` (``keep`` a :func:`keep_bits` mask), saving only the output."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = zero_dropped_(h.clamp_min(0.0), keep)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0.0), None


def relu_keep(h: torch.Tensor, p: float) -> torch.Tensor:
    """ReLU, then zero each element with probability ``p`` (no rescaling: the caller folds it).
    Without dropout (``p = 0``, evaluation) a plain ReLU, which a traced graph can hold."""
    if p == 0:
        return torch.relu(h)
    return _ReLUKeep.apply(h, keep_bits(h.shape, p, h.dtype, h.device))


class FusedSEIBank(SEIBank):
    """:class:`SEIBank` with the fused forward described in the module docstring.

    Same constructor, parameters and state dict as :class:`SEIBank`; the sub-experts use ReLU (as
    ``SEIBank`` always does). ``forward(x [B, in], seis=slice) -> [B, n, out]`` (a strided view).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        drop = self.experts.dropout
        self.p = float(getattr(drop, "p", 0.0))

    def forward(self, x: torch.Tensor, seis: slice = slice(None)) -> torch.Tensor:
        start, stop, _ = seis.indices(self.num_seis)
        n, k = stop - start, self.k
        lo, hi = start * k, stop * k
        p = self.p if self.training else 0.0
        scale = 1.0 / (1.0 - p)
        rows = slice(lo, hi)
        weights = [bank_slice(w, rows) for w in self.experts.weights]
        biases = [bank_slice(b, rows) for b in self.experts.biases]
        b = x.shape[0]
        w0 = weights[0]  # [G, in, h1]
        h = torch.addmm(biases[0].reshape(-1), x, w0.permute(1, 0, 2).reshape(x.shape[1], -1))
        h = relu_keep(h, p).view(b, hi - lo, -1).transpose(0, 1).contiguous()  # [G, B, h1]
        for w, bias in zip(weights[1:], biases[1:]):
            h = torch.baddbmm(bias.unsqueeze(1), h, w * scale)  # dropout scale of h
            h = relu_keep(h, p)
        gate = self.gates(x, seis)  # [B, n, K]
        if p > 0:
            gate = gate * scale  # the last layer's dropout scale
        sub = h.reshape(n, k, b, -1)  # [n, K, B, d]
        mixed = (gate.permute(1, 2, 0).unsqueeze(-1) * sub).sum(1)  # [n, B, d]
        return mixed.transpose(0, 1)
