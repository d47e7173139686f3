"""Does a behaviour history help when it should, and only then? (issue 13)

    python benchmarks/history_signal.py --out OUT                     # synthetic, 6 models × 3 seeds
    python benchmarks/history_signal.py --out OUT --table ml-1m       # the ML-1M recipe fixture

``synthetic``: the synthetic data with the planted history signal (``history_signal`` 4: every
logit gains 4 when the row's item is in its user's current interest, which only the user's recent
items reveal) and without it (0), 40k rows in time order, 3 fields (user, item, item group), one
task. Each model is trained with the spec's history (the user's 8 most recent earlier items with
their group, pooled by target attention) and without it (the same spec less ``sequences``), seeds
1, 2, 3, test AUC of the best validation epoch. Expected: a gain with the signal, none without.

``ml-1m``: the ML-1M recipe on its test fixture (``tests/fixtures/recipes/ml-1m``: a handful of
users; the figures say only that the comparison runs end to end), with ``-p history=0`` and 5.

Runs are appended to ``OUT/runs.jsonl`` as they finish (an interrupted study resumes where it
stopped); ``OUT/<table>.md`` is rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data import load_dataset  # noqa: E402
from msmtrec.data.synthetic import SyntheticConfig, write_synthetic  # noqa: E402
from msmtrec.files import atomic_write  # noqa: E402
from msmtrec.train import train  # noqa: E402
from msmtrec.yaml_io import dump_yaml  # noqa: E402

MODELS = ["shared_bottom", "mmoe", "ple", "star", "hinet", "pepnet"]  # one task: no entire-space model
SIGNALS = (4.0, 0.0)
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "recipes" / "ml-1m"


def synthetic_specs(out: Path, signal: float, rows: int) -> dict[str, Path]:
    """The data of one signal strength and its two specs: with the history and without."""
    folder = out / f"data_signal_{signal:g}"
    spec = folder / "spec.yaml"
    if not spec.exists():
        write_synthetic(folder, SyntheticConfig(rows=rows, num_fields=3, vocab=(50, 100, 10), tasks=1, scenarios=2,
                                                history_len=8, history_signal=signal, interest_groups=4,
                                                signal_scale=0.5, seed=0))
    plain = folder / "plain.yaml"
    if not plain.exists():
        atomic_write(plain, dump_yaml({k: v for k, v in yaml.safe_load(spec.read_text()).items()
                                       if k != "sequences"}))
    return {"history": spec, "none": plain}


def ml_1m_specs(out: Path) -> dict[str, Path]:
    from msmtrec.data.recipes import prepare

    specs = {}
    for name, history in (("history", 5), ("none", 0)):
        folder = out / f"ml-1m_history_{history}"
        specs[name] = folder / "spec.yaml"
        if not specs[name].exists():
            prepare("ml-1m", FIXTURE, folder, options={"history": history})
    return specs


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def render(runs: list[dict], table: str) -> str:
    lines = [f"# History study ({table}): test AUC, mean ± std over seeds", "",
             "| data | model | with history | without | gain | gain per seed |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["data"], r["model"]) for r in runs}, key=lambda k: (k[0], MODELS.index(k[1])
                                                                           if k[1] in MODELS else 99))
    for data, model in keys:
        by = {v: {r["seed"]: r["auc"] for r in runs if (r["data"], r["model"], r["variant"]) == (data, model, v)}
              for v in ("history", "none")}
        seeds = sorted(set(by["history"]) & set(by["none"]))
        gains = [by["history"][s] - by["none"][s] for s in seeds]
        lines.append(f"| {data} | {model} | {mean_std(list(by['history'].values()))} | "
                     f"{mean_std(list(by['none'].values()))} | {mean_std(gains)} | "
                     f"{', '.join(f'{g:+.4f}' for g in gains)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table", choices=["synthetic", "ml-1m"], default="synthetic")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--rows", type=int, default=40_000, help="synthetic rows")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["data"], r["model"], r["variant"], r["seed"]) for r in runs}
    if args.table == "synthetic":
        datas = {f"signal {s:g}": synthetic_specs(args.out, s, args.rows) for s in SIGNALS}
        settings = {"max_epochs": args.epochs, "batch_size": 128, "lr": 3e-3}
    else:
        datas = {"ml-1m fixture": ml_1m_specs(args.out)}
        settings = {"max_epochs": 2, "batch_size": 16}
    for data, specs in datas.items():
        for variant, spec in specs.items():
            dataset = None
            for model in args.models.split(","):
                for seed in map(int, args.seeds.split(",")):
                    if (data, model, variant, seed) in done:
                        continue
                    dataset = dataset or load_dataset(spec)  # one load per spec, shared by its runs
                    run = TrainConfig(model=model, data=str(spec), seed=seed, threads=args.threads, **settings)
                    result = train(run, write_run=False, progress=False, dataset=dataset)
                    record = {"data": data, "model": model, "variant": variant, "seed": seed,
                              "auc": result.test["mean_auc"], "epochs": len(result.fit.history),
                              "train_seconds": round(result.fit.train_seconds, 1)}
                    print(json.dumps(record), flush=True)
                    with log.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    runs.append(record)
                    atomic_write(args.out / f"{args.table}.md", render(runs, args.table))
    print(render(runs, args.table))


if __name__ == "__main__":
    main()
