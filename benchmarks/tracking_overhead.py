"""What experiment tracking costs a run: the time to hand one epoch's record to each logger
(TensorBoard event file, MLflow's default SQLite store), against the epoch it describes.

    python benchmarks/tracking_overhead.py                 # MMoE on the embedded data, 3 epochs

Trains one run with both loggers (so the records and the run's files are real), then, in the same
process, times ``RunLoggers.epoch(record)`` on fresh loggers of each kind over the run's records
repeated ``--calls`` times. Printed: milliseconds per epoch record and per-epoch share of the
run's mean epoch time. The one-off costs (creating the MLflow database, about 10 s the first time
in a runs root; the final artifacts) are printed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.tracking import RunLoggers  # noqa: E402
from msmtrec.train import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mmoe")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30, help="epoch records timed per logger")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="msmtrec-tracking-") as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        run = train(TrainConfig(model=args.model, max_epochs=args.epochs, patience=args.epochs, threads=args.threads,
                                runs_root=str(root), loggers=["tensorboard", "mlflow"]))
        total = time.perf_counter() - t0
        history = [json.loads(line) for line in (run.run_dir / "log.jsonl").read_text().splitlines()]
        epoch_seconds = sum(r["seconds"] for r in history) / len(history)
        print(f"{args.model} on womens-ecommerce, {len(history)} epochs with both loggers: {total:.1f} s in all "
              f"(first MLflow database included), mean epoch {epoch_seconds:.2f} s; "
              f"torch {__import__('torch').__version__}, {platform.processor() or platform.machine()}, "
              f"load {os.getloadavg()[0]:.2f}")
        for name in ("tensorboard", "mlflow"):
            run_dir = root / f"timing-{name}"
            run_dir.mkdir()
            loggers = RunLoggers()
            t0 = time.perf_counter()
            loggers.open(run.config.replace(loggers=[name]), run_dir)
            opened = time.perf_counter() - t0
            records = [{**r, "global_epoch": i + 1} for i, r in enumerate(history * (args.calls // len(history) + 1))]
            records = records[:args.calls]
            t0 = time.perf_counter()
            for record in records:
                loggers.epoch(record)
            per_epoch = (time.perf_counter() - t0) / len(records)
            scalars = len(__import__("msmtrec.tracking", fromlist=["epoch_scalars"]).epoch_scalars(records[0]))
            t0 = time.perf_counter()
            loggers.finish(run.test, sorted(run.run_dir.glob("*.png")) + [run.run_dir / "results.md"])
            finished = time.perf_counter() - t0
            print(f"  {name:12s} {per_epoch * 1000:7.1f} ms per epoch record ({scalars} scalars) = "
                  f"{per_epoch / epoch_seconds * 100:5.2f} % of an epoch; open {opened * 1000:.0f} ms, "
                  f"finish (test metrics + files) {finished * 1000:.0f} ms")


if __name__ == "__main__":
    main()
