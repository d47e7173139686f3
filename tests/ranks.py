"""Run a test function on real torch.distributed ranks: separate processes joined in a gloo group
through the environment, as torchrun starts them (one intra-op thread each)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(fn: Callable[..., Any], rank: int, world_size: int, port: int, args: tuple, out: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    try:
        torch.save({"result": fn(*args)}, out / f"rank{rank}.pt")
    except BaseException:
        torch.save({"error": traceback.format_exc()}, out / f"rank{rank}.pt")
        raise SystemExit(1)


def run_ranks(fn: Callable[..., Any], *args: Any, tmp_path: Path, world_size: int = 2, timeout: float = 300) -> list:
    """``fn(*args)`` on ``world_size`` ranks; every rank's return value, in rank order. ``fn`` must
    be importable (a module-level function) and its results loadable by ``torch.load``."""
    out = Path(tmp_path) / f"ranks-{fn.__name__}"
    out.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(fn, r, world_size, port, args, out)) for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)  # a safety net against a hung collective, not a timing assertion
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    if hung:
        pytest.fail(f"ranks {hung} did not finish within {timeout} s (a collective waits forever?)")
    results = []
    for r in range(world_size):
        path = out / f"rank{r}.pt"
        if not path.is_file():
            pytest.fail(f"rank {r} exited with {procs[r].exitcode} and left no result")
        got = torch.load(path, weights_only=False)
        if "error" in got:
            pytest.fail(f"rank {r} failed:\n{got['error']}")
        results.append(got["result"])
    return results
