"""The steps of ``landscape compare``: per checkpoint a model summary and the sharpness
measures, then the line through each pair extended past both ends, and its loss barrier;
with ``--ensemble``, averaged weights (SWA) against averaged predictions (FGE) of them all.

Every checkpoint has its own Problem (its own BatchNorm statistics); a step made for one
of them runs on it whatever problem the scan passes (:func:`on_problem`). Schema in
docs/architecture.md ("Compare groups").
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from ..errors import LandscapeError
from ..problem import Problem
from ..scan import ScanStep
from ..sharpness.config import SharpnessConfig
from ..sharpness.ensembles import Prediction, SplitComparison, check_swa_vs_fge, swa_vs_fge
from ..sharpness.step import sharpness_step
from ..store import ResultsWriter
from ..surfaces.directions import NamedDirection, interpolation_direction
from ..surfaces.step import SurfaceSpec, directions_step, surface_step

MODELS = "models"
BARRIERS = "barriers"
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class Checkpoint:
    """One compared model: its key in the file (``c0``, ``c1``, ...), label and Problem."""

    key: str
    label: str
    path: str
    problem: Problem
    provenance: dict


def check_same_architecture(checkpoints: Sequence[Checkpoint]) -> None:
    """Refuse checkpoints whose trainable parameters differ in name or shape from the first's."""
    first = checkpoints[0]
    for other in checkpoints[1:]:
        check_same_parameters(first.problem.params, first.path, other.problem.params, other.path, "compare")


def check_same_parameters(reference: Mapping[str, Tensor], reference_path: str, other: Mapping[str, Tensor],
                          other_path: str, command: str) -> None:
    """One line when ``other``'s trainable parameters differ in name or shape from ``reference``'s."""
    missing = [n for n in reference if n not in other]
    extra = [n for n in other if n not in reference]
    if missing or extra:
        what = f"lacks '{missing[0]}'" if missing else f"has '{extra[0]}', which the first lacks"
        raise LandscapeError(f"checkpoint '{other_path}' {what}: {command} needs checkpoints of one "
                             f"architecture (same parameter names as '{reference_path}')")
    for name in reference:
        shape_a, shape_b = tuple(reference[name].shape), tuple(other[name].shape)
        if shape_a != shape_b:
            raise LandscapeError(f"checkpoint '{other_path}': parameter '{name}' has shape {list(shape_b)}, "
                                 f"'{reference_path}' has {list(shape_a)}; {command} needs checkpoints of one "
                                 "architecture")


def on_problem(step: ScanStep, problem: Problem) -> ScanStep:
    """``step`` run and checked on ``problem`` instead of the scan's."""
    return ScanStep(step.name, lambda _p, writer: step.run(problem, writer), lambda _p: step.check(problem))


def model_step(checkpoint: Checkpoint) -> ScanStep:
    """``models/<key>``: label, file, and every metric on every split at the checkpoint."""
    def run(_p: Problem, writer: ResultsWriter) -> None:
        path = f"{MODELS}/{checkpoint.key}"
        if writer.has_group(path):
            return
        problem = checkpoint.problem
        metrics = {f"{split}_{metric}": value for split in problem.split_names
                   for metric, value in problem.evaluate_point(problem.params, split).items()}
        norm = math.sqrt(sum(float((p.double() ** 2).sum()) for p in problem.params.values()))
        writer.write_group(path, {"label": checkpoint.label, "checkpoint_path": checkpoint.path,
                                  "checkpoint_sha256": checkpoint.provenance.get("checkpoint_sha256", ""),
                                  "weight_norm": norm, **metrics}, {})
    return ScanStep(f"{MODELS}/{checkpoint.key}", run)


def line_axis(points: int, extend: float) -> np.ndarray:
    """Coefficients along θ_A + t(θ_B − θ_A): ``points`` on [0, 1] (both ends included) and the
    same spacing continued ``extend`` past each end."""
    if points < 2:
        raise LandscapeError(f"--line-points {points}: need at least 2 points on the segment")
    if not 0 <= extend < float("inf"):
        raise LandscapeError(f"--line-extend must be ≥ 0, got {extend}")
    spacing = 1.0 / (points - 1)
    beyond = int(round(extend / spacing))
    return np.arange(-beyond, points + beyond) * spacing


def line_name(a: Checkpoint, b: Checkpoint) -> str:
    """The surface and direction of the line from ``a`` to ``b``."""
    return f"line_{a.key}_{b.key}"


def line_steps(checkpoints: Sequence[Checkpoint], axis: np.ndarray, splits: Sequence[str]) -> list[ScanStep]:
    """For every pair (A, B): the direction θ_B − θ_A and the loss along the line, evaluated on
    A's problem (its BatchNorm statistics; ``--bn recompute`` re-estimates them at every point)."""
    steps = []
    for a, b in itertools.combinations(checkpoints, 2):
        name = line_name(a, b)
        made = interpolation_direction(a.problem.params, b.problem.params)
        direction = NamedDirection(name, made.vectors, made.attrs)
        spec = SurfaceSpec(name, [name], [axis], list(splits), [(0.0,), (1.0,)], [a.label, b.label])
        steps.append(directions_step([name], _given(direction)))
        steps.append(on_problem(surface_step(spec, origin=a.problem.params), a.problem))
    return steps


def _given(direction: NamedDirection) -> Callable[[], list[NamedDirection]]:
    return lambda: [direction]


def loss_barrier(alpha: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """Max over t ∈ [0, 1] of L(t) minus the mean of L(0) and L(1), and the t where it peaks
    (linear mode connectivity: a barrier near 0 means the two minima are linearly connected).
    A diverged point on the segment makes the barrier infinite."""
    inside = (alpha >= 0) & (alpha <= 1)
    t, values = alpha[inside], loss[inside]
    if not np.isfinite(values).all():
        return float("inf"), float(t[~np.isfinite(values)][0])
    peak = int(np.argmax(values))
    ends = (values[np.argmin(np.abs(t))] + values[np.argmin(np.abs(t - 1))]) / 2
    return float(values[peak] - ends), float(t[peak])


def barrier_step(checkpoints: Sequence[Checkpoint], splits: Sequence[str]) -> ScanStep:
    """``barriers/line_<a>_<b>``: the loss barrier of each line on every split."""
    def run(_p: Problem, writer: ResultsWriter) -> None:
        for a, b in itertools.combinations(checkpoints, 2):
            name = line_name(a, b)
            if writer.has_group(f"{BARRIERS}/{name}"):
                continue
            surface = writer.h5[f"surfaces/{name}"]
            alpha = surface["alpha"][()]
            attrs: dict = {"first": a.key, "second": b.key, "first_label": a.label, "second_label": b.label}
            for split in splits:
                barrier, at = loss_barrier(alpha, surface[f"{split}/loss"][()])
                attrs[f"{split}_barrier"], attrs[f"{split}_peak_at"] = barrier, at
            writer.write_group(f"{BARRIERS}/{name}", attrs, {})
    return ScanStep(BARRIERS, run)


def ensemble_step(checkpoints: Sequence[Checkpoint], splits: Sequence[str], prediction: Prediction) -> ScanStep:
    """``ensemble``: :func:`~landscape.sharpness.ensembles.swa_vs_fge` over every checkpoint
    (predictions on the first checkpoint's data), per split ``<split>_<score>`` attributes."""
    problems = [c.problem for c in checkpoints]
    expected = {"prediction": prediction, "checkpoint_keys": [c.key for c in checkpoints], "splits": list(splits)}

    def run(_p: Problem, writer: ResultsWriter) -> None:
        if writer.has_group(ENSEMBLE, expected):
            return
        result = swa_vs_fge(problems, splits=splits, prediction=prediction)
        scores = {f"{split}_{field.name}": getattr(values, field.name)
                  for split, values in result.splits.items() for field in dataclasses.fields(SplitComparison)}
        writer.write_group(ENSEMBLE, {**expected, "checkpoint_labels": [c.label for c in checkpoints],
                                      "num_checkpoints": result.num_checkpoints,
                                      "num_parameters": result.num_parameters,
                                      "mean_sq_distance": result.mean_sq_distance, "bn_rule": result.bn_rule,
                                      **scores}, {})
    return ScanStep(ENSEMBLE, run, lambda _p: check_swa_vs_fge(problems, prediction))


def compare_steps(checkpoints: Sequence[Checkpoint], config: SharpnessConfig, *, line_axis_values: np.ndarray | None,
                  splits: Sequence[str], ensemble: Prediction | None = None) -> list[ScanStep]:
    """Models, measures, then lines and barriers (none when ``line_axis_values`` is None), then
    SWA against FGE when ``ensemble`` names what to average (``"probabilities"`` or ``"outputs"``)."""
    steps: list[ScanStep] = [model_step(c) for c in checkpoints]
    steps += [sharpness_step(config, key=c.key, label=c.label, problem=c.problem) for c in checkpoints]
    if line_axis_values is not None:
        steps += line_steps(checkpoints, line_axis_values, splits)
        steps.append(barrier_step(checkpoints, splits))
    if ensemble is not None:
        steps.append(ensemble_step(checkpoints, splits, ensemble))
    return steps
