"""Batch scoring with exported models: eager PyTorch vs TorchScript vs ONNX Runtime, every model,
measured in one run.

    python benchmarks/export_scoring.py                          # every model, 1M-row predict
    python benchmarks/export_scoring.py --models shared_bottom --predict-models shared_bottom

Setting (DESIGN.md): synthetic data of 7 categorical fields (1000 ids each), 3 scenarios × 2
click → conversion tasks; every model at its default hyperparameters, trained one epoch on
``--train-rows`` rows (throughput does not depend on the weights), exported in both formats.

- "model only": rows/s of each backend on encoded tensors (batches of ``--batch`` rows, the
  backends' own batch calls: ``EagerBackend`` under ``inference_mode``, the frozen TorchScript
  graph, an ONNX Runtime session with ``--threads`` intra-op threads), median of ``--repeats``
  passes over the same batches, the backends taking turns so that a change of load hits all three.
- "request latency": p50 / p99 milliseconds of one ``--request``-row call, ``--requests`` calls.
- "predict": ``msmtrec predict`` end to end (``msmtrec.predict.predict_file``: read the Parquet
  file → encode with the run's encoders → score → write Parquet) on ``--rows`` rows, per backend,
  with the time of each step measured separately on the same file.

Preparation (data, training, exports; cached in ``--work``) runs at nice 19 in a child process;
the timed part takes ``--lock`` (the shared benchmark lock, as ``flock(1)`` does) and prints the
load average next to every section.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKENDS = ("eager", "torchscript", "onnx")


def prepare(args: argparse.Namespace) -> None:
    """Data, one trained run per model and its two exports, in ``args.work`` (kept when present)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from msmtrec.config import TrainConfig
    from msmtrec.data.synthetic import SyntheticConfig, write_synthetic
    from msmtrec.export import export_run
    from msmtrec.train import train

    work = args.work
    data = work / "data"
    if not (data / "spec.yaml").is_file():
        write_synthetic(data, SyntheticConfig(rows=args.rows, seed=0), chunk_rows=250_000)
    if not (work / "score.parquet").is_file():
        table = pa.concat_tables([pq.read_table(data / f"{s}.parquet") for s in ("train", "val", "test")])
        pq.write_table(table.slice(0, args.rows), work / "score.parquet")
    for name in args.models:
        run = work / "runs" / name
        if not _loads(run):  # not finished, or trained by a msmtrec whose model differs: train again
            shutil.rmtree(run, ignore_errors=True)
            for fmt in ("onnx", "torchscript"):
                shutil.rmtree(work / "exports" / f"{name}-{fmt}", ignore_errors=True)
            config = TrainConfig(model=name, data=str(data / "spec.yaml"), row_limit=args.train_rows, max_epochs=1,
                                 run_dir=str(run), threads=args.threads)
            train(config, write_run=True)
        for fmt in ("onnx", "torchscript"):
            out = work / "exports" / f"{name}-{fmt}"
            if not (out / "manifest.json").is_file():
                export_run(run, fmt, out, overwrite=True)


def _loads(run: Path) -> bool:
    """Whether ``run`` is a finished run this msmtrec can load (a cached run of an older model
    version, with other parameters, cannot)."""
    from msmtrec.errors import CheckpointError
    from msmtrec.train.api import load_run

    if not (run / "metrics.json").is_file():
        return False
    try:
        load_run(run)
    except CheckpointError:
        return False
    return True


@contextmanager
def bench_lock(path: Path):
    with open(path, "a") as f:
        t = time.time()
        fcntl.flock(f, fcntl.LOCK_EX)
        print(f"benchmark lock {path} taken after {time.time() - t:.0f} s; {subprocess.getoutput('uptime').strip()}",
              flush=True)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def backends(args: argparse.Namespace, name: str) -> dict:
    from msmtrec.export import Scorer

    return {"eager": Scorer.load(args.work / "runs" / name).backend,
            "torchscript": Scorer.load(args.work / "exports" / f"{name}-torchscript").backend,
            "onnx": Scorer.load(args.work / "exports" / f"{name}-onnx", threads=args.threads).backend}


def model_only(args: argparse.Namespace, name: str, table) -> dict:
    """rows/s per backend on batches of ``table`` encoded by the model's own encoders (median of
    passes, backends in turn) and the latency of single requests."""
    from msmtrec.data import Encoders

    data = Encoders.load(args.work / "runs" / name).transform_for_prediction(table, source="bench").data
    n = args.batch * args.batches
    batches = [data.take(slice(i, i + args.batch)) for i in range(0, n, args.batch)]
    requests = [data.take(slice(n + i * args.request, n + (i + 1) * args.request)) for i in range(args.requests)]
    runners = backends(args, name)
    rows = sum(len(b) for b in batches)
    for run in runners.values():  # warm up (first calls allocate and, for TorchScript, optimise)
        for b in batches[:3] + requests[:20]:
            run(b)
    passes: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for k, run in runners.items():
            t = time.perf_counter()
            for b in batches:
                run(b)
            passes[k].append(rows / (time.perf_counter() - t))
    out = {k: {"rows_per_s": float(np.median(v))} for k, v in passes.items()}
    for k, run in runners.items():
        times = []
        for b in requests:
            t = time.perf_counter()
            run(b)
            times.append(time.perf_counter() - t)
        out[k]["p50_ms"] = 1000 * float(np.percentile(times, 50))
        out[k]["p99_ms"] = 1000 * float(np.percentile(times, 99))
    return out


def predict_end_to_end(args: argparse.Namespace, name: str) -> dict:
    """``predict_file`` on the whole file per backend, and each of its steps timed on its own."""
    import pyarrow.parquet as pq

    from msmtrec.export import Scorer
    from msmtrec.predict import _ParquetOut, predict_file

    source, target = args.work / "score.parquet", args.work / "scored.parquet"
    models = {"eager": args.work / "runs" / name, "torchscript": args.work / "exports" / f"{name}-torchscript",
              "onnx": args.work / "exports" / f"{name}-onnx"}
    out = {}
    for k, model in models.items():
        t = time.perf_counter()
        n, _ = predict_file(model, source, target, overwrite=True, threads=args.threads)
        total = time.perf_counter() - t
        scorer = Scorer.load(model, threads=args.threads)
        steps = {}
        t = time.perf_counter()
        table = scorer.encoders.spec.data_file(source, "auto").read()
        steps["read"] = time.perf_counter() - t
        t = time.perf_counter()
        encoded = scorer.encoders.transform_for_prediction(table, source="bench").data
        steps["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        scorer.score(encoded)
        steps["score"] = time.perf_counter() - t
        scored, _ = scorer.predict_table(table)
        t = time.perf_counter()
        writer = _ParquetOut(target, scored.schema, scorer.encoders.spec)
        writer.write(scored)
        writer.close()
        steps["write"] = time.perf_counter() - t
        out[k] = {"rows": n, "seconds": total, "rows_per_s": n / total, "steps_s": steps,
                  "file_mb": source.stat().st_size / 1e6}
        assert pq.read_metadata(target).num_rows == n
    return out


def main() -> None:
    from msmtrec.models import MODELS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated model names, or 'all'")
    ap.add_argument("--predict-models", default="shared_bottom", help="models for the end-to-end predict")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the file predict scores")
    ap.add_argument("--train-rows", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--batches", type=int, default=16, help="batches per model-only pass")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--request", type=int, default=256)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/msmtrec-export-bench"))
    ap.add_argument("--lock", type=Path, default=Path("/tmp/msmtrec-bench.lock"))
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.models = sorted(MODELS) if args.models == "all" else args.models.split(",")
    args.predict_models = [m for m in args.predict_models.split(",") if m]
    args.models += [m for m in args.predict_models if m not in args.models]
    if args.prepare_only:
        prepare(args)
        return
    argv = [a for a in sys.argv[1:] if a != "--prepare-only"]
    subprocess.run(["nice", "-n", "19", sys.executable, __file__, *argv, "--prepare-only"], check=True)

    import pyarrow.parquet as pq
    import torch

    import onnxruntime

    torch.set_num_threads(args.threads)
    table = pq.read_table(args.work / "score.parquet").slice(0, args.batch * args.batches + args.request * args.requests)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    results: dict = {"machine": f"{cpu}, {os.cpu_count()} cores", "torch": torch.__version__,
                     "onnxruntime": onnxruntime.__version__, "threads": args.threads, "batch": args.batch,
                     "date": time.strftime("%Y-%m-%d %H:%M %Z"), "model_only": {}, "predict": {}}
    print(f"{results['machine']}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; {args.threads} "
          f"threads; batch {args.batch} × {args.batches}, median of {args.repeats}; requests of {args.request} rows")
    with bench_lock(args.lock):
        print("\n| model | eager rows/s | TorchScript rows/s | ONNX Runtime rows/s | ORT / eager | "
              "p50 / p99 ms eager | TorchScript | ONNX Runtime | load |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.models:
            r = model_only(args, name, table)
            results["model_only"][name] = {**r, "load": os.getloadavg()[0]}
            lat = " | ".join(f"{r[k]['p50_ms']:.2f} / {r[k]['p99_ms']:.2f}" for k in BACKENDS)
            print(f"| {name} | " + " | ".join(f"{r[k]['rows_per_s']:,.0f}" for k in BACKENDS)
                  + f" | {r['onnx']['rows_per_s'] / r['eager']['rows_per_s']:.2f}× | {lat} | "
                  f"{os.getloadavg()[0]:.2f} |", flush=True)
        print(f"\n| predict ({args.rows:,} rows) | backend | rows/s | seconds | read | encode | score | write | load |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.predict_models:
            r = predict_end_to_end(args, name)
            results["predict"][name] = r
            for k in BACKENDS:
                s = r[k]["steps_s"]
                print(f"| {name} | {k} | {r[k]['rows_per_s']:,.0f} | {r[k]['seconds']:.2f} | {s['read']:.2f} | "
                      f"{s['encode']:.2f} | {s['score']:.2f} | {s['write']:.2f} | {os.getloadavg()[0]:.2f} |",
                      flush=True)
        print(f"\n{subprocess.getoutput('uptime').strip()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
