"""Peak memory and time of ``msmtrec predict`` on a Parquet file: streamed (the default: chunks
of ``PREDICT_ROWS`` rows read, encoded, scored and written in turn) vs the whole file at once (the
path a CSV input takes). Run each mode in its own process:

    python benchmarks/predict_memory.py stream MODEL_DIR INPUT.parquet
    python benchmarks/predict_memory.py whole MODEL_DIR INPUT.parquet

(e.g. the export benchmark's cache: ``MODEL_DIR`` = /tmp/msmtrec-export-bench/exports/shared_bottom-onnx,
``INPUT`` = /tmp/msmtrec-export-bench/score.parquet, 1M rows). Prints rows, wall time and peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``); the output goes to a temporary folder.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.export import Scorer  # noqa: E402
from msmtrec.files import atomic_write  # noqa: E402
from msmtrec.predict import _ParquetOut, predict_file  # noqa: E402


def whole(model_dir: str, source: str, target: Path) -> int:
    """The input read whole, scored, written: what predict does with a CSV."""
    scorer = Scorer.load(model_dir)
    table = scorer.encoders.spec.data_file(source, "auto").read()
    scored, _ = scorer.predict_table(table)

    def write(tmp: Path) -> None:
        out = _ParquetOut(tmp, scored.schema, scorer.encoders.spec)
        out.write(scored)
        out.close()

    atomic_write(target, write)
    return table.num_rows


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("stream", "whole"):
        sys.exit(__doc__)
    mode, model_dir, source = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "scored.parquet"
        t = time.perf_counter()
        n = predict_file(model_dir, source, target)[0] if mode == "stream" else whole(model_dir, source, target)
        seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode}: {n:,} rows scored in {seconds:.2f} s ({n / seconds:,.0f} rows/s); peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
