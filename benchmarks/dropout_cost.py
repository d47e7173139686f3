"""What dropout costs in training: the library's BitDropout (integer-AND masks, forward and
backward) against ``nn.Dropout`` (a Bernoulli draw per element), in one process.

    python benchmarks/dropout_cost.py --precision fp32,bf16 --models shared_bottom,mmoe,ple --dropout 0.2

Per model (at its defaults with ``dropout``) two Trainers on the same random rows of the DESIGN.md
setting (7 fields × 16 dims, 3 scenarios × 2 tasks, batch 2048): one as built, one with every
BitDropout swapped for an ``nn.Dropout`` of the same ``p``; epochs interleaved, best epoch and the
per-round ratio. Also the time of one forward + backward over a ``[2048, 256]`` activation.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import interleaved_rates, primed_trainer, random_data  # noqa: E402

from msmtrec.data import InMemoryDataset  # noqa: E402
from msmtrec.models import build_model  # noqa: E402
from msmtrec.nn.dropout import BitDropout  # noqa: E402


def with_nn_dropout(model: torch.nn.Module) -> torch.nn.Module:
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, BitDropout):
                setattr(parent, name, torch.nn.Dropout(child.p))
    return model


def layer_ms(p: float, dtype: torch.dtype) -> dict[str, float]:
    x = torch.randn(2048, 256, dtype=dtype, requires_grad=True)
    g = torch.randn(2048, 256, dtype=dtype)
    layers = {"nn.Dropout": torch.nn.Dropout(p), "BitDropout": BitDropout(p)}
    times: dict[str, list[float]] = {k: [] for k in layers}
    for _ in range(7):
        for k, layer in layers.items():
            t = time.perf_counter()
            for _ in range(50):
                layer(x).backward(g)
            times[k].append((time.perf_counter() - t) / 50 * 1000)
    return {k: sorted(v)[3] for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shared_bottom,mmoe,ple")
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--rows", type=int, default=2048 * 40)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; {subprocess.getoutput('uptime').strip()}")
    for dtype in [{"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[p] for p in args.precision.split(",")]:
        ms = layer_ms(args.dropout, dtype)
        print(f"[2048, 256] forward + backward, {dtype}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
    data, schema = random_data(args.rows)
    ds = InMemoryDataset(data, data.take(slice(0, 4096)), data.take(slice(0, 4096)), schema)
    warm = data.take(slice(0, 4096))
    warm_ds = InMemoryDataset(warm, warm, warm, schema)
    print("\n| model | precision | nn.Dropout samples/s (best) | BitDropout samples/s (best) | BitDropout / nn.Dropout "
          "per round |\n|---|---|---:|---:|---|")
    for name in args.models.split(","):
        for precision in args.precision.split(","):
            trainers = {}
            for kind in ("nn.Dropout", "BitDropout"):
                torch.manual_seed(0)
                model = build_model(name, schema, {"dropout": args.dropout})
                if kind == "nn.Dropout":
                    with_nn_dropout(model)
                trainers[kind] = primed_trainer(model, ds, warm_ds, 2048, precision)
                trainers[kind].train_epoch()
            rates = interleaved_rates(trainers, args.rounds)
            a, b = rates["nn.Dropout"], rates["BitDropout"]
            print(f"| {name} | {precision} | {max(a):,.0f} | {max(b):,.0f} | {', '.join(f'{y / x:.2f}' for x, y in zip(a, b))} |",
                  flush=True)
    print(subprocess.getoutput("uptime").strip())


if __name__ == "__main__":
    main()
