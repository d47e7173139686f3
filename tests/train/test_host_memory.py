"""Freed blocks kept for the next step: a run's process settings make repeated large allocations
stop page-faulting (each fault is a fresh page the kernel zeroes)."""

import json
import subprocess
import sys
import textwrap

import pytest

from msmtrec.train.host_memory import keep_freed_memory

# Steps that allocate, touch and free four blocks of 1–24 MiB, a different mix each step, as a
# training step's activations and gradients do; prints the minor page faults per step.
PROBE = textwrap.dedent("""
    import json, resource, sys
    import torch
    if sys.argv[1] == "run":  # the settings `msmtrec train` applies to its process
        from msmtrec.config import TrainConfig
        from msmtrec.train.api import configure_torch
        configure_torch(TrainConfig())

    def step(i):
        blocks = [torch.ones(((i * 7 + k * 5) % 24 + 1) << 18) for k in range(4)]
        return sum(float(b[-1]) for b in blocks)

    for i in range(10):
        step(i)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(200):
        step(i)
    print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 200))
""")


def _faults_per_step(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_runs_process_keeps_freed_blocks_instead_of_faulting_fresh_pages_in():
    assert keep_freed_memory()  # glibc: applied
    system, kept = _faults_per_step("system"), _faults_per_step("run")
    # 4 blocks of 12.5 MiB on average touch ~12,800 pages a step; glibc's own thresholds fault some
    # of them back in every step (about 60 here), the run's settings (almost) none.
    assert system > 20
    assert kept < system / 10
