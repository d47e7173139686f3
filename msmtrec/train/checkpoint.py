"""Run directories and checkpoints.

A run directory holds everything needed to evaluate or serve the model again:
``config.yaml`` (resolved), ``spec.resolved.yaml`` (the dataset spec with absolute data paths and
every default filled in), ``data_fingerprint.json`` (of every data file it read),
``schema.json``, ``encoders.json``, the best ``checkpoint.pt``, ``log.jsonl`` (one record per
epoch), ``data_report.json``, ``metrics.json`` and ``results.md``.
Files are written atomically (:func:`msmtrec.files.atomic_write`) so an interrupted run never
leaves a half-written checkpoint, and an existing directory is never reused.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from msmtrec.errors import CheckpointError
from msmtrec.files import atomic_write

#: The dataset spec a run was trained on, resolved (absolute paths, defaults filled in).
SPEC_FILE = "spec.resolved.yaml"
CHECKPOINT_FORMAT = "msmtrec-checkpoint"
CHECKPOINT_VERSION = 1


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
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model_name,
        "model_params": model_params,
        "schema": schema,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "extra": extra or {},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a msmtrec checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a msmtrec checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {payload.get('version')}, this msmtrec reads {CHECKPOINT_VERSION}")
    return payload
