"""Hessian-side noise statistics against a dense float64 Hessian (torch.func.hessian).

Small models (d ≤ ~200) so the dense H is cheap; tolerances are float64 round-off unless a
quantity is estimated stochastically, where the bound is in its own standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import hessian

from landscape import Problem
from landscape.curvature import HessianOperator
from landscape.linalg import estimate_trace, lanczos
from landscape.noise import (
    CovarianceOperator,
    covariance_spectrum,
    gradient_noise,
    per_example_gradients,
    subspace_overlap,
    trace_h_sigma,
)
from landscape.problem import flatten, unflatten


def small_problem(seed: int = 0, n: int = 96) -> Problem:
    """A 6 → 8 → 3 tanh MLP on Gaussian-blob classification, 3 data batches, d = 83."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 6, generator=gen) * 1.5
    y = torch.randint(0, 3, (n,), generator=gen)
    x = centers[y] + torch.randn(n, 6, generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    batches = [(x[i:i + 40], y[i:i + 40]) for i in range(0, n, 40)]  # sizes 40, 40, 16
    return Problem.create(model, F.cross_entropy, batches, dtype=torch.float64)


def dense_hessian(problem: Problem) -> torch.Tensor:
    """∇² of the size-weighted empirical risk, one dense float64 matrix."""
    theta = flatten(problem.params)
    total = problem.num_examples()

    def risk(flat):
        return sum(problem.batch_loss(unflatten(flat, problem.params), b) * (b.size / total)
                   for b in problem.batches())

    return hessian(risk)(theta)


@pytest.fixture(scope="module")
def setup():
    problem = small_problem()
    h = dense_hessian(problem)
    grads = per_example_gradients(problem, show_progress=False).matrix
    return problem, h, grads


def test_hessian_vector_products_equal_dense_hessian(setup):
    problem, h, _ = setup
    v = torch.randn(5, h.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hv = HessianOperator(problem).matmat(v.T).T
    assert (hv - v @ h).abs().max() < 1e-10 * h.abs().max()
    assert (HessianOperator(problem).matvec(v[0]) - h @ v[0]).abs().max() < 1e-10 * h.abs().max()


def test_hessian_top_eigen_and_trace(setup):
    problem, h, _ = setup
    values = torch.linalg.eigvalsh(h).flip(0)
    op = HessianOperator(problem)
    top = lanczos(op, 4, tol=1e-10, return_eigenvectors=True)
    assert top.all_converged
    assert torch.allclose(top.eigenvalues, values[:4], rtol=1e-8)
    trace = estimate_trace(op, method="exact")  # d = 83: exact with basis vectors
    assert trace.exact and trace.estimate == pytest.approx(float(torch.trace(h)), rel=1e-10)
    hutchinson = estimate_trace(op, 200, method="hutchinson", seed=3)
    assert not hutchinson.exact and hutchinson.stderr > 0
    assert abs(hutchinson.estimate - float(torch.trace(h))) < 4 * hutchinson.stderr
    # deflating the top eigenpairs: still unbiased, and a smaller standard error
    deflated = estimate_trace(op, 200, method="hutchinson", seed=3, deflate=top)
    assert abs(deflated.estimate - float(torch.trace(h))) < 4 * deflated.stderr
    assert deflated.stderr < hutchinson.stderr


def test_trace_h_sigma_exact_and_deflated(setup):
    problem, h, grads = setup
    op = CovarianceOperator.from_gradients(grads)
    sigma = op.centered.T @ op.centered / op.num_examples
    truth = float(torch.trace(h @ sigma))
    spectrum = covariance_spectrum(op, 10)
    exact = trace_h_sigma(problem, op, spectrum)
    assert exact.exact and exact.estimate == pytest.approx(truth, rel=1e-10)
    # deflated Hutchinson: unbiased, judged in its own standard errors
    deflated = trace_h_sigma(problem, op, spectrum, exact_max_examples=0, num_probes=64, seed=5)
    assert not deflated.exact and deflated.stderr > 0
    assert abs(deflated.estimate - truth) < 4 * deflated.stderr
    # deflating the whole range of Σ leaves nothing random: exact again
    full = covariance_spectrum(op, op.num_examples - 1)
    assert full.eigenvalues.numel() < h.shape[0]  # softmax makes Σ rank-deficient: numerical rank
    complete = trace_h_sigma(problem, op, full, exact_max_examples=0, num_probes=8)
    assert complete.estimate == pytest.approx(truth, rel=1e-8)
    few = CovarianceOperator.from_gradients(grads[:30])  # n < d: rank n − 1 = 29
    few_truth = float(torch.trace(h @ few.centered.T @ few.centered)) / 30
    few_full = covariance_spectrum(few, 29)
    assert few_full.eigenvalues.numel() == 29
    assert trace_h_sigma(problem, few, few_full, exact_max_examples=0).estimate == pytest.approx(few_truth, rel=1e-10)


def test_gradient_noise_hessian_statistics_against_dense(setup):
    problem, h, grads = setup
    k = 4
    result = gradient_noise(problem, batch_size=8, k=k, show_progress=False)
    alignment = result.hessian
    g = grads.mean(0)
    sigma = (grads - g).T @ (grads - g) / grads.shape[0]
    d = h.shape[0]
    assert alignment.g_h_g == pytest.approx(float(g @ h @ g), rel=1e-10)
    assert alignment.tr_h_sigma.estimate == pytest.approx(float(torch.trace(h @ sigma)), rel=1e-10)
    assert result.hessian.b_noise == pytest.approx(float(torch.trace(h @ sigma) / (g @ h @ g)), rel=1e-9)
    assert alignment.tr_h_sigma_isotropic == pytest.approx(
        float(torch.trace(sigma) * torch.trace(h) / d), rel=1e-10)
    # overlap against dense top-k eigenvectors of both matrices
    _, hv = torch.linalg.eigh(h)
    _, sv = torch.linalg.eigh(sigma)
    expected = subspace_overlap(sv.flip(1)[:, :k], hv.flip(1)[:, :k])
    assert torch.allclose(alignment.overlap, expected, atol=1e-6)
    attrs, arrays = result.to_group()
    assert arrays["hessian_eigenvalues"].shape == (k,) and arrays["overlap"].shape == (k,)


def test_subspace_overlap_limits():
    q, _ = torch.linalg.qr(torch.randn(50, 6, dtype=torch.float64))
    assert torch.allclose(subspace_overlap(q, q), torch.ones(6, dtype=torch.float64))
    rotated = q[:, [1, 0, 2, 3, 5, 4]]  # same spans at j = 2, 4, 6; disjoint first columns at j = 1
    overlap = subspace_overlap(q, rotated)
    assert overlap[0] == pytest.approx(0.0, abs=1e-12) and overlap[1] == pytest.approx(1.0)
    assert math.isclose(float(overlap[4]), 0.8, rel_tol=1e-12) and overlap[5] == pytest.approx(1.0)


def test_precomputed_hessian_eigenvectors_are_used(setup):
    problem, h, _ = setup
    top = lanczos(HessianOperator(problem), 3, tol=1e-10, return_eigenvectors=True)
    result = gradient_noise(problem, batch_size=8, k=3, hessian_eigen=top, show_progress=False)
    assert result.hessian.eigen is top
