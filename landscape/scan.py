"""A scan: a sequence of steps, each computing one analysis of a Problem into the results file.

Steps skip what the file already holds, so ``resume`` after a kill redoes only the unfinished
work (for surfaces: only the grid points not marked done).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import __version__
from .directions import NamedDirection
from .memory import require_fits
from .problem import Problem
from .store import ResultsWriter
from .surface import evaluate_points


def _nothing_to_check(_problem: Problem) -> None:
    return None


@dataclass
class ScanStep:
    """One analysis: ``run`` computes it on the problem and writes it (skipping finished work).

    ``check`` validates the step's options against the problem (sizes, memory) and raises
    :class:`LandscapeError`; :func:`run_scan` calls every step's check before the results
    file is created, so a bad option never leaves a file behind.
    """

    name: str
    run: Callable[[Problem, ResultsWriter], None]
    check: Callable[[Problem], None] = _nothing_to_check


# Root attributes that must be equal for a scan to be resumed.
RESUME_KEYS = ("checkpoint_sha256", "model_spec", "data_spec", "loss_spec", "seed", "dtype", "directions",
               "bn_policy", "normalization", "include_1d", "orthogonal", "checkpoints",
               "num_examples_train", "num_examples_test")


def directions_step(names: Sequence[str], make: Callable[[], Sequence[NamedDirection]]) -> ScanStep:
    """Write directions ``names`` once; a resumed scan reads them back instead of calling
    ``make`` again (which may be costly, e.g. Hessian eigenvectors)."""
    def run(_problem: Problem, writer: ResultsWriter) -> None:
        if all(writer.has_group(f"directions/{name}") for name in names):
            return
        directions = list(make())
        assert [d.name for d in directions] == list(names), "make() must return the named directions"
        writer.write_directions(directions)
    return ScanStep("directions", run)


@dataclass
class SurfaceSpec:
    """A grid over named directions: ``axes[k]`` are the coefficients of ``directions[k]``."""

    name: str
    directions: list[str]
    axes: list[np.ndarray]
    splits: list[str]
    markers: list[tuple[float, ...]] | None = None
    marker_labels: list[str] | None = None

    @property
    def axis_names(self) -> list[str]:
        return ["alpha", "beta"][: len(self.axes)]


def surface_bytes(spec: SurfaceSpec, num_metrics: int) -> int:
    """Host memory of a surface: float64 grids per split and metric, the done mask, and the
    grid's coefficient rows (with their meshgrid)."""
    cells = int(np.prod([len(a) for a in spec.axes], dtype=np.float64))
    return cells * (8 * len(spec.splits) * num_metrics + 1 + 16 * len(spec.axes))


def surface_step(spec: SurfaceSpec, origin: Mapping[str, Tensor] | None = None) -> ScanStep:
    """Evaluate ``spec`` around ``origin`` (θ* by default), storing each chunk as it finishes."""
    def check(problem: Problem) -> None:
        for split in spec.splits:
            problem.batches(split)  # a clear error for an unknown split
        require_fits(surface_bytes(spec, len(problem.metric_names())), f"surface '{spec.name}' "
                     f"({' × '.join(str(len(a)) for a in spec.axes)} points)", "use fewer --points")

    def run(problem: Problem, writer: ResultsWriter) -> None:
        attrs: dict[str, Any] = {"origin": "checkpoint" if origin is None else "first checkpoint"}
        if spec.markers is not None:
            attrs["markers"] = np.asarray(spec.markers, dtype=np.float64)
            attrs["marker_labels"] = spec.marker_labels or []
        writer.create_surface(spec.name, spec.axes, spec.axis_names, spec.directions, spec.splits,
                              problem.metric_names(), attrs)
        todo = writer.surface_todo(spec.name)
        if len(todo) == 0:
            return
        directions = [d.vectors for d in writer.read_directions(spec.directions, problem.params)]
        for indices, values in evaluate_points(problem, origin or problem.params, directions, spec.axes,
                                               spec.splits, todo, desc=f"surface {spec.name}"):
            writer.write_surface_points(spec.name, indices, values)
    return ScanStep(f"surfaces/{spec.name}", run, check)


def base_settings(problem: Problem, provenance: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Root attributes of a results file: versions, provenance, problem settings, options."""
    return {
        "landscape_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "command": " ".join(sys.argv),
        **provenance,
        **problem.describe(),
        **extra,
    }


def run_scan(problem: Problem, output: str | Path, steps: Sequence[ScanStep],
             settings: Mapping[str, Any], *, resume: bool = False, overwrite: bool = False) -> Path:
    """Run ``steps`` into ``output`` (written as ``output.partial`` until all finish).

    Every step's ``check`` runs first: options that cannot work are refused before the
    file exists.
    """
    for step in steps:
        step.check(problem)
    with ResultsWriter(output, settings, resume=resume, overwrite=overwrite,
                       must_match=RESUME_KEYS) as writer:
        for step in steps:
            step.run(problem, writer)
        return writer.finish()
