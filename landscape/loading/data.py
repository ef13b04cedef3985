"""Data splits from ``.pt``/``.npz`` files of arrays or from data factories."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from .checkpoints import DATA_FILE_SUFFIXES
from .specs import resolve_callable


def load_data(spec: str, *, batch_size: int = 256, kwargs: Mapping[str, Any] | None = None,
              ) -> dict[str, Iterable[Any]]:
    """Data splits from a ``.pt``/``.npz`` file of arrays or from a data factory spec.

    Files hold ``x``/``y`` (one train split) or ``x_train``/``y_train`` and
    ``x_test``/``y_test``. A factory returns an iterable of batches, a ``(train, test)``
    pair or a ``{"train": ..., "test": ...}`` mapping.
    """
    path = Path(spec)
    if path.suffix in DATA_FILE_SUFFIXES and ":" not in spec:
        return _data_file(path, batch_size)
    factory = resolve_callable(spec, "data")
    kwargs = dict(kwargs or {})
    if "batch_size" in kwargs and not _accepts(factory, "batch_size"):
        del kwargs["batch_size"]
    try:
        produced = factory(**kwargs)
    except Exception as exc:
        raise LandscapeError(f"data factory '{spec}' failed ({type(exc).__name__}: {exc})") from None
    return as_splits(produced, spec)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def as_splits(produced: Any, where: str) -> dict[str, Iterable[Any]]:
    """What a data factory returned as ``{split: batches}``: a train/test mapping, a
    ``(train, test)`` pair or one iterable of batches (train); anything else is refused."""
    if isinstance(produced, Mapping) and produced and all(k in ("train", "test") for k in produced):
        return dict(produced)
    if isinstance(produced, tuple) and len(produced) == 2 and not isinstance(produced[0], Tensor):
        return {"train": produced[0], "test": produced[1]}
    if isinstance(produced, Iterable):
        return {"train": produced}
    raise LandscapeError(f"data '{where}' produced a {type(produced).__name__}, not batches")


def _data_file(path: Path, batch_size: int) -> dict[str, Iterable[Any]]:
    if not path.is_file():
        raise LandscapeError(f"data file '{path}' not found")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                raw = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LandscapeError(f"could not read data file '{path}' ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, Mapping):
        raise LandscapeError(f"data file '{path}' must hold a dict of arrays (x, y or x_train, ...)")
    pairs = {"train": ("x", "y")} if "x" in raw else {s: (f"x_{s}", f"y_{s}") for s in ("train", "test")
                                                       if f"x_{s}" in raw}
    if not pairs or any(y not in raw for _, y in pairs.values()):
        raise LandscapeError(f"data file '{path}' must hold x and y, or x_train/y_train "
                             f"(and x_test/y_test); it holds {sorted(raw)}")
    if batch_size <= 0:
        raise LandscapeError(f"batch size must be positive, got {batch_size}")
    splits: dict[str, Iterable[Any]] = {}
    for split, (xk, yk) in pairs.items():
        x, y = torch.as_tensor(raw[xk]), torch.as_tensor(raw[yk])
        if len(x) != len(y):
            raise LandscapeError(f"data file '{path}': {xk} has {len(x)} rows but {yk} has {len(y)}")
        splits[split] = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]
    return splits
