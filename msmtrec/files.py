"""Atomic file writes: the content goes to a fresh temporary file in the target's folder, is
flushed to disk and then renamed over the target, so a reader sees the old file or the whole new
one, never half of it, and a failed write leaves no temporary file behind.

The temporary file is created with mode ``0o666`` and the kernel applies the umask (and any
default ACL) to it, so the result has the permissions any tool's output gets — not the ``0o600``
of :func:`tempfile.mkstemp`.

:func:`sha256_file` is the one file hash (recipe manifests, data fingerprints). :func:`read_json`
and :func:`check_format` read back what msmtrec wrote: encoders, export manifests, checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

Content = bytes | str | Callable[[Path], None]


def atomic_write(path: str | Path, content: Content) -> None:
    """Write ``content`` to ``path`` atomically.

    ``content`` is ``bytes``, a ``str`` (written as UTF-8) or a writer ``fn(tmp_path)`` that
    writes the file itself (``torch.save``, pyarrow writers). The folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # created under the umask
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as indented JSON (tensors and numpy scalars as numbers, paths as strings), atomically."""
    atomic_write(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | Path, error: type[Exception]) -> Any:
    """The JSON in ``path``; ``error`` naming the file when it is not valid UTF-8 JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON ({e})") from None


def check_format(content: Any, path: str | Path, fmt: str, version: int, what: str,
                 error: type[Exception]) -> dict[str, Any]:
    """``content``, a file's top level, when its ``format`` is ``fmt`` and its ``version`` is
    ``version``; otherwise ``error`` naming the file, what it should be and, for another version,
    both versions (a file written by a newer or older msmtrec)."""
    if not isinstance(content, dict) or content.get("format") != fmt:
        raise error(f"{path} is not an msmtrec {what}")
    if content.get("version") != version:
        raise error(f"{path} is an msmtrec {what} of format version {content.get('version')}; this msmtrec "
                    f"reads version {version}")
    return content


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | Path, *, ends: int | None = None, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes; with ``ends``, of its first and last ``ends`` bytes only (all
    of them when the file is no longer than ``2 * ends``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if ends is not None and size > 2 * ends:
            h.update(f.read(ends))
            f.seek(size - ends)
            h.update(f.read(ends))
            return h.hexdigest()
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
