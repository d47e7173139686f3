"""MLflow: one MLflow run per msmtrec run, in the experiment ``MLFLOW_EXPERIMENT_NAME`` (default
``msmtrec``).

The store is the one ``MLFLOW_TRACKING_URI`` names; without it, a local SQLite file
``<runs_root>/mlflow.db`` with artifacts under ``<runs_root>/mlartifacts`` (view them with
``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``). MLflow's file store (``mlruns/``)
is not used: MLflow 3 deprecates it and defaults to SQLite itself.

The resolved config goes in as parameters (``model_params.embed_dim``), the epoch scalars as
metrics (step = global epoch), the test metrics and the run's files (results table, metrics,
config, plots) at the end. The MLflow run id is kept in ``<run_dir>/mlflow.json``, so a resumed
run continues its MLflow run. MLflow allows only ``[A-Za-z0-9_-. /:]`` in names: other characters
(``conversion(ctcvr)``) become ``_``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from msmtrec.files import write_json
from msmtrec.tracking import RunLogger, config_params

RUN_FILE = "mlflow.json"
_BAD = re.compile(r"[^A-Za-z0-9_\-. /:]")
_BATCH = 100  # params per log_batch call (MLflow's limit; metrics allow 1000)


def default_tracking_uri(runs_root: Path) -> str:
    """``MLFLOW_TRACKING_URI``, else the SQLite store in ``runs_root``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(runs_root).resolve() / 'mlflow.db'}"


def mlflow_name(name: str) -> str:
    return _BAD.sub("_", name)


class MLflowLogger(RunLogger):
    """Logs one run through :class:`mlflow.MlflowClient` (no global active run, so several runs of
    one process — a bench, a tune — stay apart)."""

    def __init__(self, run_dir: Path, runs_root: Path, resumed: bool = False) -> None:
        from mlflow import MlflowClient

        self.run_dir = Path(run_dir)
        uri = default_tracking_uri(runs_root)
        self.client = MlflowClient(uri)
        saved = self.run_dir / RUN_FILE
        previous = json.loads(saved.read_text()) if resumed and saved.is_file() else None
        if previous is not None and previous["tracking_uri"] == uri:
            self.run_id = previous["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            self.resumed = True
            return
        self.resumed = False
        experiment = self._experiment(uri, Path(runs_root))
        run = self.client.create_run(experiment, run_name=self.run_dir.name,
                                     tags={"msmtrec.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        write_json(saved, {"tracking_uri": uri, "run_id": self.run_id, "experiment_id": experiment})

    def _experiment(self, uri: str, runs_root: Path) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "msmtrec"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if "MLFLOW_TRACKING_URI" not in os.environ:  # the local default: artifacts beside the database
            location = (runs_root.resolve() / "mlartifacts").as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # created meanwhile by another process
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def start(self, config: dict[str, Any], config_text: str) -> None:
        if self.resumed:  # MLflow parameters cannot change; the config is the run's own
            return
        from mlflow.entities import Param

        params = [Param(mlflow_name(k), v) for k, v in config_params(config).items()]
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + _BATCH])
        self.client.set_tag(self.run_id, "model", config["model"])
        self.client.set_tag(self.run_id, "data", config["data"])

    def _metrics(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_name(k), v, now, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def epoch(self, step: int, scalars: dict[str, float]) -> None:
        self._metrics(step, scalars)

    def finish(self, step: int, scalars: dict[str, float], files: list[Path], ok: bool) -> None:
        self._metrics(step, scalars)
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")
