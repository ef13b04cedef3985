"""Figure builders: arrays in, Plotly figures out (no files, no escaping, no computing
losses). Panels read the results file and call these; notebooks may call them directly.

Grids follow the results file: ``values[i, j]`` belongs to ``(x[i], y[j])`` ('ij').
Plotly's ``z[row][col]`` belongs to ``(x[col], y[row])``, hence the transposes below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
SPLIT_DASH = {"train": "solid", "test": "dash", "val": "dot", "valid": "dot", "validation": "dot"}


@dataclass
class GridVariant:
    """One way to colour a 2-D grid (e.g. 'train loss', 'train loss (log10)')."""

    label: str
    values: np.ndarray  # [len(x), len(y)], 'ij'
    colorbar_title: str


@dataclass
class Marker:
    """A labelled point in surface coordinates (θ* or a checkpoint)."""

    label: str
    coords: tuple[float, ...]


@dataclass
class Curve:
    """One 1-D curve: a split of a surface, its colour, dash and legend group."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str = COLORS[0]
    dash: str = "solid"
    group: str = ""


@dataclass
class Spectrum:
    """Eigenvalues with residual norms (error bars) and a converged flag each."""

    label: str
    eigenvalues: np.ndarray
    residuals: np.ndarray | None = None
    converged: np.ndarray | None = None
    color: str = COLORS[0]


@dataclass
class GridAxes:
    """The axes of a 2-D grid: coordinates, titles and the checkpoints drawn on it."""

    x: np.ndarray
    y: np.ndarray
    x_title: str
    y_title: str
    markers: list[Marker] = field(default_factory=list)


def log10_grid(values: np.ndarray) -> np.ndarray | None:
    """log10 of a grid, or None when it has no positive value (log scale would be empty)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or not (finite > 0).any():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def nearest_value(axes: GridAxes, values: np.ndarray, coords: Sequence[float]) -> float:
    """The grid value at the grid point nearest to ``coords``."""
    i = int(np.abs(axes.x - coords[0]).argmin())
    j = int(np.abs(axes.y - coords[1]).argmin())
    return float(values[i, j])


def _variant_menu(variants: Sequence[GridVariant], args_for: Callable[[GridVariant], list],
                  method: str = "restyle") -> list[dict]:
    if len(variants) < 2:
        return []
    buttons = [dict(label=v.label, method=method, args=args_for(v)) for v in variants]
    return [dict(buttons=buttons, direction="down", showactive=True, x=0.0, xanchor="left",
                 y=1.0, yanchor="bottom", pad=dict(b=4))]


def _markers_2d(axes: GridAxes) -> go.Scatter:
    return go.Scatter(x=[m.coords[0] for m in axes.markers], y=[m.coords[1] for m in axes.markers],
                      text=[m.label for m in axes.markers], mode="markers+text", textposition="top right",
                      marker=dict(symbol="star", size=14, color="white", line=dict(color="black", width=1.5)),
                      textfont=dict(color="black"), name="checkpoints", showlegend=False,
                      hoverinfo="x+y+text")


def _grid_layout(fig: go.Figure, title: str, axes: GridAxes, variants: Sequence[GridVariant],
                 restyle_for: Callable[[GridVariant], list]) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title=axes.x_title, yaxis_title=axes.y_title,
                      updatemenus=_variant_menu(variants, restyle_for), margin=dict(t=80))
    return fig


def contour_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant]) -> go.Figure:
    """Filled contours of the first variant; a menu switches split/metric/log scale."""
    return _planar_figure(title, axes, variants, lambda **kw: go.Contour(
        **kw, contours=dict(showlabels=True), ncontours=25))


def heatmap_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant]) -> go.Figure:
    """A heatmap of the first variant; a menu switches split/metric/log scale."""
    return _planar_figure(title, axes, variants, go.Heatmap)


def _planar_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant],
                   trace: Callable[..., go.BaseTraceType]) -> go.Figure:
    first = variants[0]
    fig = go.Figure(trace(x=axes.x, y=axes.y, z=first.values.T, colorscale="Viridis",
                          colorbar=dict(title=dict(text=first.colorbar_title))))
    if axes.markers:
        fig.add_trace(_markers_2d(axes))
    return _grid_layout(fig, title, axes, variants,
                        lambda v: [{"z": [v.values.T], "colorbar.title.text": v.colorbar_title}, [0]])


def surface3d_figure(title: str, axes: GridAxes, variants: Sequence[GridVariant]) -> go.Figure:
    """A 3-D surface with the checkpoints drawn on it (their z follows the menu)."""
    first = variants[0]

    def marker_z(v: GridVariant) -> list[float]:
        # lifted by 2 % of the z range so the point is not hidden inside the surface
        finite = v.values[np.isfinite(v.values)]
        lift = 0.02 * float(finite.max() - finite.min()) if finite.size else 0.0
        return [nearest_value(axes, v.values, m.coords) + lift for m in axes.markers]

    fig = go.Figure(go.Surface(x=axes.x, y=axes.y, z=first.values.T, colorscale="Viridis",
                               colorbar=dict(title=dict(text=first.colorbar_title))))
    traces = [0]
    if axes.markers:
        fig.add_trace(go.Scatter3d(x=[m.coords[0] for m in axes.markers], y=[m.coords[1] for m in axes.markers],
                                   z=marker_z(first), text=[m.label for m in axes.markers],
                                   mode="markers+text",
                                   marker=dict(size=6, color="red", line=dict(color="black", width=1)),
                                   name="checkpoints", showlegend=False))
        traces = [0, 1]

    def update(v: GridVariant) -> list:  # data and the z axis title change together
        z = [v.values.T] + ([marker_z(v)] if axes.markers else [])
        return [{"z": z, "colorbar.title.text": v.colorbar_title}, {"scene.zaxis.title.text": v.colorbar_title},
                traces]

    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      scene=dict(xaxis_title=axes.x_title, yaxis_title=axes.y_title,
                                 zaxis_title=first.colorbar_title, aspectmode="manual",
                                 aspectratio=dict(x=1, y=1, z=0.7),
                                 camera=dict(eye=dict(x=1.2, y=-1.2, z=1.6))),  # high enough to see the minimum
                      updatemenus=_variant_menu(variants, update, method="update"),
                      margin=dict(t=80, l=0, r=0, b=0))
    return fig


def _log_y_menu() -> list[dict]:
    return [dict(type="buttons", direction="right", x=0.0, xanchor="left", y=1.0, yanchor="bottom",
                 pad=dict(b=4), showactive=True,
                 buttons=[dict(label="linear", method="relayout", args=[{"yaxis.type": "linear"}]),
                          dict(label="log", method="relayout", args=[{"yaxis.type": "log"}])])]


def curves_figure(title: str, x_title: str, y_title: str, curves: Sequence[Curve],
                  markers: Sequence[Marker] = ()) -> go.Figure:
    """Overlaid 1-D curves (colour per surface, dash per split); checkpoints as vertical lines."""
    fig = go.Figure()
    for curve in curves:
        fig.add_trace(go.Scatter(x=curve.x, y=curve.y, name=curve.label, mode="lines+markers",
                                 line=dict(color=curve.color, dash=curve.dash), marker=dict(size=4),
                                 legendgroup=curve.group or None))
    labels_at: dict[float, list[str]] = {}
    for marker in markers:  # one line per position; labels of coinciding checkpoints joined
        labels = labels_at.setdefault(round(float(marker.coords[0]), 12), [])
        if marker.label not in labels:
            labels.append(marker.label)
    for x, labels in labels_at.items():
        fig.add_vline(x=x, line=dict(color="gray", dash="dot", width=1),
                      annotation_text=", ".join(labels), annotation_position="top")
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title=x_title, yaxis_title=y_title, updatemenus=_log_y_menu(),
                      margin=dict(t=90), legend=dict(orientation="v"))
    return fig


def spectrum_figure(title: str, spectra: Sequence[Spectrum], y_title: str = "eigenvalue") -> go.Figure:
    """Eigenvalues by index with residual norms as error bars; unconverged ones drawn as
    red crosses in their own legend entry so they cannot be mistaken for results."""
    fig = go.Figure()
    for spectrum in spectra:
        values = np.asarray(spectrum.eigenvalues, dtype=np.float64)
        index = np.arange(1, len(values) + 1)
        residuals = (np.asarray(spectrum.residuals, dtype=np.float64) if spectrum.residuals is not None
                     else None)
        converged = (np.asarray(spectrum.converged, dtype=bool) if spectrum.converged is not None
                     else np.ones(len(values), dtype=bool))
        for mask, suffix, style in ((converged, "", dict(symbol="circle", size=8, color=spectrum.color)),
                                    (~converged, " (not converged)",
                                     dict(symbol="x", size=11, color="red", line=dict(width=1)))):
            if not mask.any():
                continue
            error = (dict(type="data", array=residuals[mask], visible=True, thickness=1.2)
                     if residuals is not None else None)
            fig.add_trace(go.Scatter(x=index[mask], y=values[mask], mode="markers", marker=style,
                                     error_y=error, name=spectrum.label + suffix))
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title="index", yaxis_title=y_title, margin=dict(t=70))
    fig.update_xaxes(dtick=1 if max((len(s.eigenvalues) for s in spectra), default=0) <= 20 else None)
    return fig


def default_sigma(nodes: np.ndarray) -> float:
    """Gaussian width for SLQ density plots: 1 % of the spectrum's range (and never 0).

    Narrower widths show the quadrature nodes as separate spikes; wider ones blur the
    outliers into the bulk. The report offers a slider around this value.
    """
    finite = nodes[np.isfinite(nodes)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return 0.01 * spread if spread > 0 else max(1e-3, 1e-3 * abs(float(finite.mean())) if finite.size else 1e-3)


def density_grid(nodes: np.ndarray, sigma: float, num_points: int = 800) -> np.ndarray:
    """Evenly spaced eigenvalues over the finite nodes, plus 5 % of their range and 5σ on each side."""
    finite = nodes[np.isfinite(nodes)]
    lo, hi = float(finite.min()), float(finite.max())
    margin = 0.05 * (hi - lo) + 5 * sigma
    return np.linspace(lo - margin, hi + margin, num_points)


def smoothed_density(nodes: np.ndarray, weights: np.ndarray, sigma: float, grid: np.ndarray) -> np.ndarray:
    """φ(t) = (1/P) Σ_p Σ_j w_pj N(t; node_pj, σ²), the SLQ mixture averaged over probes.

    Integrates to the mean of the per-probe weight sums (1 for Lanczos weights).
    """
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if nodes.shape != weights.shape:
        raise ValueError(f"nodes {nodes.shape} and weights {weights.shape} differ in shape")
    ok = np.isfinite(nodes) & np.isfinite(weights)
    centres, mass = nodes[ok], weights[ok] / nodes.shape[0]
    out = np.zeros_like(grid, dtype=np.float64)
    norm = 1.0 / (sigma * np.sqrt(2 * np.pi))
    for start in range(0, centres.size, 256):  # bounded memory: grid × 256 at a time
        c, m = centres[start:start + 256], mass[start:start + 256]
        out += (m[None, :] * np.exp(-0.5 * ((grid[:, None] - c[None, :]) / sigma) ** 2)).sum(axis=1)
    return out * norm


def density_figure(title: str, nodes: np.ndarray, weights: np.ndarray,
                   sigma: float | None = None, relative_widths: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)
                   ) -> go.Figure:
    """Smoothed spectral density on a log y axis; a slider changes the width σ."""
    base = sigma if sigma is not None else default_sigma(np.asarray(nodes))
    sigmas = [base * r for r in relative_widths]
    default_index = list(relative_widths).index(1.0) if 1.0 in relative_widths else 0
    fig = go.Figure()
    for k, s in enumerate(sigmas):
        grid = density_grid(np.asarray(nodes), s)
        density = smoothed_density(nodes, weights, s, grid)
        floor = density.max() * 1e-7 if density.max() > 0 else 1e-300  # log axis: ~7 decades shown
        fig.add_trace(go.Scatter(x=grid, y=np.maximum(density, floor), mode="lines",
                                 line=dict(color=COLORS[0], width=1.5), name=f"σ = {s:.3g}",
                                 visible=(k == default_index), showlegend=False))
    steps = [dict(method="update", label=f"{s:.3g}",
                  args=[{"visible": [i == k for i in range(len(sigmas))]}]) for k, s in enumerate(sigmas)]
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title="eigenvalue λ", yaxis_title="density (smoothed)", yaxis_type="log",
                      yaxis_exponentformat="power",
                      sliders=[dict(active=default_index, steps=steps, currentvalue=dict(prefix="σ = "),
                                    pad=dict(t=50))], margin=dict(t=70))
    return fig


def noise_figure(title: str, noise: np.ndarray, hessian: np.ndarray | None) -> go.Figure:
    """Top eigenvalues of the gradient-noise covariance Σ beside the Hessian's (log y)."""
    columns = 2 if hessian is not None else 1
    titles = ["gradient noise Σ"] + (["Hessian H"] if hessian is not None else [])
    fig = make_subplots(rows=1, cols=columns, subplot_titles=titles, horizontal_spacing=0.12)
    series = [(np.asarray(noise, dtype=np.float64), COLORS[3], "Σ eigenvalues")]
    if hessian is not None:
        series.append((np.asarray(hessian, dtype=np.float64), COLORS[0], "H eigenvalues"))
    for col, (values, color, name) in enumerate(series, start=1):
        fig.add_trace(go.Scatter(x=np.arange(1, len(values) + 1), y=np.abs(values), mode="markers+lines",
                                 marker=dict(color=color, size=7), line=dict(color=color, width=1),
                                 name=name), row=1, col=col)
        fig.update_yaxes(type="log", title_text="|eigenvalue|", exponentformat="power", row=1, col=col)
        fig.update_xaxes(title_text="index", row=1, col=col)
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"), margin=dict(t=90))
    return fig


def overlap_figure(title: str, overlap: np.ndarray) -> go.Figure:
    """Noise–Hessian eigenvector overlap by index, as bars."""
    values = np.asarray(overlap, dtype=np.float64)
    fig = go.Figure(go.Bar(x=np.arange(1, len(values) + 1), y=values, marker_color=COLORS[2], name="overlap"))
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title="index", yaxis_title="overlap", margin=dict(t=70))
    return fig


def basin_area_figure(title: str, x: np.ndarray, area: np.ndarray, hover: Sequence[str], x_title: str,
                      y_title: str, barrier: float | None = None) -> go.Figure:
    """Area of θ*'s basin against the loss threshold (a step curve: it grows when the level
    passes cell values); ``barrier`` draws where the basin joins a deeper one."""
    fig = go.Figure(go.Scatter(x=x, y=area, mode="lines+markers", line=dict(color=COLORS[0], shape="hv"),
                               marker=dict(size=4), text=list(hover), name="θ*'s basin", showlegend=False,
                               hovertemplate="%{x:.4g} → %{y:.4g}<br>%{text}<extra></extra>"))
    if barrier is not None:
        fig.add_vline(x=barrier, line=dict(color="gray", dash="dot", width=1),
                      annotation_text="joins a deeper basin", annotation_position="top left")
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"), xaxis_title=x_title,
                      yaxis_title=y_title, updatemenus=_log_y_menu(), margin=dict(t=90))
    return fig


def persistence_figure(title: str, birth: np.ndarray, death: np.ndarray, hover: Sequence[str],
                       highlight: int = -1, axis_title: str = "loss") -> go.Figure:
    """Persistence diagram: one point per minimum at (birth, death), the barrier being its
    height above the diagonal; minima that never merge (death +inf) sit on a dashed line
    marked ∞ above every finite value. ``highlight`` marks one pair (θ*'s basin) with a star."""
    birth, death = np.asarray(birth, dtype=np.float64), np.asarray(death, dtype=np.float64)
    finite = np.isfinite(death)
    values = np.concatenate([birth, death[finite]])
    low, high = float(values.min()), float(values.max())
    top = high + 0.08 * (high - low if high > low else max(abs(high), 1.0))
    shown = np.where(finite, death, top)
    fig = go.Figure(go.Scatter(x=[low, top], y=[low, top], mode="lines", line=dict(color="gray", width=1),
                               hoverinfo="skip", showlegend=False))
    fig.add_hline(y=top, line=dict(color="gray", dash="dash", width=1))
    fig.add_annotation(x=0, xref="paper", xanchor="right", y=top, text="∞ ", showarrow=False)  # like a tick label
    labels = np.asarray(list(hover), dtype=object)
    for mask, label, style in ((finite, "merges into a deeper basin", dict(symbol="circle", size=7, color=COLORS[0])),
                               (~finite, "never merges", dict(symbol="triangle-up", size=11, color=COLORS[1]))):
        if mask.any():
            fig.add_trace(go.Scatter(x=birth[mask], y=shown[mask], mode="markers", marker=style, name=label,
                                     text=list(labels[mask]), hovertemplate="%{text}<extra></extra>"))
    if 0 <= highlight < len(birth):
        star = dict(symbol="star-open", size=18, color="black", line=dict(width=1.5))  # open: the point shows through
        fig.add_trace(go.Scatter(x=[birth[highlight]], y=[shown[highlight]], mode="markers", name="θ*'s basin",
                                 marker=star, text=[labels[highlight]], hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title=f"birth: {axis_title} at the minimum",
                      yaxis_title=f"death: {axis_title} at the merging saddle", margin=dict(t=90),
                      legend=dict(orientation="h", x=0.0, xanchor="left", y=1.0, yanchor="bottom"))
    return fig
