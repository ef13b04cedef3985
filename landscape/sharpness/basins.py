"""Basins of a 2-D loss surface: how wide θ*'s sublevel set is at each loss level, and the
0-dimensional persistence of the surface (its minima and the barriers at which basins merge).

Both come from one pass over the grid cells in ascending order of value (a stable radix sort,
:func:`ascending_cells`) with a union–find (path halving, union by size), compiled with
numba: a cell joins the components of its already-added neighbours. When a cell joins several
components, the one whose minimum is lowest (the elder) lives on and every other one dies at
this cell's value (the elder rule): its minimum is a local minimum of the surface and the cell
is the saddle over which its basin spills into a deeper one. A vectorized numpy cannot express
this sequential merge; the alternative, labelling the sublevel set once per threshold
(``scipy.ndimage.label``), redoes the whole grid for every level (``benchmarks/bench_basins.py``
compares them).

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
_NEIGHBOURS = {4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
               8: ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))}


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


def ascending_cells(values: np.ndarray) -> np.ndarray:
    """Indices (int32) of the finite entries of ``values`` (read as one flat float64 array, fewer
    than 2³¹ entries) in ascending order of value, ties in index order: what
    ``np.argsort(kind="stable")`` gives for the finite entries (−0.0 counts as equal to 0.0).
    A stable least-significant-digit radix sort of the values' bits compiled with numba, 11
    bits at a time, skipping the digits all values share (mostly the sign and exponent of a
    loss grid): on a 201×201 grid a fraction of numpy's stable argsort (benchmarks/RESULTS.md)."""
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if flat.size >= 2**31:
        raise LandscapeError(f"cannot sort {flat.size} values: at most 2³¹ − 1 grid cells; use a smaller grid")
    return _radix_order(flat)


@_compiled
def _radix_order(flat: np.ndarray) -> np.ndarray:
    # six digits of 11 bits, the last one 9: the arithmetic shift copies the top bit into the
    # 2 bits above it, which its mask drops
    masks = np.array([2047, 2047, 2047, 2047, 2047, 511], np.int64)
    histogram = np.zeros((6, 2048), np.int32)
    keys = np.empty(flat.size, np.int64)
    order = np.empty(flat.size, np.int32)
    bits = (flat + 0.0).view(np.int64)  # + 0.0 turns -0.0 into 0.0: equal values, one key
    count = 0
    for i in range(flat.size):
        if np.isfinite(flat[i]):
            b = bits[i]
            # negative floats' bits order backwards: flip all but the sign; then flip the sign so
            # the digits, read as unsigned, order like the values
            key = (b ^ ((b >> 63) & 0x7FFFFFFFFFFFFFFF)) ^ np.int64(-0x8000000000000000)
            for digit in range(6):
                histogram[digit, (key >> (11 * digit)) & masks[digit]] += 1
            keys[count] = key
            order[count] = i
            count += 1
    keys, order = keys[:count], order[:count]
    if count == 0:
        return order
    spare_keys = np.empty(count, np.int64)
    spare_order = np.empty(count, np.int32)
    start = np.empty(2048, np.int64)
    for digit in range(6):
        mask = masks[digit]
        if histogram[digit, (keys[0] >> (11 * digit)) & mask] == count:
            continue  # every value has this digit: the pass would not move anything
        total = 0
        for value in range(2048):
            start[value] = total
            total += histogram[digit, value]
        for k in range(count):
            value = (keys[k] >> (11 * digit)) & mask
            spare_keys[start[value]] = keys[k]
            spare_order[start[value]] = order[k]
            start[value] += 1
        keys, spare_keys = spare_keys, keys
        order, spare_order = spare_order, order
    return order


@_compiled
def _sweep(n: int, order: np.ndarray, ascending: np.ndarray, origin: int, offsets: np.ndarray, marks: np.ndarray,
           origin_mark: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Add the cells ``order`` (indices into a flat grid of ``n`` cells framed by NaN, in
    ascending order of value, their values ``ascending``) one by one; ``offsets`` lead from a
    cell to its neighbours (the frame is never added, so no bounds are checked).

    Returns the size of the origin's component after each step in ``marks`` (ascending; 0
    before the origin is added or for a mark < 0), the step at which the minimum of the
    origin's component after step ``origin_mark`` was added (-1 if none), and the elder-rule
    pairs as one array over the steps: at the step of each minimum whose basin has nonzero
    persistence, the step of the cell that merged it into an older one (-1 for components
    alive at the end); -2 elsewhere. Indices are int32 (a grid has far fewer than 2³¹
    cells): half the memory to allocate and touch, which is much of the time on a 201×201 grid.
    """
    steps = order.size
    parent = np.full(n, -1, np.int32)  # -1: not added (yet)
    size = np.zeros(n, np.int32)
    first = np.zeros(n, np.int32)  # at a root: the step its component's minimum was added (its age)
    death_of = np.full(steps, -2, np.int32)
    cells = np.zeros(marks.size, np.int64)
    origin_minimum = -1
    mark = 0
    while mark < marks.size and marks[mark] < 0:
        mark += 1
    origin_root = -1
    for step in range(steps):
        cell = order[step]
        parent[cell] = cell
        size[cell] = 1
        first[cell] = step
        root = cell
        if cell == origin:
            origin_root = cell
        for k in range(offsets.size):
            other = cell + offsets[k]
            if parent[other] < 0:
                continue
            while parent[other] != other:
                parent[other] = parent[parent[other]]  # path halving
                other = parent[other]
            if other == root:
                continue
            elder, younger = min(first[root], first[other]), max(first[root], first[other])
            # the new cell's own one-cell component is no basin, nor one born at this very level
            if ascending[younger] < ascending[step]:
                death_of[younger] = step
            big, small = (root, other) if size[root] >= size[other] else (other, root)
            parent[small] = big
            size[big] += size[small]
            first[big] = elder
            if small == origin_root:
                origin_root = big
            root = big
        while mark < marks.size and marks[mark] == step:
            cells[mark] = size[origin_root] if origin_root >= 0 else 0
            mark += 1
        if step == origin_mark:
            origin_minimum = first[origin_root]
    for cell in order:
        if parent[cell] == cell:
            death_of[first[cell]] = -1
    return cells, origin_minimum, death_of


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
    by birth (ties by cell index), so the global minimum comes first; pairs of zero
    persistence (ties on a plateau) are left out. ``origin_basin`` is the pair whose minimum
    is the lowest cell of θ*'s component at Z[origin] (so ``death[origin_basin]`` is the level
    at which θ*'s basin joins a deeper one), -1 when Z[origin] is not finite.
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
    origin = (int(np.abs(alpha).argmin()), int(np.abs(beta).argmin())) if origin is None else \
        (int(origin[0]), int(origin[1]))
    if not (0 <= origin[0] < n_rows and 0 <= origin[1] < n_cols):
        raise LandscapeError(f"basin origin {origin} lies outside the {n_rows}×{n_cols} grid; "
                             "pass (i, j) with 0 ≤ i < n_alpha and 0 ≤ j < n_beta")
    width = n_cols + 2  # the grid framed by one NaN cell on every side: the frame is a wall
    framed = np.full((n_rows + 2, width), np.nan)
    framed[1:-1, 1:-1] = grid
    flat = framed.reshape(-1)
    order = ascending_cells(flat)
    ascending = flat[order]
    levels = _checked_thresholds(thresholds, ascending)
    offsets = np.array([dr * width + dc for dr, dc in _NEIGHBOURS[connectivity]], dtype=np.int64)
    marks = np.searchsorted(ascending, levels, side="right") - 1  # last step with value ≤ level
    origin_value = float(grid[origin])
    origin_mark = int(np.searchsorted(ascending, origin_value, side="right")) - 1 if np.isfinite(origin_value) else -1
    cells, origin_minimum, death_of = _sweep(flat.size, order, ascending, (origin[0] + 1) * width + origin[1] + 1,
                                             offsets, marks, origin_mark)
    births = np.flatnonzero(death_of != -2)  # steps in order: by value, ties by cell index
    deaths = death_of[births].astype(np.int64)
    birth = ascending[births]
    death = np.where(deaths >= 0, ascending[np.maximum(deaths, 0)], np.inf)
    origin_basin = int(np.flatnonzero(births == origin_minimum)[0]) if origin_minimum >= 0 else -1
    birth_cell = np.stack(np.divmod(order[births], width), axis=1) - 1
    saddles = np.stack(np.divmod(order[np.maximum(deaths, 0)], width), axis=1) - 1
    return BasinStatistics(
        thresholds=levels, cells=cells, area=cells * cell_area, cell_area=cell_area, origin=origin,
        origin_value=origin_value, connectivity=connectivity, birth=birth, death=death,
        birth_cell=birth_cell, death_cell=np.where(deaths[:, None] >= 0, saddles, -1),
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
