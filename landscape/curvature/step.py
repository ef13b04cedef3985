"""Curvature analyses of a Problem, their HDF5 groups and the scan step.

Groups (documented in docs/architecture.md): ``curvature/hessian_top``,
``curvature/hessian_bottom``, ``curvature/trace``, ``curvature/density`` and
``curvature/per_layer`` (:mod:`.per_layer`). Each is written
once, complete, with its parameters as attributes; a resumed scan skips finished groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import torch

from ..errors import LandscapeError
from ..linalg.density import DensityResult, spectral_density
from ..linalg.lanczos import EigenResult, lanczos
from ..linalg.trace import TraceMethod, TraceResult, estimate_trace
from ..params import unflatten_columns
from ..problem import Problem
from ..progress import counting_products, progress
from ..surfaces.directions import NamedDirection
from .config import CurvatureConfig, OperatorName
from .operators import ProblemOperator, make_operator, select_parameters
from .per_layer import PATH as PER_LAYER_PATH
from .per_layer import per_layer_curvature, resolve_groups, resume_settings

if TYPE_CHECKING:
    from ..store import ResultsWriter

GROUP = "curvature"
Group = tuple[dict[str, Any], dict[str, Any]]  # an HDF5 group's attributes and datasets


def build_operator(problem: Problem, config: CurvatureConfig) -> ProblemOperator:
    """The operator ``config`` names, over its split and parameters."""
    return make_operator(problem, config.operator, split=config.split, param_patterns=config.param_patterns or None,
                         hvp_mode=config.hvp_mode, weight_decay=config.weight_decay)


def _operator_attrs(op: ProblemOperator, config: CurvatureConfig) -> dict[str, Any]:
    described = op.describe()
    return {"operator": op.name, "split": config.split, "param_patterns": list(config.param_patterns),
            "num_parameters": op.size, "weight_decay": op.weight_decay,
            "hvp_mode": described.get("hvp_mode", "n/a"),
            "hvp_mode_rule": described.get("hvp_mode_rule", "n/a"),
            "bn_policy_used": described["bn_policy_used"], "dropout": described["dropout"]}


def eigen_group(result: EigenResult, op: ProblemOperator, config: CurvatureConfig) -> Group:
    """Attributes and datasets of ``curvature/hessian_top`` / ``hessian_bottom``."""
    attrs = {**_operator_attrs(op, config), **result.attrs()}
    arrays: dict[str, Any] = {"eigenvalues": result.eigenvalues.to(torch.float64),
                              "residuals": result.residuals.to(torch.float64),
                              "converged": result.converged.numpy().astype(bool)}
    if result.error_bounds is not None:
        arrays["error_bounds"] = result.error_bounds.to(torch.float64)
    if result.eigenvectors is not None:
        for name, vectors in eigenvector_tensors(result, op).items():
            arrays[f"eigenvectors/{name}"] = vectors.to(torch.float64)
    return attrs, arrays


def trace_group(result: TraceResult, op: ProblemOperator, config: CurvatureConfig) -> Group:
    """Attributes and datasets of ``curvature/trace``."""
    return {**_operator_attrs(op, config), **result.attrs()}, {"samples": result.samples.to(torch.float64)}


def density_group(result: DensityResult, op: ProblemOperator, config: CurvatureConfig) -> Group:
    """Attributes and datasets of ``curvature/density``."""
    return {**_operator_attrs(op, config), **result.attrs()}, {"nodes": result.nodes, "weights": result.weights}


def eigenvector_tensors(result: EigenResult, op: ProblemOperator) -> dict[str, torch.Tensor]:
    """``{param name: [k, *shape]}`` for the selected parameters."""
    if result.eigenvectors is None:
        raise LandscapeError("eigenvectors were not computed; pass return_eigenvectors=True")
    return unflatten_columns(result.eigenvectors, op.selected)  # op.selected is in op.names order


def compute_eigen(op: ProblemOperator, k: int, which: str, config: CurvatureConfig,
                  return_eigenvectors: bool = False) -> EigenResult:
    """``k`` eigenpairs of ``op`` by :func:`~landscape.linalg.lanczos` with ``config``'s settings."""
    return lanczos(op, k, which, tol=config.tol, block_size=config.block_size,  # type: ignore[arg-type]
                   max_basis=config.max_basis, max_matvecs=config.max_matvecs, seed=config.seed,
                   return_eigenvectors=return_eigenvectors)


def compute_trace(op: ProblemOperator, config: CurvatureConfig, method: TraceMethod | None = None) -> TraceResult:
    """tr(``op``) by :func:`~landscape.linalg.estimate_trace` with ``config``'s settings (or
    ``method``). Weight decay adds exactly λ·D: the products are taken without it, so the
    estimator's error is the Hessian's alone."""
    decay, op.weight_decay = op.weight_decay, 0.0
    try:
        result = estimate_trace(op, config.trace_probes, method=method or config.trace_method, seed=config.seed)
    finally:
        op.weight_decay = decay
    if not decay:
        return result
    shift = decay * op.size
    return replace(result, estimate=result.estimate + shift, samples=result.samples + shift,
                   diagonal=None if result.diagonal is None else result.diagonal + decay)


def compute_density(op: ProblemOperator, config: CurvatureConfig) -> DensityResult:
    """``op``'s SLQ density by :func:`~landscape.linalg.spectral_density` with ``config``'s settings."""
    return spectral_density(op, config.density_probes, config.density_steps, seed=config.seed)


# ---------------------------------------------------------------------------- the analyses
class _CurvatureGroup:
    name: str

    @property
    def path(self) -> str:
        """The analysis's HDF5 group, ``curvature/<name>``."""
        return f"{GROUP}/{self.name}"


@dataclass(frozen=True)
class Eigenpairs(_CurvatureGroup):
    """``k`` extreme eigenpairs into ``curvature/hessian_top`` (``which='LA'``) or
    ``curvature/hessian_bottom`` (``'SA'``)."""

    name: str
    which: Literal["LA", "SA"]
    k: int

    def run(self, op: ProblemOperator, config: CurvatureConfig) -> tuple[EigenResult, Group]:
        """Restarted Lanczos on ``op`` (eigenvectors kept when ``config.store_eigenvectors``),
        and the group's attributes and datasets."""
        result = compute_eigen(op, self.k, self.which, config, config.store_eigenvectors)
        return result, eigen_group(result, op, config)

    def products(self, op: ProblemOperator, config: CurvatureConfig) -> int | None:
        """Unknown in advance: Lanczos stops when its pairs converge."""
        return None


@dataclass(frozen=True)
class Trace(_CurvatureGroup):
    """tr(A) with a standard error into ``curvature/trace``."""

    name: str = "trace"
    k: int = 0  # no eigenvalues: any finished group will do

    def run(self, op: ProblemOperator, config: CurvatureConfig) -> tuple[TraceResult, Group]:
        """Hutch++ or Hutchinson with ``config.trace_probes`` products, and the group."""
        result = compute_trace(op, config)
        return result, trace_group(result, op, config)

    def products(self, op: ProblemOperator, config: CurvatureConfig) -> int | None:
        """Hutchinson and Hutch++ spend exactly their probes."""
        return config.trace_probes


@dataclass(frozen=True)
class Density(_CurvatureGroup):
    """The SLQ spectral density into ``curvature/density``."""

    name: str = "density"
    k: int = 0

    def run(self, op: ProblemOperator, config: CurvatureConfig) -> tuple[DensityResult, Group]:
        """SLQ with ``config.density_probes`` probes of ``config.density_steps`` steps, and the group."""
        result = compute_density(op, config)
        return result, density_group(result, op, config)

    def products(self, op: ProblemOperator, config: CurvatureConfig) -> int | None:
        """One product per probe and Lanczos step (steps capped at D)."""
        return config.density_probes * min(config.density_steps, op.size)


CurvatureAnalysis = Eigenpairs | Trace | Density


def curvature_analyses(config: CurvatureConfig) -> list[CurvatureAnalysis]:
    """The analyses ``config`` asks for, in the order they run (and print)."""
    wanted: list[CurvatureAnalysis] = []
    if config.top:
        wanted.append(Eigenpairs("hessian_top", "LA", config.top))
    if config.bottom:
        wanted.append(Eigenpairs("hessian_bottom", "SA", config.bottom))
    if config.trace:
        wanted.append(Trace())
    if config.density:
        wanted.append(Density())
    return wanted


def run_curvature(problem: Problem, writer: Any, config: CurvatureConfig, *,
                  show_progress: bool = True) -> dict[str, Any]:
    """Compute and write every analysis ``config`` asks for that ``writer`` lacks, each with
    its own progress counting HVPs (to a total where it is known in advance).

    Returns the results computed in this call by group name (for printing).
    """
    same = {"operator": config.operator, "split": config.split, "param_patterns": list(config.param_patterns)}
    decay = config.weight_decay
    todo = [a for a in curvature_analyses(config) if not _finished(writer, a.path, same, a.k, decay)]
    done: dict[str, Any] = {}
    if todo:
        op = build_operator(problem, config)
        config.check(op.size)
        for analysis in todo:
            op.reset_counters()
            with progress(analysis.products(op, config), f"{analysis.name} ({op.name})", "HVP",
                          enabled=show_progress) as bar, counting_products(op, bar):
                result, (attrs, arrays) = analysis.run(op, config)
            writer.write_group(analysis.path, attrs, arrays)
            done[analysis.name] = result
    if config.per_layer and not _finished(writer, PER_LAYER_PATH, resume_settings(config), 0, decay):
        per_layer = per_layer_curvature(problem, config, show_progress=show_progress)
        writer.write_group(PER_LAYER_PATH, *per_layer.to_group())
        done["per_layer"] = per_layer
    return done


def _finished(writer: Any, path: str, same: dict[str, Any], k: int, weight_decay: float) -> bool:
    """A finished group computed the same way (weight decay 0 in files older than the
    option); for eigenvalues, at least ``k`` of them."""
    if not writer.has_group(path, same):
        return False
    stored_decay = float(writer.h5[path].attrs.get("weight_decay", 0.0))
    if stored_decay != weight_decay:
        raise LandscapeError(f"'{writer.path}' already holds '{path}' computed with --weight-decay "
                             f"{stored_decay:g}, not {weight_decay:g}; choose another -o, or --overwrite "
                             "to start over")
    stored_k = int(writer.h5[path].attrs.get("k", 0))
    if stored_k < k:
        raise LandscapeError(f"'{writer.path}' already holds '{path}' with k={stored_k} < {k} asked; "
                             "choose another -o, or --overwrite to start over")
    return True


def hessian_step(**options: Any) -> Any:
    """A :class:`landscape.scan.ScanStep` running :func:`run_curvature` with a
    :class:`CurvatureConfig` of ``options`` (its defaults, the scan's: top-5 eigenvalues and
    the trace)."""
    from ..scan import ScanStep

    config = CurvatureConfig(**options)
    def run(problem: Problem, writer: ResultsWriter) -> None:
        run_curvature(problem, writer, config)

    return ScanStep(GROUP, run,
                    lambda problem: check_curvature(problem, config))


def check_curvature(problem: Problem, config: CurvatureConfig) -> None:
    """``config.check`` against the parameters ``config`` selects (a bad pattern or split fails
    here, before any results file exists)."""
    problem.batches(config.split)
    names = select_parameters(problem.params, config.param_patterns or None)
    config.check(sum(problem.params[n].numel() for n in names))
    if config.per_layer:
        resolve_groups(problem.params, config.per_layer, config.param_patterns)


def hessian_directions(problem: Problem, count: int = 2, *, split: str = "train",
                       param_patterns: Sequence[str] | None = None, seed: int = 0,
                       tol: float | None = None, operator: OperatorName = "hessian") -> list[NamedDirection]:
    """The top ``count`` Hessian eigenvectors as unit-norm surface directions ``d0, d1, ...``.

    Parameters outside ``param_patterns`` get zeros. The eigenvalue, residual and
    convergence flag are recorded in each direction's attributes.
    """
    config = CurvatureConfig(top=count, trace=False, split=split, operator=operator,
                             param_patterns=tuple(param_patterns or ()), seed=seed, tol=tol)
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
