"""Directions in parameter space, always keyed by parameter name.

Random directions follow Li et al. (2018): d ~ N(0, I) per tensor, then each filter
(slice along dim 0) is rescaled to the norm of the matching filter of θ*; 1-D tensors
(biases, norm-layer affine parameters) are zeroed unless ``include_1d``. Each tensor's
random numbers come from a generator seeded by (seed, direction index, parameter name),
so a direction does not change when unrelated parameters are added or renamed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ..errors import LandscapeError

Normalization = Literal["filter", "layer", "none"]
Direction = dict[str, Tensor]


@dataclass
class NamedDirection:
    """A direction plus how it was made (stored as HDF5 attributes)."""

    name: str
    vectors: Direction
    attrs: dict[str, object] = field(default_factory=dict)


def _seed_for(seed: int, index: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def gaussian_direction(params: Mapping[str, Tensor], seed: int, index: int = 0) -> Direction:
    """Raw N(0, I) noise shaped like ``params`` (drawn on the CPU, so reproducible anywhere)."""
    out = {}
    for name, p in params.items():
        gen = torch.Generator().manual_seed(_seed_for(seed, index, name))
        out[name] = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
    return out


def normalize(direction: Mapping[str, Tensor], params: Mapping[str, Tensor],
              normalization: Normalization = "filter", include_1d: bool = False) -> Direction:
    """Scale ``direction`` to ``params`` per filter, per layer (tensor) or not at all.

    1-D tensors (and scalars) are zeroed unless ``include_1d``; when included they are
    scaled as one filter (the whole tensor), never replaced by the weight itself.
    """
    if normalization not in ("filter", "layer", "none"):
        raise LandscapeError(f"normalization must be filter, layer or none, got {normalization!r}")
    out = {}
    for name, d in direction.items():
        w = params[name]
        if w.ndim <= 1 and not include_1d:
            out[name] = torch.zeros_like(d)
        elif normalization == "none":
            out[name] = d.clone()
        elif normalization == "layer" or w.ndim <= 1:
            out[name] = d * (w.norm() / (d.norm() + 1e-12))
        else:
            d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
            scale = w_rows.norm(dim=1) / (d_rows.norm(dim=1) + 1e-12)
            out[name] = (d_rows * scale[:, None]).reshape(d.shape)
    return out


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """⟨a, b⟩ over all parameters, in float64."""
    return torch.as_tensor(sum((a[n].double() * b[n].double()).sum() for n in a), dtype=torch.float64)


def orthogonalize(d: Mapping[str, Tensor], against: Mapping[str, Tensor]) -> Direction:
    """Remove from ``d`` its component along ``against`` (whole-vector Gram–Schmidt),
    keeping ``d``'s norm so the axes stay comparable."""
    norm_before = dot(d, d).sqrt()
    coef = dot(d, against) / dot(against, against)
    out = {n: d[n] - (coef * against[n].double()).to(d[n].dtype) for n in d}
    norm_after = dot(out, out).sqrt()
    if norm_after == 0:
        raise LandscapeError("cannot orthogonalize: the two directions are parallel")
    return {n: v * (norm_before / norm_after).to(v.dtype) for n, v in out.items()}


def random_directions(params: Mapping[str, Tensor], count: int, *, seed: int = 0,
                      normalization: Normalization = "filter", include_1d: bool = False,
                      orthogonal: bool = False) -> list[NamedDirection]:
    """``count`` normalized Gaussian directions; ``orthogonal`` makes the second one
    orthogonal to the first after normalization (as Li et al. recommend, if at all)."""
    dirs = [normalize(gaussian_direction(params, seed, i), params, normalization, include_1d)
            for i in range(count)]
    if orthogonal and count >= 2:
        dirs[1] = orthogonalize(dirs[1], dirs[0])
    attrs = {"kind": "random", "distribution": "gaussian", "normalization": normalization,
             "include_1d": include_1d, "seed": seed, "orthogonalized": bool(orthogonal and count >= 2)}
    return [NamedDirection(f"d{i}", d, {**attrs, "index": i}) for i, d in enumerate(dirs)]


def _check_same(a: Mapping[str, Tensor], b: Mapping[str, Tensor], what: str) -> None:
    if set(a) != set(b):
        raise LandscapeError(f"{what}: parameter names differ ({_diff(a, b)})")
    bad = [n for n in a if a[n].shape != b[n].shape]
    if bad:
        raise LandscapeError(f"{what}: shapes differ for {', '.join(bad[:3])}")


def _diff(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    return f"only in first: {only_a[:3]}, only in second: {only_b[:3]}"


def interpolation_direction(theta_a: Mapping[str, Tensor], theta_b: Mapping[str, Tensor]) -> NamedDirection:
    """θ_b − θ_a: α = 0 is checkpoint A, α = 1 is checkpoint B (1-D tensors included)."""
    _check_same(theta_a, theta_b, "interpolation")
    return NamedDirection("d0", {n: theta_b[n] - theta_a[n] for n in theta_a},
                          {"kind": "interpolation", "normalization": "none"})


def plane_directions(theta_a: Mapping[str, Tensor], theta_b: Mapping[str, Tensor],
                     theta_c: Mapping[str, Tensor]) -> tuple[list[NamedDirection], list[tuple[float, float]]]:
    """The plane through three checkpoints with A at (0, 0) and B at (1, 0).

    d0 = B − A; d1 = the part of C − A orthogonal to d0, so C sits at (⟨C−A, d0⟩/‖d0‖², 1).
    Returns the two directions and the three checkpoints' coordinates.
    """
    _check_same(theta_a, theta_b, "plane")
    _check_same(theta_a, theta_c, "plane")
    d0 = {n: theta_b[n] - theta_a[n] for n in theta_a}
    dc = {n: theta_c[n] - theta_a[n] for n in theta_a}
    c_x = float(dot(dc, d0) / dot(d0, d0))
    d1 = {n: dc[n] - c_x * d0[n] for n in theta_a}
    if float(dot(d1, d1)) <= 1e-24 * float(dot(dc, dc) + 1e-300):
        raise LandscapeError("plane: the three checkpoints are collinear")
    attrs: dict[str, object] = {"kind": "plane", "normalization": "none"}
    return ([NamedDirection("d0", d0, attrs), NamedDirection("d1", d1, attrs)],
            [(0.0, 0.0), (1.0, 0.0), (c_x, 1.0)])
