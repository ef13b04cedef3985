"""Results files for the view tests, plus tests of the pure figure builders.

``write_real_scan`` writes a real scan of a trained digits MLP: random-direction 1-D and
2-D surfaces and an init→trained interpolation (through ``landscape.scan``), and the
curvature and noise groups computed exactly from the dense float64 Hessian and exact
per-example gradients of the same model (the analyses that will write them are built in
parallel; these groups follow the schema in the views brief).
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape import Problem, zoo
from landscape.problem import flatten, unflatten
from landscape.scan import base_settings, run_scan
from landscape.sharpness import SharpnessConfig
from landscape.sharpness.step import sharpness_step
from landscape.store import ResultsWriter
from landscape.surfaces import NamedDirection, SurfaceSpec, directions_step, random_directions, surface_step
from landscape.views import grid_plots, plots

HIDDEN = 8  # 682 parameters: the dense Hessian is cheap


def trained_mlp(steps: int = 150, seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A digits MLP trained full-batch with Adam, and its initial parameters."""
    torch.manual_seed(seed)
    model = zoo.digits_mlp(hidden=HIDDEN).double()
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    (x, y), = zoo.digits(batch_size=4096)["train"]
    x = x.double()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, init


def make_problem(model: torch.nn.Module) -> Problem:
    return Problem.create(model, F.cross_entropy, zoo.digits(batch_size=512), dtype=torch.float64)


def dense_hessian(problem: Problem) -> torch.Tensor:
    total = problem.num_examples("train")
    flat = flatten(problem.params)

    def risk(vector: torch.Tensor) -> torch.Tensor:
        params = unflatten(vector, problem.params)
        return sum(problem.batch_loss(params, b) * (b.size / total) for b in problem.batches("train"))
    return torch.func.hessian(risk)(flat)


def per_example_gradients(problem: Problem) -> torch.Tensor:
    def loss_one(params, x, y):
        return F.cross_entropy(problem.forward(params, x[None]), y[None])
    rows = []
    for batch in problem.batches("train"):
        grads = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(problem.params, batch.inputs,
                                                                                 batch.target)
        rows.append(torch.cat([grads[n].reshape(batch.size, -1) for n in problem.params], dim=1))
    return torch.cat(rows)


def lanczos_quadrature(h: np.ndarray, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SLQ nodes/weights of one Rademacher probe (full reorthogonalization)."""
    n = h.shape[0]
    v = rng.choice([-1.0, 1.0], size=n) / math.sqrt(n)
    basis, alphas, betas = [v], [], []
    for j in range(steps):
        w = h @ basis[j]
        alphas.append(float(basis[j] @ w))
        w -= np.stack(basis).T @ (np.stack(basis) @ w)
        w -= np.stack(basis).T @ (np.stack(basis) @ w)
        beta = float(np.linalg.norm(w))
        if j == steps - 1 or beta < 1e-12:
            break
        betas.append(beta)
        basis.append(w / beta)
    t = np.diag(alphas) + np.diag(betas[:len(alphas) - 1], 1) + np.diag(betas[:len(alphas) - 1], -1)
    nodes, vectors = np.linalg.eigh(t)
    return nodes, vectors[0] ** 2


def _curvature_and_noise(writer: ResultsWriter, problem: Problem) -> None:
    h = dense_hessian(problem).numpy()
    evals, evecs = np.linalg.eigh(h)
    order = np.argsort(-evals)
    top, bottom = order[:8], order[::-1][:4]

    def ritz(indices: np.ndarray, spoil_last: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values, residuals, converged = [], [], []
        for k, i in enumerate(indices):
            v = evecs[:, i].copy()
            if spoil_last and k == len(indices) - 1:  # a deliberately unconverged Ritz pair
                v += 0.05 * np.random.default_rng(1).standard_normal(len(v)) / math.sqrt(len(v))
                v /= np.linalg.norm(v)
            lam = float(v @ h @ v)
            residual = float(np.linalg.norm(h @ v - lam * v))
            values.append(lam)
            residuals.append(residual)
            converged.append(residual <= 1e-6 * max(abs(lam), 1e-12))
        return np.array(values), np.array(residuals), np.array(converged)

    for name, which, indices, spoil in (("hessian_top", "LA", top, True), ("hessian_bottom", "SA", bottom, False)):
        values, residuals, converged = ritz(indices, spoil)
        writer.write_group(f"curvature/{name}",
                           {"operator": "hessian", "which": which, "k": len(values), "tol": 1e-6,
                            "num_matvecs": 0, "num_data_passes": 0, "method": "dense eigh (test fixture)"},
                           {"eigenvalues": values, "residuals": residuals, "converged": converged})
    rng = np.random.default_rng(0)
    probes = rng.choice([-1.0, 1.0], size=(30, h.shape[0]))
    samples = np.einsum("pi,ij,pj->p", probes, h, probes)
    writer.write_group("curvature/trace", {"method": "hutchinson", "estimate": float(samples.mean()),
                                           "stderr": float(samples.std(ddof=1) / math.sqrt(len(samples))),
                                           "num_probes": len(samples), "exact": float(np.trace(h))}, {})
    quadratures = [lanczos_quadrature(h, 60, rng) for _ in range(3)]
    steps = min(len(q[0]) for q in quadratures)
    writer.write_group("curvature/density", {"num_probes": 3, "num_steps": steps, "num_parameters": h.shape[0]},
                       {"nodes": np.stack([q[0][:steps] for q in quadratures]),
                        "weights": np.stack([q[1][:steps] for q in quadratures])})

    g = per_example_gradients(problem).numpy()
    mean = g.mean(axis=0)
    centred = g - mean
    sigma = centred.T @ centred / len(g)
    s_vals, s_vecs = np.linalg.eigh(sigma)
    s_order = np.argsort(-s_vals)[:10]
    trace_sigma, grad_norm_sq = float(np.trace(sigma)), float(mean @ mean)
    writer.write_group("noise", {
        "num_examples": len(g), "batch_size": 32, "method": "dense covariance (test fixture)",
        "trace_sigma": trace_sigma, "grad_norm_sq": grad_norm_sq, "b_simple": trace_sigma / grad_norm_sq,
        "tr_h_sigma": float(np.trace(h @ sigma)),
        "tr_h_sigma_isotropic": float(np.trace(h)) * trace_sigma / h.shape[0]},
        {"eigenvalues": s_vals[s_order], "hessian_eigenvalues": evals[order[:10]],
         "overlap": np.abs(np.sum(s_vecs[:, s_order] * evecs[:, order[:10]], axis=0)) ** 2})


def write_real_scan(path: Path, **options) -> Path:
    """A finished results file of a real (small) scan; ``extras`` adds curvature and noise.

    Runs on one thread: on a busy 2-core machine, tiny float64 ops were 100× slower with two
    threads spinning against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _write_real_scan(path, **options)
    finally:
        torch.set_num_threads(threads)


def _write_real_scan(path: Path, *, model_spec: str = "digits_mlp", extras: bool = True,
                     surface_name: str = "2d", marker_label: str = "trained", points_2d: int = 11) -> Path:
    model, init = trained_mlp()
    problem = make_problem(model)
    provenance = {"checkpoint_path": "tests/digits_mlp.pt", "checkpoint_sha256": "0" * 64,
                  "checkpoint_format": "state_dict", "model_spec": model_spec, "data_spec": "digits",
                  "loss_spec": "cross_entropy", "trusted": False, "seed": 0}
    settings = base_settings(problem, provenance, normalization="filter", include_1d=False)
    interp = NamedDirection("interp", {n: problem.params[n] - init[n] for n in init},
                            {"kind": "interpolation", "normalization": "none"})
    steps = [
        directions_step(["d0", "d1", "interp"], lambda: [*random_directions(problem.params, 2, seed=0), interp]),
        surface_step(SurfaceSpec("1d", ["d0"], [np.linspace(-1, 1, 21)], ["train", "test"])),
        surface_step(SurfaceSpec(surface_name, ["d0", "d1"], [np.linspace(-1, 1, points_2d)] * 2,
                                 ["train", "test"])),
        surface_step(SurfaceSpec("interpolation", ["interp"], [np.linspace(-0.25, 1.25, 16)], ["train", "test"],
                                 [(0.0,), (1.0,)], ["init", marker_label]), origin=init),
    ]
    if extras:
        steps.append(type(steps[0])("curvature+noise", lambda p, w: _curvature_and_noise(w, p)))
        steps.append(sharpness_step(SharpnessConfig(measures=("average", "ray_width"), samples=8, rays=3,
                                                    ray_points=11), label="trained"))
    return run_scan(problem, path, steps, settings)


def copy_without(src: Path, dst: Path, drop: list[str], attrs: dict | None = None) -> Path:
    """A copy of ``src`` with the given HDF5 paths deleted and root attributes changed."""
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        for path in drop:
            del f[path]
        for key, value in (attrs or {}).items():
            if value is None:
                del f.attrs[key]
            else:
                f.attrs[key] = value
    return dst


# ============================================================================ pure builders
def test_grid_orientation_matches_ij_axes():
    """value[i, j] belongs to (x[i], y[j]); Plotly's z[row][col] to (x[col], y[row]).
    An asymmetric function on a non-square grid catches a swapped orientation exactly."""
    x, y = np.linspace(-1, 1, 5), np.linspace(0, 2, 3)
    grid = np.add.outer(10 * x, y)  # f(x, y) = 10x + y, 'ij'
    axes = grid_plots.GridAxes(x, y, "x", "y", [plots.Marker("θ*", (0.0, 1.0))])
    variants = [grid_plots.GridVariant("f", grid, "f")]
    for build in (grid_plots.contour_figure, grid_plots.heatmap_figure, grid_plots.surface3d_figure):
        trace = build("t", axes, variants).data[0]
        z = np.asarray(trace.z)
        for i, xi in enumerate(x):
            for j, yj in enumerate(y):
                assert z[j][i] == pytest.approx(10 * xi + yj, abs=0)


def test_smoothed_density_is_the_gaussian_mixture():
    """One node/weight is exactly a normal pdf; the mixture of 2 probes integrates to 1
    (trapezoid on 800 points over ±(5σ + 5 % of range): error < 1e-6)."""
    grid = np.linspace(-3, 3, 601)
    single = plots.smoothed_density(np.array([[0.5]]), np.array([[1.0]]), 0.2, grid)
    expected = np.exp(-0.5 * ((grid - 0.5) / 0.2) ** 2) / (0.2 * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(single, expected, rtol=1e-12, atol=1e-15)

    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(2, 30)) * 3
    weights = rng.random((2, 30))
    weights /= weights.sum(axis=1, keepdims=True)
    sigma = plots.default_sigma(nodes)
    grid = plots.density_grid(nodes, sigma)
    density = plots.smoothed_density(nodes, weights, sigma, grid)
    assert np.sum((density[1:] + density[:-1]) / 2 * np.diff(grid)) == pytest.approx(1.0, abs=1e-6)
    assert sigma == pytest.approx(0.01 * (nodes.max() - nodes.min()))


def test_log10_grid_blanks_nonpositive_and_refuses_all_nonpositive():
    grid = np.array([[1.0, 100.0], [0.0, np.nan]])
    log = plots.log10_grid(grid)
    assert log[0, 0] == 0.0 and log[0, 1] == 2.0
    assert np.isnan(log[1, 0]) and np.isnan(log[1, 1])
    assert plots.log10_grid(np.array([[-1.0, 0.0]])) is None


def test_spectrum_flags_unconverged_values_in_their_own_trace():
    spectrum = plots.Spectrum("top", np.array([5.0, 3.0, 1.0]), np.array([1e-9, 1e-9, 0.5]),
                              np.array([True, True, False]))
    fig = plots.spectrum_figure("H", [spectrum])
    stems, converged, flagged = fig.data
    assert stems.mode == "lines" and list(stems.y) == [0.0, 5.0, None, 0.0, 3.0, None, 0.0, 1.0, None]
    assert [converged.name, flagged.name] == ["top", "top (not converged)"]
    assert list(flagged.y) == [1.0] and list(flagged.error_y.array) == [0.5]
    assert flagged.marker.symbol == "x"
    assert list(fig.layout.yaxis.range) == [0.0, pytest.approx(5.0 + 0.1 * 5.0)]  # from 0, 10 % headroom


# ============================================================================ PNG reading (no PIL here)
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) to [h, w, c]."""
    import zlib

    width, height = png_size(data)
    bit_depth, colour_type, interlace = data[24], data[25], data[28]
    assert bit_depth == 8 and colour_type in (2, 6) and interlace == 0, "unsupported PNG"
    channels = 3 if colour_type == 2 else 4
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8)
    stride = width * channels
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(stride, dtype=np.int32)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + prev) & 255
        else:  # Sub, Average, Paeth depend on the reconstructed left neighbour
            cur = np.zeros(stride, dtype=np.int32)
            for x in range(stride):
                left = cur[x - channels] if x >= channels else 0
                up, up_left = prev[x], (prev[x - channels] if x >= channels else 0)
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + up) // 2
                else:
                    p = left + up - up_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                cur[x] = (line[x] + pred) & 255
            out[y] = cur
    return out.reshape(height, width, channels).astype(np.uint8)


def test_markers_come_from_attributes_else_the_origin():
    from landscape.views.surface_panels import surface_markers

    axes = [np.linspace(-0.5, 1.5, 5), np.linspace(-0.5, 1.5, 5)]
    plane = {"markers": np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 1.0]]), "marker_labels": ["a.pt", "b.pt", "c.pt"]}
    found = surface_markers(plane, 2, axes)
    assert [(m.label, m.coords) for m in found] == [("a.pt", (0.0, 0.0)), ("b.pt", (1.0, 0.0)), ("c.pt", (0.3, 1.0))]
    unlabelled = surface_markers({"markers": np.array([[0.0], [1.0]])}, 1, axes[:1])
    assert [m.label for m in unlabelled] == ["checkpoint 0", "checkpoint 1"]
    assert [m.coords for m in surface_markers({}, 2, axes)] == [(0.0, 0.0)]
    assert surface_markers({}, 1, [np.linspace(0.5, 1.0, 3)]) == []  # origin outside the grid: no θ*


def test_3d_menu_updates_surface_marker_and_axis_title_together():
    x = y = np.linspace(-1, 1, 3)
    grid = np.add.outer(x ** 2, y ** 2) + 1.0
    axes = grid_plots.GridAxes(x, y, "x", "y", [plots.Marker("θ*", (0.0, 0.0))])
    log = np.log10(grid)
    variants = [grid_plots.GridVariant("loss", grid, "loss", "loss"),
                grid_plots.GridVariant("log", log, "log10 loss", "loss", log=True)]
    button = grid_plots.surface3d_figure("t", axes, variants).layout.updatemenus[0].buttons[1]
    restyle, relayout, traces = button.args
    assert button.method == "update" and list(traces) == [0, 1, 2]  # surface, θ*'s stem, θ*
    np.testing.assert_array_equal(restyle["z"][0], log.T)
    stem_low, stem_high = restyle["z"][1][:2]
    assert stem_low == log[1, 1] and restyle["z"][2] == [stem_high] and stem_high > stem_low
    assert relayout["scene.zaxis.title.text"] == "log10 loss" and relayout["scene.zaxis.range"][1] > stem_high
    assert restyle["hovertemplate"][2] == "%{text}<extra></extra>"  # the marker keeps its hover
