"""What a sharpness run measures: :class:`SharpnessConfig`, whose fields are also the options of
``landscape compare`` and ``landscape scan --sharpness`` (their defaults and help live here once)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from ..errors import LandscapeError
from ..options import option
from ..problem import Problem

# Every measure, in the order they are computed and shown.
MEASURE_NAMES = ("lambda_max", "trace", "average", "average_adaptive", "worst_l2", "worst_l2_adaptive",
                 "worst_linf", "worst_linf_adaptive", "m_sharpness", "epsilon", "epsilon_subspace", "ray_width")


@dataclass(frozen=True)
class SharpnessConfig:
    """Which measures to compute and their settings (radii, steps, samples, rays).

    Radii of the adaptive measures are relative: δ = |θ*| ⊙ u with ‖u‖ ≤ ρ.
    """

    measures: tuple[str, ...] = option((), "a measure to compute (repeatable; default: all): "
                                       + ", ".join(MEASURE_NAMES), metavar="NAME", flag="measure")
    split: str = option("train", "data split the risk is taken over")
    sigma: float = option(0.01, "σ of the Gaussian perturbation, average case")
    adaptive_sigma: float = option(0.1, "relative σ (δ = σ|θ|⊙z), adaptive average case")
    samples: int = option(64, "Gaussian draws of the average cases", minimum=2)
    rho: float = option(0.05, "ℓ2 radius of the worst case and of m-sharpness (SAM's ρ)")
    adaptive_rho: float = option(0.5, "relative ℓ2 radius of the adaptive worst case (ASAM's ρ)")
    linf_rho: float = option(0.001, "ℓ∞ radius of the worst case")
    adaptive_linf_rho: float = option(0.01, "relative ℓ∞ radius of the adaptive worst case")
    steps: int = option(20, "projected gradient-ascent steps per restart (then as many again to check "
                        "convergence)", minimum=1)
    restarts: int = option(3, "random restarts of each worst case", minimum=1)
    m: int = option(128, "examples per batch of m-sharpness", minimum=1)
    m_batches: int | None = option(None, "use at most this many m-example batches (default: all)", minimum=1)
    epsilon: float = option(1e-3, "ε of Keskar's box |z_i| ≤ ε(|θ_i| + 1)")
    subspace_dim: int = option(100, "dimension p of the random subspace of epsilon_subspace (at most D)",
                               minimum=1)
    maxiter: int = option(10, "L-BFGS-B iterations of the ε-sharpness maximization", minimum=1)
    rays: int = option(8, "random filter-normalized rays of ray_width", minimum=1)
    rise: float = option(0.1, "loss rise Δ that ends a ray's width")
    alpha_max: float = option(1.0, "longest distance along a ray")
    ray_points: int = option(41, "points along each ray", minimum=2)
    trace_probes: int = option(30, "Hutch++ products for the trace", minimum=3)
    seed: int = 0

    def selected(self) -> tuple[str, ...]:
        """The measures asked for, in :data:`MEASURE_NAMES` order (all when none named)."""
        unknown = [name for name in self.measures if name not in MEASURE_NAMES]
        if unknown:
            raise LandscapeError(f"--measure {unknown[0]}: unknown measure; choose from {', '.join(MEASURE_NAMES)}")
        return tuple(n for n in MEASURE_NAMES if not self.measures or n in self.measures)

    def check(self, problem: Problem) -> None:
        """Refuse settings that cannot work on ``problem`` before anything is computed."""
        selected = self.selected()
        problem.batches(self.split)  # a clear error for an unknown split
        for name in ("sigma", "adaptive_sigma", "rho", "adaptive_rho", "linf_rho", "adaptive_linf_rho",
                     "epsilon", "rise", "alpha_max"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise LandscapeError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        examples = problem.num_examples(self.split)
        if "m_sharpness" in selected and problem.shard is not None:
            raise LandscapeError("m-sharpness cuts the split into consecutive m-example batches, which a "
                                 "data-parallel run splits across ranks: run it in one process, or leave it "
                                 "out with --measure")
        if "m_sharpness" in selected and not 1 <= self.m <= examples:
            raise LandscapeError(f"--m {self.m}: m-sharpness needs 1 ≤ m ≤ {examples}, the examples in "
                                 f"split '{self.split}'")
        dim = sum(p.numel() for p in problem.params.values())
        if "epsilon_subspace" in selected and not 1 <= self.subspace_dim <= dim:
            raise LandscapeError(f"--subspace-dim {self.subspace_dim}: the model has {dim} parameters; "
                                 f"choose 1 ≤ p ≤ {dim}")

    def settings(self) -> str:
        """Every setting as JSON (stored with each measure, so a resume with others is refused)."""
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if k != "measures"}, sort_keys=True)
