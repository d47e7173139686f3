"""Histories built from the log: equal to a per-row reference (same user, strictly earlier, splits
in order, newest first, ties by split then file row), free of leakage by construction, and the
mistakes that are one line."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from msmtrec.data import Encoders, load_dataset
from msmtrec.data.history import HistoryBuilder
from msmtrec.data.io import DEFAULT_FRACTIONS, DEFAULT_SPLIT_SEED, ROW_COLUMN, RandomSplit
from msmtrec.data.spec import load_spec
from msmtrec.errors import DataError
from tests.data.conftest import spec_dict


def history_reference(split, user, time, entries, max_len):
    """Row by row: the entries of the same user's events of splits <= the row's, strictly earlier,
    the most recent ``max_len`` of them, newest first (equal times: later split/row first)."""
    n = len(split)
    out = []
    for r in range(n):
        if user[r] is None:
            out.append([])
            continue
        seen = [e for e in range(n) if user[e] == user[r] and split[e] <= split[r] and time[e] < time[r]]
        seen.sort(key=lambda e: (time[e], split[e], e), reverse=True)
        out.append([entries[e] for e in seen[:max_len]])
    return out


def random_log(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    user = [None if rng.random() < 0.05 else int(u) for u in rng.integers(0, 25, n)]
    return pa.table({"s": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n), "u": pa.array(user, pa.int64()),
                     "item": rng.integers(0, 60, n), "g": rng.choice(["x", "y", "z"], n),
                     "t": rng.integers(0, 40, n)})  # few distinct times: many ties


@pytest.mark.parametrize("seed", [0, 1])
def test_built_history_equals_a_per_row_reference(tmp_path, seed):
    table = random_log(seed)
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=97)
    ds = load_dataset(spec_dict(files={"path": str(tmp_path / "d.parquet")}, categorical=["item", "g"],
                                sequences={"h": {"user": "u", "item": "item", "time": "t", "side": ["g"],
                                                 "max_len": 4}}))
    parts = RandomSplit(table.num_rows, DEFAULT_FRACTIONS, DEFAULT_SPLIT_SEED).parts(0, table.num_rows)
    enc = ds.encoders
    entries = list(zip(enc.vocabularies["item"].encode(table.column("item")).tolist(),
                       enc.vocabularies["g"].encode(table.column("g")).tolist()))
    expected = history_reference(parts.tolist(), table.column("u").to_pylist(), table.column("t").to_pylist(),
                                 entries, 4)
    for k, name in enumerate(("train", "val", "test")):
        rows = np.flatnonzero(parts == k)  # a split keeps its rows in file order
        data = ds.split(name)
        for i, r in enumerate(rows):
            want = expected[r]
            got = data.lists[i].view(4, 2)[:data.list_lengths[i, 0]].tolist()
            assert got == [list(e) for e in want], (name, i)
            assert (data.lists[i].view(4, 2)[len(want):] == 0).all()  # padding
    assert ds.report["history_rows"]["h"]["train"]["rows"] == int((parts == 0).sum())


@pytest.mark.parametrize("seed", range(4))
def test_no_history_holds_an_event_at_or_after_its_row_or_from_a_later_split(seed):
    """Each event's item is its own row number, so every history entry names the event it came from."""
    rng = np.random.default_rng(seed)
    n = 300
    table = random_log(seed, n).set_column(3, "item", pa.array(np.arange(n) + 1000))
    spec = load_spec(spec_dict(files={"path": "x.parquet"}, categorical=["item"],
                               sequences={"h": {"user": "u", "item": "item", "time": "t", "max_len": 8}}))
    enc = Encoders.fit(spec, table)  # every item is in the vocabulary: id - 1 is the row
    split = rng.integers(0, 3, n)
    builder = HistoryBuilder(enc)
    table = table.append_column(ROW_COLUMN, pa.array(np.arange(n)))
    for k in range(3):
        builder.update(k, table.filter(pa.array(split == k)), "x")
    histories = builder.finish()
    user, time = table.column("u").to_pylist(), table.column("t").to_numpy()
    checked = 0
    for k in range(3):
        rows = np.flatnonzero(split == k)
        ids, lengths = histories.lookup("h", rows, split=k)
        for r, row_ids, length in zip(rows, ids, lengths):
            events = row_ids[:length] - 1
            assert (time[events] < time[r]).all() and (split[events] <= k).all()
            assert all(user[e] == user[r] is not None for e in events)
            eligible = sum(1 for e in range(n) if user[r] is not None and user[e] == user[r]
                           and time[e] < time[r] and split[e] <= k)
            assert length == min(8, eligible) and (row_ids[length:] == 0).all()
            checked += length
    assert checked > 200  # the property was tested on many entries


def test_val_and_test_rows_see_train_events_and_train_rows_never_see_theirs(tmp_path):
    # Separate files (as the recipes write them): train holds the early events of user 1, val and
    # test later ones; a train row at a later time than a val row still does not see it.
    def write(name, items, times):
        pq.write_table(pa.table({"s": ["a"] * len(items), "y": [0, 1] * (len(items) // 2), "u": [1] * len(items),
                                 "item": items, "t": times}), tmp_path / f"{name}.parquet")
    write("train", [10, 11, 12, 13], [1, 2, 3, 50])
    write("val", [11, 12], [5, 6])
    write("test", [13, 10], [7, 8])
    ds = load_dataset(spec_dict(files={k: str(tmp_path / f"{k}.parquet") for k in ("train", "val", "test")},
                                categorical=["item"], sequences={"h": {"user": "u", "item": "item", "time": "t",
                                                                        "max_len": 5, "pooling": "mean"}}))
    ids = dict(zip([10, 11, 12, 13], range(1, 5)))
    assert ds.train.lists[3].tolist() == [ids[12], ids[11], ids[10], 0, 0]  # t=50 sees no val/test event
    assert ds.val.lists[1].tolist() == [ids[11], ids[12], ids[11], ids[10], 0]  # val t=6: val t=5 + train
    assert ds.test.lists[1].tolist() == [ids[13], ids[12], ids[11], ids[12], ids[11]]  # newest five


def test_ties_never_see_each_other_nor_the_row_itself():
    table = pa.table({"s": ["a"] * 5, "y": [0, 1, 0, 1, 0], "u": [7] * 5, "item": [1, 2, 3, 3, 4],
                      "t": [5, 5, 5, 9, 9]})
    spec = load_spec(spec_dict(files={"path": "x.parquet"}, categorical=["item"],
                               sequences={"h": {"user": "u", "item": "item", "time": "t", "max_len": 9}}))
    data = Encoders.fit(spec, table).transform(table, source="t")  # a table alone: its own log
    assert data.list_lengths[:, 0].tolist() == [0, 0, 0, 3, 3]
    assert data.lists[3, :3].tolist() == [3, 2, 1]  # equal earlier times: the later row first


def test_time_columns_of_every_kind_order_the_events():
    day = dt.date(2024, 1, 1)
    spec = {"files": {"path": "x.parquet"}, "categorical": ["item"]}
    for times, fmt in ((pa.array([day + dt.timedelta(days=d) for d in (3, 1, 2)], pa.date32()), None),
                       (pa.array([dt.datetime(2024, 1, d) for d in (3, 1, 2)], pa.timestamp("ms")), None),
                       (pa.array(["01/03/2024", "01/01/2024", "01/02/2024"]), "%m/%d/%Y"),
                       (pa.array([3.5, 1.0, 2.25]), None)):
        table = pa.table({"s": ["a"] * 3, "y": [0, 1, 0], "u": [1, 1, 1], "item": [10, 20, 30], "t": times})
        h = {"user": "u", "item": "item", "time": "t", "max_len": 3} | ({"format": fmt} if fmt else {})
        data = Encoders.fit(load_spec(spec_dict(**spec, sequences={"h": h})), table).transform(table, source="t")
        assert data.lists[0].tolist() == [3, 2, 0] and data.list_lengths[:, 0].tolist() == [2, 0, 1]


def test_history_mistakes_are_one_line():
    def encode(times, **entry):
        table = pa.table({"s": ["a"] * 2, "y": [0, 1], "u": [1, 1], "item": [1, 2], "t": times})
        spec = load_spec(spec_dict(files={"path": "x.parquet"}, categorical=["item"],
                                   sequences={"h": {"user": "u", "item": "item", "time": "t", **entry}}))
        Encoders.fit(spec, table).transform(table, source="train (x.parquet)")

    with pytest.raises(DataError, match=r"history 'h' time column 't' holds text .* sequences\['h'\].format: "):
        encode(["2024-01-01", "2024-01-02"])
    with pytest.raises(DataError, match=r"do not match sequences\['h'\].format '%d/%m/%Y', e.g. '2024-01-01'"):
        encode(["2024-01-01", "2024-01-02"], format="%d/%m/%Y")
    with pytest.raises(DataError, match="time column 't' has 1 missing value"):
        encode(pa.array([1, None], pa.int64()))
    with pytest.raises(DataError, match="time column 't' must hold timestamps, dates or numbers"):
        encode([True, False])


@pytest.mark.parametrize("users", [pa.array([None, 1, None, 1], pa.int64()), pa.array(["", "u1", "", "u1"])])
def test_rows_without_a_user_have_an_empty_history_and_are_no_event(users):
    # Blank text is no user: rows with "" would otherwise share one history across people.
    table = pa.table({"s": ["a"] * 4, "y": [0, 1, 0, 1], "u": users, "item": [1, 2, 3, 4], "t": [1, 2, 3, 4]})
    spec = load_spec(spec_dict(files={"path": "x.parquet"}, categorical=["item"],
                               sequences={"h": {"user": "u", "item": "item", "time": "t"}}))
    data = Encoders.fit(spec, table).transform(table, source="t")
    assert data.list_lengths[:, 0].tolist() == [0, 0, 0, 1] and data.lists[3, 0].item() == 2
    assert torch.equal(data.lists[:, 1:], torch.zeros(4, 49, dtype=torch.int64))
