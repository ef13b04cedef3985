"""Thick-restart block Lanczos for a few extreme eigenpairs of a symmetric operator.

The method (Wu & Simon's thick restart, in block form) keeps an orthonormal basis Q and
the projected matrix T = QᵀAQ in float64:

* expand: W = A·Q_cur (one ``matmat``: one data pass for the whole block), project W on
  every basis vector twice (classical Gram–Schmidt, twice is enough: full
  reorthogonalization, so no ghost copies of converged eigenvalues), fill T's column;
* the remainder R = W − QQᵀW gives the next block F (orthonormal, ⊥ Q) and R = F·B;
  then A·Q = Q·T + F·B·E_lastᵀ, so the Ritz pair (θ, y = Q s) has the exact residual
  ‖Ay − θy‖ = ‖B·s_last‖ with no extra product;
* restart: when the basis is full, keep the p best Ritz vectors (T becomes diag(θ)) and
  continue from F, which keeps the Krylov structure (no information about wanted
  directions is thrown away, unlike a fixed-length run).

A pair is converged when ‖Ay − θy‖ ≤ max(tol·|θ|, 50·eps(dtype)·‖A‖): relative, down to
the rounding floor of the operator's dtype (so an exactly-zero eigenvalue can converge;
‖A‖ is estimated by the largest |Ritz value|).
Breakdown (an invariant subspace: B rank-deficient) needs no branch: Householder QR
completes F to an orthonormal block, reorthogonalized against Q, and the vanishing B
decouples it in T. Blocks of size ≥ the multiplicity find repeated eigenvalues; a single
vector sees one copy of each (a Krylov-space limit, not a ghost).

All vector work stays on the operator's device; the host only sees T (at most m×m) at
convergence checks, every ``check_every`` steps and at each restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from ..errors import LandscapeError
from .operators import LinearOperator, as_operator

Which = Literal["LA", "SA", "LM"]


@dataclass
class EigenResult:
    """k eigenpairs with their quality and cost.

    ``eigenvalues`` [k] float64 (LA: descending, SA: ascending, LM: by |λ| descending);
    ``residuals`` [k] relative ‖Ay − θy‖/|θ|; ``residual_norms`` [k] absolute;
    ``converged`` [k] bool; ``eigenvectors`` [D, k] (unit columns) or None; ``method``
    says what produced it ("lanczos" here; e.g. "gram" for Σ's exact small-n path).
    """

    eigenvalues: Tensor
    residuals: Tensor
    residual_norms: Tensor
    converged: Tensor
    eigenvectors: Tensor | None
    num_matvecs: int
    num_data_passes: int
    num_restarts: int
    which: str
    tol: float
    block_size: int
    basis_size: int
    seed: int
    method: str = "lanczos"

    @property
    def all_converged(self) -> bool:
        """Every pair met the tolerance."""
        return bool(self.converged.all())

    @property
    def k(self) -> int:
        """The number of eigenpairs."""
        return int(self.eigenvalues.numel())

    def attrs(self) -> dict[str, Any]:
        """The HDF5 attributes of ``curvature/hessian_top``/``_bottom`` (besides the operator's)."""
        return {"which": self.which, "k": self.k, "tol": self.tol, "block_size": self.block_size,
                "basis_size": self.basis_size, "seed": self.seed, "num_matvecs": self.num_matvecs,
                "num_data_passes": self.num_data_passes, "num_restarts": self.num_restarts,
                "all_converged": self.all_converged}


def default_tol(dtype: torch.dtype) -> float:
    """1e-6 relative in float64; float32 products carry ~1e-7·‖A‖ noise, so 1e-4 there."""
    return 1e-6 if dtype == torch.float64 else 1e-4


def _order(values: Tensor, which: str) -> Tensor:
    """Indices of ``values`` from most to least wanted."""
    if which == "LA":
        return torch.argsort(values, descending=True)
    if which == "SA":
        return torch.argsort(values)
    return torch.argsort(values.abs(), descending=True)


def _orthonormal_next(residual: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """An orthonormal block F ⊥ ``basis`` spanning ``residual`` (already ⊥ basis), and
    B = Fᵀ·residual. Rank-deficient residuals are completed by the Householder QR."""
    block, _ = torch.linalg.qr(residual)
    for _ in range(2):
        block = block - basis @ (basis.T @ block)
    block, _ = torch.linalg.qr(block)
    return block, block.T @ residual


def _start_block(size: int, width: int, seed: int, v0: Tensor | None, dtype: torch.dtype,
                 device: torch.device) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(size, width, generator=gen, dtype=torch.float64)
    start = start.to(device=device, dtype=dtype)
    if v0 is not None:
        v0 = v0.reshape(size, -1).to(device=device, dtype=dtype)
        start[:, :min(width, v0.shape[1])] = v0[:, :width]
    if not torch.isfinite(start).all() or bool((start.norm(dim=0) == 0).any()):
        raise LandscapeError("lanczos: the start vector is zero or not finite; pass another v0")
    q, _ = torch.linalg.qr(start)
    return q


def basis_size_for(size: int, k: int, block: int, max_basis: int | None) -> int:
    """The number of basis vectors :func:`lanczos` keeps (memory ``size·basis·8`` bytes);
    refuses a ``max_basis`` too small for ``k`` pairs and blocks of ``block``."""
    basis_size = min(size, max_basis or max(3 * k, 20, 8 * block) + block)
    if basis_size < min(size, k + block):
        raise LandscapeError(f"lanczos: max_basis={max_basis} is too small for k={k} and "
                             f"block_size={block}; use at least {k + block}")
    return basis_size


def lanczos(operator: LinearOperator | Tensor, k: int, which: Which = "LA", *,
            tol: float | None = None, block_size: int = 1, max_basis: int | None = None,
            max_matvecs: int | None = None, seed: int = 0, v0: Tensor | None = None,
            return_eigenvectors: bool = False, check_every: int | None = None,
            basis_dtype: torch.dtype = torch.float64) -> EigenResult:
    """The ``k`` eigenpairs of a symmetric operator wanted by ``which``.

    ``which``: 'LA' largest algebraic (sharpness), 'SA' smallest algebraic (most negative
    curvature), 'LM' largest magnitude. ``tol``: relative Ritz residual (default 1e-6 for
    float64 operators, 1e-4 for float32). ``block_size``: vectors per ``matmat`` (one data
    pass each; use ≥ the expected multiplicity of the top eigenvalue). ``max_basis``:
    basis vectors kept (memory D·max_basis·8 bytes; default max(3k, 20, 8·block) + block).
    ``max_matvecs``: budget (default 40·max_basis); when spent, unconverged pairs are
    returned with ``converged`` False. Deterministic for a given ``seed``.
    """
    op = as_operator(operator)
    size = op.size
    if which not in ("LA", "SA", "LM"):
        raise LandscapeError(f"lanczos: which must be 'LA', 'SA' or 'LM', got {which!r}")
    if not 1 <= k <= size:
        raise LandscapeError(f"lanczos: asked for k={k} eigenvalues of a {size}×{size} operator; "
                             f"choose 1 ≤ k ≤ {size} (the number of selected parameters)")
    if block_size < 1:
        raise LandscapeError(f"lanczos: block_size must be ≥ 1, got {block_size}")
    tol = default_tol(op.dtype) if tol is None else float(tol)
    if not tol > 0:
        raise LandscapeError(f"lanczos: tol must be positive, got {tol}")
    block = min(block_size, size)
    basis_size = basis_size_for(size, k, block, max_basis)
    max_matvecs = max_matvecs or 40 * basis_size
    if check_every is None:
        check_every = 1 if op.device.type == "cpu" else max(1, (basis_size - k) // (2 * block))
    keep = k + (basis_size - k - block) // 2  # Ritz vectors kept at a restart
    device = op.device
    floor_scale = 50 * torch.finfo(op.dtype).eps
    passes_before, matvecs_before = op.num_data_passes, op.num_matvecs
    settings = {"which": which, "tol": tol, "block_size": block, "basis_size": basis_size, "seed": seed}

    basis = torch.zeros(size, basis_size, dtype=basis_dtype, device=device)
    projected = torch.zeros(basis_size, basis_size, dtype=torch.float64, device=device)
    basis[:, :block] = _start_block(size, block, seed, v0, basis_dtype, device)
    filled, current = block, slice(0, block)
    restarts, steps = 0, 0

    while True:
        products = op.matmat(basis[:, current].to(op.dtype)).to(basis_dtype)
        q = basis[:, :filled]
        coeffs = q.T @ products
        remainder = products - q @ coeffs
        correction = q.T @ remainder
        remainder -= q @ correction
        coeffs = (coeffs + correction).to(torch.float64)
        projected[:filled, current] = coeffs
        projected[current, :filled] = coeffs.T
        cur = projected[current, current]
        projected[current, current] = (cur + cur.T) / 2
        steps += 1

        exhausted = filled == size
        if not exhausted:
            next_block, coupling = _orthonormal_next(remainder, q)
        full = exhausted or filled + min(block, size - filled) > basis_size
        spent = filled >= k and op.num_matvecs - matvecs_before >= max_matvecs
        if full or spent or steps % check_every == 0:
            ritz_values, ritz_coeffs = torch.linalg.eigh(projected[:filled, :filled].cpu())
            order = _order(ritz_values, which)
            if exhausted:
                norms = torch.zeros(filled, dtype=torch.float64)
            else:
                last = ritz_coeffs[current.start:current.stop]  # the newest block's rows
                norms = (coupling.to(torch.float64).cpu() @ last).norm(dim=0)
            wanted = order[:k]
            scale = ritz_values.abs().max()
            bound = torch.clamp(tol * ritz_values[wanted].abs(), min=floor_scale * float(scale))
            done = filled >= k and bool((norms[wanted] <= bound).all())
            if done or exhausted or spent:
                return _result(op, basis, filled, _Ritz(ritz_values, ritz_coeffs, norms, wanted, bound), settings,
                               restarts, return_eigenvectors, (passes_before, matvecs_before))
            if full:
                kept = order[:keep]
                coeffs_kept = ritz_coeffs[:, kept].to(device=device, dtype=basis_dtype)
                basis[:, :keep] = basis[:, :filled] @ coeffs_kept
                projected.zero_()
                projected[:keep, :keep] = torch.diag(ritz_values[kept]).to(device)
                filled = keep
                restarts += 1
        width = min(block, size - filled)
        basis[:, filled:filled + width] = next_block[:, :width]
        current = slice(filled, filled + width)
        filled += width


class _Ritz(NamedTuple):
    """The Ritz pairs at a check: all values and coefficients in the basis, residual norms,
    the wanted indices and their convergence bounds."""

    values: Tensor
    coeffs: Tensor
    norms: Tensor
    wanted: Tensor
    bound: Tensor


def _result(op: LinearOperator, basis: Tensor, filled: int, ritz: _Ritz, settings: dict[str, Any],
            restarts: int, return_vectors: bool, counters_before: tuple[int, int]) -> EigenResult:
    """The wanted Ritz pairs as an :class:`EigenResult`; ``settings`` are its which, tol,
    block_size, basis_size and seed, ``counters_before`` the operator's (passes, products)
    when the run began."""
    values, coeffs, norms, wanted, bound = ritz
    passes_before, matvecs_before = counters_before
    eigenvalues = values[wanted].clone()
    residual_norms = norms[wanted].clone()
    vectors = None
    if return_vectors:
        chosen = coeffs[:, wanted].to(device=basis.device, dtype=basis.dtype)
        vectors = basis[:, :filled] @ chosen
        # fix the sign: the largest-magnitude entry of each eigenvector is positive
        peaks = vectors.gather(0, vectors.abs().argmax(dim=0, keepdim=True))
        vectors = vectors * torch.where(peaks < 0, -1.0, 1.0).to(vectors.dtype)
    return EigenResult(
        eigenvalues=eigenvalues,
        residuals=relative_residuals(residual_norms, eigenvalues),
        residual_norms=residual_norms,
        converged=residual_norms <= bound,
        eigenvectors=vectors,
        num_matvecs=op.num_matvecs - matvecs_before,
        num_data_passes=op.num_data_passes - passes_before,
        num_restarts=restarts,
        **settings,
    )


def relative_residuals(norms: Tensor, values: Tensor) -> Tensor:
    """‖r‖/|θ|, with 0 for an exact zero pair (‖r‖ = θ = 0) instead of NaN."""
    magnitude = values.abs()
    return torch.where(magnitude > 0, norms / magnitude.clamp(min=torch.finfo(torch.float64).tiny),
                       torch.where(norms > 0, torch.inf, 0.0))


def orthogonalize(basis: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor]:
    """The Lanczos expansion kernel: ``vectors`` minus their projection on the orthonormal
    columns of ``basis``, by classical Gram–Schmidt run twice ("twice is enough": full
    reorthogonalization to working precision, so no ghost eigenvalues), and the projection
    coefficients ``basisᵀ·vectors`` (both passes summed: the new column of T = QᵀAQ).

    ``basis`` ``[..., D, j]``, ``vectors`` ``[..., D, m]``; leading dimensions batch independent
    bases (SLQ keeps one basis per probe). Returns ``(remainder, coefficients)`` of shapes
    ``[..., D, m]`` and ``[..., j, m]``. (:func:`lanczos` does these two passes inline on its
    single block basis.)
    """
    coeffs = basis.mT @ vectors
    remainder = vectors - basis @ coeffs
    correction = basis.mT @ remainder
    remainder = remainder - basis @ correction
    return remainder, coeffs + correction
