"""Batches: what a data source yields, split into model inputs and target, cached on a device.

A :class:`Batch` is what every pass over data iterates over; :func:`call_model` is the one
place that knows how its ``inputs`` are passed to the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils._pytree import tree_map

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


def move(t: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """A tensor on ``device``, floating-point ones cast to ``dtype``; anything else unchanged."""
    if not isinstance(t, Tensor):
        return t
    return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)


def call_model(model: nn.Module, state: Mapping[str, Tensor], inputs: Any) -> Any:
    """``model(inputs)`` with its parameters and buffers replaced by ``state`` (functional).

    ``inputs`` as in :class:`Batch`: a tensor, a tuple of positional inputs or a dict of
    keyword inputs.
    """
    if isinstance(inputs, Mapping):
        return functional_call(model, dict(state), args=(), kwargs=dict(inputs))
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    return functional_call(model, dict(state), args)


def collect_split(source: Iterable[Any], split: str, device: torch.device, dtype: torch.dtype,
                  max_batches: int | None, max_examples: int | None) -> list[Batch]:
    """Every batch of one data split as :class:`Batch`es on ``device`` (capped by
    ``max_batches`` / ``max_examples``, the last batch cut to fit)."""
    batches: list[Batch] = []
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
        batches.append(Batch(tree_map(lambda t: move(t, device, dtype), batch.inputs),
                             move(batch.target, device, dtype), batch.size))
        seen += batch.size
        if max_examples is not None and seen >= max_examples:
            break
    if not batches:
        raise LandscapeError(f"data split '{split}' is empty: it yielded no batches")
    return batches


def concat_batches(pieces: list[Batch]) -> Batch:
    """One batch holding the examples of ``pieces`` in order (tensors concatenated along dim
    0; other input leaves taken from the first piece). Raises when the inputs are ragged."""
    if len(pieces) == 1:
        return pieces[0]
    inputs = tree_map(lambda *ts: torch.cat(ts) if isinstance(ts[0], Tensor) else ts[0],
                      *[p.inputs for p in pieces])
    return Batch(inputs, torch.cat([p.target for p in pieces]), sum(p.size for p in pieces))


def merge_batches(batches: list[Batch], max_examples: int) -> list[Batch]:
    """Concatenate consecutive batches up to ``max_examples`` each (all or nothing: the
    batches as they are when they do not concatenate, e.g. ragged sequence lengths)."""
    groups: list[list[Batch]] = [[]]
    for batch in batches:
        if groups[-1] and sum(b.size for b in groups[-1]) + batch.size > max_examples:
            groups.append([])
        groups[-1].append(batch)
    try:
        return [concat_batches(group) for group in groups]
    except (RuntimeError, TypeError, ValueError):  # ragged inputs (e.g. sequence lengths)
        return batches
