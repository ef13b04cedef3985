"""Panels of sharpness measures (``scan --sharpness``, ``compare``): the measures table and bar
chart, the loss along the shared random rays, the lines between checkpoints with their
loss barriers, and averaged weights against averaged predictions (``compare --ensemble``)."""

from __future__ import annotations

import math

import h5py
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import plots
from .flatness import Comparison, Ensemble, read_comparison, read_ensemble
from .panels import FigureItem, Item, TableItem, group_at, panel, try_part
from .surface_panels import read_surface


def _measures_table(comparison: Comparison) -> TableItem:
    labels = [m.label for m in comparison.models]
    rows = []
    for name in comparison.measure_names():
        results = [m.measures.get(name) for m in comparison.models]
        first = next(r for r in results if r is not None)
        cells = ["—" if r is None else r.value_text() + ("" if r.converged else " (not converged)") for r in results]
        rows.append([name, *cells, "yes" if first.rescaling_invariant else "no", first.description])
    return TableItem("sharpness/table", "Sharpness measures", ["measure", *labels, "rescaling-invariant", "what"],
                     rows, "± one standard error where the measure is an average over random draws.")


def _cost_table(comparison: Comparison) -> TableItem:
    rows = []
    for model in comparison.models:
        for name, r in model.measures.items():
            rows.append([model.label, name, str(r.gradient_evaluations), str(r.loss_evaluations), f"{r.seconds:.3g}",
                         r.notes or ""])
    return TableItem("sharpness/cost", "Cost of each measure",
                     ["model", "measure", "gradient evaluations", "loss evaluations", "seconds", "notes"], rows,
                     "Evaluations are full passes over the split's data (one HVP counts as two gradients).")


def _bars_figure(comparison: Comparison) -> go.Figure:
    names = comparison.measure_names()
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, vertical_spacing=0.5 / max(rows, 1),
                        horizontal_spacing=0.06)
    for k, name in enumerate(names):
        for i, model in enumerate(comparison.models):
            result = model.measures.get(name)
            if result is None:
                continue
            error = dict(type="data", array=[result.stderr], visible=True) if math.isfinite(result.stderr) else None
            fig.add_trace(go.Bar(x=[model.label], y=[result.value], error_y=error, name=model.label,
                                 legendgroup=model.label, showlegend=k == 0,
                                 marker_color=plots.COLORS[i % len(plots.COLORS)]),
                          row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(template=plots.TEMPLATE, title=dict(text="Sharpness by measure", x=0.5, xanchor="center"),
                      height=260 * rows + 80, bargap=0.3, margin=dict(t=90))
    return fig


def _rays_figure(comparison: Comparison) -> go.Figure | None:
    fig = go.Figure()
    rise = None
    for i, model in enumerate(comparison.models):
        result = model.measures.get("ray_width")
        if result is None or "loss" not in result.curves or "alpha" not in result.curves:
            continue
        alpha = np.asarray(result.curves["alpha"])
        curves = np.asarray(result.curves["loss"]) - result.baseline_loss
        color = plots.COLORS[i % len(plots.COLORS)]
        low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        fig.add_trace(go.Scatter(x=np.concatenate([alpha, alpha[::-1]]), y=np.concatenate([high, low[::-1]]),
                                 fill="toself", fillcolor=color, opacity=0.18, line=dict(width=0),
                                 hoverinfo="skip", legendgroup=model.label, showlegend=False))
        fig.add_trace(go.Scatter(x=alpha, y=np.nanmean(curves, axis=0), mode="lines", line=dict(color=color),
                                 name=f"{model.label} (mean of {curves.shape[0]} rays; band: min–max)",
                                 legendgroup=model.label))
        rise = float(result.parameters.get("rise", rise or 0.0))
    if not fig.data:
        return None
    if rise:
        fig.add_hline(y=rise, line=dict(color="gray", dash="dot", width=1),
                      annotation_text=f"Δ = {rise:g}", annotation_position="top left")
    fig.update_layout(template=plots.TEMPLATE, title=dict(text="Loss rise along shared random rays",
                                                          x=0.5, xanchor="center"),
                      xaxis_title="distance along a filter-normalized ray", yaxis_title="L(θ + αd) − L(θ)",
                      legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return fig


@panel(order=30, name="Sharpness", reads=("sharpness", "models"))
def sharpness_panel(h5: h5py.File) -> list[Item] | None:
    """Measures per model (table, bars with standard errors, cost) and the shared random rays."""
    if group_at(h5, "sharpness") is None:
        return None
    comparison = read_comparison(h5)
    if not any(m.measures for m in comparison.models):
        return None
    items: list[Item] = [_measures_table(comparison)]
    items += try_part("sharpness/bars", lambda: [FigureItem("sharpness/bars", "Sharpness by measure",
                                                            _bars_figure(comparison))])

    def rays() -> list[Item]:
        figure = _rays_figure(comparison)
        return [] if figure is None else [FigureItem("sharpness/rays", "Random rays", figure)]
    items += try_part("sharpness/rays", rays)
    items.append(_cost_table(comparison))
    return items


def line_names(h5: h5py.File) -> list[str]:
    """Lines between checkpoints that have a barrier group (drawn here, not with the 1-D curves)."""
    barriers = group_at(h5, "barriers")
    return [] if barriers is None else [n for n in barriers if f"surfaces/{n}" in h5]


@panel(order=31, name="Lines between checkpoints", reads=("barriers",))
def lines_panel(h5: h5py.File) -> list[Item] | None:
    """The loss along each line θ_A + t(θ_B − θ_A), its barrier marked, and the barrier table."""
    names = line_names(h5)
    if not names:
        return None
    comparison = read_comparison(h5)
    barriers = {b.name: b for b in comparison.barriers}

    def build() -> list[Item]:
        fig = go.Figure()
        for k, name in enumerate(names):
            surface = read_surface(name, h5[f"surfaces/{name}"])
            barrier = barriers.get(name)
            label = f"{barrier.first_label} → {barrier.second_label}" if barrier else name
            color = plots.COLORS[k % len(plots.COLORS)]
            for split, metrics in surface.values.items():
                fig.add_trace(go.Scatter(x=surface.axes[0], y=metrics["loss"], mode="lines",
                                         line=dict(color=color, dash=plots.SPLIT_DASH.get(split, "dashdot")),
                                         name=f"{label} {split}", legendgroup=label))
                if barrier and split in barrier.peak_at and math.isfinite(barrier.values[split]):
                    t = barrier.peak_at[split]
                    y = float(np.interp(t, surface.axes[0], metrics["loss"]))
                    fig.add_trace(go.Scatter(x=[t], y=[y], mode="markers+text", marker=dict(color=color, size=9,
                                             symbol="triangle-down"), text=[f"barrier {barrier.values[split]:.3g}"],
                                             textposition="top center", showlegend=False, legendgroup=label))
        for x in (0.0, 1.0):
            fig.add_vline(x=x, line=dict(color="gray", dash="dot", width=1))
        fig.update_layout(template=plots.TEMPLATE, title=dict(text="Loss along the lines between checkpoints",
                                                              x=0.5, xanchor="center"),
                          xaxis_title="t (0: first checkpoint, 1: second)", yaxis_title="loss")
        rows = [[f"{b.first_label} → {b.second_label}", *(f"{v:.4g} at t={b.peak_at[s]:.2f}"
                                                          for s, v in b.values.items())] for b in barriers.values()]
        splits = list(next(iter(barriers.values())).values) if barriers else []
        return [FigureItem("lines/loss", "Lines between checkpoints", fig),
                TableItem("lines/barriers", "Loss barriers", ["line", *(f"{s} barrier" for s in splits)], rows,
                          "max over t ∈ [0, 1] of L(t) minus the mean of L(0) and L(1)")]
    return try_part("barriers", build)



def _score(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.4g}"


def _ensemble_table(ensemble: Ensemble) -> TableItem:
    rows = [[split, _score(r.swa_loss), _score(r.swa_accuracy), _score(r.fge_loss), _score(r.fge_accuracy),
             _score(r.member_loss), _score(r.member_accuracy), f"{r.loss_gap:+.3g}", f"{r.prediction_gap:.3g}"]
            for split, r in ensemble.splits.items()]
    scored = ("the negative log-likelihood of the predicted class probabilities" if ensemble.prediction ==
              "probabilities" else "the problem's loss on the (averaged) outputs")
    caption = (f"SWA: one model with the mean weights w̄ of the {ensemble.num_checkpoints} checkpoints "
               f"({', '.join(ensemble.labels)}); BatchNorm statistics at w̄: {ensemble.bn_rule}. FGE: the mean of "
               f"their {ensemble.prediction}. Loss: {scored}; members: the checkpoints' own values, averaged. "
               "Loss gap = FGE − SWA loss (negative: the ensemble of predictions is better); prediction gap = "
               "mean over examples of ‖f_FGE(x) − f(x; w̄)‖. "
               f"Mean ‖Δ‖² = mean_i ‖w_i − w̄‖² = {ensemble.mean_sq_distance:.4g} over {ensemble.num_parameters} "
               "parameters. As mean_i Δ_i = 0 the first-order terms cancel: f_FGE − f(w̄) = "
               "½ mean_i Δ_iᵀ∇²f Δ_i + O(‖Δ‖³), so the two agree to O(‖Δ‖²) — a gap that is small for this "
               "mean ‖Δ‖² says the checkpoints sit in one region where the network is close to linear in its "
               "weights; averaging checkpoints of different basins has no such guarantee.")
    return TableItem("ensemble/table", "Averaged weights (SWA) vs averaged predictions (FGE)",
                     ["split", "SWA loss", "SWA accuracy", "FGE loss", "FGE accuracy", "mean member loss",
                      "mean member accuracy", "loss gap", "prediction gap"], rows, caption)


@panel(order=32, name="SWA vs FGE", reads=("ensemble",))
def ensemble_panel(h5: h5py.File) -> list[Item] | None:
    """SWA against FGE over the compared checkpoints, one row per split."""
    if group_at(h5, "ensemble") is None:
        return None

    def build() -> list[Item]:
        ensemble = read_ensemble(h5)
        return [] if ensemble is None else [_ensemble_table(ensemble)]
    return try_part("ensemble", build)
