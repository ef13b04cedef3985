"""The basin panel: for every 2-D surface, the area of θ*'s basin against the loss threshold
and the persistence diagram of the surface's minima (:mod:`landscape.sharpness.basins`).
Registered when ``landscape.views`` imports this module."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import h5py
import numpy as np
import plotly.graph_objects as go

from ..errors import LandscapeError
from . import plots
from .panels import FigureItem, Item, child_groups, panel, try_part
from .reading import Unreadable
from .surface_panels import SurfaceData, complete_part, read_surface

if TYPE_CHECKING:
    from ..sharpness.basins import BasinStatistics

LEVELS = 100


@panel(order=15, name="Basins", reads=("surfaces",))
def basins_panel(h5: h5py.File) -> list[Item] | None:
    """Basin area of θ* per loss threshold and the persistence diagram of every 2-D surface."""
    surfaces = []
    for name, group in child_groups(h5, "surfaces"):
        try:
            surface, _ = complete_part(read_surface(name, group))  # the 2-D panel's caption says which part
        except (KeyError, ValueError, TypeError, IndexError, OSError):
            continue  # the 2-D surfaces panel lists what it could not read; said once is enough
        if len(surface.axes) == 2:
            surfaces.append(surface)
    if not surfaces:
        return None
    items: list[Item] = []
    for surface in surfaces:
        items += try_part(f"surfaces/{surface.name} (basins)", functools.partial(_basin_items, surface))
    return items


def _basin_items(surface: SurfaceData) -> list[Item]:
    # imported here: numba loads (and compiles, without a writable cache) only when a report
    # holds a 2-D surface, and a broken numba install costs this panel, not every command
    from ..sharpness.basins import basin_statistics

    splits = [s for s in sorted(surface.values, key=lambda s: (s != "train", s)) if "loss" in surface.values[s]]
    if not splits:
        return []  # basins are of a loss: accuracy-only surfaces have none
    split, grid = splits[0], surface.values[splits[0]]["loss"]
    alpha, beta = surface.axes
    try:
        stats = basin_statistics(grid, alpha, beta)  # thresholds over all finite values
        if stats.origin_value > stats.thresholds[0]:  # below L(θ*) its basin is empty: start there
            stats = basin_statistics(grid, alpha, beta, np.linspace(stats.origin_value, stats.thresholds[-1], LEVELS))
    except LandscapeError as exc:  # e.g. no finite loss yet: listed as skipped
        raise Unreadable(str(exc)) from exc
    key, name = f"basins/{surface.name}", surface.name
    return [FigureItem(f"{key}/area", f"{name}: basin area vs loss threshold", _area_figure(stats, split, name),
                       _area_caption(stats, split, surface)),
            FigureItem(f"{key}/persistence", f"{name}: persistence of the minima",
                       _persistence_figure(stats, split, name, alpha, beta), _persistence_caption(stats, split))]


def _area_figure(stats: BasinStatistics, split: str, name: str) -> go.Figure:
    finite_origin = bool(np.isfinite(stats.origin_value))
    x = stats.thresholds - stats.origin_value if finite_origin else stats.thresholds
    hover = [f"{c} grid cells" for c in stats.cells]
    barrier = None
    if finite_origin and stats.origin_basin >= 0 and np.isfinite(stats.death[stats.origin_basin]):
        barrier = float(stats.death[stats.origin_basin] - stats.origin_value)
    x_title = f"{split} loss − L(θ*)" if finite_origin else f"{split} loss threshold"
    return plots.basin_area_figure(f"{name}: basin area vs loss threshold", x, stats.area, hover, x_title,
                                   "area of θ*'s basin (α·β units)", barrier)


def _area_caption(stats: BasinStatistics, split: str, surface: SurfaceData) -> str:
    i, j = stats.origin
    where = f"θ* is the grid point nearest α = β = 0, at ({surface.axes[0][i]:.3g}, {surface.axes[1][j]:.3g})"
    if not np.isfinite(stats.origin_value):
        return f"{where}, and its {split} loss is not finite there: θ* has no basin"
    text = (f"area of the connected part of {{{split} loss ≤ L(θ*) + Δ}} that holds θ*, {where}; "
            f"L(θ*) = {stats.origin_value:.6g}, one grid cell = {stats.cell_area:.3g} α·β units, "
            "cells joined through shared edges, not-computed or diverged cells are walls")
    if stats.origin_basin >= 0 and np.isfinite(stats.death[stats.origin_basin]):
        lowest = stats.birth[stats.origin_basin]
        text += (f"; θ*'s basin (lowest point {lowest:.6g}) joins a deeper basin at Δ = "
                 f"{stats.death[stats.origin_basin] - stats.origin_value:.4g}")
    return text


def _persistence_figure(stats: BasinStatistics, split: str, name: str, alpha: np.ndarray,
                        beta: np.ndarray) -> go.Figure:
    hover = []
    for (i, j), birth, barrier in zip(stats.birth_cell, stats.birth, stats.persistence):
        at = f"minimum {birth:.6g} at α = {alpha[i]:.3g}, β = {beta[j]:.3g}"
        hover.append(f"{at}, barrier {barrier:.4g}" if np.isfinite(barrier) else f"{at}, never merges")
    return plots.persistence_figure(f"{name}: persistence of the minima", stats.birth, stats.death, hover,
                                    stats.origin_basin, f"{split} loss")


def _persistence_caption(stats: BasinStatistics, split: str) -> str:
    never = int(np.isinf(stats.death).sum())
    text = (f"{len(stats.birth)} local minima of the {split} loss on the grid; each point is a basin: the loss at "
            "its minimum (birth) and at the saddle over which it merges into a deeper basin (death, elder "
            "rule), so its height above the diagonal is the barrier; ▲ never merges (the global minimum")
    text += f", and {never - 1} more cut off by not-computed or diverged cells)" if never > 1 else ")"
    return text + ("; ☆ θ*'s basin" if stats.origin_basin >= 0 else "")
