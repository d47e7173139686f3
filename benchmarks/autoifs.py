"""AutoIFS training throughput, search and retrain stages, at the paper's defaults and lighter
settings, next to SharedBottom measured in the same run (the machine may be shared: the ratio is
the steadier figure).

    python benchmarks/autoifs.py                         # 7 fields x 16 dims, 3 x 2, batch 2048
    python benchmarks/autoifs.py --rows 40960 --repeats 3 --threads 2

Every figure is samples/s of full training steps (forward, loss, backward, Adam) through the
library's Trainer, best of ``--repeats`` passes over ``--rows`` random rows (best-of filters out the
moments another process held the cores). The retrain stage has hard gates and a frozen selection
network (forward only), so it is faster than the search stage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.data import InMemoryDataset  # noqa: E402
from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data.encoded import DataSchema, EncodedData  # noqa: E402
from msmtrec.models import build_model  # noqa: E402
from msmtrec.train.trainer import Trainer  # noqa: E402

SETTINGS = {
    "autoifs defaults (gather)": ("autoifs", {}),
    "autoifs defaults (group)": ("autoifs", {"scenario_routing": "group"}),
    "autoifs mlp [512,256,128]": ("autoifs", {"mlp_dims": [512, 256, 128]}),
    "autoifs mlp [256,128,64]": ("autoifs", {"mlp_dims": [256, 128, 64]}),
    "autoifs mlp [256,128,64] selector [64]": ("autoifs", {"mlp_dims": [256, 128, 64], "selector_dims": [64]}),
    "shared_bottom defaults": ("shared_bottom", {}),
}


def random_data(rows: int, fields: int = 7, vocab: int = 1000, scenarios: int = 3, tasks: int = 2
                ) -> tuple[EncodedData, DataSchema]:
    g = torch.Generator().manual_seed(0)
    schema = DataSchema(categorical=tuple((f"f{i}", vocab) for i in range(fields)), numeric=(),
                        scenarios=tuple(f"s{i}" for i in range(scenarios)), tasks=tuple(f"t{i}" for i in range(tasks)))
    data = EncodedData(categorical=torch.randint(0, vocab, (rows, fields), generator=g), numeric=torch.zeros(rows, 0),
                       scenario=torch.randint(0, scenarios, (rows,), generator=g),
                       labels=(torch.rand(rows, tasks, generator=g) < 0.3).float(),
                       label_mask=torch.ones(rows, tasks, dtype=torch.bool))
    return data, schema


def throughput(name: str, params: dict, stage_index: int, data: EncodedData, schema: DataSchema, batch_size: int,
               repeats: int) -> float:
    torch.manual_seed(0)
    model = build_model(name, schema, params)
    config = TrainConfig(model=name, batch_size=batch_size)
    stages = model.training_stages(config)
    trainer = Trainer(model, config, InMemoryDataset(data, data.take(slice(0, batch_size)), data.take(slice(0, batch_size)), schema), progress=False)
    if stages:
        if stage_index == 1:
            model.draw_ticket()
            model.start_retrain()
        trainer.prepare_stage(stages[stage_index])
    warm = Trainer(model, config, InMemoryDataset(data.take(slice(0, 2 * batch_size)), data.take(slice(0, batch_size)), data.take(slice(0, batch_size)), schema),
                   progress=False)
    warm.stage, warm.optimizer = trainer.stage, trainer.optimizer
    warm.train_epoch()  # allocator and kernels primed
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, n = trainer.train_epoch()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40960)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", default="all", help="comma-separated setting names (see SETTINGS) or 'all'")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, schema = random_data(args.rows)
    names = list(SETTINGS) if args.settings == "all" else args.settings.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"batch {args.batch_size}, {args.rows:,} rows x best of {args.repeats}; load average at start "
          f"{os.getloadavg()[0]:.1f}")
    results = {}
    for label in names:
        name, params = SETTINGS[label]
        model = build_model(name, schema, params)
        row = {"parameters": model.num_parameters()}
        if name == "autoifs":
            row["search"] = throughput(name, params, 0, data, schema, args.batch_size, args.repeats)
            row["retrain"] = throughput(name, params, 1, data, schema, args.batch_size, args.repeats)
        else:
            row["train"] = throughput(name, params, 0, data, schema, args.batch_size, args.repeats)
        results[label] = row
        figures = "  ".join(f"{k} {v:>9,.0f}/s" for k, v in row.items() if k != "parameters")
        print(f"{label:<42} {row['parameters']:>10,} params  {figures}", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
