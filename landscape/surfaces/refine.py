"""Coarse-to-fine order of a surface grid: an interrupted or time-boxed run holds a complete
coarser grid, which the report draws instead of a grid full of holes.

The rule, per axis of ``n`` points (indices ``0 .. n-1``):

- level 0: both ends, and the points where the origin (coefficient 0) or a marker (e.g. a
  checkpoint) lies on the axis (within 10⁻⁶ of a grid step);
- level ``l ≥ 1``: the points nearest ``k·(n-1)/2^l`` for ``k = 0 .. 2^l`` (a half rounded
  towards the nearer end; the exact middle towards index 0), until ``2^l ≥ n-1``, where
  every point is in. Each level holds the previous one, so the points of levels ≤ l form a
  nearly even subgrid (exactly even when ``2^l`` divides ``n-1``); the middle point of an
  odd axis (θ* on the default symmetric grid) is in level 1 at the latest.

A grid point's level is the larger of its axes' levels, renumbered so no level is empty; the
points of levels ≤ l are then a product subgrid. The order is by level, then 'ij' (flat index)
within a level: a fixed rule, so a rerun or a resume evaluates the same points the same way.
Only numpy: the views use it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ANCHOR_TOLERANCE = 1e-6  # of a grid step: a marker this close to a grid point is on the grid


def dyadic_indices(n: int, level: int) -> np.ndarray:
    """The indices nearest ``k·(n-1)/2^level``, ``k = 0 .. 2^level`` (rounded towards the nearer end)."""
    intervals, parts = n - 1, 2 ** level
    k = np.arange(parts + 1, dtype=np.int64)
    first_half = 2 * k <= parts
    # round-half-down of k·(n-1)/parts in integers, mirrored for the second half
    nearest_low = (2 * k * intervals + parts - 1) // (2 * parts)
    nearest_high = intervals - (2 * (parts - k) * intervals + parts - 1) // (2 * parts)
    return np.unique(np.where(first_half, nearest_low, nearest_high))


def axis_levels(axis: np.ndarray, anchors: Sequence[float] = ()) -> np.ndarray:
    """The level of each point of ``axis`` (see the module): 0 for the ends and the points at
    ``anchors`` (values on the axis; those off the grid are ignored)."""
    axis = np.asarray(axis, dtype=np.float64)
    n = len(axis)
    levels = np.full(n, -1, dtype=np.int64)
    levels[[0, n - 1]] = 0
    step = float(np.min(np.abs(np.diff(axis)))) if n > 1 else 0.0
    for value in anchors:
        nearest = int(np.argmin(np.abs(axis - value)))
        if abs(axis[nearest] - value) <= ANCHOR_TOLERANCE * step:
            levels[nearest] = 0
    level = 0
    while (levels < 0).any():
        level += 1
        picked = dyadic_indices(n, level)
        levels[picked[levels[picked] < 0]] = level
    return levels


def grid_levels(axes: Sequence[np.ndarray], markers: Sequence[Sequence[float]] = ()) -> np.ndarray:
    """The level of every grid point ('ij' shape): the origin and ``markers`` (points in
    surface coordinates) anchor level 0; levels renumbered 0, 1, ... with none empty."""
    anchors = [[0.0, *(float(m[k]) for m in markers if len(m) > k)] for k in range(len(axes))]
    per_axis = [axis_levels(axis, a) for axis, a in zip(axes, anchors)]
    mesh = np.meshgrid(*per_axis, indexing="ij")
    point = np.maximum.reduce(mesh) if len(mesh) > 1 else mesh[0]
    _, dense = np.unique(point, return_inverse=True)
    return dense.reshape(point.shape)


def coarse_to_fine(axes: Sequence[np.ndarray], markers: Sequence[Sequence[float]] = ()) -> np.ndarray:
    """Every flat grid index ('ij'), level by level, ascending within a level."""
    return np.argsort(grid_levels(axes, markers).reshape(-1), kind="stable")


def finest_complete_level(levels: np.ndarray, done: np.ndarray) -> int:
    """The largest ``l`` whose points, with all coarser ones, are done; -1 when level 0 is not."""
    missing = levels[~np.asarray(done, dtype=bool)]
    return int(missing.min()) - 1 if missing.size else int(levels.max())


def level_subgrid(levels: np.ndarray, level: int) -> list[np.ndarray]:
    """Per axis, the indices of the product subgrid of the points of levels ≤ ``level``."""
    inside = levels <= level
    return [np.flatnonzero(inside.any(axis=tuple(a for a in range(levels.ndim) if a != k)))
            for k in range(levels.ndim)]


@dataclass(frozen=True)
class Refinement:
    """How far a (partly) done grid is refined: the finest complete ``level`` (-1: none) of
    ``num_levels``, and per axis the ``indices`` of its subgrid (empty when ``level`` is -1)."""

    level: int
    num_levels: int
    indices: list[np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        """Points of the subgrid per axis."""
        return tuple(len(i) for i in self.indices)

    def describe(self) -> str:
        """``'level 3 of 6 (17×17 points)'``, or ``'none'``."""
        if self.level < 0:
            return "none"
        return f"level {self.level} of {self.num_levels - 1} ({'×'.join(map(str, self.shape))} points)"


def refinement(axes: Sequence[np.ndarray], done: np.ndarray,
               markers: Sequence[Sequence[float]] = ()) -> Refinement:
    """The finest complete level of a grid whose points ``done`` ('ij') are stored."""
    levels = grid_levels(axes, markers)
    level = finest_complete_level(levels, done)
    indices = level_subgrid(levels, level) if level >= 0 else [np.array([], dtype=np.int64) for _ in axes]
    return Refinement(level, int(levels.max()) + 1, indices)
