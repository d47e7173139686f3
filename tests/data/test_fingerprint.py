"""Data fingerprints: what changed in a spec's files since they were fingerprinted, in words."""

import hashlib
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msmtrec.data.fingerprint import (END_BYTES, changed_files, fingerprint_files, fingerprint_spec, read_fingerprint,
                                      spec_files, write_fingerprint)
from msmtrec.data.spec import load_spec
from msmtrec.errors import CheckpointError
from msmtrec.files import sha256_file


def test_sha256_file_hashes_all_bytes_or_the_two_ends(tmp_path):
    small, big = tmp_path / "s", tmp_path / "b"
    small.write_bytes(b"abc" * 10)
    data = os.urandom(3 * 1000)
    big.write_bytes(data)
    assert sha256_file(small) == sha256_file(small, ends=15) == hashlib.sha256(b"abc" * 10).hexdigest()
    assert sha256_file(big, ends=1000) == hashlib.sha256(data[:1000] + data[-1000:]).hexdigest()
    assert sha256_file(big) == hashlib.sha256(data).hexdigest()


def test_every_file_of_a_spec_is_fingerprinted_and_changes_are_named(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"s": ["a"], "y": [i]}), folder / f"p{i}.parquet")
    (tmp_path / "test.csv").write_text("s,y\na,1\n")
    spec = load_spec({"name": "d", "files": {"train": "parts", "test": "test.csv"}, "scenario": {"column": "s"},
                      "tasks": [{"name": "y", "column": "y"}]}, base_dir=tmp_path)
    assert spec_files(spec) == [folder / "p0.parquet", folder / "p1.parquet", tmp_path / "test.csv"]
    saved = fingerprint_spec(spec)
    assert [v["hashed"] for v in saved.values()] == ["all"] * 3
    write_fingerprint(tmp_path, saved)
    assert read_fingerprint(tmp_path) == saved

    os.utime(tmp_path / "test.csv", ns=(1, 1))  # touched only: a fully hashed file has not changed
    assert changed_files(saved, fingerprint_spec(spec)) == []
    (tmp_path / "test.csv").write_text("s,y\na,0\n")  # same size, other content
    pq.write_table(pa.table({"s": ["a", "b"], "y": [1, 0]}), folder / "p1.parquet")
    (folder / "p0.parquet").unlink()
    pq.write_table(pa.table({"s": ["a"], "y": [0]}), folder / "p2.parquet")
    changes = changed_files(saved, fingerprint_spec(spec))
    assert changes[0] == f"{folder / 'p0.parquet'} is gone"
    assert changes[1].startswith("p1.parquet has ") and "bytes instead of" in changes[1]
    assert changes[2] == "test.csv has other content (sha256)"
    assert changes[3] == "p2.parquet is new"


def test_a_large_file_is_hashed_at_its_ends_and_its_modification_time_counts(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * (2 * END_BYTES + 10))
    saved = fingerprint_files([path])
    assert saved[str(path)]["hashed"] == "ends"
    with open(path, "r+b") as f:  # the middle, same size: only the time tells
        f.seek(END_BYTES + 5)
        f.write(b"y")
    os.utime(path, ns=(saved[str(path)]["mtime_ns"] + 10**9,) * 2)
    (change,) = changed_files(saved, fingerprint_files([path]))
    assert change.startswith("big.csv was modified at ") and "only its first and last MB are hashed" in change


def test_a_file_that_is_not_a_fingerprint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_fingerprint(tmp_path)
    (tmp_path / "data_fingerprint.json").write_text('{"files": {"a": {"bytes": "x"}}}')
    with pytest.raises(CheckpointError, match="is not a data fingerprint"):
        read_fingerprint(tmp_path)
