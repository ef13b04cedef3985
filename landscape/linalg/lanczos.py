"""Thick-restart block Lanczos for a few extreme eigenpairs of a symmetric operator.

The method (Wu & Simon's thick restart, in block form) keeps an orthonormal basis Q and
the projected matrix T = QᵀAQ in float64:

* expand: W = A·Q_cur (one ``matmat``: one data pass for the whole block), project W on
  every basis vector twice (classical Gram–Schmidt, twice is enough: full
  reorthogonalization, so no ghost copies of converged eigenvalues), fill T's column;
* the remainder R = W − QQᵀW gives the next block F (orthonormal, ⊥ Q) and R = F·B;
  then A·Q = Q·T + F·B·E_lastᵀ, so the Ritz pair (θ, y = Q s) has the residual
  ‖Ay − θy‖ = ‖B·s_last‖ with no extra product (exact when the products are, see below);
* restart: when the basis is full, keep the p best Ritz vectors (T becomes diag(θ)) and
  continue from F, which keeps the Krylov structure (no information about wanted
  directions is thrown away, unlike a fixed-length run).

A pair is converged when ‖Ay − θy‖ ≤ max(tol·|θ|, floor·‖A‖): relative, down to the
rounding floor of the operator's dtype (so an exactly-zero eigenvalue can converge; ‖A‖ is
estimated by the largest |Ritz value|; see :func:`residual_floor`).
Breakdown (an invariant subspace: B rank-deficient) needs no branch: Householder QR
completes F to an orthonormal block, reorthogonalized against Q, and the vanishing B
decouples it in T. Blocks of size ≥ the multiplicity find repeated eigenvalues; a single
vector sees one copy of each (a Krylov-space limit, not a ghost).

Precision: Q, T, both Gram–Schmidt passes, every QR (start block included) and every
residual are float64 whatever the operator's dtype; only the products A·V run in the
operator's dtype (V is rounded to it on the way in, the result read back in float64).

Low precision (bfloat16, float16: any dtype coarser than float32). A 16-bit product Âv
differs from the exact Av by a few eps·‖A‖, mostly systematically. Two things then go
wrong with the float32 rule. (1) The floor 50·eps·‖A‖ is 0.39·‖A‖ in bfloat16, above the
spread of the bulk of a Hessian's spectrum, so vectors from the bulk pass as eigenvectors:
on the bundled digits CNN (all 1437 examples) the old rule stopped after 5 products with
λ₄, λ₅ = 0.92, 0.00 (true 3.96, 2.40) and honest residuals 0.93, 0.06 — Lanczos had not yet
reached λ₄ and nothing asked it to. (2) The relation holds for the products as computed,
not for Â applied to a Ritz vector, so ‖B·s_last‖ under-reports (there, the top pair:
0.005 against an explicit 0.25). For such operators only (:class:`Rounding` has the
constants):

* ``tol`` is raised to ≥ 4·eps (bfloat16: 0.031) or 8·eps (float16: 0.0078), and the floor
  is 0.25·eps·‖A‖ (bfloat16) or 1·eps·‖A‖ (float16). Measured on that CNN, the explicit
  residual stops improving at ≤ 1.1·eps·|θ| and, for small θ, ≤ 0.09·eps·‖A‖ in bfloat16;
  ≤ 4.3·eps·|θ| and ≤ 0.55·eps·‖A‖ in float16 (noisier than its eps suggests): the
  constants leave ≥ 1.8× room above that noise, and no more, so that vectors mixing
  eigenvalues a floor apart are not taken for eigenvectors;
* a pair passing the relation test is only a candidate: one extra ``matmat`` of the k
  candidate Ritz vectors gives the explicit residual ‖Âỹ − θỹ‖/‖ỹ‖ (ỹ: y rounded to the
  operator's dtype, the vector actually multiplied), which alone sets ``converged`` and is
  what ``residual_norms`` reports. When it fails, iteration continues and the relation test
  must next pass at half its bound. When two failed checks in a row have not improved the
  worst residual/bound ratio by 10%, the products' noise is above the bound: the pairs are
  returned (failing ones unconverged) instead of spending the rest of the budget;
* when the budget is spent, the last Ritz pairs are still checked explicitly (so up to k
  products beyond ``max_matvecs``).

The products are not upcast: 16 bits are chosen for memory and speed, and the systematic
part of their error (3% of λ₁ in bfloat16 on that CNN) is no rounding that more iterations
remove; ``error_bounds`` (see :class:`EigenResult`) says what it costs.

float32/float64 operators keep the relation-based test (their products are accurate far
below any tolerance): the same numbers and product counts as before.

All vector work stays on the operator's device; the host only sees T (at most m×m) at
convergence checks, every ``check_every`` steps and at each restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import LandscapeError
from .operators import LinearOperator, as_operator, is_low_precision

Which = Literal["LA", "SA", "LM"]


@dataclass(frozen=True)
class Rounding:
    """What products in a dtype resolve, in units of eps(dtype) (absolute ones × ‖A‖)."""

    tol: float  # smallest relative tolerance
    floor: float  # residuals below floor·eps·‖A‖ are product rounding
    operator: float  # estimated ‖Âv − Av‖ ≤ operator·eps·‖A‖·‖v‖ against exact products


# float32/float64: ~50·eps of rounding accumulates along long reductions in that dtype.
# 16-bit: see the module docstring; ``operator`` is twice the largest error measured against
# dense float64 Hessians at the same rounded weights and data (bundled CNN along its top
# eigenvector: 4.0·eps·‖A‖ in bfloat16, 2.0·eps·‖A‖ in float16; ≤ 1 on the test models).
FULL_PRECISION = Rounding(tol=0.0, floor=50.0, operator=50.0)
LOW_PRECISION = {torch.bfloat16: Rounding(tol=4.0, floor=0.25, operator=8.0),
                 torch.float16: Rounding(tol=8.0, floor=1.0, operator=8.0)}


def rounding(dtype: torch.dtype) -> Rounding:
    """The :class:`Rounding` of products in ``dtype`` (float16's for other 16-bit or coarser dtypes)."""
    if not is_low_precision(dtype):
        return FULL_PRECISION
    return LOW_PRECISION.get(dtype, LOW_PRECISION[torch.float16])


@dataclass
class EigenResult:
    """k eigenpairs with their quality and cost.

    ``eigenvalues`` [k] float64 (LA: descending, SA: ascending, LM: by |λ| descending);
    ``residuals`` [k] relative ‖Ay − θy‖/|θ|; ``residual_norms`` [k] absolute;
    ``converged`` [k] bool; ``eigenvectors`` [D, k] (unit columns) or None; ``method``
    says what produced it ("lanczos" here; e.g. "gram" for Σ's exact small-n path).
    ``tol`` is the tolerance used (after the low-precision clamp of :func:`tol_floor`).
    ``error_bounds`` [k] (None where not computed): residual_norms + operator_error·‖A‖,
    the distance from each θ to the nearest eigenvalue of the operator evaluated exactly
    (for a Hessian: at the same weights and data as stored, e.g. rounded to bfloat16).
    A residual r of a unit vector puts an eigenvalue within r of θ; the operator-error term
    covers the gap between the products as computed and exact ones and is an estimate
    (:func:`operator_error`), not a proof. It bounds the distance to *some* eigenvalue: that
    it is the one of the same index relies on Lanczos not having missed one.
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
    error_bounds: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # how the run stopped (see :func:`lanczos`)

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


def residual_floor(dtype: torch.dtype) -> float:
    """Residuals below ``residual_floor·‖A‖`` are rounding noise of products in ``dtype``:
    50·eps for float32/float64, 0.25·eps for bfloat16, 1·eps for float16."""
    return rounding(dtype).floor * torch.finfo(dtype).eps


def operator_error(dtype: torch.dtype) -> float:
    """Estimated ‖Âv − Av‖/(‖A‖·‖v‖) of one product in ``dtype`` against the exact operator at
    the same (rounded) inputs: 50·eps for float32/float64, 8·eps for 16-bit dtypes."""
    return rounding(dtype).operator * torch.finfo(dtype).eps


def tol_floor(dtype: torch.dtype) -> float:
    """The smallest relative tolerance products in ``dtype`` support, to which any ``tol`` is
    raised: 0 for float32/float64, 4·eps for bfloat16 (0.031), 8·eps for float16 (0.0078)."""
    return rounding(dtype).tol * torch.finfo(dtype).eps


def default_tol(dtype: torch.dtype) -> float:
    """1e-6 relative in float64; float32 products carry ~1e-7·‖A‖ noise, so 1e-4 there;
    16-bit dtypes: 1e-4 raised to :func:`tol_floor`."""
    return 1e-6 if dtype == torch.float64 else max(1e-4, tol_floor(dtype))


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


def _start_block(size: int, width: int, seed: int, v0: Tensor | None, device: torch.device) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(size, width, generator=gen, dtype=torch.float64).to(device)
    if v0 is not None:
        v0 = v0.reshape(size, -1).to(device=device, dtype=torch.float64)
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


def _explicit_residuals(op: LinearOperator, vectors: Tensor, values: Tensor) -> Tensor:
    """‖Âỹ − θỹ‖/‖ỹ‖ per column, ỹ the column rounded to the operator's dtype (what the one
    ``matmat`` really multiplies); the residual itself is formed in float64."""
    rounded = vectors.to(op.dtype)
    products = op.matmat(rounded).to(torch.float64)
    rounded = rounded.to(torch.float64)
    norms = (products - rounded * values.to(rounded.device)).norm(dim=0) / rounded.norm(dim=0)
    return norms.cpu()


class _Verdict:
    """When to stop, from the Lanczos-relation residuals and, for 16-bit operators, explicit
    ones (see the module docstring): a candidate must pass the relation test at
    ``trust``·bound, halved after each failed explicit check."""

    def __init__(self, op: LinearOperator) -> None:
        self.op = op
        self.explicit = is_low_precision(op.precision)
        self.trust = 1.0
        self.checks = 0  # explicit checks made
        self.stalls = 0  # failed checks in a row without progress
        self.last_excess = math.inf

    def candidate(self, norms: Tensor, bound: Tensor) -> bool:
        return bool((norms <= self.trust * bound).all())

    def residuals(self, vectors: Tensor, values: Tensor, norms: Tensor, bound: Tensor) -> Tensor:
        """The residuals that decide: ``norms`` (relation), or explicit ones for 16-bit."""
        if not self.explicit:
            return norms
        residual = _explicit_residuals(self.op, vectors, values)
        self.checks += 1
        excess = float((residual / bound.clamp(min=torch.finfo(torch.float64).tiny)).max())
        self.stalls = self.stalls + 1 if excess > 0.9 * self.last_excess else 0
        self.last_excess = excess
        return residual

    def stop(self, residual: Tensor, bound: Tensor, exhausted: bool, spent: bool) -> str:
        """Why to stop ('' to go on, after which the relation test is trusted half as much)."""
        reason = ("converged" if bool((residual <= bound).all()) else "exhausted" if exhausted
                  else "budget" if spent else "stalled" if self.stalls >= 2 else "")
        if not reason:
            self.trust /= 2
        return reason


def lanczos(operator: LinearOperator | Tensor, k: int, which: Which = "LA", *,
            tol: float | None = None, block_size: int = 1, max_basis: int | None = None,
            max_matvecs: int | None = None, seed: int = 0, v0: Tensor | None = None,
            return_eigenvectors: bool = False, check_every: int | None = None) -> EigenResult:
    """The ``k`` eigenpairs of a symmetric operator wanted by ``which``.

    ``which``: 'LA' largest algebraic (sharpness), 'SA' smallest algebraic (most negative
    curvature), 'LM' largest magnitude. ``tol``: relative Ritz residual (default 1e-6 for
    float64 operators, 1e-4 for float32; for 16-bit operators any tol, given or default, is
    raised to :func:`tol_floor`, 4·eps for bfloat16 and 8·eps for float16, and pairs are
    verified with one explicit product, see the module docstring). ``block_size``: vectors
    per ``matmat`` (one data pass each; use ≥ the expected multiplicity of the top
    eigenvalue). ``max_basis``:
    basis vectors kept (memory D·max_basis·8 bytes; default max(3k, 20, 8·block) + block).
    ``max_matvecs``: budget (default 40·max_basis); when spent, unconverged pairs are
    returned with ``converged`` False. Deterministic for a given ``seed``. ``extra`` of the
    result: ``stop`` (converged, budget, exhausted or stalled), ``tol_requested``,
    ``explicit_checks``.
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
    requested = default_tol(op.precision) if tol is None else float(tol)
    if not requested > 0:
        raise LandscapeError(f"lanczos: tol must be positive, got {requested}")
    tol = max(requested, tol_floor(op.precision))
    block = min(block_size, size)
    basis_size = basis_size_for(size, k, block, max_basis)
    max_matvecs = max_matvecs or 40 * basis_size
    if check_every is None:
        check_every = 1 if op.device.type == "cpu" else max(1, (basis_size - k) // (2 * block))
    keep = k + (basis_size - k - block) // 2  # Ritz vectors kept at a restart
    device = op.device
    floor = residual_floor(op.precision)
    verdict = _Verdict(op)
    passes_before, matvecs_before = op.num_data_passes, op.num_matvecs

    basis = torch.zeros(size, basis_size, dtype=torch.float64, device=device)
    projected = torch.zeros(basis_size, basis_size, dtype=torch.float64, device=device)
    basis[:, :block] = _start_block(size, block, seed, v0, device)
    filled, current = block, slice(0, block)
    restarts, steps = 0, 0

    while True:
        products = op.matmat(basis[:, current].to(op.dtype)).to(torch.float64)
        q = basis[:, :filled]
        coeffs = q.T @ products
        remainder = products - q @ coeffs
        correction = q.T @ remainder
        remainder -= q @ correction
        coeffs = coeffs + correction
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
                norms = (coupling.cpu() @ last).norm(dim=0)
            wanted = order[:k]
            scale = float(ritz_values.abs().max())
            bound = torch.clamp(tol * ritz_values[wanted].abs(), min=floor * scale)
            if filled >= k and (verdict.candidate(norms[wanted], bound) or exhausted or spent):
                vectors = basis[:, :filled] @ ritz_coeffs[:, wanted].to(device)
                residual = verdict.residuals(vectors, ritz_values[wanted], norms[wanted], bound)
                stop = verdict.stop(residual, bound, exhausted, spent)
                if stop:
                    return _result(op, ritz_values[wanted], residual, bound, scale,
                                   vectors if return_eigenvectors else None,
                                   {"which": which, "tol": tol, "block_size": block, "basis_size": basis_size,
                                    "seed": seed, "num_restarts": restarts},
                                   {"stop": stop, "tol_requested": requested, "explicit_checks": verdict.checks},
                                   passes_before, matvecs_before)
            if full:
                kept = order[:keep]
                basis[:, :keep] = basis[:, :filled] @ ritz_coeffs[:, kept].to(device)
                projected.zero_()
                projected[:keep, :keep] = torch.diag(ritz_values[kept]).to(device)
                filled = keep
                restarts += 1
        width = min(block, size - filled)
        basis[:, filled:filled + width] = next_block[:, :width]
        current = slice(filled, filled + width)
        filled += width


def _result(op: LinearOperator, values: Tensor, residual_norms: Tensor, bound: Tensor, scale: float,
            vectors: Tensor | None, settings: dict[str, Any], extra: dict[str, Any],
            passes_before: int, matvecs_before: int) -> EigenResult:
    if vectors is not None:
        # fix the sign: the largest-magnitude entry of each eigenvector is positive
        peaks = vectors.gather(0, vectors.abs().argmax(dim=0, keepdim=True))
        vectors = vectors * torch.where(peaks < 0, -1.0, 1.0).to(vectors.dtype)
    return EigenResult(
        eigenvalues=values.clone(),
        residuals=relative_residuals(residual_norms, values),
        residual_norms=residual_norms.clone(),
        converged=residual_norms <= bound,
        eigenvectors=vectors,
        num_matvecs=op.num_matvecs - matvecs_before,
        num_data_passes=op.num_data_passes - passes_before,
        error_bounds=residual_norms + operator_error(op.precision) * scale,
        extra=extra, **settings,
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
