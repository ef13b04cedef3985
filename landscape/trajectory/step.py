"""The steps of ``landscape trajectory``: the ``trajectory`` group (each checkpoint's place on
the PCA plane, its distance from it, its loss), the two principal directions under
``directions/pc1``, ``directions/pc2``, and the loss surface ``surfaces/trajectory`` on that
plane around θ_final. Schema in docs/architecture.md ("Trajectory group").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..problem import Problem
from ..scan import ScanStep, TimeBudget
from ..store import ResultsWriter
from ..surfaces.directions import NamedDirection
from ..surfaces.step import SurfaceSpec, directions_step, surface_step
from .load import Trajectory
from .plane import TrajectoryPlane

TRAJECTORY = "trajectory"
SURFACE_NAME = "trajectory"
DIRECTION_NAMES = ("pc1", "pc2")


def principal_directions(plane: TrajectoryPlane) -> list[NamedDirection]:
    """The plane's directions as ``pc1``, ``pc2`` (unit norm, with their explained variance)."""
    return [NamedDirection(name, dict(vectors), {
        "kind": "pca", "normalization": "none (unit norm)", "index": k,
        "explained_variance_ratio": float(plane.explained_variance[k]),
        "method": "right singular vector of the offsets θ_t − θ_final (rows = checkpoints, not mean-centred)"})
        for k, (name, vectors) in enumerate(zip(DIRECTION_NAMES, plane.directions))]


def trajectory_step(trajectory: Trajectory, plane: TrajectoryPlane, splits: Sequence[str]) -> ScanStep:
    """``trajectory``: coordinates, distances from the plane, steps, and every metric of every
    split at each checkpoint (evaluated at the checkpoint itself, not read off the surface)."""
    def run(problem: Problem, writer: ResultsWriter) -> None:
        if writer.has_group(TRAJECTORY):
            return
        arrays: dict[str, np.ndarray] = {
            "coordinates": plane.coordinates, "residual_norm": plane.residual_norm,
            "relative_residual": plane.relative_residual, "distance": plane.distance,
            "steps": np.asarray(trajectory.steps, dtype=np.int64),
            "explained_variance": plane.explained_variance, "singular_values": plane.singular_values}
        for split in splits:
            rows = [problem.evaluate_point({n: theta[n].to(p.device, p.dtype) for n, p in problem.params.items()},
                                           split) for theta in trajectory.thetas]
            for metric in rows[0]:
                arrays[f"{split}/{metric}"] = np.asarray([row[metric] for row in rows], dtype=np.float64)
        attrs = {"num_checkpoints": len(trajectory.thetas),
                 "num_parameters": sum(p.numel() for p in problem.params.values()),
                 "labels": list(trajectory.labels), "steps_from": trajectory.steps_from,
                 "splits": list(splits), "directions": list(DIRECTION_NAMES), "surface": f"surfaces/{SURFACE_NAME}",
                 "origin": "final checkpoint (θ_final, the last one)",
                 "method": "SVD of the offsets θ_t − θ_final (not mean-centred); coordinates by least squares",
                 "max_relative_residual": float(plane.relative_residual.max())}
        writer.write_group(TRAJECTORY, attrs, arrays)
    return ScanStep(TRAJECTORY, run)


def trajectory_steps(trajectory: Trajectory, plane: TrajectoryPlane, axes: list[np.ndarray], splits: list[str],
                     budget: TimeBudget | None = None) -> list[ScanStep]:
    """The trajectory group, the principal directions, then the surface on their plane."""
    made = principal_directions(plane)
    spec = SurfaceSpec(SURFACE_NAME, list(DIRECTION_NAMES), axes, splits)
    return [trajectory_step(trajectory, plane, splits), directions_step(list(DIRECTION_NAMES), lambda: made),
            surface_step(spec, origin=trajectory.final, origin_label="final checkpoint", budget=budget)]
