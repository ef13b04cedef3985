"""Σ, its spectrum and the noise-scale estimators against dense matrices and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Problem
from landscape.noise import (
    CovarianceOperator,
    alpha_stable_tail_index,
    covariance_spectrum,
    gradient_noise,
    minibatch_scales,
    per_example_gradients,
    two_batch_noise_scale,
)
from landscape.zoo import digits, digits_mlp


def dense_covariance(matrix: torch.Tensor) -> torch.Tensor:
    g = matrix.double()
    c = g - g.mean(0)
    return c.T @ c / g.shape[0]


@pytest.fixture(scope="module")
def digits_gradients() -> torch.Tensor:
    """Real per-example gradients: the digits MLP (hidden 8, d = 688) on 150 examples."""
    torch.manual_seed(0)
    problem = Problem.create(digits_mlp(8), nn.CrossEntropyLoss(), digits(256), dtype=torch.float64,
                             max_examples=150)
    return per_example_gradients(problem, show_progress=False).matrix


@pytest.mark.parametrize("method", ["gram", "lanczos"])
def test_trace_and_top_eigenpairs_equal_the_dense_covariance(digits_gradients, method):
    sigma = dense_covariance(digits_gradients)
    values, vectors = torch.linalg.eigh(sigma)
    values, vectors = values.flip(0), vectors.flip(1)
    op = CovarianceOperator.from_gradients(digits_gradients)
    # tr Σ: the same sum in another order, so float64 round-off only
    assert float(op.trace()) == pytest.approx(float(torch.trace(sigma)), rel=1e-12)
    k = 6
    result = covariance_spectrum(op, k, method=method, tol=1e-10)
    assert result.method == method and result.all_converged
    # Gram: exact eigh of another matrix with the same spectrum → 1e-10 relative.
    # Lanczos: stopped at Ritz residual 1e-10·λ, eigenvalue error ≈ residual²/gap → still ≪ 1e-8.
    tol = 1e-10 if method == "gram" else 1e-8
    assert torch.allclose(result.eigenvalues, values[:k], rtol=tol, atol=0)
    cosines = (result.eigenvectors.T @ vectors[:, :k]).diagonal().abs()
    assert torch.all(cosines > 1 - 1e-6), cosines  # top eigenvalues here are simple (gaps > 1e-3)
    assert torch.all(result.residual_norms < 1e-8 * values[0])


def test_spectrum_k_is_capped_at_the_rank():
    g = torch.randn(4, 30, dtype=torch.float64)
    result = covariance_spectrum(CovarianceOperator.from_gradients(g), 10)
    assert result.eigenvalues.numel() == 3  # centering 4 rows leaves rank 3


def test_minibatch_scales_equal_enumerated_batch_covariances():
    """Cov of the batch-mean gradient over every possible batch equals scale · Σ, exactly."""
    torch.manual_seed(1)
    g = torch.randn(6, 3, dtype=torch.float64) + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    sigma = dense_covariance(g)
    batch = 2
    with_rep, without_rep = minibatch_scales(batch, 6)
    with_means = torch.stack([g[list(ix)].mean(0) for ix in itertools.product(range(6), repeat=batch)])
    without_means = torch.stack([g[list(ix)].mean(0) for ix in itertools.combinations(range(6), batch)])
    assert torch.allclose(dense_covariance(with_means), with_rep * sigma, atol=1e-12)
    assert torch.allclose(dense_covariance(without_means), without_rep * sigma, atol=1e-12)
    assert minibatch_scales(6, 6)[1] == 0.0  # full batch: no noise


class TeacherStudent:
    """Linear regression y = xᵀw* + σε, x ~ N(0, I_d), evaluated at θ = w* + δ.

    With MSELoss (mean), g = 2x(xᵀδ − σε): E g = 2δ, and by Isserlis' theorem
    Σ = 4[(‖δ‖² + σ²) I + δδᵀ].
    """

    def __init__(self, d: int = 5, n: int = 20000, noise: float = 0.7, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.w_star = torch.randn(d, generator=gen, dtype=torch.float64)
        self.delta = 0.6 * torch.randn(d, generator=gen, dtype=torch.float64)
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        y = x @ self.w_star + noise * torch.randn(n, generator=gen, dtype=torch.float64)
        self.data = [(x[i:i + 5000], y[i:i + 5000, None]) for i in range(0, n, 5000)]
        model = nn.Linear(d, 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_((self.w_star + self.delta)[None])
        self.model, self.noise, self.d = model, noise, d

    def sigma(self) -> torch.Tensor:
        dd = self.delta @ self.delta
        return 4 * ((dd + self.noise ** 2) * torch.eye(self.d, dtype=torch.float64)
                    + torch.outer(self.delta, self.delta))

    def mean_gradient(self) -> torch.Tensor:
        return 2 * self.delta


def test_linear_regression_matches_closed_form_within_sampling_error():
    case = TeacherStudent()
    problem = Problem.create(case.model, nn.MSELoss(), case.data, dtype=torch.float64)
    result = gradient_noise(problem, batch_size=16, k=case.d, show_progress=False, hessian=False)
    grads = per_example_gradients(problem, show_progress=False).matrix
    n = grads.shape[0]
    centered = grads - grads.mean(0)
    sigma_hat, sigma = dense_covariance(grads), case.sigma()
    # every entry within 4.5 standard errors of the sample covariance entry (SE from the data)
    entry_se = (centered[:, :, None] * centered[:, None, :]).std(0) / math.sqrt(n)
    z = ((sigma_hat - sigma) / entry_se).abs()
    assert z.max() < 4.5, z
    # tr Σ within 4 standard errors; top eigenvalue 4(2‖δ‖² + σ²) along δ within 3 %
    trace = float(torch.trace(sigma))
    assert abs(result.trace_sigma - trace) < 4 * result.trace_sigma_stderr
    assert result.trace_sigma_stderr < 0.02 * trace  # the test has power
    top = 4 * (2 * float(case.delta @ case.delta) + case.noise ** 2)
    assert float(result.spectrum.eigenvalues[0]) == pytest.approx(top, rel=0.03)
    # B_simple = tr Σ / ‖E g‖²: delta-method standard error from both sample estimates
    g = case.mean_gradient()
    b_true = trace / float(g @ g)
    g_bar = grads.mean(0)
    g2_se = 2 * math.sqrt(float(g_bar @ sigma_hat @ g_bar) / n)
    rel_se = math.hypot(result.trace_sigma_stderr / result.trace_sigma, g2_se / result.grad_norm_sq)
    assert abs(result.b_simple - b_true) < 4 * rel_se * b_true
    assert rel_se < 0.03


def test_two_batch_estimator_is_unbiased(digits_gradients):
    """Mean over seeds of McCandlish's |G|² and tr Σ estimates within 3 standard errors.

    The truth is exact: with batches drawn with replacement from these n rows,
    E|G_B|² = ‖ḡ‖² + tr Σ / B with Σ normalized by 1/n.
    """
    g = digits_gradients
    op = CovarianceOperator.from_gradients(g)
    true_trace = float(op.trace())
    true_g2 = float(op.mean.pow(2).sum())
    seeds = 300
    estimates = [two_batch_noise_scale(g, 2, 10, num_pairs=2, generator=torch.Generator().manual_seed(s))
                 for s in range(seeds)]
    traces = torch.tensor([e.trace_sigma for e in estimates], dtype=torch.float64)
    norms = torch.tensor([e.grad_norm_sq for e in estimates], dtype=torch.float64)
    for values, truth in ((traces, true_trace), (norms, true_g2)):
        se = float(values.std()) / math.sqrt(seeds)
        assert abs(float(values.mean()) - truth) < 3 * se, (float(values.mean()), truth, se)
    # power: the naive plug-in |G_small|² is biased by tr Σ / b_small, far outside 3 SE
    small = torch.tensor([float(g[torch.randint(g.shape[0], (2,), generator=torch.Generator().manual_seed(s))]
                                .mean(0).pow(2).sum()) for s in range(seeds)], dtype=torch.float64)
    assert abs(float(small.mean()) - true_g2) > 3 * float(small.std()) / math.sqrt(seeds)


def test_tail_index_estimator_on_alpha_stable_and_gaussian_samples():
    """Mohammadi et al.'s estimator recovers α of iid symmetric α-stable data.

    Tolerance 0.12: its standard deviation at K = 40000 samples (K1 = 200) is ≈ 0.03."""
    from scipy.stats import levy_stable
    for alpha in (1.2, 1.6):
        samples = levy_stable.rvs(alpha, 0.0, size=40000, random_state=np.random.default_rng(int(alpha * 10)))
        estimate = alpha_stable_tail_index(torch.from_numpy(samples))
        assert estimate == pytest.approx(alpha, abs=0.12)
    gaussian = torch.randn(40000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert alpha_stable_tail_index(gaussian) > 1.85
    assert math.isnan(alpha_stable_tail_index(torch.zeros(100)))


def test_tail_index_caveat_pooled_gaussians_of_different_scales_look_heavy_tailed():
    """The documented caveat: every coordinate Gaussian, scales spread over e^{±4}, pooled → α̂ ≪ 2."""
    gen = torch.Generator().manual_seed(0)
    scales = torch.exp(2 * torch.randn(200, generator=gen, dtype=torch.float64))
    pooled = (torch.randn(200, 200, generator=gen, dtype=torch.float64) * scales[:, None]).reshape(-1)
    pooled = pooled[torch.randperm(pooled.numel(), generator=gen)]
    assert alpha_stable_tail_index(pooled) < 1.2
