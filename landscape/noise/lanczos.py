"""A small Lanczos eigensolver for the top of a symmetric operator given as a matvec.

Local to the noise package (Σ and, until the curvature engine is merged, H). Full
reorthogonalization (twice, classical Gram-Schmidt) against the stored basis, scalars kept
as float64 tensors on the operator's device (no host round trip per step; the small
tridiagonal eigenproblem is solved on the host only every ``check_every`` steps). The
Krylov space grows until the top-k Ritz residuals |β_m s_{m,i}| ≤ tol·|θ_i| or
``max_steps``; there is no restart, so memory is ``max_steps`` vectors of length dim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..progress import progress


@dataclass
class EigenResult:
    """Top-k eigenpairs (descending), with residual norms ‖Av − λv‖ and a convergence flag."""

    eigenvalues: Tensor  # [k] float64, CPU
    eigenvectors: Tensor  # [dim, k] float64, on the operator's device
    residuals: Tensor  # [k] float64, CPU
    converged: bool
    method: str
    steps: int = 0


def lanczos_top(matvec: Callable[[Tensor], Tensor], dim: int, k: int, *, device: torch.device,
                dtype: torch.dtype = torch.float64, tol: float = 1e-8, max_steps: int | None = None,
                check_every: int = 5, seed: int = 0,
                matmat: Callable[[Tensor], Tensor] | None = None, desc: str | None = None) -> EigenResult:
    """The k largest (algebraic) eigenpairs of the symmetric operator ``matvec``.

    ``matvec`` takes and returns a vector of length ``dim`` in ``dtype``; the basis is kept in
    float64. ``matmat`` (columns [dim, k] → [dim, k]), if given, computes the final
    residuals in one call. Exactly repeated eigenvalues are found once per copy only as
    rounding lets them in (a single-vector Krylov method); use a dense or Gram method when
    that matters. On CPU convergence is checked every step (no cost); on an accelerator
    every ``check_every`` steps, the only host synchronizations. ``desc`` shows a progress
    bar (one tick per matvec, up to the step cap).
    """
    k = min(k, dim)
    steps_cap = min(dim, max_steps if max_steps is not None else max(4 * k + 40, 80))
    on_host = torch.device(device).type == "cpu"
    generator = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(dim, generator=generator, dtype=torch.float64).to(device)
    q = q / q.norm()
    basis = torch.empty(steps_cap, dim, dtype=torch.float64, device=device)
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    theta = s = None
    converged = False
    m = 0
    beta = torch.zeros((), dtype=torch.float64, device=device)
    bar = progress(steps_cap, desc, "mv") if desc else None
    for j in range(steps_cap):
        if bar is not None:
            bar.update(1)
        basis[j] = q
        w = matvec(q.to(dtype)).to(torch.float64)
        alpha = torch.dot(w, q)
        w = w - alpha * q - (beta * basis[j - 1] if j > 0 else 0.0)
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = w.norm()
        alphas.append(alpha)
        betas.append(beta)
        m = j + 1
        last = m == steps_cap
        if m >= k and (on_host or m % check_every == 0 or last):
            beta_host = float(beta)
            theta, s = _tridiagonal_eigh(alphas, betas)
            top = torch.argsort(theta, descending=True)[:k]
            ritz_res = (beta_host * s[-1, top]).abs()
            scale = theta[top].abs().clamp_min(torch.finfo(torch.float64).tiny)
            invariant = beta_host <= 1e-12 * max(1.0, float(theta.abs().max()))  # Krylov space exhausted
            if invariant or bool((ritz_res <= tol * scale).all()):
                converged = True
                break
        # between checks (accelerators) a breakdown is not seen; the clamp keeps q finite
        q = w / beta.clamp_min(torch.finfo(torch.float64).tiny)
    if bar is not None:
        bar.close()
    if theta is None or s is None or s.shape[0] != m:
        theta, s = _tridiagonal_eigh(alphas, betas)
    top = torch.argsort(theta, descending=True)[:k]
    vectors = basis[:m].T @ s[:, top].to(device)
    values = theta[top]
    if matmat is not None:
        applied = matmat(vectors.to(dtype)).to(torch.float64)
    else:
        applied = torch.stack([matvec(vectors[:, i].to(dtype)).to(torch.float64)
                               for i in range(vectors.shape[1])], dim=1)
    residuals = (applied - vectors * values.to(vectors.device)).norm(dim=0).cpu()
    return EigenResult(values, vectors, residuals, converged, "lanczos", m)


def _tridiagonal_eigh(alphas: list[Tensor], betas: list[Tensor]) -> tuple[Tensor, Tensor]:
    a = torch.stack(alphas).cpu()
    b = torch.stack(betas[: len(alphas) - 1]).cpu() if len(alphas) > 1 else torch.zeros(0, dtype=torch.float64)
    tri = torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)
    return torch.linalg.eigh(tri)
