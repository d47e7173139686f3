"""HiNet training-step cost with its scenario experts as the plain ``SEIBank`` + ``nn.Dropout``,
``SEIBank`` with its own dropout (``BitDropout``, every block's), and ``FusedSEIBank`` (HiNet's default): same weights, same batch,
variants alternated, process CPU time per step (robust to other jobs on the machine).

    python benchmarks/hinet_step_ablation.py [--threads 1] [--batch-size 2048] [--profile]

Setting of DESIGN.md: 7 categorical fields × 16-dim embeddings, 3 scenarios × 2 tasks, Adam.
``--profile`` also prints the share of matmul kernels in a profiled step of the default model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.data.encoded import DataSchema, EncodedData  # noqa: E402
from msmtrec.models import build_model  # noqa: E402
from msmtrec.nn import SEIBank  # noqa: E402


def batch_and_schema(b: int) -> tuple[EncodedData, DataSchema]:
    schema = DataSchema(categorical=tuple((f"f{i}", 1000) for i in range(7)), numeric=(),
                        scenarios=("s0", "s1", "s2"), tasks=("t0", "t1"))
    g = torch.Generator().manual_seed(0)
    batch = EncodedData(categorical=torch.randint(0, 1000, (b, 7), generator=g), numeric=torch.zeros(b, 0),
                        scenario=torch.randint(0, 3, (b,), generator=g),
                        labels=torch.randint(0, 2, (b, 2), generator=g).float(),
                        label_mask=torch.ones(b, 2, dtype=torch.bool))
    return batch, schema


def variant(kind: str, schema: DataSchema):
    torch.manual_seed(0)
    model = build_model("hinet", schema, {})
    if kind != "FusedSEIBank":
        fused = model.scenario_experts
        plain = SEIBank(fused.num_seis, model.embedding.output_dim, fused.k, [w.shape[-1] for w in fused.experts.weights],
                        dropout=fused.p)
        plain.load_state_dict(fused.state_dict())
        if kind == "SEIBank + nn.Dropout":
            plain.experts.dropout = torch.nn.Dropout(fused.p)
        model.scenario_experts = plain
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batch, schema = batch_and_schema(args.batch_size)
    models = {k: variant(k, schema) for k in ("SEIBank + nn.Dropout", "SEIBank + BitDropout", "FusedSEIBank")}

    def run(model, opt, n):
        t0 = time.process_time()
        for _ in range(n):
            loss = model.task_losses(model(batch), batch).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.process_time() - t0) / n * 1000

    for model, opt in models.values():
        run(model, opt, 1)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.repeats):
        for k, (model, opt) in models.items():
            times[k].append(run(model, opt, args.steps))
    print(f"# HiNet defaults, batch {args.batch_size}, {args.threads} thread(s), process CPU ms per training step")
    for k, v in times.items():
        med = sorted(v)[len(v) // 2]
        print(f"{k:22s} median {med:6.0f} ms  (min {min(v):.0f})  -> {args.batch_size / med * 1000:,.0f} samples per CPU-second")
    if args.profile:
        from torch.profiler import profile
        model, opt = models["FusedSEIBank"]
        with profile() as prof:
            run(model, opt, 3)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"))
        print(f"matmul kernels: {matmul / total:.0%} of the profiled step's self CPU time")


if __name__ == "__main__":
    main()
