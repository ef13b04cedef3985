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
from .grid_plots import GridAxes, GridVariant, contour_figure, heatmap_figure, surface3d_figure
from .panels import FigureItem, Item, Skipped, TableItem, child_groups, group_at, panel, try_part
from .reading import Unreadable, attribute_rows, attrs_of, dataset, float_array, format_value, text_list
from .style import DEFAULT_STYLE, SurfaceStyle


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


def grid_variants(surface: SurfaceData) -> list[GridVariant]:
    """Train loss first, then its log10, then every other split/metric (and their logs); the
    hover of each shows every metric of its split at the point."""
    where = surface_origin(surface.attrs)
    variants = []
    for split in sorted(surface.values, key=lambda s: (s != "train", s)):
        hover = tuple((f"{split} {m}", surface.values[split][m]) for m in _ordered_metrics(list(surface.values[split])))
        for metric in _ordered_metrics(list(surface.values[split])):
            grid = surface.values[split][metric]
            name = f"{split} {metric}"
            variants.append(GridVariant(name, grid, name, metric, False, hover, f"{name.capitalize()} around {where}"))
            log = plots.log10_grid(grid) if metric != "accuracy" else None
            if log is not None:
                variants.append(GridVariant(f"{name} (log10)", log, f"log10 {name}", metric, True, hover,
                                            f"{name.capitalize()} around {where}, log10 scale"))
    return variants


def surface_origin(attrs: dict) -> str:
    """Where a surface is centred, for titles: θ* for a scan's surfaces."""
    origin = str(attrs.get("origin", "checkpoint") or "checkpoint")
    return "θ*" if origin == "checkpoint" else origin


def directions_caption(h5: h5py.File, names: Sequence[str]) -> str:
    """'random directions d0, d1, filter-normalized' from the directions' attributes."""
    kinds, norms = [], []
    for name in names:
        attrs = attrs_of(h5[f"directions/{name}"]) if group_at(h5, f"directions/{name}") is not None else {}
        kinds.append(str(attrs.get("kind", "") or ""))
        norms.append(str(attrs.get("normalization", "") or ""))
    kind = kinds[0] if len(set(kinds)) == 1 and kinds[0] else "/".join(k or "?" for k in kinds)
    norm = norms[0] if len(set(norms)) == 1 else "/".join(n or "?" for n in norms)
    text = f"{kind + ' ' if kind else ''}direction{'s' if len(names) > 1 else ''} {', '.join(names)}"
    if norm and norm != "none":
        text += f", {norm}-normalized"
    elif norm == "none":
        text += ", not normalized"
    return text


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


def _symbols(surface: SurfaceData) -> tuple[str, str]:
    greek = {"alpha": "α", "beta": "β"}
    return greek.get(surface.axis_names[0], surface.axis_names[0]), greek.get(surface.axis_names[1],
                                                                               surface.axis_names[1])


def _surface_2d_items(name: str, group: h5py.Group, style: SurfaceStyle) -> list[Item]:
    surface, done_caption = complete_part(read_surface(name, group))
    if len(surface.axes) != 2:
        return []
    subtitle = f"surfaces/{name}: {directions_caption(group.file, surface.directions)}" \
        if surface.directions else f"surfaces/{name}"
    axes = GridAxes(surface.axes[0], surface.axes[1], _axis_title(surface, 0), _axis_title(surface, 1),
                    surface.markers, *_symbols(surface), subtitle)
    variants = grid_variants(surface)
    caption = " ".join(c for c in (done_caption, _incomplete_note(group)) if c)
    key = f"surfaces/{name}"
    return [
        *surface.skipped,
        FigureItem(f"{key}/contour", f"{name}: contours", contour_figure(name, axes, variants, style), caption),
        FigureItem(f"{key}/heatmap", f"{name}: heatmap", heatmap_figure(name, axes, variants, style), caption),
        FigureItem(f"{key}/surface3d", f"{name}: 3-D surface", surface3d_figure(name, axes, variants, style),
                   caption),
    ]


def _surface_ndim(group: h5py.Group) -> int:
    ndim = group.attrs.get("ndim")
    if ndim is not None:
        return int(np.asarray(ndim).item())
    return len(text_list(group.attrs.get("axes", ""))) or (2 if "beta" in group else 1)


@panel(order=10, name="2-D surfaces", reads=("surfaces",), styled=True)
def surfaces_2d_panel(h5: h5py.File, style: SurfaceStyle = DEFAULT_STYLE) -> list[Item] | None:
    """Contour, heatmap and 3-D figures of every 2-D surface."""
    groups = [(n, g) for n, g in child_groups(h5, "surfaces") if _surface_ndim(g) != 1]
    if not groups:
        return None
    items: list[Item] = []
    for name, group in groups:
        items += try_part(f"surfaces/{name}", functools.partial(_surface_2d_items, name, group, style))
    return items


@panel(order=20, name="1-D curves", reads=("surfaces",))
def curves_1d_panel(h5: h5py.File) -> list[Item] | None:
    """One figure per 1-D surface: loss (left axis) and accuracy (right axis), train solid and
    test dashed, with its checkpoints; metrics beyond those two get a figure each."""
    # lines between compared checkpoints (they have a barrier) are drawn by the lines panel
    groups = [(n, g) for n, g in child_groups(h5, "surfaces") if _surface_ndim(g) == 1 and f"barriers/{n}" not in h5]
    if not groups:
        return None
    items: list[Item] = []
    for name, group in groups:
        items += try_part(f"surfaces/{name}", functools.partial(_curve_items, h5, name, group))
    return items


def _curve_items(h5: h5py.File, name: str, group: h5py.Group) -> list[Item]:
    surface, caption = complete_part(read_surface(name, group))
    if len(surface.axes) != 1:
        return list(surface.skipped)
    splits = sorted(surface.values, key=lambda s: (s != "train", s))
    metrics = _ordered_metrics(sorted({m for split in surface.values.values() for m in split}))
    left = metrics[0]
    right = "accuracy" if "accuracy" in metrics and left != "accuracy" else ""
    subtitle = f"surfaces/{name}: {directions_caption(h5, surface.directions)}" if surface.directions \
        else f"surfaces/{name}"
    x_title = _axis_title(surface, 0)
    items: list[Item] = list(surface.skipped)
    for shown in [[left, right] if right else [left]] + [[m] for m in metrics if m not in (left, right)]:
        curves = [plots.Curve(f"{split} {metric}", surface.axes[0], surface.values[split][metric],
                              plots.COLORS[k], plots.SPLIT_DASH.get(split, "dashdot"), split,
                              "y2" if k == 1 else "y")
                  for k, metric in enumerate(m for m in shown if m) for split in splits
                  if metric in surface.values[split]]
        title = " and ".join(m for m in shown if m).capitalize() + f" along {name}"
        key = f"curves/{name}" if shown[0] == left else f"curves/{name}/{shown[0]}"
        figure = plots.curves_figure(title, x_title, shown[0], curves, surface.markers,
                                     y2_title=shown[1] if len(shown) > 1 else "", subtitle=subtitle)
        items.append(FigureItem(key, title, figure, caption))
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

