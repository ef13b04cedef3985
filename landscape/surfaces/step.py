"""Surfaces as scan steps: write the directions once, then each surface point by point.

A resumed scan reads the stored directions back and evaluates only the points not done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from ..memory import require_fits
from ..problem import Problem
from ..scan import BudgetSpent, ScanStep, TimeBudget
from ..store import ResultsWriter
from .compute import evaluate_points
from .config import SurfaceConfig
from .directions import NamedDirection
from .refine import coarse_to_fine
from .results import (
    AXIS_NAMES,
    DIRECTIONS,
    SURFACES,
    create_surface,
    read_directions,
    surface_todo,
    write_directions,
    write_surface_points,
)


def directions_step(names: Sequence[str], make: Callable[[], Sequence[NamedDirection]]) -> ScanStep:
    """Write directions ``names`` once; a resumed scan reads them back instead of calling
    ``make`` again (which may be costly, e.g. Hessian eigenvectors)."""
    def run(_problem: Problem, writer: ResultsWriter) -> None:
        if all(writer.has_group(f"{DIRECTIONS}/{name}") for name in names):
            return
        directions = list(make())
        assert [d.name for d in directions] == list(names), "make() must return the named directions"
        write_directions(writer, directions)
    return ScanStep(DIRECTIONS, run)


@dataclass
class SurfaceSpec:
    """A grid over named directions: ``axes[k]`` are the coefficients of ``directions[k]``;
    ``markers`` (with ``marker_labels``) are points to show on it, e.g. checkpoints."""

    name: str
    directions: list[str]
    axes: list[np.ndarray]
    splits: list[str]
    markers: Sequence[tuple[float, ...]] | None = None
    marker_labels: list[str] | None = None

    @property
    def axis_names(self) -> list[str]:
        """``["alpha"]`` or ``["alpha", "beta"]``."""
        return list(AXIS_NAMES[: len(self.axes)])


def surface_bytes(spec: SurfaceSpec, num_metrics: int) -> int:
    """Host memory of a surface: float64 grids per split and metric, the done mask, and the
    grid's coefficient rows (with their meshgrid)."""
    cells = int(np.prod([len(a) for a in spec.axes], dtype=np.float64))
    return cells * (8 * len(spec.splits) * num_metrics + 1 + 16 * len(spec.axes))


def surface_step(spec: SurfaceSpec, origin: Mapping[str, Tensor] | None = None, *,
                 origin_label: str = "first checkpoint", show_progress: bool = True,
                 budget: TimeBudget | None = None) -> ScanStep:
    """Evaluate ``spec`` around ``origin`` (θ* by default) coarse to fine
    (:func:`~landscape.surfaces.refine.coarse_to_fine`), storing each chunk as it finishes;
    once ``budget`` is spent, stop after the chunk in flight (:class:`BudgetSpent`).
    ``origin_label`` names a given ``origin`` in the ``origin`` attribute."""
    def check(problem: Problem) -> None:
        for split in spec.splits:
            problem.batches(split)  # a clear error for an unknown split
        require_fits(surface_bytes(spec, len(problem.metric_names())), f"surface '{spec.name}' "
                     f"({' × '.join(str(len(a)) for a in spec.axes)} points)", "use fewer --points")

    def run(problem: Problem, writer: ResultsWriter) -> None:
        attrs: dict[str, Any] = {"origin": "checkpoint" if origin is None else origin_label}
        if spec.markers is not None:
            attrs["markers"] = np.asarray(spec.markers, dtype=np.float64)
            attrs["marker_labels"] = spec.marker_labels or []
        create_surface(writer, spec.name, spec.axes, spec.axis_names, spec.directions, spec.splits,
                       problem.metric_names(), attrs)
        todo = surface_todo(writer, spec.name, coarse_to_fine(spec.axes, spec.markers or ()))
        if len(todo) == 0:
            return
        directions = [d.vectors for d in read_directions(writer, spec.directions, problem.params)]
        chunks = evaluate_points(problem, origin or problem.params, directions, spec.axes, spec.splits, todo,
                                 desc=f"surface {spec.name}", show_progress=show_progress)
        stored = 0
        with contextlib.closing(chunks):  # closes the progress bar when the budget stops it
            for indices, values in chunks:
                write_surface_points(writer, spec.name, indices, values)
                stored += len(indices)
                if budget is not None and stored < len(todo) and budget.spent():
                    raise BudgetSpent(spec.name)
    return ScanStep(f"{SURFACES}/{spec.name}", run, check)


def surface_steps(problem: Problem, config: SurfaceConfig, *, show_progress: bool = True,
                  budget: TimeBudget | None = None) -> list[ScanStep]:
    """The steps of ``config``: its directions ``d0, d1, ...``, then ``surfaces/1d`` and/or
    ``surfaces/2d`` (the ``scan`` and ``surface`` commands). Record ``config.settings()``
    as root attributes so a resume with other options is refused. ``budget``: see
    :func:`surface_step`."""
    splits = config.split_names(problem)
    config.check()
    axes = config.axes()
    names = [f"d{k}" for k in range(config.ndim)]
    steps = [directions_step(names, lambda: config.make_directions(problem))]
    for ndim in config.dims:
        spec = SurfaceSpec(f"{ndim}d", names[:ndim], axes[:ndim], splits)
        steps.append(surface_step(spec, show_progress=show_progress, budget=budget))
    return steps
