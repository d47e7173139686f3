"""Public-dataset recipes, on fixtures in each dataset's published file layout.

ml-1m and kuairand fixtures are hand-written rows in the published format (MovieLens may not be
redistributed); the ali-ccp and aliexpress fixtures are the real sample rows of tests/fixtures.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from msmtrec.data import load_dataset
from msmtrec.data.recipes import RECIPES, prepare
from msmtrec.data.io import hash_split
from msmtrec.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RAW = FIXTURES / "recipes"


def _read(out: Path, split: str) -> dict[str, list]:
    return pq.read_table(out / f"{split}.parquet").to_pydict()


def _all_rows(out: Path) -> dict[str, list]:
    parts = [_read(out, s) for s in ("train", "val", "test")]
    return {k: sum((p[k] for p in parts), []) for k in parts[0]}


def test_registry_lists_the_four_recipes():
    assert set(RECIPES) == {"ml-1m", "kuairand", "ali-ccp", "aliexpress"}


# ---- MovieLens-1M ------------------------------------------------------------------------------


def test_ml_1m_framing(tmp_path):
    spec_path = prepare("ml-1m", RAW / "ml-1m", tmp_path / "out")
    out = tmp_path / "out"
    ratings = [line.split("::") for line in (RAW / "ml-1m" / "ratings.dat").read_text(encoding="latin-1").splitlines()]
    users = {int(u[0]): u for u in (line.split("::") for line in
                                    (RAW / "ml-1m" / "users.dat").read_text(encoding="latin-1").splitlines())}
    rows = _all_rows(out)
    # Exact seeded 80/10/10 of all ratings.
    assert [pq.read_metadata(out / f"{s}.parquet").num_rows for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(zip(rows["user_id"], rows["movie_id"], rows["rating"])) == \
        sorted((int(r[0]), int(r[1]), int(r[2])) for r in ratings)
    for uid, age, rating, click, like in zip(rows["user_id"], rows["age"], rows["rating"], rows["click"], rows["like"]):
        assert age == int(users[uid][2])
        assert click == int(rating > 3) and like == int(rating > 4)
    by_movie = dict(zip(rows["movie_id"], rows["genre"]))
    assert by_movie[4] == "Drama"  # "Misérables, Les (1995)::Drama|Musical", a Latin-1 title with a comma
    assert by_movie[3] == "Action"  # "Star Trek: The Motion Picture" has a colon in its title
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["scenario_as_feature"] is True and spec["user"] == "user_id"
    ds = load_dataset(spec_path)
    assert ds.schema.scenarios == ("under_25", "25_34", "35_plus")
    assert ds.schema.tasks == ("click", "like")
    # Age → scenario: {1, 18} / {25} / {35, 45, 50, 56}.
    ages = np.array(_read(out, "train")["age"])
    expected = np.select([np.isin(ages, [1, 18]), ages == 25], [0, 1], 2)
    np.testing.assert_array_equal(ds.train.scenario.numpy(), expected)


def test_ml_1m_genres_list_and_history_option(tmp_path):
    spec_path = prepare("ml-1m", RAW / "ml-1m", tmp_path, options={"history": 3})
    genres = {int(m[0]): m[2].split("|") for m in (line.split("::") for line in
                                                   (RAW / "ml-1m" / "movies.dat").read_text(encoding="latin-1").splitlines())}
    rows = _all_rows(tmp_path)
    assert all(g == genres[m] for m, g in zip(rows["movie_id"], rows["genres"]))  # all of them, as a list column
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["multi_categorical"] == {"genres": {"column": "genres", "max_len": 6, "pooling": "mean"}}
    assert spec["sequences"]["history"] == {"user": "user_id", "item": "movie_id", "time": "timestamp", "max_len": 3,
                                            "side": ["genre"], "pooling": "attention"}
    ds = load_dataset(spec_path)
    # Each rating's history: the same user's earlier ratings of splits up to its own, newest first.
    parts = [_read(tmp_path, s) for s in ("train", "val", "test")]
    movie_ids = {v: i + 1 for i, v in enumerate(ds.encoders.vocabularies["movie_id"].values)}
    events = [(k, u, t, m) for k, p in enumerate(parts) for u, t, m in zip(p["user_id"], p["timestamp"], p["movie_id"])]
    for k, (split, p) in enumerate(zip(("train", "val", "test"), parts)):
        data = ds.split(split)
        for i, (u, t) in enumerate(zip(p["user_id"], p["timestamp"])):
            seen = sorted((e for e in events if e[1] == u and e[0] <= k and e[2] < t), key=lambda e: -e[2])[:3]
            got = data.lists[i, 6:].view(3, 2)[:data.list_lengths[i, 1], 0].tolist()
            assert got == [movie_ids.get(e[3], 0) for e in seen]
    assert prepare("ml-1m", RAW / "ml-1m", tmp_path / "plain").read_text().count("sequences") == 0  # off by default
    for bad, message in ((-1, "history must be a number of ratings >= 0"), ("abc", "option history must be an integer"),
                         (2.5, "option history must be an integer"), (True, "option history must be an integer")):
        with pytest.raises(ConfigError, match=message):
            prepare("ml-1m", RAW / "ml-1m", tmp_path / "bad", options={"history": bad})
    assert prepare("ml-1m", RAW / "ml-1m", tmp_path / "typed", options={"history": "2", "seed": 5.0}).is_file()
    with pytest.raises(ConfigError, match="recipe ml-1m: option seed must be an integer, got 'x'"):
        prepare("ml-1m", RAW / "ml-1m", tmp_path / "bad", options={"seed": "x"})
    assert not (tmp_path / "bad").exists()


def test_ml_1m_manifest_and_determinism(tmp_path):
    prepare("ml-1m", RAW / "ml-1m", tmp_path / "a")
    prepare("ml-1m", RAW / "ml-1m", tmp_path / "b")
    prepare("ml-1m", RAW / "ml-1m", tmp_path / "c", options={"seed": 7})
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    for entry in manifest["inputs"]:
        assert entry["sha256"] == hashlib.sha256((RAW / "ml-1m" / entry["file"]).read_bytes()).hexdigest()
    assert {e["file"] for e in manifest["inputs"]} == {"ratings.dat", "users.dat", "movies.dat"}
    assert manifest["rows"] == {"train": 40, "val": 5, "test": 5}
    for s in ("train", "val", "test"):
        assert _read(tmp_path / "a", s) == _read(tmp_path / "b", s)
    assert _read(tmp_path / "a", "test") != _read(tmp_path / "c", "test")
    for out in manifest["outputs"]:
        assert out["sha256"] == hashlib.sha256((tmp_path / "a" / out["file"]).read_bytes()).hexdigest()


def test_missing_raw_files_are_named(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(RAW / "ml-1m" / "ratings.dat", raw)
    with pytest.raises(DataError, match=r"missing users\.dat, movies\.dat"):
        prepare("ml-1m", raw, tmp_path / "out")
    with pytest.raises(DataError, match="does not exist"):
        prepare("ml-1m", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DataError, match="ali_ccp_train.csv"):
        prepare("ali-ccp", raw, tmp_path / "out")
    with pytest.raises(DataError, match="AliExpress_<COUNTRY>/train.csv"):
        prepare("aliexpress", raw, tmp_path / "out")
    with pytest.raises(DataError, match="user_features_pure.csv"):
        prepare("kuairand", raw, tmp_path / "out")
    assert not any((tmp_path / "out").glob("*.parquet"))


def test_existing_output_is_not_overwritten(tmp_path):
    prepare("ml-1m", RAW / "ml-1m", tmp_path)
    with pytest.raises(ConfigError, match="already holds"):
        prepare("ml-1m", RAW / "ml-1m", tmp_path)
    prepare("ml-1m", RAW / "ml-1m", tmp_path, overwrite=True, options={"seed": 3})
    assert json.loads((tmp_path / "manifest.json").read_text())["options"]["seed"] == 3


def test_unknown_recipe_and_option(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset recipe 'ml-100k'"):
        prepare("ml-100k", RAW / "ml-1m", tmp_path)
    with pytest.raises(ConfigError, match="no_such"):
        prepare("ml-1m", RAW / "ml-1m", tmp_path, options={"no_such": 1})


# ---- KuaiRand ------------------------------------------------------------------------------------


def _log_rows(name: str) -> list[dict]:
    with open(RAW / "kuairand" / "KuaiRand-Pure" / "data" / name) as f:
        return list(csv.DictReader(f))


def test_kuairand_framing(tmp_path):
    spec_path = prepare("kuairand", RAW / "kuairand", tmp_path / "out", options={"extra_tasks": "is_like"})
    out = tmp_path / "out"
    logs = _log_rows("log_standard_4_22_to_5_08_pure.csv") + _log_rows("log_random_4_22_to_5_08_pure.csv")
    kept = [r for r in logs if r["tab"] in ("0", "1", "4")]
    rows = _all_rows(out)
    assert len(rows["tab"]) == len(kept) and set(rows["tab"]) <= {0, 1, 4}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"]["rows_dropped_other_tabs"] == len(logs) - len(kept) > 0
    assert sorted(zip(rows["user_id"], rows["video_id"], rows["long_view"], rows["is_like"])) == \
        sorted((int(r["user_id"]), int(r["video_id"]), int(r["long_view"]), int(r["is_like"])) for r in kept)
    users = {r["user_id"]: r for r in csv.DictReader(open(RAW / "kuairand/KuaiRand-Pure/data/user_features_pure.csv"))}
    for uid, degree in zip(rows["user_id"], rows["user_active_degree"]):
        assert degree == (users[str(uid)]["user_active_degree"] if str(uid) in users else None)
    spec = yaml.safe_load(spec_path.read_text())
    assert [t["name"] for t in spec["tasks"]] == ["is_click", "long_view", "is_like"]
    assert "play_time_ms" not in spec["categorical"] + [n["column"] for n in spec["numeric"]]
    ds = load_dataset(spec_path)
    assert ds.schema.scenarios == ("tab0", "tab1", "tab4")


def test_kuairand_derives_long_view_when_the_log_lacks_it(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(RAW / "kuairand", raw)
    log = raw / "KuaiRand-Pure" / "data" / "log_standard_4_22_to_5_08_pure.csv"
    rows = _log_rows(log.name)
    cols = [c for c in rows[0] if c != "long_view"]
    with open(log, "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    prepare("kuairand", raw, tmp_path / "out", options={"logs": "standard"})
    got = _all_rows(tmp_path / "out")
    want = [(int(r["user_id"]), int(r["video_id"]), int(float(r["play_time_ms"]) >= float(r["duration_ms"])))
            for r in rows if r["tab"] in ("0", "1", "4")]
    assert sorted(zip(got["user_id"], got["video_id"], got["long_view"])) == sorted(want)


def test_kuairand_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="extra_tasks"):
        prepare("kuairand", RAW / "kuairand", tmp_path, options={"extra_tasks": "is_clickk"})
    with pytest.raises(ConfigError, match="logs"):
        prepare("kuairand", RAW / "kuairand", tmp_path, options={"logs": "some"})


# ---- Ali-CCP ------------------------------------------------------------------------------------


def test_ali_ccp_framing(tmp_path):
    spec_path = prepare("ali-ccp", FIXTURES, tmp_path / "out")
    out = tmp_path / "out"
    assert json.loads((out / "manifest.json").read_text())["rows"] == {"train": 100, "val": 50, "test": 50}
    train = _read(out, "train")
    assert sum(train["purchase"]) == 1 and sum(train["click"]) == 7
    assert all(c == 1 for c, p in zip(train["click"], train["purchase"]) if p == 1)
    spec = yaml.safe_load(spec_path.read_text())
    assert {t["name"]: t["role"] for t in spec["tasks"]} == {"click": "click", "purchase": "conversion"}
    assert "301" not in spec["categorical"] and spec["scenario"]["column"] == "301"
    ds = load_dataset(spec_path)
    assert ds.schema.scenarios == ("1", "2", "3") and ds.schema.task_roles["purchase"] == "conversion"
    assert np.bincount(ds.train.scenario.numpy()).tolist() == [69, 19, 12]


def test_ali_ccp_without_val_file_carves_validation_from_train(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for s in ("train", "test"):
        shutil.copy(FIXTURES / f"ali_ccp_{s}_sample.csv", raw / f"ali_ccp_{s}.csv")
    prepare("ali-ccp", raw, tmp_path / "out", options={"val_fraction": 0.2})
    rows = json.loads((tmp_path / "out" / "manifest.json").read_text())["rows"]
    assert rows["train"] + rows["val"] == 100 and 5 <= rows["val"] <= 40 and rows["test"] == 50
    for recipe, where, bad, message in (
            ("ali-ccp", raw, "abc", "recipe ali-ccp: option val_fraction must be a number, got 'abc'"),
            ("ali-ccp", raw, 0, r"ali-ccp option val_fraction must be in \(0, 1\), got 0.0"),
            ("aliexpress", RAW / "aliexpress", 1.5, r"aliexpress option val_fraction must be in \(0, 1\), got 1.5")):
        with pytest.raises(ConfigError, match=message):
            prepare(recipe, where, tmp_path / "refused", options={"val_fraction": bad})
        assert not (tmp_path / "refused").exists()


# ---- AliExpress ----------------------------------------------------------------------------------


def test_aliexpress_countries_are_scenarios(tmp_path):
    spec_path = prepare("aliexpress", RAW / "aliexpress", tmp_path / "out")
    out = tmp_path / "out"
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    assert rows["train"] + rows["val"] == 100 and rows["test"] == 20 and rows["val"] > 0
    test = _read(out, "test")
    assert test["country"].count("NL") == 10 and test["country"].count("ES") == 10
    nl_test = list(csv.DictReader(open(RAW / "aliexpress" / "AliExpress_NL" / "test.csv")))
    got = [(s, c, v) for s, c, v, k in zip(test["search_id"], test["click"], test["conversion"], test["country"])
           if k == "NL"]
    assert got == [(int(r["search_id"]), int(r["click"]), int(r["conversion"])) for r in nl_test]
    spec = yaml.safe_load(spec_path.read_text())
    assert "search_id" not in spec["categorical"]
    ds = load_dataset(spec_path)
    assert set(ds.schema.scenarios) == {"NL", "ES"}
    assert ds.schema.task_roles == {"click": "click", "conversion": "conversion"}


def test_aliexpress_country_subset_and_flat_layout(tmp_path):
    prepare("aliexpress", RAW / "aliexpress", tmp_path / "nl", options={"countries": "nl"})
    assert set(_all_rows(tmp_path / "nl")["country"]) == {"NL"}
    with pytest.raises(ConfigError, match="US"):
        prepare("aliexpress", RAW / "aliexpress", tmp_path / "us", options={"countries": "US"})
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(FIXTURES / "aliexpress_train_sample.csv", flat / "train.csv")
    shutil.copy(FIXTURES / "aliexpress_test_sample.csv", flat / "test.csv")
    spec_path = prepare("aliexpress", flat, tmp_path / "flat_out")
    assert yaml.safe_load(spec_path.read_text())["scenario"] == {"constant": "aliexpress"}
    assert load_dataset(spec_path).schema.scenarios == ("aliexpress",)


# ---- helpers -------------------------------------------------------------------------------------


def test_hash_split_is_chunk_independent_and_near_its_fractions():
    whole = hash_split(0, 20000, [0.8, 0.1, 0.1], seed=5)
    pieces = np.concatenate([hash_split(0, 7000, [0.8, 0.1, 0.1], 5), hash_split(7000, 13000, [0.8, 0.1, 0.1], 5)])
    np.testing.assert_array_equal(whole, pieces)
    share = np.bincount(whole, minlength=3) / len(whole)
    assert np.allclose(share, [0.8, 0.1, 0.1], atol=0.015)
    assert not np.array_equal(whole, hash_split(0, 20000, [0.8, 0.1, 0.1], seed=6))


# ---- command line --------------------------------------------------------------------------------


def test_cli_prepare(tmp_path):
    from click.testing import CliRunner

    from msmtrec.cli import main

    runner = CliRunner()
    ok = runner.invoke(main, ["prepare", "ml-1m", "--raw", str(RAW / "ml-1m"), "--out", str(tmp_path / "o"),
                              "-p", "seed=5"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["options"]["seed"] == 5
    missing = runner.invoke(main, ["prepare", "ml-1m", "--raw", str(tmp_path), "--out", str(tmp_path / "p")])
    assert missing.exit_code == 2 and "missing ratings.dat" in missing.output and "Traceback" not in missing.output
    listing = runner.invoke(main, ["prepare", "--list"])
    assert listing.exit_code == 0 and all(name in listing.output for name in RECIPES)
