"""The seed models with their defaults and with their presets (``--preset code`` / ``paper``), on
the data this repository can run: synthetic data in the papers' shape and the embedded dataset.
Prints the table of ``docs/REPRODUCE.md`` ("What msmtrec measures here").

    python benchmarks/reproduce.py                       # seeds 1, 2, 3
    python benchmarks/reproduce.py --seeds 1 --rows 20000

Every run goes through ``msmtrec.train.train`` (the same path as ``msmtrec train``), one thread,
no run directory. Scores are the mean test AUC over (scenario, task) on each model's comparable
targets (entire-space models: CTR and CTCVR over all impressions).
"""

from __future__ import annotations

import argparse
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
from msmtrec.train import train  # noqa: E402

# model → (datasets, preset); a dataset is "womens-ecommerce" or a synthetic structure.
RUNS = {"hinet": (["synthetic-independent", "womens-ecommerce"], "code"),
        "autoifs": (["synthetic-independent", "womens-ecommerce"], "code"),
        "aem2tl": (["synthetic-nested"], "paper")}


def dataset(name: str, rows: int, seed: int):
    if name == "womens-ecommerce":
        return None
    structure = name.split("-")[1]
    tr, val, test, schema = make_synthetic_splits(rows, structure=structure, scenario_signal=0.5, seed=0)
    return InMemoryDataset(tr, val, test, schema, seed=seed)


def comparable_auc(result) -> float:
    """Mean test AUC over (scenario, task), each task on its comparable target."""
    targets = result.comparable_targets.values()
    aucs = [by_target[t]["auc"] for by_target in result.test["per_scenario"].values() for t in targets
            if by_target.get(t, {}).get("auc") is not None]
    return float(np.mean(aucs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--rows", type=int, default=50000, help="rows of each synthetic dataset")
    ap.add_argument("--models", default=",".join(RUNS))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}, 1 thread, synthetic rows {args.rows:,}", flush=True)
    lines = ["| model | data | settings | mean AUC (comparable targets) | epochs | train s |", "|---|---|---|---|---|---|"]
    for model in args.models.split(","):
        datasets, preset = RUNS[model]
        for data in datasets:
            for label, extra in (("defaults", {}), (f"--preset {preset}", {"preset": preset})):
                aucs, epochs, secs = [], [], []
                for seed in seeds:
                    config = TrainConfig(model=model, data=data, seed=seed, threads=1, **extra)
                    result = train(config, dataset=dataset(data, args.rows, seed), write_run=False, progress=False)
                    aucs.append(comparable_auc(result))
                    epochs.append(len(result.fit.history))
                    secs.append(result.fit.train_seconds)
                    print(f"  {model} {data} {label} seed {seed}: AUC {aucs[-1]:.4f}, {epochs[-1]} epochs, "
                          f"{secs[-1]:.0f} s", flush=True)
                spread = f" ± {np.std(aucs):.4f}" if len(aucs) > 1 else ""
                lines.append(f"| {model} | {data} | {label} | {np.mean(aucs):.4f}{spread} | "
                             f"{np.mean(epochs):.1f} | {np.mean(secs):.0f} |")
    print("\n".join(lines))
    print(f"finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
