"""Panels: one small function per kind of result, registered in one place.

A panel is ``fn(h5: h5py.File) -> list[Item] | None`` decorated with ``@panel(order, name,
reads=(...))``: it returns named figures and tables for what it finds, ``None`` when the
file holds nothing for it, and :class:`Skipped` items for parts it could not read.
``reads`` lists the HDF5 paths it covers, so groups that no panel covers are still shown
(as raw attribute tables) instead of silently dropped. A panel that raises is reported as
skipped with the reason; it never breaks the report.

To add a view for a new analysis, write one function in this module (or any module
imported by ``landscape.views``) and decorate it::

    @panel(order=45, name="Sharpness", reads=("sharpness",))
    def sharpness_panel(h5):
        if "sharpness" not in h5:
            return None
        return [TableItem("sharpness/table", "Sharpness", ["measure", "value"], rows)]
"""

from __future__ import annotations

import functools
import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import h5py
import numpy as np
import plotly.graph_objects as go

from ..store import SCHEMA_NAME, SCHEMA_VERSION
from . import plots
from .reading import (
    Unreadable,
    attribute_rows,
    attrs_of,
    dataset,
    describe_dataset,
    float_array,
    format_value,
    text_list,
)
from .text import plot_safe_figure


@dataclass(frozen=True)
class FigureItem:
    """A named figure of a panel, with an optional caption."""

    key: str  # stable id, also the export file name: "surfaces/2d/contour"
    title: str
    figure: go.Figure
    caption: str = ""


@dataclass(frozen=True)
class TableItem:
    """A named table of a panel: header and rows of text, with an optional caption."""

    key: str
    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Skipped:
    """A part of the file a panel could not show, and why."""

    what: str  # HDF5 path or part that was not shown
    reason: str


Item = FigureItem | TableItem | Skipped
PanelFn = Callable[[h5py.File], "list[Item] | None"]


@dataclass(frozen=True)
class Panel:
    """A registered panel: its place in the report, name, builder and the HDF5 paths it reads."""

    order: float
    name: str
    build: PanelFn
    reads: tuple[str, ...] = ()


@dataclass
class PanelResult:
    """What one panel produced for one file."""

    panel: Panel
    items: list[Item] = field(default_factory=list)
    applies: bool = True  # False: the file holds nothing for this panel

    @property
    def shown(self) -> list[FigureItem | TableItem]:
        """The figures and tables, in order."""
        return [i for i in self.items if not isinstance(i, Skipped)]

    @property
    def skipped(self) -> list[Skipped]:
        """The parts that could not be shown."""
        return [i for i in self.items if isinstance(i, Skipped)]


_REGISTRY: dict[str, Panel] = {}


def panel(order: float, name: str, reads: Sequence[str] = ()) -> Callable[[PanelFn], PanelFn]:
    """Register ``fn`` as the panel ``name``; panels render in increasing ``order``."""
    def register(fn: PanelFn) -> PanelFn:
        if name in _REGISTRY and _REGISTRY[name].build is not fn:
            raise ValueError(f"a panel named {name!r} is already registered")
        _REGISTRY[name] = Panel(order, name, fn, tuple(reads))
        return fn
    return register


def registered_panels() -> list[Panel]:
    """Every registered panel, in report order."""
    return sorted(_REGISTRY.values(), key=lambda p: (p.order, p.name))


def run_panels(h5: h5py.File, panels: Sequence[Panel] | None = None) -> list[PanelResult]:
    """Every panel on ``h5``; failures become :class:`Skipped` items, figures are escaped."""
    results = []
    for p in panels if panels is not None else registered_panels():
        try:
            items = p.build(h5)
            safe = None if items is None else [
                replace(i, figure=plot_safe_figure(i.figure)) if isinstance(i, FigureItem) else i for i in items]
        except Exception as exc:  # a broken group must not break the report
            where = traceback.extract_tb(exc.__traceback__)[-1]
            reason = f"{type(exc).__name__}: {exc} (in {where.name}, line {where.lineno})"
            results.append(PanelResult(p, [Skipped(p.name, reason)]))
            continue
        results.append(PanelResult(p, [], applies=False) if safe is None else PanelResult(p, safe))
    return results


# ============================================================================ helpers
def _try(what: str, build: Callable[[], list[Item]]) -> list[Item]:
    """Run one part of a panel; an unreadable or malformed part becomes a Skipped item."""
    try:
        return build()
    except Unreadable as exc:
        return [Skipped(what, str(exc))]
    except (KeyError, ValueError, TypeError, IndexError, OSError) as exc:
        return [Skipped(what, f"{type(exc).__name__}: {exc}")]


def _group(h5: h5py.File, path: str) -> h5py.Group | None:
    node = h5.get(path)
    return node if isinstance(node, h5py.Group) else None


def _children(h5: h5py.File, path: str) -> list[tuple[str, h5py.Group]]:
    group = _group(h5, path)
    if group is None:
        return []
    return [(name, node) for name, node in group.items() if isinstance(node, h5py.Group)]


def _incomplete_note(group: h5py.Group) -> str:
    complete = group.attrs.get("complete", True)
    return "" if bool(np.asarray(complete).item()) else "incomplete: the scan was interrupted here"


# ============================================================================ settings
@panel(order=900, name="Run settings", reads=())
def settings_panel(h5: h5py.File) -> list[Item]:
    """The root attributes (run settings and provenance) as one table."""
    attrs = attrs_of(h5)
    items: list[Item] = [TableItem("settings", "Run settings (root attributes)", ["setting", "value"],
                                   attribute_rows(attrs))]
    return items


@panel(order=910, name="Directions", reads=("directions",))
def directions_panel(h5: h5py.File) -> list[Item] | None:
    """One table row per stored direction: its attributes and how many values it holds."""
    groups = _children(h5, "directions")
    if not groups:
        return None
    keys = sorted({k for _, g in groups for k in g.attrs.keys()} - {"complete"})
    rows = []
    for name, group in groups:
        attrs = attrs_of(group)
        tensors = [k for k, v in group.items() if isinstance(v, h5py.Dataset)]
        size = sum(int(group[k].size) for k in tensors)
        rows.append([name, *(format_value(attrs.get(k, "")) for k in keys), f"{len(tensors)} tensors, {size} values"])
    return [TableItem("directions", "Directions", ["name", *keys, "stored"], rows)]


# ============================================================================ surfaces
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
        split_group = _group(group, split)
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


def _done_caption(surface: SurfaceData) -> str:
    done, total = int(surface.done.sum()), int(surface.done.size)
    return "" if done == total else f"{done} of {total} grid points computed; the rest are blank"


def _surface_2d_items(name: str, group: h5py.Group) -> list[Item]:
    surface = read_surface(name, group)
    if len(surface.axes) != 2:
        return []
    axes = plots.GridAxes(surface.axes[0], surface.axes[1], _axis_title(surface, 0), _axis_title(surface, 1),
                          surface.markers)
    variants = grid_variants(surface)
    caption = " ".join(c for c in (_done_caption(surface), _incomplete_note(group)) if c)
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
    groups = [(n, g) for n, g in _children(h5, "surfaces") if _surface_ndim(g) != 1]
    if not groups:
        return None
    items: list[Item] = []
    for name, group in groups:
        items += _try(f"surfaces/{name}", functools.partial(_surface_2d_items, name, group))
    return items


@panel(order=20, name="1-D curves", reads=("surfaces",))
def curves_1d_panel(h5: h5py.File) -> list[Item] | None:
    """One figure per metric overlaying every 1-D surface (train and test) with its checkpoints."""
    groups = [(n, g) for n, g in _children(h5, "surfaces") if _surface_ndim(g) == 1]
    if not groups:
        return None
    items: list[Item] = []
    surfaces: list[SurfaceData] = []
    for name, group in groups:
        def read(name: str = name, group: h5py.Group = group) -> list[Item]:
            surfaces.append(read_surface(name, group))
            return list(surfaces[-1].skipped)
        items += _try(f"surfaces/{name}", read)
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
                                plots.curves_figure(title, x_title, metric, curves, markers)))
    return items


@panel(order=920, name="Surface details", reads=("surfaces",))
def surfaces_table_panel(h5: h5py.File) -> list[Item] | None:
    """One table row per surface: grid, points done, directions, splits, metrics, settings."""
    groups = _children(h5, "surfaces")
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


# ============================================================================ curvature
_EIGEN_GROUPS = (("hessian_top", "largest", plots.COLORS[0]), ("hessian_bottom", "smallest", plots.COLORS[2]))


def _spectrum(path: str, group: h5py.Group, label: str, color: str) -> plots.Spectrum:
    values = float_array(group, "eigenvalues", ndim=1)
    residuals = float_array(group, "residuals", ndim=1) if "residuals" in group else None
    converged = dataset(group, "converged").astype(bool).reshape(-1) if "converged" in group else None
    for other, name in ((residuals, "residuals"), (converged, "converged")):
        if other is not None and len(other) != len(values):
            raise Unreadable(f"'{name}' has {len(other)} entries for {len(values)} eigenvalues")
    return plots.Spectrum(label, values, residuals, converged, color)


@panel(order=40, name="Hessian spectrum", reads=("curvature/hessian_top", "curvature/hessian_bottom",
                                                  "curvature/trace"))
def hessian_spectrum_panel(h5: h5py.File) -> list[Item] | None:
    """Top/bottom Hessian eigenvalues with residual error bars, their runs, and the trace estimate."""
    present = [(n, lab, c) for n, lab, c in _EIGEN_GROUPS if _group(h5, f"curvature/{n}") is not None]
    trace = _group(h5, "curvature/trace")
    if not present and trace is None:
        return None
    items: list[Item] = []
    spectra: list[plots.Spectrum] = []
    rows: list[list[str]] = []
    for name, label, color in present:
        path = f"curvature/{name}"
        group = h5[path]

        def read(path: str = path, group: h5py.Group = group, label: str = label, color: str = color) -> list[Item]:
            attrs = attrs_of(group)
            which = attrs.get("which", "")
            spectrum = _spectrum(path, group, f"{label} ({which})" if which else label, color)
            spectra.append(spectrum)
            unconverged = int((~spectrum.converged).sum()) if spectrum.converged is not None else 0
            rows.append([path, ", ".join(f"{v:.6g}" for v in spectrum.eigenvalues[:10])
                         + (" …" if len(spectrum.eigenvalues) > 10 else ""),
                         f"{unconverged} of {len(spectrum.eigenvalues)}" if unconverged else "all",
                         "; ".join(f"{k}={v}" for k, v in attribute_rows(attrs, skip=("complete",)))])
            return []
        items += _try(path, read)
    if spectra:
        unconverged = sum(int((~s.converged).sum()) for s in spectra if s.converged is not None)
        caption = ("error bars: Ritz residual norms ‖Hv − λv‖"
                   + (f"; {unconverged} eigenvalue(s) did not converge (red crosses)" if unconverged else ""))
        items.append(FigureItem("curvature/spectrum", "Hessian eigenvalues",
                                plots.spectrum_figure("Hessian eigenvalues", spectra), caption))
        items.append(TableItem("curvature/eigen_table", "Eigenvalue runs",
                               ["group", "eigenvalues", "converged", "settings"], rows))
    if trace is not None:
        def trace_rows() -> list[Item]:
            attrs = attrs_of(trace)
            estimate, stderr = attrs.get("estimate"), attrs.get("stderr")
            if estimate is None:
                raise Unreadable("attribute 'estimate' is missing")
            value = f"{float(estimate):.6g}" + (f" ± {float(stderr):.3g} (s.e.)" if stderr not in (None, "") else "")
            rows = [["tr(H)", value]] + attribute_rows(attrs, skip=("estimate", "stderr", "complete"))
            return [TableItem("curvature/trace", "Hessian trace", ["quantity", "value"], rows)]
        items += _try("curvature/trace", trace_rows)
    return items


@panel(order=50, name="Spectral density", reads=("curvature/density",))
def density_panel(h5: h5py.File) -> list[Item] | None:
    """The smoothed SLQ spectral density (with a width slider) and its settings."""
    group = _group(h5, "curvature/density")
    if group is None:
        return None

    def build() -> list[Item]:
        nodes = float_array(group, "nodes")
        weights = float_array(group, "weights")
        nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
        if nodes.shape != weights.shape:
            raise Unreadable(f"nodes {nodes.shape} and weights {weights.shape} differ in shape")
        if not np.isfinite(nodes).any():
            raise Unreadable("no finite quadrature node")
        sigma = plots.default_sigma(nodes)
        attrs = attrs_of(group)
        caption = (f"stochastic Lanczos quadrature over {nodes.shape[0]} probe(s) × {nodes.shape[1]} nodes, "
                   f"Gaussian smoothing σ = {sigma:.3g} by default (1 % of the spectrum's range); "
                   "the slider changes it")
        return [FigureItem("curvature/density", "Hessian spectral density",
                           plots.density_figure("Hessian spectral density", nodes, weights, sigma), caption),
                TableItem("curvature/density_settings", "Density settings", ["setting", "value"],
                          attribute_rows(attrs, skip=("complete",)))]
    return _try("curvature/density", build)


# ============================================================================ noise
@panel(order=60, name="Gradient noise", reads=("noise",))
def noise_panel(h5: h5py.File) -> list[Item] | None:
    """Gradient-noise statistics, the noise and Hessian spectra, and their eigenvector overlap."""
    group = _group(h5, "noise")
    if group is None:
        return None
    items: list[Item] = [TableItem("noise/scalars", "Gradient-noise statistics", ["quantity", "value"],
                                   attribute_rows(attrs_of(group), skip=("complete",)))]

    def spectrum() -> list[Item]:
        noise = float_array(group, "eigenvalues", ndim=1)
        hessian = float_array(group, "hessian_eigenvalues", ndim=1) if "hessian_eigenvalues" in group else None
        if hessian is None and _group(h5, "curvature/hessian_top") is not None \
                and "eigenvalues" in h5["curvature/hessian_top"]:
            hessian = float_array(h5["curvature/hessian_top"], "eigenvalues", ndim=1)
        out: list[Item] = [FigureItem("noise/spectrum", "Noise and Hessian spectra",
                                      plots.noise_figure("Noise and Hessian spectra", noise, hessian))]
        if "overlap" in group:
            out.append(FigureItem("noise/overlap", "Noise–Hessian overlap",
                                  plots.overlap_figure("Noise–Hessian eigenvector overlap",
                                                       float_array(group, "overlap", ndim=1))))
        return out
    if "eigenvalues" in group:
        items += _try("noise/eigenvalues", spectrum)
    return items


# ============================================================================ anything else
def _covered(path: str, reads: set[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in reads)


def _partly_covered(path: str, reads: set[str]) -> bool:
    return any(r.startswith(path + "/") for r in reads)


def uncovered_groups(h5: h5py.File, reads: set[str]) -> list[str]:
    """Groups that hold results no panel reads (walking into partly covered groups)."""
    out: list[str] = []

    def walk(group: h5py.Group, prefix: str) -> None:
        for name, node in group.items():
            path = f"{prefix}{name}"
            if not isinstance(node, h5py.Group) or _covered(path, reads):
                continue
            if _partly_covered(path, reads):
                walk(node, path + "/")
            else:
                out.append(path)
    walk(h5, "")
    return out


@panel(order=800, name="Other results", reads=())
def other_groups_panel(h5: h5py.File) -> list[Item] | None:
    """Raw attribute and dataset tables of every group no other panel reads."""
    reads = {r for p in registered_panels() for r in p.reads}
    paths = uncovered_groups(h5, reads)
    if not paths:
        return None
    items: list[Item] = []
    for path in paths:
        group = h5[path]
        rows = attribute_rows(attrs_of(group))

        def visit(name: str, node: h5py.HLObject, rows: list[list[str]] = rows) -> None:
            if isinstance(node, h5py.Dataset):
                rows.append([name, describe_dataset(node)])
            else:
                rows.extend([f"{name} · {key}", value] for key, value in attribute_rows(attrs_of(node)))
        group.visititems(visit)
        items.append(TableItem(f"other/{path}", path, ["attribute or dataset", "value"], rows,
                               "no dedicated view for this group yet: its raw contents"))
    return items


def schema_notes(h5: h5py.File) -> list[str]:
    """One line each for what the reader should know before trusting the report."""
    notes = []
    attrs = attrs_of(h5)
    version = attrs.get("schema_version")
    if attrs.get("schema") != SCHEMA_NAME:
        notes.append(f"schema attribute is {attrs.get('schema')!r}, not {SCHEMA_NAME!r}")
    if version is None:
        notes.append("no schema_version attribute: read as an old file, showing what is readable")
    elif int(version) < SCHEMA_VERSION:
        notes.append(f"written with schema version {version} (this viewer reads version {SCHEMA_VERSION}): "
                     "showing what is readable")
    elif int(version) > SCHEMA_VERSION:
        notes.append(f"written with schema version {version}, newer than this viewer's {SCHEMA_VERSION}: "
                     "upgrade landscape to see everything")
    if attrs.get("complete") is False:
        notes.append("the scan did not finish: missing results were not computed yet")
    return notes
