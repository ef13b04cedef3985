"""The notebook API: one call per analysis, and results that draw and save themselves.

>>> import torch.nn.functional as F
>>> import landscape as ls
>>> from landscape import zoo
>>> problem = ls.Problem.create(zoo.digits_mlp(), F.cross_entropy, zoo.digits(), max_examples=256)
>>> eigs = ls.hessian_eigs(problem, k=3)
>>> eigs.k, bool(eigs.all_converged)
(3, True)
>>> plane = ls.random_plane(problem, points=5, seed=0)
>>> plane.values["train"]["loss"].shape
(5, 5)

Every function takes a :class:`~landscape.problem.Problem` (which never touches the
user's model) and returns an :class:`Analysis`: the engine's result (its fields read
through, e.g. ``eigs.eigenvalues``), plus ``figure()`` — the report's own panel for it —
and ``save(path)``, which writes its groups into a results file (adding them to an
existing file whose settings agree).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from torch import Tensor, nn

from .curvature.config import CurvatureConfig, OperatorName, TraceEstimator
from .curvature.per_layer import PATH as PER_LAYER_PATH
from .curvature.per_layer import group_spec
from .curvature.per_layer import per_layer_curvature as compute_per_layer
from .curvature.step import build_operator, curvature_analyses
from .errors import LandscapeError
from .noise.analysis import GROUP as NOISE_GROUP
from .noise.analysis import gradient_noise as _gradient_noise
from .problem import Problem
from .scan import RESUME_KEYS, base_settings
from .sharpness.config import SharpnessConfig
from .sharpness.measures import compute_measures
from .sharpness.step import write_measure
from .store import ResultsWriter
from .surfaces import (
    NamedDirection,
    SurfaceConfig,
    compute_surface,
    grid_axes,
    interpolation_direction,
    write_directions,
)

Writer = Callable[[ResultsWriter], None]


@dataclass(frozen=True)
class Analysis:
    """What an API call computed: ``result`` (the engine's dataclass), how to write it, and
    the settings it was computed with (stored as the results file's root attributes)."""

    result: Any
    write: Writer = field(repr=False)
    settings: Mapping[str, Any] = field(repr=False)

    def __getattr__(self, name: str) -> Any:
        """The result's fields and properties read through (``eigs.eigenvalues``)."""
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.result, name)

    def __getitem__(self, key: str) -> Any:
        """An entry of a result that is a mapping (``sharpness_measures(problem)["worst_l2"]``)."""
        return self.result[key]

    def figures(self) -> dict[str, Any]:
        """Every report figure of this result, keyed like ``surfaces/2d/contour``."""
        from .views import build_report

        with tempfile.TemporaryDirectory() as folder:
            path = self.save(Path(folder) / "result.h5")
            with h5py.File(path, "r") as h5:
                return build_report(h5, "in memory").figures

    def figure(self) -> Any:
        """The main Plotly figure of this result (``figures()`` has all of them)."""
        figures = self.figures()
        if not figures:
            raise LandscapeError("this result has no figure in the report")
        return next(iter(figures.values()))

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write this result into the results file ``path`` (created, or added to when it exists
        and was computed with the same settings; ``overwrite`` replaces it)."""
        path = Path(path)
        resume = path.exists() and not overwrite
        with ResultsWriter(path, self.settings, resume=resume, overwrite=overwrite,
                           must_match=RESUME_KEYS) as writer:
            self.write(writer)
            return writer.finish()


def _settings(problem: Problem, **options: Any) -> dict[str, Any]:
    return base_settings(problem, {}, **options)


# ---------------------------------------------------------------------------- curvature
Which = Literal["LA", "SA"]


def _curvature(problem: Problem, config: CurvatureConfig) -> Analysis:
    """The one curvature analysis ``config`` asks for, computed, with how to write its group."""
    op = build_operator(problem, config)
    config.check(op.size)
    (analysis,) = curvature_analyses(config)
    result, (attrs, arrays) = analysis.run(op, config)
    return Analysis(result, lambda writer: writer.write_group(analysis.path, attrs, arrays),
                    _settings(problem, seed=config.seed))


def hessian_eigs(problem: Problem, k: int = 5, *, which: Which = "LA", operator: OperatorName = "hessian",
                 split: str = "train", params: Sequence[str] = (), tol: float | None = None,
                 seed: int = 0, eigenvectors: bool = False, weight_decay: float = 0.0) -> Analysis:
    """The ``k`` largest (``which='LA'``) or smallest (``'SA'``) eigenvalues of the Hessian
    (or ``operator='ggn'``/``'empirical_fisher'``) of the risk on ``split``, by restarted
    Lanczos, with residuals and convergence flags. ``params``: fnmatch patterns restricting
    the parameters; ``weight_decay`` λ: of the loss plus λ/2‖θ‖² (eigenvalues + λ)."""
    config = CurvatureConfig(top=k if which == "LA" else 0, bottom=k if which == "SA" else 0, trace=False,
                             operator=operator, split=split, param_patterns=tuple(params), tol=tol, seed=seed,
                             store_eigenvectors=eigenvectors, weight_decay=weight_decay)
    return _curvature(problem, config)


def hessian_trace(problem: Problem, probes: int = 30, *, method: TraceEstimator = "hutch++",
                  operator: OperatorName = "hessian", split: str = "train", seed: int = 0,
                  weight_decay: float = 0.0) -> Analysis:
    """tr(H) of the risk on ``split`` by Hutch++ (or Hutchinson) with ``probes`` products,
    with its standard error (``weight_decay`` λ adds exactly λ·D)."""
    config = CurvatureConfig(top=0, trace=True, operator=operator, split=split, seed=seed,
                             trace_method=method, trace_probes=probes, weight_decay=weight_decay)
    return _curvature(problem, config)


def per_layer_curvature(problem: Problem, groups: str | Mapping[str, Sequence[str]] | None = None, *,
                        operator: OperatorName = "hessian", split: str = "train", params: Sequence[str] = (),
                        weight_decay: float = 0.0, tol: float | None = None, probes: int = 30,
                        method: TraceEstimator = "hutch++", seed: int = 0) -> Analysis:
    """The top eigenvalue (restarted Lanczos, with residual and convergence flag) and the
    trace of each group's diagonal block of the Hessian (or ``operator``) on ``split``.
    ``groups``: None or ``'module'`` (one group per module owning parameters), a spec
    ``'conv=features.*,head=classifier.*'``, or ``{name: [fnmatch patterns]}``. Traces are
    exact for groups of at most 512 parameters, else ``method`` with ``probes`` products;
    ``weight_decay`` λ adds λI (the loss plus λ/2‖θ‖²)."""
    config = CurvatureConfig(top=0, trace=False, operator=operator, split=split, param_patterns=tuple(params),
                             weight_decay=weight_decay, tol=tol, seed=seed, trace_method=method,
                             trace_probes=probes, per_layer=group_spec(groups))
    config.check(0)
    result = compute_per_layer(problem, config, show_progress=False)
    attrs, arrays = result.to_group()
    return Analysis(result, lambda writer: writer.write_group(PER_LAYER_PATH, attrs, arrays),
                    _settings(problem, seed=seed))


# ---------------------------------------------------------------------------- surfaces
def _surface(problem: Problem, name: str, directions: list[NamedDirection], axes: list[np.ndarray],
             splits: Sequence[str] | None, origin: Mapping[str, Tensor] | None,
             settings: dict[str, Any], attrs: Mapping[str, Any]) -> Analysis:
    splits = list(splits or problem.split_names)
    result = compute_surface(problem, [d.vectors for d in directions], axes, splits, origin, show_progress=False)
    group_attrs, arrays = result.to_group([d.name for d in directions], attrs)

    def write(writer: ResultsWriter) -> None:
        write_directions(writer, directions)
        writer.write_group(f"surfaces/{name}", group_attrs, arrays)

    return Analysis(result, write, settings)


def random_plane(problem: Problem, points: int = 41, *, span: tuple[float, float] = (-1.0, 1.0), seed: int = 0,
                 normalization: Literal["filter", "layer", "none"] = "filter", include_1d: bool = False,
                 orthogonal: bool = False, splits: Sequence[str] | None = None) -> Analysis:
    """Metrics on a ``points``×``points`` grid θ* + αd₀ + βd₁ over ``span`` along two random
    Gaussian directions, filter-normalized by default (Li et al. 2018)."""
    return _random_surface(problem, 2, points, span, seed, normalization, include_1d, orthogonal, splits)


def random_line(problem: Problem, points: int = 51, *, span: tuple[float, float] = (-1.0, 1.0), seed: int = 0,
                normalization: Literal["filter", "layer", "none"] = "filter", include_1d: bool = False,
                splits: Sequence[str] | None = None) -> Analysis:
    """Metrics at θ* + αd₀ for ``points`` values of α over ``span`` along one random
    (filter-normalized by default) direction."""
    return _random_surface(problem, 1, points, span, seed, normalization, include_1d, False, splits)


def _random_surface(problem: Problem, ndim: int, points: int, span: tuple[float, float], seed: int,
                    normalization: Literal["filter", "layer", "none"], include_1d: bool, orthogonal: bool,
                    splits: Sequence[str] | None) -> Analysis:
    config = SurfaceConfig(dims=(ndim,), points=(points,), range=span, seed=seed, normalization=normalization,
                           include_1d=include_1d, orthogonal=orthogonal)
    return _surface(problem, f"{ndim}d", config.make_directions(problem), config.axes(), splits, None,
                    _settings(problem, **config.settings()), {"origin": "checkpoint"})


def interpolate(problem: Problem, other: Problem | nn.Module | Mapping[str, Tensor], points: int = 51, *,
                span: tuple[float, float] = (-0.5, 1.5), splits: Sequence[str] | None = None) -> Analysis:
    """Metrics along the line θ_A + α(θ_B − θ_A) from ``problem``'s parameters (α = 0) to
    ``other``'s (α = 1): another Problem, a module of the same architecture or a parameter dict."""
    theta_b = _parameters_like(problem, other)
    direction = interpolation_direction(problem.params, theta_b)
    settings = _settings(problem, seed=0, normalization="none", include_1d=True)
    return _surface(problem, "interpolation", [direction], grid_axes([points], span, 1), splits, None, settings,
                    {"origin": "first checkpoint", "markers": np.array([[0.0], [1.0]]),
                     "marker_labels": ["A", "B"]})


def _parameters_like(problem: Problem, other: Problem | nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    named = (other.params if isinstance(other, Problem) else
             dict(other.named_parameters()) if isinstance(other, nn.Module) else dict(other))
    missing = [n for n in problem.params if n not in named]
    if missing:
        raise LandscapeError(f"interpolate: the other model lacks parameters {missing[:3]}")
    return {n: named[n].detach().to(problem.device, problem.dtype) for n in problem.params}


# ---------------------------------------------------------------------------- gradient noise
def gradient_noise(problem: Problem, examples: int | None = None, batch_size: int = 32, *, k: int = 10,
                   split: str = "train", seed: int = 0, hessian: bool = True) -> Analysis:
    """Per-example gradient covariance Σ over ``examples`` examples (all when None), its top-k
    spectrum, the noise scales for SGD batch size ``batch_size``, and (``hessian``) its
    alignment with the Hessian: tr(HΣ), B_noise and the Σ/H eigenspace overlap."""
    result = _gradient_noise(problem, examples=examples, batch_size=batch_size, k=k, split=split, seed=seed,
                             hessian=hessian, show_progress=False)
    attrs, arrays = result.to_group()
    return Analysis(result, lambda writer: writer.write_group(NOISE_GROUP, attrs, arrays),
                    _settings(problem, seed=seed))


# ---------------------------------------------------------------------------- sharpness
def sharpness_measures(problem: Problem, *measures: str, seed: int = 0, **settings: Any) -> Analysis:
    """The sharpness measures named (all of them when none: see
    :data:`landscape.sharpness.MEASURE_NAMES`), with any :class:`~landscape.sharpness.SharpnessConfig`
    setting as a keyword (``rho=0.1``, ``rays=16``). The result maps each name to its
    :class:`~landscape.sharpness.SharpnessResult`: ``sharpness_measures(problem)["worst_l2"].value``."""
    config = SharpnessConfig(measures=measures, seed=seed, **settings)
    config.check(problem)
    results = {r.name: r for r in compute_measures(problem, config)}

    def write(writer: ResultsWriter) -> None:
        for result in results.values():
            write_measure(writer, result, config)
    return Analysis(results, write, _settings(problem, seed=seed))
