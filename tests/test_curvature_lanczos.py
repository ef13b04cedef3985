"""Lanczos against exact spectra: synthetic matrices with known eigenvalues and dense
float64 Hessians of small models.

Tolerances: 1e-8 relative in float64 with tol=1e-10 (eigenvalue error ≲ residual²/gap,
far below 1e-8); 1e-4 relative in float32 (products carry ~1e-7·‖A‖ rounding).
"""

from __future__ import annotations

import functools

import pytest
import torch

from curvature_cases import cnn_problem, dense_hessian, linear_regression_problem, mlp_problem, rnn_problem
from landscape.curvature import HessianOperator
from landscape.errors import LandscapeError
from landscape.linalg import DenseOperator, lanczos


def with_spectrum(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=gen, dtype=torch.float64))
    return (q * values) @ q.T


def expected(values: torch.Tensor, k: int, which: str) -> torch.Tensor:
    if which == "LA":
        return values.sort(descending=True).values[:k]
    if which == "SA":
        return values.sort().values[:k]
    return values[values.abs().argsort(descending=True)][:k]


def spectrum(n: int = 300) -> torch.Tensor:
    """Clustered top (gaps 1e-3, 1e-2), a bulk, and a negative tail."""
    top = torch.tensor([10.0, 9.999, 9.99, 9.0, 8.0], dtype=torch.float64)
    bottom = torch.tensor([-6.0, -5.5, -5.499], dtype=torch.float64)
    bulk = torch.linspace(-1.0, 2.0, n - 8, dtype=torch.float64)
    return torch.cat([top, bottom, bulk])


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
@pytest.mark.parametrize("block_size", [1, 3])
def test_synthetic_float64(which: str, block_size: int) -> None:
    values = spectrum()
    result = lanczos(with_spectrum(values), 4, which, tol=1e-10, block_size=block_size)
    assert result.all_converged
    assert torch.allclose(result.eigenvalues, expected(values, 4, which), rtol=1e-8, atol=0)
    assert (result.residuals <= 1e-10).all()
    assert result.num_data_passes == -(-result.num_matvecs // block_size)


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_synthetic_float32(which: str) -> None:
    values = spectrum()
    result = lanczos(with_spectrum(values).float(), 4, which)
    assert result.tol == 1e-4 and result.all_converged
    assert torch.allclose(result.eigenvalues, expected(values, 4, which), rtol=1e-4, atol=0)


def test_repeated_top_eigenvalue_needs_and_gets_a_block() -> None:
    values = torch.cat([torch.tensor([5.0, 5.0, 5.0, 4.0], dtype=torch.float64),
                        torch.linspace(0, 3, 196, dtype=torch.float64)])
    matrix = with_spectrum(values, seed=1)
    result = lanczos(matrix, 5, "LA", tol=1e-10, block_size=3)
    assert result.all_converged
    assert torch.allclose(result.eigenvalues, expected(values, 5, "LA"), rtol=1e-8)
    # one start vector sees one copy in exact arithmetic (restarts let rounding reveal more);
    # whatever it reports must be true eigenvalues, never more copies than the multiplicity
    single = lanczos(matrix, 4, "LA", tol=1e-10, block_size=1)
    assert single.all_converged
    distance = (single.eigenvalues[:, None] - values[None, :]).abs().min(dim=1).values
    assert (distance <= 1e-8 * 5).all()
    assert int((single.eigenvalues - 5.0).abs().lt(1e-6).sum()) <= 3


def test_no_ghosts_over_many_restarts() -> None:
    """A dominant well-separated top eigenvalue and a tiny basis force dozens of restarts:
    without full reorthogonalization this is where ghost copies of λ₁ appear."""
    values = torch.cat([torch.tensor([100.0, 3.0, 2.9, 2.8], dtype=torch.float64),
                        torch.linspace(-1, 2.5, 396, dtype=torch.float64)])
    result = lanczos(with_spectrum(values, seed=2), 4, "LA", tol=1e-10, max_basis=8, max_matvecs=5000)
    assert result.num_restarts > 10
    assert result.all_converged
    assert torch.allclose(result.eigenvalues, values[:4], rtol=1e-8)


def test_reports_non_convergence_honestly() -> None:
    values = spectrum()
    result = lanczos(with_spectrum(values), 4, "LA", tol=1e-12, max_basis=8, max_matvecs=12)
    assert not result.all_converged
    assert result.num_matvecs <= 12 + 1
    assert (result.residuals[~result.converged] > 1e-12).all()


def test_breakdown_on_low_rank_and_zero_operators() -> None:
    values = torch.cat([torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64), torch.zeros(47, dtype=torch.float64)])
    for block_size in (1, 2):
        result = lanczos(with_spectrum(values), 5, "LA", tol=1e-10, block_size=block_size)
        assert result.all_converged
        assert torch.allclose(result.eigenvalues, expected(values, 5, "LA"), rtol=1e-8, atol=1e-12)
    zero = lanczos(torch.zeros(20, 20, dtype=torch.float64), 2, "LA")
    assert zero.all_converged and torch.equal(zero.eigenvalues, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(zero.residuals, torch.zeros(2, dtype=torch.float64))


def test_whole_space_and_bad_k() -> None:
    values = torch.linspace(-2, 2, 6, dtype=torch.float64)
    result = lanczos(with_spectrum(values), 6, "SA")
    assert result.all_converged and torch.allclose(result.eigenvalues, values, rtol=1e-10, atol=1e-12)
    for k in (0, 7):
        with pytest.raises(LandscapeError, match="choose 1 ≤ k ≤ 6"):
            lanczos(with_spectrum(values), k)
    with pytest.raises(LandscapeError, match="which must be"):
        lanczos(with_spectrum(values), 1, "BE")  # type: ignore[arg-type]


def test_seeded_and_residuals_are_true_residuals() -> None:
    matrix = with_spectrum(spectrum())
    a = lanczos(matrix, 3, "LA", tol=1e-6, seed=5, return_eigenvectors=True)
    b = lanczos(matrix, 3, "LA", tol=1e-6, seed=5, return_eigenvectors=True)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)
    true = (matrix @ a.eigenvectors - a.eigenvectors * a.eigenvalues).norm(dim=0)
    assert torch.allclose(true, a.residual_norms, rtol=1e-3, atol=1e-12)
    assert torch.allclose(a.eigenvectors.T @ a.eigenvectors, torch.eye(3, dtype=torch.float64), atol=1e-12)
    op = DenseOperator(matrix)
    lanczos(op, 2, "LA")
    assert op.num_matvecs > 0 and op.num_data_passes == op.num_matvecs


@functools.cache
def model_case(name: str):
    problem = {"mlp": mlp_problem, "cnn_bn_eval": cnn_problem, "rnn": rnn_problem}[name]()
    return problem, torch.linalg.eigvalsh(dense_hessian(problem))


@pytest.mark.parametrize("name", ["mlp", "cnn_bn_eval", "rnn"])
@pytest.mark.parametrize("which", ["LA", "SA"])
def test_model_hessians_float64(name: str, which: str) -> None:
    problem, exact = model_case(name)
    result = lanczos(HessianOperator(problem, hvp_mode="reverse"), 5, which, tol=1e-10, block_size=2)
    assert result.all_converged
    assert torch.allclose(result.eigenvalues, expected(exact, 5, which), rtol=1e-8, atol=0)


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_model_hessian_float32(which: str) -> None:
    _, exact = model_case("mlp")
    result = lanczos(HessianOperator(mlp_problem(torch.float32), hvp_mode="reverse"), 3, which)  # same weights, float32
    assert result.all_converged
    assert torch.allclose(result.eigenvalues, expected(exact, 3, which), rtol=1e-4, atol=0)


def test_linear_regression_closed_form() -> None:
    problem, exact = linear_regression_problem()
    values = torch.linalg.eigvalsh(exact)
    top = lanczos(HessianOperator(problem), 3, "LA", tol=1e-10)
    bottom = lanczos(HessianOperator(problem), 2, "SA", tol=1e-10)
    assert torch.allclose(top.eigenvalues, expected(values, 3, "LA"), rtol=1e-8)
    assert torch.allclose(bottom.eigenvalues, expected(values, 2, "SA"), rtol=1e-8)
