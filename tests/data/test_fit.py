"""Fitting in chunks: one table fitted in 1, 7 or 64 chunks gives the same encoders (numeric
moments to rounding; quantile edges exactly below the sample cap, within the documented rank
tolerance above it)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from msmtrec.data import Encoders, builtin_datasets, load_spec
from msmtrec.data.fit.numeric import NumericFitter
from msmtrec.data.fit.vocabulary import VocabularyFitter
from msmtrec.data.synthetic import SyntheticConfig, write_synthetic
from tests.data.conftest import make_spec


def chunks(table: pa.Table, n: int) -> list[pa.Table]:
    bounds = np.linspace(0, table.num_rows, n + 1).astype(int)
    return [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]


def assert_same_encoders(a: Encoders, b: Encoders) -> None:
    x, y = a.to_dict(), b.to_dict()
    assert x["vocabularies"] == y["vocabularies"] and x["scenario"] == y["scenario"] and x["schema"] == y["schema"]
    for col, stats in y["numeric"].items():
        for k, v in stats.items():
            expected = v if isinstance(v, (str, list)) else pytest.approx(v, rel=1e-12, abs=1e-15)
            assert x["numeric"][col][k] == expected, (col, k)


@pytest.fixture(scope="module")
def builtin():
    path = builtin_datasets()["womens-ecommerce"]
    spec = load_spec(path)
    return spec, pq.read_table(spec.files.path)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    write_synthetic(out, SyntheticConfig(rows=20_000, num_fields=3, vocab=300, num_numeric=3, with_user=True, seed=3))
    raw = yaml.safe_load((out / "spec.yaml").read_text())
    raw["numeric"] = [{"column": "num_0", "transform": "log1p"}, {"column": "num_1", "transform": "bucketize",
                                                                   "buckets": 7}, "num_2"]
    raw["min_count"] = 4
    (out / "spec.yaml").write_text(yaml.safe_dump(raw))
    return load_spec(out / "spec.yaml"), pq.read_table(out / "train.parquet")


@pytest.mark.parametrize("n", [7, 64])
def test_builtin_fitted_in_chunks_equals_one_chunk(builtin, n):
    spec, table = builtin
    assert_same_encoders(Encoders.fit(spec, chunks(table, n)), Encoders.fit(spec, table))


@pytest.mark.parametrize("n", [7, 64])
def test_synthetic_fitted_in_chunks_equals_one_chunk(synthetic, n):
    spec, table = synthetic
    one = Encoders.fit(spec, table)
    assert one.vocabularies["cat_1"].cardinality < 301  # min_count removed some ids
    assert_same_encoders(Encoders.fit(spec, chunks(table, n)), one)


def test_one_chunk_is_numpys_statistics(synthetic):
    spec, table = synthetic
    enc = Encoders.fit(spec, table)
    x = table.column("num_2").to_numpy().astype(np.float64)
    assert enc.numeric["num_2"].mean == x.mean() and enc.numeric["num_2"].std == x.std()
    edges = np.unique(np.quantile(table.column("num_1").to_numpy().astype(np.float64), np.arange(1, 7) / 7))
    assert enc.numeric["num_1"].edges == edges.tolist()


def test_mixed_int_and_text_chunks_compare_as_text():
    # A CSV id column whose second block has a text value: the counts merge as text whatever the chunking.
    ints = pa.array([3, 10, 3], pa.int64())
    text = pa.array(["10", "x", "3"], pa.string())
    a = VocabularyFitter("c", 2)
    a.update(ints)
    a.update(text)
    b = VocabularyFitter("c", 2)
    b.update(pa.chunked_array([pc.cast(ints, pa.string()), text]))
    assert a.finish() == b.finish()
    assert a.finish().values == ["10", "3"] and a.finish().dtype == "string"


def test_quantile_sample_beyond_its_cap_stays_within_the_documented_rank_tolerance():
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=400_000)
    exact = NumericFitter("x", "bucketize", 10, "spec", quantile_sample=10**6)
    sampled = NumericFitter("x", "bucketize", 10, "spec", quantile_sample=20_000, seed=1)
    for part in np.array_split(x, 37):
        exact.update(part)
        sampled.update(part)
    e, s = np.array(exact.finish().edges), np.array(sampled.finish().edges)
    assert np.array_equal(e, np.quantile(x, np.arange(1, 10) / 10))  # below the cap: exact
    # Above it: each edge's rank in the full data is within a few 1/sqrt(cap) of its target.
    ranks = np.searchsorted(np.sort(x), s) / len(x)
    assert np.max(np.abs(ranks - np.arange(1, 10) / 10)) < 3 / np.sqrt(20_000)
    assert not np.array_equal(e, s)


def test_rows_without_a_scenario_are_not_fitted_on():
    spec = make_spec(categorical=["c"])
    t = pa.table({"s": ["a", None, " ", "a"], "y": [0, 1, 0, 1], "c": [1, 99, 98, 2]})
    enc = Encoders.fit(spec, chunks(t, 3))
    assert enc.vocabularies["c"].values == [1, 2]


@pytest.mark.parametrize(("transform", "dropped"), [("standardize", 3), ("log1p", 1), ("bucketize", 3)])
def test_values_a_float32_input_cannot_hold_are_read_as_missing_and_counted(transform, dropped):
    """±inf, and (unless log1p brings it into range) a finite float64 beyond float32's ±3.4e38 such
    as a DBL_MAX sentinel: fitted on as missing, counted, and encoded as missing — not as an inf
    that turns a row's probabilities into NaN, nor into an overflowing variance that zeroes the
    whole column."""
    normal = np.random.default_rng(0).gamma(2.0, 10.0, 500)
    odd = np.array([np.inf, 1e300, -np.finfo(np.float64).max, np.nan])
    clean, dirty = (NumericFitter("x", transform, 5, "spec", quantile_sample=10_000) for _ in range(2))
    clean.update(np.concatenate([normal, odd[[0, 3]]]) if transform == "log1p" else normal)
    dirty.update(np.concatenate([normal[:250], odd, normal[250:]]))
    assert dirty.infinite == dropped
    if transform == "log1p":  # 1e300 and -DBL_MAX are values of the column: log1p makes them 690 and -710
        clean.update(odd[1:3])
    a, b = clean.finish(), dirty.finish()
    assert a.to_dict() == pytest.approx(b.to_dict()) if transform != "bucketize" else a.edges == b.edges
    with np.errstate(all="raise"):  # no overflow on the way to float32
        if transform == "bucketize":
            ids = b.encode_buckets(odd)
            assert (ids == [0, 0, 0, 0]).all()
        else:
            z = b.encode_dense(odd)
            assert z.dtype == np.float32 and np.isfinite(z).all()
            assert (z[[0, 3]] == 0).all() and ((z[1:3] == 0) == (transform == "standardize")).all()
