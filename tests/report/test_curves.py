"""Learning curves: a PNG of the epoch records (two stages marked), skipped with a note without
matplotlib or without any epoch."""

from __future__ import annotations

import struct
import sys

from msmtrec.report import plot_learning_curves


def record(epoch: int, stage: str = "train", auc: float | None = 0.6) -> dict:
    return {"stage": stage, "epoch": epoch, "global_epoch": epoch, "train_loss": {"click": 0.5 / epoch},
            "val_mean_auc": auc, "improved": epoch == 2}


def test_the_curves_are_a_png_of_the_records(tmp_path):
    path = tmp_path / "curves.png"
    history = [record(1, "search", None), record(2, "retrain"), record(3, "retrain", 0.58)]
    assert plot_learning_curves(history, path, title="t") is None
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 500  # two panels wide


def test_skipped_with_a_note_without_matplotlib_or_epochs(tmp_path, monkeypatch):
    assert "no epoch" in plot_learning_curves([], tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    note = plot_learning_curves([record(1)], tmp_path / "b.png")
    assert "pip install 'msmtrec[plot]'" in note and not list(tmp_path.iterdir())
