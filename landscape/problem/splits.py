"""A data split as the Problem holds it: batches cached on the device, or streamed.

Both kinds are :class:`Batches`, a sequence of :class:`~.data.Batch` whose length, batch
sizes, first and largest batch are known without a pass over the data. A
:class:`CachedBatches` keeps every batch on the device; a :class:`StreamedBatches` re-reads
the user's iterable on every pass and moves each batch to the device as it comes (through
pinned memory with ``non_blocking`` copies on CUDA), so only a few batches live there at a
time. :func:`load_split` decides which, by a fixed rule (``data_mode``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Literal, overload

import torch
from torch import Tensor

from .. import distributed
from ..distributed import Shard
from ..errors import LandscapeError
from ..memory import format_bytes
from .data import Batch, batch_bytes, fingerprint, move_batch, read_batches, same_fingerprint

DataMode = Literal["auto", "cache", "stream"]
DATA_MODES: tuple[str, ...] = ("auto", "cache", "stream")


class Batches(Sequence[Batch]):
    """One split's batches in a fixed order; ``sizes``, ``first`` and ``largest`` need no pass."""

    name: str
    mode: str  # what was used: "cache" or "stream"
    sizes: tuple[int, ...]
    first: Batch
    largest: Batch
    cached_bytes: int  # device bytes this split holds for the whole run

    @property
    def num_examples(self) -> int:
        """Examples in the split (over every rank in a data-parallel run)."""
        return sum(self.sizes)

    @property
    def positions(self) -> tuple[int, ...]:
        """Where each batch's first example sits in the split (its batches concatenated)."""
        return tuple(sum(self.sizes[:i]) for i in range(len(self.sizes)))

    def reduce(self, total: Tensor) -> Tensor:
        """A sum over this split's batches (weighted by ``num_examples``) made whole: itself,
        or in a data-parallel run the all-reduced sum of every rank's part."""
        return total

    def __len__(self) -> int:
        return len(self.sizes)

    def head(self, count: int) -> list[Batch]:
        """The first ``count`` batches (fewer when the split has fewer)."""
        return list(islice(self, count))

    @overload
    def __getitem__(self, index: int) -> Batch: ...

    @overload
    def __getitem__(self, index: slice) -> list[Batch]: ...

    def __getitem__(self, index: int | slice) -> Batch | list[Batch]:
        if isinstance(index, slice):
            wanted = range(*index.indices(len(self)))
            if not wanted:
                return []
            picked = {i: b for i, b in enumerate(islice(self, max(wanted) + 1)) if i in wanted}
            return [picked[i] for i in wanted]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"batch {index} of a split of {len(self)} batches")
        if position == 0:
            return self.first
        return next(islice(self, position, None))


class CachedBatches(Batches):
    """Every batch of the split, on the device."""

    def __init__(self, name: str, batches: list[Batch], cached_bytes: int) -> None:
        self.name, self.mode, self.batches, self.cached_bytes = name, "cache", batches, cached_bytes
        self.sizes = tuple(b.size for b in batches)
        self.first = batches[0]
        self.largest = max(batches, key=lambda b: b.size)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)

    def __getitem__(self, index: Any) -> Any:
        return self.batches[index]

    def head(self, count: int) -> list[Batch]:
        """The first ``count`` batches (fewer when the split has fewer)."""
        return self.batches[:count]


class StreamedBatches(Batches):
    """The split read again from the user's iterable on every pass.

    Each pass must yield the batches of the first read, in order: their sizes and the
    float64 sums of their tensors are checked (shuffling or random augmentation would make
    each pass a different empirical risk). The first and the largest batch, and the first
    ``head(n)`` batches once asked for (BatchNorm statistics), stay on the device.
    """

    def __init__(self, name: str, source: Iterable[Any], read: Callable[[], Iterator[Batch]],
                 device: torch.device, dtype: torch.dtype, fingerprints: list[tuple[float, ...]],
                 first: Batch, largest: Batch) -> None:
        self.name, self.mode, self.source, self.read = name, "stream", source, read
        self.device, self.dtype, self.fingerprints = device, dtype, fingerprints
        self.sizes = tuple(int(f[0]) for f in fingerprints)
        self.first, self.largest = first, largest
        self.cached_bytes = batch_bytes(first, dtype) + batch_bytes(largest, dtype)
        self._head: list[Batch] = []

    def __iter__(self) -> Iterator[Batch]:
        pending: Batch | None = None
        count = 0
        for index, batch in enumerate(self.read()):
            self.check(index, batch)
            moved = move_batch(batch, self.device, self.dtype, pinned=True)  # copies while `pending` is used
            if pending is not None:
                yield pending
            pending, count = moved, count + 1
        if count != len(self.sizes):
            raise self.changed(f"it yielded {count} batches, not {len(self.sizes)}")
        if pending is not None:
            yield pending

    def check(self, index: int, batch: Batch) -> None:
        """Refuse a pass that does not yield the first read's batch at ``index``."""
        if index >= len(self.fingerprints):
            raise self.changed(f"it yielded more than {len(self.sizes)} batches")
        if not same_fingerprint(fingerprint(batch), self.fingerprints[index]):
            raise self.changed(f"batch {index} differs")

    def changed(self, what: str) -> LandscapeError:
        """The one-line error for a read that does not repeat the first one."""
        return LandscapeError(
            f"data split '{self.name}' changed between reads ({what}): streaming reads the data again on "
            "every pass, so it must yield the same batches in the same order; turn off shuffling and random "
            "augmentation, or cache it (--data-mode cache, or fewer examples with --max-examples)")

    def head(self, count: int) -> list[Batch]:
        """The first ``count`` batches, read once and then kept on the device."""
        if len(self._head) < min(count, len(self)):
            self._head = list(islice(self, count))
        return self._head[:count]


class ShardedBatches(Batches):
    """The part of every batch of a split that one rank holds in a data-parallel run (:mod:`landscape.distributed`).

    Iterating yields the local parts (cached or streamed as ``local`` is); ``num_examples``
    counts the whole split, so sums weighted by it are this rank's share of the global
    mean, which :meth:`reduce` all-reduces. ``head(n)`` gives the first whole batches, kept
    on every rank, so BatchNorm statistics are computed as by one process.
    """

    def __init__(self, local: Batches, global_sizes: list[int], positions: list[int], head: list[Batch],
                 head_bytes: int) -> None:
        self.local, self.global_sizes = local, tuple(global_sizes)
        self.name, self.mode, self.sizes = local.name, local.mode, local.sizes
        self.first, self.largest = local.first, local.largest
        self._positions, self._head = tuple(positions), head
        self.cached_bytes = local.cached_bytes + head_bytes

    @property
    def num_examples(self) -> int:
        """Examples in the whole split, over every rank."""
        return sum(self.global_sizes)

    @property
    def positions(self) -> tuple[int, ...]:
        """Where each local part's first example sits in the whole split."""
        return self._positions

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.local)

    def __getitem__(self, index: Any) -> Any:
        return self.local[index]

    def head(self, count: int) -> list[Batch]:
        """The first ``count`` whole batches (as many as were kept when the split was read)."""
        if count > len(self._head) and len(self._head) < len(self.global_sizes):
            raise LandscapeError(f"data split '{self.name}': {count} whole batches asked, {len(self._head)} kept "
                                 "in this data-parallel run")
        return self._head[:count]

    def reduce(self, total: Tensor) -> Tensor:
        """Σ over ranks of this rank's part of a sum over the split."""
        return distributed.all_reduce_sum(total, f"a pass over split '{self.name}'")


def shard_split(read: Callable[[], Iterator[Batch]], name: str, shard: Shard, device: torch.device,
                dtype: torch.dtype, head_count: int) -> tuple[Callable[[], Iterator[Batch]],
                                                               list[int], list[int], list[Batch]]:
    """``read`` cut to this rank's parts, and from one read: the whole batches' sizes, the
    local parts' global positions and the first ``head_count`` whole batches on the device."""
    sizes: list[int] = []
    positions: list[int] = []
    head: list[Batch] = []
    for batch in read():
        start, stop = shard.part(batch.size)
        if stop > start:
            positions.append(sum(sizes) + start)
        if len(head) < head_count:
            head.append(move_batch(batch, device, dtype))
        sizes.append(batch.size)
    empty = [r for r in range(shard.world) if all(shard.part(size, r)[0] == shard.part(size, r)[1] for size in sizes)]
    if empty:
        raise LandscapeError(f"data split '{name}' ({sum(sizes)} examples, batches of at most {max(sizes, default=0)}) "
                             f"leaves rank {empty[0]} of {shard.world} with no example: every batch is cut into "
                             f"{shard.world} parts; use larger batches or fewer processes")

    def local() -> Iterator[Batch]:
        for batch in read():
            start, stop = shard.part(batch.size)
            if stop > start:
                yield batch.slice(start, stop)

    return local, sizes, positions, head


def count_examples(batches: Iterable[Batch]) -> int:
    """Examples in ``batches``: a split's count (no pass over the data), else summed."""
    return batches.num_examples if isinstance(batches, Batches) else sum(b.size for b in batches)


def load_split(source: Iterable[Any], name: str, device: torch.device, dtype: torch.dtype, *,
               mode: DataMode, budget_bytes: int, max_batches: int | None,
               max_examples: int | None, shard: Shard | None = None, head_count: int = 0) -> Batches:
    """One data split, cached on the device or streamed (one read of ``source`` here).

    ``mode="cache"`` caches; ``"stream"`` streams; ``"auto"`` caches while the cached bytes
    (estimated up front as the first batch's bytes × the number of batches when ``source``
    has a length, else counted as batches come) stay within ``budget_bytes``, and streams
    otherwise. A one-shot iterator (a generator) cannot be read twice: it is cached when it
    fits the budget, and refused otherwise. With a ``shard`` (a data-parallel run) the rule
    applies to this rank's parts (:class:`ShardedBatches`).
    """
    read = lambda: read_batches(source, name, max_batches, max_examples)  # noqa: E731
    one_shot = isinstance(source, Iterator)
    if shard is not None:
        if one_shot:  # read once here to learn the whole batches; keep it for the local read
            source = list(read())
            read, one_shot = (lambda: iter(source)), False  # noqa: E731
        local_read, sizes, positions, head = shard_split(read, name, shard, device, dtype, head_count)
        local = _load(local_read, source, name, device, dtype, mode, budget_bytes, False,
                      lambda first_size: len(positions))
        return ShardedBatches(local, sizes, positions, head, sum(batch_bytes(b, dtype) for b in head))
    return _load(read, source, name, device, dtype, mode, budget_bytes, one_shot,
                 lambda first_size: _expected_batches(source, first_size, max_batches, max_examples))


def _load(read: Callable[[], Iterator[Batch]], source: Iterable[Any], name: str, device: torch.device,
          dtype: torch.dtype, mode: DataMode, budget_bytes: int, one_shot: bool,
          expected_batches: Callable[[int], int]) -> Batches:
    """:func:`load_split`'s rule on one ``read`` (``expected_batches(first batch size)``)."""
    keep: list[Batch] | None = None if mode == "stream" and not one_shot else []
    fingerprints: list[tuple[float, ...]] = []
    first: Batch | None = None
    largest: Batch | None = None
    total = 0
    for index, batch in enumerate(read()):
        fingerprints.append(fingerprint(batch))
        nbytes = batch_bytes(batch, dtype)
        total += nbytes
        over = total > budget_bytes or (index == 0 and nbytes * expected_batches(batch.size) > budget_bytes)
        if keep is not None and mode != "cache" and over:
            if one_shot:
                raise LandscapeError(
                    f"data split '{name}' is a one-shot iterator ({type(source).__name__}) over the memory "
                    f"budget ({format_bytes(budget_bytes)}) and cannot be read again to stream it; pass a "
                    "re-iterable (a DataLoader or a list) or fewer examples (--max-examples)")
            keep = None
        bigger = largest is None or batch.size > largest.size
        moved = move_batch(batch, device, dtype) if keep is not None or bigger else None
        if keep is not None and moved is not None:
            keep.append(moved)
        if bigger:
            largest = moved
        if index == 0:
            first = moved
    if first is None or largest is None:
        raise LandscapeError(f"data split '{name}' is empty: it yielded no batches")
    if keep is not None:
        return CachedBatches(name, keep, total)
    streamed = StreamedBatches(name, source, read, device, dtype, fingerprints, first, largest)
    streamed.check(0, next(read()))  # a second read must start like the first (no shuffling)
    return streamed


def _expected_batches(source: Iterable[Any], first_size: int, max_batches: int | None,
                      max_examples: int | None) -> int:
    """Batches the split will have, when ``source`` has a length (else 1: counted as they come)."""
    try:
        count = len(source)  # type: ignore[arg-type]
    except TypeError:
        return 1
    if max_batches is not None:
        count = min(count, max_batches)
    if max_examples is not None:
        count = min(count, math.ceil(max_examples / first_size))
    return max(1, count)
