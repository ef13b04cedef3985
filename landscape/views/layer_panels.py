"""The per-layer curvature panel: ``curvature/per_layer`` as horizontal bars (the top
eigenvalue and the trace of each group's diagonal block) and a table. Registered when
``landscape.views`` imports this module."""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .panels import FigureItem, Item, TableItem, group_at, panel, try_part
from .plots import COLORS, TEMPLATE
from .reading import Unreadable, attrs_of, dataset, float_array

PATH = "curvature/per_layer"
LOG_SPAN_DECADES = 2.0  # a log x axis once the positive values span more than this


def log_axis(values: np.ndarray) -> bool:
    """Log scale when every value is positive and finite and they span > 2 decades."""
    finite = values[np.isfinite(values)]
    return bool(finite.size and finite.size == values.size and (finite > 0).all()
                and np.log10(finite.max() / finite.min()) > LOG_SPAN_DECADES)


def per_layer_figure(title: str, names: Sequence[str], top: np.ndarray, trace: np.ndarray,
                     trace_stderr: np.ndarray, converged: np.ndarray) -> go.Figure:
    """Two bar charts side by side, one bar per group (first group on top): the top
    eigenvalue (unconverged ones hatched) and the trace with its standard error."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("top eigenvalue λ_max", "trace"))
    hover = [f"{n}<br>%{{x:.6g}}" + ("" if ok else " (not converged)") for n, ok in zip(names, converged,
                                                                                      strict=True)]
    fig.add_trace(go.Bar(y=list(names), x=top, orientation="h", marker_color=COLORS[0], name="λ_max",
                         marker_pattern_shape=["" if ok else "/" for ok in converged],
                         hovertemplate=[h + "<extra></extra>" for h in hover]), row=1, col=1)
    fig.add_trace(go.Bar(y=list(names), x=trace, orientation="h", marker_color=COLORS[2], name="trace",
                         error_x=dict(type="data", array=trace_stderr, visible=bool((trace_stderr > 0).any())),
                         hovertemplate="%{y}<br>%{x:.6g}<extra></extra>"), row=1, col=2)
    for col, values in ((1, top), (2, trace)):
        fig.update_xaxes(type="log" if log_axis(values) else "linear", exponentformat="power", row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.5, xanchor="center"), showlegend=False,
                      height=max(320, 120 + 28 * len(names)), margin=dict(t=90))
    return fig


@panel(order=45, name="Per-layer curvature", reads=(PATH,))
def per_layer_panel(h5: h5py.File) -> list[Item] | None:
    """Top eigenvalue and trace per parameter group, as bars and as a table."""
    group = group_at(h5, PATH)
    if group is None:
        return None

    def read() -> list[Item]:
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in dataset(group, "names", ndim=1)]
        columns = {c: float_array(group, c, ndim=1) for c in
                   ("num_parameters", "top_eigenvalue", "residual", "trace", "trace_stderr")}
        converged = dataset(group, "converged", ndim=1).astype(bool)
        exact = (dataset(group, "trace_exact", ndim=1).astype(bool) if "trace_exact" in group
                 else np.zeros(len(names), dtype=bool))
        for name, values in [*columns.items(), ("converged", converged), ("trace_exact", exact)]:
            if len(values) != len(names):
                raise Unreadable(f"'{name}' has {len(values)} entries for {len(names)} groups")
        attrs = attrs_of(group)
        decay = float(attrs.get("weight_decay", 0.0) or 0.0)
        operator = attrs.get("operator", "hessian")
        what = f"{operator}" + (f" + {decay:g}·I (weight decay)" if decay else "")
        figure = per_layer_figure(f"Per-layer curvature ({what})", names, columns["top_eigenvalue"],
                                  columns["trace"], columns["trace_stderr"], converged)
        unconverged = int((~converged).sum())
        caption = (f"groups by {attrs.get('groups_spec', 'module')} on the {attrs.get('split', 'train')} split; "
                   f"each bar is the diagonal block of its group's parameters; trace: "
                   f"{attrs.get('trace_rule', '')}; error bars: standard error"
                   + (f"; {unconverged} hatched eigenvalue(s) did not converge" if unconverged else ""))
        rows = [[n, f"{int(p)}", f"{lam:.6g}", f"{res:.1e}", "yes" if ok else "no", f"{tr:.6g}",
                 "exact" if ex else f"{err:.3g}"]
                for n, p, lam, res, ok, tr, err, ex in zip(
                    names, columns["num_parameters"], columns["top_eigenvalue"], columns["residual"], converged,
                    columns["trace"], columns["trace_stderr"], exact, strict=True)]
        table = TableItem("curvature/per_layer/table", "Per-layer curvature",
                          ["group", "parameters", "λ_max", "residual", "converged", "trace", "trace s.e."], rows)
        return [FigureItem("curvature/per_layer", "Per-layer curvature", figure, caption), table]

    return try_part(PATH, read)
