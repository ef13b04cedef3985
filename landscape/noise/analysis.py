"""The gradient-noise analysis of a Problem: one function, one result dataclass.

SGD's update is θ ← θ − τ(ḡ + ξ) with mini-batch noise ξ of covariance ≈ Σ/B; the SDE view
(seeds/000) says that noise, through its size and its alignment with the Hessian,
selects flat minima. This module measures it at θ*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..curvature.operators import HessianOperator
from ..errors import LandscapeError
from ..linalg.lanczos import EigenResult, lanczos
from ..linalg.operators import LinearOperator
from ..linalg.trace import EXACT_TRACE_MAX_DIM, TraceResult, estimate_trace
from ..per_example import check_mean_reduction, per_example_gradients, select_examples
from ..problem import Problem
from ..progress import progress
from .covariance import (
    CovarianceOperator,
    TwoBatchEstimate,
    covariance_spectrum,
    minibatch_scales,
    noise_tail_index,
    two_batch_noise_scale,
)

GROUP = "noise"


@dataclass
class HessianAlignment:
    """How Σ sits against the Hessian H of the empirical risk."""

    tr_h_sigma: TraceResult  # tr(HΣ)
    trace_h: TraceResult  # tr H
    tr_h_sigma_isotropic: float  # tr(H · (tr Σ / d) I) = tr Σ · tr H / d
    g_h_g: float  # ḡᵀHḡ
    b_noise: float  # tr(HΣ) / ḡᵀHḡ (NaN when ḡᵀHḡ ≤ 0)
    eigen: EigenResult | None  # top-k of H (with eigenvectors)
    overlap: Tensor | None  # [k] cumulative subspace overlap of Σ's and H's top-k


@dataclass
class NoiseResult:
    """Everything :func:`gradient_noise` measured; ``to_group`` gives the HDF5 attrs/arrays."""

    num_examples: int
    dataset_size: int
    batch_size: int
    split: str
    seed: int
    method: str
    fallback_reason: str
    dim: int
    trace_sigma: float
    trace_sigma_stderr: float
    grad_norm_sq: float
    b_simple: float
    two_batch: TwoBatchEstimate
    minibatch_scale_with_replacement: float
    minibatch_scale_without_replacement: float
    spectrum: EigenResult
    tail_index: float
    example_grad_norms: Tensor
    hessian: HessianAlignment | None = None

    def to_group(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(attrs, arrays) for ``writer.write_group("noise", ...)``; see docs/architecture.md."""
        k = int(self.spectrum.eigenvalues.numel())
        h = self.hessian
        nan = math.nan
        attrs: dict[str, Any] = {
            "num_examples": self.num_examples,
            "dataset_size": self.dataset_size,
            "batch_size": self.batch_size,
            "method": self.method,
            "fallback_reason": self.fallback_reason,
            "seed": self.seed,
            "split": self.split,
            "num_parameters": self.dim,
            "k": k,
            "covariance_normalization": "1/n",
            "spectrum_method": self.spectrum.method,
            "spectrum_converged": self.spectrum.all_converged,
            "trace_sigma": self.trace_sigma,
            "trace_sigma_stderr": self.trace_sigma_stderr,
            "grad_norm_sq": self.grad_norm_sq,
            "b_simple": self.b_simple,
            "b_simple_two_batch": self.two_batch.b_simple,
            "two_batch_trace_sigma": self.two_batch.trace_sigma,
            "two_batch_trace_sigma_stderr": self.two_batch.trace_sigma_stderr,
            "two_batch_grad_norm_sq": self.two_batch.grad_norm_sq,
            "two_batch_grad_norm_sq_stderr": self.two_batch.grad_norm_sq_stderr,
            "two_batch_sizes": [self.two_batch.b_small, self.two_batch.b_big],
            "two_batch_num_pairs": self.two_batch.num_pairs,
            "minibatch_scale_with_replacement": self.minibatch_scale_with_replacement,
            "minibatch_scale_without_replacement": self.minibatch_scale_without_replacement,
            "tail_index": self.tail_index,
            "hessian_computed": h is not None,
            "b_noise": h.b_noise if h else nan,
            "tr_h_sigma": h.tr_h_sigma.estimate if h else nan,
            "tr_h_sigma_stderr": h.tr_h_sigma.stderr if h else nan,
            "tr_h_sigma_exact": h.tr_h_sigma.exact if h else False,
            "tr_h_sigma_isotropic": h.tr_h_sigma_isotropic if h else nan,
            "trace_hessian": h.trace_h.estimate if h else nan,
            "trace_hessian_stderr": h.trace_h.stderr if h else nan,
            "g_h_g": h.g_h_g if h else nan,
            "hessian_eigen_converged": h.eigen.all_converged if h and h.eigen else False,
        }
        arrays: dict[str, Any] = {
            "eigenvalues": self.spectrum.eigenvalues.to(torch.float64),
            "eigenvalue_residuals": self.spectrum.residual_norms.to(torch.float64),
            "example_grad_norms": self.example_grad_norms.to(torch.float64),
        }
        if h is not None and h.overlap is not None:
            arrays["overlap"] = h.overlap.to(torch.float64)
        if h is not None and h.eigen is not None:
            arrays["hessian_eigenvalues"] = h.eigen.eigenvalues.to(torch.float64)
            arrays["hessian_eigenvalue_residuals"] = h.eigen.residual_norms.to(torch.float64)
        return attrs, arrays


def subspace_overlap(a: Tensor, b: Tensor) -> Tensor:
    """Cumulative overlap ‖A_jᵀB_j‖²_F / j of the spans of the first j columns, j = 1..k.

    1 when the top-j subspaces coincide, ≈ j/d for random ones. Columns must be orthonormal.
    """
    k = min(a.shape[1], b.shape[1])
    cross = (a[:, :k].to(torch.float64).T @ b[:, :k].to(torch.float64)).pow(2).cpu()
    return torch.stack([cross[:j, :j].sum() / j for j in range(1, k + 1)])


class CongruenceOperator(LinearOperator):
    """z ↦ B A Bᵀ z for a d×d operator A and rows B [n, d]: n×n, trace tr(A BᵀB)."""

    name = "congruence"

    def __init__(self, inner: LinearOperator, rows: Tensor) -> None:
        super().__init__(int(rows.shape[0]), inner.dtype, inner.device)
        self.inner = inner
        self.rows = rows.to(device=inner.device, dtype=inner.dtype)

    def _matmat(self, vectors: Tensor) -> Tensor:
        return self.rows @ self.inner.matmat(self.rows.T @ vectors)


def hessian_operator(problem: Problem | LinearOperator, split: str = "train") -> LinearOperator:
    """The curvature engine's Hessian of the empirical risk on ``split`` (an operator passes through)."""
    return problem if isinstance(problem, LinearOperator) else HessianOperator(problem, split=split)


def trace_h_sigma(hessian: Problem | LinearOperator, op: CovarianceOperator, spectrum: EigenResult, *,
                  split: str = "train", exact_max_examples: int = 128, num_probes: int = 32,
                  seed: int = 0) -> TraceResult:
    """tr(HΣ) = (1/n) Σ_i c_iᵀ H c_i over the centered gradients c_i, i.e. the trace of the
    n×n operator B H Bᵀ with B = G_c/√n.

    Exact (n HVPs) for n ≤ ``exact_max_examples``. Otherwise deflated: the top-k part
    Σ_j λ_j u_jᵀHu_j exactly, plus Hutchinson on B_rest H B_restᵀ with B_rest = G_c(I − UUᵀ)/√n
    (probes v = B_restᵀz, z Rademacher, so E vvᵀ = Σ_rest), and its standard error.
    """
    h = hessian_operator(hessian, split)
    n = op.num_examples
    centered = op.centered.to(torch.float64) / math.sqrt(n)
    if n <= exact_max_examples:
        return estimate_trace(CongruenceOperator(h, centered), method="exact", seed=seed,
                              probes_per_pass=min(n, 256))
    if spectrum.eigenvectors is None:
        raise LandscapeError("tr(HΣ): the deflated estimate needs Σ's eigenvectors")
    u = spectrum.eigenvectors.to(device=centered.device, dtype=torch.float64)
    hu = h.matmat(u.to(h.dtype)).to(torch.float64)
    top = float((spectrum.eigenvalues.to(u.device) * (hu * u).sum(0)).sum())
    rest = estimate_trace(CongruenceOperator(h, centered - (centered @ u) @ u.T), num_probes,
                          method="hutchinson", seed=seed)
    return replace(rest, estimate=top + rest.estimate, samples=top + rest.samples,
                   num_matvecs=rest.num_matvecs + u.shape[1])


def hessian_alignment(problem: Problem, op: CovarianceOperator, spectrum: EigenResult, *,
                      split: str = "train", hessian_eigen: EigenResult | None = None,
                      compute_eigen: bool = True, seed: int = 0, exact_max_examples: int = 128,
                      exact_max_dim: int = EXACT_TRACE_MAX_DIM, num_probes: int = 32,
                      show_progress: bool = False) -> HessianAlignment:
    """tr(HΣ), its isotropic reference, B_noise and the Σ/H top-k eigenspace overlap.

    All Hessian products go through one :class:`HessianOperator`. tr H is exact (d HVPs)
    when d ≤ ``exact_max_dim``, else Hutchinson deflated by H's top-k eigenpairs.
    """
    k = int(spectrum.eigenvalues.numel())
    bar = progress(4, "noise: Hessian side (HVPs)", "stage") if show_progress else None

    def done() -> None:
        if bar is not None:
            bar.update(1)

    try:
        h = hessian_operator(problem, split)
        tr_hs = trace_h_sigma(h, op, spectrum, exact_max_examples=exact_max_examples,
                              num_probes=num_probes, seed=seed)
        done()
        mean = op.mean
        g_h_g = float(torch.dot(h.matvec(mean).to(torch.float64), mean.to(torch.float64)))
        done()
        eigen = hessian_eigen
        if eigen is None and compute_eigen:
            eigen = lanczos(h, min(k, h.size), "LA", tol=1e-5, seed=seed, return_eigenvectors=True)
        done()
        if h.size <= exact_max_dim:
            tr_h = estimate_trace(h, method="exact", seed=seed + 1, probes_per_pass=64)
        else:
            tr_h = estimate_trace(h, num_probes, method="hutchinson", seed=seed + 1, deflate=eigen)
        done()
    finally:
        if bar is not None:
            bar.close()
    overlap = None
    if eigen is not None and eigen.eigenvectors is not None and spectrum.eigenvectors is not None:
        overlap = subspace_overlap(spectrum.eigenvectors, eigen.eigenvectors.to(spectrum.eigenvectors.device))
    trace_sigma = float(op.trace())
    return HessianAlignment(
        tr_h_sigma=tr_hs, trace_h=tr_h,
        tr_h_sigma_isotropic=trace_sigma * tr_h.estimate / op.dim,
        g_h_g=g_h_g, b_noise=tr_hs.estimate / g_h_g if g_h_g > 0 else math.nan,
        eigen=eigen, overlap=overlap)


def gradient_noise(problem: Problem, *, examples: int | None = None, batch_size: int = 32,
                   k: int = 10, split: str = "train", seed: int = 0, hessian: bool = True,
                   hessian_eigen: EigenResult | None = None, spectrum_method: str = "auto",
                   two_batch_sizes: tuple[int, int] | None = None, two_batch_pairs: int = 256,
                   gradient_method: str = "auto", exact_max_examples: int = 128,
                   num_probes: int = 32, show_progress: bool = True) -> NoiseResult:
    """Measure the gradient noise at θ* over ``examples`` examples of ``split``.

    ``batch_size`` is the SGD mini-batch size B the noise is reported for. ``hessian``
    adds tr(HΣ), B_noise and the eigenspace overlap (HVPs over the whole split);
    ``hessian_eigen`` may pass precomputed top-k Hessian eigenpairs (vectors [d, k]).
    """
    dataset_size = problem.num_examples(split)
    with_rep, without_rep = minibatch_scales(batch_size, dataset_size)
    indices = select_examples(problem, examples, split, seed)
    if indices.numel() < 2:
        raise LandscapeError(f"split '{split}' has {indices.numel()} example(s); a covariance needs at least 2")
    check_mean_reduction(problem, split)
    grads = per_example_gradients(problem, indices, split=split, method=gradient_method,
                                  show_progress=show_progress)
    op = CovarianceOperator.from_gradients(grads.matrix)
    spectrum = covariance_spectrum(op, k, method=spectrum_method, seed=seed)
    trace_sigma = float(op.trace())
    grad_norm_sq = float(op.mean.to(torch.float64).pow(2).sum())
    generator = torch.Generator().manual_seed(seed)
    b_small, b_big = two_batch_sizes or (batch_size, 4 * batch_size)
    two_batch = two_batch_noise_scale(grads.matrix, b_small, b_big, num_pairs=two_batch_pairs,
                                      generator=generator)
    tail = noise_tail_index(grads.matrix, batch_size, generator=generator)
    alignment = None
    if hessian:
        alignment = hessian_alignment(problem, op, spectrum, split=split, hessian_eigen=hessian_eigen,
                                      seed=seed, exact_max_examples=exact_max_examples,
                                      num_probes=num_probes, show_progress=show_progress)
    return NoiseResult(
        num_examples=grads.num_examples, dataset_size=dataset_size, batch_size=batch_size,
        split=split, seed=seed, method=grads.method, fallback_reason=grads.fallback_reason,
        dim=grads.dim, trace_sigma=trace_sigma, trace_sigma_stderr=float(op.trace_stderr()),
        grad_norm_sq=grad_norm_sq, b_simple=trace_sigma / grad_norm_sq if grad_norm_sq > 0 else math.inf,
        two_batch=two_batch, minibatch_scale_with_replacement=with_rep,
        minibatch_scale_without_replacement=without_rep, spectrum=spectrum, tail_index=tail,
        example_grad_norms=grads.matrix.to(torch.float64).norm(dim=1).cpu(), hessian=alignment)
