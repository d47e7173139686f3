"""Group a batch by scenario so that scenario-specific parameters run only on their own rows."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

#: Under autocast, a ``rowwise`` grouping pads every scenario's block to a multiple of this.
ROW_BUCKET = 64


def capturing() -> bool:
    """Whether a graph is being captured (``torch.jit.trace``, ``torch.export`` and the ONNX
    exporters built on them): a Python number read from a tensor would become a constant of the
    graph, so code that branches on data must stay in tensor operations."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


class ScenarioGroups:
    """A stable sort of the batch by scenario index, with the inverse permutation.

    ``sort(x)`` puts the rows in scenario order, one block per scenario (``sizes[s]`` rows; the
    real ``counts[s]`` rows first); ``split(x)`` returns the blocks (possibly empty), in scenario
    order; ``merge(chunks)`` puts the results of the :attr:`present` scenarios' blocks (in that
    order) back in the batch's original row order, and ``restore(x)`` does so for a whole tensor
    laid out as ``sort`` lays it out. Applying a scenario's parameters to its own block is how
    models honour the contract "never compute every scenario's tower for every sample and mask
    afterwards".

    ``rowwise=True`` says that what runs on the blocks computes each output row from the same
    input row alone (banks, gates and towers do; a batch norm does not). Then, under autocast,
    each block is padded with zero rows to a multiple of :data:`ROW_BUCKET` (whose outputs
    ``merge`` / ``restore`` drop): oneDNN's bf16/fp16 matmuls compile a kernel for every new shape
    (about 5 ms each, far more than the matmul), and unpadded block sizes change every batch.
    Outside autocast (fp32) nothing is padded and ``sizes == counts``.

    While a graph is captured (:func:`capturing`) the row counts are not known: a block is the
    rows of ``nonzero(scenario == s)``, every scenario is :attr:`present` (an absent one has an
    empty block), nothing is padded (:attr:`padded` is False), results are gathered back by the
    inverse permutation (each row's scenario must be one of the model's), and ``order``,
    ``counts``, ``sort`` and ``restore`` are not available. Both give the same numbers.
    """

    def __init__(self, scenario: torch.Tensor, num_scenarios: int, *, rowwise: bool = False) -> None:
        self.num_rows = scenario.shape[0]
        if capturing():
            self.index = [torch.nonzero(scenario == s).view(-1) for s in range(num_scenarios)]
            self.present = list(range(num_scenarios))
            self.padded = False
            return
        self.index = None
        self.order = torch.argsort(scenario, stable=True)
        self.counts: list[int] = torch.bincount(scenario, minlength=num_scenarios).tolist()
        if len(self.counts) > num_scenarios:
            raise IndexError(f"scenario index {len(self.counts) - 1} out of range for {num_scenarios} scenarios")
        self.present = [s for s, n in enumerate(self.counts) if n]
        bucket = ROW_BUCKET if rowwise and torch.is_autocast_enabled(scenario.device.type) else 1
        self.sizes: list[int] = [n + (-n % bucket) for n in self.counts]
        # Where each sorted row goes in the (padded) layout: its rank plus the padding before it.
        position = torch.arange(self.order.numel(), device=self.order.device)
        if bucket > 1:
            before = [0]
            for n, size in zip(self.counts, self.sizes):
                before.append(before[-1] + size - n)
            position += torch.tensor(before[:-1], device=position.device).repeat_interleave(
                torch.tensor(self.counts, device=position.device))
        self.padded = bucket > 1
        self.inverse = torch.empty_like(self.order).index_copy_(0, self.order, position)

    def sort(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``x`` in scenario order, each scenario's block padded to ``sizes[s]`` rows."""
        if not self.padded:
            return x.index_select(0, self.order)  # its backward an index_add, not index_put's accumulation
        return x.new_zeros(sum(self.sizes), *x.shape[1:]).index_copy(0, self.inverse, x)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.index is not None:
            return tuple(x.index_select(0, i) for i in self.index)
        return self.sort(x).split(self.sizes)

    def merge(self, chunks: Sequence[torch.Tensor]) -> torch.Tensor:
        """The results of the :attr:`present` scenarios' blocks, in the batch's row order."""
        rows = torch.cat(list(chunks))
        if self.index is not None:
            # Gather the rows back by the inverse permutation: only the [B] positions are
            # scattered. (Scattering the rows themselves, index_copy, is ONNX's ScatterElements
            # with a [B, W] index: a quarter of AutoIFS's time in ONNX Runtime.)
            order = torch.cat([self.index[s] for s in self.present])  # the row of each result
            position = torch.ones_like(order).cumsum(0) - 1  # arange that stays dynamic in a trace
            return rows.index_select(0, torch.zeros_like(order).index_copy(0, order, position))
        return self.restore(rows)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Rows laid out as ``sort`` lays them out back in the batch's row order."""
        return x.index_select(0, self.inverse)

    def apply(self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
        """``fn(s, *blocks_of_s)`` for every :attr:`present` scenario, results merged back in row
        order.

        Scenarios with no rows in the batch are skipped in eager mode (their parameters get no
        gradient from this batch, as they should)."""
        split = [self.split(t) for t in tensors]
        return self.merge([fn(s, *(blocks[s] for blocks in split)) for s in self.present])
