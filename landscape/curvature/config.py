"""What a curvature run computes: :class:`CurvatureConfig`, whose fields are also the options
of ``landscape hessian`` (their defaults and help live here once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import LandscapeError
from ..linalg.lanczos import basis_size_for
from ..linalg.trace import MIN_PROBES
from ..memory import require_fits
from ..options import option
from .hvp import HVPMode

OperatorName = Literal["empirical_fisher", "ggn", "hessian"]  # the keys of operators.OPERATORS
TraceEstimator = Literal["hutch++", "hutchinson"]


@dataclass
class CurvatureConfig:
    """What to compute: ``top``/``bottom`` eigenvalues (0 = skip), trace, density, and how.

    Each field made with :func:`~landscape.options.option` is also an option of ``landscape
    hessian`` (``param_patterns`` is ``--params``, ``store_eigenvectors`` is
    ``--eigenvectors``). The defaults are the scan's curvature step: the top-5 eigenvalues
    and the trace (``landscape hessian`` estimates the trace only with ``--trace``).
    """

    top: int = option(5, "largest K eigenvalues (0: skip)", minimum=0, metavar="K")
    bottom: int = option(0, "smallest (most negative) K eigenvalues (0: skip)", minimum=0, metavar="K")
    trace: bool = option(True, "estimate tr(H) with a standard error")
    density: bool = option(False, "spectral density (stochastic Lanczos quadrature)")
    operator: OperatorName = option("hessian", "curvature matrix: Hessian, generalized Gauss-Newton or "
                                    "empirical Fisher")
    split: str = option("train", "data split the empirical risk is taken over")
    param_patterns: tuple[str, ...] = option((), "restrict to parameters matching this fnmatch pattern "
                                             "(repeatable), e.g. 'fc.*'", metavar="PATTERN", flag="params")
    tol: float | None = option(None, "relative Ritz residual (default: 1e-6 in float64, 1e-4 in float32)")
    block_size: int = option(1, "vectors per data pass in Lanczos (≥ 2 finds repeated eigenvalues and needs "
                             "fewer passes; 1 needs fewest HVPs)", minimum=1)
    max_basis: int | None = option(None, "Lanczos basis size (default: max(3K, 20, 8 × block) + block)", minimum=1)
    max_matvecs: int | None = option(None, "HVP budget per eigenproblem (default: 40 × basis)", minimum=1)
    hvp_mode: HVPMode = option("auto", "HVPs by autograd double backward, torch.func reverse-over-reverse or "
                               "forward-over-reverse (auto: a fixed rule, autograd, falling back to reverse "
                               "then forward where the model's layers need it)")
    seed: int = 0
    trace_method: TraceEstimator = option("hutch++", "trace estimator (Hutch++ needs fewer products for the "
                                          "same error)")
    trace_probes: int = option(30, "operator products for the trace", minimum=1)
    density_probes: int = option(4, "random probes for the density", minimum=1)
    density_steps: int = option(40, "Lanczos steps per density probe", minimum=1)
    store_eigenvectors: bool = option(False, "store the eigenvectors per parameter", flag="eigenvectors")
    weight_decay: float = option(0.0, "curvature of the loss plus λ/2‖θ‖² over the selected parameters: "
                                 "H + λI (added to eigenvalues, trace, density and per-layer values)",
                                 minimum=0, metavar="λ")
    per_layer: str | None = None  # `--per-layer`: 'module' or 'name=pattern,...' (see .per_layer)

    def check(self, num_parameters: int) -> None:
        """Refuse options that cannot work on ``num_parameters`` selected parameters, or whose
        vectors cannot fit in memory, before anything is computed."""
        if not (self.top or self.bottom or self.trace or self.density or self.per_layer):
            raise LandscapeError("nothing to compute: ask for --top K, --bottom K, --trace, --density "
                                 "or --per-layer")
        if not 0 <= self.weight_decay < float("inf"):
            raise LandscapeError(f"--weight-decay must be a finite number ≥ 0, got {self.weight_decay}")
        for name in ("top", "bottom"):
            k = getattr(self, name)
            if k < 0 or k > num_parameters:
                raise LandscapeError(f"--{name} {k}: the operator has {num_parameters} selected parameters; "
                                     f"choose 0 ≤ {name} ≤ {num_parameters}")
        if self.tol is not None and not self.tol > 0:
            raise LandscapeError(f"--tol must be positive, got {self.tol}")
        if self.block_size < 1:
            raise LandscapeError(f"--block-size must be ≥ 1, got {self.block_size}")
        vectors = 0
        for k in (self.top, self.bottom):
            if k:
                vectors = max(vectors, basis_size_for(num_parameters, k, min(self.block_size, num_parameters),
                                                      self.max_basis))
        if self.trace_method not in MIN_PROBES:
            raise LandscapeError(f"trace method {self.trace_method!r}: choose from {', '.join(MIN_PROBES)}")
        if self.trace and self.trace_probes < MIN_PROBES[self.trace_method]:
            raise LandscapeError(f"--trace-probes {self.trace_probes}: {self.trace_method} needs at least "
                                 f"{MIN_PROBES[self.trace_method]} for a standard error")
        if self.density:
            if self.density_probes < 1 or self.density_steps < 1:
                raise LandscapeError("--density-probes and --density-steps must be ≥ 1")
            vectors = max(vectors, self.density_probes * min(self.density_steps, num_parameters))
        require_fits(8 * num_parameters * vectors, f"curvature ({vectors} vectors of {num_parameters} "
                     "parameters in float64)", "lower --max-basis, --top/--bottom or the density probes/steps")
