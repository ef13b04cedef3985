"""Width along random rays (Izmailov et al. 2018, Fig. 4): how far one can walk from θ* along a
filter-normalized random direction before the loss rises by Δ.

Each ray θ* + α·d, α ∈ [0, α_max], is sampled on a grid; its width is the first α where
L − L(θ*) reaches Δ, linearly interpolated between grid points (:func:`first_crossing`). A ray
that never gets there is censored: its width is recorded as α_max, a lower bound, so the mean
width is biased low when rays are censored (their count is a parameter; widen α_max then).

Rescaling: when one ReLU layer (weight and bias) is scaled by c and the next layer's weight by
1/c, a filter-normalized direction scales the same way (each filter of d to the norm of the
matching filter of θ*: c·d on the first layer, d/c on the next; biases are zeroed by default,
and when included the first bias's direction scales by c too). So θ* + α·d is the rescaled
image of the original ray, the function along it is the same, and so is every width. The
same holds for per-layer normalization, not for ``normalization="none"``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from ..problem import Problem
from ..surfaces.compute import evaluate_points
from ..surfaces.directions import Normalization, random_directions
from .checks import require_count, require_positive
from .result import SharpnessResult

DESCRIPTION = ("mean width along random filter-normalized rays (Izmailov et al. 2018): the first α ≤ α_max "
               "where L(θ*+αd) − L(θ*) reaches the rise Δ (linear interpolation; a non-finite loss counts "
               "as crossing); a censored ray (never reaching Δ) counts as α_max, so the mean is a lower bound "
               "when any ray is censored")


def first_crossing(alpha: np.ndarray, rise_curve: np.ndarray, level: float) -> tuple[float, bool]:
    """The first α where ``rise_curve`` (sampled on increasing ``alpha``) reaches ``level``.

    Linearly interpolated between the last grid point below ``level`` and the first at or above
    it; a non-finite value counts as crossing at its own α (nothing to interpolate towards).
    Returns ``(α, censored)``: ``(alpha[-1], True)`` when the curve never reaches ``level``.
    """
    alpha, rise_curve = np.asarray(alpha, dtype=np.float64), np.asarray(rise_curve, dtype=np.float64)
    if alpha.ndim != 1 or alpha.shape != rise_curve.shape or alpha.size == 0:
        raise LandscapeError(f"first_crossing: alpha {alpha.shape} and rise_curve {rise_curve.shape} "
                             "must be 1-D of one non-zero length")
    if np.any(np.diff(alpha) <= 0):
        raise LandscapeError("first_crossing: alpha must be strictly increasing")
    reached = ~np.isfinite(rise_curve) | (rise_curve >= level)
    if not reached.any():
        return float(alpha[-1]), True
    i = int(np.argmax(reached))
    if i == 0 or not np.isfinite(rise_curve[i]):
        return float(alpha[i]), False
    below, above = rise_curve[i - 1], rise_curve[i]
    t = (level - below) / (above - below)
    return float(alpha[i - 1] + t * (alpha[i] - alpha[i - 1])), False


def _check_origin(origin: Mapping[str, Tensor], params: Mapping[str, Tensor]) -> None:
    if set(origin) != set(params):
        missing, unknown = sorted(set(params) - set(origin)), sorted(set(origin) - set(params))
        raise LandscapeError(f"ray_width: origin must name exactly the problem's parameters; missing "
                             f"{missing[:3]}, unknown {unknown[:3]}")
    bad = [n for n in params if tuple(origin[n].shape) != tuple(params[n].shape)]
    if bad:
        raise LandscapeError(f"ray_width: origin's shapes differ from the problem's for {', '.join(bad[:3])}; "
                             "pass parameters of the same architecture")


def ray_width(problem: Problem, *, rays: int = 8, rise: float = 0.1, alpha_max: float = 1.0, points: int = 41,
              seed: int = 0, normalization: Normalization = "filter", include_1d: bool = False,
              split: str = "train", origin: Mapping[str, Tensor] | None = None,
              show_progress: bool = True) -> SharpnessResult:
    """Mean width of the basin along ``rays`` random directions (name "ray_width").

    Directions come from :func:`~landscape.surfaces.directions.random_directions`: drawn by
    parameter name (the same raw directions for any checkpoint of one architecture) and
    normalized at this problem's θ*, also when ``origin`` moves the rays' starting point
    elsewhere (so rays from two points are walked along the same directions). Each ray is
    evaluated at ``points`` values of α in [0, ``alpha_max``] on ``split``.
    """
    where = "ray_width"
    rays = require_count(rays, "rays", where, 1)
    rise = require_positive(rise, "rise", where)
    alpha_max = require_positive(alpha_max, "alpha_max", where)
    points = require_count(points, "points", where, 2)
    seed = require_count(seed, "seed", where, 0)
    if normalization not in ("filter", "layer", "none"):
        raise LandscapeError(f"{where}: normalization must be 'filter', 'layer' or 'none', got {normalization!r}")
    problem.batches(split)  # an unknown split fails here, before any work
    given = problem.params if origin is None else origin
    _check_origin(given, problem.params)
    start_origin = {n: torch.as_tensor(given[n]).detach().to(p.device, p.dtype) for n, p in problem.params.items()}

    start = time.perf_counter()
    alpha = np.linspace(0.0, alpha_max, points)
    directions = random_directions(problem.params, rays, seed=seed, normalization=normalization,
                                   include_1d=include_1d)
    loss = np.full((rays, points), np.nan)
    for r, direction in enumerate(directions):
        for indices, values in evaluate_points(problem, start_origin, [direction.vectors], [alpha], [split],
                                               np.arange(points), f"ray {r + 1}/{rays}",
                                               show_progress=show_progress):
            loss[r, indices] = values[split]["loss"]
    if not np.isfinite(loss[:, 0]).all():
        raise LandscapeError(f"{where}: the {split} loss at the rays' origin is {loss[0, 0]}, not finite; "
                             "there is no basin to measure from this point")
    # each ray's rise is measured from its own α = 0 entry: the same point, evaluated with the ray
    crossings = [first_crossing(alpha, curve - curve[0], rise) for curve in loss]
    widths = np.array([w for w, _ in crossings])
    censored = np.array([c for _, c in crossings], dtype=np.float64)
    count = int(censored.sum())
    notes = (f"{count} of {rays} rays censored at alpha_max={alpha_max:g} (counted as alpha_max: the mean is a "
             "lower bound; raise alpha_max)" if count else "no ray censored")
    return SharpnessResult(
        name="ray_width", value=float(widths.mean()), baseline_loss=float(loss[0, 0]), description=DESCRIPTION,
        parameters={"rays": rays, "rise": rise, "alpha_max": alpha_max, "points": points, "seed": seed,
                    "normalization": normalization, "include_1d": bool(include_1d), "split": split,
                    "censored": count},
        rescaling_invariant=normalization != "none", gradient_evaluations=0, loss_evaluations=rays * points,
        seconds=time.perf_counter() - start,
        stderr=float(widths.std(ddof=1) / np.sqrt(rays)) if rays > 1 else float("nan"),
        notes=notes, samples=widths,
        curves={"alpha": alpha, "loss": loss, "censored": censored})
