"""The panel of a tracker file (schema ``landscape-tracker``, written by
:class:`landscape.tracking.SharpnessTracker`): λ_max against the training step with the
stability thresholds of gradient descent, the loss, and tr H and the gradient noise scale
when they were recorded. Registered when ``landscape.views`` imports this module."""

from __future__ import annotations

import math

import h5py
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..tracking.file import SCHEMA as TRACKER_SCHEMA
from ..tracking.file import read_series
from .panels import FigureItem, Item, TableItem, panel, try_part
from .plots import COLORS, TEMPLATE
from .reading import attrs_of


def stability_lines(learning_rate: float, momentum: float) -> list[tuple[str, float]]:
    """``(label, value)`` of the thresholds λ_max is compared with: 2/η for gradient descent
    and, with heavy-ball momentum β > 0, 2(1+β)/η (none when η is unknown)."""
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        return []
    lines = [("2/η", 2.0 / learning_rate)]
    if momentum > 0:
        lines.append(("2(1+β)/η", 2.0 * (1.0 + momentum) / learning_rate))
    return lines


def tracker_figure(series: dict[str, np.ndarray], learning_rate: float, momentum: float) -> go.Figure:
    """Stacked panels sharing the step axis: λ_max (with the stability lines), the loss, and
    tr H ± s.e. and B_simple when any of them is finite."""
    step = series["step"]
    rows: list[tuple[str, str]] = [("lambda_max", "λ_max"), ("loss", "loss")]
    rows += [(name, title) for name, title in (("trace", "tr H"), ("noise_scale", "noise scale B_simple"))
             if name in series and np.isfinite(series[name]).any()]
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[title for _, title in rows])
    for row, (name, title) in enumerate(rows, start=1):
        error = None
        if name == "trace" and "trace_stderr" in series:
            error = dict(type="data", array=series["trace_stderr"], visible=True)
        fig.add_trace(go.Scatter(x=step, y=series[name], mode="lines+markers", name=title, error_y=error,
                                 marker=dict(size=4), line=dict(color=COLORS[row - 1])), row=row, col=1)
    for i, (label, value) in enumerate(stability_lines(learning_rate, momentum)):
        fig.add_hline(y=value, line=dict(color="#333", width=2, dash="dash" if i == 0 else "dot"), row=1, col=1,
                      annotation_text=f"{label} = {value:.4g}", annotation_position="top left")
    fig.update_xaxes(title_text="training step", row=len(rows), col=1)
    fig.update_layout(template=TEMPLATE, showlegend=False, height=260 * len(rows) + 80,
                      title=dict(text="Sharpness during training", x=0.5, xanchor="center"))
    return fig


def summary_rows(series: dict[str, np.ndarray], lines: list[tuple[str, float]], saved: int) -> list[list[str]]:
    """The table under the figure: records, last values, the thresholds and λ_max's ratio to them."""
    last = {k: float(v[-1]) for k, v in series.items()}
    rows = [["records", f"{len(series['step'])} (steps {int(series['step'][0])}–{int(series['step'][-1])})"],
            ["saved parameters", f"{saved} steps"],
            ["last loss", f"{last['loss']:.6g}"], ["last λ_max", f"{last['lambda_max']:.6g}"],
            ["max λ_max", f"{float(np.max(series['lambda_max'])):.6g}"],
            ["Lanczos products per record", f"{int(np.mean(series['lambda_max_matvecs']))} on average"],
            ["tracker seconds per record", f"{float(np.mean(series['seconds'])):.3g} on average"]]
    rows += [[label, f"{value:.6g} (last λ_max / {label} = {last['lambda_max'] / value:.3f})"]
             for label, value in lines]
    return rows


@panel(order=70, name="Sharpness during training", reads=("series", "parameters"))
def tracker_panel(h5: h5py.File) -> list[Item] | None:
    """λ_max, loss (and tr H, noise scale) against the step, from a tracker file."""
    attrs = attrs_of(h5)
    if attrs.get("schema") != TRACKER_SCHEMA:
        return None

    def read() -> list[Item]:
        series = read_series(h5)
        if not len(series["step"]):
            return [TableItem("tracker/summary", "Sharpness during training", ["", ""],
                              [["records", "none yet"]], "the tracker has not completed a record")]
        learning_rate, momentum = float(attrs.get("learning_rate", math.nan)), float(attrs.get("momentum", 0.0))
        lines = stability_lines(learning_rate, momentum)
        caption = (f"recorded every {attrs.get('every')} steps on the tracker's fixed measurement set; λ_max by "
                   "Lanczos (warm-started from the previous record)"
                   + ("; dashed: 2/η, where gradient descent on a quadratic becomes unstable"
                      + ("; dotted: 2(1+β)/η for heavy-ball momentum" if momentum > 0 else "") if lines
                      else "; no learning rate recorded, so no stability line"))
        figure = tracker_figure(series, learning_rate, momentum)
        saved = len(h5["parameters"]) if "parameters" in h5 else 0
        return [FigureItem("tracker/series", "Sharpness during training", figure, caption),
                TableItem("tracker/summary", "Tracker summary", ["quantity", "value"],
                          summary_rows(series, lines, saved))]

    return try_part("series", read)
