"""Stochastic trace (and diagonal) estimates with a standard error.

Hutchinson: tr(A) = E[zᵀAz] for Rademacher z; the estimate is the mean of the samples
zᵀAz and its standard error their sample standard deviation / √n.

Hutch++ (Meyer et al. 2021): a third of the products sketch the dominant range Q of A
(its trace tr(QᵀAQ) is then exact), the rest estimate the trace of the deflated
remainder (I−QQᵀ)A(I−QQᵀ) with Hutchinson. The stored samples are tr(QᵀAQ) + zᵀÃz, so
their mean is the estimate and their standard error is the (conditional on Q) error.
Probes are applied ``probes_per_pass`` at a time with ``matmat``.

Exact: Σ_i e_iᵀAe_i with every basis vector (``size`` products; small operators only).

Deflation by known eigenpairs (λ_j, u_j) of A, e.g. from Lanczos: tr A = Σ_j λ_j +
tr((I − UUᵀ)A(I − UUᵀ)), the remainder by Hutchinson with projected probes — which cuts
the variance when a few outlying eigenvalues dominate, as they do in trained networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import LandscapeError
from .lanczos import EigenResult
from .operators import LinearOperator, as_operator

TraceMethod = Literal["hutchinson", "hutch++", "exact"]


@dataclass
class TraceResult:
    """``estimate`` ± ``stderr`` of tr(A); ``samples`` [n] float64 whose mean is the estimate."""

    estimate: float
    stderr: float
    samples: Tensor
    method: str
    num_probes: int
    num_matvecs: int
    num_data_passes: int
    seed: int
    diagonal: Tensor | None = None
    diagonal_stderr: Tensor | None = None

    def attrs(self) -> dict[str, Any]:
        """The HDF5 attributes of ``curvature/trace`` (besides the operator's)."""
        return {"method": self.method, "num_probes": self.num_probes, "estimate": self.estimate,
                "stderr": self.stderr, "seed": self.seed, "num_matvecs": self.num_matvecs,
                "num_data_passes": self.num_data_passes}

    @property
    def exact(self) -> bool:
        """True for the exact method (no sampling error)."""
        return self.method == "exact"


# probes needed for a standard error: Hutch++ spends a third on its sketch
MIN_PROBES = {"hutchinson": 2, "hutch++": 6}
# the analyses' rule: a trace is taken exactly (one product per dimension, no sampling error)
# up to this many dimensions (the noise analysis's tr H and each per-layer block)
EXACT_TRACE_MAX_DIM = 512


def rademacher(size: int, count: int, generator: torch.Generator, dtype: torch.dtype,
               device: torch.device) -> Tensor:
    """``[size, count]`` of ±1, drawn on the CPU (same numbers on every device)."""
    signs = torch.randint(0, 2, (size, count), generator=generator, dtype=torch.int8)
    return (signs.to(dtype) * 2 - 1).to(device)


def _apply(op: LinearOperator, vectors: Tensor, per_pass: int) -> Tensor:
    return torch.cat([op.matmat(vectors[:, i:i + per_pass]) for i in range(0, vectors.shape[1], per_pass)],
                     dim=1).to(torch.float64)


def _stderr(samples: Tensor) -> float:
    return float(samples.std(unbiased=True) / math.sqrt(samples.numel())) if samples.numel() > 1 else math.inf


def estimate_trace(operator: LinearOperator | Tensor, num_probes: int = 30, *,
                   method: TraceMethod = "hutch++", seed: int = 0, probes_per_pass: int = 10,
                   diagonal: bool = False, deflate: EigenResult | None = None) -> TraceResult:
    """tr(A) with ``num_probes`` operator products in all (Hutch++ spends a third on the sketch;
    'exact' ignores ``num_probes`` and spends ``size`` products, ``probes_per_pass`` per pass).

    ``diagonal``: also return Hutchinson's diagonal estimate E[z ⊙ Az] with per-entry stderr
    (from the plain Hutchinson probes, so it needs ``method='hutchinson'``), or the exact
    diagonal with ``method='exact'``. ``deflate``: eigenpairs of A (with eigenvectors) whose
    eigenvalues are added exactly and whose span is projected out of Hutchinson's probes.
    """
    op = as_operator(operator)
    if method not in ("hutchinson", "hutch++", "exact"):
        raise LandscapeError(f"trace method must be 'hutchinson', 'hutch++' or 'exact', got {method!r}")
    if method == "exact":
        return _exact_trace(op, probes_per_pass, seed)
    minimum = MIN_PROBES[method]
    if num_probes < minimum:
        raise LandscapeError(f"trace: {method} needs at least {minimum} probes for a standard error, "
                             f"got {num_probes}")
    if diagonal and method != "hutchinson":
        raise LandscapeError("trace: the diagonal estimate comes with method='hutchinson' or 'exact'")
    if deflate is not None and (method != "hutchinson" or diagonal):
        raise LandscapeError("trace: deflation by known eigenpairs comes with method='hutchinson' "
                             "and no diagonal (Hutch++ finds its own deflation)")
    if deflate is not None and deflate.eigenvectors is None:
        raise LandscapeError("trace: deflate needs eigenvectors; run lanczos with return_eigenvectors=True")
    gen = torch.Generator().manual_seed(seed)
    passes, matvecs = op.num_data_passes, op.num_matvecs
    diag = diag_err = None
    if method == "hutchinson":
        probes = rademacher(op.size, num_probes, gen, op.dtype, op.device)
        known = 0.0
        if deflate is not None and deflate.eigenvectors is not None:  # checked above
            u = deflate.eigenvectors.to(device=op.device, dtype=torch.float64)
            probes = probes.to(torch.float64)
            probes = (probes - u @ (u.T @ probes)).to(op.dtype)
            known = float(deflate.eigenvalues.sum())
        products = _apply(op, probes, probes_per_pass)
        probes64 = probes.to(torch.float64)
        samples = known + (probes64 * products).sum(dim=0)
        if diagonal:
            per_entry = probes64 * products
            diag = per_entry.mean(dim=1)
            diag_err = per_entry.std(dim=1, unbiased=True) / math.sqrt(num_probes)
    else:
        sketch_size = min(num_probes // 3, op.size)
        residual_probes = num_probes - 2 * sketch_size
        sketch = rademacher(op.size, sketch_size, gen, op.dtype, op.device)
        basis, _ = torch.linalg.qr(_apply(op, sketch, probes_per_pass))
        exact_part = float(torch.trace(basis.T @ _apply(op, basis.to(op.dtype), probes_per_pass)))
        probes = rademacher(op.size, residual_probes, gen, torch.float64, op.device)
        probes = probes - basis @ (basis.T @ probes)
        products = _apply(op, probes.to(op.dtype), probes_per_pass)
        products = products - basis @ (basis.T @ products)
        samples = exact_part + (probes * products).sum(dim=0)
    samples = samples.cpu()
    return TraceResult(estimate=float(samples.mean()), stderr=_stderr(samples), samples=samples,
                       method=method, num_probes=num_probes, num_matvecs=op.num_matvecs - matvecs,
                       num_data_passes=op.num_data_passes - passes, seed=seed,
                       diagonal=None if diag is None else diag.cpu(),
                       diagonal_stderr=None if diag_err is None else diag_err.cpu())


def _exact_trace(op: LinearOperator, per_pass: int, seed: int) -> TraceResult:
    """Σ_i e_iᵀAe_i: the diagonal from the identity's columns, ``per_pass`` at a time."""
    passes, matvecs = op.num_data_passes, op.num_matvecs
    parts = []
    for start in range(0, op.size, per_pass):
        width = min(per_pass, op.size - start)
        columns = torch.zeros(op.size, width, dtype=op.dtype, device=op.device)
        columns[start:start + width] = torch.eye(width, dtype=op.dtype, device=op.device)
        parts.append(op.matmat(columns)[start:start + width].diagonal().to(torch.float64))
    diag = torch.cat(parts).cpu()
    total = diag.sum()
    return TraceResult(estimate=float(total), stderr=0.0, samples=total.reshape(1), method="exact",
                       num_probes=op.size, num_matvecs=op.num_matvecs - matvecs,
                       num_data_passes=op.num_data_passes - passes, seed=seed,
                       diagonal=diag, diagonal_stderr=torch.zeros_like(diag))
