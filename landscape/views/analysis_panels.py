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
        note = _trace_note(trace) if trace is not None else ""
        items.append(FigureItem("curvature/spectrum", "Hessian eigenvalues",
                                plots.spectrum_figure("Hessian eigenvalues", spectra, note=note), caption))
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


def _trace_note(group: h5py.Group) -> str:
    """'tr(H) = 15.15 ± 1.26 (s.e., hutchinson, 30 probes)' for the spectrum figure; '' when unreadable."""
    attrs = attrs_of(group)
    try:
        estimate = float(attrs["estimate"])
        stderr = float(attrs.get("stderr", float("nan")))
    except (KeyError, TypeError, ValueError):
        return ""
    how = ", ".join(str(x) for x in (attrs.get("method", ""), f"{attrs['num_probes']} probes"
                                     if "num_probes" in attrs else "") if x)
    error = f" ± {stderr:.3g} (s.e.)" if np.isfinite(stderr) and stderr > 0 else ""
    return f"tr(H) = {estimate:.4g}{error}" + (f" · {how}" if how else "")


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
# g_i: per-example gradients, ḡ their mean, Σ = (1/n) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ, B: the batch size
NOISE_NAMES = {
    "trace_sigma": "tr Σ: total gradient variance",
    "trace_sigma_stderr": "standard error of tr Σ",
    "grad_norm_sq": "‖ḡ‖²: squared norm of the mean gradient",
    "b_simple": "B_simple = tr Σ / ‖ḡ‖²: simple noise scale",
    "b_simple_two_batch": "B_simple from two batch sizes (McCandlish et al.)",
    "two_batch_trace_sigma": "tr Σ from two batch sizes",
    "two_batch_trace_sigma_stderr": "standard error of the two-batch tr Σ",
    "two_batch_grad_norm_sq": "‖ḡ‖² from two batch sizes",
    "two_batch_grad_norm_sq_stderr": "standard error of the two-batch ‖ḡ‖²",
    "two_batch_sizes": "the two batch sizes",
    "two_batch_num_pairs": "batch pairs drawn",
    "minibatch_scale_with_replacement": "1/B: Cov(mini-batch gradient) = (1/B) Σ, with replacement",
    "minibatch_scale_without_replacement": "(N − B)/(B(N − 1)): the same scale, without replacement",
    "tail_index": "α̂: tail index of the mini-batch noise (α-stable; 2 is Gaussian)",
    "hessian_computed": "Hessian terms computed",
    "b_noise": "B_noise = tr(HΣ) / ḡᵀHḡ: Hessian-aware noise scale",
    "tr_h_sigma": "tr(HΣ): noise along curvature",
    "tr_h_sigma_stderr": "standard error of tr(HΣ)",
    "tr_h_sigma_exact": "tr(HΣ) computed exactly",
    "tr_h_sigma_isotropic": "tr Σ · tr H / d: tr(HΣ) if Σ were isotropic",
    "trace_hessian": "tr H",
    "trace_hessian_stderr": "standard error of tr H",
    "g_h_g": "ḡᵀHḡ: curvature along the mean gradient",
    "hessian_eigen_converged": "top Hessian eigenvalues converged",
    "num_examples": "n: examples used",
    "dataset_size": "N: examples in the split",
    "batch_size": "B: training batch size",
    "num_parameters": "d: parameters",
    "k": "eigenvalues of Σ computed",
    "covariance_normalization": "Σ normalization",
    "spectrum_method": "how Σ's spectrum was computed",
    "spectrum_converged": "Σ's eigenvalues converged",
    "method": "per-example gradients by",
    "fallback_reason": "why the fallback was used",
}
@panel(order=60, name="Gradient noise", reads=("noise",))
def noise_panel(h5: h5py.File) -> list[Item] | None:
    """Gradient-noise statistics, the noise and Hessian spectra, and their eigenvector overlap."""
    group = group_at(h5, "noise")
    if group is None:
        return None
    rows = [[NOISE_NAMES.get(name, name), value, name]
            for name, value in attribute_rows(attrs_of(group), skip=("complete",))]
    items: list[Item] = [TableItem("noise/scalars", "Gradient-noise statistics", ["quantity", "value", "attribute"],
                                   rows)]

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
