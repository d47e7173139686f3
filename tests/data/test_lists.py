"""List features (multi_categorical) and given sequences: encoded ids against a per-row reference
(vocabulary fitted on train, truncation, empty and missing lists, unseen entries), Parquet lists
and CSV text alike, the one-line errors, persistence and streamed = in-memory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from msmtrec.data import Encoders, load_dataset, open_streaming
from msmtrec.data.spec import load_spec
from msmtrec.errors import DataError, SpecError
from tests.data.conftest import spec_dict

PARQUET = {"path": "unused.parquet"}  # tables encoded in code: only the format matters

def reference(rows: list[list | None], train: list[list | None], max_len: int, min_count: int = 1
              ) -> tuple[list[list[int]], list[int]]:
    """Padded ids and lengths computed row by row in plain Python (the encoder-independent truth)."""
    counts: dict = {}
    for r in train:
        for v in r or []:
            if v is not None:
                counts[v] = counts.get(v, 0) + 1
    ids = {v: i + 1 for i, v in enumerate(sorted(v for v, c in counts.items() if c >= min_count))}
    out, lengths = [], []
    for r in rows:
        kept = [ids.get(v, 0) for v in (r or []) if v is not None][:max_len]
        lengths.append(len(kept))
        out.append(kept + [0] * (max_len - len(kept)))
    return out, lengths


def test_parquet_list_column_matches_a_per_row_reference():
    rng = np.random.default_rng(0)
    lists = [None if rng.random() < 0.1 else [int(x) if rng.random() > 0.05 else None
                                              for x in rng.integers(0, 30, rng.integers(0, 9))] for _ in range(300)]
    table = pa.table({"s": ["a"] * 300, "y": rng.integers(0, 2, 300), "c": rng.integers(0, 5, 300),
                      "tags": pa.array(lists, pa.list_(pa.int64()))})
    spec = load_spec(spec_dict(files=PARQUET, multi_categorical={"tags": {"max_len": 5}}, min_count=2))
    enc = Encoders.fit(spec, table.slice(0, 200))
    data = enc.transform(table, source="all")
    ids, lengths = reference(lists, lists[:200], 5, min_count=2)
    assert data.lists.tolist() == ids and data.list_lengths[:, 0].tolist() == lengths
    assert data.lists.dtype == torch.int64 and enc.schema.lists[0].cardinality == len(enc.lists["tags"].values) + 1


def test_csv_text_lists_are_split_trimmed_and_give_the_ids_of_parquet_lists(tmp_path):
    (tmp_path / "d.csv").write_text("s,y,c,genres\na,0,1,Action|Comedy\na,1,2, Drama |\na,0,1,\na,1,3,Comedy||Horror\n"
                                    "a,0,1,Drama\n")
    spec = load_spec(spec_dict(files={"train": "d.csv", "test": "d.csv", "val": "d.csv"},
                               multi_categorical={"genres": {"sep": "|", "max_len": 3}}), base_dir=tmp_path)
    ds = load_dataset(spec)
    assert ds.encoders.lists["genres"].values == ["Action", "Comedy", "Drama", "Horror"]
    assert ds.train.lists.tolist() == [[1, 2, 0], [3, 0, 0], [0, 0, 0], [2, 4, 0], [3, 0, 0]]
    assert ds.train.list_lengths[:, 0].tolist() == [2, 1, 0, 2, 1]
    # Integer entries in text are exact int64 ids, the same as a Parquet list of integers.
    big = 2**53 + 1
    (tmp_path / "n.csv").write_text(f"s,y,c,tags\na,0,1,{big}|7\na,1,2,{big + 1}\na,0,1,7\n")
    spec = load_spec(spec_dict(files={"train": "n.csv", "test": "n.csv", "val": "n.csv"},
                               multi_categorical={"tags": {"sep": "|"}}), base_dir=tmp_path)
    enc = load_dataset(spec).encoders
    assert enc.lists["tags"].values == [7, big, big + 1] and enc.lists["tags"].dtype == "int64"
    parquet = enc.transform(pa.table({"s": ["a"], "y": [0], "c": [1], "tags": pa.array([[big + 1, big, 8]])}),
                            source="p")
    assert parquet.lists[0].tolist()[:3] == [3, 2, 0]


def test_given_sequence_shares_the_item_vocabulary():
    table = pa.table({"s": ["a"] * 4, "y": [0, 1, 0, 1], "c": [10, 20, 30, 20],
                      "recent": pa.array([[20, 10], [], None, [99, 30, 10]])})
    spec = load_spec(spec_dict(files=PARQUET, sequences={"r": {"column": "recent", "item": "c", "max_len": 2,
                                                                "pooling": "mean"}}))
    enc = Encoders.fit(spec, table)
    data = enc.transform(table, source="t")
    assert data.lists.tolist() == [[2, 1], [0, 0], [0, 0], [0, 3]]  # 99 is unknown (0); the first two kept
    assert data.list_lengths[:, 0].tolist() == [2, 0, 0, 2]
    assert enc.schema.lists[0].fields == ("c",) and enc.schema.lists[0].cardinality == 0


def test_lists_survive_save_and_load_bit_for_bit(tmp_path):
    table = pa.table({"s": ["a", "b", "a"], "y": [0, 1, 0], "c": [1, 2, 3], "u": [5, 5, 6], "t": [3, 1, 2],
                      "tags": pa.array([["x", "y"], ["z"], []])})
    spec = load_spec(spec_dict(files=PARQUET, multi_categorical={"tags": {"pooling": "sum", "max_len": 4}},
                               sequences={"h": {"user": "u", "item": "c", "time": "t", "max_len": 2}}))
    enc = Encoders.fit(spec, table)
    enc.save(tmp_path)
    again = Encoders.load(tmp_path)
    assert again.schema == enc.schema and again.schema.lists[0].pooling == "sum"
    a, b = enc.transform(table, source="t"), again.transform(table, source="t")
    assert torch.equal(a.lists, b.lists) and torch.equal(a.list_lengths, b.list_lengths)
    assert a.lists[0].tolist()[-2:] == [2, 0]  # row 0 (u=5, t=3) sees row 1 (u=5, t=1)


# ---- streamed = in memory ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_streamed_train_batches_hold_the_in_memory_rows_with_their_lists(tmp_path, fmt):
    """A multi_categorical, a built history and a given sequence, from Parquet lists or CSV text:
    the streamed splits hold the in-memory rows with the same padded ids and lengths (reads smaller
    than the file)."""
    rng = np.random.default_rng(1)
    n = 3000
    tags = [list(rng.integers(0, 15, rng.integers(0, 6))) for _ in range(n)]
    recent = [list(rng.integers(0, 45, rng.integers(0, 5))) for _ in range(n)]
    table = pa.table({"s": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n), "c": rng.integers(0, 40, n),
                      "u": rng.integers(0, 60, n), "t": rng.integers(0, 400, n),
                      "tags": pa.array(tags), "recent": pa.array(recent)})
    sep = {}
    if fmt == "parquet":
        pq.write_table(table, tmp_path / "d.parquet", row_group_size=256)
    else:
        text = {"tags": ["|".join(map(str, r)) for r in tags], "recent": [";".join(map(str, r)) for r in recent]}
        for name, values in text.items():
            table = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
        pacsv.write_csv(table, tmp_path / "d.csv")
        sep = {"tags": {"sep": "|"}, "recent": {"sep": ";"}}
    spec = spec_dict(files={"path": str(tmp_path / f"d.{fmt}")}, categorical=["c"],
                     multi_categorical={"tags": {"max_len": 4, **sep.get("tags", {})}},
                     sequences={"h": {"user": "u", "item": "c", "time": "t", "max_len": 6},
                                "r": {"column": "recent", "item": "c", "max_len": 3, "pooling": "mean",
                                      **sep.get("recent", {})}})
    memory = load_dataset(spec)
    streamed = open_streaming(spec, batch_size=128, shuffle_buffer=500, read_rows=256)
    assert streamed.schema == memory.schema
    for a, b in ((streamed.val, memory.val), (streamed.test, memory.test)):
        assert torch.equal(a.lists, b.lists) and torch.equal(a.list_lengths, b.list_lengths)

    def rows(d):
        return sorted(map(tuple, torch.cat([d.categorical, d.lists, d.list_lengths, d.labels.long()], 1).tolist()))

    batches = list(streamed.train_batches(0))
    got = torch.cat([torch.cat([b.categorical, b.lists, b.list_lengths, b.labels.long()], 1) for b in batches])
    assert sorted(map(tuple, got.tolist())) == rows(memory.train)
    assert (memory.train.list_lengths[:, 1:] > 0).float().mean(0).min() > 0.5  # the sequences are not trivially empty


# ---- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("entry, message", [
    ({"multi_categorical": {"genres": {}}}, "multi_categorical['genres'].sep is needed: d.csv is CSV"),
    ({"sequences": {"r": {"column": "r", "item": "c"}}}, "sequences['r'].sep is needed: d.csv is CSV"),
    ({"sequences": {"h": {"user": "u", "item": "k", "time": "t"}}}, "sequences['h'].item 'k' must be a categorical"),
    ({"sequences": {"h": {"user": "u", "item": "c", "time": "t", "side": ["g"]}}}, "sequences['h'].side 'g' must be"),
    ({"sequences": {"h": {"user": "u", "item": "c"}}}, "needs either column (a list column) or user and time"),
    ({"sequences": {"h": {"user": "u", "item": "c", "time": "t", "sep": ","}}}, "sequences['h'].sep is only used with"),
    ({"sequences": {"h": {"column": "r", "sep": ",", "item": "c", "time": "t"}}}, "sequences['h'].time is only used"),
    ({"sequences": {"h": {"user": "u", "item": "c", "time": "t", "include_self": True}}}, "unknown key"),
    ({"sequences": {"h": {"user": "c", "item": "c", "time": "t"}}}, "user, time, item and side must be different"),
    ({"sequences": {"h": {"user": "u", "item": "c", "time": "u"}}}, "user, time, item and side must be different"),
    ({"multi_categorical": {"c": {"sep": "|"}}}, "multi_categorical['c']: the name is already a categorical column"),
    ({"multi_categorical": {"g": {"sep": "|", "pooling": "attention"}}}, "multi_categorical['g'].pooling must be one of"),
    ({"multi_categorical": {"g": {"sep": "|", "max_len": 0}}}, "multi_categorical['g'].max_len must be at least 1"),
])
def test_spec_mistakes_are_one_line(entry, message):
    with pytest.raises(SpecError) as e:
        load_spec(spec_dict(files={"path": "d.csv"}, **entry), source="s.yaml")
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("spec s.yaml: ")


@pytest.mark.parametrize("key", ["user", "time"])
def test_a_history_keyed_or_ordered_by_a_label_is_refused(key):
    """Grouping or ordering by a label would let a row's history tell its label: refused."""
    entry = {"user": "u", "item": "c", "time": "t", key: "y"}
    with pytest.raises(DataError, match=rf"'y' is the label of task 'y' and also a sequences\['h'\].{key} feature"):
        load_dataset(spec_dict(files={"path": "d.parquet"}, sequences={"h": entry}))


def test_data_mistakes_name_the_file_and_column(tmp_path):
    def load(tags, **entry):
        pq.write_table(pa.table({"s": ["a"] * 10, "y": [0, 1] * 5, "c": list(range(10)), "tags": tags}),
                       tmp_path / "d.parquet")
        return load_dataset(spec_dict(files={"path": str(tmp_path / "d.parquet")},
                                      multi_categorical={"g": {"column": "tags", **entry}}))

    with pytest.raises(DataError, match=r"column 'tags' \(multi_categorical\['g'\]\) holds string values \(e.g. 'a\|b'\), "
                                        r"not lists; .* set the entry's sep"):
        load(["a|b"] * 10)
    with pytest.raises(DataError, match="holds lists of lists"):
        load(pa.array([[[1]]] * 10))
    ds = load(["a|b"] * 5 + [None] * 5, sep="|")  # a missing list is an empty one
    assert sorted(ds.train.list_lengths[:, 0].tolist())[0] == 0
    # A CSV column whose every value is one number is still a list column (read as text, then split).
    (tmp_path / "t.csv").write_text("s,y,c,tags\n" + "".join(f"a,{i % 2},1,{i % 3}\n" for i in range(12)))
    assert pacsv.read_csv(tmp_path / "t.csv").schema.field("tags").type == pa.int64()  # what a guess would give
    ds = load_dataset(load_spec(spec_dict(files={"path": "t.csv"}, multi_categorical={"tags": {"sep": "|"}}),
                                base_dir=tmp_path))
    assert ds.encoders.lists["tags"].values == [0, 1, 2] and (ds.train.list_lengths == 1).all()


def test_truncated_and_unknown_lists_are_reported(tmp_path):
    table = pa.table({"s": ["a"] * 6, "y": [0, 1] * 3, "c": [1] * 6, "tags": pa.array([[1, 2, 3]] * 4 + [[1]] * 2)})
    pq.write_table(table, tmp_path / "d.parquet")
    ds = load_dataset(spec_dict(files={"train": str(tmp_path / "d.parquet"), "val": str(tmp_path / "d.parquet"),
                                       "test": str(tmp_path / "d.parquet")},
                                multi_categorical={"tags": {"max_len": 2}}, min_count=7))
    assert ds.report["list_values"]["tags"] == {"rows": 6, "empty": 0, "truncated": 4, "max_len": 2, "distinct": 3,
                                                "kept": 0}
    assert any("'tags': 4 of 6 train rows hold more than max_len=2" in w for w in ds.report["warnings"])
    assert any("'tags' has no train entry seen min_count=7 times" in w for w in ds.report["warnings"])
