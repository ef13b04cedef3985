"""Basins of a 2-D loss surface: how wide θ*'s sublevel set is at each loss level, and the
0-dimensional persistence of the surface (its minima and the barriers at which basins merge).

Both come from one pass over the grid cells in ascending order of value with a union–find
(path halving, union by size), compiled with numba: a cell joins the components of its
already-added neighbours. When a cell joins several components, the one whose minimum is
lowest (the elder) lives on and every other one dies at this cell's value (the elder rule):
its minimum is a local minimum of the surface and the cell is the saddle over which its
basin spills into a deeper one. A vectorized numpy cannot express this sequential merge;
the alternative, labelling the sublevel set once per threshold (``scipy.ndimage.label``),
redoes the whole grid for every level (``benchmarks/bench_basins.py`` compares them).

Cells whose value is NaN (not computed) or ±inf (diverged) are never added: they act as
walls, so a basin never extends through them and a grid cut in parts by them has one
never-dying component per part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numba
import numpy as np

from ..errors import LandscapeError
from ..surfaces.results import SurfaceResult

DEFAULT_LEVELS = 100
_NEIGHBOURS = {4: np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64),
               8: np.array([[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]], dtype=np.int64)}


def _compiled(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled by numba, its machine code cached on disk where numba finds a writable
    place (``__pycache__`` beside this file, else ``NUMBA_CACHE_DIR`` or the user's cache
    folder). numba looks for that place when the function is decorated and raises
    RuntimeError when there is none (a read-only install under a read-only home): then the
    function is compiled once per process instead of failing the import."""
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError:
        return numba.njit(cache=False)(fn)


@_compiled
def _root(parent: np.ndarray, cell: int) -> int:
    while parent[cell] != cell:
        parent[cell] = parent[parent[cell]]  # path halving
        cell = parent[cell]
    return cell


@_compiled
def _sweep(flat: np.ndarray, order: np.ndarray, n_cols: int, origin: int, neighbours: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add the cells ``order`` (flat indices, ascending values) one by one.

    Returns, per step, the size of the origin's component and the flat index of its minimum
    (0 and -1 before the origin is added), and the elder-rule pairs (minimum cell, cell
    that merged it into an older component; -1 for components alive at the end).
    """
    n = flat.size
    steps = order.size
    parent = np.full(n, -1, np.int64)  # -1: not added yet
    size = np.zeros(n, np.int64)
    elder = np.zeros(n, np.int64)  # at a root: the first-added cell of its component (its minimum)
    position = np.zeros(n, np.int64)  # step at which each cell was added
    origin_cells = np.zeros(steps, np.int64)
    origin_minimum = np.full(steps, -1, np.int64)
    births = np.empty(steps, np.int64)
    deaths = np.empty(steps, np.int64)
    pairs = 0
    n_rows = n // n_cols
    for step in range(steps):
        cell = order[step]
        row, col = cell // n_cols, cell % n_cols
        parent[cell] = cell
        size[cell] = 1
        elder[cell] = cell
        position[cell] = step
        root = cell
        for k in range(neighbours.shape[0]):
            r, c = row + neighbours[k, 0], col + neighbours[k, 1]
            if r < 0 or r >= n_rows or c < 0 or c >= n_cols or parent[r * n_cols + c] < 0:
                continue
            other = _root(parent, r * n_cols + c)
            if other == root:
                continue
            old, young = (other, root) if position[elder[other]] < position[elder[root]] else (root, other)
            if elder[young] != cell:  # the new cell's own one-cell component is no basin
                births[pairs] = elder[young]
                deaths[pairs] = cell
                pairs += 1
            survivor_elder = elder[old]
            big, small = (root, other) if size[root] >= size[other] else (other, root)
            parent[small] = big
            size[big] += size[small]
            elder[big] = survivor_elder
            root = big
        if parent[origin] >= 0:
            top = _root(parent, origin)
            origin_cells[step] = size[top]
            origin_minimum[step] = elder[top]
    for cell in range(n):
        if parent[cell] == cell:
            births[pairs] = elder[cell]
            deaths[pairs] = -1
            pairs += 1
    return origin_cells, origin_minimum, births[:pairs], deaths[:pairs]


@dataclass(frozen=True)
class BasinStatistics:
    """θ*'s sublevel-set component at each threshold, and the persistence pairs of the surface.

    ``cells[t]`` counts the grid cells of the connected component of {Z ≤ thresholds[t]}
    that holds the ``origin`` cell (0 while Z[origin] > thresholds[t] or Z[origin] is not
    finite); ``area`` is that count times ``cell_area``. Pair ``k`` is a local minimum of
    value ``birth[k]`` at ``birth_cell[k]`` whose basin merges into an older (deeper) one at
    ``death[k]``, the value of the saddle cell ``death_cell[k]``; ``death`` is +inf and
    ``death_cell`` is (-1, -1) for a component that never merges: the global minimum, and the
    minimum of each further part when NaN/inf walls cut the grid in parts. Pairs are ordered
    by persistence (``death − birth``), largest first, so the global minimum comes first;
    pairs of zero persistence (ties on a plateau) are left out. ``origin_basin`` is the pair
    whose minimum is the lowest cell of θ*'s component at Z[origin] (so ``death[origin_basin]``
    is the level at which θ*'s basin joins a deeper one), -1 when Z[origin] is not finite.
    """

    thresholds: np.ndarray  # [T] ascending loss levels
    cells: np.ndarray  # [T] int
    area: np.ndarray  # [T] cells × cell_area
    cell_area: float
    origin: tuple[int, int]
    origin_value: float
    connectivity: int
    birth: np.ndarray  # [K]
    death: np.ndarray  # [K]
    birth_cell: np.ndarray  # [K, 2] int
    death_cell: np.ndarray  # [K, 2] int
    origin_basin: int

    @property
    def persistence(self) -> np.ndarray:
        """``death − birth`` of every pair (+inf for components that never merge)."""
        return self.death - self.birth


def basin_statistics(values: np.ndarray, alpha: np.ndarray, beta: np.ndarray, thresholds: np.ndarray | None = None,
                     *, origin: tuple[int, int] | None = None, connectivity: int = 4) -> BasinStatistics:
    """Basin area of θ* per loss threshold and the persistence pairs of the grid ``values``
    (``values[i, j]`` at ``(alpha[i], beta[j])``, as surfaces are stored).

    ``thresholds`` default to 100 levels spanning the finite values (given ones are sorted).
    ``origin`` is the (i, j) cell taken as θ*, by default the cell nearest α = β = 0.
    ``connectivity`` 4 joins cells sharing an edge (``scipy.ndimage.label``'s default), 8 also
    diagonal ones. NaN and ±inf cells are never added: they are walls (see the module). The
    cell area is Δα·Δβ with Δ the mean spacing of each axis (the grids landscape writes are
    evenly spaced).
    """
    grid, cell_area = _checked_grid(values, alpha, beta)
    if connectivity not in _NEIGHBOURS:
        raise LandscapeError(f"basin connectivity must be 4 or 8, got {connectivity}")
    n_rows, n_cols = grid.shape
    if origin is None:
        origin = (int(np.abs(alpha).argmin()), int(np.abs(beta).argmin()))
    if not (0 <= origin[0] < n_rows and 0 <= origin[1] < n_cols):
        raise LandscapeError(f"basin origin {origin} lies outside the {n_rows}×{n_cols} grid; "
                             "pass (i, j) with 0 ≤ i < n_alpha and 0 ≤ j < n_beta")
    flat = grid.reshape(-1)
    finite = np.isfinite(flat)
    order = np.argsort(flat, kind="stable")
    order = np.ascontiguousarray(order[finite[order]], dtype=np.int64)
    ascending = flat[order]
    levels = _checked_thresholds(thresholds, ascending)
    origin_index = origin[0] * n_cols + origin[1]
    origin_cells, origin_minimum, births, deaths = _sweep(flat, order, n_cols, origin_index,
                                                           _NEIGHBOURS[connectivity])
    added = np.searchsorted(ascending, levels, side="right")  # cells with value ≤ level
    cells = np.where(added > 0, origin_cells[np.maximum(added - 1, 0)], 0)
    birth = flat[births]
    death = np.where(deaths >= 0, flat[np.maximum(deaths, 0)], np.inf)
    keep = death > birth
    births, deaths, birth, death = births[keep], deaths[keep], birth[keep], death[keep]
    ranked = np.lexsort((births, birth, -(death - birth)))
    births, deaths, birth, death = births[ranked], deaths[ranked], birth[ranked], death[ranked]
    origin_value = float(flat[origin_index])
    origin_basin = -1
    if np.isfinite(origin_value):
        lowest = origin_minimum[np.searchsorted(ascending, origin_value, side="right") - 1]
        origin_basin = int(np.flatnonzero(births == lowest)[0])
    return BasinStatistics(
        thresholds=levels, cells=cells, area=cells * cell_area, cell_area=cell_area, origin=origin,
        origin_value=origin_value, connectivity=connectivity, birth=birth, death=death,
        birth_cell=np.stack(np.divmod(births, n_cols), axis=1),
        death_cell=np.where(deaths[:, None] >= 0, np.stack(np.divmod(deaths, n_cols), axis=1), -1),
        origin_basin=origin_basin)


def basins_of_surface(group: h5py.Group, split: str = "train", metric: str = "loss",
                      thresholds: np.ndarray | None = None) -> BasinStatistics:
    """:func:`basin_statistics` of the 2-D surface stored in ``group`` (a ``/surfaces/<name>``
    group of a results file), on its ``split``/``metric`` grid. θ* is the cell nearest
    α = β = 0, also for surfaces whose ``origin`` is another point (an interpolation plane
    starts at its first checkpoint, which is then the cell nearest (0, 0))."""
    surface = SurfaceResult.from_group(group)
    if len(surface.axes) != 2:
        raise LandscapeError(f"basins need a 2-D surface; {group.name} has {len(surface.axes)} axis; "
                             "pick a 2-D surface group")
    grid = surface.values.get(split, {}).get(metric)
    if grid is None:
        available = [f"{s}/{m}" for s, grids in surface.values.items() for m in grids]
        raise LandscapeError(f"surface {group.name} has no {split}/{metric} grid; it holds {available}")
    return basin_statistics(grid, surface.axes[0], surface.axes[1], thresholds)


def _checked_grid(values: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, float]:
    grid = np.ascontiguousarray(values, dtype=np.float64)
    if grid.ndim != 2:
        raise LandscapeError(f"basin statistics need a 2-D grid of values, got shape {grid.shape}; "
                             "pass one [n_alpha, n_beta] grid")
    if grid.shape[0] < 2 or grid.shape[1] < 2:
        raise LandscapeError(f"basin statistics need at least a 2×2 grid, got {grid.shape[0]}×{grid.shape[1]}")
    spacing = []
    for name, axis, length in (("alpha", alpha, grid.shape[0]), ("beta", beta, grid.shape[1])):
        axis = np.asarray(axis, dtype=np.float64)
        if axis.shape != (length,):
            raise LandscapeError(f"basin axis {name} has shape {axis.shape} but the grid has {length} "
                                 f"{'rows' if name == 'alpha' else 'columns'}; pass one value per grid line")
        steps = np.diff(axis)
        if not (np.isfinite(axis).all() and ((steps > 0).all() or (steps < 0).all())):
            raise LandscapeError(f"basin axis {name} must be finite and strictly monotonic")
        spacing.append(abs(float(axis[-1] - axis[0])) / (length - 1))
    if not np.isfinite(grid).any():
        raise LandscapeError("basin statistics need at least one finite value; the grid is all NaN/inf "
                             "(not computed yet, or diverged everywhere)")
    return grid, spacing[0] * spacing[1]


def _checked_thresholds(thresholds: np.ndarray | None, ascending: np.ndarray) -> np.ndarray:
    if thresholds is None:
        return np.linspace(ascending[0], ascending[-1], DEFAULT_LEVELS)
    levels = np.sort(np.asarray(thresholds, dtype=np.float64).reshape(-1))
    if levels.size == 0 or not np.isfinite(levels).all():
        raise LandscapeError("basin thresholds must be a non-empty list of finite loss levels")
    return levels
