"""The ``landscape`` command line: wiring only (loading, analyses and storage live elsewhere).

Each subcommand is one entry of ``COMMANDS``: ``(name, help, add_arguments, run)``.
Bad input ends with one ``landscape: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, progress
from .curvature import cli as curvature_cli
from .curvature import hessian_directions
from .errors import LandscapeError
from .noise import cli as noise_cli
from .options import (HelpFormatter, Parser, add_problem_arguments, integer, problem_from_args, run_into_file,
                      write_report_next_to)
from .views import cli as view_cli

EXAMPLES = """\
examples:
  landscape scan data/digits_mlp.pt                 # 1-D + 2-D surfaces (+ report) of a bundled checkpoint
  landscape scan model.ckpt --model mypkg.nets:resnet20 --data mypkg.data:cifar_test --loss cross_entropy
  landscape surface ckpt.pt --dims 1 --points 101 --range -0.5 0.5 --splits test
  landscape interpolate a.pt b.pt                  # loss along the line from a to b
  landscape interpolate a.pt b.pt c.pt             # the plane through three checkpoints
  landscape info scan.h5                            # what a results file holds
"""

def add_grid_arguments(parser: argparse.ArgumentParser, *, dims: bool, range_help: str) -> None:
    """Grid options: points and range per axis, and the splits evaluated."""
    s = parser.add_argument_group("grid")
    if dims:
        s.add_argument("--dims", type=int, choices=[1, 2], default=2, help="1-D curve or 2-D grid")
    s.add_argument("--points", type=integer(2), nargs="+", metavar="N", help="grid points per axis: "
                   "one value for every axis, or one per axis (default: 51)")
    s.add_argument("--range", type=float, nargs="+", metavar="X", dest="span", help=range_help)
    s.add_argument("--splits", help="comma-separated data splits to evaluate (default: all)")


def add_direction_arguments(parser: argparse.ArgumentParser) -> None:
    """How the directions of a surface around the checkpoint are made."""
    s = parser.add_argument_group("directions")
    s.add_argument("--directions", choices=["random", "hessian"], default="random",
                   help="random Gaussian directions, or the top Hessian eigenvectors (unit norm, "
                   "so the axes are in parameter-space distance)")
    s.add_argument("--normalization", choices=["filter", "layer", "none"], default="filter",
                   help="scale random directions per filter (Li et al.), per layer or not at all")
    s.add_argument("--include-1d", action="store_true", help="perturb 1-D tensors (biases, "
                   "norm-layer affine) too; by default they are held at θ*")
    s.add_argument("--orthogonal", action="store_true", help="orthogonalize the second direction")


AROUND_RANGE = "axis range: MIN MAX for every axis, or MIN MAX MIN MAX (default: -1 1)"


def axes_from_args(args: argparse.Namespace, ndim: int, default_span: tuple[float, ...] = (-1.0, 1.0),
                   ) -> list[np.ndarray]:
    """The grid axes from ``--points`` and ``--range`` (one value for all axes, or one per axis)."""
    points = args.points or [51]
    if len(points) not in (1, ndim):
        raise LandscapeError(f"--points takes 1 or {ndim} values here, got {len(points)}: {points}")
    span = args.span or list(default_span)
    if len(span) not in (2, 2 * ndim):
        raise LandscapeError(f"--range takes MIN MAX (or {ndim} pairs) here, got {span}")
    spans = [span[0:2]] * ndim if len(span) == 2 else [span[2 * k:2 * k + 2] for k in range(ndim)]
    counts = points * ndim if len(points) == 1 else points
    for lo, hi in spans:
        if not lo < hi:
            raise LandscapeError(f"--range needs MIN < MAX, got {lo} {hi}")
    return [np.linspace(lo, hi, n) for (lo, hi), n in zip(spans, counts)]


def splits_from_args(args: argparse.Namespace, problem: Any) -> list[str]:
    if not args.splits:
        return problem.split_names
    wanted = [s.strip() for s in args.splits.split(",") if s.strip()]
    for split in wanted:
        problem.batches(split)  # raises a clear error for an unknown split
    return wanted


# ---------------------------------------------------------------------------- commands
def _add_scan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser, output_name="landscape")
    add_grid_arguments(parser, dims=False, range_help=AROUND_RANGE + "; the 1-D curve uses the first axis")
    add_direction_arguments(parser)
    noise_cli.add_noise_scan_arguments(parser)


def _surface_steps(args: argparse.Namespace, problem: Any, dims: list[int]) -> tuple[list, dict[str, Any]]:
    from .surfaces.directions import random_directions
    from .surfaces.step import SurfaceSpec, directions_step, surface_step

    splits = splits_from_args(args, problem)
    axes = axes_from_args(args, max(dims))

    def make() -> list:
        if args.directions == "hessian":
            return hessian_directions(problem, max(dims), seed=args.seed)
        return random_directions(problem.params, max(dims), seed=args.seed, normalization=args.normalization,
                                 include_1d=args.include_1d, orthogonal=args.orthogonal)

    steps = [directions_step([f"d{k}" for k in range(max(dims))], make)]
    for ndim in dims:
        spec = SurfaceSpec(f"{ndim}d", [f"d{k}" for k in range(ndim)], axes[:ndim], splits)
        steps.append(surface_step(spec))
    settings = {"seed": args.seed, "directions": args.directions,
                "normalization": args.normalization if args.directions == "random" else "none (unit norm)",
                "include_1d": args.include_1d,
                "orthogonal": args.orthogonal, "metric_specs": list(args.metric)}
    return steps, settings


def _run_surfaces(args: argparse.Namespace, dims: list[int]) -> int:
    problem, provenance = problem_from_args(args)
    steps, settings = _surface_steps(args, problem, dims)
    if dims == [1, 2]:  # the full scan: the curvature defaults and, with --noise, the noise
        steps.append(curvature_cli.default_scan_step(args))
        steps += noise_cli.noise_steps_from_args(args, provenance)
    path = run_into_file(args, problem, provenance, steps, settings, [args.checkpoint])
    print_headline(path)
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0


def print_headline(path: Path) -> None:
    """The numbers people quote, read back from the results file."""
    from .store import open_results

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


def _run_scan(args: argparse.Namespace) -> int:
    return _run_surfaces(args, [1, 2])


def _add_surface(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser, output_name="surface")
    add_grid_arguments(parser, dims=True, range_help=AROUND_RANGE)
    add_direction_arguments(parser)


def _run_surface(args: argparse.Namespace) -> int:
    return _run_surfaces(args, [args.dims])


def _add_interpolate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT",
                        help="two checkpoints (a line, A at 0 and B at 1) or three (their plane)")
    add_problem_arguments(parser, output_name="interpolation")
    add_grid_arguments(parser, dims=False, range_help="axis range: MIN MAX, or MIN MAX MIN MAX for a "
                       "plane (default: -0.5 1.5 along a line; for a plane, 0.5 beyond the checkpoints "
                       "on the first axis and -0.5 1.5 on the second)")


def _run_interpolate(args: argparse.Namespace) -> int:
    from .surfaces.directions import interpolation_direction, plane_directions
    from .loading import build_model, load_checkpoint
    from .surfaces.step import SurfaceSpec, directions_step, surface_step

    if len(args.checkpoints) not in (2, 3):
        raise LandscapeError(f"interpolate takes 2 or 3 checkpoints, got {len(args.checkpoints)}")
    problem, provenance = problem_from_args(args, args.checkpoints[0])
    thetas = [problem.params]
    for path in args.checkpoints[1:]:
        # a self-contained first checkpoint (pickled module, torch.export) records its format as
        # its model spec: the others then load by their own contents, not by that name
        self_contained = provenance["model_spec"] == provenance["checkpoint_format"]
        model, _ = build_model(load_checkpoint(path, trust=args.trust),
                               args.model or (None if self_contained else provenance["model_spec"]),
                               trust=args.trust)
        named = dict(model.named_parameters())
        missing = [n for n in problem.params if n not in named]
        if missing:
            raise LandscapeError(f"checkpoint '{path}' lacks parameters {missing[:3]} of the first one")
        thetas.append({n: named[n].detach().to(problem.device, problem.dtype) for n in problem.params})
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
    steps = [directions_step([d.name for d in made], lambda: made), surface_step(spec, origin=thetas[0])]
    settings = {"seed": args.seed, "normalization": "none", "include_1d": True,
                "checkpoints": [str(p) for p in args.checkpoints]}
    path = run_into_file(args, problem, provenance, steps, settings, list(args.checkpoints))
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0


def _add_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="results file (.h5)")


def _run_info(args: argparse.Namespace) -> int:
    from .store import open_results, read_attr

    with open_results(args.file) as handle:
        print(f"{args.file}")
        for key in sorted(handle.attrs):
            print(f"  {key} = {read_attr(handle.attrs[key])}")

        def show(name: str, node: Any) -> None:
            depth = "  " * (name.count("/") + 1)
            if hasattr(node, "shape"):
                finite = ""
                if node.dtype.kind == "f" and node.size <= 10_000_000:
                    values = node[()]
                    finite = f", {int(np.isfinite(values).sum())}/{values.size} finite"
                print(f"{depth}{name.rsplit('/', 1)[-1]}: {node.dtype} {node.shape}{finite}")
            else:
                attrs = ", ".join(f"{k}={read_attr(v)}" for k, v in node.attrs.items()
                                  if k not in ("markers", "marker_labels"))
                print(f"{depth}{name.rsplit('/', 1)[-1]}/  {attrs}")
        handle.visititems(show)
    return 0


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

COMMANDS: list[Command] = [
    ("scan", "the default analyses of a checkpoint: 1-D and 2-D loss surfaces, top Hessian eigenvalues "
     "and trace (+ report)", _add_scan, _run_scan),
    ("surface", "one 1-D or 2-D loss surface around a checkpoint", _add_surface, _run_surface),
    ("interpolate", "loss along the line between two checkpoints or the plane through three",
     _add_interpolate, _run_interpolate),
    ("hessian", curvature_cli.HELP, curvature_cli.add_arguments, curvature_cli.run),
    ("noise", noise_cli.HELP, noise_cli.add_noise_arguments, noise_cli.run_noise),
    ("view", view_cli.VIEW_HELP, view_cli.add_view_arguments, view_cli.run_view),
    ("info", "print what a results file holds", _add_info, _run_info),
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="landscape", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Loss-landscape and sharpness analysis of PyTorch checkpoints. Results go to one "
                    "HDF5 file (readable with h5py) and an HTML report.")
    parser.add_argument("--version", action="version",
                        version=f"landscape {__version__} (torch {torch.__version__})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad options (one line already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "quiet", False):
        progress.set_enabled(False)
    try:
        return args.run(args)
    except LandscapeError as exc:
        print(f"landscape: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        return 0
    except KeyboardInterrupt:
        print("landscape: interrupted; finished points are kept, continue with --resume", file=sys.stderr)
        return 130
    except OSError as exc:  # the file system said no (full disk, permissions, name too long)
        where = f": '{exc.filename}'" if exc.filename else ""
        print(f"landscape: error: {exc.strerror or _one_line(exc)}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: one line unless asked for the traceback
        if os.environ.get("LANDSCAPE_DEBUG"):
            traceback.print_exc()
        print(f"landscape: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set LANDSCAPE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
