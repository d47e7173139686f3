"""Live progress of a series of trainings (the runs of a bench, the trials of a tune): which run of
how many, its epoch, validation mean AUC, samples/s and the time left.

On a terminal it is one tqdm line rewritten in place, with the runs' start and end lines printed
above it. Elsewhere (a log file, CI) it prints plain lines: each run's start and end, and epoch
lines at most every ``interval`` seconds, so that a long run is not silent and a log is not flooded.

The time left is an estimate from the runs so far: the mean time of a finished run (before the
first finishes: the current run's time per epoch × its epochs) × the runs to go, less the time the
current run has had; early stopping makes it pessimistic. With a time budget (``tune --timeout``)
it is at most what the budget leaves.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from tqdm.auto import tqdm

__all__ = ["RunsProgress", "duration"]


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.2 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RunsProgress:
    """Progress of ``total`` runs (None: unknown, e.g. a tune bounded by time only).

    Args:
        total: how many runs this series will do.
        echo: where plain lines go (not on a terminal).
        live: one tqdm line on stderr (None: when stderr is a terminal).
        interval: seconds between two plain epoch lines.
        deadline: ``time.monotonic()`` value after which no run starts (a time budget).
        first: number of the first run (a resumed tune goes on counting).
        clock: the time source (tests).
    """

    def __init__(self, total: int | None, echo: Callable[[str], None], *, live: bool | None = None,
                 interval: float = 30.0, deadline: float | None = None, first: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.echo, self.interval, self.deadline, self.clock = total, echo, interval, deadline, clock
        self.live = sys.stderr.isatty() if live is None else live
        self.index = self.done = first - 1  # the current run's number; runs before this series
        self.finished: list[float] = []  # seconds of each finished run
        self.label, self.max_epochs, self.epochs = "", None, 0
        self.run_started = self.last_line = clock()
        self.bar = tqdm(total=total, initial=self.done, file=sys.stderr, dynamic_ncols=True, leave=False, unit="run",
                        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} runs{postfix}") if self.live else None

    # -- what a series calls -------------------------------------------------------------------------
    def start(self, label: str, max_epochs: int | None = None, detail: str = "") -> None:
        """Run ``label`` begins (``max_epochs``: the epochs it may train in all, for the estimate;
        ``detail``: said once, on its start line)."""
        self.index += 1
        self.label, self.max_epochs, self.epochs = label, max_epochs, 0
        self.run_started = self.last_line = self.clock()
        self._line(f"{self._which()} {label}" + (f": {detail}" if detail else ""))
        self._refresh("starting")

    def epoch(self, record: dict[str, Any]) -> None:
        """A trainer epoch record (pass as ``train(on_epoch=...)``)."""
        self.epochs = record["global_epoch"]
        auc = record.get("val_mean_auc")
        sps = record.get("samples_per_second")
        stage = "" if record["stage"] == "train" else f"{record['stage']} "
        status = (f"{stage}epoch {record['epoch']}/{record['max_epochs']}, val AUC {'n/a' if auc is None else f'{auc:.4f}'}"
                  + (f", {sps:,.0f} samples/s" if sps else "") + self._left())
        self._refresh(status)
        now = self.clock()
        if not self.live and now - self.last_line >= self.interval:
            self.last_line = now
            self.echo(f"{self._which()} {self.label}: {status}")

    def end(self, summary: str) -> None:
        """The current run finished (or was pruned); ``summary`` says how."""
        self.finished.append(self.clock() - self.run_started)
        self._line(f"{self._which()} {self.label}: {summary}")
        if self.bar is not None:
            self.bar.n = self.done + len(self.finished)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    # -- helpers -----------------------------------------------------------------------------------
    def _which(self) -> str:
        return f"[{self.index}/{self.total}]" if self.total else f"[{self.index}]"

    def seconds_left(self) -> float | None:
        """The estimate of the module docstring (None: nothing to go on yet)."""
        now = self.clock()
        in_run = now - self.run_started
        if self.finished:
            per_run = sum(self.finished) / len(self.finished)
        elif self.epochs and self.max_epochs:
            per_run = in_run / self.epochs * self.max_epochs
        else:
            return None
        left = None
        if self.total:
            left = max(per_run - in_run, 0.0) + max(self.total - self.index, 0) * per_run
        if self.deadline is not None:
            budget = max(self.deadline - now, 0.0)
            left = budget if left is None else min(left, budget)
        return left

    def _left(self) -> str:
        left = self.seconds_left()
        return "" if left is None else f", about {duration(left)} left"

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            self.echo(text)

    def _refresh(self, status: str) -> None:
        if self.bar is not None:
            part = min(self.epochs / self.max_epochs, 0.99) if self.max_epochs else 0.0
            self.bar.n = self.done + len(self.finished) + part
            self.bar.set_description_str(f"{self._which()} {self.label}", refresh=False)
            self.bar.set_postfix_str(status)
