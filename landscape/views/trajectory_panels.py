"""The trajectory panel: the training path over the contours of ``surfaces/trajectory`` (its PCA
plane), a marker per checkpoint (step, loss, distance from the plane), a slider revealing the
path up to a step, and a table. Registered when ``landscape.views`` imports this module."""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import plotly.graph_objects as go

from . import grid_plots, plots
from .panels import FigureItem, Item, TableItem, group_at, panel, try_part
from .reading import Unreadable, attrs_of, dataset, float_array, text_list
from .surface_panels import complete_part, grid_variants, read_surface

PATH = "trajectory"
SURFACE = "surfaces/trajectory"


def axis_titles(ratio: np.ndarray) -> tuple[str, str]:
    """``PC1 (83.2 %)``, ``PC2 (9.1 %)``: each axis with the share of the path it explains."""
    return f"PC1 ({100 * ratio[0]:.1f} %)", f"PC2 ({100 * ratio[1]:.1f} %)"


def hover_texts(labels: Sequence[str], steps: np.ndarray, loss: np.ndarray | None, loss_name: str,
                residual: np.ndarray, relative: np.ndarray) -> list[str]:
    """One hover text per checkpoint: label, step, loss, distance from the plane."""
    out = []
    for k, (label, step) in enumerate(zip(labels, steps, strict=True)):
        loss_text = f"<br>{loss_name} {loss[k]:.5g}" if loss is not None else ""
        out.append(f"{label}<br>step {int(step)}{loss_text}<br>off-plane distance {residual[k]:.3g} "
                   f"({100 * relative[k]:.1f} % of ‖θ_t − θ_final‖)")
    return out


def trajectory_figure(title: str, axes: grid_plots.GridAxes | None, variants: Sequence[grid_plots.GridVariant],
                      coords: np.ndarray, steps: np.ndarray, hover: Sequence[str]) -> go.Figure:
    """Contours (when the surface is there) with the path and its checkpoints on top; a slider
    shows the path up to each step (the last shows it all)."""
    fig = grid_plots.contour_figure(title, axes, variants) if axes is not None and variants else go.Figure()
    first = len(fig.data)
    fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="lines", name="path",
                             line=dict(color="white", width=2.5), hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", name="checkpoints",
                             marker=dict(size=8, color=np.arange(len(coords)), colorscale="Reds",
                                         line=dict(color="black", width=1)),
                             hovertext=list(hover), hovertemplate="%{hovertext}<extra></extra>", showlegend=False))
    fig.add_trace(go.Scatter(x=[coords[-1, 0]], y=[coords[-1, 1]], mode="markers+text", text=["θ_final"],
                             textposition="top right", name="final", hoverinfo="skip", showlegend=False,
                             marker=dict(symbol="star", size=14, color="white", line=dict(color="black", width=1.5))))
    slider_steps = [dict(method="restyle", label=str(int(step)),
                         args=[{"x": [coords[:k + 1, 0]] * 2, "y": [coords[:k + 1, 1]] * 2,
                                "hovertext": [None, list(hover[:k + 1])]}, [first, first + 1]])
                    for k, step in enumerate(steps)]
    x_title, y_title = (axes.x_title, axes.y_title) if axes is not None else ("PC1", "PC2")
    fig.update_layout(template=plots.TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"),
                      xaxis_title=x_title, yaxis_title=y_title, margin=dict(t=80, b=110),
                      sliders=[dict(active=len(steps) - 1, steps=slider_steps, pad=dict(t=50),
                                    currentvalue=dict(prefix="up to step "))])
    return fig


@panel(order=48, name="Training trajectory", reads=(PATH,))
def trajectory_panel(h5: h5py.File) -> list[Item] | None:
    """The path on its PCA plane's loss surface, and a table of the checkpoints."""
    group = group_at(h5, PATH)
    if group is None:
        return None

    def read() -> list[Item]:
        coords = float_array(group, "coordinates")
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise Unreadable(f"'coordinates' has shape {coords.shape}, expected [T, 2]")
        steps = dataset(group, "steps", ndim=1)
        residual, relative = float_array(group, "residual_norm", ndim=1), float_array(group, "relative_residual",
                                                                                        ndim=1)
        ratio = float_array(group, "explained_variance", ndim=1)
        attrs = attrs_of(group)
        labels = text_list(attrs.get("labels", "")) or [f"step {int(s)}" for s in steps]
        splits = text_list(attrs.get("splits", ""))
        split = "train" if "train" in splits else (splits[0] if splits else "")
        loss = float_array(group, f"{split}/loss", ndim=1) if split and f"{split}/loss" in group else None
        if not len(coords) == len(steps) == len(residual) == len(relative) == len(labels):
            raise Unreadable("coordinates, steps, residuals and labels differ in length")
        x_title, y_title = axis_titles(ratio)
        axes, variants, caption = None, [], "no surface stored: the path alone"
        surface_group = group_at(h5, SURFACE)
        if surface_group is not None:
            surface, caption = complete_part(read_surface("trajectory", surface_group))
            axes = grid_plots.GridAxes(surface.axes[0], surface.axes[1], x_title, y_title)
            variants = grid_variants(surface)
        hover = hover_texts(labels, steps, loss, f"{split} loss", residual, relative)
        figure = trajectory_figure("Training trajectory on its PCA plane", axes, variants, coords, steps, hover)
        worst = int(np.argmax(relative))
        text = (f"{len(steps)} checkpoints ordered by {attrs.get('steps_from', 'step')}; the plane of the top-2 "
                f"principal directions of θ_t − θ_final holds {100 * (ratio[0] + ratio[1]):.1f} % of the path's "
                f"variance; the checkpoint farthest from it ({labels[worst]}) is off by {100 * relative[worst]:.1f} % "
                "of its distance to θ_final, so its loss there can differ from the surface's under it")
        caption = " ".join(c for c in (text, caption) if c)
        rows = [[label, str(int(step)), f"{c[0]:.4g}", f"{c[1]:.4g}",
                 f"{loss[k]:.5g}" if loss is not None else "—", f"{residual[k]:.3g}", f"{100 * relative[k]:.1f} %"]
                for k, (label, step, c) in enumerate(zip(labels, steps, coords, strict=True))]
        table = TableItem("trajectory/table", "Checkpoints on the trajectory plane",
                          ["checkpoint", "step", x_title, y_title, f"{split} loss", "off-plane", "relative"], rows)
        return [FigureItem("trajectory/path", "Training trajectory", figure, caption), table]

    return try_part(PATH, read)
