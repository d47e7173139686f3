"""Data parallelism: joining the process group, the model wrapper, the few collectives the trainer
uses, and the ``--nproc`` launcher.

One process per rank, started by ``torchrun`` (or ``msmtrec train --nproc N``, which starts the
same thing through PyTorch's elastic launcher). :func:`process_group` joins the group the launcher
describes in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``):
gloo on CPU, NCCL on CUDA with one GPU per rank (``cuda:LOCAL_RANK``). A :class:`Ranks` says where
this process stands and does what data parallelism needs:

- ``wrap(model)``: DistributedDataParallel, which averages the gradients over the ranks in the
  backward pass (rebuilt per training stage, since a stage may freeze parameters);
- ``mean(tensor)``: a tensor averaged over the ranks (the task weightings' own parameters);
- ``gather(obj)`` / ``broadcast(obj)`` / ``from_main(fn)``: Python objects to rank 0, from rank 0,
  or computed on rank 0 for everyone (evaluation shards, RNG states, resume checks);
- ``everywhere(fn)``: ``fn`` run on every rank, a user error on any of them raised on all of them
  (opening the data, building the model), so that it is printed once;
- ``sync_buffers(model)``: rank 0's buffers (BatchNorm statistics) to every rank.

In one process every method is the identity, so the single-process path is the same code.
"""

from __future__ import annotations

import gc
import inspect
import io
import logging
import os
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from msmtrec.errors import MsmtrecError

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.launcher.api import LaunchConfig

    from msmtrec.models.base import MSMTModel

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel ranks (``Ranks()``: a single process)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs and writes the run directory."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: MSMTModel) -> torch.nn.Module:
        """``model`` in DistributedDataParallel (the model itself in one process). The parameters
        trainable now are the ones synchronised (``model.may_skip_parameters``: some may get no
        gradient in a step); buffers are synchronised by :meth:`sync_buffers` before evaluation,
        not at every step."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # Newer torch calls it forward_sync_buffers; both still sync the buffers once, here.
        no_sync = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})
        # gradient_as_bucket_view: the gradients live in DDP's all-reduce buffers, not in a copy.
        return DistributedDataParallel(model, find_unused_parameters=model.may_skip_parameters,
                                       gradient_as_bucket_view=True, **no_sync)

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` averaged over the ranks (a new tensor; ``tensor`` itself in one process)."""
        if not self.distributed:
            return tensor
        out = tensor.detach().clone()
        dist.all_reduce(out)
        return out.div_(self.world_size)

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj`` on rank 0, in rank order (None on the other ranks)."""
        if not self.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(_pack(obj), out, dst=0)
        return None if out is None else [_unpack(b) for b in out]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [_pack(obj) if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return _unpack(box[0])

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result returned on every rank; a
        :class:`MsmtrecError` it raises is raised on every rank (marked ``from_main`` so that only
        rank 0 prints it)."""
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except MsmtrecError as exc:
                error = exc
        if self.distributed:
            result, error = self.broadcast((result, error))
        if error is not None:
            error.from_main = True
            raise error
        return result  # type: ignore[return-value]

    def everywhere(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on every rank; when it raises a :class:`MsmtrecError` on any of them, the
        first such rank's error is raised on every rank (marked ``from_main``: printed once, by
        rank 0) instead of each rank printing its own copy or waiting for the others forever."""
        result, error = None, None
        try:
            result = fn()
        except MsmtrecError as exc:
            error = exc
        if self.distributed:
            errors: list[Any] = [None] * self.world_size
            dist.all_gather_object(errors, _pack(error))
            error = next((e for e in map(_unpack, errors) if e is not None), None)
        if error is not None:
            error.from_main = True
            raise error
        return result  # type: ignore[return-value]

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Copy rank 0's buffers to every rank."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


def _pack(obj: Any) -> bytes:
    # torch.save, not pickle: the object collectives' own pickling of tensors fails to load some
    # of them back (RNG states) in recent torch versions.
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _unpack(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)  # from our own ranks


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random stream (dropout) after the shared model init."""
    return int(np.random.SeedSequence([int(seed) % 2**63, rank]).generate_state(1, np.uint64)[0] % 2**63)


@contextmanager
def process_group(device: str) -> Iterator[tuple[Ranks, torch.device]]:
    """Join the process group the launcher set up (if any) for the duration of the block:
    ``(ranks, device)``, the device being ``cuda:LOCAL_RANK`` on CUDA. Not launched by torchrun:
    one process on ``device``. A group that is already initialised is used and left open; one
    opened here is closed when every rank has finished the block."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and not dist.is_initialized():
        yield Ranks(), torch.device(device)
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size()), dev
    except BaseException:
        if created:
            dist.destroy_process_group()
        raise
    if created:
        # Leave together: a rank that tears its group down while rank 0 still writes the run
        # directory can abort at exit ("terminate called without an active exception").
        dist.barrier()
        gc.collect()  # what still holds the group (a DDP wrapper in a reference cycle) lets go first
        dist.destroy_process_group()


def local_launch_config(nproc: int) -> LaunchConfig:
    """What ``torchrun --standalone --nproc-per-node NPROC`` sets up: ``nproc`` ranks on this
    machine, a fresh rendezvous on a free port, no restarts."""
    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)


def launch(nproc: int, args: list[str]) -> int:
    """Run ``python -m msmtrec ARGS`` as ``nproc`` ranks on this machine, as
    ``torchrun --standalone --nproc-per-node NPROC -m msmtrec ARGS`` does; returns the exit
    status of the first rank that failed (0 when all succeeded; 128 + N when this process got
    signal N and stopped the ranks). Each rank gets one intra-op thread unless ``OMP_NUM_THREADS``
    says otherwise."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The ranks say what went wrong themselves; the launcher's own lines about stopping the
    # others would only repeat it with a log header.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(local_launch_config(nproc), sys.executable)("-m", "msmtrec", *args)
    except ChildFailedError as exc:
        codes = [f.exitcode for _, f in sorted(exc.failures.items())]
        # A rank's own exit status before the signal the launcher then stopped the others with.
        code = next((c for c in codes if c > 0), next((c for c in codes if c), 1))
        return code if code > 0 else 128 - code  # killed by signal N: 128 + N, as a shell says
    except SignalException as exc:  # Ctrl-C or kill: the launcher has stopped the ranks (each said so)
        return 128 + int(exc.sigval)
    return 0
