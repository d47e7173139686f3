"""Bank parameters in the autocast dtype, cast once per forward pass.

Under autocast every op casts its fp32 weight operands to the autocast dtype; autocast caches the
cast of a whole parameter, but not of a slice. A bank read one scenario's slice at a time (its
heads, sub-experts or gates) therefore cast each slice on its own, and each slice's gradient came
back as a zero-filled fp32 tensor of the whole bank. Inside :func:`shared_casts` (the trainer's
autocast region) :func:`in_compute_dtype` casts a parameter once and the slices are taken of that
copy: the same values and gradients (the slices are disjoint, so their gradients add exactly),
fewer passes. Outside it, or without autocast, it returns the parameter itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

__all__ = ["in_compute_dtype", "shared_casts"]

_casts: ContextVar[dict[tuple[int, torch.dtype], torch.Tensor] | None] = ContextVar("msmtrec_casts", default=None)


@contextmanager
def shared_casts() -> Iterator[None]:
    """A forward pass in which :func:`in_compute_dtype` casts each parameter at most once; the
    copies are dropped on exit (the next step's weights are new)."""
    token = _casts.set({})
    try:
        yield
    finally:
        _casts.reset(token)


def in_compute_dtype(param: torch.Tensor) -> torch.Tensor:
    """``param`` in the autocast dtype, cast once within :func:`shared_casts`; else ``param``."""
    cache = _casts.get()
    device = param.device.type
    if cache is None or not torch.is_autocast_enabled(device) or torch.compiler.is_compiling():
        return param
    dtype = torch.get_autocast_dtype(device)
    if param.dtype == dtype:
        return param
    key = (id(param), dtype)
    cast = cache.get(key)
    if cast is None:
        cast = cache[key] = param.to(dtype)
    return cast
