"""Encoders: fitted on train only, checked against independently computed expectations, every
guard with its message, exact int64 ids, and a save/load round trip."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from msmtrec.data import Encoders, load_dataset
from msmtrec.data.encode import ENCODERS_FILE
from msmtrec.data.spec import SCENARIO_FIELD
from msmtrec.errors import CheckpointError, DataError
from tests.data.conftest import FIXTURES, make_spec, spec_dict


def table(**cols) -> pa.Table:
    return pa.table(cols)


def read_csv_rows(name: str) -> list[dict[str, str]]:
    """The fixture as plain strings via the csv module: an encoder-independent reference."""
    with open(FIXTURES / name, newline="") as f:
        return list(csv.DictReader(f))


# ---- categorical ------------------------------------------------------------------------------


def test_ids_are_sorted_contiguous_and_unknown_is_zero():
    spec = make_spec(categorical=["c", "k"])
    train = table(s=["a"] * 6, y=[0, 1] * 3, c=[30, 10, 20, 10, None, 30], k=["x", "y", "x", "z", "y", None])
    enc = Encoders.fit(spec, train)
    assert enc.schema.categorical == (("c", 4), ("k", 4))
    d = enc.transform(train, source="train")
    assert d.categorical[:, 0].tolist() == [3, 1, 2, 1, 0, 3]  # 10→1, 20→2, 30→3, null→0
    assert d.categorical[:, 1].tolist() == [1, 2, 1, 3, 2, 0]
    # Values seen only outside train map to 0: fitting used train only.
    test = table(s=["a"] * 3, y=[0, 0, 1], c=[20, 99, 10], k=["w", "z", "x"])
    assert enc.transform(test, source="test").categorical.tolist() == [[2, 0], [0, 3], [1, 1]]


def test_min_count_maps_rare_train_values_to_unknown():
    spec = make_spec(min_count=2)
    train = table(s=["a"] * 6, y=[0] * 6, c=[5, 5, 6, 7, 7, 7])
    enc = Encoders.fit(spec, train)
    assert enc.vocabularies["c"].values == [5, 7]
    assert enc.transform(train, source="train").categorical[:, 0].tolist() == [1, 1, 0, 2, 2, 2]


def test_ali_ccp_categorical_ids_match_independent_encoding():
    ds = load_dataset(FIXTURES / "ali_ccp.yaml")
    train_rows, test_rows = read_csv_rows("ali_ccp_train_sample.csv"), read_csv_rows("ali_ccp_test_sample.csv")
    for j, (field, card) in enumerate(ds.schema.categorical):
        vocab = sorted({int(r[field]) for r in train_rows})
        assert card == len(vocab) + 1
        ids = {v: i + 1 for i, v in enumerate(vocab)}
        assert ds.train.categorical[:, j].tolist() == [ids[int(r[field])] for r in train_rows]
        assert ds.test.categorical[:, j].tolist() == [ids.get(int(r[field]), 0) for r in test_rows]
    # field 205 (item id) has many test items never seen in train: they must all be 0.
    j = ds.schema.field_index("205")
    unseen = [int(r["205"]) not in {int(t["205"]) for t in train_rows} for r in test_rows]
    assert sum(unseen) > 10 and (ds.test.categorical[torch.tensor(unseen), j] == 0).all()


def test_types_differing_between_files_still_match():
    spec = make_spec()
    enc = Encoders.fit(spec, table(s=["a"] * 3, y=[0] * 3, c=pa.array([1, 2, 3], pa.int32())))
    test = table(s=["a"] * 4, y=[0] * 4, c=["2", "x", "3", None])  # text ids in another file
    assert enc.transform(test, source="test").categorical[:, 0].tolist() == [2, 0, 3, 0]
    test = table(s=["a"] * 2, y=[0] * 2, c=pa.array([3.0, float("nan")]))
    assert enc.transform(test, source="test").categorical[:, 0].tolist() == [3, 0]


# ---- numeric ----------------------------------------------------------------------------------


def test_standardize_and_log1p_use_train_statistics_only():
    spec = make_spec(numeric=[{"column": "x"}, {"column": "p", "transform": "log1p"}])
    tx, tp = np.array([1.0, 2.0, 4.0, np.nan]), np.array([0.0, 9.0, 99.0, 999.0])
    enc = Encoders.fit(spec, table(s=["a"] * 4, y=[0] * 4, c=[1] * 4, x=tx, p=tp))
    mean, std = np.nanmean(tx), np.nanstd(tx)
    lp = np.log1p(tp)
    assert enc.numeric["x"].mean == pytest.approx(mean) and enc.numeric["x"].std == pytest.approx(std)
    assert enc.numeric["p"].mean == pytest.approx(lp.mean()) and enc.numeric["p"].std == pytest.approx(lp.std())
    vx, vp = np.array([100.0, np.nan, 2.0]), np.array([3.0, 0.0, np.inf])
    d = enc.transform(table(s=["a"] * 3, y=[0] * 3, c=[1] * 3, x=vx, p=vp), source="test")
    assert d.numeric.dtype == torch.float32 and enc.schema.numeric == ("x", "p")
    expected_x = [(100 - mean) / std, 0.0, (2 - mean) / std]  # missing → 0 (the train mean)
    expected_p = [(np.log1p(3) - lp.mean()) / lp.std(), (0 - lp.mean()) / lp.std(), 0.0]
    assert d.numeric[:, 0].tolist() == pytest.approx(expected_x, rel=1e-6)
    assert d.numeric[:, 1].tolist() == pytest.approx(expected_p, rel=1e-6)


def test_bucketize_uses_train_quantiles_and_becomes_a_field():
    rng = np.random.default_rng(0)
    age = rng.integers(18, 90, 500).astype(float)
    spec = make_spec(numeric=[{"column": "age", "transform": "bucketize", "buckets": 4}])
    enc = Encoders.fit(spec, table(s=["a"] * 500, y=[0] * 500, c=[1] * 500, age=age))
    edges = np.unique(np.quantile(age, [0.25, 0.5, 0.75]))
    assert enc.numeric["age"].edges == pytest.approx(edges.tolist())
    assert enc.schema.categorical == (("c", 2), ("age", len(edges) + 2)) and enc.schema.numeric == ()
    test_age = np.array([0.0, edges[0], edges[1] - 0.5, 1000.0, np.nan])
    d = enc.transform(table(s=["a"] * 5, y=[0] * 5, c=[1] * 5, age=test_age), source="test")
    expected = [1 + int(np.sum(edges <= v)) if np.isfinite(v) else 0 for v in test_age]
    assert d.categorical[:, 1].tolist() == expected == [1, 2, 2, 4, 0]


def test_numeric_column_without_train_values_is_an_error():
    spec = make_spec(numeric=["x"])
    with pytest.raises(DataError, match="numeric column 'x' has no values in train"):
        Encoders.fit(spec, table(s=["a"] * 2, y=[0] * 2, c=[1] * 2, x=pa.array([None, None], pa.float64())))


def test_text_in_numeric_column_names_the_values():
    spec = make_spec(numeric=["x"])
    with pytest.raises(DataError, match=r"numeric column 'x' must hold numbers, found values \['abc'\]"):
        Encoders.fit(spec, table(s=["a"] * 2, y=[0] * 2, c=[1] * 2, x=["1.5", "abc"]))


# ---- labels -----------------------------------------------------------------------------------


def test_missing_label_is_masked_not_zero():
    spec = make_spec(tasks=[{"name": "y", "column": "y"}, {"name": "r5", "column": "r", "rule": {"op": "==", "value": 5}}])
    t = table(s=["a"] * 4, c=[1] * 4, y=pa.array([1, None, 0, 1]), r=pa.array([5, 3, None, 5]))
    d = Encoders.fit(spec, t).transform(t, source="train")
    assert d.label_mask.tolist() == [[True, True], [False, True], [True, False], [True, True]]
    assert d.labels.tolist() == [[1, 1], [0, 0], [0, 0], [1, 1]]
    assert d.labels.dtype == torch.float32 and d.label_mask.dtype == torch.bool


@pytest.mark.parametrize("op,value,expected", [("==", 5, [0, 1, 0]), ("!=", 5, [1, 0, 1]), (">", 3, [1, 1, 0]),
                                               (">=", 4, [1, 1, 0]), ("<", 4, [0, 0, 1]), ("<=", 4, [1, 0, 1])])
def test_rules_with_a_value(op, value, expected):
    spec = make_spec(tasks=[{"name": "t", "column": "r", "rule": {"op": op, "value": value}}])
    t = table(s=["a"] * 3, c=[1] * 3, r=[4, 5, 1])
    assert Encoders.fit(spec, t).transform(t, source="train").labels[:, 0].tolist() == expected


def test_rule_comparing_two_columns_matches_kuairand_long_view():
    ds = load_dataset(FIXTURES / "kuairand.yaml")
    rows = read_csv_rows("kuairand_sample.csv")
    long_view = np.array([int(r["play_time_ms"]) >= int(r["duration_ms"]) for r in rows])
    clicks = np.array([int(r["is_click"]) for r in rows])
    j = ds.schema.tasks.index("long_view")
    total = sum(float(getattr(ds, s).labels[:, j].sum()) for s in ("train", "val", "test"))
    assert total == long_view.sum() == 23  # the README's 11.5 % of 200
    assert sum(float(getattr(ds, s).labels[:, 0].sum()) for s in ("train", "val", "test")) == clicks.sum()
    assert ds.report["label_observed"]["train"]["long_view"] == len(ds.train)


def test_rule_type_mismatch_is_explained():
    spec = make_spec(tasks=[{"name": "t", "column": "r", "rule": {"op": "==", "value": "five"}}])
    t = table(s=["a"], c=[1], r=[5])
    with pytest.raises(DataError, match=r"task 't' rule cannot compare column 'r' \(int64\) with 'five' in train"):
        Encoders.fit(spec, t).transform(t, source="train")


def test_non_binary_label_names_the_values():
    spec = make_spec(tasks=[{"name": "recommend", "column": "Recommended IND"}])
    t = table(**{"s": ["a"] * 5, "c": [1] * 5, "Recommended IND": [0, 1, 2, 3, 2]})
    with pytest.raises(DataError, match=r"found values \[2, 3\] in train$|found values \[2, 3\] in train;"):
        Encoders.fit(spec, t)  # train's labels are checked while fitting
    enc = Encoders.fit(spec, table(**{"s": ["a"] * 2, "c": [1] * 2, "Recommended IND": [0, 1]}))
    with pytest.raises(DataError) as err:
        enc.transform(t, source="train (x.csv)")
    assert str(err.value).startswith("spec <dict>: task 'recommend' column 'Recommended IND' must be 0/1 after its "
                                     "rule, found values [2, 3] in train (x.csv)")
    t = table(s=["a"] * 2, c=[1] * 2, **{"Recommended IND": ["yes", "no"]})
    with pytest.raises(DataError, match=r"must be 0/1 after its rule, found values \['no', 'yes'\]"):
        enc.transform(t, source="train")


def test_huge_integers_are_named_exactly_as_labels_and_read_as_numbers_as_features():
    huge = 2**53 + 1  # the first integer a float64 cannot hold
    spec = make_spec(tasks=[{"name": "y", "column": "y"}], numeric=["n"])
    t = table(s=["a"] * 3, c=[1] * 3, y=[0, 1, huge], n=[1, 2, 3])
    with pytest.raises(DataError, match=rf"must be 0/1 after its rule, found values \[{huge}\] in train"):
        Encoders.fit(spec, t)
    t = table(s=["a"] * 3, c=[1] * 3, y=[0, 1, 1], n=[0, huge, 2**63 - 1])
    assert Encoders.fit(spec, t).numeric["n"].mean == pytest.approx((huge + 2**63 - 1) / 3)


def test_a_split_whose_every_row_is_dropped_is_empty(tmp_path):
    from msmtrec.data.io import RandomSplit

    parts = RandomSplit(10, (0.8, 0.1, 0.1), 0).parts(0, 10)  # one row of test: give it no scenario
    pacsv.write_csv(table(s=[None if p == 2 else "a" for p in parts], c=list(range(10)), y=[0, 1] * 5),
                    tmp_path / "d.csv")
    spec = spec_dict(files={"path": str(tmp_path / "d.csv"), "split": {"fractions": [0.8, 0.1, 0.1], "seed": 0}})
    with pytest.raises(DataError, match=r"split 'test' is empty: every row of test split of d.csv was dropped \(1 with "
                                        r"missing scenario\)"):
        load_dataset(spec)


def test_a_rule_that_matches_nothing_on_a_column_with_missing_values_names_them():
    from msmtrec.data.fit.labels import check_two_classes

    spec = make_spec(tasks=[{"name": "y", "column": "y", "rule": {"op": "==", "value": "YES"}}])
    report = {"label_observed": {"y": 3}, "label_positive_rate": {"y": 0.0}, "label_values": {"y": [[None, 5], ["yes", 3]]}}
    with pytest.raises(DataError) as err:
        check_two_classes(spec, report, "train")
    assert str(err.value).endswith("its rule 'y' == 'YES' is false for every row (did you mean 'yes'?); the most "
                                   "frequent values of column 'y' in train: missing (5), 'yes' (3)")


@pytest.mark.parametrize("labels,rule,message", [
    ([1] * 20, None, "task 'y' has a single class in train split of d.csv (all 16 observed labels are 1): column 'y' "
                     "holds only 1; the most frequent values of column 'y' in train split of d.csv: '1' (16)"),
    ([None] * 20, None, "task 'y' has no observed label in train split of d.csv; the most frequent values of column "
                        "'y' in train split of d.csv: missing (16)"),
    ([3] * 5 + [4] * 15, {"op": ">", "value": 4}, "task 'y' has a single class in train split of d.csv (all 16 "
                                                  "observed labels are 0): its rule 'y' > 4 is false for every row"),
])
@pytest.mark.parametrize("streaming", [False, True])
def test_a_task_with_one_class_in_train_is_refused(tmp_path, labels, rule, message, streaming):
    from msmtrec.data import open_streaming

    pacsv.write_csv(table(s=["a"] * 20, c=list(range(20)), y=pa.array(labels, pa.int64())), tmp_path / "d.csv")
    task = {"name": "y", "column": "y", **({"rule": rule} if rule else {})}
    spec = spec_dict(files={"path": str(tmp_path / "d.csv")}, tasks=[task])
    with pytest.raises(DataError) as err:
        (open_streaming if streaming else load_dataset)(spec)
    assert str(err.value).startswith(f"spec <dict>: {message}")


@pytest.mark.parametrize("overrides,message", [
    ({"categorical": ["c", "y"]}, "column 'y' is the label of task 'y' and also a categorical feature"),
    ({"numeric": ["y"]}, "column 'y' is the label of task 'y' and also a numeric feature"),
    ({"user": "y"}, "column 'y' is the label of task 'y' and also the user column"),
    ({"scenario": {"column": "y"}}, "column 'y' is the label of task 'y' and also the scenario column"),
])
def test_label_used_as_input_is_refused(overrides, message):
    spec = make_spec(**overrides)
    t = table(s=["a"] * 2, c=[1] * 2, y=[0, 1])
    with pytest.raises(DataError, match=message):
        Encoders.fit(spec, t)
    with pytest.raises(DataError, match=message):  # before any file is read
        load_dataset(spec_dict(**overrides))


# ---- scenarios --------------------------------------------------------------------------------


def test_scenarios_without_mapping_are_train_values_in_natural_order():
    spec = make_spec()
    t = table(s=[10, 2, 2, 1], y=[0] * 4, c=[1] * 4)
    enc = Encoders.fit(spec, t)
    assert enc.schema.scenarios == ("1", "2", "10")
    assert enc.transform(t, source="train").scenario.tolist() == [2, 1, 1, 0]


def test_mapping_groups_raw_values_and_other_catches_the_rest():
    spec = make_spec(scenario={"column": "s", "mapping": {"Tops": "top", "Blouses": "top", "Dresses": "dress"},
                               "other": "misc"})
    t = table(s=["Tops", "Dresses", "Blouses", "Swim", "Lounge"], y=[0] * 5, c=[1] * 5)
    enc = Encoders.fit(spec, t)
    assert enc.schema.scenarios == ("top", "dress", "misc")
    assert enc.transform(t, source="train").scenario.tolist() == [0, 1, 0, 2, 2]


def test_unmapped_value_without_other_is_an_error():
    spec = make_spec(scenario={"column": "s", "mapping": {"a": "A"}})
    with pytest.raises(DataError, match=r"scenario column 's' has value\(s\) \['b'\] in train that are not in "
                                        r"scenario.mapping; add them or set scenario.other"):
        Encoders.fit(spec, table(s=["a", "b"], y=[0, 0], c=[1, 1]))


def test_declared_scenario_without_train_rows_is_an_error():
    spec = make_spec(scenario={"column": "s", "mapping": {"a": "A", "b": "B"}})
    with pytest.raises(DataError, match=r"scenario\(s\) \['B'\] declared in the spec \(scenario.mapping/other\) "
                                        r"have no rows in train"):
        Encoders.fit(spec, table(s=["a", "a"], y=[0, 0], c=[1, 1]))


def test_scenario_absent_from_train_is_an_error_in_val_and_test():
    spec = make_spec()
    enc = Encoders.fit(spec, table(s=["a", "b"], y=[0, 1], c=[1, 2]))
    with pytest.raises(DataError, match=r"scenario value\(s\) \['c', 'd'\] of column 's' occur in test \(t.csv\) but "
                                        r"not in train"):
        enc.transform(table(s=["a", "c", "d"], y=[0, 0, 0], c=[1, 1, 1]), source="test (t.csv)")


def test_missing_scenario_is_dropped_and_counted_or_refused():
    t = table(s=["a", None, "b", "  "], y=[0, 1, 1, 0], c=[1, 2, 3, 4])
    enc = Encoders.fit(make_spec(), t)
    result = enc.encode(t, source="train")
    assert result.dropped == {"missing_scenario": 2}
    assert result.kept_rows.tolist() == [True, False, True, False]
    assert enc.vocabularies["c"].values == [1, 3]  # dropped rows (c = 2, 4) are not fitted on
    assert result.data.categorical[:, 0].tolist() == [1, 2]
    spec = make_spec(scenario={"column": "s", "drop_missing": False})
    with pytest.raises(DataError, match=r"2 row\(s\) of train have no value in scenario column 's'; set "
                                        r"scenario.drop_missing: true"):
        Encoders.fit(spec, t)


def test_transform_for_prediction_drops_unknown_scenarios_and_needs_no_labels():
    enc = Encoders.fit(make_spec(), table(s=["a", "b"], y=[0, 1], c=[1, 2]))
    result = enc.transform_for_prediction(table(s=["b", "zz", "a", None, " "], c=[2, 1, 5, 1, 1], y=["?"] * 5),
                                          source="input.csv")  # a label column is not read
    assert result.kept_rows.tolist() == [True, False, True, False, False]
    assert result.dropped == {"missing_scenario": 2, "unknown_scenario": 1}
    data = result.data
    assert data.scenario.tolist() == [1, 0] and data.categorical[:, 0].tolist() == [2, 0]
    assert not data.label_mask.any()
    with pytest.raises(DataError, match=r"scenario value\(s\) \['zz'\] of column 's' occur in input.csv"):
        enc.transform_for_prediction(table(s=["zz"], c=[1]), source="input.csv", unknown_scenario="error")
    result = enc.encode(table(s=["zz"], c=[1], y=[1]), source="x", unknown_scenario="drop", allow_empty=True)
    assert len(result.data) == 0 and result.dropped == {"unknown_scenario": 1}


def test_constant_scenario():
    spec = make_spec(scenario={"constant": "us"})
    t = table(y=[0, 1], c=[1, 2])
    enc = Encoders.fit(spec, t)
    assert enc.schema.scenarios == ("us",) and enc.transform(t, source="train").scenario.tolist() == [0, 0]


# ---- layout, users, guards --------------------------------------------------------------------


def test_field_layout_user_prior_and_scenario_field():
    spec = make_spec(user="u", prior_features=["u"], scenario_as_feature=True,
                     numeric=[{"column": "x"}, {"column": "age", "transform": "bucketize", "buckets": 2}])
    t = table(s=["b", "a", "b"], y=[0, 1, 0], c=[7, 8, 7], u=[BIG_ID, 5, BIG_ID], x=[1.0, 2.0, 3.0], age=[1, 2, 3])
    enc = Encoders.fit(spec, t)
    s = enc.schema
    assert [n for n, _ in s.categorical] == ["c", "age", "u", SCENARIO_FIELD]
    assert s.prior_fields == ("u",) and s.has_user and s.numeric == ("x",)
    d = enc.transform(t, source="train")
    assert d.categorical[:, 2].tolist() == [2, 1, 2]  # user as a field: train vocabulary ids
    assert d.categorical[:, 3].tolist() == (d.scenario + 1).tolist() == [2, 1, 2]
    assert d.user.tolist() == [BIG_ID, 5, BIG_ID]  # raw ids for GAUC grouping


BIG_ID = 2**40 + 1


def test_ids_above_2_pow_24_survive_end_to_end(tmp_path):
    ids = [2**40 + 1, 2**40, 2**53 + 1, 2**53, 2**24 + 1, 2**24]
    rows = [f"a,{u},{u},{i % 2}" for i, u in enumerate(ids)]
    (tmp_path / "d.csv").write_text("\n".join(["s,u,item,y"] + rows * 2) + "\n")  # each row twice: 12 rows
    spec = spec_dict(files={"path": str(tmp_path / "d.csv"), "split": {"fractions": [0.5, 0.25, 0.25]}},
                     categorical=["item"], user="u")
    ds = load_dataset(spec)
    assert ds.train.user.dtype == torch.int64 and ds.train.categorical.dtype == torch.int64
    all_users = torch.cat([ds.train.user, ds.val.user, ds.test.user]).tolist()
    assert sorted(all_users) == sorted(ids * 2)  # exact, no two ids merged
    # item == user on every row: the item vocabulary is exactly the distinct train users, and
    # every train row's item id points back at its own (exact) value.
    vocab = ds.encoders.vocabularies["item"].values
    assert vocab == sorted(set(ds.train.user.tolist())) and len(vocab) >= 4
    assert [vocab[i - 1] for i in ds.train.categorical[:, 0].tolist()] == ds.train.user.tolist()


def test_codes_with_leading_zeros_are_distinct_categories_end_to_end(tmp_path):
    codes = ["00123", "0123", "123"]  # one value each in val and test too, so each occurs 4 times
    rows = [f"a,{c},{i % 2}" for i, c in enumerate(codes * 8)]
    (tmp_path / "d.csv").write_text("\n".join(["s,c,y", *rows]) + "\n")
    ds = load_dataset(spec_dict(files={"path": str(tmp_path / "d.csv"), "split": {"fractions": [0.5, 0.25, 0.25]}}))
    assert sorted(ds.encoders.vocabularies["c"].values) == codes
    ids = {c: ds.encoders.vocabularies["c"].values.index(c) + 1 for c in codes}
    read = [line.split(",")[1] for line in rows]
    assert sorted(ds.train.categorical[:, 0].tolist() + ds.val.categorical[:, 0].tolist()
                  + ds.test.categorical[:, 0].tolist()) == sorted(ids[c] for c in read)


def test_ids_pandas_wrote_as_floats_match_the_same_ids_written_as_integers(tmp_path):
    """Train exported by pandas with a missing id ("7.0", ""), val and test without one ("7"): one
    category per item, none unknown in val or test."""
    (tmp_path / "train.csv").write_text("s,c,y\n" + "".join(f"a,{c},{i % 2}\n" for i, c in
                                                          enumerate(["7.0", "8.0", "", "9.0"] * 3)))
    for name in ("val", "test"):
        (tmp_path / f"{name}.csv").write_text("s,c,y\na,7,0\na,8,1\na,9,1\n")
    ds = load_dataset(spec_dict(files={s: str(tmp_path / f"{s}.csv") for s in ("train", "val", "test")}))
    assert ds.encoders.vocabularies["c"].values == [7, 8, 9]
    assert ds.test.categorical[:, 0].tolist() == [1, 2, 3] and ds.val.categorical[:, 0].tolist() == [1, 2, 3]


def test_blank_text_categories_are_missing_in_parquet_as_in_csv(tmp_path):
    """A CSV's empty field is missing; the same table written to Parquet holds "" (and "  "),
    which were a category of their own: a model trained on one file read the other otherwise."""
    colors = ["red", "", "blue", "  ", None, "red"] * 4
    t = pa.table({"s": ["a"] * 24, "y": [0, 1] * 12, "c": colors})
    pq.write_table(t, tmp_path / "d.parquet")
    pacsv.write_csv(t, tmp_path / "d.csv")
    for name in ("d.parquet", "d.csv"):
        ds = load_dataset(spec_dict(files={"train": str(tmp_path / name), "test": str(tmp_path / name)}))
        assert ds.encoders.vocabularies["c"].values == ["blue", "red"], name
        assert ds.test.categorical[:6, 0].tolist() == [2, 0, 1, 0, 0, 2], name


def test_a_test_file_in_another_id_space_is_reported_and_the_builtin_data_is_not(tmp_path):
    rows = "".join(f"a,{i % 10},{i % 2}\n" for i in range(40))
    (tmp_path / "train.csv").write_text("s,c,y\n" + rows)
    (tmp_path / "val.csv").write_text("s,c,y\n" + rows)
    (tmp_path / "test.csv").write_text("s,c,y\n" + rows.replace("a,", "a,x"))  # ids x0..x9: none seen in train
    ds = load_dataset(spec_dict(files={s: str(tmp_path / f"{s}.csv") for s in ("train", "val", "test")}))
    assert ds.report["unknown_rows"] == {"train": {"c": 0}, "val": {"c": 0}, "test": {"c": 40}}
    assert [w for w in ds.report["warnings"] if "unknown" in w] == [
        "categorical column 'c': 40 of the 40 test rows (100%) hold a value the model did not see in train, or none; "
        "they are read as unknown (id 0)"]
    assert not [w for w in load_dataset("womens-ecommerce").report["warnings"] if "unknown" in w]


def test_text_user_ids_become_group_ids():
    spec = make_spec(user="u")
    t = table(s=["a"] * 4, y=[0] * 4, c=[1] * 4, u=["bob", "amy", "bob", None])
    d = Encoders.fit(spec, t).transform(t, source="train")
    assert d.user.tolist() == [0, 1, 0, -1]


def test_empty_split_and_missing_columns_are_errors():
    spec = make_spec()
    enc = Encoders.fit(spec, table(s=["a"], y=[1], c=[1]))
    with pytest.raises(DataError, match=r"^spec <dict>: val \(v.csv\) has no rows$"):
        enc.transform(table(s=pa.array([], pa.string()), y=pa.array([], pa.int64()), c=pa.array([], pa.int64())),
                      source="val (v.csv)")
    with pytest.raises(DataError, match=r"train has no rows"):
        Encoders.fit(spec, table(s=pa.array([], pa.string()), y=pa.array([], pa.int64()), c=pa.array([], pa.int64())))
    with pytest.raises(DataError, match=r"test \(t.csv\) is missing column\(s\) 'y' \(available: 's', 'c'\)"):
        enc.transform(table(s=["a"], c=[1]), source="test (t.csv)")


def test_empty_split_from_load_dataset_names_the_split(tmp_path):
    (tmp_path / "d.csv").write_text("s,c,y\na,1,0\na,2,1\na,3,0\n")
    # 3 rows at 80/10/10: train 2, val 1, test 0.
    with pytest.raises(DataError, match=r"split 'test' is empty: test split of d.csv has no rows \(the split "
                                        r"fractions leave it no rows"):
        load_dataset(spec_dict(files={"path": str(tmp_path / "d.csv")}))


def test_scenario_only_in_test_file_is_refused(tmp_path):
    (tmp_path / "tr.csv").write_text("s,c,y\na,1,0\nb,2,1\n")
    (tmp_path / "va.csv").write_text("s,c,y\na,1,0\n")
    (tmp_path / "te.csv").write_text("s,c,y\na,1,0\nq,1,1\n")
    files = {"train": str(tmp_path / "tr.csv"), "val": str(tmp_path / "va.csv"), "test": str(tmp_path / "te.csv")}
    with pytest.raises(DataError, match=r"scenario value\(s\) \['q'\] of column 's' occur in test \(te.csv\)"):
        load_dataset(spec_dict(files=files))


def test_encoding_one_million_rows_is_vectorised():
    """Not a timing assertion: a per-row Python loop would take minutes here, so finishing at all
    within the test budget is the check."""
    n = 1_000_000
    rng = np.random.default_rng(0)
    t = table(s=rng.choice(["a", "b", "c"], n), y=rng.integers(0, 2, n), c=rng.integers(0, 10**6, n))
    enc = Encoders.fit(make_spec(), t)
    d = enc.transform(t, source="train")
    assert d.categorical.shape == (n, 1) and int(d.categorical.min()) >= 1


# ---- persistence ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ali_ccp", "kuairand", "aliexpress"])
def test_save_load_round_trip_reproduces_tensors(tmp_path, name):
    ds = load_dataset(FIXTURES / f"{name}.yaml")
    path = ds.encoders.save(tmp_path)
    assert path == tmp_path / ENCODERS_FILE
    doc = json.loads(path.read_text())  # plain, human-readable JSON
    assert doc["format"] == "msmtrec.encoders" and doc["schema"]["tasks"] == list(ds.schema.tasks)
    loaded = Encoders.load(tmp_path)
    assert loaded.schema == ds.schema and loaded.spec == ds.spec
    again = load_dataset(ds.spec, encoders=loaded)
    for split in ("train", "val", "test"):
        a, b = getattr(ds, split), getattr(again, split)
        for f in ("categorical", "numeric", "scenario", "labels", "label_mask"):
            assert torch.equal(getattr(a, f), getattr(b, f)), (split, f)
        assert (a.user is None and b.user is None) or torch.equal(a.user, b.user)


def test_save_never_overwrites_silently_and_load_reports_corruption(tmp_path):
    enc = Encoders.fit(make_spec(), table(s=["a"], y=[1], c=[1]))
    enc.save(tmp_path)
    with pytest.raises(CheckpointError, match="already exists; pass overwrite=True"):
        enc.save(tmp_path)
    enc.save(tmp_path, overwrite=True)
    (tmp_path / ENCODERS_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        Encoders.load(tmp_path)
    (tmp_path / ENCODERS_FILE).write_text(json.dumps({"format": "msmtrec.encoders", "version": 1, "spec": {}}))
    with pytest.raises(CheckpointError, match="is incomplete or corrupt"):
        Encoders.load(tmp_path)
    with pytest.raises(CheckpointError, match="encoders file not found"):
        Encoders.load(tmp_path / "elsewhere")
