"""Hessian-vector products of the empirical risk, local to the noise package.

The curvature engine (``landscape/curvature``, built in parallel) will own HVPs, Lanczos
and trace estimation; until it is merged the noise statistics that need H go through the
one function :func:`hessian_vector_products` here, so switching is a one-place change.

H = Σ_batches (|B|/N) ∇²L_B(θ*), the empirical-risk Hessian weighted by batch size. HVPs are
reverse-over-reverse (``vjp`` of ``grad``): the backward graph is built once per batch and
the cotangents (the vectors) are ``vmap``-ed through it, chunked to the memory budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import grad, vjp, vmap

from ..problem import Problem, flatten, unflatten
from .lanczos import EigenResult, lanczos_top
from .per_example import point_bytes


def _vectors_per_pass(problem: Problem) -> int:
    """Vectors per vmapped pullback: each carries about two copies of a batch's activations."""
    per_vector = 2 * point_bytes(problem)
    return int(max(1, min(256, problem.memory_budget_bytes // per_vector)))


def hessian_vector_products(problem: Problem, vectors: Tensor, split: str = "train") -> Tensor:
    """H v for each row v of ``vectors`` [m, d] (flattened in ``problem.params`` order)."""
    if vectors.ndim == 1:
        return hessian_vector_products(problem, vectors[None], split)[0]
    theta = flatten(problem.params)
    vectors = vectors.to(device=theta.device, dtype=theta.dtype)
    batches = problem.batches(split)
    total = sum(b.size for b in batches)
    out = torch.zeros_like(vectors)
    per_pass = _vectors_per_pass(problem)
    for batch in batches:
        def loss(flat: Tensor, batch=batch) -> Tensor:
            return problem.batch_loss(unflatten(flat, problem.params), batch).reshape(())

        _, pullback = vjp(grad(loss), theta)
        for start in range(0, vectors.shape[0], per_pass):
            chunk = vectors[start:start + per_pass]
            try:
                hv = pullback(chunk[0])[0][None] if chunk.shape[0] == 1 else vmap(lambda v: pullback(v)[0])(chunk)
            except Exception:  # an op without a batching rule for its backward: one at a time
                hv = torch.stack([pullback(v)[0] for v in chunk])
            out[start:start + per_pass] += hv.detach() * (batch.size / total)
    return out


def hessian_top_eigen(problem: Problem, k: int, *, split: str = "train", tol: float = 1e-6,
                      max_steps: int | None = None, seed: int = 0, show_progress: bool = False) -> EigenResult:
    """Top-k (largest algebraic) eigenpairs of H by Lanczos on :func:`hessian_vector_products`.

    Switch to the curvature engine's Lanczos once merged.
    """
    dim = sum(p.numel() for p in problem.params.values())
    return lanczos_top(lambda v: hessian_vector_products(problem, v, split), dim, k,
                       device=problem.device, dtype=problem.dtype, tol=tol,
                       max_steps=max_steps, seed=seed,
                       matmat=lambda vs: hessian_vector_products(problem, vs.T, split).T,
                       desc="Lanczos on H (HVPs)" if show_progress else None)


@dataclass
class TraceEstimate:
    value: float
    stderr: float
    exact: bool
    num_products: int


def hessian_trace(problem: Problem, *, split: str = "train", exact_max_dim: int = 512,
                  num_probes: int = 32, seed: int = 0, deflate: EigenResult | None = None) -> TraceEstimate:
    """tr H: exact (d HVPs with the basis vectors) when d ≤ ``exact_max_dim``, else
    Hutchinson with Rademacher probes and the standard error of their mean.

    ``deflate`` (top eigenpairs of H) removes their span from the probes and adds Σ λ_j
    exactly: tr H = Σ_j λ_j + tr((I − UUᵀ) H (I − UUᵀ)), which cuts the variance when a few
    outlying eigenvalues dominate, as they do in trained networks.
    """
    dim = sum(p.numel() for p in problem.params.values())
    theta = flatten(problem.params)
    if dim <= exact_max_dim:
        total = 0.0
        for start in range(0, dim, 256):
            eye = torch.eye(dim, dtype=theta.dtype, device=theta.device)[start:start + 256]
            hv = hessian_vector_products(problem, eye, split)
            total += float(torch.einsum("ij,ij->", hv.to(torch.float64), eye.to(torch.float64)))
        return TraceEstimate(total, 0.0, True, dim)
    generator = torch.Generator().manual_seed(seed)
    probes = (torch.randint(0, 2, (num_probes, dim), generator=generator) * 2 - 1).to(theta.device, torch.float64)
    top = 0.0
    if deflate is not None:
        u = deflate.eigenvectors.to(theta.device, torch.float64)
        probes = probes - (probes @ u) @ u.T
        top = float(deflate.eigenvalues.sum())
    hv = hessian_vector_products(problem, probes.to(theta.dtype), split)
    samples = (hv.to(torch.float64) * probes).sum(1)
    return TraceEstimate(top + float(samples.mean()), float(samples.std()) / math.sqrt(num_probes),
                         False, num_probes)
