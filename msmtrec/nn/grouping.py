"""Group a batch by scenario so that scenario-specific parameters run only on their own rows."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

#: Under autocast, ``apply(..., rowwise=True)`` pads every scenario's chunk to a multiple of this.
ROW_BUCKET = 64


class ScenarioGroups:
    """A stable sort of the batch by scenario index, with the inverse permutation.

    ``split(x)`` returns one chunk per scenario (possibly empty), in scenario order;
    ``merge(chunks)`` puts per-chunk results back in the batch's original row order, and
    ``restore(x)`` does so for a whole tensor computed on rows sorted by ``order``.
    Applying a scenario's parameters to its own chunk is how models honour the contract
    "never compute every scenario's tower for every sample and mask afterwards".
    """

    def __init__(self, scenario: torch.Tensor, num_scenarios: int) -> None:
        self.order = torch.argsort(scenario, stable=True)
        self.counts: list[int] = torch.bincount(scenario, minlength=num_scenarios).tolist()
        if len(self.counts) > num_scenarios:
            raise IndexError(f"scenario index {len(self.counts) - 1} out of range for {num_scenarios} scenarios")
        self.inverse = torch.empty_like(self.order)
        self.inverse[self.order] = torch.arange(self.order.numel(), device=self.order.device)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x[self.order].split(self.counts)

    def merge(self, chunks: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.restore(torch.cat(list(chunks)))

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Rows in scenario order (as ``x[order]`` has them) back in the batch's row order."""
        return x[self.inverse]

    def apply(self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, rowwise: bool = False) -> torch.Tensor:
        """``fn(s, *chunks_of_s)`` for every scenario with rows, results merged back in row order.

        Scenarios with no rows in the batch are skipped (their parameters get no gradient from
        this batch, as they should).

        ``rowwise=True`` says that ``fn`` computes each output row from the same rows of its inputs
        alone (banks, gates and towers do; a batch norm does not). Then, under autocast, every
        chunk is padded with zero rows to a multiple of :data:`ROW_BUCKET` and the padded rows'
        outputs are dropped: oneDNN's bf16/fp16 matmuls compile a kernel for every new shape
        (about 5 ms each, far more than the matmul), and unpadded chunk sizes change every batch.
        Outside autocast (fp32) nothing is padded."""
        split = [self.split(t) for t in tensors]
        bucket = ROW_BUCKET if rowwise and tensors and torch.is_autocast_enabled(tensors[0].device.type) else 1
        outs = []
        for s, n in enumerate(self.counts):
            if n:
                pad = -n % bucket
                chunks = [c[s] if not pad else F.pad(c[s], (0, 0) * (c[s].dim() - 1) + (0, pad)) for c in split]
                outs.append(fn(s, *chunks)[:n])
        return self.merge(outs)
