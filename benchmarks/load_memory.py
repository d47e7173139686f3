"""Peak memory of getting a dataset ready: in memory (``load_dataset``) vs streamed
(``open_streaming`` + one full epoch of training batches). Run each mode in its own process:

    python benchmarks/load_memory.py memory DIR/spec.yaml
    python benchmarks/load_memory.py stream DIR/spec.yaml

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


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("memory", "stream"):
        sys.exit(__doc__)
    mode, spec = sys.argv[1], sys.argv[2]
    t = time.perf_counter()
    if mode == "memory":
        n = len(load_dataset(spec).train)
    else:
        n = sum(len(b) for b in open_streaming(spec, batch_size=2048).train_batches(0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode}: {n:,} train rows ready/streamed in {time.perf_counter() - t:.1f} s; peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
