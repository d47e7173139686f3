"""Training precision: the autocast context, the gradient scaler, and the fp32 boundary.

- ``fp32``: plain fp32, nothing changes.
- ``bf16``: autocast to bfloat16 on the CPU (fast where the CPU has AVX-512 BF16 / AMX) or on a
  CUDA device that supports it.
- ``fp16``: CUDA only; autocast to float16 with a gradient scaler (dynamic loss scaling).

Autocast changes only what the operations compute in: the parameters (master weights), their
gradients, the optimiser state and the checkpoints stay fp32. The model runs inside
:meth:`Precision.forward_pass`; its output leaves it through :meth:`Precision.fp32`, so losses, task
weighting and metrics are computed in fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_map

from msmtrec.config import PRECISIONS
from msmtrec.errors import ConfigError
from msmtrec.nn.bank_slices import shared_slices

#: The autocast dtype of each precision (None: no autocast).
DTYPES: dict[str, torch.dtype | None] = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16)))


class Precision:
    """``name`` (``fp32`` | ``bf16`` | ``fp16``) on ``device``; a precision the device cannot run
    is a :class:`ConfigError`.

    ``note`` is a line for the log when the precision runs but slowly (bf16 on a CPU without
    native bf16 matmuls), else None."""

    def __init__(self, name: str, device: torch.device | str) -> None:
        if name not in DTYPES:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{name}'")
        device = torch.device(device)
        self.name, self.device_type, self.dtype = name, device.type, DTYPES[name]
        self.note: str | None = None
        if name == "fp16" and device.type != "cuda":
            raise ConfigError(f"precision fp16 needs a CUDA device (this run's device is {device.type}); "
                              f"use bf16 on the CPU")
        if name == "bf16":
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise ConfigError(f"precision bf16: CUDA device {torch.cuda.get_device_name(device)} has no bfloat16 "
                                  f"support; use fp16")
            if device.type not in ("cpu", "cuda"):
                raise ConfigError(f"precision bf16 runs on cpu or cuda, not {device.type}")
            if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                self.note = ("precision bf16: this CPU has no native bf16 matmul (AVX-512 BF16 / AMX), so bf16 "
                             "matmuls are emulated, 60-90x slower than fp32 on an AVX2 CPU; use fp32 here")
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    @contextlib.contextmanager
    def forward_pass(self) -> Iterator[None]:
        """The context the model's forward pass runs in: autocast to the precision's dtype (none for
        fp32), and each bank parameter cast and split once however often it is sliced
        (:func:`~msmtrec.nn.bank_slices.shared_slices`)."""
        mixed = torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()
        with mixed, shared_slices():
            yield

    @staticmethod
    def fp32(output: Any) -> Any:
        """``output`` (a tensor, or a tuple / named tuple / dict of them) with its floating tensors
        in fp32 (fp32 tensors are returned as they are)."""
        return tree_map(lambda v: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v, output)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``loss.backward()`` and ``optimizer.step()``; with fp16 through the gradient scaler (the
        loss is scaled, and a step whose gradients overflowed is skipped)."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
