"""Built-in models and data for the bundled examples (scikit-learn's digits, shipped as arrays).

Named in checkpoint metadata and on the command line as ``digits_mlp``, ``digits_cnn``,
``digits`` and ``digits_images`` (short for ``landscape.zoo:<name>``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

Split = list[tuple[Tensor, Tensor]]


def _digits_arrays(images: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The fixed split of ``landscape/datasets/digits.npz``: scikit-learn's 1,797 digits (pixel
    values 0-16 as uint8) split by ``train_test_split(test_size=360, random_state=0,
    stratify=y)``, stored so that loading them needs no scikit-learn."""
    with np.load(Path(__file__).parent / "datasets" / "digits.npz") as arrays:
        parts = [torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    x_tr, y_tr, x_te, y_te = parts
    shape = (-1, 1, 8, 8) if images else (-1, 64)
    return x_tr.to(torch.float32).div(16.0).reshape(shape), y_tr, x_te.to(torch.float32).div(16.0).reshape(shape), y_te


def _batched(x: Tensor, y: Tensor, batch_size: int) -> Split:
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def digits(batch_size: int = 512) -> dict[str, Split]:
    """Digits as flat 64-vectors in [0, 1]: 1437 train and 360 test examples (fixed split)."""
    x_tr, y_tr, x_te, y_te = _digits_arrays(images=False)
    return {"train": _batched(x_tr, y_tr, batch_size), "test": _batched(x_te, y_te, batch_size)}


def digits_images(batch_size: int = 512) -> dict[str, Split]:
    """Digits as 1×8×8 images, same split as :func:`digits`."""
    x_tr, y_tr, x_te, y_te = _digits_arrays(images=True)
    return {"train": _batched(x_tr, y_tr, batch_size), "test": _batched(x_te, y_te, batch_size)}


def digits_mlp(hidden: int = 32) -> nn.Module:
    """64 → hidden → hidden → 10 with tanh."""
    return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 10))


def digits_cnn(channels: int = 8) -> nn.Module:
    """Two 3×3 conv + BatchNorm + ReLU blocks, global average pool, linear head."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * c, 10),
    )


BUILTINS = {
    "digits": digits,
    "digits_images": digits_images,
    "digits_mlp": digits_mlp,
    "digits_cnn": digits_cnn,
}
