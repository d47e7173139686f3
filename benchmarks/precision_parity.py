"""Accuracy parity of bf16 and fp32 training (issue 14): every model, the same synthetic data, the
same seeds, once in each precision; mean ± std test AUC per model and the bf16 − fp32 gap.

    nice -n 19 python benchmarks/precision_parity.py --out /tmp/parity            # 1M rows, seeds 1,2,3
    python benchmarks/precision_parity.py --out /tmp/parity --rows 20000 --models shared_bottom --epochs 1

Data: ``make_synthetic_splits(--rows)`` with the generator's defaults (7 fields × vocab 1000,
3 scenarios × click/conversion nested, data seed 0), split 80/10/10, shared by every run. Each run
is :func:`msmtrec.train.train` with the model's defaults, batch 2048, ``--epochs`` epochs
(``max_epochs``, patience = epochs so none stops early; AutoIFS: ``--epochs`` search epochs, then
at most ``--epochs`` retrain epochs), best validation weights restored, test evaluated once.
"test AUC" is the mean AUC over (scenario, task) pairs of the test split.

Runs are appended to ``OUT/runs.jsonl`` as they finish (an interrupted study resumes where it
stopped); ``OUT/parity.md`` is rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data import InMemoryDataset  # noqa: E402
from msmtrec.data.synthetic import make_synthetic_splits  # noqa: E402
from msmtrec.models import MODELS  # noqa: E402
from msmtrec.train.api import train  # noqa: E402

PRECISIONS = ("fp32", "bf16")
TOLERANCE = 0.002  # the parity target on the mean test AUC


def model_params(name: str, epochs: int) -> dict:
    """The model's defaults, but AutoIFS's search stage shortened to ``epochs`` like every other."""
    return {"search_epochs": epochs} if name == "autoifs" else {}


def mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.4f}"


def render(runs: list[dict], header: str) -> str:
    lines = [header, "", "| model | fp32 test AUC | bf16 test AUC | bf16 − fp32 (mean of per-seed gaps) | "
             f"within {TOLERANCE} | epochs | seconds per run fp32 / bf16 | seeds |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["model"] for r in runs):
        by = {p: {r["seed"]: r for r in runs if r["model"] == name and r["precision"] == p} for p in PRECISIONS}
        seeds = sorted(set(by["fp32"]) & set(by["bf16"]))
        cells = [mean_std([r["test_mean_auc"] for r in by[p].values()]) if by[p] else "–" for p in PRECISIONS]
        if seeds:
            gaps = [by["bf16"][s]["test_mean_auc"] - by["fp32"][s]["test_mean_auc"] for s in seeds]
            gap = float(np.mean(gaps))
            mean_gap = (np.mean([by["bf16"][s]["test_mean_auc"] for s in seeds])
                        - np.mean([by["fp32"][s]["test_mean_auc"] for s in seeds]))
            ok = "yes" if abs(mean_gap) <= TOLERANCE else "**no**"
            gap_cell = f"{gap:+.4f} (per seed {', '.join(f'{g:+.4f}' for g in gaps)})"
        else:
            gap_cell, ok = "–", "–"
        epochs = "/".join(f"{np.mean([r['epochs'] for r in by[p].values()]):.0f}" if by[p] else "–" for p in PRECISIONS)
        secs = " / ".join(f"{np.mean([r['seconds'] for r in by[p].values()]):.0f}" if by[p] else "–" for p in PRECISIONS)
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {gap_cell} | {ok} | {epochs} | {secs} | {len(seeds)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--models", default="all", help="comma-separated, or 'all'")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    names = sorted(MODELS) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    log = args.out / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    runs = [r for r in runs if r["rows"] == args.rows and r["epochs_budget"] == args.epochs]
    done = {(r["model"], r["seed"], r["precision"]) for r in runs}

    t0 = time.perf_counter()
    train_split, val, test, schema = make_synthetic_splits(args.rows)
    data = InMemoryDataset(train_split, val, test, schema, batch_size=args.batch_size)
    header = (f"precision parity: {args.rows:,} synthetic rows ({len(train_split):,} train / {len(val):,} val / "
              f"{len(test):,} test), batch {args.batch_size}, {args.epochs} epoch(s), {args.threads} threads, "
              f"torch {torch.__version__}, seeds {args.seeds}; started {time.strftime('%Y-%m-%d %H:%M %Z')}, "
              f"load average {os.getloadavg()[0]:.1f}")
    print(header, f"(data made in {time.perf_counter() - t0:.0f} s)", flush=True)
    for name in names:
        for seed in seeds:
            for precision in PRECISIONS:
                if (name, seed, precision) in done:
                    continue
                config = TrainConfig(model=name, model_params=model_params(name, args.epochs), data="synthetic",
                                     seed=seed, batch_size=args.batch_size, max_epochs=args.epochs,
                                     patience=args.epochs, threads=args.threads, precision=precision)
                t1 = time.perf_counter()
                result = train(config, write_run=False, dataset=data, progress=False)
                record = {"model": name, "seed": seed, "precision": precision, "rows": args.rows,
                          "epochs_budget": args.epochs, "epochs": len(result.fit.history),
                          "test_mean_auc": result.test["mean_auc"], "val_mean_auc": result.validation["mean_auc"],
                          "seconds": round(time.perf_counter() - t1, 1),
                          "samples_per_second": round(result.fit.samples_per_second, 1),
                          "load": round(os.getloadavg()[0], 2), "time": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
                with open(log, "a") as f:
                    f.write(json.dumps(record) + "\n")
                runs.append(record)
                print(f"{name:14s} seed {seed} {precision}: test mean AUC {record['test_mean_auc']:.4f} "
                      f"({record['epochs']} epochs, {record['seconds']:.0f} s, load {record['load']:.1f})", flush=True)
                (args.out / "parity.md").write_text(render(runs, header))
    print(render(runs, header))
    print(f"finished {time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
