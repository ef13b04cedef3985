"""Curvature analyses of a Problem, their HDF5 groups and the scan step.

Groups (documented in docs/architecture.md): ``curvature/hessian_top``,
``curvature/hessian_bottom``, ``curvature/trace``, ``curvature/density``. Each is written
once, complete, with its parameters as attributes; a resumed scan skips finished groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import LandscapeError
from ..linalg.density import DensityResult, spectral_density
from ..linalg.lanczos import EigenResult, basis_size_for, lanczos
from ..linalg.trace import MIN_PROBES, TraceResult, estimate_trace
from ..memory import require_fits
from ..params import unflatten_columns
from ..problem import Problem
from ..progress import progress
from ..surfaces.directions import NamedDirection
from .operators import ProblemOperator, make_operator, select_parameters

GROUP = "curvature"


@dataclass
class CurvatureConfig:
    """What to compute: ``top``/``bottom`` eigenvalues (0 = skip), trace, density."""

    top: int = 5
    bottom: int = 0
    trace: bool = True
    density: bool = False
    operator: str = "hessian"
    split: str = "train"
    param_patterns: list[str] = field(default_factory=list)
    tol: float | None = None
    block_size: int = 1
    max_basis: int | None = None
    max_matvecs: int | None = None
    hvp_mode: str = "auto"
    seed: int = 0
    trace_method: str = "hutch++"
    trace_probes: int = 30
    density_probes: int = 4
    density_steps: int = 40
    store_eigenvectors: bool = False

    def check(self, num_parameters: int) -> None:
        """Refuse options that cannot work on ``num_parameters`` selected parameters, or whose
        vectors cannot fit in memory, before anything is computed."""
        if not (self.top or self.bottom or self.trace or self.density):
            raise LandscapeError("nothing to compute: ask for --top K, --bottom K, --trace or --density")
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
        if self.trace and self.trace_probes < MIN_PROBES[self.trace_method]:
            raise LandscapeError(f"--trace-probes {self.trace_probes}: {self.trace_method} needs at least "
                                 f"{MIN_PROBES[self.trace_method]} for a standard error")
        if self.density:
            if self.density_probes < 1 or self.density_steps < 1:
                raise LandscapeError("--density-probes and --density-steps must be ≥ 1")
            vectors = max(vectors, self.density_probes * min(self.density_steps, num_parameters))
        require_fits(8 * num_parameters * vectors, f"curvature ({vectors} vectors of {num_parameters} "
                     "parameters in float64)", "lower --max-basis, --top/--bottom or the density probes/steps")


def build_operator(problem: Problem, config: CurvatureConfig) -> ProblemOperator:
    return make_operator(problem, config.operator, split=config.split,
                         param_patterns=config.param_patterns or None, hvp_mode=config.hvp_mode)


def _operator_attrs(op: ProblemOperator, config: CurvatureConfig) -> dict[str, Any]:
    described = op.describe()
    return {"operator": op.name, "split": config.split, "param_patterns": list(config.param_patterns),
            "num_parameters": op.size, "hvp_mode": described.get("hvp_mode", "n/a"),
            "bn_policy_used": described["bn_policy_used"], "dropout": described["dropout"]}


def eigen_group(result: EigenResult, op: ProblemOperator, config: CurvatureConfig
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Attributes and datasets of ``curvature/hessian_top`` / ``hessian_bottom``."""
    attrs = {**_operator_attrs(op, config), **result.attrs()}
    arrays: dict[str, Any] = {"eigenvalues": result.eigenvalues.to(torch.float64),
                              "residuals": result.residuals.to(torch.float64),
                              "converged": result.converged.numpy().astype(bool)}
    if result.eigenvectors is not None:
        for name, vectors in eigenvector_tensors(result, op).items():
            arrays[f"eigenvectors/{name}"] = vectors.to(torch.float64)
    return attrs, arrays


def trace_group(result: TraceResult, op: ProblemOperator, config: CurvatureConfig
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Attributes and datasets of ``curvature/trace``."""
    return {**_operator_attrs(op, config), **result.attrs()}, {"samples": result.samples.to(torch.float64)}


def eigenvector_tensors(result: EigenResult, op: ProblemOperator) -> dict[str, torch.Tensor]:
    """``{param name: [k, *shape]}`` for the selected parameters."""
    if result.eigenvectors is None:
        raise LandscapeError("eigenvectors were not computed; pass return_eigenvectors=True")
    return unflatten_columns(result.eigenvectors, op.selected)  # op.selected is in op.names order


def compute_eigen(op: ProblemOperator, k: int, which: str, config: CurvatureConfig,
                  return_eigenvectors: bool = False) -> EigenResult:
    return lanczos(op, k, which, tol=config.tol, block_size=config.block_size,  # type: ignore[arg-type]
                   max_basis=config.max_basis, max_matvecs=config.max_matvecs, seed=config.seed,
                   return_eigenvectors=return_eigenvectors)


def compute_trace(op: ProblemOperator, config: CurvatureConfig) -> TraceResult:
    return estimate_trace(op, config.trace_probes, method=config.trace_method,  # type: ignore[arg-type]
                          seed=config.seed)


def compute_density(op: ProblemOperator, config: CurvatureConfig) -> DensityResult:
    return spectral_density(op, config.density_probes, config.density_steps, seed=config.seed)


def run_curvature(problem: Problem, writer: Any, config: CurvatureConfig) -> dict[str, Any]:
    """Compute and write every analysis ``config`` asks for that ``writer`` lacks.

    Returns the results computed in this call by group name (for printing).
    """
    wanted = []
    if config.top:
        wanted.append(("hessian_top", "LA", config.top))
    if config.bottom:
        wanted.append(("hessian_bottom", "SA", config.bottom))
    if config.trace:
        wanted.append(("trace", "", 0))
    if config.density:
        wanted.append(("density", "", 0))
    same = {"operator": config.operator, "split": config.split, "param_patterns": list(config.param_patterns)}
    todo = [w for w in wanted if not _finished(writer, f"{GROUP}/{w[0]}", same, w[2])]
    if not todo:
        return {}
    op = build_operator(problem, config)
    config.check(op.size)
    done: dict[str, Any] = {}
    with progress(len(todo), f"curvature ({op.name})", "analysis") as bar:
        for name, which, k in todo:
            op.reset_counters()
            path = f"{GROUP}/{name}"
            if which:
                result = compute_eigen(op, k, which, config, config.store_eigenvectors)
                attrs, arrays = eigen_group(result, op, config)
            elif name == "trace":
                result = compute_trace(op, config)
                attrs, arrays = trace_group(result, op, config)
            else:
                result = compute_density(op, config)
                attrs = {**_operator_attrs(op, config), **result.attrs()}
                arrays = {"nodes": result.nodes, "weights": result.weights}
            writer.write_group(path, attrs, arrays)
            done[name] = result
            bar.update(1)
    return done


def _finished(writer: Any, path: str, same: dict[str, Any], k: int) -> bool:
    """A finished group computed the same way; for eigenvalues, at least ``k`` of them."""
    if not writer.has_group(path, same):
        return False
    stored_k = int(writer.h5[path].attrs.get("k", 0))
    if stored_k < k:
        raise LandscapeError(f"'{writer.path}' already holds '{path}' with k={stored_k} < {k} asked; "
                             "choose another -o, or --overwrite to start over")
    return True


def hessian_step(top: int = 5, bottom: int = 0, trace: bool = True, density: bool = False,
                 **options: Any) -> Any:
    """A :class:`landscape.scan.ScanStep` running :func:`run_curvature` (scan default: top-5, trace)."""
    from ..scan import ScanStep

    config = CurvatureConfig(top=top, bottom=bottom, trace=trace, density=density, **options)
    return ScanStep(GROUP, lambda problem, writer: run_curvature(problem, writer, config),
                    lambda problem: check_curvature(problem, config))


def check_curvature(problem: Problem, config: CurvatureConfig) -> None:
    """``config.check`` against the parameters ``config`` selects (a bad pattern or split fails
    here, before any results file exists)."""
    problem.batches(config.split)
    names = select_parameters(problem.params, config.param_patterns or None)
    config.check(sum(problem.params[n].numel() for n in names))


def hessian_directions(problem: Problem, count: int = 2, *, split: str = "train",
                       param_patterns: Sequence[str] | None = None, seed: int = 0,
                       tol: float | None = None, operator: str = "hessian") -> list[NamedDirection]:
    """The top ``count`` Hessian eigenvectors as unit-norm surface directions ``d0, d1, ...``.

    Parameters outside ``param_patterns`` get zeros. The eigenvalue, residual and
    convergence flag are recorded in each direction's attributes.
    """
    config = CurvatureConfig(top=count, trace=False, split=split, operator=operator,
                             param_patterns=list(param_patterns or []), seed=seed, tol=tol)
    op = build_operator(problem, config)
    config.check(op.size)
    result = compute_eigen(op, count, "LA", config, return_eigenvectors=True)
    vectors = eigenvector_tensors(result, op)
    directions = []
    for i in range(count):
        tensors = {n: (vectors[n][i] if n in vectors else torch.zeros_like(p)).to(p.dtype)
                   for n, p in problem.params.items()}
        attrs = {"kind": "hessian_eigenvector", "normalization": "none (unit norm)", "index": i,
                 "eigenvalue": float(result.eigenvalues[i]), "residual": float(result.residuals[i]),
                 "converged": bool(result.converged[i]), "operator": op.name, "split": split,
                 "param_patterns": list(param_patterns or []), "seed": seed}
        directions.append(NamedDirection(f"d{i}", tensors, attrs))
    return directions
