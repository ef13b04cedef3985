"""Spectral density by stochastic Lanczos quadrature (SLQ).

For a unit probe q (normalized Rademacher), ``num_steps`` Lanczos steps give T = VᵀΛV
tridiagonal; the Gauss quadrature nodes are the eigenvalues θ_j of T and the weights
w_j = (first component of its j-th eigenvector)², so Σ_j w_j f(θ_j) ≈ qᵀf(A)q and
(1/D)·tr f(A) ≈ mean over probes. The density φ(λ) = mean_p Σ_j w_pj δ(λ − θ_pj) is
stored as nodes and weights; smoothing (a Gaussian of width σ) happens at view time with
:func:`smooth_density`. Each probe's weights sum to 1; the first two moments are exact
quadratic forms: Σ w θ = qᵀAq and Σ w θ² = ‖Aq‖² (for ≥ 2 steps).

All probes run together: each step is one ``matmat`` over the probes (one data pass),
with full reorthogonalization of every probe against its own basis by
:func:`landscape.linalg.lanczos.orthogonalize` (the two-pass Gram–Schmidt of the
restarted solver's expansion step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from .lanczos import orthogonalize
from .operators import LinearOperator, as_operator
from .trace import rademacher


@dataclass
class DensityResult:
    """``nodes``/``weights`` [probes, steps] float64; weights of each probe sum to 1."""

    nodes: Tensor
    weights: Tensor
    num_parameters: int
    num_matvecs: int
    num_data_passes: int
    seed: int

    @property
    def num_probes(self) -> int:
        """Rademacher probes (rows of ``nodes``)."""
        return int(self.nodes.shape[0])

    @property
    def num_steps(self) -> int:
        """Lanczos steps per probe (columns of ``nodes``)."""
        return int(self.nodes.shape[1])

    def moment(self, order: int) -> Tensor:
        """Per-probe Σ_j w_j θ_j^order ≈ tr(A^order)/D; shape [probes]."""
        return (self.weights * self.nodes ** order).sum(dim=1)

    def attrs(self) -> dict[str, Any]:
        """The HDF5 attributes of ``curvature/density`` (besides the operator's)."""
        return {"num_probes": self.num_probes, "num_steps": self.num_steps, "seed": self.seed,
                "num_parameters": self.num_parameters, "num_matvecs": self.num_matvecs,
                "num_data_passes": self.num_data_passes}


def spectral_density(operator: LinearOperator | Tensor, num_probes: int = 4, num_steps: int = 40, *,
                     seed: int = 0) -> DensityResult:
    """SLQ nodes and weights from ``num_probes`` probes of ``num_steps`` Lanczos steps each
    (steps capped at D; memory D·probes·steps·8 bytes for the bases)."""
    op = as_operator(operator)
    if num_probes < 1 or num_steps < 1:
        raise LandscapeError(f"density: need ≥ 1 probe and ≥ 1 step, got {num_probes} and {num_steps}")
    steps = min(num_steps, op.size)
    passes, matvecs = op.num_data_passes, op.num_matvecs
    gen = torch.Generator().manual_seed(seed)
    probes = rademacher(op.size, num_probes, gen, torch.float64, op.device)
    basis = torch.zeros(steps, op.size, num_probes, dtype=torch.float64, device=op.device)
    basis[0] = probes / probes.norm(dim=0)
    alphas = torch.zeros(steps, num_probes, dtype=torch.float64, device=op.device)
    betas = torch.zeros(max(steps - 1, 0), num_probes, dtype=torch.float64, device=op.device)
    tiny = torch.finfo(torch.float64).tiny
    for i in range(steps):
        w = op.matmat(basis[i].to(op.dtype)).to(torch.float64)
        per_probe = basis[: i + 1].permute(2, 1, 0)  # [probes, D, i + 1]: each probe's own basis
        remainder, coeffs = orthogonalize(per_probe, w.T.unsqueeze(-1))
        alphas[i] = coeffs[:, i, 0]
        if i + 1 < steps:
            w = remainder[:, :, 0].T
            norms = w.norm(dim=0)
            betas[i] = norms
            basis[i + 1] = w / norms.clamp(min=tiny)  # breakdown: β≈0 decouples the rest of T
    nodes, weights = _quadrature(alphas.T.cpu(), betas.T.cpu())
    return DensityResult(nodes=nodes, weights=weights, num_parameters=op.size,
                         num_matvecs=op.num_matvecs - matvecs,
                         num_data_passes=op.num_data_passes - passes, seed=seed)


def _quadrature(alphas: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
    """Gauss nodes and weights of each probe's tridiagonal T (rows are probes)."""
    tridiagonal = torch.diag_embed(alphas) + torch.diag_embed(betas, 1) + torch.diag_embed(betas, -1)
    nodes, vectors = torch.linalg.eigh(tridiagonal)
    return nodes, vectors[:, 0, :] ** 2


def smooth_density(nodes: np.ndarray | Tensor, weights: np.ndarray | Tensor, grid: np.ndarray,
                   sigma: float) -> np.ndarray:
    """φ(λ) on ``grid``: the probe-averaged node weights, each spread as N(θ, σ²).

    Integrates to 1 over the real line (to a grid's resolution and extent).
    """
    nodes = np.asarray(nodes, dtype=np.float64).reshape(-1)
    weights = np.asarray(weights, dtype=np.float64)
    weights = (weights / weights.shape[0]).reshape(-1) if weights.ndim == 2 else weights.reshape(-1)
    grid = np.asarray(grid, dtype=np.float64)
    if sigma <= 0:
        raise LandscapeError(f"density smoothing width must be positive, got {sigma}")
    gauss = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return gauss @ weights
