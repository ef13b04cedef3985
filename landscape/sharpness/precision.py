"""Whether the compute dtype resolves a measure's perturbations.

Every measure evaluates L at θ* + δ rounded to the problem's dtype, which moves coordinate i
by up to eps/2·|θ*_i| (half a unit in the last place). In float32 that is ~1e-7 of the
weights, far below any radius; in bfloat16 (eps = 2⁻⁷) it is 0.4 % of every weight, which
on a model with ‖θ*‖ = 17 is a move of 0.07: more than SAM's ρ = 0.05. A measure whose
perturbations are that small measures the rounding, not the landscape, so its result is
flagged not converged with a note saying what to do (compute in float32).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ROUNDING_LIMIT = 0.1  # rounding may move a point by at most this fraction of the perturbation's size


def rounding_fraction(theta: Tensor, weights: Tensor | None, radius: float, norm: str) -> float:
    """How far rounding θ* + δ to ``theta.dtype`` can move a point, as a fraction of ``radius``.

    δ = w ⊙ u with ``‖u‖ ≤ radius`` in ``norm`` ("l2", else ℓ∞) (``weights`` w, or 1 when None):
    the move is measured in u, coordinates with w_i = 0 excluded (they are never perturbed).
    """
    half_ulp = torch.finfo(theta.dtype).eps / 2
    move = half_ulp * theta.detach().double().abs().flatten()
    if weights is not None:
        w = weights.detach().double().abs().flatten().to(move.device)
        move = torch.where(w > 0, move / w.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(move))
    size = float(move.norm() if norm == "l2" else move.max()) if move.numel() else 0.0
    return size / radius


def rounding_note(fraction: float, dtype: torch.dtype) -> str:
    """'' when ``fraction`` is within :data:`ROUNDING_LIMIT`, else the note that flags the result."""
    if not fraction > ROUNDING_LIMIT:
        return ""
    return (f"{str(dtype).removeprefix('torch.')} rounding of θ*+δ moves a point by up to {fraction:.0%} of the "
            "perturbation's size: the value measures rounding, not the landscape; compute in float32 "
            "(--dtype float32)")


def gaussian_radius(sigma: float, dimension: int) -> float:
    """The typical ℓ2 norm σ√D of σz, z ~ N(0, I_D): the size an average case is compared with."""
    return sigma * math.sqrt(dimension)
