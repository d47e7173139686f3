"""Group a batch by scenario so that scenario-specific parameters run only on their own rows."""

from __future__ import annotations

from typing import Callable, Sequence

import torch


def capturing() -> bool:
    """Whether a graph is being captured (``torch.jit.trace``, ``torch.export`` and the ONNX
    exporters built on them): a Python number read from a tensor would become a constant of the
    graph, so code that branches on data must stay in tensor operations."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


class ScenarioGroups:
    """The rows of each scenario in a batch, and the way back to the batch's row order.

    ``split(x)`` returns one chunk per scenario (possibly empty), in scenario order;
    ``merge(chunks)`` puts the results of the scenarios in :attr:`present` (in that order) back in
    the batch's row order, and ``restore(x)`` does so for a whole tensor computed on rows sorted by
    ``order``. Applying a scenario's parameters to its own chunk is how models honour the contract
    "never compute every scenario's tower for every sample and mask afterwards".

    In eager mode the batch is stably sorted by scenario once and the chunks are views of the
    sorted rows; :attr:`counts` holds the rows per scenario and :attr:`present` the scenarios with
    rows. While a graph is captured (:func:`capturing`) the row counts are not known, so a chunk is
    the rows of ``nonzero(scenario == s)``, every scenario is :attr:`present` (an absent one has an
    empty chunk), the results are scattered back with ``index_copy``, and ``order``, ``counts``
    and ``restore`` are not available. Both give the same numbers.
    """

    def __init__(self, scenario: torch.Tensor, num_scenarios: int) -> None:
        self.num_rows = scenario.shape[0]
        if capturing():
            self.index = [torch.nonzero(scenario == s).view(-1) for s in range(num_scenarios)]
            self.present = list(range(num_scenarios))
            return
        self.index = None
        self.order = torch.argsort(scenario, stable=True)
        self.counts: list[int] = torch.bincount(scenario, minlength=num_scenarios).tolist()
        if len(self.counts) > num_scenarios:
            raise IndexError(f"scenario index {len(self.counts) - 1} out of range for {num_scenarios} scenarios")
        self.present = [s for s, n in enumerate(self.counts) if n]
        self.inverse = torch.empty_like(self.order)
        self.inverse[self.order] = torch.arange(self.order.numel(), device=self.order.device)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.index is not None:
            return tuple(x.index_select(0, i) for i in self.index)
        return x[self.order].split(self.counts)

    def merge(self, chunks: Sequence[torch.Tensor]) -> torch.Tensor:
        """The results of the :attr:`present` scenarios' chunks, in the batch's row order."""
        rows = torch.cat(list(chunks))
        if self.index is not None:
            out = rows.new_zeros((self.num_rows, *rows.shape[1:]))
            return out.index_copy(0, torch.cat([self.index[s] for s in self.present]), rows)
        return self.restore(rows)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Rows in scenario order (as ``x[order]`` has them) back in the batch's row order."""
        return x[self.inverse]

    def apply(self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
        """``fn(s, *chunks_of_s)`` for every :attr:`present` scenario, results merged back in row
        order.

        Scenarios with no rows in the batch are skipped in eager mode (their parameters get no
        gradient from this batch, as they should)."""
        split = [self.split(t) for t in tensors]
        return self.merge([fn(s, *(chunks[s] for chunks in split)) for s in self.present])
