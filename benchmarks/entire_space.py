"""Entire-space comparison (issue 5): AEM²TL, ESMM and the other models on the three conversion
metrics the literature mixes up, and AEM²TL's ablations in the shape of the paper's Table VI.

    python benchmarks/entire_space.py --data DIR/spec.yaml --out OUT --table main
    python benchmarks/entire_space.py --data DIR/spec.yaml --out OUT --table ablation
    python benchmarks/entire_space.py --out OUT --table throughput [--rows 200000]

The data must declare a click task and a conversion task (``role:`` in the spec), e.g. the
synthetic nested data of ``msmtrec synth``. Every model is evaluated with the same protocol on the
test split (best validation weights), per scenario and pooled ("overall"):

- CTR AUC: click prediction, all impressions;
- CTCVR AUC: prediction of click ∧ conversion, all impressions (entire-space models: p_ctcvr;
  the others: their conversion output, which they learn from the same label);
- CVR AUC: conversion among *clicked* impressions only (entire-space models: the post-click p_cvr;
  the others: their conversion output ranked within the clicked rows — the ESMM paper's protocol).

``--table throughput`` times one training epoch through the Trainer in the DESIGN.md setting
(7 fields × 16-dim embeddings, 3 scenarios × click/conversion, batch 2048, random labels):
shared_bottom and esmm as references, AEM²TL with fixed weights, with GradNorm every step and every
10 steps, and a reduced AEM²TL.

Runs are appended to ``OUT/runs.jsonl`` as they finish, so an interrupted benchmark resumes where
it stopped; ``OUT/<table>.md`` is rewritten after every run with mean ± std over the seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.data import InMemoryDataset  # noqa: E402
from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data import load_dataset  # noqa: E402
from msmtrec.data.encoded import EncodedData, iterate_batches  # noqa: E402
from msmtrec.metrics import evaluate_predictions  # noqa: E402
from msmtrec.models import MODELS  # noqa: E402
from msmtrec.models.entire_space_base import EntireSpaceModel, entire_space_roles  # noqa: E402
from msmtrec.train.api import train  # noqa: E402

TARGETS = ("ctr", "ctcvr", "cvr")
MAIN = ["aem2tl", "esmm", "shared_bottom", "mmoe", "ple", "hinet", "star", "pepnet"]
ABLATIONS = {  # label → (model, params, weighting); the paper's Table VI rows
    "w/o Scenario-CGC": ("aem2tl", {"scenario_cgc": False}, None),
    "w/o Task-CGC": ("aem2tl", {"task_cgc": False}, None),
    "w/o Personalized Gating": ("aem2tl", {"personalized_gate": False}, None),
    "w/o Entire-space module": ("aem2tl", {"entire_space": False}, None),
    "w/o Adaptive Loss": ("aem2tl", {}, "fixed"),
    "AEM²TL": ("aem2tl", {}, None),
}


@torch.no_grad()
def entire_space_metrics(model, data: EncodedData, schema, batch_size: int = 16384) -> dict:
    """CTR / CTCVR / CVR AUC per scenario and pooled, the same way for every model."""
    roles = entire_space_roles(schema)
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {t: [] for t in TARGETS}
    for b in iterate_batches(data, batch_size, shuffle=False):
        out = model(b)
        if isinstance(model, EntireSpaceModel):
            scores = {"ctr": out["ctr"], "ctcvr": out["ctcvr"], "cvr": out["cvr"]}
        else:
            p = model.probabilities(out)
            scores = {"ctr": p[:, roles.click], "ctcvr": p[:, roles.conversion], "cvr": p[:, roles.conversion]}
        for t in TARGETS:
            parts[t].append(scores[t].float().cpu())
    click = data.labels[:, roles.click].numpy()
    conv = data.labels[:, roles.conversion].numpy()
    ones = np.ones_like(click, dtype=bool)
    labels = {"ctr": (click, ones), "ctcvr": (click * conv, ones), "cvr": (conv, click == 1)}
    targets = {t: (torch.cat(parts[t]).numpy(), labels[t][0], labels[t][1]) for t in TARGETS}
    m = evaluate_predictions(data.scenario.numpy(), schema.scenarios, targets)
    out = {t: {"overall": m["per_target"][t]["auc"], **{s: m["per_scenario"][s][t]["auc"] for s in schema.scenarios}}
           for t in TARGETS}
    return out


THROUGHPUT = {  # label → (model, params, weighting, weighting_params)
    "shared_bottom": ("shared_bottom", {}, "fixed", {}),
    "esmm": ("esmm", {}, "fixed", {}),
    "aem2tl (fixed)": ("aem2tl", {}, "fixed", {}),
    "aem2tl (gradnorm)": ("aem2tl", {}, "gradnorm", {}),
    "aem2tl (gradnorm, update_every=10)": ("aem2tl", {}, "gradnorm", {"update_every": 10}),
    "aem2tl small (fixed)": ("aem2tl", {"scenario_shared_experts": 2, "scenario_specific_experts": 2,
                                        "scenario_expert_dims": [128, 64], "task_expert_dims": [64, 32],
                                        "tower_dims": [16]}, "fixed", {}),
}


def throughput(args) -> None:
    from msmtrec.data.encoded import DataSchema
    from msmtrec.models import build_model
    from msmtrec.train.trainer import Trainer

    g = torch.Generator().manual_seed(0)
    schema = DataSchema(categorical=tuple((f"f{i}", 1000) for i in range(7)), numeric=(), scenarios=("s0", "s1", "s2"),
                        tasks=("click", "conversion"), task_roles={"click": "click", "conversion": "conversion"})
    n = args.rows
    click = (torch.rand(n, generator=g) < 0.2).float()
    data = EncodedData(categorical=torch.randint(0, 1000, (n, 7), generator=g), numeric=torch.zeros(n, 0),
                       scenario=torch.randint(0, 3, (n,), generator=g),
                       labels=torch.stack([click, click * (torch.rand(n, generator=g) < 0.1).float()], 1),
                       label_mask=torch.ones(n, 2, dtype=torch.bool))
    lines = [f"throughput: {n:,} rows, batch {args.batch_size}, {torch.get_num_threads()} thread(s), one epoch through "
             f"Trainer.train_epoch after a 2-batch warm-up", "", "| model | params | samples/s |", "|---|---|---|"]
    print(lines[0], flush=True)
    for label, (name, params, weighting, wparams) in THROUGHPUT.items():
        torch.manual_seed(0)
        model = build_model(name, schema, params)
        config = TrainConfig(model=name, batch_size=args.batch_size, max_epochs=1, weighting=weighting,
                             weighting_params=wparams)
        warm = data.take(slice(0, 2 * args.batch_size))
        Trainer(model, config, InMemoryDataset(warm, warm, warm, schema), progress=False).train_epoch()
        trainer = Trainer(model, config, InMemoryDataset(data, warm, warm, schema), progress=False)
        t0 = time.perf_counter()
        _, seen = trainer.train_epoch()
        sps = seen / (time.perf_counter() - t0)
        print(f"{label:38s} {model.num_parameters():>10,} params {sps:>10,.0f} samples/s", flush=True)
        lines.append(f"| {label} | {model.num_parameters():,} | {sps:,.0f} |")
    (args.out / "throughput.md").write_text("\n".join(lines) + "\n")


def variants(table: str) -> dict[str, tuple[str, dict, str | None]]:
    if table == "main":
        return {name: (name, {}, None) for name in MAIN if name in MODELS}
    return ABLATIONS


def mean_std(values: list[float]) -> str:
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "–"
    return f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.4f}"


def render(table: str, runs: list[dict], scenarios: list[str], header: str) -> str:
    by_variant: dict[str, list[dict]] = {}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r)
    lines = [header, ""]
    if table == "main":
        lines += ["| model | params | samples/s | epochs | CTR AUC | CTCVR AUC | CVR AUC (clicked) | seeds |",
                  "|---|---|---|---|---|---|---|---|"]
        for v, rs in by_variant.items():
            lines.append(f"| {v} | {rs[0]['params']:,} | {np.mean([r['samples_per_second'] for r in rs]):,.0f} | "
                         f"{np.mean([r['epochs'] for r in rs]):.1f} | "
                         + " | ".join(mean_std([r["metrics"][t]["overall"] for r in rs]) for t in TARGETS)
                         + f" | {len(rs)} |")
        lines += ["", "Per scenario (mean over seeds): CTR / CTCVR / CVR AUC", "",
                  "| model | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]
        for v, rs in by_variant.items():
            cells = []
            for s in scenarios:
                cells.append(" / ".join(f"{np.mean([r['metrics'][t][s] for r in rs]):.4f}" for t in TARGETS))
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    else:
        cols = [*scenarios, "overall"]
        lines += ["| variant | " + " | ".join(f"CTR {c}" for c in cols) + " | " + " | ".join(f"CTCVR {c}" for c in cols)
                  + " | CVR (clicked) overall | seeds |", "|---|" + "---|" * (2 * len(cols) + 2)]
        for v, rs in by_variant.items():
            cells = [f"{np.mean([r['metrics'][t][c] for r in rs]):.4f}" for t in ("ctr", "ctcvr") for c in cols]
            lines.append(f"| {v} | " + " | ".join(cells) + f" | {mean_std([r['metrics']['cvr']['overall'] for r in rs])}"
                         f" | {len(rs)} |")
        lines += ["", "Overall AUC, mean ± std over seeds:", "",
                  "| variant | CTR | CTCVR | CVR (clicked) |", "|---|---|---|---|"]
        for v, rs in by_variant.items():
            lines.append(f"| {v} | " + " | ".join(mean_std([r["metrics"][t]["overall"] for r in rs]) for t in TARGETS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="dataset spec YAML with click and conversion roles (main / ablation)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table", choices=("main", "ablation", "throughput"), default="main")
    ap.add_argument("--rows", type=int, default=200_000, help="rows for --table throughput")
    ap.add_argument("--only", default="", help="comma-separated variants to run (default: all of the table)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.table == "throughput":
        return throughput(args)
    if not args.data:
        ap.error("--data is required for the main and ablation tables")
    log = args.out / "runs.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    data = load_dataset(args.data)
    scenarios = list(data.schema.scenarios)
    todo = variants(args.table)
    if args.only:
        todo = {k: v for k, v in todo.items() if k in args.only.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    header = (f"{args.table}: {args.data} — {len(data.train):,} train / {len(data.val):,} val / {len(data.test):,} test "
              f"rows; batch {args.batch_size}, Adam lr {args.lr}, ≤ {args.epochs} epochs, patience {args.patience}, "
              f"{args.threads} thread(s), torch {torch.__version__}, {cpu}")
    print(header, flush=True)
    for label, (model, params, weighting) in todo.items():
        for seed in seeds:
            if any(r["variant"] == label and r["seed"] == seed and r["table"] == args.table for r in done):
                continue
            config = TrainConfig(model=model, model_params=dict(params), data=args.data, seed=seed,
                                 batch_size=args.batch_size, lr=args.lr, max_epochs=args.epochs,
                                 patience=args.patience, weighting=weighting, threads=args.threads)
            t0 = time.perf_counter()
            result = train(config, write_run=False, dataset=data, progress=False)
            metrics = entire_space_metrics(result.model, data.test, data.schema)
            history = result.fit.history
            record = {"table": args.table, "variant": label, "model": model, "params": result.num_parameters,
                      "model_params": params, "weighting": weighting or result.model.default_weighting,
                      "seed": seed, "epochs": len(history), "best_epoch": result.fit.best.get("epoch"),
                      "samples_per_second": result.fit.samples_per_second, "wall_seconds": time.perf_counter() - t0,
                      "task_weights": history[-1]["task_weights"] if history else None, "metrics": metrics}
            done.append(record)
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{label:26s} seed {seed}: CTR {metrics['ctr']['overall']:.4f}  CTCVR {metrics['ctcvr']['overall']:.4f}  "
                  f"CVR {metrics['cvr']['overall']:.4f}  {record['samples_per_second']:,.0f} samples/s  "
                  f"{record['wall_seconds']:.0f} s  weights {record['task_weights']}", flush=True)
            runs = [r for r in done if r["table"] == args.table]
            (args.out / f"{args.table}.md").write_text(render(args.table, runs, scenarios, header))


if __name__ == "__main__":
    main()
