"""Training and data-path throughput on synthetic data, against the peers' per-row pattern and a
plain PyTorch loop, measured in the same run.

    python benchmarks/throughput.py                      # defaults: 800k rows, batch 2048
    python benchmarks/throughput.py --models ple --rows 200000 --peer-rows 100000
    python benchmarks/throughput.py --stream --models shared_bottom,ple   # + the streamed path, same run
    python benchmarks/throughput.py --models hinet,aem2tl --precision fp32,bf16 --repeats 3 --peer-rows 0

Setting (DESIGN.md): 7 categorical fields × 16-dim embeddings, 3 scenarios × 2 tasks, batch 2048,
Adam. Every model runs with its default hyperparameters. Figures are samples/s (higher is better).

- "data path": one epoch of batches with no model — msmtrec's permutation slices gathered by
  tensor indexing vs a per-row ``Dataset`` with default collate (``num_workers=0``), the pattern of
  the research peers (landscape.md §8).
- "train": one epoch of full training steps (forward, loss, backward, Adam) through msmtrec's
  ``Trainer`` vs the same model fed by the per-row pattern.
- "plain loop": a hand-written PyTorch SharedBottom with whole-tensor batching (the reference the
  library must not fall behind); its epochs alternate with the library SharedBottom's, and the
  ratio is the median over those pairs.
- "streamed" (``--stream``): the same training epoch with the train split streamed from a synthetic
  Parquet file of the same shape (``--rows`` train rows, written once to ``--stream-dir``).
- "eval": AUC/logloss per (scenario, task) on ``--eval-rows`` rows.
- ``--precision fp32,bf16`` (``--compile``): every training figure (plain loop included) in each
  precision, epochs interleaved fp32 / bf16 / ... ``--repeats`` times in this process, reported as
  median (min–max); the machine's matmul peak (a 2048×1024×512 matmul, best of several, in each
  precision, same run) and the fraction of it each model reaches, from its matmul FLOPs per sample
  (``model_flops.py``). The 1-minute load average is printed with every model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data import Dataset, InMemoryDataset, open_streaming  # noqa: E402
from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches  # noqa: E402
from msmtrec.models import MODELS, build_model  # noqa: E402
from msmtrec.train.evaluate import evaluate_model  # noqa: E402
from msmtrec.train.host_memory import keep_freed_memory  # noqa: E402
from msmtrec.train.precision import DTYPES, Precision  # noqa: E402
from msmtrec.train.trainer import Trainer  # noqa: E402

from model_flops import matmul_flops_per_sample  # noqa: E402  (this folder)


def random_data(rows: int, fields: int = 7, vocab: int = 1000, scenarios: int = 3, tasks: int = 2, seed: int = 0
                ) -> tuple[EncodedData, DataSchema]:
    """Random tensors of the benchmark's shape (throughput does not depend on the labels' signal)."""
    g = torch.Generator().manual_seed(seed)
    schema = DataSchema(categorical=tuple((f"f{i}", vocab) for i in range(fields)), numeric=(),
                        scenarios=tuple(f"s{i}" for i in range(scenarios)), tasks=tuple(f"t{i}" for i in range(tasks)),
                        # roles let the entire-space models (esmm, aem2tl) run; the others ignore them
                        task_roles={"t0": "click", "t1": "conversion"} if tasks >= 2 else {})
    data = EncodedData(
        categorical=torch.randint(0, vocab, (rows, fields), generator=g),
        numeric=torch.zeros(rows, 0),
        scenario=torch.randint(0, scenarios, (rows,), generator=g),
        labels=(torch.rand(rows, tasks, generator=g) < 0.3).float(),
        label_mask=torch.ones(rows, tasks, dtype=torch.bool),
    )
    return data, schema


class PerRowDataset(torch.utils.data.Dataset):
    """The peers' pattern: numpy columns, one dict of tensors per row, default collate."""

    def __init__(self, data: EncodedData) -> None:
        self.cat = data.categorical.numpy()
        self.num = data.numeric.numpy()
        self.scenario = data.scenario.numpy()
        self.labels = data.labels.numpy()
        self.mask = data.label_mask.numpy()

    def __len__(self) -> int:
        return len(self.scenario)

    def __getitem__(self, i: int) -> dict:
        return {"categorical": torch.as_tensor(self.cat[i]), "numeric": torch.as_tensor(self.num[i]),
                "scenario": torch.as_tensor(self.scenario[i]), "labels": torch.as_tensor(self.labels[i]),
                "label_mask": torch.as_tensor(self.mask[i])}


def per_row_batches(data: EncodedData, batch_size: int, seed: int):
    loader = torch.utils.data.DataLoader(PerRowDataset(data), batch_size=batch_size, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(seed))
    for b in loader:
        yield EncodedData(**b)


def time_data_path(data: EncodedData, batch_size: int, per_row: bool, seed: int = 0) -> float:
    t0 = time.perf_counter()
    n = 0
    it = per_row_batches(data, batch_size, seed) if per_row else iterate_batches(
        data, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    for b in it:
        n += len(b)
    return n / (time.perf_counter() - t0)


class PerRowFeed(InMemoryDataset):
    """The same dataset, its epochs fed the peers' way (per-row ``Dataset`` + default collate)."""

    def train_batches(self, epoch, *, rank=0, world_size=1, batch_size=None, seed=None):
        return per_row_batches(self.train, batch_size or self.batch_size, epoch)


def malloc_setting(system_malloc: bool) -> tuple[bool, str]:
    """Keep freed blocks as ``msmtrec train`` does (:func:`keep_freed_memory`) unless
    ``system_malloc``; returns whether that applied and how to say it in a figure's header."""
    kept = not system_malloc and keep_freed_memory()
    return kept, "malloc keeps freed blocks" if kept else "malloc as the system sets it"


def primed_trainer(model: nn.Module, data: Dataset, warm: Dataset, batch_size: int, precision: str = "fp32",
                   compile: bool = False) -> Trainer:
    """A Trainer of ``model`` on ``data``, after one epoch on ``warm`` (first calls, the bf16 kernels
    of each batch shape, compilation)."""
    config = TrainConfig(model=model.name, batch_size=batch_size, max_epochs=1, precision=precision, compile=compile)
    Trainer(model, config, warm, progress=False).train_epoch()
    return Trainer(model, config, data, progress=False)


def epoch_rate(trainer: Trainer) -> float:
    """Samples/s of one epoch of full training steps (forward, loss, backward, Adam)."""
    t0 = time.perf_counter()
    _, n = trainer.train_epoch()
    return n / (time.perf_counter() - t0)


def interleaved_rates(trainers: dict[str, Trainer], rounds: int) -> dict[str, list[float]]:
    """Samples/s of ``rounds`` epochs of each trainer, the trainers taking turns (a change of the
    machine's load then hits all of them): trainer name → one rate per round."""
    rates: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(rounds):
        for k, t in trainers.items():
            rates[k].append(epoch_rate(t))
    return rates


def train_throughput(name: str, data: Dataset, batch_size: int, precision: str = "fp32") -> float:
    """Samples/s of one epoch of model ``name`` through the library's Trainer."""
    torch.manual_seed(0)
    warm = data.val.take(slice(0, batch_size * 2))
    return epoch_rate(primed_trainer(build_model(name, data.schema, {}), data,
                                     InMemoryDataset(warm, warm, warm, data.schema), batch_size, precision))


def matmul_peak(precisions: list[str], repeats: int = 5, m: int = 2048, k: int = 1024, n: int = 512,
                budget_s: float = 2.0) -> dict[str, float]:
    """Best GFLOP/s of an ``m×k @ k×n`` matmul in each precision's dtype, rounds interleaved, up to
    ten timed calls a round. A precision stops once ``budget_s`` seconds went into it: bf16 on a CPU
    without native bf16 runs near 1 GFLOP/s, and 5 rounds of ten such calls took two minutes."""
    best, spent = dict.fromkeys(precisions, 0.0), dict.fromkeys(precisions, 0.0)
    for _ in range(repeats):
        for p in precisions:
            if spent[p] > budget_s:
                continue
            dtype = DTYPES[p] or torch.float32
            a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
            start = time.perf_counter()
            a @ b
            t0, calls = time.perf_counter(), 0
            while calls == 0 or (calls < 10 and time.perf_counter() - start < budget_s / repeats):
                a @ b
                calls += 1
            best[p] = max(best[p], 2 * m * k * n * calls / (time.perf_counter() - t0) / 1e9)
            spent[p] += time.perf_counter() - start
    return best


def spread(rates: list[float]) -> str:
    return f"{statistics.median(rates):>9,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"


class PlainSharedBottom(nn.Module):
    """Reference: what a careful user writes by hand in plain PyTorch."""

    def __init__(self, fields: int, vocab: int, dim: int, scenarios: int, tasks: int) -> None:
        super().__init__()
        self.emb = nn.ModuleList(nn.Embedding(vocab, dim) for _ in range(fields))
        self.bottom = nn.Sequential(nn.Linear(fields * dim, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.towers = nn.ModuleList(nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
                                    for _ in range(scenarios * tasks))
        self.s, self.t = scenarios, tasks

    def forward(self, cat: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        h = self.bottom(torch.cat([e(cat[:, i]) for i, e in enumerate(self.emb)], 1))
        out = h.new_empty(cat.shape[0], self.t)  # h's dtype: bf16 under autocast
        for s in range(self.s):
            rows = scenario == s
            hs = h[rows]
            out[rows] = torch.cat([self.towers[s * self.t + t](hs) for t in range(self.t)], 1)
        return out


def plain_loop_throughput(data: EncodedData, schema: DataSchema, batch_size: int, precision: str = "fp32") -> float:
    torch.manual_seed(0)
    model = PlainSharedBottom(schema.num_fields, schema.cardinalities[0], 16, schema.num_scenarios, schema.num_tasks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.BCEWithLogitsLoss()
    forward_pass = Precision(precision, "cpu").forward_pass
    g = torch.Generator().manual_seed(0)
    n = len(data)
    for phase in ("warm", "timed"):
        perm = torch.randperm(n, generator=g)[: batch_size * 8 if phase == "warm" else n]
        t0 = time.perf_counter()
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            with forward_pass():
                logits = model(data.categorical[idx], data.scenario[idx])
            loss = lossf(logits.float(), data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(perm) / (time.perf_counter() - t0)


def streamed_dataset(args: argparse.Namespace) -> Dataset:
    """A synthetic Parquet dataset of the benchmark's shape (7 fields, vocab 1000, 3 scenarios × 2
    tasks) with ``--rows`` train rows, written once to ``--stream-dir``, opened streamed."""
    from msmtrec.data.synthetic import SyntheticConfig, write_synthetic

    folder = args.stream_dir or Path(f"/tmp/msmtrec-synth-{args.rows}")
    meta = folder / "synthetic.json"
    total = int(round(args.rows / 0.8))  # train is 80 % of the written rows
    t0 = time.perf_counter()
    if not meta.is_file() or json.loads(meta.read_text())["config"]["rows"] != total:
        write_synthetic(folder, SyntheticConfig(rows=total, num_fields=7, vocab=1000, scenarios=3, tasks=2, seed=0),
                        chunk_rows=args.read_rows * 4, overwrite=True)
        print(f"wrote {total:,} synthetic rows to {folder} in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    st = open_streaming(folder / "spec.yaml", batch_size=args.batch_size, shuffle_buffer=args.shuffle_buffer,
                        read_rows=args.read_rows, seed=0)
    print(f"# streamed: {st.num_train_rows:,} train rows from {folder}, shuffle buffer {args.shuffle_buffer:,}, "
          f"read {args.read_rows:,} rows at a time; fit pass + val/test load {time.perf_counter() - t0:.1f} s")
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=800_000)
    ap.add_argument("--no-plain", action="store_true",
                    help="skip the plain PyTorch loop when SharedBottom is not measured (it is paired with it when it is)")
    ap.add_argument("--peer-rows", type=int, default=100_000, help="rows for the (slow) per-row pattern")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--models", default="shared_bottom,mmoe,ple", help="comma-separated, or 'all'")
    ap.add_argument("--eval-rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--stream", action="store_true", help="also train through the streamed path (same run)")
    ap.add_argument("--stream-dir", type=Path, help="synthetic Parquet folder for --stream (written if absent)")
    ap.add_argument("--shuffle-buffer", type=int, default=262_144, help="--stream: shuffle buffer rows")
    ap.add_argument("--read-rows", type=int, default=65_536, help="--stream: rows per chunk read from disk")
    ap.add_argument("--precision", default="fp32", help="comma-separated training precisions, e.g. fp32,bf16")
    ap.add_argument("--compile", action="store_true", help="train through torch.compile (Trainer's compile option)")
    ap.add_argument("--repeats", type=int, default=1, help="timed epochs per model and precision (interleaved)")
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's malloc thresholds as they are (default: keep freed blocks, as msmtrec train does)")
    ap.add_argument("--warm-batches", type=int, default=8, help="batches of the priming epoch")
    args = ap.parse_args()
    kept, malloc = malloc_setting(args.system_malloc)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = sorted(MODELS) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    data, schema = random_data(args.rows)
    peer = data.take(slice(0, max(1, min(args.peer_rows, args.rows))))
    warm = data.take(slice(0, args.warm_batches * args.batch_size))
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# throughput: {args.rows:,} rows, batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {cpu}; precision {', '.join(precisions)}"
          f"{', compiled' if args.compile else ''}; {args.repeats} timed epoch(s) each; "
          f"{malloc}; "
          f"load average {os.getloadavg()[0]:.1f} at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    results: dict = {"rows": args.rows, "batch_size": args.batch_size, "threads": torch.get_num_threads(), "cpu": cpu,
                     "precisions": precisions, "compile": args.compile, "repeats": args.repeats,
                     "load_start": os.getloadavg()[0], "time_start": time.time(), "malloc_keeps_freed": kept}
    peak = matmul_peak(precisions)
    print("matmul peak (2048×1024×512, best of up to 5 rounds): " + ", ".join(f"{p} {g:,.0f} GFLOP/s" for p, g in peak.items()))
    results["matmul_peak_gflops"] = peak
    if "bf16" in precisions and Precision("bf16", "cpu").note:
        print("# bf16 is emulated on this CPU (no AVX-512 BF16 or AMX): its 'peak' is that matmul's emulated rate, "
              "which a model's smaller matmuls may exceed")
        results["bf16_emulated"] = True
    streamed = streamed_dataset(args) if args.stream else None

    ours = time_data_path(data, args.batch_size, per_row=False)
    results["data_path"] = {"msmtrec": ours}
    if args.peer_rows > 0:
        theirs = time_data_path(peer, args.batch_size, per_row=True)
        print(f"data path     msmtrec {ours:>12,.0f}/s   per-row {theirs:>10,.0f}/s   ratio {ours / theirs:6.1f}x")
        results["data_path"].update(per_row=theirs, ratio=ours / theirs)
    if streamed is not None:
        t0 = time.perf_counter()
        n = sum(len(b) for b in streamed.train_batches(0))
        results["data_path"]["streamed"] = rate = n / (time.perf_counter() - t0)
        print(f"data path     streamed {rate:>11,.0f}/s   (read + encode + shuffle buffer, no model)")

    # The plain loop's epochs alternate with SharedBottom's (when it runs): this machine's speed
    # drifts by ±30 % within minutes, so only paired epochs give a fair library / plain ratio.
    plain: dict[str, list[float]] = {p: [] for p in precisions}

    def plain_epoch(p: str) -> None:
        plain[p].append(plain_loop_throughput(data, schema, args.batch_size, p))

    def report_plain() -> None:
        for p in precisions:
            print(f"plain PyTorch SharedBottom loop {p:5s} {spread(plain[p])}/s (reference)")
        results["plain_shared_bottom"] = {p: statistics.median(r) for p, r in plain.items()}
        results["plain_shared_bottom_runs"] = plain

    if "shared_bottom" not in names and not args.no_plain:
        for _ in range(args.repeats):
            for p in precisions:
                plain_epoch(p)
        report_plain()

    results["train"] = {}
    memory = InMemoryDataset(data, warm, warm, schema, batch_size=args.batch_size)
    warm_data = InMemoryDataset(warm, warm, warm, schema, batch_size=args.batch_size)
    per_row = PerRowFeed(peer, warm, warm, schema, batch_size=args.batch_size)
    for name in names:
        torch.manual_seed(0)
        model = build_model(name, schema, {})
        load = os.getloadavg()[0]
        trainers = {p: primed_trainer(model, memory, warm_data, args.batch_size, p, args.compile) for p in precisions}
        rates: dict[str, list[float]] = {p: [] for p in precisions}
        for _ in range(args.repeats):
            for p in precisions:
                if name == "shared_bottom":
                    plain_epoch(p)
                rates[p].append(epoch_rate(trainers[p]))
        if name == "shared_bottom":
            report_plain()
        flops = matmul_flops_per_sample(name, args.batch_size)
        entry = {"params": model.num_parameters(), "mflop_per_sample": flops / 1e6,
                 "load": [load, os.getloadavg()[0]], "runs": rates}
        first = precisions[0]
        for p in precisions:
            med = statistics.median(rates[p])
            ratio = statistics.median(a / b for a, b in zip(rates[p], rates[first]))
            gflops = med * flops / 1e9
            entry[p] = {"samples_per_s": med, "vs_" + first: ratio, "gflops": gflops, "peak_fraction": gflops / peak[p]}
            line = (f"train {name:14s} {p:5s} {spread(rates[p])}/s   ×{first} {ratio:4.2f}   {gflops:6.1f} GFLOP/s "
                    f"= {gflops / peak[p]:5.1%} of the {p} peak")
            if name == "shared_bottom":
                paired = statistics.median(a / b for a, b in zip(rates[p], plain[p]))
                entry[p]["vs_plain_loop"] = paired
                line += f"   / plain loop {paired:.2f} (median of paired epochs)"
            print(line)
        print(f"      {name}: {entry['params']:,} params, {flops / 1e6:.2f} MFLOP/sample, "
              f"load average {load:.1f} → {os.getloadavg()[0]:.1f}")
        if args.peer_rows > 0:
            theirs = train_throughput(name, per_row, args.batch_size)
            ours = entry[first]["samples_per_s"]
            entry["per_row"], entry["ratio"] = theirs, ours / theirs
            print(f"      per-row pattern (fp32) {theirs:>10,.0f}/s   msmtrec/per-row {ours / theirs:5.2f}x")
        if streamed is not None:
            entry["streamed"] = rate = train_throughput(name, streamed, args.batch_size)
            print(f"      streamed (fp32) {rate:>10,.0f}/s")
        entry["msmtrec"] = entry[first]["samples_per_s"]
        results["train"][name] = entry

    eval_data = data.take(slice(0, args.eval_rows))
    eval_name = "shared_bottom" if "shared_bottom" in names else names[0]
    model = build_model(eval_name, schema, {})
    t0 = time.perf_counter()
    evaluate_model(model, eval_data, schema)
    secs = time.perf_counter() - t0
    print(f"eval {eval_name} on {len(eval_data):,} rows (inference + AUC/logloss per scenario × task): {secs:.3f} s")
    results["eval_seconds"] = secs
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:,.0f} MiB")
    results["peak_rss_mib"] = rss
    results["load_end"], results["time_end"] = os.getloadavg()[0], time.time()
    print(f"load average {results['load_end']:.1f} at {time.strftime('%H:%M:%S')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
