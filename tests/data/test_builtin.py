"""The embedded default dataset: reproducible file, expected rows, and label rates that match the
raw CSV computed independently."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from msmtrec.data import builtin_datasets, describe_dataset, iterate_batches, load_dataset

ROOT = Path(__file__).resolve().parents[2]
SHARED_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "womens-ecommerce-reviews" / "womens_clothing_reviews.csv"
COLUMNS = ["review_id", "Clothing ID", "Age", "Rating", "Recommended IND", "Positive Feedback Count",
           "Division Name", "Department Name", "Class Name"]


@pytest.fixture(scope="module")
def ds():
    return load_dataset("womens-ecommerce")


@pytest.fixture(scope="module")
def raw() -> pa.Table:
    """The shipped Parquet read directly with pyarrow (no msmtrec code)."""
    return pq.read_table(builtin_datasets()["womens-ecommerce"].with_suffix(".parquet"))


def test_builtin_files_are_small_and_complete():
    spec_path = builtin_datasets()["womens-ecommerce"]
    folder = spec_path.parent
    parquet = folder / "womens_ecommerce.parquet"
    assert parquet.stat().st_size < 1_000_000
    meta = pq.ParquetFile(parquet).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(parquet).names == COLUMNS
    readme = (folder / "README.md").read_text()
    for word in ("CC0", "Department Name", "recommend", "five_star", "helpful", "0.57"):
        assert word in readme


def test_rows_and_dropped_rows(ds, raw):
    assert raw.num_rows == 23_486
    r = ds.report
    assert sum(r["rows_read"].values()) == 23_486
    assert r["dropped_total"] == 14 == raw.column("Department Name").null_count
    assert all(set(d) <= {"missing_scenario"} for d in r["dropped"].values())
    assert sum(r["rows"].values()) == len(ds.train) + len(ds.val) + len(ds.test) == 23_472
    # The split is exact (80/10/10 of 23,486 rows, rounded cumulatively) before rows without a
    # department are dropped; each split loses exactly its own dropped rows.
    assert r["rows_read"] == {"train": 18_789, "val": 2_348, "test": 2_349}
    for s in ("train", "val", "test"):
        assert r["rows"][s] == r["rows_read"][s] - sum(r["dropped"][s].values()) == len(getattr(ds, s))
    assert "dropped 14 rows" in ds.summary()


def test_schema_has_no_label_columns_as_features(ds):
    s = ds.schema
    assert [n for n, _ in s.categorical] == ["Clothing ID", "Division Name", "Class Name", "Age"]
    assert s.numeric == () and s.tasks == ("recommend", "five_star", "helpful")
    assert s.scenarios == ("tops", "dresses", "bottoms", "intimate", "jackets", "trend")
    assert dict(s.categorical)["Age"] == 11  # 10 buckets + unknown
    for banned in ("Rating", "Positive Feedback Count", "Recommended IND"):
        assert banned not in [n for n, _ in s.categorical] and banned not in s.numeric


def test_label_rates_match_raw_csv(ds):
    # Independent reference: the shared CSV read with pyarrow, rules applied with numpy.
    if SHARED_CSV.is_file():
        t = pacsv.read_csv(SHARED_CSV, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    else:  # pragma: no cover - the shipped file is the same rows
        t = pq.read_table(builtin_datasets()["womens-ecommerce"].with_suffix(".parquet"))
    keep = pc.is_valid(t.column("Department Name")).to_numpy(zero_copy_only=False)
    expected = {
        "recommend": t.column("Recommended IND").to_numpy()[keep] == 1,
        "five_star": t.column("Rating").to_numpy()[keep] == 5,
        "helpful": t.column("Positive Feedback Count").to_numpy()[keep] > 0,
    }
    r = ds.report
    for j, task in enumerate(ds.schema.tasks):
        positives = sum(r["label_positive_rate"][s][task] * r["label_observed"][s][task] for s in ("train", "val", "test"))
        assert round(positives) == int(expected[task].sum())
        tensor_pos = sum(int(getattr(ds, s).labels[:, j].sum()) for s in ("train", "val", "test"))
        assert tensor_pos == int(expected[task].sum())
        for s in ("train", "val", "test"):
            assert r["label_observed"][s][task] == r["rows"][s]  # no missing labels in this data
            assert abs(r["label_positive_rate"][s][task] - expected[task].mean()) < 0.03
    assert expected["recommend"].mean() == pytest.approx(0.822, abs=0.001)
    assert expected["five_star"].mean() == pytest.approx(0.559, abs=0.001)


def test_scenario_counts_match_raw(ds, raw):
    counts = {v["values"]: v["counts"] for v in pc.value_counts(raw.column("Department Name")).to_pylist()}
    names = {"Tops": "tops", "Dresses": "dresses", "Bottoms": "bottoms", "Intimate": "intimate",
             "Jackets": "jackets", "Trend": "trend"}
    r = ds.report["scenario_rows"]
    for raw_name, name in names.items():
        assert sum(r[s][name] for s in ("train", "val", "test")) == counts[raw_name]


def test_split_is_reproducible_and_tensors_typed(ds):
    again = load_dataset("womens-ecommerce")
    assert torch.equal(ds.test.categorical, again.test.categorical) and torch.equal(ds.test.labels, again.test.labels)
    assert ds.train.categorical.dtype == torch.int64 and ds.train.scenario.dtype == torch.int64
    assert ds.train.user is None and not ds.schema.has_user
    batch = next(iterate_batches(ds.train, 256, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert batch.categorical.shape == (256, 4) and batch.labels.shape == (256, 3)


def test_row_limit_reads_the_head(ds):
    small = load_dataset("womens-ecommerce", row_limit=1000)
    assert sum(small.report["rows_read"].values()) == 1000 and small.report["row_limit"] == 1000


def test_describe_dataset():
    info = describe_dataset("womens-ecommerce")
    assert info["rows"] == 23_486 and info["tasks"] == ["recommend", "five_star", "helpful"]
    assert info["scenarios"][:2] == ["tops", "dresses"]


def test_build_script_reproduces_the_shipped_file(tmp_path):
    # The project's checkout (and CI) has ../shared beside the repository; the check is not optional.
    assert SHARED_CSV.is_file(), f"{SHARED_CSV} is missing: the tests expect ../shared beside the repository"
    spec = importlib.util.spec_from_file_location("build_builtin", ROOT / "scripts" / "build_builtin_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "w.parquet"
    module.build(SHARED_CSV, out)
    shipped = builtin_datasets()["womens-ecommerce"].with_suffix(".parquet")
    assert pq.read_table(out).equals(pq.read_table(shipped))
    ids = pq.read_table(out).column("review_id").to_numpy()
    assert np.array_equal(ids, np.arange(23_486))
