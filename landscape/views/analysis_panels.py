"""The analysis panels: the Hessian spectrum and trace, the spectral density, gradient
noise, and the run-settings and directions tables. Registered when ``landscape.views``
imports this module."""

from __future__ import annotations

import h5py
import numpy as np

from . import plots
from .panels import FigureItem, Item, TableItem, child_groups, group_at, panel, try_part
from .reading import Unreadable, attribute_rows, attrs_of, dataset, float_array, format_value

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
    present = [(n, lab, c) for n, lab, c in _EIGEN_GROUPS if group_at(h5, f"curvature/{n}") is not None]
    trace = group_at(h5, "curvature/trace")
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
        items += try_part(path, read)
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
        items += try_part("curvature/trace", trace_rows)
    return items


@panel(order=50, name="Spectral density", reads=("curvature/density",))
def density_panel(h5: h5py.File) -> list[Item] | None:
    """The smoothed SLQ spectral density (with a width slider) and its settings."""
    group = group_at(h5, "curvature/density")
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
    return try_part("curvature/density", build)


# ============================================================================ noise
@panel(order=60, name="Gradient noise", reads=("noise",))
def noise_panel(h5: h5py.File) -> list[Item] | None:
    """Gradient-noise statistics, the noise and Hessian spectra, and their eigenvector overlap."""
    group = group_at(h5, "noise")
    if group is None:
        return None
    items: list[Item] = [TableItem("noise/scalars", "Gradient-noise statistics", ["quantity", "value"],
                                   attribute_rows(attrs_of(group), skip=("complete",)))]

    def spectrum() -> list[Item]:
        noise = float_array(group, "eigenvalues", ndim=1)
        hessian = float_array(group, "hessian_eigenvalues", ndim=1) if "hessian_eigenvalues" in group else None
        if hessian is None and group_at(h5, "curvature/hessian_top") is not None \
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
        items += try_part("noise/eigenvalues", spectrum)
    return items


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
    groups = child_groups(h5, "directions")
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
