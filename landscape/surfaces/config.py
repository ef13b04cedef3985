"""What a surface scan around a checkpoint computes: :class:`SurfaceConfig` and its grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from ..errors import LandscapeError
from ..options import option
from ..problem import Problem
from .directions import NamedDirection, Normalization, random_directions

DirectionKind = Literal["random", "hessian"]

DEFAULT_POINTS = 51
DEFAULT_RANGE = (-1.0, 1.0)


def grid_axes(points: Sequence[int] | None, span: Sequence[float] | None, ndim: int,
              default_span: Sequence[float] = DEFAULT_RANGE) -> list[np.ndarray]:
    """The axes of an ``ndim`` grid: ``points`` per axis (one value for every axis, or one per
    axis; default 51) over ``span`` (MIN MAX for every axis, or one pair per axis)."""
    points = list(points or [DEFAULT_POINTS])
    if len(points) not in (1, ndim):
        raise LandscapeError(f"--points takes 1 or {ndim} values here, got {len(points)}: {points}")
    if any(n < 2 for n in points):
        raise LandscapeError(f"--points needs at least 2 points per axis, got {points}")
    span = list(span or default_span)
    if len(span) not in (2, 2 * ndim):
        raise LandscapeError(f"--range takes MIN MAX (or {ndim} pairs) here, got {span}")
    spans = [span[0:2]] * ndim if len(span) == 2 else [span[2 * k:2 * k + 2] for k in range(ndim)]
    counts = points * ndim if len(points) == 1 else points
    for lo, hi in spans:
        if not lo < hi:
            raise LandscapeError(f"--range needs MIN < MAX, got {lo} {hi}")
    return [np.linspace(lo, hi, n) for (lo, hi), n in zip(spans, counts)]


@dataclass
class SurfaceConfig:
    """Surfaces around θ*: which (``dims``: 1 = a curve along d0, 2 = a grid over d0, d1),
    on what grid, over which splits, along which directions.

    ``points``/``range`` follow ``--points``/``--range``: one value (pair) for every axis or
    one per axis; ``splits=None`` means every split of the problem. ``directions="random"``
    draws seeded Gaussian directions scaled by ``normalization`` (``include_1d``: perturb
    biases and norm-layer parameters too; ``orthogonal``: orthogonalize d1 against d0);
    ``"hessian"`` takes the top Hessian eigenvectors (unit norm).
    """

    dims: tuple[int, ...] = (1, 2)
    points: tuple[int, ...] = (DEFAULT_POINTS,)
    range: tuple[float, ...] = DEFAULT_RANGE
    splits: list[str] | None = None
    directions: DirectionKind = option("random", "random Gaussian directions, or the top Hessian eigenvectors "
                                       "(unit norm, so the axes are in parameter-space distance)")
    normalization: Normalization = option("filter", "scale random directions per filter (Li et al.), per layer "
                                          "or not at all")
    include_1d: bool = option(False, "perturb 1-D tensors (biases, norm-layer affine) too; by default they are "
                              "held at θ*")
    orthogonal: bool = option(False, "orthogonalize the second direction")
    seed: int = 0

    @property
    def ndim(self) -> int:
        """The number of directions needed: the largest surface's dimension."""
        return max(self.dims)

    def check(self) -> None:
        """Refuse values the types allow but the analysis does not (one line each)."""
        if not self.dims or any(d not in (1, 2) for d in self.dims):
            raise LandscapeError(f"surfaces are 1-D or 2-D, got dims {list(self.dims)}")
        if self.directions not in get_args(DirectionKind):
            raise LandscapeError(f"directions must be random or hessian, got {self.directions!r}")
        if self.normalization not in get_args(Normalization):
            raise LandscapeError(f"normalization must be filter, layer or none, got {self.normalization!r}")
        if self.seed < 0:
            raise LandscapeError(f"--seed must be ≥ 0, got {self.seed}")
        self.axes()

    def axes(self) -> list[np.ndarray]:
        """The grid axes of the largest surface (a 1-D surface uses the first)."""
        return grid_axes(self.points, self.range, self.ndim)

    def split_names(self, problem: Problem) -> list[str]:
        """The splits to evaluate; an unknown one is refused with the problem's own error."""
        if self.splits is None:
            return list(problem.split_names)
        for split in self.splits:
            problem.batches(split)
        return list(self.splits)

    def make_directions(self, problem: Problem) -> list[NamedDirection]:
        """Directions ``d0`` (and ``d1``) for this config (Hessian ones cost Lanczos passes)."""
        if self.directions == "hessian":
            from ..curvature import hessian_directions  # curvature imports this package

            return hessian_directions(problem, self.ndim, seed=self.seed)
        return random_directions(problem.params, self.ndim, seed=self.seed, normalization=self.normalization,
                                 include_1d=self.include_1d, orthogonal=self.orthogonal)

    def settings(self) -> dict[str, Any]:
        """The root attributes that record (and on resume must match) these options."""
        return {"seed": self.seed, "directions": self.directions,
                "normalization": self.normalization if self.directions == "random" else "none (unit norm)",
                "include_1d": self.include_1d, "orthogonal": self.orthogonal}
