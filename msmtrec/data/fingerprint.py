"""Fingerprints of the data files a spec reads, to tell later whether any of them changed.

A file's fingerprint is its size, its modification time and the sha256 of its bytes: all of them
for a file of up to 2 MB, else its first and last MB. A larger file edited in the middle without
changing its size is caught by its modification time alone, so for such a file a new time counts
as a change; a smaller file that was only touched has not changed.

A run directory keeps the fingerprint of its training data (:data:`FINGERPRINT_FILE`);
``evaluate`` compares it with the files as they are now (:func:`changed_files`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from msmtrec.data.io import DataFile
from msmtrec.data.spec import DatasetSpec
from msmtrec.errors import CheckpointError
from msmtrec.files import sha256_file, write_json

__all__ = ["FINGERPRINT_FILE", "changed_files", "fingerprint_files", "fingerprint_spec", "read_fingerprint",
           "spec_files", "write_fingerprint"]

#: File name of a run directory's data fingerprint.
FINGERPRINT_FILE = "data_fingerprint.json"
#: Bytes hashed at each end of a file larger than twice this.
END_BYTES = 1 << 20


def spec_files(spec: DatasetSpec) -> list[Path]:
    """Every file ``spec`` reads, in the order path/train/val/test (a Parquet folder: its files)."""
    f = spec.files
    return [file for p in f.paths for file in (DataFile(p, f.format).files if p.exists() else [p])]


def fingerprint_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Absolute path → ``{"bytes", "mtime_ns", "sha256", "hashed"}`` of each existing file
    (``hashed``: ``"all"`` or ``"ends"``, the first and last :data:`END_BYTES`)."""
    out = {}
    for p in paths:
        if not Path(p).is_file():
            continue  # gone: the comparison says so
        st = Path(p).stat()
        out[str(Path(p).resolve())] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
                                       "sha256": sha256_file(p, ends=END_BYTES),
                                       "hashed": "all" if st.st_size <= 2 * END_BYTES else "ends"}
    return out


def fingerprint_spec(spec: DatasetSpec) -> dict[str, dict[str, Any]]:
    """The fingerprint of every file ``spec`` reads."""
    return fingerprint_files(spec_files(spec))


def changed_files(saved: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between two fingerprints, one phrase per file (empty: nothing changed)."""
    out = []
    for path, old in saved.items():
        new = current.get(path)
        name = Path(path).name
        if new is None:
            out.append(f"{path} is gone")
        elif new["bytes"] != old["bytes"]:
            out.append(f"{name} has {new['bytes']:,} bytes instead of {old['bytes']:,}")
        elif new["sha256"] != old["sha256"]:
            out.append(f"{name} has other content ({'sha256' if old['hashed'] == 'all' else 'its first or last MB'})")
        elif old["hashed"] == "ends" and new["mtime_ns"] != old["mtime_ns"]:
            out.append(f"{name} was modified at {_when(new['mtime_ns'])} (trained on the version of "
                       f"{_when(old['mtime_ns'])}; only its first and last MB are hashed)")
    out += [f"{Path(p).name} is new" for p in current if p not in saved]
    return out


def write_fingerprint(directory: Path, fingerprint: dict[str, dict[str, Any]]) -> Path:
    """Write :data:`FINGERPRINT_FILE` into ``directory``; returns its path."""
    path = Path(directory) / FINGERPRINT_FILE
    write_json(path, {"files": fingerprint})
    return path


def read_fingerprint(directory: Path) -> dict[str, dict[str, Any]]:
    """The fingerprint saved by :func:`write_fingerprint`.

    Raises:
        CheckpointError: the file is missing or not a fingerprint.
    """
    path = Path(directory) / FINGERPRINT_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if all(isinstance(v["bytes"], int) and isinstance(v["sha256"], str) for v in files.values()):
            return files
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise CheckpointError(f"{path} is not a data fingerprint")


def _when(mtime_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime_ns / 1e9))
