"""Trace estimates and SLQ density against exact traces and moments of dense Hessians.

Trace: a seeded estimate within 3 standard errors of the exact trace (a ~0.3 % event per
seed if the stderr is right; the seeds are fixed, so the test is deterministic). SLQ:
weights sum to 1 per probe (1e-12), and the first two quadrature moments equal the
probe's quadratic forms qᵀHq and ‖Hq‖² exactly (1e-10 relative), whose probe mean
estimates tr(H)/D and tr(H²)/D (checked within 3 standard errors).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from curvature_cases import dense_hessian, mlp_problem
from landscape.curvature import HessianOperator
from landscape.errors import LandscapeError
from landscape.linalg import estimate_trace, smooth_density, spectral_density
from landscape.linalg.trace import rademacher


@functools.cache
def mlp_case():
    problem = mlp_problem()
    return HessianOperator(problem, hvp_mode="reverse"), dense_hessian(problem)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trace_within_three_standard_errors(method: str, seed: int) -> None:
    op, dense = mlp_case()
    op.reset_counters()
    result = estimate_trace(op, 30, method=method, seed=seed)
    exact = float(torch.trace(dense))
    assert result.stderr > 0 and math.isfinite(result.stderr)
    assert abs(result.estimate - exact) <= 3 * result.stderr
    assert result.num_matvecs == 30 and result.num_data_passes == 3  # 10 probes per pass
    assert abs(float(result.samples.mean()) - result.estimate) < 1e-12


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum() -> None:
    values = torch.tensor([1.0 / (i + 1) ** 2 for i in range(200)], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(200, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    matrix = (q * values) @ q.T
    plain = estimate_trace(matrix, 60, method="hutchinson")
    plus = estimate_trace(matrix, 60, method="hutch++")
    assert plus.stderr < plain.stderr / 5
    for r in (plain, plus):
        assert abs(r.estimate - float(values.sum())) <= 3 * r.stderr


def test_diagonal_estimate() -> None:
    op, dense = mlp_case()
    result = estimate_trace(op, 40, method="hutchinson", diagonal=True, seed=3)
    z = (result.diagonal - torch.diagonal(dense)).abs() / result.diagonal_stderr.clamp(min=1e-300)
    exact_entries = result.diagonal_stderr == 0  # entries whose off-diagonal row is zero
    assert float((z[~exact_entries] <= 3).double().mean()) >= 0.95
    with pytest.raises(LandscapeError, match="diagonal"):
        estimate_trace(op, 30, method="hutch++", diagonal=True)
    with pytest.raises(LandscapeError, match="at least"):
        estimate_trace(op, 1, method="hutchinson")


def test_slq_weights_moments_and_smoothing() -> None:
    op, dense = mlp_case()
    op.reset_counters()
    size = dense.shape[0]
    result = spectral_density(op, num_probes=6, num_steps=30, seed=0)
    assert result.nodes.shape == (6, 30) and result.weights.shape == (6, 30)
    assert op.num_data_passes == 30 and op.num_matvecs == 180  # all probes share each pass
    assert torch.allclose(result.weights.sum(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-12)
    eig = torch.linalg.eigvalsh(dense)
    assert float(result.nodes.min()) >= float(eig[0]) - 1e-8
    assert float(result.nodes.max()) <= float(eig[-1]) + 1e-8
    # the probes are the same Rademacher vectors, normalized: moments are their quadratic forms
    probes = rademacher(size, 6, torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
    hz = dense @ probes
    first, second = (probes * hz).sum(0) / size, (hz * hz).sum(0) / size
    assert torch.allclose(result.moment(1), first, rtol=1e-10, atol=1e-14)
    assert torch.allclose(result.moment(2), second, rtol=1e-10, atol=1e-14)
    for moment, exact in ((result.moment(1), torch.trace(dense)), (result.moment(2), torch.trace(dense @ dense))):
        stderr = float(moment.std() / math.sqrt(6))
        assert abs(float(moment.mean()) - float(exact) / size) <= 3 * stderr
    spread = float(eig[-1] - eig[0])
    grid = np.linspace(float(eig[0]) - spread, float(eig[-1]) + spread, 20001)
    density = smooth_density(result.nodes, result.weights, grid, sigma=spread / 100)
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-6


def test_slq_with_full_steps_recovers_a_small_spectrum() -> None:
    values = torch.tensor([-1.0, 0.5, 2.0, 3.0, 7.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    result = spectral_density((q * values) @ q.T, num_probes=2, num_steps=50)
    assert result.num_steps == 5  # capped at D
    for probe in range(2):
        assert torch.allclose(result.nodes[probe], values, atol=1e-10)
    # a low-rank operator breaks down early: the extra nodes carry no weight
    low = spectral_density(torch.diag(torch.tensor([2.0, 1.0] + [0.0] * 8, dtype=torch.float64)), 1, 10)
    assert torch.allclose(low.weights.sum(dim=1), torch.ones(1, dtype=torch.float64), atol=1e-12)
    assert torch.isfinite(low.nodes).all() and torch.isfinite(low.weights).all()
