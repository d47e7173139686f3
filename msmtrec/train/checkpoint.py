"""Run directories, checkpoints and the resumable training state.

A run directory holds everything needed to evaluate or serve the model again:
``config.yaml`` (resolved), ``spec.resolved.yaml`` (the dataset spec with absolute data paths and
every default filled in), ``data_fingerprint.json`` (of every data file it read),
``schema.json``, ``encoders.json``, the best ``checkpoint.pt``, ``log.jsonl`` (one record per
epoch), ``status.json`` (:mod:`msmtrec.train.run_dir`), ``data_report.json``, ``metrics.json`` and
``results.md``. While it trains it also holds ``resume.pt``, the state
:meth:`msmtrec.train.Trainer.state_dict` gives after every completed epoch (weights, optimiser,
task weighting, stage and epoch, best score and weights, early-stopping counter, every rank's RNG
states), from which ``msmtrec train --resume`` continues. Files are written atomically
(:func:`msmtrec.files.atomic_write`) so an interrupted run leaves the previous file or the new
one, never half of one, and an existing directory is never reused.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msmtrec.errors import CheckpointError
from msmtrec.files import atomic_write, check_format

#: The dataset spec a run was trained on, resolved (absolute paths, defaults filled in).
SPEC_FILE = "spec.resolved.yaml"
CHECKPOINT_FORMAT = "msmtrec-checkpoint"
CHECKPOINT_VERSION = 1
STATE_FORMAT = "msmtrec-train-state"
STATE_FILE = "resume.pt"


def check_run_location(root: str | Path, explicit: str | Path | None = None) -> None:
    """Refuse a run directory that could not be created, before anything is trained: an explicit
    one that exists, or one whose folder is (inside) a file.

    Raises:
        CheckpointError: naming the path and the option to change.
    """
    option, folder = ("--run-dir", Path(explicit).parent) if explicit is not None else ("--runs-root", Path(root))
    if explicit is not None and Path(explicit).exists():
        raise CheckpointError(f"run directory {explicit} already exists; choose another --run-dir (nothing was "
                              f"overwritten)")
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise CheckpointError(f"cannot create a run directory in {folder}: {blocking} is a file, not a folder; "
                              f"choose another {option}")


def create_run_dir(root: str | Path, model: str, dataset: str, explicit: str | Path | None = None) -> Path:
    """Create a new, empty run directory and return it. Never reuses an existing one.

    Raises:
        CheckpointError: see :func:`check_run_location`, or the folder cannot be created.
    """
    check_run_location(root, explicit)
    try:
        if explicit is not None:
            path = Path(explicit)
            path.mkdir(parents=True)
            return path
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
        base = f"{model}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
        for i in range(1000):
            path = root / (base if i == 0 else f"{base}-{i}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise CheckpointError(f"cannot create a run directory: {exc.strerror}: {exc.filename}") from None
    raise CheckpointError(f"could not create a fresh run directory under {root}")


def save_checkpoint(path: Path, *, model_name: str, model_params: dict, schema: dict, state_dict: dict,
                    extra: dict | None = None) -> None:
    _save(path, CHECKPOINT_FORMAT, {"model": model_name, "model_params": model_params, "schema": schema,
                                    "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
                                    "extra": extra or {}})


def load_checkpoint(path: Path) -> dict:
    return _load(path, CHECKPOINT_FORMAT, "checkpoint")


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    """Write a resumable training state (plain data and tensors)."""
    _save(path, STATE_FORMAT, state)


def load_train_state(path: Path) -> dict[str, Any]:
    return _load(path, STATE_FORMAT, "training state")


def _save(path: Path, fmt: str, payload: dict[str, Any]) -> None:
    payload = {"format": fmt, "version": CHECKPOINT_VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _load(path: Path, fmt: str, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"{what} {path} is corrupt or not an msmtrec {what} ({type(e).__name__})") from None
    return check_format(payload, path, fmt, CHECKPOINT_VERSION, what, CheckpointError)


def rng_state() -> dict[str, Any]:
    """This process's random states (Python, NumPy, torch CPU and CUDA) as plain data and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
