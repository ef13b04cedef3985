"""Figure builders for 2-D grids: contours, heatmap and the lit 3-D surface, each taking a
:class:`~landscape.views.style.SurfaceStyle` (levels, colour range, z clip, log view).

Grids follow the results file: ``values[i, j]`` belongs to ``(x[i], y[j])`` ('ij').
Plotly's ``z[row][col]`` belongs to ``(x[col], y[row])``, hence the transposes below.
Layout rules shared by all three: the variant menu sits above the plot area, right-aligned
(the title is centred above it, the colour bar to the right), so no control covers data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import plotly.graph_objects as go

from .plots import TEMPLATE, Marker
from .style import DEFAULT_STYLE, SurfaceStyle, loss_limits

HALO = "0 0 2px black, 0 0 3px black"  # white text with a dark halo reads on every colour of Viridis
EQUAL_ASPECT_MAX_RATIO = 4.0  # axes spans further apart than this are drawn unequal (a strip is unreadable)
CAMERA_DISTANCE = 1.95  # eye distance from the scene centre: the surface fills its panel


@dataclass(frozen=True)
class GridVariant:
    """One way to colour a 2-D grid (e.g. 'train loss', 'train loss (log10)'), with the grids
    shown on hover at each point (``hover``: name and 'ij' grid) and its figure title."""

    label: str
    values: np.ndarray  # [len(x), len(y)], 'ij'
    colorbar_title: str
    metric: str = ""  # "loss": the style's vmin/vmax/zmax apply
    log: bool = False  # values are log10 of the metric
    hover: tuple[tuple[str, np.ndarray], ...] = ()
    title: str = ""


@dataclass(frozen=True)
class GridAxes:
    """The axes of a 2-D grid: coordinates, titles, symbols for hover, the checkpoints drawn
    on it and a subtitle (what the directions are)."""

    x: np.ndarray
    y: np.ndarray
    x_title: str
    y_title: str
    markers: list[Marker] = field(default_factory=list)
    x_symbol: str = "α"
    y_symbol: str = "β"
    subtitle: str = ""


def nearest_value(axes: GridAxes, values: np.ndarray, coords: Sequence[float]) -> float:
    """The grid value at the grid point nearest to ``coords``."""
    i = int(np.abs(axes.x - coords[0]).argmin())
    j = int(np.abs(axes.y - coords[1]).argmin())
    return float(values[i, j])


def shown_index(variants: Sequence[GridVariant], style: SurfaceStyle) -> int:
    """The variant drawn first: the first log view with ``style.log``, else the first."""
    if style.log:
        return next((k for k, v in enumerate(variants) if v.log and v.metric == "loss"),
                    next((k for k, v in enumerate(variants) if v.log), 0))
    return 0


def _limits(v: GridVariant, style: SurfaceStyle) -> tuple[float | None, float | None, float | None]:
    return loss_limits(style, v.log) if v.metric == "loss" else (None, None, None)


def _range(v: GridVariant, style: SurfaceStyle) -> tuple[float, float]:
    """The colour range: the style's limits where given, else the finite data's."""
    vmin, vmax, zmax = _limits(v, style)
    finite = v.values[np.isfinite(v.values)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if zmax is not None and vmax is None:
        hi = min(hi, zmax)
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _hover(axes: GridAxes, v: GridVariant) -> tuple[np.ndarray | None, str]:
    lines = [f"{axes.x_symbol} = %{{x:.3g}}", f"{axes.y_symbol} = %{{y:.3g}}"]
    if v.log:
        lines.append(f"{v.colorbar_title} = %{{z:.4g}}")
    lines += [f"{name} = %{{customdata[{k}]:.4g}}" for k, (name, _) in enumerate(v.hover)]
    custom = np.stack([grid.T for _, grid in v.hover], axis=-1) if v.hover else None
    if not v.hover and not v.log:
        lines.append(f"{v.colorbar_title} = %{{z:.4g}}")
    return custom, "<br>".join(lines) + "<extra></extra>"


TOP_MARGIN = 125  # title and subtitle, then a row for the menu, then the plot area


def _title(text: str, subtitle: str) -> dict:
    return dict(text=text, x=0.5, xanchor="center", y=0.985, yref="container", yanchor="top",
                subtitle=dict(text=subtitle))


def _menu(variants: Sequence[GridVariant], active: int, args_for: Callable[[GridVariant], list]) -> list[dict]:
    if len(variants) < 2:
        return []
    buttons = [dict(label=v.label, method="update", args=args_for(v)) for v in variants]
    return [dict(buttons=buttons, direction="down", showactive=True, active=active, x=1.0, xanchor="right",
                 y=1.01, yanchor="bottom", pad=dict(t=0, b=0))]


def _equal_aspect(axes: GridAxes) -> bool:
    spans = [float(np.ptp(axes.x)), float(np.ptp(axes.y))]
    return min(spans) > 0 and max(spans) / min(spans) <= EQUAL_ASPECT_MAX_RATIO


# ============================================================================ 2-D
def _markers_2d(axes: GridAxes) -> go.Scatter:
    return go.Scatter(x=[m.coords[0] for m in axes.markers], y=[m.coords[1] for m in axes.markers],
                      text=[m.label for m in axes.markers], mode="markers+text", textposition="top right",
                      marker=dict(symbol="star", size=18, color="white", line=dict(color="black", width=1.5)),
                      textfont=dict(color="white", size=15, shadow=HALO), name="checkpoints", showlegend=False,
                      hovertemplate=f"%{{text}}<br>{axes.x_symbol} = %{{x:.3g}}<br>{axes.y_symbol} = %{{y:.3g}}"
                                    "<extra></extra>")


def _planar_props(axes: GridAxes, v: GridVariant, style: SurfaceStyle, contour: bool) -> dict:
    lo, hi = _range(v, style)
    custom, template = _hover(axes, v)
    props = {"z": v.values.T, "zmin": lo, "zmax": hi, "zauto": False, "customdata": custom,
             "hovertemplate": template, "colorbar.title.text": v.colorbar_title}
    if contour:
        props |= {"autocontour": False, "contours.start": lo, "contours.end": hi,
                  "contours.size": (hi - lo) / style.levels}
    return props


def _planar_figure(axes: GridAxes, variants: Sequence[GridVariant], style: SurfaceStyle,
                   contour: bool) -> go.Figure:
    active = shown_index(variants, style)
    first = _planar_props(axes, variants[active], style, contour)
    common = dict(x=axes.x, y=axes.y, colorscale="Viridis",
                  colorbar=dict(thickness=14, len=0.9, title=dict(side="right")))
    if contour:
        trace: go.BaseTraceType = go.Contour(**common, contours=dict(
            showlabels=True, labelfont=dict(size=11, color="white", shadow=HALO)), line=dict(width=0.6))
    else:
        trace = go.Heatmap(**common)
    trace.update({k: v for k, v in first.items() if k not in ("colorbar.title.text",)})
    trace.colorbar.title.text = first["colorbar.title.text"]
    fig = go.Figure(trace)
    if axes.markers:
        fig.add_trace(_markers_2d(axes))

    def restyle(v: GridVariant) -> list:
        props = _planar_props(axes, v, style, contour)
        return [{k: [value] for k, value in props.items()}, {"title.text": v.title or v.label}, [0]]

    yaxis: dict[str, object] = dict(title=axes.y_title, constrain="domain", constraintoward="top")
    xaxis = dict(title=axes.x_title, constrain="domain", constraintoward="right")  # beside the colour bar
    if _equal_aspect(axes):  # Li et al. draw their planes square: one unit of α as long as one of β
        yaxis |= dict(scaleanchor="x", scaleratio=1)
    fig.update_layout(template=TEMPLATE, title=_title(variants[active].title or variants[active].label,
                                                      axes.subtitle),
                      xaxis=xaxis, yaxis=yaxis, updatemenus=_menu(variants, active, restyle),
                      margin=dict(t=TOP_MARGIN, r=20))
    return fig


def contour_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant],
                   style: SurfaceStyle = DEFAULT_STYLE) -> go.Figure:
    """Filled, labelled contours on equal axes; a menu switches split/metric/log scale.
    ``title`` is used for variants without their own."""
    return _planar_figure(axes, _titled(variants, title), style, contour=True)


def heatmap_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant],
                   style: SurfaceStyle = DEFAULT_STYLE) -> go.Figure:
    """A heatmap on equal axes; a menu switches split/metric/log scale."""
    return _planar_figure(axes, _titled(variants, title), style, contour=False)


def _titled(variants: Sequence[GridVariant], title: str) -> list[GridVariant]:
    return [v if v.title else replace(v, title=f"{title}: {v.label}" if len(variants) > 1 else title)
            for v in variants]


# ============================================================================ 3-D
def camera_eye(axes: GridAxes, values: np.ndarray) -> dict[str, float]:
    """Look from above the lowest corner, so the higher corners stand behind the basin."""
    corners = [(values[i, j], i, j) for i in (0, -1) for j in (0, -1) if np.isfinite(values[i, j])]
    _, i, j = min(corners) if corners else (0.0, -1, 0)
    sx, sy = (1.0 if i == -1 else -1.0), (1.0 if j == -1 else -1.0)
    direction = np.array([sx, sy, 1.1])
    eye = CAMERA_DISTANCE * direction / np.linalg.norm(direction)
    return dict(x=float(eye[0]), y=float(eye[1]), z=float(eye[2]))


ASPECT = dict(x=1.0, y=1.0, z=0.7)


def lift_to_view(axes: GridAxes, surface: np.ndarray, point: Sequence[float], base: float,
                 z_range: tuple[float, float], eye: dict[str, float]) -> float:
    """The lowest height ≥ ``base`` at ``point`` from which the straight line to the camera
    clears the surface (nearest-grid-point heights): where θ* sits in a narrow basin (the log
    view), its marker rises just above the walls that would hide it.

    Along the line, ``z(t) = z0 + t (camera_z − z0)`` must exceed the height h(t) of the cell
    it crosses: ``z0 > (h(t) − t camera_z) / (1 − t)``, which within one cell is largest where
    the line enters it (the camera is above every cell), so the cells' entry points suffice."""
    spans = [float(np.ptp(axes.x)) or 1.0, float(np.ptp(axes.y)) or 1.0, (z_range[1] - z_range[0]) or 1.0]
    mids = [float(axes.x.min()) + spans[0] / 2, float(axes.y.min()) + spans[1] / 2, sum(z_range) / 2]
    camera = [mids[k] + eye[a] * spans[k] / ASPECT[a] for k, a in enumerate("xyz")]
    entries = [np.zeros(1)]
    for coords, start, end in ((np.sort(axes.x), point[0], camera[0]), (np.sort(axes.y), point[1], camera[1])):
        if end != start:
            entries.append(((coords[:-1] + coords[1:]) / 2 - start) / (end - start))  # cell borders crossed
    t = np.unique(np.concatenate(entries))
    t = t[(t >= 0) & (t < 1)] + 1e-9  # just inside the cell entered
    x, y = point[0] + t * (camera[0] - point[0]), point[1] + t * (camera[1] - point[1])
    inside = (axes.x.min() <= x) & (x <= axes.x.max()) & (axes.y.min() <= y) & (y <= axes.y.max())
    i = np.abs(axes.x[None, :] - x[inside, None]).argmin(axis=1)
    j = np.abs(axes.y[None, :] - y[inside, None]).argmin(axis=1)
    heights, t = surface[i, j], t[inside]
    finite = np.isfinite(heights)
    needed = (heights[finite] - t[finite] * camera[2]) / (1.0 - t[finite])
    return float(max(base, needed.max())) if needed.size else base


def _surface_state(axes: GridAxes, v: GridVariant, style: SurfaceStyle) -> dict:
    """What one variant sets: clipped values, colour and z ranges, θ* heights, contour levels."""
    lo, hi = _range(v, style)
    _, _, zmax = _limits(v, style)
    values = np.minimum(v.values, zmax) if zmax is not None else v.values
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else hi
    bottom = float(finite.min()) if finite.size else lo
    span = (top - bottom) or 1.0
    floor = bottom - 0.3 * span  # contours projected on a floor below the surface
    eye = camera_eye(axes, values)
    marks = []
    for m in axes.markers:
        on_surface = nearest_value(axes, values, m.coords)
        base = on_surface + 0.04 * span
        marks.append((on_surface, lift_to_view(axes, values, m.coords, base, (floor, top), eye)
                      + (0.02 * span if base < top else 0.0)))
    ceiling = max([top] + [z for _, z in marks]) + 0.02 * span
    return dict(values=values, lo=lo, hi=hi, floor=floor, ceiling=ceiling, marks=marks, eye=eye)


def surface3d_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant],
                     style: SurfaceStyle = DEFAULT_STYLE) -> go.Figure:
    """A lit 3-D surface with contours projected on the floor, clipped at the style's zmax;
    each checkpoint a large marker on a stem, raised until the camera sees it."""
    variants = _titled(variants, title)
    active = shown_index(variants, style)
    v0 = variants[active]
    s0 = _surface_state(axes, v0, style)

    def trace_props(v: GridVariant, s: dict) -> dict:
        custom, template = _hover(axes, v)
        return {"z": s["values"].T, "cmin": s["lo"], "cmax": s["hi"], "cauto": False, "customdata": custom,
                "hovertemplate": template, "colorbar.title.text": v.colorbar_title,
                "contours.z.start": s["lo"], "contours.z.end": s["hi"],
                "contours.z.size": (s["hi"] - s["lo"]) / style.levels}

    surface = go.Surface(x=axes.x, y=axes.y, colorscale="Viridis",
                         colorbar=dict(len=0.75, thickness=14, title=dict(side="right")),
                         # no scene.domain: a narrowed scene stalled Chromium's software WebGL for ~100 s
                         lighting=dict(ambient=0.45, diffuse=0.8, specular=0.25, roughness=0.55, fresnel=0.2),
                         lightposition=dict(x=-1e4, y=-1e4, z=3e4),
                         contours=dict(z=dict(show=True, usecolormap=True, width=2, project=dict(z=True))))
    if any(np.isnan(v.values).any() for v in variants):
        # contour lines through a grid with holes take Chromium's software WebGL ~40 s to draw
        surface.contours.z.show = False
    props = trace_props(v0, s0)
    surface.update({k: value for k, value in props.items() if "." not in k})
    surface.colorbar.title.text = v0.colorbar_title
    surface.contours.z.update(start=props["contours.z.start"], end=props["contours.z.end"],
                              size=props["contours.z.size"])
    fig = go.Figure(surface)

    def marker_xyz(s: dict) -> tuple[list, list, list]:
        xs, ys, zs = [], [], []
        for m, (low, high) in zip(axes.markers, s["marks"]):
            xs += [m.coords[0], m.coords[0], None]
            ys += [m.coords[1], m.coords[1], None]
            zs += [low, high, None]
        return xs, ys, zs

    if axes.markers:
        xs, ys, zs = marker_xyz(s0)
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color="black", width=4),
                                   hoverinfo="skip", showlegend=False, name="stems"))
        fig.add_trace(go.Scatter3d(x=[m.coords[0] for m in axes.markers], y=[m.coords[1] for m in axes.markers],
                                   z=[high for _, high in s0["marks"]], text=[m.label for m in axes.markers],
                                   mode="markers+text", textposition="top center",
                                   textfont=dict(size=16, color="black"),
                                   marker=dict(size=9, symbol="diamond", color="red",
                                               line=dict(color="black", width=2)),
                                   name="checkpoints", showlegend=False,
                                   hovertemplate="%{text}<extra></extra>"))

    def scene_ranges(s: dict, v: GridVariant) -> dict:
        return {"scene.zaxis.range": [s["floor"], s["ceiling"]], "scene.zaxis.title.text": v.colorbar_title,
                "scene.camera.eye": s["eye"], "title.text": v.title or v.label}

    def update(v: GridVariant) -> list:  # data, z axis and camera change together
        s = _surface_state(axes, v, style)
        data = {k: [value] for k, value in trace_props(v, s).items()}
        if axes.markers:
            stems = marker_xyz(s)[2]
            # null resets an attribute: the stems and markers have none of the surface's but the
            # hover template, which is given again
            data = {k: value + [None, None] for k, value in data.items()}
            data["hovertemplate"][2] = "%{text}<extra></extra>"
            data["z"] = [s["values"].T, stems, [high for _, high in s["marks"]]]
        return [data, scene_ranges(s, v), [0, 1, 2] if axes.markers else [0]]

    axis = dict(nticks=5, tickfont=dict(size=10), showbackground=True, backgroundcolor="#eef0f4",
                gridcolor="white", showspikes=False)
    fig.update_layout(template=TEMPLATE, title=_title(v0.title or v0.label, axes.subtitle),
                      scene=dict(xaxis=dict(axis, title=axes.x_symbol), yaxis=dict(axis, title=axes.y_symbol),
                                 zaxis=dict(axis, title=v0.colorbar_title, range=[s0["floor"], s0["ceiling"]]),
                                 aspectmode="manual", aspectratio=ASPECT, camera=dict(eye=s0["eye"])),
                      updatemenus=_menu(variants, active, update), margin=dict(t=TOP_MARGIN, l=0, r=20, b=0))
    return fig
