"""Scoring raw rows: ``msmtrec predict`` with an export folder writes what it writes with the run
directory (same columns, same handling of rows without a known scenario), and ``Scorer`` does the
same on a pyarrow Table or a pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from msmtrec.data import Encoders
from msmtrec.errors import DataError
from msmtrec.export import Scorer, export_run
from tests.cli.conftest import cli, refused_untouched, succeeded
from tests.export.conftest import shop_table


@pytest.fixture(scope="module")
def run_dir(runs) -> Path:
    return runs("ple")


@pytest.fixture(scope="module")
def exports(run_dir, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    return {fmt: export_run(run_dir, fmt, folder / fmt) for fmt in ("onnx", "torchscript")}


def new_rows(tmp_path: Path, n: int = 200) -> Path:
    """Rows the model has not seen, with one scenario it does not know and one missing."""
    table = shop_table(n, seed=7)
    page = table.column("page").to_pylist()
    page[3], page[10] = "checkout", None
    path = tmp_path / "new.parquet"
    pq.write_table(table.set_column(0, "page", pa.array(page)), path)
    return path


def test_predict_with_an_export_writes_what_the_run_writes(run_dir, exports, tmp_path):
    source = new_rows(tmp_path)
    outputs = {}
    for name, model in {"run": run_dir, **exports}.items():
        out = tmp_path / f"{name}.parquet"
        assert "2 row(s) had no scenario" in succeeded(cli("predict", model, "-i", source, "-o", out,
                                                           "--unknown-scenario", "skip"))
        outputs[name] = pq.read_table(out)
    reference = outputs.pop("run")
    assert reference.column_names == pq.read_table(source).column_names + ["click_prob", "buy_prob"]
    for name, table in outputs.items():
        assert table.column_names == reference.column_names, name
        for col in ("click_prob", "buy_prob"):
            a, b = reference.column(col), table.column(col)
            assert a.null_count == b.null_count == 2 and pc.is_null(a).equals(pc.is_null(b))
            assert np.nanmax(np.abs(a.to_numpy(zero_copy_only=False) - b.to_numpy(zero_copy_only=False))) <= 1e-5


def test_predict_with_an_export_refuses_what_the_run_refuses(run_dir, exports, tmp_path):
    source = new_rows(tmp_path)
    for model in (run_dir, exports["onnx"]):
        refused_untouched(tmp_path, "predict", model, "-i", source, "-o", tmp_path / "out.csv",
                          needles=("scenario value(s) ['checkout'] of column 'page' occur in input",))
    pq.write_table(shop_table(20).drop_columns(["genre"]), tmp_path / "no_genre.parquet")
    for model in (run_dir, exports["torchscript"]):
        refused_untouched(tmp_path, "predict", model, "-i", tmp_path / "no_genre.parquet", "-o", tmp_path / "o.csv",
                          needles=("is missing column(s) 'genre'",))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_scorer_on_a_table_and_a_dataframe(run_dir, exports, fmt):
    table = shop_table(150, seed=9).drop_columns(["click", "buy"])
    scorer, eager = Scorer.load(exports[fmt], threads=1), Scorer.load(run_dir)
    assert isinstance(scorer.encoders, Encoders) and scorer.backend.name == fmt and eager.backend.name == "eager"
    scored = scorer.predict(table)
    assert isinstance(scored, pa.Table) and scored.column_names == table.column_names + ["click_prob", "buy_prob"]
    expected = eager.predict(table)
    for col in ("click_prob", "buy_prob"):
        assert np.abs(scored.column(col).to_numpy() - expected.column(col).to_numpy()).max() <= 1e-5
    frame = table.to_pandas()
    from_frame = scorer.predict(frame)
    assert isinstance(from_frame, pd.DataFrame) and list(from_frame.columns) == scored.column_names
    np.testing.assert_allclose(from_frame["click_prob"].to_numpy(), scored.column("click_prob").to_numpy(), atol=1e-6)
    assert "click_prob" not in frame.columns  # the caller's frame is not changed


def test_scorer_rows_without_a_known_scenario(exports):
    table = shop_table(30, seed=4)
    page = table.column("page").to_pylist()
    page[0] = None
    table = table.set_column(0, "page", pa.array(page))
    scorer = Scorer.load(exports["onnx"])
    with pytest.raises(DataError, match=r"table: 1 row\(s\) have no value in scenario column 'page' \(the first is row 1\)"):
        scorer.predict(table)
    scored = scorer.predict(table.to_pandas(), unknown_scenario="skip")
    assert np.isnan(scored["click_prob"].iloc[0]) and scored["click_prob"].iloc[1:].between(0, 1).all()
    with pytest.raises(DataError, match="expects a pyarrow Table or a pandas DataFrame, got list"):
        scorer.predict([1, 2])


def test_predict_writes_exactly_the_scored_rows(exports, tmp_path):
    """The file predict writes holds the scorer's table value for value (nulls where unscored),
    whatever encodings the writer picks; a CSV holds the same numbers as text."""
    from msmtrec.predict import predict_file

    source = new_rows(tmp_path)
    scorer = Scorer.load(exports["onnx"])
    expected, skipped = scorer.predict_table(pq.read_table(source), unknown_scenario="skip")
    assert skipped == 2
    predict_file(exports["onnx"], source, tmp_path / "out.parquet", unknown_scenario="skip")
    written = pq.read_table(tmp_path / "out.parquet")
    assert written.schema.equals(expected.schema) and written.equals(expected)
    predict_file(exports["onnx"], source, tmp_path / "out.csv", unknown_scenario="skip")
    text = pacsv.read_csv(tmp_path / "out.csv")
    for col in ("click_prob", "buy_prob"):
        assert pc.is_null(text.column(col)).equals(pc.is_null(expected.column(col)))
        assert text.column(col).to_numpy(zero_copy_only=False).tolist() == pytest.approx(
            expected.column(col).to_numpy(zero_copy_only=False).tolist(), nan_ok=True, rel=1e-12)
