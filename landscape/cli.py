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

from . import progress
from .errors import LandscapeError
from .curvature import cli as curvature_cli
from .curvature import hessian_directions
from .noise.cli import add_noise_arguments, add_noise_scan_arguments, noise_steps_from_args, run_noise
from .views.cli import VIEW_HELP, add_view_arguments, run_view

EXAMPLES = """\
examples:
  landscape scan data/digits_mlp.pt                 # 1-D + 2-D surfaces (+ report) of a bundled checkpoint
  landscape scan model.ckpt --model mypkg.nets:resnet20 --data mypkg.data:cifar_test --loss cross_entropy
  landscape surface ckpt.pt --dims 1 --points 101 --range -0.5 0.5 --splits test
  landscape interpolate a.pt b.pt                  # loss along the line from a to b
  landscape interpolate a.pt b.pt c.pt             # the plane through three checkpoints
  landscape info scan.h5                            # what a results file holds
"""

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------- shared options
def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that say how to turn a checkpoint into a Problem, and where results go."""
    g = parser.add_argument_group("model, data and loss (default: what the checkpoint's metadata names)")
    g.add_argument("--model", metavar="SPEC", help="model factory: package.module:callable, "
                   "path/to/file.py:callable or a built-in (digits_mlp, digits_cnn)")
    g.add_argument("--data", metavar="SPEC", help="data: .pt/.npz file of x,y (or x_train,y_train,"
                   "x_test,y_test) arrays, or a factory spec returning batches or {'train','test'}")
    g.add_argument("--loss", metavar="NAME", help="cross_entropy, mse, nll, bce_with_logits or module:callable")
    g.add_argument("--metric", action="append", default=[], metavar="NAME=SPEC",
                   help="extra metric f(output, target) -> scalar mean, as name=module:callable "
                   "(repeatable); evaluated wherever the loss is")
    g.add_argument("--trust", action="store_true", help="allow pickled Python objects in the checkpoint "
                   "(runs code from the file: only for files you trust)")
    g.add_argument("--eval-batch-size", type=int, metavar="B", help="batch size of the data passes "
                   "(default: the data's own)")
    g.add_argument("--max-examples", type=int, metavar="N", help="use at most N examples of each split")
    g.add_argument("--max-batches", type=int, metavar="N", help="use at most N batches of each split")
    r = parser.add_argument_group("computation")
    r.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    r.add_argument("--dtype", choices=sorted(DTYPES), help="compute dtype (default: the model's)")
    r.add_argument("--bn", choices=["eval", "recompute"], default="eval",
                   help="BatchNorm: keep running stats (eval) or re-estimate them at every point")
    r.add_argument("--eval-mode", choices=["auto", "vmap", "loop"], default="auto",
                   help="evaluate many points per forward pass with vmap, or one point per pass over "
                   "merged batches (auto: vmap on CUDA, loop elsewhere)")
    r.add_argument("--seed", type=int, default=0, help="seed for random directions and probes")
    o = parser.add_argument_group("output")
    o.add_argument("-o", "--output", type=Path, metavar="FILE.h5", help="results file "
                   "(default: <checkpoint name>.landscape.h5 in the current folder)")
    o.add_argument("--resume", action="store_true", help="continue an interrupted scan of the same "
                   "file, keeping every finished point")
    o.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    o.add_argument("--quiet", action="store_true", help="no progress bars")


def problem_from_args(args: argparse.Namespace, checkpoint: str | None = None):
    """Load the Problem named by the shared options; returns (problem, provenance attrs)."""
    from .loading import load_problem

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    problem, provenance = load_problem(
        checkpoint or args.checkpoint, model=args.model, data=args.data, loss=args.loss,
        trust=args.trust, device=device, dtype=DTYPES[args.dtype] if args.dtype else None,
        bn_policy=args.bn, batch_size=args.eval_batch_size, max_batches=args.max_batches,
        max_examples=args.max_examples, metrics=metrics_from_args(args))
    problem.eval_mode = args.eval_mode
    return problem, provenance.as_attrs()


def metrics_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from .loading import resolve_callable

    metrics = {}
    for item in args.metric:
        name, sep, spec = item.partition("=")
        if not sep or not name.isidentifier() or name in ("loss", "accuracy"):
            raise LandscapeError(f"--metric takes NAME=module:callable with a new identifier NAME, got {item!r}")
        metrics[name] = resolve_callable(spec, f"metric '{name}'")
    return metrics


def output_path(args: argparse.Namespace, checkpoint: str) -> Path:
    return args.output or Path(f"{Path(checkpoint).stem}.landscape.h5")


def add_surface_arguments(parser: argparse.ArgumentParser, *, dims: bool) -> None:
    s = parser.add_argument_group("surface")
    if dims:
        s.add_argument("--dims", type=int, choices=[1, 2], default=2, help="1-D curve or 2-D grid")
    s.add_argument("--points", type=int, nargs="+", metavar="N", help="grid points per axis "
                   "(one value for both axes, or two; default 51)")
    s.add_argument("--range", type=float, nargs="+", metavar="X", dest="span",
                   help="axis range: MIN MAX for all axes, or MIN MAX MIN MAX (default -1 1)")
    s.add_argument("--splits", help="comma-separated data splits to evaluate (default: all)")
    s.add_argument("--directions", choices=["random", "hessian"], default="random",
                   help="random Gaussian directions, or the top Hessian eigenvectors (unit norm, "
                   "so the axes are in parameter-space distance)")
    s.add_argument("--normalization", choices=["filter", "layer", "none"], default="filter",
                   help="scale random directions per filter (Li et al.), per layer or not at all")
    s.add_argument("--include-1d", action="store_true", help="perturb 1-D tensors (biases, "
                   "norm-layer affine) too; by default they are held at θ*")
    s.add_argument("--orthogonal", action="store_true", help="orthogonalize the second direction")


def axes_from_args(args: argparse.Namespace, ndim: int, default_span: tuple[float, float] = (-1.0, 1.0),
                   ) -> list[np.ndarray]:
    points = args.points or [51]
    if len(points) not in (1, ndim) or min(points) < 2:
        raise LandscapeError(f"--points takes 1 or {ndim} values of at least 2, got {points}")
    span = args.span or list(default_span)
    if len(span) not in (2, 2 * ndim):
        raise LandscapeError(f"--range takes MIN MAX (or {ndim} pairs), got {span}")
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


def write_report_next_to(path: Path, args: argparse.Namespace) -> None:
    """Write the HTML report beside the results file unless ``--no-report``."""
    from .views import write_report

    if getattr(args, "no_report", False):
        return
    html = path.with_suffix(".html")
    write_report(path, html)
    print(f"report: {html}")


# ---------------------------------------------------------------------------- commands
def _add_scan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser)
    add_surface_arguments(parser, dims=False)
    add_noise_scan_arguments(parser)
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def _surface_steps(args: argparse.Namespace, problem: Any, dims: list[int]) -> tuple[list, Any]:
    from .directions import random_directions
    from .scan import SurfaceSpec, directions_step, surface_step

    splits = splits_from_args(args, problem)
    def make() -> list:
        if args.directions == "hessian":
            return hessian_directions(problem, max(dims), seed=args.seed)
        return random_directions(problem.params, max(dims), seed=args.seed, normalization=args.normalization,
                                 include_1d=args.include_1d, orthogonal=args.orthogonal)

    steps = [directions_step([f"d{k}" for k in range(max(dims))], make)]
    for ndim in dims:
        spec = SurfaceSpec(f"{ndim}d", [f"d{k}" for k in range(ndim)], axes_from_args(args, ndim), splits)
        steps.append(surface_step(spec))
    steps += noise_steps_from_args(args)  # `scan --noise`; none for other commands
    settings = {"seed": args.seed, "directions": args.directions,
                "normalization": args.normalization if args.directions == "random" else "none (unit norm)",
                "include_1d": args.include_1d,
                "orthogonal": args.orthogonal, "metric_specs": list(args.metric)}
    return steps, settings


def _run_surfaces(args: argparse.Namespace, dims: list[int]) -> int:
    from .scan import base_settings, run_scan

    problem, provenance = problem_from_args(args)
    steps, options = _surface_steps(args, problem, dims)
    if dims == [1, 2]:  # the full scan: curvature defaults too (top-5 eigenvalues, trace)
        steps.append(curvature_cli.default_scan_step(args))
    out = output_path(args, args.checkpoint)
    path = run_scan(problem, out, steps, base_settings(problem, provenance, **options),
                    resume=args.resume, overwrite=args.overwrite)
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
    parser.add_argument("checkpoint", help="checkpoint file")
    add_problem_arguments(parser)
    add_surface_arguments(parser, dims=True)
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def _run_surface(args: argparse.Namespace) -> int:
    return _run_surfaces(args, [args.dims])


def _add_interpolate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT",
                        help="two checkpoints (a line, A at 0 and B at 1) or three (their plane)")
    add_problem_arguments(parser)
    add_surface_arguments(parser, dims=False)
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def _run_interpolate(args: argparse.Namespace) -> int:
    from .directions import interpolation_direction, plane_directions
    from .loading import build_model, load_checkpoint
    from .scan import SurfaceSpec, base_settings, directions_step, run_scan, surface_step

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
        direction = interpolation_direction(*thetas)
        axes = axes_from_args(args, 1, (-0.5, 1.5))
        spec = SurfaceSpec("interpolation", ["d0"], axes, splits, [(0.0,), (1.0,)], labels)
        made = [direction]
    else:
        made, markers = plane_directions(*thetas)
        xs = [m[0] for m in markers]
        default = (min(xs) - 0.5, max(xs) + 0.5)
        if args.span is None:
            args.span = [*default, -0.5, 1.5]
        axes = axes_from_args(args, 2)
        spec = SurfaceSpec("plane", ["d0", "d1"], axes, splits, markers, labels)
    steps = [directions_step([d.name for d in made], lambda: made), surface_step(spec, origin=thetas[0])]
    settings = base_settings(problem, provenance, seed=args.seed, normalization="none", include_1d=True,
                             checkpoints=[str(p) for p in args.checkpoints])
    out = args.output or Path(f"{Path(args.checkpoints[0]).stem}.interpolation.h5")
    path = run_scan(problem, out, steps, settings, resume=args.resume, overwrite=args.overwrite)
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
    ("scan", "the default analyses of a checkpoint: 1-D and 2-D loss surfaces (+ report)", _add_scan, _run_scan),
    ("surface", "one 1-D or 2-D random-direction loss surface", _add_surface, _run_surface),
    ("interpolate", "loss along the line between two checkpoints or the plane through three",
     _add_interpolate, _run_interpolate),
    ("info", "print what a results file holds", _add_info, _run_info),
    ("noise", "gradient-noise covariance Σ, noise scales and their alignment with H", add_noise_arguments, run_noise),
    ("view", VIEW_HELP, add_view_arguments, run_view),
    ("hessian", curvature_cli.HELP, curvature_cli.add_arguments, curvature_cli.run),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landscape", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Loss-landscape and sharpness analysis of PyTorch checkpoints. Results go to one "
                    "HDF5 file (readable with h5py) and an HTML report.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        progress.set_enabled(False)
    try:
        return args.run(args)
    except LandscapeError as exc:
        print(f"landscape: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        return 0
    except KeyboardInterrupt:
        print("landscape: interrupted; finished points are kept, continue with --resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line unless asked for the traceback
        if os.environ.get("LANDSCAPE_DEBUG"):
            traceback.print_exc()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"landscape: internal error: {type(exc).__name__}: {reason} "
              "(set LANDSCAPE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
