"""Figure builders: arrays in, Plotly figures out (no files, no escaping, no computing
losses). Panels read the results file and call these; notebooks may call them directly.

The 2-D grid figures (contours, heatmap, 3-D surface) are in :mod:`.grid_plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
SPLIT_DASH = {"train": "solid", "test": "dash", "val": "dot", "valid": "dot", "validation": "dot"}


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
    axis: str = "y"  # "y2": the right-hand axis of a twin-axis figure


@dataclass
class Spectrum:
    """Eigenvalues with residual norms (error bars) and a converged flag each."""

    label: str
    eigenvalues: np.ndarray
    residuals: np.ndarray | None = None
    converged: np.ndarray | None = None
    color: str = COLORS[0]


def log10_grid(values: np.ndarray) -> np.ndarray | None:
    """log10 of a grid, or None when it has no positive value (log scale would be empty)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or not (finite > 0).any():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def _log_y_menu() -> list[dict]:
    # above the plot area, right-aligned: the title is centred above it, no data under it
    return [dict(type="buttons", direction="right", x=1.0, xanchor="right", y=1.01, yanchor="bottom",
                 pad=dict(t=0, b=0), showactive=True,
                 buttons=[dict(label="linear", method="relayout", args=[{"yaxis.type": "linear"}]),
                          dict(label="log", method="relayout", args=[{"yaxis.type": "log"}])])]


# a legend below the x axis title, outside the plot area: it never covers the curves' ends
LEGEND_BELOW = dict(orientation="h", xref="container", x=0.5, xanchor="center", yref="container", y=0.0,
                    yanchor="bottom")


def curves_figure(title: str, x_title: str, y_title: str, curves: Sequence[Curve],
                  markers: Sequence[Marker] = (), y2_title: str = "", subtitle: str = "") -> go.Figure:
    """Overlaid 1-D curves (dash per split); curves on ``axis="y2"`` use a right-hand axis
    titled ``y2_title`` (loss and accuracy on twin axes); checkpoints as vertical lines."""
    fig = go.Figure()
    for curve in curves:
        fig.add_trace(go.Scatter(x=curve.x, y=curve.y, name=curve.label, mode="lines+markers",
                                 line=dict(color=curve.color, dash=curve.dash, width=2), marker=dict(size=4),
                                 legendgroup=curve.group or None, yaxis=curve.axis,
                                 hovertemplate=f"{x_title} = %{{x:.3g}}<br>{curve.label} = %{{y:.4g}}"
                                               "<extra></extra>"))
    labels_at: dict[float, list[str]] = {}
    for marker in markers:  # one line per position; labels of coinciding checkpoints joined
        labels = labels_at.setdefault(round(float(marker.coords[0]), 12), [])
        if marker.label not in labels:
            labels.append(marker.label)
    for x, labels in labels_at.items():
        fig.add_vline(x=x, line=dict(color="gray", dash="dot", width=1),  # labelled inside the plot area
                      annotation=dict(text=", ".join(labels), bgcolor="rgba(255,255,255,0.8)"),
                      annotation_position="top right")
    twin = any(c.axis == "y2" for c in curves)
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center", y=0.985, yref="container",
                                                    yanchor="top", subtitle=dict(text=subtitle)),
                      xaxis_title=x_title, yaxis=dict(title=y_title, color=COLORS[0] if twin else None),
                      updatemenus=_log_y_menu(), margin=dict(t=125, b=95), legend=LEGEND_BELOW)
    if twin:  # its own ticks (not synced to the left grid), from 0
        fig.update_layout(yaxis2=dict(title=y2_title, overlaying="y", side="right", showgrid=False,
                                      color=COLORS[1], rangemode="tozero", tickmode="auto"))
    return fig


def spectrum_figure(title: str, spectra: Sequence[Spectrum], y_title: str = "eigenvalue",
                    note: str = "") -> go.Figure:
    """Eigenvalues by index as stems from 0 with residual norms as error bars; unconverged
    ones drawn as red crosses in their own legend entry so they cannot be mistaken for
    results. The y axis spans 0 and every value with its error bar (10 % headroom), so stems
    are read from 0; ``note`` (the trace) is written in the plot's top right corner."""
    fig = go.Figure()
    offsets = np.linspace(-0.12, 0.12, len(spectra)) if len(spectra) > 1 else [0.0]
    high, low = 0.0, 0.0
    for spectrum, offset in zip(spectra, offsets):
        values = np.asarray(spectrum.eigenvalues, dtype=np.float64)
        index = np.arange(1, len(values) + 1) + offset
        residuals = (np.asarray(spectrum.residuals, dtype=np.float64) if spectrum.residuals is not None
                     else np.zeros(len(values)))
        converged = (np.asarray(spectrum.converged, dtype=bool) if spectrum.converged is not None
                     else np.ones(len(values), dtype=bool))
        finite = np.isfinite(values)
        spread = np.nan_to_num(residuals[finite])
        high = max([high, *(values[finite] + spread)])
        low = min([low, *(values[finite] - spread)])
        stems_x = [v for i in index[finite] for v in (i, i, None)]
        stems_y = [v for y in values[finite] for v in (0.0, y, None)]
        fig.add_trace(go.Scatter(x=stems_x, y=stems_y, mode="lines", line=dict(color=spectrum.color, width=1.5),
                                 hoverinfo="skip", showlegend=False, legendgroup=spectrum.label))
        for mask, suffix, style in ((converged, "", dict(symbol="circle", size=9, color=spectrum.color)),
                                    (~converged, " (not converged)",
                                     dict(symbol="x", size=11, color="red", line=dict(width=1)))):
            if not mask.any():
                continue
            error = (dict(type="data", array=residuals[mask], visible=True, thickness=1.5, width=6)
                     if spectrum.residuals is not None else None)
            fig.add_trace(go.Scatter(
                x=index[mask], y=values[mask], mode="markers", marker=style, error_y=error,
                name=spectrum.label + suffix, legendgroup=spectrum.label, customdata=residuals[mask],
                text=[f"λ{k}" for k in np.arange(1, len(values) + 1)[mask]],
                hovertemplate="%{text} = %{y:.6g}<br>residual ‖Hv − λv‖ = %{customdata:.2g}<extra></extra>"))
    headroom = 0.1 * (high - low) if high > low else 1.0
    count = max((len(s.eigenvalues) for s in spectra), default=0)
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis=dict(title="index", range=[0.4, count + 0.6], dtick=1 if count <= 20 else None),
                      yaxis=dict(title=y_title, range=[low - headroom if low < 0 else 0.0, high + headroom],
                                 zeroline=True, zerolinecolor="#888"),
                      margin=dict(t=70, b=95), legend=LEGEND_BELOW)
    if note:
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0.99, y=0.98, xanchor="right", yanchor="top",
                           showarrow=False, bgcolor="rgba(255,255,255,0.9)", bordercolor="#999", borderwidth=1)
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
