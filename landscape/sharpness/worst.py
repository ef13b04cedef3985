"""Worst-case sharpness: max over ‖δ‖ ≤ ρ of L(θ* + δ) − L(θ*), and m-sharpness.

The maximum is searched by projected gradient ascent on δ = s ⊙ u, ‖u‖ ≤ ρ, with s = 1
(standard) or s = |θ*| (adaptive: invariant to rescaling a ReLU layer by α and the next by
1/α); the gradient in u is s ⊙ ∇L. One step:

* ℓ2: u ← P(u + η ρ g/‖g‖), P the projection onto the ball (radial rescaling);
* ℓ∞: u ← P(u + η ρ sign g), P the clipping to the box.

η starts at 1 (a step as long as the radius). A step that lowers the loss (or makes it
non-finite) is rejected and η halved; an accepted one doubles η again, up to 1. So every
iterate is feasible and no worse than the last: the value is a lower bound of the true
maximum, the best of ``restarts`` runs of 2·``steps`` steps. Restart 0 starts at SAM's
perturbation (the maximum of the linearized loss, :func:`sam_start`), the others at
uniformly random points of the ball (drawn in float64 on the CPU from ``seed``). On a convex
quadratic every step is accepted and the ℓ2 iteration is a shifted power iteration
(u ∝ (I + H/‖Hu‖)u): the direction's error shrinks by about (1 + λ₂/λ₁)/2 per step and the
gain tends to ρ²λ_max/2.

Convergence is checked, not assumed: the best gain after ``steps`` steps is compared with
the best after 2·``steps``; a relative rise of 1 % or more marks the result not converged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from ..params import flatten
from ..problem import Batch, Problem
from ..problem.data import concat_batches
from ..problem.splits import count_examples
from ..progress import progress
from .checks import require_choice, require_count, require_positive, require_split
from .objective import Objective
from .precision import rounding_fraction, rounding_note
from .result import SharpnessResult

Norm = Literal["l2", "linf"]
NORMS = ("l2", "linf")
CONVERGENCE_TOLERANCE = 0.01  # relative rise of the gain from `steps` to 2·`steps` steps
TINY = 1e-30  # keeps the relative change finite when the gain is zero


@dataclass(frozen=True)
class Ball:
    """The feasible set ‖u‖ ≤ ``rho`` in the ``norm``, with its ascent step and projection."""

    norm: str
    rho: float

    def step(self, gradient: Tensor, eta: float) -> Tensor:
        """η ρ g/‖g‖ (ℓ2; zero where g = 0) or η ρ sign g (ℓ∞)."""
        if self.norm == "linf":
            return eta * self.rho * torch.sign(gradient)
        length = gradient.norm()
        return gradient * (eta * self.rho / length) if length > 0 else torch.zeros_like(gradient)

    def project(self, u: Tensor) -> Tensor:
        """The nearest point of the ball: radial rescaling (ℓ2) or clipping (ℓ∞)."""
        if self.norm == "linf":
            return u.clamp(-self.rho, self.rho)
        length = float(u.norm())
        return u * (self.rho / length) if length > self.rho else u

    def random_point(self, size: int, generator: torch.Generator) -> Tensor:
        """A uniformly random point of the ball (float64, CPU)."""
        if self.norm == "linf":
            return self.rho * (2 * torch.rand(size, generator=generator, dtype=torch.float64) - 1)
        direction = torch.randn(size, generator=generator, dtype=torch.float64)
        radius = self.rho * float(torch.rand(1, generator=generator, dtype=torch.float64)) ** (1 / size)
        return direction * (radius / float(direction.norm()))


def ascend(objective: Objective, scale: Tensor, ball: Ball, start: Tensor, iterations: int,
           on_step: Callable[[], object] = lambda: None) -> np.ndarray:
    """Projected ascent of u ↦ L(θ* + scale ⊙ u) from ``start``; the loss after each step.

    Returns ``iterations + 1`` values: the loss at the start, then at the iterate after each
    step (non-decreasing: rejected steps keep the iterate). Costs ``iterations`` gradient
    evaluations and one loss evaluation (the last candidate needs no gradient).
    """
    u = start
    value, gradient = objective.loss_and_gradient(scale * u)
    ascent = scale * gradient
    eta = 1.0
    values = [value]
    for step in range(1, iterations + 1):
        candidate = ball.project(u + ball.step(ascent, eta))
        if step == iterations:
            candidate_value, candidate_gradient = objective.loss(scale * candidate), None
        else:
            candidate_value, candidate_gradient = objective.loss_and_gradient(scale * candidate)
        if candidate_value >= value:  # False for NaN: a diverged candidate is rejected
            u, value, eta = candidate, candidate_value, min(1.0, 2 * eta)
            if candidate_gradient is not None:
                ascent = scale * candidate_gradient
        else:
            eta /= 2
        values.append(value)
        on_step()
    return np.asarray(values, dtype=np.float64)


def sam_start(ball: Ball, gradient: Tensor, fallback: Tensor) -> Tensor:
    """SAM's perturbation ρ g/‖g‖ (ℓ2) or ρ sign g (ℓ∞) for the gradient g at θ*: the maximum
    of the loss's linearization, and so the best one-step start (measured on the digits MLP:
    within 0.3 % of the converged ℓ2 gain, where a random start is 40 % short). ``fallback``
    where it is undefined: g = 0 (a stationary θ*, such as a quadratic's minimum) or not finite."""
    start = ball.project(ball.step(gradient, 1.0))
    defined = bool(torch.isfinite(start).all()) and bool(start.abs().max() > 0)
    return start if defined else fallback


def ball_rounding_note(theta: Tensor, rho: float, norm: str, adaptive: bool) -> str:
    """The note flagging a ball too small for ``theta``'s dtype to resolve ('' when it can)."""
    return rounding_note(rounding_fraction(theta, theta if adaptive else None, rho, norm), theta.dtype)


def worst_case_name(norm: str, adaptive: bool) -> str:
    """``worst_l2``, ``worst_linf``, ``worst_l2_adaptive`` or ``worst_linf_adaptive``."""
    return f"worst_{norm}" + ("_adaptive" if adaptive else "")


def worst_case_sharpness(problem: Problem, *, rho: float = 0.05, norm: Norm = "l2", adaptive: bool = False,
                         steps: int = 20, restarts: int = 3, split: str = "train", seed: int = 0,
                         batches: Sequence[Batch] | None = None, show_progress: bool = True) -> SharpnessResult:
    """Worst case over ‖δ‖ ≤ ρ (or δ = |θ*| ⊙ u, ‖u‖ ≤ ρ) of L(θ* + δ) − L(θ*) by projected ascent.

    ``batches`` replaces the split's batches (m-sharpness runs this on m-example batches);
    ``split`` is then only recorded. ``samples`` are the per-restart gains; the curve
    ``gain_by_step`` ([restarts, 2·steps + 1]) the best gain of each restart after each step.
    """
    where = "worst_case_sharpness"
    rho = require_positive(rho, "rho", where)
    norm_name = require_choice(norm, NORMS, "norm", where)
    steps = require_count(steps, "steps", where)
    restarts = require_count(restarts, "restarts", where)
    split = require_split(problem, split, where)
    data = problem.batches(split) if batches is None else list(batches)
    if not data:
        raise LandscapeError(f"{where}: batches is empty; pass at least one batch (or None for the split's)")
    started = time.perf_counter()

    objective = Objective(problem, data)
    theta = objective.theta.to(torch.float64)
    baseline, gradient = objective.loss_and_gradient(torch.zeros_like(theta))
    scale = theta.abs() if adaptive else torch.ones_like(theta)
    ball = Ball(norm_name, rho)
    generator = torch.Generator().manual_seed(seed)
    starts = [ball.random_point(objective.size, generator).to(theta.device) for _ in range(restarts)]
    starts[0] = sam_start(ball, scale * gradient, fallback=starts[0])
    name = worst_case_name(norm_name, adaptive)
    with progress(restarts * 2 * steps, name.replace("_", " "), "step", enabled=show_progress) as bar:
        curves = np.stack([ascend(objective, scale, ball, start, 2 * steps, lambda: bar.update(1)) - baseline
                           for start in starts])

    gain, gain_at_steps = float(curves[:, -1].max()), float(curves[:, steps].max())
    relative_change = (gain - gain_at_steps) / max(abs(gain), TINY)
    rounding = ball_rounding_note(objective.theta, rho, norm_name, adaptive)
    converged = bool(relative_change < CONVERGENCE_TOLERANCE) and not rounding
    notes = [rounding] if rounding else [] if converged else [
        f"not converged: doubling the ascent from {steps} to {2 * steps} steps raised the gain by "
        f"{relative_change:.1%} (≥ {CONVERGENCE_TOLERANCE:.0%}); the value is a lower bound, rerun with more steps"]
    spread = (gain - float(curves[:, -1].min())) / max(abs(gain), TINY)
    if spread >= CONVERGENCE_TOLERANCE:
        notes.append(f"the restarts ended {spread:.1%} apart (different local maxima); the value is the best")
    symbol = "∞" if norm_name == "linf" else "2"
    constraint = f"δ = |θ*| ⊙ u, ‖u‖_{symbol} ≤ ρ" if adaptive else f"‖δ‖_{symbol} ≤ ρ"
    return SharpnessResult(
        name=name,
        value=gain,
        baseline_loss=baseline,
        description=f"max over {constraint} of L(θ*+δ) − L(θ*) on '{split}' by projected "
                    f"{'sign-' if norm_name == 'linf' else 'normalized '}gradient ascent: the best of "
                    f"{restarts} start(s) (SAM's point, then random) × {2 * steps} steps (a lower bound of the max)",
        parameters={"rho": rho, "norm": norm_name, "adaptive": adaptive, "steps": steps, "restarts": restarts,
                    "split": split, "seed": seed, "gain_at_steps": gain_at_steps,
                    "relative_change": relative_change},
        rescaling_invariant=adaptive,
        gradient_evaluations=objective.gradient_evaluations,
        loss_evaluations=objective.loss_evaluations,
        seconds=time.perf_counter() - started,
        converged=converged,
        notes="; ".join(notes),
        samples=curves[:, -1].copy(),
        curves={"gain_by_step": curves},
    )


def chosen_m_batches(examples: int, m: int, max_batches: int | None = None) -> list[int]:
    """Which of the ⌊examples/m⌋ m-example batches to use: all, or ``max_batches`` of them
    evenly spaced over the split (first and last included), so sorted data is not read from
    one end only."""
    count = examples // m
    if max_batches is None or max_batches >= count:
        return list(range(count))
    return sorted({round(i * (count - 1) / max(max_batches - 1, 1)) for i in range(max_batches)})


def iter_m_example_batches(batches: Iterable[Batch], m: int, chosen: Sequence[int]) -> Iterator[Batch]:
    """The m-example batches ``chosen`` (examples j·m to (j+1)·m of the concatenated ``batches``
    for each j, in order), each made as soon as its examples are read: one pass over the data."""
    if not chosen:
        return
    wanted = set(chosen)
    pieces: list[Batch] = []
    offset = 0
    for batch in batches:
        if offset >= (max(chosen) + 1) * m:
            break
        for j in range(offset // m, min((offset + batch.size - 1) // m, max(chosen)) + 1):
            if j not in wanted:
                continue
            low, high = max(j * m - offset, 0), min((j + 1) * m - offset, batch.size)
            pieces.append(batch.slice(low, high))
            if (j + 1) * m <= offset + batch.size:
                yield _concatenated(pieces)
                pieces = []
        offset += batch.size


def _concatenated(pieces: list[Batch]) -> Batch:
    try:
        return concat_batches(pieces)
    except (RuntimeError, TypeError, ValueError):  # ragged inputs (e.g. sequence lengths)
        raise LandscapeError("m_sharpness: the split's batches cannot be concatenated into m-example batches "
                             "(ragged inputs?); use data whose examples have one shape") from None


def m_example_batches(batches: Iterable[Batch], m: int, max_batches: int | None = None) -> list[Batch]:
    """The examples of ``batches``, in order, cut into ⌊n/m⌋ batches of exactly m.

    The last n mod m examples are dropped (a shorter batch would be sharper and bias the
    mean). With ``max_batches`` < ⌊n/m⌋, that many batches evenly spaced over the split
    (:func:`chosen_m_batches`).
    """
    return list(iter_m_example_batches(batches, m, chosen_m_batches(count_examples(batches), m, max_batches)))


def m_sharpness(problem: Problem, *, m: int = 128, rho: float = 0.05, norm: Norm = "l2", adaptive: bool = False,
                steps: int = 10, restarts: int = 1, split: str = "train", seed: int = 0,
                max_batches: int | None = None, show_progress: bool = True) -> SharpnessResult:
    """m-sharpness (Foret et al., 2021): the mean over batches of m examples of each batch's
    worst case max_δ L_B(θ* + δ) − L_B(θ*) (:func:`worst_case_sharpness` on that batch alone).

    Batches are consecutive examples of the split (:func:`m_example_batches`: the remainder
    of n/m is dropped; ``max_batches`` keeps that many, evenly spaced). With m = n this is
    the full-batch worst case. ``stderr`` is over batches, ``samples`` the per-batch gains.
    """
    where = "m_sharpness"
    m = require_count(m, "m", where)
    rho = require_positive(rho, "rho", where)
    norm_name = require_choice(norm, NORMS, "norm", where)
    steps = require_count(steps, "steps", where)
    restarts = require_count(restarts, "restarts", where)
    split = require_split(problem, split, where)
    if max_batches is not None:
        max_batches = require_count(max_batches, "max_batches", where)
    examples = problem.num_examples(split)
    if problem.shard is not None:
        raise LandscapeError(f"{where}: the m-example batches are consecutive examples, which a data-parallel "
                             "run splits across ranks; compute it in one process")
    if m > examples:
        raise LandscapeError(f"{where}: m = {m} is larger than the {examples} examples of split '{split}'; "
                             f"choose m ≤ {examples}")
    started = time.perf_counter()
    chosen = chosen_m_batches(examples, m, max_batches)
    results = []
    with progress(len(chosen), f"{m}-sharpness", "batch", enabled=show_progress) as bar:
        for chunk in iter_m_example_batches(problem.batches(split), m, chosen):  # one pass over a streamed split
            results.append(worst_case_sharpness(problem, rho=rho, norm=norm, adaptive=adaptive, steps=steps,
                                                restarts=restarts, split=split, seed=seed, batches=[chunk],
                                                show_progress=False))
            bar.update(1)

    gains = np.array([r.value for r in results])
    gain, gain_at_steps = float(gains.mean()), float(np.mean([r.parameters["gain_at_steps"] for r in results]))
    dropped = examples % m
    unconverged = sum(not r.converged for r in results)
    notes = [f"{dropped} example(s) after the last full batch of {m} dropped"] if dropped else []
    rounding = ball_rounding_note(flatten(problem.params), rho, norm_name, adaptive)
    if rounding:
        notes.append(rounding)
    elif unconverged:
        notes.append(f"not converged on {unconverged} of {len(results)} batches (doubling the steps raised "
                     f"the gain by ≥ {CONVERGENCE_TOLERANCE:.0%}); rerun with more steps")
    return SharpnessResult(
        name="m_sharpness",
        value=gain,
        stderr=float(gains.std(ddof=1) / math.sqrt(len(gains))) if len(gains) > 1 else float("nan"),
        baseline_loss=float(np.mean([r.baseline_loss for r in results])),
        description=f"mean over {len(results)} batches B of m = {m} consecutive '{split}' examples of "
                    f"{results[0].name}'s max of L_B(θ*+δ) − L_B(θ*) (baseline: the loss on the examples used)",
        parameters={"rho": rho, "norm": norm_name, "adaptive": adaptive, "steps": steps, "restarts": restarts,
                    "split": split, "seed": seed, "m": m, "max_batches": max_batches, "batches_used": len(results),
                    "examples_dropped": dropped, "gain_at_steps": gain_at_steps,
                    "relative_change": (gain - gain_at_steps) / max(abs(gain), TINY)},
        rescaling_invariant=adaptive,
        gradient_evaluations=sum(r.gradient_evaluations for r in results),
        loss_evaluations=sum(r.loss_evaluations for r in results),
        seconds=time.perf_counter() - started,
        converged=unconverged == 0,
        notes="; ".join(notes),
        samples=gains,
    )
