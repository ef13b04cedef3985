"""The linear-algebra core: the shared Lanczos expansion kernel, and our restarted Lanczos
against SciPy's ARPACK (``eigsh``) on the same operator, through
``LinearOperator.to_scipy()``: a dense symmetric matrix and the float64 Hessian of a real
model (``tests/models.py``).

Tolerance, and why: ``eigsh`` runs at its default ``tol=0`` (machine precision), so it is the
reference. ``lanczos`` stops when every Ritz pair (θ, y) has ‖Ay − θy‖ ≤ tol·|θ| (default
tol 1e-6 in float64) and reports that residual norm exactly. For a symmetric A some
eigenvalue lies within ‖Ay − θy‖ of θ (Bauer–Fike; Weyl for symmetric matrices), and with
the wanted eigenvalues separated that eigenvalue is the matching one, so
|θ_i − λ_i| ≤ residual_norms[i] ≤ 1e-6·|θ_i|: the test asserts exactly this bound (plus
1e-12·‖A‖ for the reference's own rounding). In practice the error is far smaller
(≲ ‖r‖²/gap, Kato–Temple). Eigenvectors agree up to sign with sin∠ ≤ ‖r‖/gap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh

from landscape.curvature import HessianOperator
from landscape.linalg import DenseOperator, LinearOperator, lanczos
from landscape.linalg.lanczos import orthogonalize
from landscape.problem import Problem
from tests import models


def symmetric_matrix(size: int = 200, seed: int = 0) -> torch.Tensor:
    """A dense symmetric matrix: a separated top, a bulk in [-1, 2] and a negative tail."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.cat([torch.tensor([9.0, 7.5, 6.0, 5.2, 4.5], dtype=torch.float64),
                        torch.linspace(-1.0, 2.0, size - 7, dtype=torch.float64),
                        torch.tensor([-3.0, -4.0], dtype=torch.float64)])
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    return (q * values) @ q.T


def model_hessian() -> HessianOperator:
    """∇²L of the tests' MLP (73 parameters) on its 30 training vectors, in float64."""
    problem = Problem.create(models.mlp(), torch.nn.functional.cross_entropy, models.vector_data(),
                             dtype=torch.float64)
    return HessianOperator(problem, hvp_mode="reverse")


def reference(op: LinearOperator, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ARPACK's k largest eigenpairs, descending (a fixed start vector: deterministic)."""
    start = np.random.default_rng(0).standard_normal(op.size)
    values, vectors = eigsh(op.to_scipy(), k, which="LA", v0=start)
    order = np.argsort(values)[::-1].copy()
    return torch.from_numpy(values[order].copy()), torch.from_numpy(vectors[:, order].copy())


def check_agree(op: LinearOperator, k: int) -> tuple[float, float]:
    """Assert the bounds above; returns the largest eigenvalue error and sin∠."""
    expected, expected_vectors = reference(op, k + 1)  # one more: the gap below the k-th
    result = lanczos(op, k, return_eigenvectors=True)
    assert result.all_converged and result.tol == 1e-6
    scale = float(expected.abs().max())
    error = (result.eigenvalues - expected[:k]).abs()
    assert (error <= result.residual_norms + 1e-12 * scale).all(), (error, result.residual_norms)
    assert (result.residual_norms <= 1e-6 * result.eigenvalues.abs()).all()
    # eigenvectors (up to sign): sin∠ ≤ ‖r‖/gap, gap = distance to the nearest other eigenvalue
    gaps = torch.stack([torch.cat([expected[:i], expected[i + 1:]]).sub(expected[i]).abs().min()
                        for i in range(k)])
    ours, theirs = result.eigenvectors, expected_vectors[:, :k]
    sines = (ours - theirs * (theirs * ours).sum(dim=0)).norm(dim=0)
    assert (sines <= result.residual_norms / gaps + 1e-10).all(), (sines, result.residual_norms / gaps)
    return float(error.max()), float(sines.max())


def test_to_scipy_is_the_operator_in_float64() -> None:
    matrix = symmetric_matrix(30)
    op = DenseOperator(matrix.float())
    linear = op.to_scipy()
    assert linear.shape == (30, 30) and linear.dtype == np.float64
    block = np.random.default_rng(1).standard_normal((30, 4))
    products = linear.matmat(block)
    assert products.dtype == np.float64 and products.shape == (30, 4)
    np.testing.assert_allclose(products, matrix.numpy() @ block, rtol=1e-5, atol=1e-5)  # float32 operator
    vector = block[:, 0]
    assert linear.matvec(vector).shape == (30,) and linear.rmatvec(vector).shape == (30,)
    assert op.num_matvecs == 4 + 1 + 1 and op.num_data_passes == 3  # a block is one pass


def test_lanczos_equals_eigsh_on_a_dense_matrix() -> None:
    check_agree(DenseOperator(symmetric_matrix()), 5)


@pytest.mark.parametrize("k", [1, 4])
def test_lanczos_equals_eigsh_on_a_model_hessian(k: int) -> None:
    check_agree(model_hessian(), k)


def test_orthogonalize_one_basis_and_a_batch_of_bases() -> None:
    gen = torch.Generator().manual_seed(0)
    bases = [torch.linalg.qr(torch.randn(40, 5, generator=gen, dtype=torch.float64))[0] for _ in range(3)]
    vectors = torch.randn(3, 40, 2, generator=gen, dtype=torch.float64)
    remainder, coeffs = orthogonalize(torch.stack(bases), vectors)
    for p, basis in enumerate(bases):
        single, single_coeffs = orthogonalize(basis, vectors[p])
        assert torch.allclose(remainder[p], single, atol=1e-15) and torch.allclose(coeffs[p], single_coeffs)
        assert (basis.T @ remainder[p]).abs().max() < 1e-14  # ⊥ the basis to working precision
        assert torch.allclose(basis @ coeffs[p] + remainder[p], vectors[p], atol=1e-14)  # nothing lost
