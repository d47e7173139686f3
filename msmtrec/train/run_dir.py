"""What a run directory says about its run: its status (``status.json``), and whether
``train --resume`` may continue it.

``status.json`` holds ``status`` — ``running``, ``finished`` or ``failed: <reason>`` — with the
``pid`` and ``host`` of the process that writes the run (rank 0), the number of ranks
(``world_size``), the completed ``epochs`` and the time of the last change. A run whose status
says ``running`` but whose process is gone was killed: :attr:`RunStatus.state` calls it
``interrupted`` (the process is checked when it ran on this host; a run of another host cannot be
checked and stays ``running``).

:func:`resumable_state` decides whether ``train --resume`` may continue a run: it must be
unfinished and not running, with the same config, the same dataset spec (``spec.resolved.yaml``)
and unchanged data files (:mod:`msmtrec.data.fingerprint`, as ``evaluate`` checks them).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msmtrec.config import TrainConfig
from msmtrec.data.catalog import resolve_spec
from msmtrec.data.fingerprint import FINGERPRINT_FILE, changed_files, fingerprint_spec, read_fingerprint
from msmtrec.data.spec import load_spec
from msmtrec.errors import CheckpointError
from msmtrec.files import write_json
from msmtrec.train.checkpoint import SPEC_FILE, STATE_FILE, load_train_state

STATUS_FILE = "status.json"


def process_alive(pid: int | None, host: str | None) -> bool | None:
    """Whether process ``pid`` of ``host`` still runs (None: another host's, which cannot be checked)."""
    if pid is None or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


@dataclass
class RunStatus:
    """A run directory's ``status.json``."""

    status: str
    pid: int | None = None
    host: str | None = None
    world_size: int = 1
    epochs: int = 0
    updated: str = ""

    @property
    def alive(self) -> bool | None:
        """Whether the writing process still runs (None: it ran on another host)."""
        return process_alive(self.pid, self.host)

    @property
    def state(self) -> str:
        """``running``, ``interrupted``, ``finished`` or ``failed``."""
        if self.status == "running":
            return "interrupted" if self.alive is False else "running"
        return "failed" if self.status.startswith("failed") else self.status

    def describe(self) -> str:
        """One line for people, e.g. ``interrupted after 3 epochs (process 812 on host a is gone)``."""
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        if self.state == "interrupted":
            return f"interrupted after {epochs} (process {self.pid} on {self.host} is gone)"
        if self.state == "running":
            return f"still running ({epochs} done; process {self.pid} on {self.host})"
        return f"{self.status} (after {epochs})"


def write_status(run_dir: Path, status: str, *, world_size: int, epochs: int) -> None:
    """Record ``status`` with this process's pid and host (atomically)."""
    write_json(Path(run_dir) / STATUS_FILE, {"status": status, "pid": os.getpid(), "host": socket.gethostname(),
                                            "world_size": world_size, "epochs": epochs,
                                            "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})


def read_status(run_dir: Path) -> RunStatus | None:
    """The run's status, or None for a directory without ``status.json`` (older runs)."""
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    return RunStatus(str(d["status"]), d.get("pid"), d.get("host"), int(d.get("world_size", 1)),
                     int(d.get("epochs", 0)), str(d.get("updated", "")))


def unfinished_note(run_dir: Path) -> str | None:
    """One line saying that the run in ``run_dir`` did not finish (None when it did, or for a run
    directory from before ``status.json``)."""
    status = read_status(run_dir)
    if status is None or status.state == "finished":
        return None
    return f"note: run {run_dir} is {status.describe()}; using its best checkpoint so far"


def resumable_state(run_dir: Path, config: TrainConfig, world_size: int, *, load: bool = True) -> dict[str, Any] | None:
    """The training state to continue the run in ``run_dir`` from (None: no epoch completed yet,
    or ``load=False``), after checking that it may be continued with ``config`` on ``world_size``
    ranks.

    Raises:
        CheckpointError: one line — not a run directory, the run finished or is still running,
            ``config`` differs from its ``config.yaml``, its data changed, or it ran on another
            number of ranks.
    """
    run_dir = Path(run_dir)
    where = f"cannot resume {run_dir}"
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{where}: not a msmtrec run directory (no config.yaml)")
    status = read_status(run_dir)
    if status is None:
        raise CheckpointError(f"{where}: it has no {STATUS_FILE} (written by an older msmtrec)")
    if status.state == "finished":
        raise CheckpointError(f"{where}: it already {status.describe()}; nothing to resume")
    if status.state == "running":
        raise CheckpointError(f"{where}: it is {status.describe()}")
    saved = TrainConfig.from_yaml(run_dir / "config.yaml").to_dict()
    diff = [f"{k} ({saved[k]!r} → {v!r})" for k, v in config.to_dict().items() if saved.get(k) != v]
    if diff:
        raise CheckpointError(f"{where}: the config differs from its config.yaml in {', '.join(diff)}")
    if status.world_size != world_size:
        raise CheckpointError(f"{where}: it ran on {status.world_size} process(es), not {world_size}; resume it with "
                              f"--nproc {status.world_size}")
    if not (run_dir / FINGERPRINT_FILE).is_file() or not (run_dir / SPEC_FILE).is_file():
        raise CheckpointError(f"{where}: it has no {SPEC_FILE} or {FINGERPRINT_FILE}, so its data cannot be "
                              f"checked (trained on data given in code?)")
    spec = resolve_spec(config.data)
    changes = [] if spec.to_dict() == load_spec(run_dir / SPEC_FILE).to_dict() else ["the dataset spec changed"]
    changes += changed_files(read_fingerprint(run_dir), fingerprint_spec(spec))
    if changes:
        more = f" (+{len(changes) - 2} more)" if len(changes) > 2 else ""
        raise CheckpointError(f"{where}: its data changed since it started: {'; '.join(changes[:2])}{more}")
    path = run_dir / STATE_FILE
    return load_train_state(path) if load and path.is_file() else None
