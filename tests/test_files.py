"""Atomic writes: whole content or the old file, no temporary left behind, and the permissions the
umask gives any tool's output (not mkstemp's 0600)."""

import json
import os
import stat

import pytest
import torch

from msmtrec.config import TrainConfig
from msmtrec.files import atomic_write, write_json
from msmtrec.train.api import train
from msmtrec.train.checkpoint import save_checkpoint


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("content, expected", [
    (b"\x00bytes", b"\x00bytes"),
    ("text é", "text é".encode()),
    (lambda tmp: tmp.write_bytes(b"from a writer"), b"from a writer"),
])
def test_written_files_get_the_umask_permissions(tmp_path, umask_027, content, expected):
    path = tmp_path / "out"
    path.write_text("old")
    atomic_write(path, content)
    assert path.read_bytes() == expected and mode(path) == umask_027
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_other_umask(tmp_path):
    old = os.umask(0o002)
    try:
        write_json(tmp_path / "x.json", {"a": torch.tensor(1.5), "p": tmp_path})
    finally:
        os.umask(old)
    assert mode(tmp_path / "x.json") == 0o664
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1.5, "p": str(tmp_path)}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write(path, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_checkpoint_and_run_directory_files_get_the_umask_permissions(tmp_path, umask_027):
    save_checkpoint(tmp_path / "checkpoint.pt", model_name="m", model_params={}, schema={},
                    state_dict={"w": torch.ones(2)})
    assert mode(tmp_path / "checkpoint.pt") == umask_027
    config = TrainConfig(model="shared_bottom", max_epochs=1, row_limit=1000, runs_root=str(tmp_path / "runs"),
                         model_params={"bottom_dims": [8], "tower_dims": [4]})
    run_dir = train(config, progress=False).run_dir
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"checkpoint.pt", "config.yaml", "metrics.json", "results.md", "schema.json"}
    assert {p.name: mode(p) for p in files} == {p.name: umask_027 for p in files}
