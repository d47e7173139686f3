"""The benchmark scripts run end to end, at toy sizes: they reach into the library's internals,
and a script that no longer runs cannot reproduce the figures in docs/BENCHMARKS.md (two had
stopped running unnoticed: an import of a function that had been removed).

Each job is one or more commands run in turn in a subprocess with one thread; two jobs run at
a time, so the whole check takes about half its serial time. Every script's own figures are
checked only for existing (a JSON key, a table line); their values are the benchmarks' business.
Not run here: ``scaling.py`` (two torchrun ranks; the distributed tests train the same way),
``tracking_overhead.py`` (an MLflow store's start-up; the tracking tests use a real one),
``reproduce.py`` and ``autoifs_selection.py`` (studies of many training runs through the API the
other scripts use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from msmtrec.train.precision import Precision

ROOT = Path(__file__).resolve().parents[1]


def jobs(tmp: Path) -> dict[str, list[list[str]]]:
    """Name → the commands of that job (argument lists after the interpreter)."""
    work, synth = tmp / "export", tmp / "synth"
    return {
        "throughput": [["benchmarks/throughput.py", "--rows", "2048", "--models", "shared_bottom,aem2tl",
                        "--precision", "fp32,bf16", "--peer-rows", "0", "--eval-rows", "1024", "--batch-size", "512",
                        "--warm-batches", "1", "--threads", "1", "--json", str(tmp / "throughput.json")]],
        "history": [["benchmarks/history.py", "--rows", "8192", "--rounds", "1", "--build-rows", "3000",
                     "--batch-size", "512", "--threads", "1", "--json", str(tmp / "history.json")]],
        "export_scoring, predict_memory": [
            ["benchmarks/export_scoring.py", "--models", "shared_bottom", "--rows", "3000", "--train-rows", "512",
             "--batch", "512", "--batches", "2", "--repeats", "1", "--request", "64", "--requests", "3",
             "--threads", "1", "--work", str(work), "--lock", str(tmp / "lock"), "--json", str(tmp / "export.json")],
            ["benchmarks/predict_memory.py", "stream", str(work / "exports" / "shared_bottom-onnx"),
             str(work / "score.parquet")]],
        "synth, load_memory": [
            ["-m", "msmtrec", "synth", "--out", str(synth), "--rows", "3000"],
            ["benchmarks/load_memory.py", "memory", str(synth / "spec.yaml")],
            ["benchmarks/load_memory.py", "stream", str(synth / "spec.yaml")]],
        "precision_parity": [["benchmarks/precision_parity.py", "--out", str(tmp / "parity"), "--rows", "4000",
                              "--models", "shared_bottom", "--seeds", "1", "--batch-size", "512"]],
        "model_flops": [["benchmarks/model_flops.py", "--models", "hinet,aem2tl"]],
        "hinet_step_ablation": [["benchmarks/hinet_step_ablation.py", "--batch-size", "256", "--repeats", "1",
                                 "--steps", "1"]],
        "adam_step": [["benchmarks/adam_step.py", "--models", "shared_bottom", "--rows", "2048", "--rounds", "1",
                       "--threads", "1"]],
        "autoifs": [["benchmarks/autoifs.py", "--rows", "2048", "--batch-size", "512", "--repeats", "1",
                     "--threads", "1"]],
        "dropout_cost": [["benchmarks/dropout_cost.py", "--models", "shared_bottom", "--precision", "fp32",
                          "--rows", "1024", "--rounds", "1", "--threads", "1"]],
        "entire_space": [["benchmarks/entire_space.py", "--out", str(tmp / "entire"), "--table", "throughput",
                          "--rows", "4096"]],
        "history_signal": [["benchmarks/history_signal.py", "--out", str(tmp / "signal"), "--rows", "3000",
                            "--models", "shared_bottom", "--seeds", "1", "--epochs", "1"]],
    }


def run_job(commands: list[list[str]]) -> tuple[str, str]:
    """The job's combined output, and '' or what failed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    output = []
    for args in commands:
        p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        output.append(p.stdout + p.stderr)
        if p.returncode != 0:
            return "\n".join(output), f"{' '.join(args[:2])} exited {p.returncode}:\n{p.stderr[-1500:]}"
    return "\n".join(output), ""


def test_every_benchmark_script_runs_end_to_end(tmp_path):
    todo = jobs(tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(todo, pool.map(run_job, todo.values())))
    failures = {name: why for name, (_, why) in done.items() if why}
    assert not failures, "\n\n".join(f"{name}: {why}" for name, why in failures.items())
    # Each printed its figures.
    throughput = json.loads((tmp_path / "throughput.json").read_text())
    assert {"shared_bottom", "aem2tl"} <= set(json.dumps(throughput).split('"'))
    assert throughput.get("bf16_emulated", False) == (Precision("bf16", "cpu").note is not None)
    assert {"train", "cost", "unit_ms", "build"} <= set(json.loads((tmp_path / "history.json").read_text()))
    export = json.loads((tmp_path / "export.json").read_text())
    assert set(export["model_only"]["shared_bottom"]) >= {"eager", "torchscript", "onnx"}
    assert set(export["predict"]["shared_bottom"]) == {"eager", "torchscript", "onnx"}
    assert "peak RSS" in done["export_scoring, predict_memory"][0]
    out = done["synth, load_memory"][0]
    assert "memory:" in out and "stream:" in out
    assert "FusedSEIBank" in done["hinet_step_ablation"][0]
    assert "hinet" in done["model_flops"][0] and "aem2tl" in done["model_flops"][0]
