"""Slices of bank parameters, cast and split once per forward pass.

A bank (stacked weights ``[G, ...]``: towers, experts, gates) is read one scenario's slice at a
time. Cut by plain indexing, each slice's gradient comes back as a zero-filled tensor of the
whole bank, and autograd adds them up: with S scenarios, S fills and S − 1 adds of the whole
parameter every step. Under autocast each slice was also cast on its own (autocast caches the cast
of a whole parameter, not of a slice).

Inside :func:`shared_slices` (the trainer's forward pass, every precision) :func:`bank_slice`
casts a parameter at most once and, for a slice that is one of equal consecutive chunks, splits it
once into those chunks, so that the gradient is assembled by one concatenation. The values and
gradients are the same (the slices are disjoint, so their gradients add exactly); outside it the
slice is cut from the parameter itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

__all__ = ["bank_slice", "shared_slices"]

_cache: ContextVar[dict[tuple, object] | None] = ContextVar("msmtrec_bank_slices", default=None)


@contextmanager
def shared_slices() -> Iterator[None]:
    """A forward pass in which :func:`bank_slice` casts and splits each parameter at most once; the
    copies are dropped on exit (the next step's weights are new)."""
    token = _cache.set({})
    try:
        yield
    finally:
        _cache.reset(token)


def bank_slice(param: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
    """``param[rows]`` (rows along dim 0, step 1), in the autocast dtype if autocast is on."""
    cache = None if torch.compiler.is_compiling() else _cache.get()  # dynamo cannot trace a ContextVar's get
    if cache is None:
        return param[rows]
    whole = _cast(param, cache)
    n = whole.shape[0]
    start, stop, _ = rows.indices(n)
    size = stop - start
    if size == n:
        return whole
    if size <= 0 or n % size or start % size:
        return whole[rows]
    key = (id(param), whole.dtype, size)
    chunks = cache.get(key)
    if chunks is None:
        chunks = cache[key] = whole.split(size)
    return chunks[start // size]


def _cast(param: torch.Tensor, cache: dict) -> torch.Tensor:
    device = param.device.type
    if not torch.is_autocast_enabled(device):
        return param
    dtype = torch.get_autocast_dtype(device)
    if param.dtype == dtype:
        return param
    key = (id(param), dtype)
    cast = cache.get(key)
    if cast is None:
        cast = cache[key] = param.to(dtype)
    return cast
