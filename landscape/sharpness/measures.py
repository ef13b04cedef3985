"""Every measure by name: :func:`compute_measures` runs the ones a :class:`SharpnessConfig` selects.

λ_max and tr H come from the curvature engine (Lanczos and Hutch++ on Hessian-vector
products, counted as two gradient evaluations each); the others are in this package's
modules, each a function of a Problem.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..curvature.config import CurvatureConfig
from ..curvature.step import build_operator, compute_eigen, compute_trace
from ..problem import Problem
from .average import average_sharpness
from .config import SharpnessConfig
from .epsilon import epsilon_sharpness
from .rays import ray_width
from .result import SharpnessResult
from .worst import m_sharpness, worst_case_sharpness

Measure = Callable[[Problem, SharpnessConfig], SharpnessResult]

# one HVP costs about two gradient evaluations (a gradient and its directional derivative)
GRADIENTS_PER_HVP = 2


def _worst(norm: str, adaptive: bool, radius: str) -> Measure:
    return lambda p, c: worst_case_sharpness(p, rho=getattr(c, radius), norm=norm,  # type: ignore[arg-type]
                                             adaptive=adaptive, steps=c.steps, restarts=c.restarts,
                                             split=c.split, seed=c.seed)


MEASURES: dict[str, Measure] = {
    "average": lambda p, c: average_sharpness(p, sigma=c.sigma, samples=c.samples, split=c.split, seed=c.seed),
    "average_adaptive": lambda p, c: average_sharpness(p, sigma=c.adaptive_sigma, adaptive=True,
                                                       samples=c.samples, split=c.split, seed=c.seed),
    "worst_l2": _worst("l2", False, "rho"),
    "worst_l2_adaptive": _worst("l2", True, "adaptive_rho"),
    "worst_linf": _worst("linf", False, "linf_rho"),
    "worst_linf_adaptive": _worst("linf", True, "adaptive_linf_rho"),
    "m_sharpness": lambda p, c: m_sharpness(p, m=c.m, rho=c.rho, steps=c.steps, restarts=1, split=c.split,
                                            seed=c.seed, max_batches=c.m_batches),
    "epsilon": lambda p, c: epsilon_sharpness(p, epsilon=c.epsilon, maxiter=c.maxiter, split=c.split,
                                              seed=c.seed),
    "epsilon_subspace": lambda p, c: epsilon_sharpness(p, epsilon=c.epsilon, subspace_dim=c.subspace_dim,
                                                       maxiter=c.maxiter, split=c.split, seed=c.seed),
    "ray_width": lambda p, c: ray_width(p, rays=c.rays, rise=c.rise, alpha_max=c.alpha_max,
                                        points=c.ray_points, seed=c.seed, split=c.split),
}

CURVATURE_MEASURES = ("lambda_max", "trace")


def curvature_measures(problem: Problem, config: SharpnessConfig, names: tuple[str, ...] = CURVATURE_MEASURES,
                       ) -> Iterator[SharpnessResult]:
    """λ_max (Lanczos, top 1) and tr H (Hutch++) of the Hessian of ``config.split``, one operator."""
    curvature = CurvatureConfig(top=1, trace=True, split=config.split, seed=config.seed,
                                trace_probes=config.trace_probes)
    op = build_operator(problem, curvature)
    baseline = problem.loss(split=config.split)
    common: dict[str, Any] = {"split": config.split, "seed": config.seed, "hvp_mode": op.describe()["hvp_mode"]}
    if "lambda_max" in names:
        start, before = time.perf_counter(), op.num_matvecs
        top = compute_eigen(op, 1, "LA", curvature)
        hvps = op.num_matvecs - before
        converged = bool(top.converged[0])
        yield SharpnessResult(
            name="lambda_max", value=float(top.eigenvalues[0]), baseline_loss=baseline,
            description="largest Hessian eigenvalue λ_max (Lanczos)", rescaling_invariant=False,
            parameters={**common, "residual": float(top.residuals[0]), "hvps": hvps},
            gradient_evaluations=GRADIENTS_PER_HVP * hvps, seconds=time.perf_counter() - start,
            converged=converged, notes="" if converged else "Lanczos stopped before the residual tolerance")
    if "trace" in names:
        start, before = time.perf_counter(), op.num_matvecs
        trace = compute_trace(op, curvature)
        hvps = op.num_matvecs - before
        yield SharpnessResult(
            name="trace", value=trace.estimate, stderr=trace.stderr, baseline_loss=baseline,
            description="Hessian trace tr H (Hutch++)", rescaling_invariant=False,
            parameters={**common, "probes": config.trace_probes, "hvps": hvps},
            gradient_evaluations=GRADIENTS_PER_HVP * hvps, seconds=time.perf_counter() - start,
            samples=trace.samples.double().cpu().numpy())


def compute_measures(problem: Problem, config: SharpnessConfig, skip: Callable[[str], bool] = lambda _: False,
                     ) -> Iterator[SharpnessResult]:
    """Each selected measure not ``skip``-ped (e.g. already in the file), as it finishes."""
    selected = [name for name in config.selected() if not skip(name)]
    curvature = tuple(n for n in selected if n in CURVATURE_MEASURES)
    if curvature:
        yield from curvature_measures(problem, config, curvature)
    for name in selected:
        if name not in CURVATURE_MEASURES:
            start = time.perf_counter()
            result = MEASURES[name](problem, config)
            yield dataclasses.replace(result, seconds=time.perf_counter() - start)
