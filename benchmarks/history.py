"""What a behaviour history costs: SharedBottom with a 50-item history pooled by target attention
(and by mean) against the same model without one, trained through the library's Trainer on the
throughput benchmark's data (7 fields × vocabulary 1000, 3 scenarios × 2 tasks, batch 2048), plus
what building the histories from a log costs (time, and memory held for the streamed path), and
the attention unit alone (fp32): its hand-written backward against autograd's of the same operators.

    python benchmarks/history.py                               # 800k rows, history 50
    python benchmarks/history.py --rows 200000 --threads 1 --build-rows 0
    python benchmarks/history.py --precision bf16 --build-rows 0  # every variant under bf16 autocast

Every row's history is full (50 entries: the most work per row); its ids are items of field f1,
so the history shares that field's embedding rows as a built history does. Figures are samples/s
of one training epoch (higher is better; the best of ``--rounds`` epochs, the variants taking
turns: on a shared machine other jobs only ever slow an epoch down, so the best is the least
disturbed; the median and every round are printed too) and the cost: the model without
history's samples/s over the variant's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from msmtrec.data import InMemoryDataset, load_dataset  # noqa: E402
from msmtrec.data.encoded import EncodedData, ListFeature  # noqa: E402
from throughput import malloc_setting, random_data, train_throughput  # noqa: E402


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def with_history(data: EncodedData, max_len: int, vocab: int, seed: int = 1) -> EncodedData:
    """``data`` with a full history of ``max_len`` random item ids per row."""
    g = torch.Generator().manual_seed(seed)
    lists = torch.randint(1, vocab, (len(data), max_len), generator=g)
    return replace(data, lists=lists, list_lengths=torch.full((len(data), 1), max_len, dtype=torch.int64))


def build_cost(rows: int, max_len: int) -> dict:
    """Write a synthetic log with a history and time the pipeline's history pass; the bytes the
    built histories hold (what a streamed dataset keeps besides val, test and its buffer)."""
    from msmtrec.data.dataset import _histories
    from msmtrec.data.sources import plan_splits
    from msmtrec.data.synthetic import SyntheticConfig, write_synthetic

    with tempfile.TemporaryDirectory() as folder:
        spec = write_synthetic(folder, SyntheticConfig(rows=rows, num_fields=7, vocab=1000, history_len=max_len,
                                                       history_signal=1.0, seed=0))
        t0 = time.perf_counter()
        ds = load_dataset(spec)
        total = time.perf_counter() - t0
        sources = plan_splits(ds.spec)
        t0 = time.perf_counter()
        histories = _histories(ds.encoders, sources)
        build = time.perf_counter() - t0
        held = sum(a.nbytes for w in histories._windows["history"].values()
                   for a in (w.rows, w.start, w.stop, w.events))
        padded = sum(ds.split(s).lists.numel() * 8 for s in ("train", "val", "test"))
    return {"rows": rows, "max_len": max_len, "load_seconds": total, "history_pass_seconds": build,
            "held_bytes_per_row": held / rows, "padded_bytes_per_row": padded / rows}


def unit_times(rows: int, max_len: int, dim: int = 16, rounds: int = 15) -> dict[str, float]:
    """Best ms of the target-attention unit's forward and backward on full histories (its
    gathered keys included): through its hand-written backward, and through autograd of the same
    forward operators (the reference), steps interleaved."""
    from msmtrec.nn.list_pooling import TargetAttention, _attend, _AttendWithGradient, lookup

    torch.manual_seed(0)
    unit, table = TargetAttention(dim), torch.randn(1000, dim, requires_grad=True)
    ids, lengths = torch.randint(0, 1000, (rows, max_len)), torch.full((rows,), max_len)
    query, grad = torch.randn(rows, dim, requires_grad=True), torch.randn(rows, dim)

    def step(attend) -> None:
        (attend(*unit.unit_inputs(query, lookup(table, ids), lengths)) * grad).sum().backward()

    ways = {"hand-written backward": _AttendWithGradient.apply, "autograd": lambda *a: _attend(*a)[2]}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for name, attend in ways.items():
            t0 = time.perf_counter()
            for _ in range(5):
                step(attend)
            best[name] = min(best[name], (time.perf_counter() - t0) / 5 * 1e3)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=800_000)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--history", type=int, default=50, help="entries per row")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="training precision of every variant")
    ap.add_argument("--rounds", type=int, default=3, help="epochs timed per variant, interleaved")
    ap.add_argument("--build-rows", type=int, default=800_000, help="rows of the log for the build cost (0: skip)")
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's malloc thresholds as they are (default: keep freed blocks, as msmtrec train does)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    kept, malloc = malloc_setting(args.system_malloc)
    if args.threads:
        torch.set_num_threads(args.threads)
    data, schema = random_data(args.rows)
    print(f"# history cost: {args.rows:,} rows, batch {args.batch_size}, history {args.history}, "
          f"torch {torch.__version__}, {args.precision}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds, "
          f"{malloc}, "
          f"load {load()}")
    hist = with_history(data, args.history, schema.cardinalities[1])
    datasets = {"none": InMemoryDataset(data, data.take(slice(0, 4096)), data.take(slice(0, 4096)), schema,
                                        batch_size=args.batch_size)}
    for pooling in ("attention", "mean"):
        s = replace(schema, lists=(ListFeature("history", args.history, pooling, fields=("f1",)),))
        datasets[pooling] = InMemoryDataset(hist, hist.take(slice(0, 4096)), hist.take(slice(0, 4096)), s,
                                            batch_size=args.batch_size)
    rates: dict[str, list[float]] = {k: [] for k in datasets}
    for r in range(args.rounds):  # interleaved, so a change of load hits every variant alike
        for name, ds in datasets.items():
            rates[name].append(train_throughput("shared_bottom", ds, args.batch_size, args.precision))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()) + " samples/s (cost "
              + ", ".join(f"{k} {rates['none'][-1] / rates[k][-1]:.2f}x" for k in ("attention", "mean"))
              + f"); load {load()}")
    best = {k: max(v) for k, v in rates.items()}
    median = {k: statistics.median(v) for k, v in rates.items()}
    results: dict = {"rows": args.rows, "batch_size": args.batch_size, "history": args.history, "precision": args.precision,
                     "threads": torch.get_num_threads(), "rounds": rates, "train": best, "median": median,
                     "cost": {k: best["none"] / best[k] for k in ("attention", "mean")},
                     "median_cost": {k: median["none"] / median[k] for k in ("attention", "mean")}}
    print(f"shared_bottom, no history          {best['none']:>10,.0f} samples/s (best; median {median['none']:,.0f})")
    for pooling in ("attention", "mean"):
        print(f"shared_bottom, history by {pooling:9s} {best[pooling]:>10,.0f} samples/s   "
              f"cost {results['cost'][pooling]:.2f}x (medians: {results['median_cost'][pooling]:.2f}x)")
    unit = results["unit_ms"] = unit_times(args.batch_size, args.history)
    print(f"the attention unit alone, forward + backward of {args.batch_size} rows: "
          + ", ".join(f"{k} {v:.2f} ms" for k, v in unit.items())
          + f" ({unit['hand-written backward'] / unit['autograd']:.2f}x)")
    if args.build_rows:
        cost = build_cost(args.build_rows, args.history)
        results["build"] = cost
        print(f"building {cost['rows']:,} rows' histories from the log: {cost['history_pass_seconds']:.1f} s "
              f"(load_dataset in all {cost['load_seconds']:.1f} s); held for streaming "
              f"{cost['held_bytes_per_row']:.0f} B/row, padded in memory {cost['padded_bytes_per_row']:.0f} B/row")
    print(f"# load at end {load()}")
    results["load_end"] = os.getloadavg()
    results["malloc_keeps_freed"] = kept
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
