"""Matmul FLOPs per training sample (forward + backward) of every registered model at its
defaults, in the throughput setting of DESIGN.md (7 categorical fields × 16-dim embeddings,
3 scenarios × 2 tasks), counted with ``torch.utils.flop_counter.FlopCounterMode``.

    python benchmarks/model_flops.py [--models hinet,star,pepnet] [--batch-size 2048]

A machine-independent companion to ``throughput.py``: samples/s ≈ (matmul FLOP/s the CPU
sustains) / (FLOPs per sample) for models dominated by dense layers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from msmtrec.models import MODELS, build_model  # noqa: E402


def matmul_flops_per_sample(name: str, batch_size: int = 2048) -> float:
    """Matmul FLOPs of one training sample of model ``name`` at its defaults (forward + backward),
    in the throughput setting, counted in fp32 (autocast does not change the count)."""
    from throughput import random_data

    data, schema = random_data(batch_size)
    torch.manual_seed(0)
    model = build_model(name, schema, {})
    with FlopCounterMode(display=False) as counter:
        out = model(data)
        model.task_losses(out, data).sum().backward()
    return counter.get_total_flops() / batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all")
    ap.add_argument("--batch-size", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = sorted(MODELS) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    from throughput import random_data

    _, schema = random_data(1)
    print(f"# matmul MFLOP per sample, forward + backward, batch {args.batch_size}")
    for name in names:
        params = build_model(name, schema, {}).num_parameters()
        print(f"{name:14s} {matmul_flops_per_sample(name, args.batch_size) / 1e6:7.2f}   params {params:,}")


if __name__ == "__main__":
    main()
