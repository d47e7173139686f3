"""Multi-layer perceptrons: a plain MLP and a bank of towers applied as one batched matmul."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from msmtrec.nn.bank_slices import bank_slice
from msmtrec.nn.dropout import BitDropout

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation '{name}', expected one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """``Linear → (BatchNorm) → activation → (Dropout)`` for every hidden width.

    Args:
        in_dim: input width.
        hidden: hidden widths, e.g. ``[256, 128]``.
        out_dim: optional final ``Linear`` with no activation (e.g. 1 for a logit).
        activation: name of the activation (``relu`` default).
        dropout: dropout probability after each hidden layer.
        batch_norm: BatchNorm1d after each hidden ``Linear``.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int | None = None, *, activation: str = "relu",
                 dropout: float = 0.0, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(globals()["activation"](activation))
            if dropout > 0:
                layers.append(BitDropout(dropout))
            d = h
        if out_dim is not None:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        self.net = nn.Sequential(*layers)
        self.output_dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def bank_parameters(num_banks: int, in_dim: int, out_dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Stacked weights ``[G, in, out]`` and biases ``[G, out]``, each bank initialised as ``nn.Linear``."""
    bound = 1.0 / math.sqrt(in_dim)
    w = nn.Parameter(torch.empty(num_banks, in_dim, out_dim).uniform_(-bound, bound))
    b = nn.Parameter(torch.empty(num_banks, out_dim).uniform_(-bound, bound))
    return w, b


class TowerBank(nn.Module):
    """``H`` independent MLP towers (one per head) stored as stacked weights.

    ``forward(x, heads)`` runs the towers ``heads`` (a slice; default all) on ``x`` of shape
    ``[B, in]`` (the same input for every head) or ``[B, h, in]`` (one input per head) and returns
    ``[B, h, out]`` — one ``einsum`` per layer, whatever the number of heads. With ``out_dim=1`` a
    tower ends in a logit. ``gates`` (optional, one per hidden layer, each ``[B, h, width]``)
    multiply the hidden activations element-wise, which is how PPNet / AEM²TL personalise towers.
    """

    def __init__(self, num_heads: int, in_dim: int, hidden: Sequence[int], out_dim: int | None = 1, *,
                 activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        dims = [in_dim, *hidden] + ([out_dim] if out_dim is not None else [])
        self.num_heads = num_heads
        self.hidden = list(hidden)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            w, bias = bank_parameters(num_heads, a, b)
            self.weights.append(w)
            self.biases.append(bias)
        self.act = globals()["activation"](activation)
        self.dropout = BitDropout(dropout) if dropout > 0 else nn.Identity()
        self.has_output = out_dim is not None
        self.output_dim = dims[-1]

    def forward(self, x: torch.Tensor, heads: slice = slice(None), gates: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        n_layers = len(self.weights)
        # Work in a contiguous [heads, B, d] layout, so that every layer after the first is one
        # baddbmm on contiguous operands, forward and backward: oneDNN's bf16 matmul copies any
        # other layout, and a strided [heads, B, d] view made its weight gradient a slow
        # transposing copy. A shared [B, in] input makes the first layer a single GEMM over all
        # heads (bias fused), relaid out once.
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            w, b = bank_slice(w, heads), bank_slice(b, heads)
            if i == 0 and x.dim() == 2:
                h, d_in, d_out = w.shape
                x = torch.addmm(b.reshape(-1), x, w.transpose(0, 1).reshape(d_in, h * d_out))
                x = x.view(-1, h, d_out).transpose(0, 1).contiguous()
            else:
                if i == 0:
                    x = x.transpose(0, 1).contiguous()
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            last = i == n_layers - 1 and self.has_output
            if not last:
                x = self.dropout(self.act(x))
                if gates is not None and i < len(gates):
                    x = x * gates[i].transpose(0, 1)
        return x.transpose(0, 1)
