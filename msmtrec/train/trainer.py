"""The training loop: one loop for every model, multi-stage schedules included.

Per stage: Adam over the stage's parameter groups; each epoch trains on shuffled batches
(slices of a permutation), evaluates the VALIDATION split, keeps the best weights by validation
mean AUC over (scenario, task) pairs, and stops after ``patience`` epochs without improvement.
The best weights are always restored at the end of a stage — also when ``max_epochs`` is reached.
A model with a BatchNorm (training-mode statistics) skips an epoch's last batch when it holds a
single row, which it cannot normalise (every rank alike: their shares are of equal size).
The test split is evaluated once, at the very end, with those weights (see :func:`msmtrec.train.api.train`).

The trainer takes a :class:`~msmtrec.data.Dataset` (in memory or streamed, the same interface):
its ``train_batches(epoch, rank=, world_size=)`` give each epoch's batches — a function of the
seed and the epoch alone —, its ``val`` split drives selection. Batches move to the model's device
as they are used.

Data parallelism (:mod:`msmtrec.train.distributed`): every rank runs this same loop on its share
of each epoch, with the same number of steps; the model is wrapped in DistributedDataParallel
(rebuilt at each stage's first epoch, after its start hook, which may freeze parameters), so
every rank takes the same optimiser step. Validation is computed once over the whole split and
every rank gets the same metrics, hence the same selection and early-stopping decisions.

Resuming: after every epoch :meth:`Trainer.state_dict` is everything the loop needs to go on
(``on_state`` receives it on rank 0); ``fit(resume=state)`` continues after that epoch.

Training and evaluation both run the model through :meth:`Trainer.forward`: in the run's
``precision`` (:mod:`msmtrec.train.precision`; losses and metrics in fp32) and, with ``compile``,
through one ``torch.compile``-d module (:mod:`msmtrec.train.compiled`; on one process only: under
DDP the training step runs the wrapped module eagerly).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from msmtrec.config import TrainConfig
from msmtrec.data.encoded import EncodedData
from msmtrec.errors import ConfigError, MsmtrecError
from msmtrec.models.base import MSMTModel
from msmtrec.models.stages import Stage
from msmtrec.nn.norm import FrozenBatchNorm
from msmtrec.train.checkpoint import rng_state, set_rng_state
from msmtrec.train.compiled import CompiledForward
from msmtrec.train.distributed import Ranks
from msmtrec.train.evaluate import evaluate_model
from msmtrec.train.precision import Precision
from msmtrec.train.weighting import TaskWeighting, build_weighting


class TrainingDiverged(MsmtrecError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    samples_seen: int = 0

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.train_seconds if self.train_seconds > 0 else 0.0


@dataclass
class StageProgress:
    """Where the current stage stands after its completed epochs."""

    epoch: int = 0                    # epochs of the stage completed
    best_score: float = -math.inf
    best_epoch: int = -1
    bad: int = 0                      # epochs since the last improvement
    stopped: bool = False             # early stopping fired
    best_state: dict[str, torch.Tensor] | None = None  # the stage's best weights (restore_best / select_best)


def selection_score(metrics: dict) -> float:
    """Validation score to maximise: mean AUC over (scenario, task); -logloss if no AUC exists."""
    if metrics.get("mean_auc") is not None:
        return float(metrics["mean_auc"])
    if metrics.get("mean_logloss") is not None:
        return -float(metrics["mean_logloss"])
    return -math.inf


class Trainer:
    """Trains ``model`` on ``train`` with model selection on ``val``.

    Args:
        model: an :class:`MSMTModel`.
        config: the run's :class:`TrainConfig` (batch size, lr, epochs, patience, weighting, seed).
        data: a :class:`~msmtrec.data.Dataset` (anything with ``schema``, ``val``,
            ``num_train_rows`` and ``train_batches``).
        echo: where one-line epoch summaries go (None: silent).
        progress: show a per-epoch progress bar (None: only when stderr is a terminal).
        on_improvement: ``fn(model, record)`` called when a selecting stage reaches a new best
            validation score (the run writes its checkpoint there).
        on_state: ``fn(state)`` called on rank 0 at the end of every epoch with
            :meth:`state_dict` (the run writes its resumable state there).
        on_epoch: ``fn(record)`` called with every epoch's log record right after ``on_state``
            (the run appends it to ``log.jsonl``, so a crashed run keeps its history).
        ranks: the data-parallel ranks (default: one process); each trains on its share of an epoch.
    """

    def __init__(self, model: MSMTModel, config: TrainConfig, data: Any, *, echo: Callable[[str], None] | None = None,
                 progress: bool | None = None, on_epoch: Callable[[dict], None] | None = None,
                 on_improvement: Callable[[MSMTModel, dict], None] | None = None,
                 on_state: Callable[[dict], None] | None = None, ranks: Ranks = Ranks()) -> None:
        self.model, self.config, self.data, self.schema = model, config, data, data.schema
        self.device = next(iter(model.parameters()), torch.zeros(0)).device
        self.val_data = data.val.to(self.device)
        self.echo = echo or (lambda _msg: None)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.on_epoch, self.on_improvement, self.on_state = on_epoch, on_improvement, on_state
        self.ranks = ranks
        self.precision = Precision(config.precision, self.device)
        if self.precision.note:
            self.log(f"note: {self.precision.note}")
        self.run_model: Callable[[EncodedData], Any] = CompiledForward(model, self.log) if config.compile else model
        self.weighting: TaskWeighting = build_weighting(
            config.weighting or model.default_weighting,
            model.loss_names, model, config.task_weights, config.weighting_params)
        self.weighting.average = ranks.mean
        if self.precision.scaler is not None:
            self.weighting.loss_scale = self.precision.scaler.get_scale
        self.stages: list[Stage] = []
        self.stage: Stage | None = None
        self.stage_index = 0
        self.net: Callable[[EncodedData], Any] | None = None  # the model as trained: itself (compiled), or in DDP
        self.optimizer: torch.optim.Optimizer | None = None
        self.progress_in_stage = StageProgress()
        self.best_overall = -math.inf
        self.global_epoch = 0
        self.result = FitResult()
        self.min_batch_rows = 2 if uses_batch_statistics(model) else 1
        if config.batch_size < self.min_batch_rows:
            raise ConfigError(f"batch_size {config.batch_size}: {model.name} normalises with batch statistics "
                              f"(BatchNorm) and needs batches of {self.min_batch_rows} rows or more")

    # -- helpers the stages' hooks may use ----------------------------------------------------------
    def log(self, message: str) -> None:
        self.echo(message)

    def forward(self, batch: EncodedData, module: Callable[[EncodedData], Any] | None = None) -> Any:
        """The model's output on ``batch`` in the run's precision (compiled if asked), as fp32;
        ``module`` runs instead of the model when given (the training step's DDP wrapper)."""
        with self.precision.forward_pass():
            out = (module or self.run_model)(batch)
        return self.precision.fp32(out)

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, resume: dict[str, Any] | None = None) -> FitResult:
        """Run every stage; with ``resume`` (a :meth:`state_dict`), continue after its epoch."""
        self.stages = self.model.training_stages(self.config) or [Stage()]
        for note in self.model.notes:
            self.log(f"note: {note}")
        first = 0 if resume is None else resume["stage"]
        for index in range(first, len(self.stages)):
            self._run_stage(index, resume if index == first else None)
        self.net = None  # DDP's wrapper holds the process group; evaluation runs the model itself
        return self.result

    def _run_stage(self, index: int, resume: dict[str, Any] | None) -> None:
        stage = self.stage = self.stages[index]
        self.stage_index = index
        self.prepare_stage(stage)
        max_epochs = stage.max_epochs or self.config.max_epochs
        if resume is not None:
            for s, saved in zip(self.stages, resume["stage_states"]):
                s.state.update(saved)
        if stage.on_stage_start:
            stage.on_stage_start(self, self.model)
        p = self.progress_in_stage = StageProgress() if resume is None else self._load_state_dict(resume)
        while p.epoch < max_epochs and not p.stopped:
            if stage.on_epoch_start:
                stage.on_epoch_start(self, self.model, p.epoch)
            t0 = time.perf_counter()
            train_losses, n_seen = self._train_epoch(stage, self.global_epoch, p.epoch, max_epochs)
            seconds = time.perf_counter() - t0
            self.result.train_seconds += seconds
            self.result.samples_seen += n_seen * self.ranks.world_size
            val = evaluate_model(self.model, self.val_data, self.schema, self.config.eval_batch_size, self.ranks,
                                 forward=self.forward)
            score = selection_score(val)
            improved = score > p.best_score
            record = {
                "stage": stage.name, "epoch": p.epoch + 1, "max_epochs": max_epochs, "global_epoch": self.global_epoch + 1,
                "train_loss": train_losses, "val_mean_auc": val["mean_auc"], "val_mean_logloss": val["mean_logloss"],
                "val": {s: {t: m["auc"] for t, m in by_t.items()} for s, by_t in val["per_scenario"].items()},
                "val_logloss": {s: {t: m["logloss"] for t, m in by_t.items()} for s, by_t in val["per_scenario"].items()},
                "val_score": score, "lr": [group["lr"] for group in self.optimizer.param_groups],
                "task_weights": self.weighting.weights(), "seconds": round(seconds, 3),
                "samples_per_second": round(n_seen * self.ranks.world_size / seconds, 1) if seconds > 0 else None,
                "improved": improved,
            }
            if stage.on_epoch_end:
                extra = stage.on_epoch_end(self, self.model, p.epoch, val)
                if isinstance(extra, dict):
                    record.update(extra)
            self.result.history.append(record)
            if improved:
                p.best_score, p.best_epoch, p.bad = score, p.epoch, 0
                if stage.restore_best or stage.select_best:
                    p.best_state = self.model.snapshot()
                if stage.select_best and score > self.best_overall:
                    self.best_overall = score
                    self.result.best = {"stage": stage.name, "epoch": p.epoch + 1, "val_mean_auc": val["mean_auc"],
                                        "val_score": score}
                    if self.on_improvement:
                        self.on_improvement(self.model, record)
            else:
                p.bad += 1
                p.stopped = stage.early_stopping and p.bad >= self.config.patience
            p.epoch += 1
            self.global_epoch += 1
            self._save_state()
            if self.on_epoch:
                self.on_epoch(record)
            self.log(self._epoch_line(record))
            if p.stopped:
                self.log(f"[{stage.name}] early stop: no better validation score for {p.bad} epochs")
        if stage.restore_best and p.best_state is not None:
            self.model.load_state_dict(p.best_state)
            self.log(f"[{stage.name}] restored the best weights (epoch {p.best_epoch + 1}, "
                     f"validation score {p.best_score:.4f})")
        if stage.on_stage_end:
            stage.on_stage_end(self, self.model)

    def _optimizer(self, stage: Stage) -> torch.optim.Optimizer:
        lr = self.config.lr if stage.lr is None else stage.lr
        wd = self.config.weight_decay if stage.weight_decay is None else stage.weight_decay
        if stage.param_groups is not None:
            groups = stage.param_groups(self.model, lr, wd)
        else:
            groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        # fused: the whole update in one kernel per parameter; on CPU a step takes a third to a
        # fifth of the multi-tensor (foreach) one's time (HiNet 1.0 vs 3.1 ms, AEM²TL 1.5 vs 7.0 ms,
        # 2 threads; docs/BENCHMARKS.md). Same algorithm, not bitwise the same rounding as foreach.
        return torch.optim.Adam(groups, lr=lr, weight_decay=wd, fused=True)

    def _batches(self, epoch: int) -> Iterable[EncodedData]:
        batches = self.data.train_batches(epoch, rank=self.ranks.rank, world_size=self.ranks.world_size,
                                          batch_size=self.config.batch_size, seed=self.config.seed)
        return (b.to(self.device) for b in batches)

    def prepare_stage(self, stage: Stage) -> None:
        """Make ``stage`` current and build its optimiser (the loop does this at each stage start)."""
        self.stage = stage
        self.optimizer = self._optimizer(stage)
        self.net = None  # wrapped again at the stage's first step, after its start hook

    def train_epoch(self, epoch: int = 0) -> tuple[dict[str, float], int]:
        """One pass over the training batches of the current stage: ``(mean losses, samples seen)``."""
        if self.stage is None:
            self.prepare_stage((self.model.training_stages(self.config) or [Stage()])[0])
        return self._train_epoch(self.stage, epoch, epoch, 1)

    def _train_epoch(self, stage: Stage, data_epoch: int, epoch: int, max_epochs: int) -> tuple[dict[str, float], int]:
        """``(mean losses, samples seen)`` of this rank's share of one epoch."""
        model, opt, weighting = self.model, self.optimizer, self.weighting
        if self.net is None:
            self.net = self.ranks.wrap(model)
            if self.net is model:
                self.net = self.run_model  # one process: the (compiled) model itself
        model.train()
        loss_sum = torch.zeros(len(model.loss_names))
        n_seen = 0
        total = self.data.num_train_rows // self.ranks.world_size
        bar = tqdm(total=total, unit="samples", unit_scale=True, leave=False, disable=not self.progress,
                   desc=f"{stage.name} {epoch + 1}/{max_epochs}", mininterval=0.5)
        try:
            for step, batch in enumerate(self._batches(data_epoch)):
                if len(batch) < self.min_batch_rows:
                    continue
                out = self.forward(batch, self.net)
                losses = model.task_losses(out, batch)
                loss = weighting.total(losses, model.aux_loss(out))
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"[{stage.name}] epoch {epoch + 1} step {step}: the loss became {loss.item()}; "
                                           f"try a lower learning rate (lr={opt.param_groups[0]['lr']:g})")
                opt.zero_grad(set_to_none=True)
                self.precision.backward_step(loss, opt)
                weighting.after_step()
                b = len(batch)
                loss_sum += losses.detach().float().cpu() * b
                n_seen += b
                bar.update(b)
        finally:
            bar.close()
        if n_seen == 0:
            raise MsmtrecError("the training split produced no batches (is it empty?)" if self.min_batch_rows == 1 else
                               "the training split produced no batch of two rows or more, which this model's "
                               "BatchNorm needs (does it hold a single row?)")
        return {n: round(float(v) / n_seen, 6) for n, v in zip(model.loss_names, loss_sum)}, n_seen

    # -- resumable state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything the loop needs to continue after the last completed epoch, this rank's RNG
        states included (rank 0 saves the states of every rank, see ``on_state``)."""
        r = self.result
        return {
            "stage": self.stage_index, "progress": dict(vars(self.progress_in_stage)),
            "stage_states": [s.state for s in self.stages], "global_epoch": self.global_epoch,
            "best_overall": self.best_overall, "world_size": self.ranks.world_size,
            "result": {"history": r.history, "best": r.best, "train_seconds": r.train_seconds,
                       "samples_seen": r.samples_seen},
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "weighting": self.weighting.state_dict(), "rng": rng_state(),
        }

    def _save_state(self) -> None:
        state = self.state_dict()
        rngs = self.ranks.gather(state["rng"])
        if self.ranks.is_main and self.on_state:
            self.on_state({**state, "rng": rngs})

    def _load_state_dict(self, state: dict[str, Any]) -> StageProgress:
        """Restore a :meth:`state_dict` (saved with every rank's RNG states) into the current stage."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.weighting.load_state_dict(state["weighting"])
        self.global_epoch, self.best_overall = state["global_epoch"], state["best_overall"]
        self.result = FitResult(**state["result"])
        set_rng_state(state["rng"][self.ranks.rank])
        return StageProgress(**state["progress"])

    def _epoch_line(self, r: dict) -> str:
        losses = " ".join(f"{k}={v:.4f}" for k, v in r["train_loss"].items())
        auc = "n/a" if r["val_mean_auc"] is None else f"{r['val_mean_auc']:.4f}"
        ll = "n/a" if r["val_mean_logloss"] is None else f"{r['val_mean_logloss']:.4f}"
        sps = f"{r['samples_per_second']:,.0f}" if r["samples_per_second"] else "-"
        star = " *" if r["improved"] else ""
        return (f"[{r['stage']}] epoch {r['epoch']}/{r['max_epochs']}  loss {losses}  "
                f"val mean AUC {auc}  logloss {ll}  {sps} samples/s{star}")


def uses_batch_statistics(model: torch.nn.Module) -> bool:
    """Whether ``model`` normalises with the statistics of its training batch (a BatchNorm that
    is not frozen): it then cannot train on a batch of one row."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(m, FrozenBatchNorm)
               for m in model.modules())
