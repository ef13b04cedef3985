"""Data-parallel runs under ``torchrun``: the shard each rank holds and the collectives.

``torchrun --nproc-per-node N -m landscape ...`` (or several nodes) starts N processes with
``RANK``/``WORLD_SIZE`` set; :func:`start` joins them into one process group (gloo on the
CPU, NCCL for CUDA tensors). Each rank then holds its :class:`Shard` of every batch, every
pass over a split sums its part weighted by the *global* example count, and one all-reduce
per pass makes the one-process value on every rank. The algorithms above (Lanczos, traces,
the surface loop, sharpness) see identical numbers on every rank, so they take the same
decisions and issue the same collectives in the same order. Rank 0 alone writes files.

A rank that fails or is killed closes its connections: the others' next collective raises,
and so does one that waits longer than the timeout (``LANDSCAPE_DIST_TIMEOUT`` seconds,
default 600); both become one :class:`~landscape.errors.LandscapeError` line.

Nothing here is active unless :func:`start` ran: a user's own DDP job calling the Python API
on one rank computes alone, with no collective to wait on.
"""

from __future__ import annotations

import datetime
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from .errors import LandscapeError, first_line

DEFAULT_TIMEOUT_S = 600.0
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Rank ``rank`` of ``world`` holds examples [rank·b/world, (rank+1)·b/world) of every batch
    of b examples: shards differ by at most one example per batch."""

    rank: int
    world: int

    def part(self, size: int, rank: int | None = None) -> tuple[int, int]:
        """[start, stop) of a batch of ``size`` examples that ``rank`` (default: this one) holds."""
        r = self.rank if rank is None else rank
        return r * size // self.world, (r + 1) * size // self.world


_current: Shard | None = None


class ShareDone(Exception):  # noqa: N818 (not an error: the end of a rank's run)
    """Raised on a rank other than 0 once its share of a command is done: the command's
    remaining work (reading the file back, printing, the report) is rank 0's."""


def launched() -> bool:
    """Whether the environment is a multi-process launch (``torchrun`` with WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def timeout_seconds() -> float:
    """The collective timeout: ``LANDSCAPE_DIST_TIMEOUT`` seconds, else 600."""
    raw = os.environ.get("LANDSCAPE_DIST_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise LandscapeError(f"LANDSCAPE_DIST_TIMEOUT={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise LandscapeError(f"LANDSCAPE_DIST_TIMEOUT must be positive, got {raw!r}")
    return value


def start() -> Shard:
    """Join the ``torchrun`` process group (idempotent) and make the run data-parallel."""
    global _current
    if _current is not None:
        return _current
    import torch.distributed as dist

    if not dist.is_available():
        raise LandscapeError("torchrun started several processes but this torch has no torch.distributed; "
                             "run one process")
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds()))
        except (RuntimeError, ValueError) as exc:
            raise LandscapeError(f"could not join the torchrun process group ({first_line(exc)}); check "
                                 "MASTER_ADDR/MASTER_PORT and that every rank was started") from None
    _current = Shard(dist.get_rank(), dist.get_world_size())
    return _current


def stop() -> None:
    """Leave the process group :func:`start` joined (no-op otherwise)."""
    global _current
    if _current is None:
        return
    import torch.distributed as dist

    _current = None
    if dist.is_initialized():
        dist.destroy_process_group()


def current() -> Shard | None:
    """The shard of this rank in a data-parallel run, None otherwise."""
    return _current


def is_writer() -> bool:
    """Whether this process writes files: rank 0, or the only process."""
    return _current is None or _current.rank == 0


def local_device() -> torch.device | None:
    """``cuda:LOCAL_RANK`` in a data-parallel run on a machine with GPUs, else None."""
    if _current is None or not torch.cuda.is_available():
        return None
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


# ---------------------------------------------------------------------------- collectives
def _collective(what: str, call: Callable[[], T]) -> T:
    """Run one collective; a lost or timed-out rank becomes one clear line."""
    try:
        return call()
    except RuntimeError as exc:  # gloo/NCCL errors (DistBackendError is one)
        shard = _current or Shard(0, 1)
        raise LandscapeError(
            f"rank {shard.rank} of {shard.world}: lost the other ranks during {what} ({first_line(exc)}); "
            "another rank failed or was stopped (see its message); the results file keeps what was "
            "finished: rerun with --resume") from None


def _transport(tensor: Tensor) -> Tensor:
    """A copy on a device the backend reduces on (gloo: the CPU)."""
    import torch.distributed as dist

    if tensor.device.type == "cuda" and "nccl" in str(dist.get_backend()):
        return tensor.clone()
    return tensor.detach().to("cpu", copy=True)


def all_reduce_sum(tensor: Tensor, what: str = "a sum over the shards") -> Tensor:
    """Σ over ranks of ``tensor`` (same shape on every rank); itself when not data-parallel."""
    if _current is None:
        return tensor
    import torch.distributed as dist

    buffer = _transport(tensor)
    _collective(what, lambda: dist.all_reduce(buffer))
    return buffer.to(tensor.device)


def all_reduce_max(value: int, what: str = "agreeing on a size") -> int:
    """The largest ``value`` over ranks."""
    if _current is None:
        return value
    import torch.distributed as dist

    buffer = torch.tensor([value], dtype=torch.int64)
    _collective(what, lambda: dist.all_reduce(buffer, op=dist.ReduceOp.MAX))
    return int(buffer.item())


def broadcast(value: T, what: str = "hearing from rank 0") -> T:
    """Rank 0's ``value`` (picklable) on every rank."""
    if _current is None:
        return value
    import torch.distributed as dist

    box: list[Any] = [pickle.dumps(value) if _current.rank == 0 else None]
    _collective(what, lambda: dist.broadcast_object_list(box, src=0))
    received: T = pickle.loads(box[0]) if _current.rank else value
    return received


def gather_rows(rows: Tensor, positions: Tensor, what: str = "gathering per-example rows") -> Tensor:
    """Every rank's ``rows`` (``[n_r, ...]``) stacked in the order of their global
    ``positions`` (``[n_r]``, distinct over ranks): the one-process matrix on every rank."""
    if _current is None:
        return rows
    import torch.distributed as dist

    counts = [0] * _current.world
    _collective(what, lambda: dist.all_gather_object(counts, int(rows.shape[0])))
    most = max(counts)
    padded = torch.zeros((most, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[:rows.shape[0]] = rows
    sent = _transport(padded)
    received = [torch.empty_like(sent) for _ in counts]
    _collective(what, lambda: dist.all_gather(received, sent))
    where: list[Any] = [None] * _current.world
    _collective(what, lambda: dist.all_gather_object(where, positions.tolist()))
    stacked = torch.cat([block[:count] for block, count in zip(received, counts)])
    order = torch.tensor([p for ps in where for p in ps], dtype=torch.int64).argsort()
    return stacked[order].to(rows.device)
