"""Shared test helpers: tiny schemas and random batches built by hand."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.utils._python_dispatch
import torch.utils._pytree

from msmtrec.data.encoded import DataSchema, EncodedData

# Test tensors are tiny: one intra-op thread is faster than two, and it keeps the suite from
# collapsing when the machine is busy (OpenMP threads spin-wait under oversubscription).
torch.set_num_threads(1)


def make_schema(scenarios: int = 3, tasks: int = 2, fields: int = 3, vocab: int = 20, numeric: int = 2,
                **kwargs) -> DataSchema:
    return DataSchema(
        categorical=tuple((f"f{i}", vocab) for i in range(fields)),
        numeric=tuple(f"n{i}" for i in range(numeric)),
        scenarios=tuple(f"s{i}" for i in range(scenarios)),
        tasks=tuple(f"t{i}" for i in range(tasks)),
        **kwargs,
    )


def make_batch(schema: DataSchema, n: int = 64, seed: int = 0, mask_prob: float = 0.0) -> EncodedData:
    g = torch.Generator().manual_seed(seed)
    vocab = torch.tensor(schema.cardinalities)
    cat = (torch.rand(n, schema.num_fields, generator=g) * vocab).long()
    return EncodedData(
        categorical=cat,
        numeric=torch.randn(n, len(schema.numeric), generator=g),
        scenario=torch.randint(0, schema.num_scenarios, (n,), generator=g),
        labels=torch.randint(0, 2, (n, schema.num_tasks), generator=g).float(),
        label_mask=torch.rand(n, schema.num_tasks, generator=g) >= mask_prob,
        user=torch.randint(0, 10, (n,), generator=g) if schema.has_user else None,
    )


@pytest.fixture
def schema() -> DataSchema:
    return make_schema()


@pytest.fixture
def batch(schema) -> EncodedData:
    return make_batch(schema)


def modules_loaded_by(module: str) -> list[str]:
    """The ``msmtrec`` modules that importing ``module`` loads, in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('msmtrec')))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


class DtypeAudit(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every aten op run inside it as ``(op name, output dtype, output numel)`` (first
    floating output), below autocast: what the kernels really computed in."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, torch.dtype, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        first = next((t for t in torch.utils._pytree.tree_leaves(out)
                      if isinstance(t, torch.Tensor) and t.is_floating_point()), None)
        if first is not None:
            self.ops.append((func.overloadpacket.__name__, first.dtype, first.numel()))
        return out

    VIEWS = frozenset({"view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "transpose", "t", "permute",
                       "expand", "select", "slice", "alias", "as_strided", "detach", "split", "unbind"})

    def fp32(self, min_numel: int) -> list[tuple[str, int]]:
        """Ops (views excepted: they compute nothing) that produced an fp32 tensor of at least
        ``min_numel`` elements."""
        return [(name, n) for name, dtype, n in self.ops
                if dtype == torch.float32 and n >= min_numel and name not in self.VIEWS]

    def matmuls(self) -> list[tuple[str, torch.dtype]]:
        return [(name, dtype) for name, dtype, _ in self.ops if name in ("mm", "bmm", "addmm", "baddbmm")]
