"""``landscape trajectory DIR|GLOB|tracker.h5``: where training went, drawn on the loss surface of
the plane of its two principal directions (Li et al. 2018)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import LandscapeError
from ..options import add_problem_arguments, problem_from_args, run_into_file, write_report_next_to
from ..problem import Problem
from ..surfaces.cli import add_grid_arguments, budget_from_args, print_budget_stop, splits_from_args
from ..surfaces.config import grid_axes
from .inputs import Source, resolve_source
from .load import Trajectory, load_checkpoints, load_tracker
from .plane import TrajectoryPlane, covering_range, pca_plane
from .step import trajectory_steps

HELP = "the training path on the loss surface of its top-2 PCA plane, from checkpoints or a tracker file (+ report)"
MARGIN = 0.15  # of each axis's extent, around the projected checkpoints


def add_trajectory_arguments(parser: argparse.ArgumentParser) -> None:
    """The source, ``--final``, the problem options and the grid options."""
    parser.add_argument("source", metavar="DIR|GLOB|TRACKER.h5",
                        help="a folder of checkpoints, a quoted glob ('run/ckpt_*.pt'), or a tracker file "
                             "written during training; checkpoints are ordered by the step (else epoch) their "
                             "metadata records, else by file name (ckpt_2 before ckpt_10); the last is θ_final")
    parser.add_argument("--final", metavar="CKPT",
                        help="with a tracker file: the final checkpoint, which names the model, data and loss "
                             "(and ends the trajectory when its weights differ from the last record)")
    add_problem_arguments(parser, output_name="trajectory")
    add_grid_arguments(parser, dims=False, range_help="axis range on the PCA plane: MIN MAX for both axes, or "
                       f"MIN MAX MIN MAX (default: every checkpoint, plus {MARGIN:g} × each axis's extent per side)")


def load_trajectory(args: argparse.Namespace, source: Source) -> Trajectory:
    """The checkpoints (or tracker records) in order, with the final checkpoint's Problem."""
    def load(path: str) -> tuple[Problem, dict[str, Any]]:
        problem, provenance = problem_from_args(args, path)
        return problem, provenance

    if source.kind == "tracker":
        return load_tracker(source, args, load)
    return load_checkpoints(source, args, load)


def run_trajectory(args: argparse.Namespace) -> int:
    """``landscape trajectory``: load every checkpoint, find the plane, then compute into one file."""
    budget = budget_from_args(args)
    source = resolve_source(args.source)
    if args.final is not None and source.kind != "tracker":
        raise LandscapeError(f"--final goes with a tracker file; '{args.source}' is a {source.kind} of "
                             "checkpoints, whose last is already θ_final: drop --final")
    trajectory = load_trajectory(args, source)
    plane = pca_plane(trajectory.thetas, trajectory.thetas[-1])
    axes = grid_axes(args.points, args.span or covering_range(plane.coordinates, MARGIN), 2)
    splits = splits_from_args(args, trajectory.problem)
    steps = trajectory_steps(trajectory, plane, axes, splits, budget)
    if args.output is None:
        args.output = Path(f"{source.stem}.trajectory.h5")
    settings = {"seed": args.seed, "normalization": "none", "include_1d": True, "source": args.source,
                "checkpoints": list(trajectory.inputs), "trajectory_steps": list(trajectory.steps)}
    path = run_into_file(args, trajectory.problem, trajectory.provenance, steps, settings,
                         list(trajectory.inputs), budget)
    print_budget_stop(path, args)
    print_summary(plane, trajectory)
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0


def print_summary(plane: TrajectoryPlane, trajectory: Trajectory) -> None:
    """How much of the path the plane holds, and how far the checkpoints sit off it."""
    ratio = plane.explained_variance
    worst = int(plane.relative_residual.argmax())
    print(f"{len(trajectory.thetas)} checkpoints (steps {trajectory.steps[0]}..{trajectory.steps[-1]}, by "
          f"{trajectory.steps_from}); explained variance PC1 {100 * ratio[0]:.1f} %, PC2 {100 * ratio[1]:.1f} %")
    print(f"farthest from the plane: {trajectory.labels[worst]}, {plane.residual_norm[worst]:.3g} "
          f"({100 * plane.relative_residual[worst]:.1f} % of its distance to θ_final)")
