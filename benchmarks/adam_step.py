"""Adam implementations on the models' own parameters: the multi-tensor (``foreach``) step against
the ``fused`` one, which the Trainer uses, in one process.

    python benchmarks/adam_step.py                          # step time, every model
    python benchmarks/adam_step.py --train --precision bf16 --models hinet,aem2tl,shared_bottom

Step time: random gradients on every trainable parameter of each model at its defaults (the
DESIGN.md setting: 7 fields × 16 dims, 3 scenarios × 2 tasks), median of 7 rounds of 20 steps,
the two optimisers in turn. ``--train``: whole training epochs through the Trainer (forward,
loss, backward, step) with each optimiser, epochs interleaved, best epoch and each round's ratio.
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
from msmtrec.models import MODELS, Stage, build_model  # noqa: E402

KINDS = ("foreach", "fused")


def adam(params, kind: str, **kw) -> torch.optim.Adam:
    return torch.optim.Adam(params, foreach=kind == "foreach", fused=kind == "fused", **kw)


def step_times(name: str, schema) -> dict[str, float]:
    torch.manual_seed(0)
    params = [p for p in build_model(name, schema, {}).parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    opts = {k: adam(params, k, lr=1e-3) for k in KINDS}
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for o in opts.values():
        o.step()
    for _ in range(7):
        for k, o in opts.items():
            t = time.perf_counter()
            for _ in range(20):
                o.step()
            times[k].append((time.perf_counter() - t) / 20 * 1000)
    return {"params": sum(p.numel() for p in params), "tensors": len(params),
            **{k: sorted(v)[len(v) // 2] for k, v in times.items()}}


def train_rates(name: str, data, schema, precision: str, rounds: int) -> dict[str, list[float]]:
    ds = InMemoryDataset(data, data.take(slice(0, 4096)), data.take(slice(0, 4096)), schema)
    warm = data.take(slice(0, 4096))
    trainers = {}
    for k in KINDS:
        torch.manual_seed(0)
        t = primed_trainer(build_model(name, schema, {}), ds, InMemoryDataset(warm, warm, warm, schema), 2048, precision)
        t.prepare_stage((t.model.training_stages(t.config) or [Stage()])[0])
        groups = [{key: g[key] for key in ("params", "lr", "weight_decay")} for g in t.optimizer.param_groups]
        t.optimizer = adam(groups, k)
        t.train_epoch()
        trainers[k] = t
    return interleaved_rates(trainers, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", action="store_true", help="also whole training epochs with each optimiser")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--rows", type=int, default=2048 * 30)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = list(MODELS) if args.models == "all" else args.models.split(",")
    data, schema = random_data(args.rows)
    print(f"torch {torch.__version__}, {args.threads} threads; {subprocess.getoutput('uptime').strip()}")
    print("\n| model | parameters (tensors) | foreach step ms | fused step ms | foreach / fused |\n|---|---|---:|---:|---:|")
    for name in names:
        r = step_times(name, schema)
        print(f"| {name} | {r['params']:,} ({r['tensors']}) | {r['foreach']:.2f} | {r['fused']:.2f} | "
              f"{r['foreach'] / r['fused']:.2f}× |", flush=True)
    if args.train:
        print("\n| model | precision | foreach samples/s (best) | fused samples/s (best) | fused / foreach per round |"
              "\n|---|---|---:|---:|---|")
        for name in names:
            rates = train_rates(name, data, schema, args.precision, args.rounds)
            ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(rates["foreach"], rates["fused"]))
            print(f"| {name} | {args.precision} | {max(rates['foreach']):,.0f} | {max(rates['fused']):,.0f} | {ratios} |",
                  flush=True)
    print(subprocess.getoutput("uptime").strip())


if __name__ == "__main__":
    main()
