"""Peak memory of getting a dataset ready: in memory (``load_dataset``) vs streamed
(``open_streaming`` + one full epoch of training batches). Run each mode in its own process:

    python benchmarks/load_memory.py memory DIR/spec.yaml
    python benchmarks/load_memory.py stream DIR/spec.yaml
    python benchmarks/load_memory.py memory DIR/spec.yaml --system-malloc

The process keeps freed blocks for reuse as ``msmtrec train`` does
(:func:`msmtrec.train.host_memory.keep_freed_memory`); ``--system-malloc`` leaves glibc's
thresholds as they are.

(e.g. on ``msmtrec synth --rows 12500000 --out DIR``). Prints rows, wall time and peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.data import load_dataset, open_streaming  # noqa: E402
from msmtrec.train.host_memory import keep_freed_memory  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    system = "--system-malloc" in args
    args = [a for a in args if a != "--system-malloc"]
    if len(args) != 2 or args[0] not in ("memory", "stream"):
        sys.exit(__doc__)
    mode, spec = args
    kept = not system and keep_freed_memory()
    t = time.perf_counter()
    if mode == "memory":
        n = len(load_dataset(spec).train)
    else:
        n = sum(len(b) for b in open_streaming(spec, batch_size=2048).train_batches(0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode}: {n:,} train rows ready/streamed in {time.perf_counter() - t:.1f} s; peak RSS {rss:,.0f} MiB"
          f" (malloc {'keeps freed blocks' if kept else 'as the system sets it'})")


if __name__ == "__main__":
    main()
