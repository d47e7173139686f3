"""Reading CSV/Parquet (exact int64 ids, clear errors) and splitting tables."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from msmtrec.data.columns import as_float
from msmtrec.data.io import CsvOptions, DataFile, TimeSplit, detect_format, read_table, split_indices
from msmtrec.data.spec import load_spec
from msmtrec.errors import DataError, SpecError
from tests.data.conftest import FIXTURES, spec_dict

BIG = 2**40 + 1
HUGE = 2**53 + 1  # the first integer a float64 cannot hold


def test_reads_requested_columns_in_order():
    t = read_table(FIXTURES / "ali_ccp_train_sample.csv", ["purchase", "301", "D508"])
    assert t.column_names == ["purchase", "301", "D508"]
    assert t.num_rows == 100
    assert t.schema.field("301").type == pa.int64()
    with open(FIXTURES / "ali_ccp_train_sample.csv") as f:
        rows = list(csv.DictReader(f))
    assert t.column("301").to_pylist() == [int(r["301"]) for r in rows]
    assert t.column("D508").to_pylist() == pytest.approx([float(r["D508"]) for r in rows])


def test_large_ids_stay_exact_int64(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(f"user,item,x\n{BIG},{HUGE},1.5\n{BIG - 1},{HUGE - 1},2\n,{2**62},\n")
    t = read_table(path, id_columns=["user", "item"])
    assert t.schema.field("user").type == pa.int64() and t.schema.field("item").type == pa.int64()
    assert t.column("user").to_pylist() == [BIG, BIG - 1, None]
    assert t.column("item").to_pylist() == [HUGE, HUGE - 1, 2**62]  # distinct, not merged via float
    # Even without the hint, an integer column is read as int64 (never float).
    assert read_table(path).schema.field("item").type == pa.int64()


def test_ids_beyond_int64_or_with_text_stay_text(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(f"a,b\n{2**64 - 1},x7\n5,12\n")
    t = read_table(path, id_columns=["a", "b"])
    # pyarrow alone would read column a as float64 and lose the value; as text it is exact.
    assert t.column("a").to_pylist() == [str(2**64 - 1), "5"]
    assert t.column("b").to_pylist() == ["x7", "12"]


def test_ids_with_a_leading_zero_or_a_sign_stay_text_and_distinct(tmp_path):
    """Zip and product codes: "00123", "0123" and "123" are three ids (read as one int 123 before)."""
    path = tmp_path / "ids.csv"
    path.write_text("zip,sku,n\n00123,+7,1\n0123,7,2\n123,-7,3\n,0,4\n")
    t = read_table(path, id_columns=["zip", "sku", "n"])
    assert t.column("zip").to_pylist() == ["00123", "0123", "123", None]
    assert t.column("sku").to_pylist() == ["+7", "7", "-7", "0"]
    assert t.schema.field("n").type == pa.int64()  # plain integers still become int64


def test_ids_written_with_a_zero_fraction_are_those_integers(tmp_path):
    """pandas writes an integer column with missing values as floats: "123.0" is id 123, exactly."""
    path = tmp_path / "ids.csv"
    path.write_text(f"a,b,c\n123.0,7.0,1.0\n,7.5,2\n{HUGE}.0,8.0,-3.00\n")
    t = read_table(path, id_columns=["a", "b", "c"])
    assert t.column("a").to_pylist() == [123, None, HUGE]
    assert t.column("b").to_pylist() == ["7.0", "7.5", "8.0"]  # a real fraction: text
    assert t.column("c").to_pylist() == [1, 2, -3]


def test_empty_fields_are_null_also_in_text_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("s,n\nTops,1\n,2\nNA,\n")
    t = read_table(path)
    assert t.column("s").to_pylist() == ["Tops", None, None]
    assert t.column("n").to_pylist() == [1, 2, None]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"^data file not found: .*nowhere\.csv$"):
        read_table(tmp_path / "nowhere.csv")


def test_missing_columns_name_file_columns_and_alternatives():
    with pytest.raises(DataError) as err:
        read_table(FIXTURES / "kuairand_sample.csv", ["user_id", "is_clik", "tabs"])
    msg = str(err.value)
    assert msg.startswith("kuairand_sample.csv is missing column(s) 'is_clik', 'tabs'")
    assert "available: 'user_id', 'video_id', 'is_click'" in msg and "(34 more)" in msg
    assert "'is_clik' → 'is_click'?" in msg and "\n" not in msg


def test_missing_columns_in_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1], "b": [2]}), path)
    with pytest.raises(DataError, match=r"t.parquet is missing column\(s\) 'c' \(available: 'a', 'b'\)"):
        read_table(path, ["a", "c"])


def test_parquet_and_row_limit(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": pa.array([HUGE, 1, 2, 3], pa.int64()), "v": [0.5, 1.5, 2.5, 3.5]}), path,
                   row_group_size=2)
    assert read_table(path, ["id"]).column("id").to_pylist() == [HUGE, 1, 2, 3]
    assert read_table(path, ["v", "id"], row_limit=3).to_pydict() == {"v": [0.5, 1.5, 2.5], "id": [HUGE, 1, 2]}
    assert read_table(FIXTURES / "kuairand_sample.csv", ["user_id"], row_limit=7).num_rows == 7
    assert read_table(FIXTURES / "kuairand_sample.csv", ["user_id"], row_limit=10_000).num_rows == 200


def test_format_detection(tmp_path):
    assert detect_format("a/b.csv") == "csv" and detect_format("x.CSV.gz") == "csv"
    assert detect_format("x.parquet") == "parquet" and detect_format("x.data", "parquet") == "parquet"
    with pytest.raises(DataError, match="cannot tell the format of x.data from its extension; set files.format"):
        detect_format("x.data")
    gz = tmp_path / "t.csv.gz"
    with gzip.open(gz, "wt") as f:
        f.write("a,b\n1,2\n")
    assert read_table(gz).to_pydict() == {"a": [1], "b": [2]}


def test_unparsable_file_is_data_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_text("not parquet")
    with pytest.raises(DataError, match="cannot read bad.parquet as Parquet"):
        read_table(path)


def test_a_folder_whose_later_file_lacks_a_column_is_refused_naming_that_file(tmp_path):
    # The folder's columns are its first file's: a later file without one was read without it.
    folder = tmp_path / "d"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1, 2], "b": [0.5, 1.5]}), folder / "part0.parquet")
    pq.write_table(pa.table({"a": [3]}), folder / "part1.parquet")
    with pytest.raises(DataError) as err:
        DataFile(folder).read(["a", "b"])
    assert str(err.value) == ("d/part1.parquet is missing column(s) 'b' (available: 'a'); every file of d must "
                              "hold the columns the spec reads")
    assert DataFile(folder).read(["a"]).column("a").to_pylist() == [1, 2, 3]


# ---- CSV options -------------------------------------------------------------------------------


def test_csv_options_delimiter_null_values_encoding_and_quote(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("name;age;city\n'Zoë; Jr';?;Köln\n'Al';31;NA\n".encode("latin-1"))
    options = CsvOptions(delimiter=";", null_values=("?",), encoding="latin-1", quote_char="'")
    table = DataFile(path, csv=options).read()
    assert table.to_pydict() == {"name": ["Zoë; Jr", "Al"], "age": [None, 31], "city": ["Köln", None]}
    assert table.schema.field("age").type == pa.int64()  # '?' is missing, not text


def test_a_csv_read_with_the_wrong_options_says_which_option_to_set(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b\tc\n1;2\t3\n")
    with pytest.raises(DataError) as err:
        DataFile(path).require(["a"])
    assert str(err.value).endswith("its header is one column holding ';': is the file ';'-separated? set "
                                   'files.csv.delimiter: ";"')
    path.write_bytes("a,b\n\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="is it not utf-8. set files.csv.encoding"):
        DataFile(path).read()


def test_a_numeric_column_integral_in_the_first_block_may_hold_fractions_later(tmp_path, monkeypatch):
    # A CSV reader types a column from its first block (16 MiB here): a price column whose early
    # rows are whole numbers was typed int64, and the first 56.5 further down refused the file.
    monkeypatch.setattr(CsvOptions, "read_options", lambda self, block_size: pacsv.ReadOptions(block_size=64))
    path = tmp_path / "t.csv"
    rows = [(i, str(i)) for i in range(40)] + [(40, "56.5"), (41, ""), (42, " 7 ")]
    path.write_text("id,price\n" + "".join(f"{i},{p}\n" for i, p in rows))
    table = DataFile(path, id_columns=["id"], number_columns=["price"]).read()
    assert table.schema.field("price").type == pa.float64()
    assert table.column("price").to_pylist() == [*map(float, range(40)), 56.5, None, 7.0]
    assert table.column("id").to_pylist() == list(range(43))  # ids keep their own rule


def test_text_numbers_read_decimal_commas_spaces_and_true_false_and_leave_text_to_be_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a;b;c\n"1,5";true; 2\n-0,25;false;3 \n;TRUE;NA\n')
    table = DataFile(path, number_columns=["a", "b", "c"], csv=CsvOptions(delimiter=";", decimal=",")).read()
    assert table.to_pydict() == {"a": [1.5, -0.25, None], "b": [1.0, 0.0, 1.0], "c": [2.0, 3.0, None]}
    text = DataFile(path, number_columns=["a"], csv=CsvOptions(delimiter=";")).read().column("a")
    assert text.to_pylist() == ["1,5", "-0,25", None]  # the text, for the numeric check to name
    with pytest.raises(DataError, match=r"must hold numbers, found values \['1,5', '-0,25'\].*"
                                        r"a decimal comma \(1,5\) in a CSV file is read with files.csv.decimal: ','"):
        as_float(text, "numeric column 'a'")
    # Parquet text numbers read as a CSV's do, spaces and true/false included.
    assert as_float(pa.chunked_array([[" 2", "3.5 ", "", None]]), "x").tolist() == \
        pytest.approx([2.0, 3.5, np.nan, np.nan], nan_ok=True)
    assert as_float(pa.array(["true", "false"]), "x").tolist() == [1.0, 0.0]


@pytest.mark.parametrize("options,message", [
    ({"delimiter": ";;"}, "files.csv.delimiter must be a single character (not a line break), got ';;'"),
    ({"delimiter": "\n"}, "files.csv.delimiter must be a single character (not a line break), got '\\n'"),
    ({"quote_char": 1}, "files.csv.quote_char must be a single character (not a line break), got 1 (int)"),
    ({"delimiter": "'", "quote_char": "'"}, "files.csv.delimiter and files.csv.quote_char must differ, both are"),
    ({"decimal": ".."}, "files.csv.decimal must be a single character (not a line break), got '..'"),
    ({"encoding": "utf-9"}, "files.csv.encoding must be a text encoding such as utf-8, latin-1 or cp1252, got 'utf-9'"),
    ({"null_values": "?"}, "files.csv.null_values must be a list, got '?'"),
    ({"nulls": ["?"]}, "unknown key 'files.csv.nulls' (did you mean 'null_values'?)"),
])
def test_bad_csv_options_are_one_spec_error(options, message):
    with pytest.raises(SpecError) as err:
        load_spec(spec_dict(files={"path": "a.csv", "csv": options}))
    assert message in str(err.value)


def test_csv_options_on_parquet_files_are_refused_not_ignored():
    with pytest.raises(SpecError, match="files.csv has no effect: every file is Parquet; remove it"):
        load_spec(spec_dict(files={"train": "a.parquet", "test": "b.pq", "csv": {"delimiter": ";"}}))
    assert load_spec(spec_dict(files={"path": "a.tsv", "csv": {"delimiter": ";"}})).files.csv.delimiter == ";"


# ---- splitting --------------------------------------------------------------------------------


def test_random_split_is_seeded_disjoint_and_covering():
    parts = split_indices(1001, (0.8, 0.1, 0.1), seed=7)
    assert [len(p) for p in parts] == [801, 100, 100]
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == 1001 and set(joined.tolist()) == set(range(1001))
    again = split_indices(1001, (0.8, 0.1, 0.1), seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = split_indices(1001, (0.8, 0.1, 0.1), seed=8)
    assert not np.array_equal(parts[1], other[1])
    # Rows keep file order within a part; the batcher shuffles.
    assert all(np.all(np.diff(p) > 0) for p in parts)


def test_split_sources_keep_rows_intact(tmp_path):
    from msmtrec.data.sources import plan_splits
    from tests.data.conftest import make_spec

    pq.write_table(pa.table({"id": list(range(50)), "v": [i * 10 for i in range(50)]}), tmp_path / "t.parquet",
                   row_group_size=7)
    spec = make_spec(files={"path": str(tmp_path / "t.parquet"), "split": {"fractions": [0.6, 0.2, 0.2], "seed": 1}})
    parts = {s: pa.concat_tables(src.chunks(["id", "v"])) for s, src in plan_splits(spec).items()}
    assert [p.num_rows for p in parts.values()] == [30, 10, 10]
    for p in parts.values():
        assert [v // 10 for v in p.column("v").to_pylist()] == p.column("id").to_pylist()
    assert sorted(sum((p.column("id").to_pylist() for p in parts.values()), [])) == list(range(50))


def test_time_split_respects_order():
    from msmtrec.data.io import TimeSplit

    ts = np.random.default_rng(0).permutation(200)
    parts = TimeSplit(pa.array(ts), (0.7, 0.2, 0.1), "t.csv", "ts").parts(0, 200)
    train, val, test = (ts[parts == k] for k in range(3))
    assert (len(train), len(val), len(test)) == (140, 40, 20)
    assert train.max() < val.min() and val.max() < test.min()
    assert sorted(test.tolist()) == list(range(180, 200))


def test_time_split_rejects_missing_times():
    from msmtrec.data.io import TimeSplit

    with pytest.raises(DataError, match="time column 'ts' of data.csv has 1 missing value"):
        TimeSplit(pa.array([1, None, 3]), (0.5, 0.25, 0.25), "data.csv", "ts")


def test_a_time_split_reads_text_times_with_their_format_and_refuses_them_without():
    dates = ["12/31/2001", "01/01/2009", "06/15/2005", "02/01/2001"]  # as text, 12/31/2001 sorts after 2009
    with pytest.raises(DataError) as err:
        TimeSplit(pa.array(dates), (0.5, 0.25, 0.25), "data.csv", "d")
    assert str(err.value).startswith("time column 'd' of data.csv holds text (e.g. '12/31/2001'), which would sort as "
                                     "text, not as time; declare how to read it, e.g. files.split.format: '%m/%d/%Y'")
    parts = TimeSplit(pa.array(dates), (0.5, 0.25, 0.25), "data.csv", "d", "%m/%d/%Y").parts(0, 4)
    assert [np.flatnonzero(parts == k).tolist() for k in range(3)] == [[0, 3], [2], [1]]
    with pytest.raises(DataError, match=r"time column 'd' of table: 4 value\(s\) do not match files.split.format "
                                        r"'%Y-%m-%d', e.g. '12/31/2001'"):
        TimeSplit(pa.array(dates), (0.5, 0.25, 0.25), "table", "d", "%Y-%m-%d")


@pytest.mark.parametrize("values,fmt,message", [
    ([True, False], None, "time column 't' of table must hold timestamps, dates or numbers (or text with "
                          "files.split.format), got bool values (e.g. True)"),
    ([1.0, float("nan")], None, "time column 't' of table has 1 missing value(s)"),
    ([1, 2], "%Y", "time column 't' of table holds int64 values, not text: remove files.split.format"),
])
def test_a_time_column_of_another_kind_is_refused(values, fmt, message):
    with pytest.raises(DataError) as err:
        TimeSplit(pa.array(values), (0.5, 0.5), "table", "t", fmt)
    assert str(err.value).startswith(message)


def test_random_split_of_any_row_range_agrees_with_the_whole():
    from msmtrec.data.io import RandomSplit

    n = 3 * RandomSplit.BLOCK + 123
    whole = RandomSplit(n, (0.7, 0.2, 0.1), seed=5).parts(0, n)
    assert np.bincount(whole).tolist() == [round(0.7 * n), round(0.9 * n) - round(0.7 * n), n - round(0.9 * n)]
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, n), 40, replace=False))
    split = RandomSplit(n, (0.7, 0.2, 0.1), seed=5)
    pieces = [split.parts(a, b - a) for a, b in zip([0, *cuts], [*cuts, n])]
    assert np.array_equal(np.concatenate(pieces), whole)
    # Every block holds its share (a uniform assignment, not blocks of one part).
    per_block = [np.mean(whole[i:i + RandomSplit.BLOCK] == 0) for i in range(0, n - RandomSplit.BLOCK, RandomSplit.BLOCK)]
    assert all(abs(p - 0.7) < 0.02 for p in per_block)


def test_batches_carry_their_first_row_and_ids_stay_exact_per_batch(tmp_path):
    from msmtrec.data.io import DataFile

    t = pa.table({"id": pa.array([HUGE + i for i in range(10)], pa.int64()), "v": list(range(10))})
    pq.write_table(t, tmp_path / "t.parquet", row_group_size=3)
    f = DataFile(tmp_path / "t.parquet", read_rows=2)
    got = list(f.batches(["v"], pieces=[2, 0]))
    assert [(first, b.column("v").to_pylist()) for first, b in got] == [(6, [6, 7]), (8, [8]), (0, [0, 1]), (2, [2])]
    assert f.num_rows == 10 and f.read(["id"], row_limit=4).column("id").to_pylist() == [HUGE + i for i in range(4)]
    path = tmp_path / "ids.csv"
    path.write_text("id\n" + "\n".join(str(HUGE + i) for i in range(5)) + "\n")
    assert DataFile(path, id_columns=["id"]).read().column("id").to_pylist() == [HUGE + i for i in range(5)]


def test_encoded_builder_grows_and_trims_in_place():
    import torch

    from msmtrec.data.encoded import EncodedBuilder, EncodedData

    def part(n: int, start: int) -> EncodedData:
        r = torch.arange(start, start + n)
        return EncodedData(categorical=torch.stack([r, -r], 1), numeric=r[:, None].float(), scenario=r % 3,
                           labels=(r[:, None] % 2).float(), label_mask=(r[:, None] % 5) > 0)

    parts = [part(n, s) for n, s in ((5, 0), (7, 5), (1, 12))]
    builder = EncodedBuilder(part(0, 0), capacity=4)
    for p in parts:
        builder.append(p)
    out, expected = builder.finish(), EncodedData.concat(parts)
    for name in ("categorical", "numeric", "scenario", "labels", "label_mask"):
        assert torch.equal(getattr(out, name), getattr(expected, name)), name
    assert out.user is None and out.categorical.is_contiguous()
