"""Data-parallel scaling: 2 ranks × 1 thread against 1 rank × 1 thread, same global batch, in one
run; and the streaming reader's rows/s per rank against what a training step consumes.

    python benchmarks/scaling.py                              # SharedBottom and PLE, 200k rows
    python benchmarks/scaling.py --models ple --rows 400000 --stream

Each configuration is started by PyTorch's elastic launcher (as ``torchrun`` /
``msmtrec train --nproc`` start ranks) and trains through the library's ``Trainer``: one warm-up
epoch, then ``--repeats`` timed epochs, each between two barriers. 1 rank is a plain process (no
DDP); 2 ranks are gloo + DistributedDataParallel with half the global batch each. The two are
started in turn ``--rounds`` times and the fastest epoch of each counts: on a shared machine that
is the figure least disturbed by other jobs (the load average is printed at both ends).

Also printed per model, to say what limits the speed-up:

- "ceiling": the speed-up 2 ranks would reach if communication were free — the CPU time of a
  step of the global batch over that of a step of half of it, both on 1 rank through the
  ``Trainer``, the two alternated (what does not shrink with the batch — the Adam step, the
  per-operation overhead — caps it below 2);
- "2 independent processes": two processes each training a model of its own on the whole global
  batch at the same time (no DDP, nothing exchanged), their samples/s together over 1 rank's —
  what this machine gives a second process at all, whatever data parallelism does (other jobs'
  share of the cores, and any hardware the two cores share, show here);
- the step time on each side, one gloo all-reduce of a tensor as large as the model's parameters
  (what DDP reduces every step), the CPU time of one Adam step (which every rank repeats in full)
  and the CPU time per sample on each side; and once, the all-reduce bandwidth at 1, 16 and 64 MB.

Setting (DESIGN.md): synthetic data, 7 categorical fields × 16-dim embeddings (vocabulary 1,000),
3 scenarios × 2 tasks, global batch 2048, Adam, default model sizes.

``--stream`` also times the streamed path: a synthetic Parquet file of the same shape (written once
to ``--stream-dir``) read through ``StreamedDataset.train_batches`` with no model, as rank 0 of 1
and of 2 (every rank reads and encodes every row group and keeps its share of the rows), and a
streamed training epoch on 1 and 2 ranks.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data import InMemoryDataset, open_streaming  # noqa: E402
from msmtrec.data.encoded import EncodedData  # noqa: E402
from msmtrec.models import build_model  # noqa: E402
from msmtrec.train import Trainer  # noqa: E402
from msmtrec.train.distributed import Ranks, local_launch_config, process_group  # noqa: E402
from throughput import random_data  # noqa: E402


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def worker(name: str, rows: int, batch_size: int, stream_spec: str | None, repeats: int,
           independent: bool = False) -> dict:
    """One rank: a warm-up epoch, then ``repeats`` timed ones; rank 0's figures: samples/s of all
    ranks together in the fastest, CPU time per sample of the cheapest. ``independent``: every
    rank trains a model of its own on the whole global batch (no DDP, no communication; the group
    only times the epochs)."""
    torch.set_num_threads(1)
    with process_group("cpu") as (group, _):
        ranks = Ranks() if independent else group
        if stream_spec:
            data = open_streaming(stream_spec, batch_size=batch_size, seed=0)
        else:
            train, schema = random_data(rows)
            val = train.take(slice(0, 4096))
            data = InMemoryDataset(train, val, val, schema)
        torch.manual_seed(0)
        model = build_model(name, data.schema, {})
        config = TrainConfig(model=name, batch_size=batch_size // ranks.world_size, max_epochs=1)
        trainer = Trainer(model, config, data, progress=False, ranks=ranks)
        trainer.train_epoch(0)  # allocator, kernels, DDP's bucket rebuild after the first step
        walls, cpus = [], []
        for epoch in range(1, repeats + 1):
            _barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            _, n = trainer.train_epoch(epoch)
            cpu = torch.tensor(time.process_time() - c0, dtype=torch.float64)
            _barrier()
            walls.append(time.perf_counter() - t0)
            if group.distributed:
                dist.all_reduce(cpu)  # CPU seconds of all ranks
            cpus.append(float(cpu))
        seconds, steps = min(walls), -(-n // config.batch_size)
        out = {"samples_per_s": n * group.world_size / seconds, "step_ms": 1000 * seconds / steps,
               "cpu_us_per_sample": 1e6 * min(cpus) / (n * group.world_size), "params": model.num_parameters()}
        if independent:
            return out
        # Work every rank repeats at every step, whatever its share of the batch: the Adam step.
        c0 = time.process_time()
        for _ in range(20):
            trainer.optimizer.step()
        out["adam_step_ms"] = 1000 * (time.process_time() - c0) / 20
        if not ranks.distributed:
            out["full_vs_half_step"] = step_ratio(model, config, data, batch_size)
        if ranks.distributed:  # what DDP all-reduces every step (gradients of every parameter)
            flat = torch.zeros(model.num_parameters())
            for _ in range(5):
                dist.all_reduce(flat)
            t0 = time.perf_counter()
            for _ in range(50):
                dist.all_reduce(flat)
            out["allreduce_ms"] = 1000 * (time.perf_counter() - t0) / 50
        return out


def step_ratio(model, config: TrainConfig, data, batch_size: int, reps: int = 7) -> float:
    """CPU time of a training step at ``batch_size`` over one at half of it, through the
    ``Trainer`` on 1 rank: epochs of 4 global batches, the two sizes alternated ``reps`` times and
    the cheapest of each taken (alternating spreads other jobs' disturbance over both)."""
    if data.train is not None:
        rows = data.train.take(slice(0, 4 * batch_size))
    else:  # streamed: the first rows of an epoch
        rows = EncodedData.concat(list(itertools.islice(data.train_batches(0), 4)))
    small = InMemoryDataset(rows, data.val, data.test, data.schema)
    trainers = {b: Trainer(model, config.replace(batch_size=b), small, progress=False)
                for b in (batch_size, batch_size // 2)}
    best = {b: float("inf") for b in trainers}
    for rep in range(reps + 1):  # the first round warms up
        for b, trainer in trainers.items():
            c0 = time.process_time()
            _, n = trainer.train_epoch(rep)
            if rep:
                best[b] = min(best[b], (time.process_time() - c0) / (n // b))
    return best[batch_size] / best[batch_size // 2]


def allreduce_rates(sizes_mb: list[int]) -> dict[int, float]:
    """One rank of 2: GB/s of a gloo all-reduce of float32 tensors of each size (MB of gradients)."""
    torch.set_num_threads(1)
    with process_group("cpu"):
        out = {}
        for mb in sizes_mb:
            flat = torch.zeros(mb * 2**20 // 4)
            dist.all_reduce(flat)
            reps = max(2, 64 // mb)
            t0 = time.perf_counter()
            for _ in range(reps):
                dist.all_reduce(flat)
            out[mb] = mb * 2**20 * reps / (time.perf_counter() - t0) / 1e9
        return out


def launch(nproc: int, fn, *args):
    """``fn(*args)`` on ``nproc`` ranks started as ``msmtrec train --nproc`` starts them; rank 0's result."""
    from torch.distributed.launcher.api import elastic_launch

    return elastic_launch(local_launch_config(nproc), fn)(*args)[0]


def reader_rate(spec: str, batch_size: int, world_size: int) -> float:
    """Rows/s that rank 0 of ``world_size`` receives from the streamed train split (no model)."""
    torch.set_num_threads(1)
    data = open_streaming(spec, batch_size=batch_size, seed=0)
    for _ in data.train_batches(0, rank=0, world_size=world_size):  # page cache warm
        pass
    t0 = time.perf_counter()
    n = sum(len(b) for b in data.train_batches(1, rank=0, world_size=world_size))
    return n / (time.perf_counter() - t0)


def stream_spec(rows: int, folder: Path) -> str:
    from msmtrec.data.synthetic import SyntheticConfig, write_synthetic

    total = int(round(rows / 0.8))  # train is 80 % of the written rows
    if not (folder / "spec.yaml").is_file():
        write_synthetic(folder, SyntheticConfig(rows=total, num_fields=7, vocab=1000, scenarios=3, tasks=2, seed=0),
                        chunk_rows=65_536 * 4, overwrite=True)
    return str(folder / "spec.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shared_bottom,ple")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=2048, help="global batch (each of 2 ranks gets half)")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per start; the fastest counts")
    ap.add_argument("--rounds", type=int, default=2, help="starts of 1 rank then 2 ranks; the fastest counts")
    ap.add_argument("--stream", action="store_true", help="also time the streamed path")
    ap.add_argument("--stream-dir", type=Path, help="synthetic Parquet folder for --stream (written if absent)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"# scaling: {args.rows:,} rows, global batch {args.batch_size}, 1 thread per rank, torch "
          f"{torch.__version__}, {platform.machine()} {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    specs = [("in memory", None)]
    if args.stream:
        specs.append(("streamed", stream_spec(args.rows, args.stream_dir or Path(f"/tmp/msmtrec-scaling-{args.rows}"))))
    print("| model | data | 1 rank (samples/s) | 2 ranks (samples/s) | speed-up | efficiency | ceiling | "
          "2 independent processes | step 1 rank | step 2 ranks | all-reduce of the gradients | Adam step | "
          "CPU µs/sample: 1 rank | 2 ranks |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        for kind, spec in specs:
            best: dict[str, dict] = {}
            for _ in range(args.rounds):  # alternated, so that all see the machine's quiet moments
                for key, nproc, independent in (("one", 1, False), ("two", 2, False), ("apart", 2, True)):
                    r = launch(nproc, worker, name, args.rows, args.batch_size, spec, args.repeats, independent)
                    best[key] = max(best.get(key, r), r, key=lambda x: x["samples_per_s"])
            one, two, apart = best["one"], best["two"], best["apart"]
            ratio = two["samples_per_s"] / one["samples_per_s"]
            print(f"| {name} ({one['params']:,} params) | {kind} | {one['samples_per_s']:,.0f} | "
                  f"{two['samples_per_s']:,.0f} | {ratio:.2f}× | {ratio / 2:.0%} | {one['full_vs_half_step']:.2f}× | "
                  f"{apart['samples_per_s'] / one['samples_per_s']:.2f}× | {one['step_ms']:.1f} ms | "
                  f"{two['step_ms']:.1f} ms | {two['allreduce_ms']:.2f} ms | {one['adam_step_ms']:.2f} ms | "
                  f"{one['cpu_us_per_sample']:.1f} | {two['cpu_us_per_sample']:.1f} |", flush=True)
    rates = launch(2, allreduce_rates, [1, 16, 64])
    print("\ngloo all-reduce between 2 ranks of this machine: "
          + ", ".join(f"{mb} MB {gbps:.2f} GB/s" for mb, gbps in rates.items()))
    if args.stream:
        spec = specs[1][1]
        one, two = reader_rate(spec, args.batch_size, 1), reader_rate(spec, args.batch_size // 2, 2)
        print(f"\nstreaming reader, no model, 1 thread: {one:,.0f} rows/s to the only rank; {two:,.0f} rows/s to "
              f"rank 0 of 2 (it reads and encodes every row group and keeps half the rows)")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
