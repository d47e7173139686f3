"""The export folder: what its manifest says, and every way a folder can be wrong — refused in one
line (exit 2 from the command line) and leaving what the user had as it was."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import onnx
import pytest
import torch

import msmtrec
from msmtrec.errors import ConfigError, ExportError
from msmtrec.export import Scorer, export_run, read_export
from msmtrec.export.graph import graph_inputs
from msmtrec.files import sha256_file
from tests.cli.conftest import cli, refused, refused_untouched, snapshot, succeeded


@pytest.fixture(scope="module")
def run_dir(runs) -> Path:
    return runs("mmoe")


def test_the_manifest_lists_format_versions_signature_and_every_file(run_dir, tmp_path):
    folder = export_run(run_dir, "onnx", tmp_path / "ex", opset=15)
    manifest = json.loads((folder / "manifest.json").read_text())
    export = read_export(folder)
    assert manifest["graph"] == {"format": "onnx", "file": "model.onnx", "opset": 15}
    assert onnx.load(str(folder / "model.onnx")).opset_import[0].version == 15
    assert manifest["msmtrec_version"] == msmtrec.__version__ and manifest["torch_version"] == torch.__version__
    assert manifest["model"] == "mmoe" and manifest["run"] == str(run_dir.resolve())
    assert manifest["inputs"] == [i.to_dict() for i in graph_inputs(export.schema)]
    assert manifest["outputs"] == [{"name": "probabilities", "dtype": "float32", "shape": ["batch", 2],
                                    "columns": ["click", "buy"]}]
    assert sorted(manifest["files"]) == ["encoders.json", "model.onnx", "schema.json"]
    assert all(sha256_file(folder / f) == h for f, h in manifest["files"].items())
    assert 0 <= manifest["max_difference_from_eager"] <= 1e-5
    assert sorted(p.name for p in folder.iterdir()) == ["encoders.json", "manifest.json", "model.onnx", "schema.json"]
    ts = read_export(export_run(run_dir, "torchscript", tmp_path / "ts"))
    assert ts.manifest["graph"] == {"format": "torchscript", "file": "model.pt"}


def test_export_refuses_to_overwrite_without_being_asked(run_dir, tmp_path):
    out = tmp_path / "ex"
    assert "wrote onnx export" in succeeded(cli("export", run_dir, "--format", "onnx", "--out", out))
    refused_untouched(tmp_path, "export", run_dir, "--format", "torchscript", "--out", out,
                      needles=(f"{out} already exists; pass --overwrite to replace it",))
    succeeded(cli("export", run_dir, "--format", "torchscript", "--out", out, "--overwrite"))
    assert read_export(out).format == "torchscript" and not (out / "model.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ex"]  # no temporary folder left behind
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    refused_untouched(tmp_path, "export", run_dir, "-f", "onnx", "-o", mine, "--overwrite",
                      needles=(f"{mine} exists and is not an export folder",))
    refused_untouched(tmp_path, "export", run_dir, "-f", "onnx", "-o", mine / "notes.txt" / "x",
                      needles=("is a file, not a folder",))
    refused_untouched(tmp_path, "export", run_dir, "-f", "onnx", "-o", tmp_path / "new", "--opset", "9",
                      needles=("--opset must be between 13 and 20, got 9",))
    refused_untouched(tmp_path, "export", tmp_path / "no-run", "-f", "onnx", "-o", tmp_path / "new",
                      needles=("does not exist",))


@pytest.fixture
def exported(run_dir, tmp_path) -> Path:
    return export_run(run_dir, "onnx", tmp_path / "ex")


def test_a_missing_or_modified_file_is_refused(exported, shop, tmp_path):
    args = ("predict", exported, "-i", shop / "shop.parquet", "-o", tmp_path / "out.parquet")
    (exported / "encoders.json").write_text((exported / "encoders.json").read_text().replace('"page"', '"Page"', 1))
    refused_untouched(tmp_path, *args, needles=(f"{exported / 'encoders.json'} differs from its sha256 in "
                                                f"manifest.json (modified or corrupt)",))
    (exported / "model.onnx").unlink()
    refused_untouched(tmp_path, *args, needles=(f"export folder {exported} is missing model.onnx",))
    (exported / "manifest.json").write_text("{")
    refused_untouched(tmp_path, *args, needles=("manifest.json is not valid JSON",))


def _rewrite_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _rewrite_checkpoint(path: Path, **changes) -> None:
    torch.save({**torch.load(path, weights_only=True), **changes}, path)


@pytest.mark.parametrize(("file", "rewrite", "what"), [
    ("checkpoint.pt", _rewrite_checkpoint, "checkpoint"),
    ("encoders.json", _rewrite_json, "encoders file"),
])
def test_a_run_written_in_another_format_version_is_refused_naming_both_versions(run_dir, tmp_path, file, rewrite,
                                                                                 what):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    rewrite(copy / file, version=2)  # as a newer msmtrec might write it
    refused_untouched(tmp_path, "evaluate", copy, needles=(
        f"{copy / file} is an msmtrec {what} of format version 2; this msmtrec reads version 1",))
    rewrite(copy / file, format="something-else", version=1)
    refused_untouched(tmp_path, "evaluate", copy, needles=(f"{copy / file} is not an msmtrec {what}",))


def test_an_export_written_in_another_format_version_is_refused_naming_both_versions(exported, shop, tmp_path):
    args = ("predict", exported, "-i", shop / "shop.parquet", "-o", tmp_path / "out.parquet")
    _rewrite_json(exported / "manifest.json", version=2)
    refused_untouched(tmp_path, *args, needles=(f"{exported / 'manifest.json'} is an msmtrec export manifest of format "
                                                f"version 2; this msmtrec reads version 1",))
    _rewrite_json(exported / "manifest.json", format="msmtrec.encoders", version=1)
    refused_untouched(tmp_path, *args, needles=(f"{exported / 'manifest.json'} is not an msmtrec export manifest",))


def test_an_opset_the_runtime_cannot_run_is_named(exported, shop, tmp_path):
    graph = onnx.load(str(exported / "model.onnx"))
    graph.opset_import[0].version = 30  # as a newer exporter might write it
    onnx.save(graph, str(exported / "model.onnx"))
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["graph"]["opset"] = 30
    manifest["files"]["model.onnx"] = sha256_file(exported / "model.onnx")
    (exported / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"uses ONNX opset 30, which this onnxruntime .* cannot run \(it runs up "
                                          r"to opset \d+\); export again with a lower --opset"):
        Scorer.load(exported)
    refused(cli("predict", exported, "-i", shop / "shop.parquet", "-o", tmp_path / "out.parquet"), "opset 30")
    assert not (tmp_path / "out.parquet").exists()


def test_a_folder_that_is_neither_an_export_nor_a_run_is_one_line(tmp_path, shop):
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    refused(cli("predict", tmp_path / "empty", "-i", shop / "shop.parquet", "-o", tmp_path / "o.parquet"),
            f"{tmp_path / 'empty'} is neither an export folder (no manifest.json) nor a run directory (no config.yaml)")
    assert snapshot(tmp_path) == before


def test_without_onnxruntime_the_message_says_what_to_install(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"an ONNX graph needs onnxruntime, which is not installed: "
                                          r"pip install 'msmtrec\[export\]'"):
        Scorer.load(exported)
