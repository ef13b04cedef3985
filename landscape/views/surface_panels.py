"""The surface panels: 2-D surfaces (contour, heatmap, 3-D), 1-D curves, and the table of
surface details, with the reader they share (:func:`read_surface`: old files, 'xy' grids,
missing splits or metrics). Registered when ``landscape.views`` imports this module."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from ..surfaces.refine import refinement
from . import plots
from .panels import FigureItem, Item, Skipped, TableItem, child_groups, group_at, panel, try_part
from .reading import Unreadable, attribute_rows, attrs_of, dataset, float_array, format_value, text_list


@dataclass
class SurfaceData:
    """A surface group read into arrays (grids in 'ij' order), with what was skipped."""

    name: str
    axes: list[np.ndarray]
    axis_names: list[str]
    directions: list[str]
    values: dict[str, dict[str, np.ndarray]]  # split -> metric -> grid ('ij')
    done: np.ndarray
    markers: list[plots.Marker]
    attrs: dict
    skipped: list[Skipped]


def read_surface(name: str, group: h5py.Group) -> SurfaceData:
    """A surface group as arrays; older files without ``axes``/``indexing`` attributes are
    read with the defaults (alpha, beta; 'ij'), an 'xy' grid is transposed to 'ij'."""
    attrs = attrs_of(group)
    ndim = int(attrs.get("ndim", 0) or 0)
    axis_names = text_list(attrs.get("axes", ""))
    if not axis_names:
        axis_names = [a for a in ("alpha", "beta") if a in group][: ndim or 2]
    if not axis_names:
        raise Unreadable("no 'axes' attribute and no alpha/beta datasets")
    ndim = ndim or len(axis_names)
    if ndim not in (1, 2) or len(axis_names) != ndim:
        raise Unreadable(f"ndim={ndim} with axes {axis_names}; expected 1 or 2 axes")
    axes = [float_array(group, a, ndim=1) for a in axis_names]
    shape = tuple(len(a) for a in axes)
    indexing = str(attrs.get("indexing", "ij") or "ij")
    splits = text_list(attrs.get("splits", "")) or [k for k, v in group.items() if isinstance(v, h5py.Group)]
    metrics_attr = text_list(attrs.get("metrics", ""))
    values: dict[str, dict[str, np.ndarray]] = {}
    skipped: list[Skipped] = []
    for split in splits:
        split_group = group_at(group, split)
        if split_group is None:
            skipped.append(Skipped(f"surfaces/{name}/{split}", "split listed in attributes but missing"))
            continue
        metrics = metrics_attr or list(split_group.keys())
        for metric in metrics:
            try:
                grid = float_array(split_group, metric)
                if indexing == "xy" and ndim == 2:
                    grid = grid.T
                if grid.shape != shape:
                    raise Unreadable(f"shape {grid.shape} does not match the axes {shape}")
            except Unreadable as exc:
                skipped.append(Skipped(f"surfaces/{name}/{split}/{metric}", str(exc)))
                continue
            values.setdefault(split, {})[metric] = grid
    if not values:
        first = f" ({skipped[0].what.rsplit('/', 2)[-2]}/{skipped[0].what.rsplit('/', 1)[-1]}: {skipped[0].reason})" \
            if skipped else ""
        raise Unreadable(f"no readable metric grid{first}")
    done = (dataset(group, "done").astype(bool) if "done" in group
            else np.isfinite(next(iter(next(iter(values.values())).values()))))
    if indexing == "xy" and ndim == 2 and done.shape != shape:
        done = done.T
    return SurfaceData(name, axes, axis_names, text_list(attrs.get("directions", "")), values, done,
                       surface_markers(attrs, ndim, axes), attrs, skipped)


def surface_markers(attrs: dict, ndim: int, axes: Sequence[np.ndarray]) -> list[plots.Marker]:
    """Checkpoints on the surface: the ``markers`` attribute, else θ* at the origin when
    the origin lies inside the grid."""
    raw = attrs.get("markers")
    if raw is not None and not (isinstance(raw, str) and raw == ""):
        coords = np.asarray(raw if not isinstance(raw, str) else json.loads(raw), dtype=np.float64)
        coords = coords.reshape(-1, ndim) if coords.size % ndim == 0 else coords.reshape(-1, 1)[:, :ndim]
        labels = text_list(attrs.get("marker_labels", ""))
        return [plots.Marker(labels[k] if k < len(labels) else f"checkpoint {k}", tuple(float(c) for c in row))
                for k, row in enumerate(coords)]
    if all(a.min() <= 0.0 <= a.max() for a in axes):
        return [plots.Marker("θ*", (0.0,) * ndim)]
    return []


def _axis_title(surface: SurfaceData, k: int) -> str:
    axis = surface.axis_names[k]
    direction = surface.directions[k] if k < len(surface.directions) else ""
    return f"{axis} ({direction})" if direction else axis


def _ordered_metrics(metrics: Sequence[str]) -> list[str]:
    return sorted(metrics, key=lambda m: (m != "loss", m))


def grid_variants(surface: SurfaceData) -> list[plots.GridVariant]:
    """Train loss first, then its log10, then every other split/metric (and their logs)."""
    variants = []
    for split in sorted(surface.values, key=lambda s: (s != "train", s)):
        for metric in _ordered_metrics(list(surface.values[split])):
            grid = surface.values[split][metric]
            variants.append(plots.GridVariant(f"{split} {metric}", grid, metric))
            log = plots.log10_grid(grid) if metric != "accuracy" else None
            if log is not None:
                variants.append(plots.GridVariant(f"{split} {metric} (log10)", log, f"log10 {metric}"))
    return variants


def complete_part(surface: SurfaceData) -> tuple[SurfaceData, str]:
    """What to draw of a surface, and a caption: all of it when every point is done; else its
    finest complete level (surfaces are evaluated coarse to fine, :mod:`landscape.surfaces.refine`),
    a coarser subgrid with no point missing, rather than a grid full of holes."""
    done, total = int(surface.done.sum()), int(surface.done.size)
    if done == total:
        return surface, ""
    found = refinement(surface.axes, surface.done, [m.coords for m in surface.markers])
    if found.level < 0:
        return surface, f"{done} of {total} grid points computed, no complete level yet; the rest are blank"
    cut = np.ix_(*found.indices)
    part = dataclasses.replace(
        surface, axes=[axis[i] for axis, i in zip(surface.axes, found.indices)], done=surface.done[cut],
        values={split: {metric: grid[cut] for metric, grid in grids.items()}
                for split, grids in surface.values.items()})
    return part, (f"{done} of {total} grid points computed; shown: the finest complete level, "
                  f"{found.describe()}")


def _incomplete_note(group: h5py.Group) -> str:
    complete = group.attrs.get("complete", True)
    return "" if bool(np.asarray(complete).item()) else "incomplete: the scan was interrupted here"


def _surface_2d_items(name: str, group: h5py.Group) -> list[Item]:
    surface, done_caption = complete_part(read_surface(name, group))
    if len(surface.axes) != 2:
        return []
    axes = plots.GridAxes(surface.axes[0], surface.axes[1], _axis_title(surface, 0), _axis_title(surface, 1),
                          surface.markers)
    variants = grid_variants(surface)
    caption = " ".join(c for c in (done_caption, _incomplete_note(group)) if c)
    key = f"surfaces/{name}"
    return [
        *surface.skipped,
        FigureItem(f"{key}/contour", f"{name}: contours", plots.contour_figure(f"{name}: contours", axes, variants),
                   caption),
        FigureItem(f"{key}/heatmap", f"{name}: heatmap", plots.heatmap_figure(f"{name}: heatmap", axes, variants),
                   caption),
        FigureItem(f"{key}/surface3d", f"{name}: 3-D surface",
                   plots.surface3d_figure(f"{name}: 3-D surface", axes, variants), caption),
    ]


def _surface_ndim(group: h5py.Group) -> int:
    ndim = group.attrs.get("ndim")
    if ndim is not None:
        return int(np.asarray(ndim).item())
    return len(text_list(group.attrs.get("axes", ""))) or (2 if "beta" in group else 1)


@panel(order=10, name="2-D surfaces", reads=("surfaces",))
def surfaces_2d_panel(h5: h5py.File) -> list[Item] | None:
    """Contour, heatmap and 3-D figures of every 2-D surface."""
    groups = [(n, g) for n, g in child_groups(h5, "surfaces") if _surface_ndim(g) != 1]
    if not groups:
        return None
    items: list[Item] = []
    for name, group in groups:
        items += try_part(f"surfaces/{name}", functools.partial(_surface_2d_items, name, group))
    return items


@panel(order=20, name="1-D curves", reads=("surfaces",))
def curves_1d_panel(h5: h5py.File) -> list[Item] | None:
    """One figure per metric overlaying every 1-D surface (train and test) with its checkpoints."""
    # lines between compared checkpoints (they have a barrier) are drawn by the lines panel
    groups = [(n, g) for n, g in child_groups(h5, "surfaces") if _surface_ndim(g) == 1 and f"barriers/{n}" not in h5]
    if not groups:
        return None
    items: list[Item] = []
    surfaces: list[SurfaceData] = []
    captions: list[str] = []
    for name, group in groups:
        def read(name: str = name, group: h5py.Group = group) -> list[Item]:
            surface, caption = complete_part(read_surface(name, group))
            surfaces.append(surface)
            if caption:
                captions.append(f"{name}: {caption}")
            return list(surface.skipped)
        items += try_part(f"surfaces/{name}", read)
    if not surfaces:
        return items
    metrics = _ordered_metrics(sorted({m for s in surfaces for split in s.values.values() for m in split}))
    several = len(surfaces) > 1
    for metric in metrics:
        curves, markers = [], []
        for k, surface in enumerate(surfaces):
            color = plots.COLORS[k % len(plots.COLORS)]
            for split in sorted(surface.values, key=lambda s: (s != "train", s)):
                if metric not in surface.values[split]:
                    continue
                label = f"{surface.name} {split}" if several else split
                curves.append(plots.Curve(label, surface.axes[0], surface.values[split][metric], color,
                                          plots.SPLIT_DASH.get(split, "dashdot"), surface.name))
            markers += surface.markers
        if not curves:
            continue
        x_titles = {_axis_title(s, 0) for s in surfaces}
        x_title = x_titles.pop() if len(x_titles) == 1 else "coordinate along each surface's direction"
        title = f"1-D {metric}"
        items.append(FigureItem(f"curves/{metric}", title,
                                plots.curves_figure(title, x_title, metric, curves, markers), "; ".join(captions)))
    return items


@panel(order=920, name="Surface details", reads=("surfaces",))
def surfaces_table_panel(h5: h5py.File) -> list[Item] | None:
    """One table row per surface: grid, points done, directions, splits, metrics, settings."""
    groups = child_groups(h5, "surfaces")
    if not groups:
        return None
    rows = []
    for name, group in groups:
        attrs = attrs_of(group)
        shape = "×".join(str(group[a].shape[0]) for a in text_list(attrs.get("axes", "")) if a in group)
        done = group.get("done")
        fraction = f"{int(np.asarray(done[()]).sum())}/{done.size}" if isinstance(done, h5py.Dataset) else "?"
        extra = attribute_rows(attrs, skip=("ndim", "axes", "directions", "splits", "metrics", "complete",
                                            "indexing"))
        rows.append([name, format_value(attrs.get("ndim", "")), shape, fraction,
                     format_value(attrs.get("directions", "")), format_value(attrs.get("splits", "")),
                     format_value(attrs.get("metrics", "")),
                     "; ".join(f"{k}={v}" for k, v in extra)])
    return [TableItem("surfaces/table", "Surfaces",
                      ["name", "ndim", "grid", "points done", "directions", "splits", "metrics", "other settings"],
                      rows)]

