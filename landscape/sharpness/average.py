"""Average-case sharpness: E[L(θ* + δ)] − L(θ*) for Gaussian δ.

Standard: δ = σ z. Adaptive: δ = σ |θ*| ⊙ z, each weight perturbed in proportion to its own
size, so the measure is unchanged when a ReLU layer is scaled by α and the next by 1/α
(weights that are exactly zero are not perturbed). z ~ N(0, I) is drawn on the CPU in
float64 from ``seed`` (the same draws on every machine and device), then cast to the
problem's dtype. For a quadratic L with Hessian H the standard value is σ² tr H / 2 and the
adaptive one σ²/2 Σᵢ Hᵢᵢ θᵢ²; the standard error says how far a finite sample may be off.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor

from ..memory import require_fits
from ..params import flatten, unflatten_rows
from ..problem import Problem
from .checks import require_count, require_positive, require_split
from .precision import gaussian_radius, rounding_fraction, rounding_note
from .result import SharpnessResult

WHERE = "average_sharpness"


def gaussian_perturbations(theta: Tensor, *, sigma: float, adaptive: bool, samples: int, seed: int) -> Tensor:
    """``[samples, D]`` float64 CPU rows δ_s = σ z_s (or σ |θ*| ⊙ z_s), z_s ~ N(0, I) from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, theta.numel(), generator=generator, dtype=torch.float64)
    scale = theta.detach().to(device="cpu", dtype=torch.float64).abs() if adaptive else 1.0
    return sigma * scale * z


def average_sharpness(problem: Problem, *, sigma: float = 0.01, adaptive: bool = False, samples: int = 64,
                      split: str = "train", seed: int = 0, show_progress: bool = True) -> SharpnessResult:
    """E_z[L(θ* + δ)] − L(θ*) over ``samples`` Gaussian draws, with its standard error.

    All S + 1 points (θ* first, then θ* + δ_s) go through one :meth:`Problem.evaluate` call,
    which batches them within the memory budget (and applies the problem's BatchNorm
    policy to the baseline and the perturbed points alike). ``samples`` holds the per-draw
    rises L(θ* + δ_s) − L(θ*).
    """
    sigma = require_positive(sigma, "sigma", WHERE)
    samples = require_count(samples, "samples", WHERE)
    split = require_split(problem, split, WHERE)
    started = time.perf_counter()
    theta = flatten(problem.params)
    require_fits((samples + 1) * theta.numel() * (8 + theta.element_size()),
                 f"average-case sharpness with {samples} samples", "use fewer samples")

    deltas = gaussian_perturbations(theta, sigma=sigma, adaptive=adaptive, samples=samples, seed=seed)
    rows = torch.cat([torch.zeros(1, theta.numel(), dtype=torch.float64), deltas])
    points = unflatten_rows(theta + rows.to(device=theta.device, dtype=theta.dtype), problem.params)
    losses = problem.evaluate(points, split, show_progress=show_progress)["loss"].numpy()
    rises = losses[1:] - losses[0]

    name = "average_adaptive" if adaptive else "average"
    rounding = rounding_note(rounding_fraction(theta, theta if adaptive else None,
                                               gaussian_radius(sigma, theta.numel()), "l2"), theta.dtype)
    notes = [rounding] if rounding else []
    if not np.isfinite(rises).all():
        notes.append("some perturbed points gave a non-finite loss")
    perturbation = "σ |θ*| ⊙ z" if adaptive else "σ z"
    return SharpnessResult(
        name=name,
        value=float(rises.mean()),
        stderr=float(rises.std(ddof=1) / math.sqrt(samples)) if samples > 1 else float("nan"),
        baseline_loss=float(losses[0]),
        description=f"E[L(θ*+δ)] − L(θ*) on '{split}' for δ = {perturbation}, z ~ N(0, I): "
                    f"the mean over {samples} seeded draws",
        parameters={"sigma": sigma, "adaptive": adaptive, "samples": samples, "split": split, "seed": seed},
        rescaling_invariant=adaptive,
        gradient_evaluations=0,
        loss_evaluations=samples + 1,
        seconds=time.perf_counter() - started,
        converged=not rounding,
        notes="; ".join(notes),
        samples=rises,
    )
