"""``landscape scan``, ``landscape surface`` and ``landscape interpolate``: their options and runs.

``scan`` is the surfaces plus the curvature defaults (and, with ``--noise``, the noise
analysis): it takes those steps from their own CLIs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .. import options
from ..curvature import cli as curvature_cli
from ..errors import LandscapeError
from ..noise import cli as noise_cli
from ..options import (
    add_config_arguments,
    add_problem_arguments,
    add_time_budget_argument,
    integer,
    problem_from_args,
    run_into_file,
    write_report_next_to,
)
from ..problem import Problem
from ..scan import ScanStep, TimeBudget
from ..sharpness import cli as sharpness_cli
from .config import DEFAULT_POINTS, DEFAULT_RANGE, SurfaceConfig, grid_axes

SCAN_HELP = ("the default analyses of a checkpoint: 1-D and 2-D loss surfaces, top Hessian eigenvalues "
             "and trace (+ report)")
SURFACE_HELP = "one 1-D or 2-D loss surface around a checkpoint"
INTERPOLATE_HELP = "loss along the line between two checkpoints or the plane through three"
CHECKPOINT_HELP = "checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)"
AROUND_RANGE = (f"axis range: MIN MAX for every axis, or MIN MAX MIN MAX "
                f"(default: {' '.join(f'{x:g}' for x in DEFAULT_RANGE)})")


# ---------------------------------------------------------------------------- options
def add_grid_arguments(parser: argparse.ArgumentParser, *, dims: bool, range_help: str) -> None:
    """Grid options: points and range per axis, and the splits evaluated."""
    s = parser.add_argument_group("grid")
    if dims:
        s.add_argument("--dims", type=int, choices=[1, 2], default=2, help="1-D curve or 2-D grid")
    s.add_argument("--points", type=integer(2), nargs="+", metavar="N", help="grid points per axis: "
                   f"one value for every axis, or one per axis (default: {DEFAULT_POINTS})")
    s.add_argument("--range", type=float, nargs="+", metavar="X", dest="span", help=range_help)
    s.add_argument("--splits", help="comma-separated data splits to evaluate (default: all)")
    add_time_budget_argument(parser)


def add_direction_arguments(parser: argparse.ArgumentParser) -> None:
    """How the directions of a surface around the checkpoint are made."""
    add_config_arguments(parser.add_argument_group("directions"), SurfaceConfig)


def axes_from_args(args: argparse.Namespace, ndim: int, default_span: tuple[float, ...] = (-1.0, 1.0),
                   ) -> list[np.ndarray]:
    """The grid axes from ``--points`` and ``--range`` (one value for all axes, or one per axis)."""
    return grid_axes(args.points, args.span, ndim, default_span)


def splits_from_args(args: argparse.Namespace, problem: Problem) -> list[str]:
    """``--splits`` as a list (every split of the problem when not given); an unknown split
    is refused with the problem's own error."""
    if not args.splits:
        return problem.split_names
    wanted = [s.strip() for s in args.splits.split(",") if s.strip()]
    for split in wanted:
        problem.batches(split)  # raises a clear error for an unknown split
    return wanted


def config_from_args(args: argparse.Namespace, dims: list[int], problem: Problem) -> SurfaceConfig:
    """The :class:`SurfaceConfig` the ``scan``/``surface`` options ask for."""
    return options.config_from_args(SurfaceConfig, args, dims=tuple(dims),
                                    points=tuple(args.points or (DEFAULT_POINTS,)),
                                    range=tuple(args.span or DEFAULT_RANGE), splits=splits_from_args(args, problem),
                                    seed=args.seed)


# ---------------------------------------------------------------------------- scan and surface
def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``landscape scan CKPT``: problem, grid, direction, ``--weight-decay`` and ``--noise`` options."""
    parser.add_argument("checkpoint", help=CHECKPOINT_HELP)
    add_problem_arguments(parser, output_name="landscape")
    add_grid_arguments(parser, dims=False, range_help=AROUND_RANGE + "; the 1-D curve uses the first axis")
    add_direction_arguments(parser)
    curvature_cli.add_scan_arguments(parser)
    noise_cli.add_noise_scan_arguments(parser)
    sharpness_cli.add_sharpness_scan_arguments(parser)


def add_surface_arguments(parser: argparse.ArgumentParser) -> None:
    """``landscape surface CKPT``: problem, grid (with ``--dims``) and direction options."""
    parser.add_argument("checkpoint", help=CHECKPOINT_HELP)
    add_problem_arguments(parser, output_name="surface")
    add_grid_arguments(parser, dims=True, range_help=AROUND_RANGE)
    add_direction_arguments(parser)


def _surface_steps(args: argparse.Namespace, problem: Problem, dims: list[int], budget: TimeBudget | None
                   ) -> tuple[list[ScanStep], dict[str, Any]]:
    from .step import surface_steps

    config = config_from_args(args, dims, problem)
    return surface_steps(problem, config, budget=budget), {**config.settings(), "metric_specs": list(args.metric)}


def budget_from_args(args: argparse.Namespace) -> TimeBudget | None:
    """``--time-budget``, its clock started now: call it first thing in a command."""
    return TimeBudget.start(args.time_budget) if args.time_budget is not None else None


def _run_surfaces(args: argparse.Namespace, dims: list[int]) -> int:
    budget = budget_from_args(args)
    sharpness_steps = sharpness_cli.sharpness_steps_from_args(args) if dims == [1, 2] else []
    problem, provenance = problem_from_args(args)
    steps, settings = _surface_steps(args, problem, dims, budget)
    if dims == [1, 2]:  # the full scan: the curvature defaults, with --noise the noise, with --sharpness the measures
        steps.append(curvature_cli.default_scan_step(args))
        steps += noise_cli.noise_steps_from_args(args, provenance)
        steps += sharpness_steps
    path = run_into_file(args, problem, provenance, steps, settings, [args.checkpoint], budget)
    print_headline(path)
    print_budget_stop(path, args)
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0


def run_scan_command(args: argparse.Namespace) -> int:
    """``landscape scan``: 1-D and 2-D surfaces, curvature defaults, optional noise."""
    return _run_surfaces(args, [1, 2])


def run_surface_command(args: argparse.Namespace) -> int:
    """``landscape surface``: one surface of ``--dims`` dimensions."""
    return _run_surfaces(args, [args.dims])


def print_budget_stop(path: Path, args: argparse.Namespace) -> None:
    """When ``--time-budget`` stopped the run (``path`` is ``OUT.partial``): one line with each
    unfinished surface's points done and finest complete level."""
    from ..store import open_results
    from .refine import refinement
    from .results import surface_progress

    if path.suffix != ".partial":
        return
    with open_results(path) as h5:
        parts = []
        for name, (axes, done, markers) in surface_progress(h5).items():
            if not done.all():
                finest = refinement(axes, done, markers).describe()
                parts.append(f"surfaces/{name} has {int(done.sum())} of {done.size} points "
                             f"(finest complete level: {finest})")
    print(f"time budget of {args.time_budget:g} s spent: {'; '.join(parts) or 'every surface is done'}; "
          f"the remaining work runs with --resume into {path}")


def print_headline(path: Path) -> None:
    """The numbers people quote, read back from the results file."""
    from ..store import open_results

    with open_results(path) as h5:
        for split in ("train", "test"):
            grid = h5.get(f"surfaces/1d/{split}/loss")
            if grid is not None and 0.0 in h5["surfaces/1d/alpha"][()]:
                at = int(np.flatnonzero(h5["surfaces/1d/alpha"][()] == 0.0)[0])
                print(f"{split} loss at the checkpoint: {grid[at]:.6g}")
        if "curvature/hessian_top" in h5:
            group = h5["curvature/hessian_top"]
            values = ", ".join(f"{v:.6g}" for v in group["eigenvalues"][()])
            flag = "" if group["converged"][()].all() else " (not all converged)"
            print(f"top Hessian eigenvalues: {values}{flag}")
        if "curvature/trace" in h5:
            trace = h5["curvature/trace"].attrs
            print(f"Hessian trace: {trace['estimate']:.6g} ± {trace['stderr']:.2g}")


# ---------------------------------------------------------------------------- interpolate
def add_interpolate_arguments(parser: argparse.ArgumentParser) -> None:
    """``landscape interpolate A B [C]``: checkpoints, problem and grid options."""
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT",
                        help="two checkpoints (a line, A at 0 and B at 1) or three (their plane)")
    add_problem_arguments(parser, output_name="interpolation")
    add_grid_arguments(parser, dims=False, range_help="axis range: MIN MAX, or MIN MAX MIN MAX for a "
                       "plane (default: -0.5 1.5 along a line; for a plane, 0.5 beyond the checkpoints "
                       "on the first axis and -0.5 1.5 on the second)")


def _other_checkpoints(args: argparse.Namespace, problem: Problem, provenance: dict[str, Any]) -> list[dict]:
    """The trainable parameters of the second (and third) checkpoint, named as the first's."""
    from ..loading import checkpoint_parameters, load_checkpoint

    thetas = []
    for path in args.checkpoints[1:]:
        named = checkpoint_parameters(load_checkpoint(path, trust=args.trust), provenance, args.model, args.trust)
        missing = [n for n in problem.params if n not in named]
        if missing:
            raise LandscapeError(f"checkpoint '{path}' lacks parameters {missing[:3]} of the first one")
        thetas.append({n: named[n].to(problem.device, problem.dtype) for n in problem.params})
    return thetas


def run_interpolate_command(args: argparse.Namespace) -> int:
    """``landscape interpolate``: the line A→B or the plane through A, B, C (origin θ_A)."""
    from .directions import interpolation_direction, plane_directions
    from .step import SurfaceSpec, directions_step, surface_step

    budget = budget_from_args(args)
    if len(args.checkpoints) not in (2, 3):
        raise LandscapeError(f"interpolate takes 2 or 3 checkpoints, got {len(args.checkpoints)}")
    problem, provenance = problem_from_args(args, args.checkpoints[0])
    thetas = [problem.params, *_other_checkpoints(args, problem, provenance)]
    splits = splits_from_args(args, problem)
    labels = [Path(p).name for p in args.checkpoints]
    if len(thetas) == 2:
        made = [interpolation_direction(*thetas)]
        spec = SurfaceSpec("interpolation", ["d0"], axes_from_args(args, 1, (-0.5, 1.5)), splits,
                           [(0.0,), (1.0,)], labels)
    else:
        made, markers = plane_directions(*thetas)
        xs = [m[0] for m in markers]
        axes = axes_from_args(args, 2, (min(xs) - 0.5, max(xs) + 0.5, -0.5, 1.5))
        spec = SurfaceSpec("plane", ["d0", "d1"], axes, splits, markers, labels)
    steps = [directions_step([d.name for d in made], lambda: made), surface_step(spec, origin=thetas[0], budget=budget)]
    settings = {"seed": args.seed, "normalization": "none", "include_1d": True,
                "checkpoints": [str(p) for p in args.checkpoints]}
    path = run_into_file(args, problem, provenance, steps, settings, list(args.checkpoints), budget)
    print_budget_stop(path, args)
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0
