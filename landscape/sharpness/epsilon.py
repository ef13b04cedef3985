"""ε-sharpness of Keskar et al. (2017, Sec. 2.2.2, Eq. 3–4): the largest loss in a box around θ*.

The box is C_ε = {z : |z_i| ≤ ε(|(A⁺θ*)_i| + 1)} and the perturbation θ* + A·y, y ∈ C_ε; A = I in
the full space, a seeded random D×p matrix in a p-dimensional subspace (A⁺ its pseudo-inverse).
The maximum of f(y) = L(θ* + A·y) is searched with scipy's L-BFGS-B on −f and −Aᵀ∇L, and
reported as 100·(max − f)/(1 + f) with f = L(θ*).

Two choices the paper leaves open, made here:

* A's entries are N(0, 1) with each column scaled to unit norm (drawn on the CPU in float64,
  seeded), so a column is a unit step like a coordinate of the full space and the "+1" of the
  box means the same in both.
* The search starts at y₀ = u ⊙ (half-widths), u ~ U(−1, 1)ᵖ seeded, not at y = 0: θ* is a
  (near-)stationary point, so the projected gradient there is (near) zero and L-BFGS-B would
  stop at once reporting the baseline itself as the maximum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import torch

from ..memory import require_fits
from ..problem import Problem
from .checks import require_count, require_positive
from .objective import Objective
from .precision import rounding_fraction, rounding_note
from .result import SharpnessResult

# converged: the Frank–Wolfe gap max_{s∈box} ∇f·(s − y) at the best point — the increase the
# linear model still promises inside the box, zero exactly at a KKT point — is at most this
# share of the rise found (scale-free, unlike scipy's absolute projected-gradient test)
GAP_RTOL = 1e-3

DESCRIPTION = ("ε-sharpness (Keskar et al. 2017): 100·(max_{y∈C_ε} L(θ*+Ay) − L(θ*))/(1 + L(θ*)), "
               "C_ε = {|y_i| ≤ ε(|(A⁺θ*)_i| + 1)}, maximized by L-BFGS-B from a random point of the box; "
               "the maximum found is a lower bound of the true one")


def random_subspace(dimension: int, subspace_dim: int, seed: int = 0) -> np.ndarray:
    """The D×p matrix A: N(0, 1) entries (seeded, CPU float64), each column scaled to unit norm."""
    matrix = np.random.default_rng([seed, 0]).standard_normal((dimension, subspace_dim))
    return matrix / np.linalg.norm(matrix, axis=0, keepdims=True)


def box_half_widths(theta: np.ndarray, epsilon: float, basis: np.ndarray | None = None) -> np.ndarray:
    """ε(|(A⁺θ)_i| + 1), the half-widths of C_ε (A = I when ``basis`` is None)."""
    coordinates = theta if basis is None else np.linalg.lstsq(basis, theta, rcond=None)[0]  # A⁺θ
    return epsilon * (np.abs(coordinates) + 1.0)


def start_point(half_widths: np.ndarray, seed: int = 0) -> np.ndarray:
    """y₀ = u ⊙ half-widths, u ~ U(−1, 1) seeded (an independent stream from A's)."""
    return np.random.default_rng([seed, 1]).uniform(-1.0, 1.0, half_widths.shape) * half_widths


def frank_wolfe_gap(y: np.ndarray, gradient: np.ndarray, half_widths: np.ndarray) -> float:
    """The most gradient·(s − y) reaches over s in the box: what a linear model still gains (0 at a KKT point)."""
    room = np.where(gradient > 0, half_widths - y, y + half_widths)
    return float(np.sum(np.abs(gradient) * np.maximum(room, 0.0)))


@dataclass
class _Ascent:
    """f(y) = L(θ* + A·y) for scipy (as −f, −∇f), remembering the best point evaluated."""

    objective: Objective
    basis: np.ndarray | None
    best_loss: float = -np.inf
    best_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_gradient: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __call__(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        delta = y if self.basis is None else self.basis @ y
        loss, grad = self.objective.loss_and_gradient(torch.from_numpy(np.ascontiguousarray(delta)))
        gradient = grad.cpu().numpy()
        if self.basis is not None:
            gradient = self.basis.T @ gradient
        if loss > self.best_loss or not np.isfinite(self.best_loss):
            self.best_loss, self.best_y, self.best_gradient = loss, y.copy(), gradient
        return -loss, -gradient


def epsilon_sharpness(problem: Problem, *, epsilon: float = 1e-3, subspace_dim: int | None = None,
                      maxiter: int = 10, split: str = "train", seed: int = 0) -> SharpnessResult:
    """Keskar et al.'s ε-sharpness in the full space (``subspace_dim=None``, name "epsilon") or in
    a random ``subspace_dim``-dimensional subspace (name "epsilon_subspace").

    ``maxiter`` L-BFGS-B iterations at most (Keskar et al. use a small fixed budget, so stopping
    there is the normal case); ``converged`` says whether the best point found is a KKT point of
    the box problem (Frank–Wolfe gap ≤ 0.1% of the rise), not whether scipy stopped by itself.
    Cost: ``gradient_evaluations`` = objective calls (scipy's nfev), ``loss_evaluations`` = 1 (f).
    """
    where = "epsilon_sharpness"
    epsilon = require_positive(epsilon, "epsilon", where)
    maxiter = require_count(maxiter, "maxiter", where, 1)
    require_count(seed, "seed", where, 0)
    objective = Objective.on_split(problem, split)
    dimension = objective.size
    if subspace_dim is not None:
        require_count(subspace_dim, "subspace_dim", where, 1, dimension)
        require_fits(8 * dimension * subspace_dim, f"{where} (a {dimension}×{subspace_dim} subspace matrix)",
                     "pass a smaller subspace_dim")

    start = time.perf_counter()
    theta = objective.theta.detach().double().cpu().numpy()
    basis = None if subspace_dim is None else random_subspace(dimension, subspace_dim, seed)
    half = box_half_widths(theta, epsilon, basis)
    baseline = objective.loss(torch.zeros(dimension, dtype=torch.float64))
    ascent = _Ascent(objective, basis)
    result = scipy.optimize.minimize(ascent, start_point(half, seed), jac=True, method="L-BFGS-B",
                                     bounds=scipy.optimize.Bounds(-half, half),
                                     # gtol=0: a box of size ε has gradients O(ε·curvature), often
                                     # under scipy's absolute 1e-5 already at the start
                                     options={"maxiter": maxiter, "gtol": 0.0})
    max_loss = max(ascent.best_loss, baseline)
    rise = max_loss - baseline
    gap = frank_wolfe_gap(ascent.best_y, ascent.best_gradient, half) if np.isfinite(ascent.best_loss) else np.inf
    kkt = bool(np.isfinite(rise) and gap <= GAP_RTOL * rise)
    # the box in θ-space (full space), or the full-space box of the same ε (subspace: a proxy)
    theta_box = half if basis is None else box_half_widths(theta, epsilon)
    rounding = rounding_note(rounding_fraction(objective.theta, torch.from_numpy(theta_box), 1.0, "linf"),
                             objective.theta.dtype)
    converged = kkt and not rounding
    notes = (f"L-BFGS-B: {result.message} after {result.nit} iterations, {result.nfev} evaluations; "
             f"Frank–Wolfe gap {gap:.3g} vs rise {rise:.3g} ("
             + ("a KKT point of the box)" if kkt else "not a KKT point: the maximum is a lower bound)")
             + (f"; {rounding}" if rounding else ""))
    return SharpnessResult(
        name="epsilon" if subspace_dim is None else "epsilon_subspace",
        value=100.0 * rise / (1.0 + baseline), baseline_loss=baseline, description=DESCRIPTION,
        parameters={"epsilon": epsilon, "subspace_dim": subspace_dim or 0, "maxiter": maxiter, "split": split,
                    "seed": seed, "iterations": int(result.nit), "max_loss": max_loss},
        rescaling_invariant=False, gradient_evaluations=objective.gradient_evaluations,
        loss_evaluations=objective.loss_evaluations, seconds=time.perf_counter() - start,
        converged=converged, notes=notes, samples=np.array([max_loss]))
