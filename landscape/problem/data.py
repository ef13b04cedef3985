"""Batches: what a data source yields, split into model inputs and target, moved to a device.

A :class:`Batch` is what every pass over data iterates over; :func:`call_model` is the one
place that knows how its ``inputs`` are passed to the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import LandscapeError

TARGET_KEYS = ("target", "targets", "label", "labels", "y")


@dataclass(frozen=True)
class Batch:
    """One batch: what the model is called with, the target, and the number of examples.

    ``inputs`` is a tensor (``model(x)``), a tuple (``model(*inputs)``) or a dict
    (``model(**inputs)``).
    """

    inputs: Any
    target: Tensor
    size: int

    def slice(self, start: int, stop: int) -> Batch:
        """Examples ``start:stop`` of this batch (every tensor sliced along dim 0)."""
        cut = lambda t: t[start:stop] if isinstance(t, Tensor) else t  # noqa: E731
        return Batch(tree_map(cut, self.inputs), self.target[start:stop], min(stop, self.size) - start)


def make_batch(raw: Any, where: str) -> Batch:
    """Split one raw batch from a data source into model inputs and target.

    Accepted: ``(x, y)`` / ``[x, y]`` (more than two items: all but the last are the
    model's positional inputs) and dicts whose target sits under one of ``TARGET_KEYS``
    (the remaining keys are passed to the model as keyword arguments).
    """
    if isinstance(raw, Batch):
        return raw
    if isinstance(raw, Mapping):
        keys = [k for k in TARGET_KEYS if k in raw]
        if not keys:
            raise LandscapeError(
                f"{where}: dict batch has no target key (looked for {', '.join(TARGET_KEYS)}); "
                f"it has {sorted(raw)}. Rename the target key or wrap the data.")
        target = raw[keys[0]]
        inputs: Any = {k: v for k, v in raw.items() if k != keys[0]}
    elif isinstance(raw, (tuple, list)) and len(raw) >= 2:
        target = raw[-1]
        inputs = raw[0] if len(raw) == 2 else tuple(raw[:-1])
    else:
        raise LandscapeError(
            f"{where}: a batch must be (inputs, target) or a dict with a target key, "
            f"got {type(raw).__name__}. Make the data yield (x, y) pairs.")
    if not isinstance(target, Tensor):
        try:
            target = torch.as_tensor(target)
        except Exception as exc:
            raise LandscapeError(f"{where}: target is {type(target).__name__}, not a tensor") from exc
    if target.ndim == 0 or target.shape[0] == 0:
        raise LandscapeError(f"{where}: empty batch (target shape {tuple(target.shape)}); "
                             "the data must yield at least one example per batch")
    return Batch(inputs, target, int(target.shape[0]))


def move(t: Any, device: torch.device, dtype: torch.dtype, *, pinned: bool = False) -> Any:
    """A tensor on ``device``, floating-point ones cast to ``dtype``; anything else unchanged.

    ``pinned``: a host tensor goes through page-locked memory and is copied with
    ``non_blocking=True`` (on CUDA the copy then overlaps the computation on the batch before).
    """
    if not isinstance(t, Tensor):
        return t
    if pinned and t.device.type == "cpu" and device.type == "cuda":
        t = (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)
    return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)


def move_batch(batch: Batch, device: torch.device, dtype: torch.dtype, *, pinned: bool = False) -> Batch:
    """``batch`` with every tensor moved by :func:`move`."""
    return Batch(tree_map(lambda t: move(t, device, dtype, pinned=pinned), batch.inputs),
                 move(batch.target, device, dtype, pinned=pinned), batch.size)


def batch_bytes(batch: Batch, dtype: torch.dtype) -> int:
    """Bytes ``batch`` takes once moved (floating-point tensors counted in ``dtype``)."""
    leaves, _ = tree_flatten((batch.inputs, batch.target))
    itemsize = torch.empty((), dtype=dtype).element_size()
    return sum(t.numel() * (itemsize if t.is_floating_point() else t.element_size())
               for t in leaves if isinstance(t, Tensor))


def fingerprint(batch: Batch) -> tuple[float, ...]:
    """The batch's size and the float64 sum of each tensor: two reads of a data source that
    yield the same batches give the same fingerprints (shuffling or random augmentation do not)."""
    leaves, _ = tree_flatten((batch.inputs, batch.target))
    return (float(batch.size), *(float(t.sum(dtype=torch.float64)) for t in leaves
                                 if isinstance(t, Tensor) and not t.is_complex()))


def same_fingerprint(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Equal up to float64 summation order (thread counts may change how a sum is split)."""
    return len(a) == len(b) and all(x == y or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
                                    or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def call_model(model: nn.Module, state: Mapping[str, Tensor], inputs: Any) -> Any:
    """``model(inputs)`` with its parameters and buffers replaced by ``state`` (functional).

    ``inputs`` as in :class:`Batch`: a tensor, a tuple of positional inputs or a dict of
    keyword inputs.
    """
    if isinstance(inputs, Mapping):
        return functional_call(model, dict(state), args=(), kwargs=dict(inputs))
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    return functional_call(model, dict(state), args)


def read_batches(source: Iterable[Any], split: str, max_batches: int | None,
                 max_examples: int | None) -> Iterator[Batch]:
    """The batches of one read of ``source`` as :class:`Batch`es (where they are, not moved),
    capped by ``max_batches`` / ``max_examples`` (the last batch cut to fit)."""
    seen = 0
    try:
        iterator: Iterator[Any] = iter(source)
    except TypeError:
        raise LandscapeError(f"data split '{split}' is a {type(source).__name__}, not an iterable "
                             "of batches") from None
    for index, raw in enumerate(iterator):
        if max_batches is not None and index >= max_batches:
            break
        batch = make_batch(raw, f"data split '{split}', batch {index}")
        if max_examples is not None and seen + batch.size > max_examples:
            batch = batch.slice(0, max_examples - seen)
        yield batch
        seen += batch.size
        if max_examples is not None and seen >= max_examples:
            break


def concat_batches(pieces: list[Batch]) -> Batch:
    """One batch holding the examples of ``pieces`` in order (tensors concatenated along dim
    0; other input leaves taken from the first piece). Raises when the inputs are ragged."""
    if len(pieces) == 1:
        return pieces[0]
    inputs = tree_map(lambda *ts: torch.cat(ts) if isinstance(ts[0], Tensor) else ts[0],
                      *[p.inputs for p in pieces])
    return Batch(inputs, torch.cat([p.target for p in pieces]), sum(p.size for p in pieces))


def merged(batches: Iterable[Batch], max_examples: int) -> Iterator[Batch]:
    """Consecutive batches concatenated up to ``max_examples`` each, in one pass (a group
    that does not concatenate, e.g. ragged sequence lengths, comes out as it was)."""
    group: list[Batch] = []
    for batch in batches:
        if group and sum(b.size for b in group) + batch.size > max_examples:
            yield from _concat_or_keep(group)
            group = []
        group.append(batch)
    yield from _concat_or_keep(group)


def _concat_or_keep(group: list[Batch]) -> list[Batch]:
    try:
        return [concat_batches(group)] if group else []
    except (RuntimeError, TypeError, ValueError):  # ragged inputs (e.g. sequence lengths)
        return group


def merge_batches(batches: Iterable[Batch], max_examples: int) -> list[Batch]:
    """:func:`merged` as a list."""
    return list(merged(batches, max_examples))
