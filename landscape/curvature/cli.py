"""``landscape hessian CKPT``: Hessian (or GGN / empirical Fisher) eigenvalues, trace, density."""

from __future__ import annotations

import argparse
import dataclasses

from .. import options
from ..options import (
    add_config_arguments,
    add_problem_arguments,
    problem_from_args,
    run_into_file,
    write_report_next_to,
)
from ..scan import ScanStep
from .config import CurvatureConfig
from .per_layer import MODULE_RULE, PerLayerResult
from .step import GROUP, check_curvature, hessian_step, run_curvature

HELP = "Hessian (or GGN / empirical Fisher) top and bottom eigenvalues, trace and spectral density"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, the shared problem options and one option per :class:`CurvatureConfig`
    field (the trace only with ``--trace`` here; the scan's step estimates it by default)."""
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser, output_name="hessian")
    group = parser.add_argument_group("curvature")
    add_config_arguments(group, CurvatureConfig, skip=["seed"], defaults={"trace": False})
    group.add_argument("--per-layer", nargs="?", const=MODULE_RULE, default=None, metavar="module|GROUPS",
                       help="top eigenvalue and trace of each group's diagonal block: 'module' (the default "
                            "when given bare: one group per module owning parameters) or 'name=pattern,...' "
                            "(fnmatch patterns, e.g. 'conv=features.*,head=classifier.*')")


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """The curvature options ``landscape scan`` shares with ``hessian`` (its step otherwise
    keeps :class:`CurvatureConfig`'s defaults)."""
    shared = {"weight_decay"}
    add_config_arguments(parser.add_argument_group("curvature"), CurvatureConfig,
                         skip=[f.name for f in dataclasses.fields(CurvatureConfig) if f.name not in shared])


def default_scan_step(args: argparse.Namespace) -> ScanStep:
    """The curvature part of ``landscape scan``: :class:`CurvatureConfig`'s defaults (top-5
    eigenvalues and the trace)."""
    return hessian_step(seed=args.seed, weight_decay=args.weight_decay)


def config_from_args(args: argparse.Namespace) -> CurvatureConfig:
    """The options of ``landscape hessian`` as a :class:`CurvatureConfig`."""
    return options.config_from_args(CurvatureConfig, args, seed=args.seed, per_layer=args.per_layer)


def run(args: argparse.Namespace) -> int:
    """``landscape hessian``: compute into the results file, print one line per analysis."""
    config = config_from_args(args)
    problem, provenance = problem_from_args(args)
    results: dict[str, object] = {}  # what this run computed, for the summary lines
    step = ScanStep(GROUP, lambda p, writer: results.update(run_curvature(p, writer, config)),
                    lambda p: check_curvature(p, config))
    path = run_into_file(args, problem, provenance, [step], {"seed": args.seed}, [args.checkpoint])
    for name, result in results.items():
        if isinstance(result, PerLayerResult):
            print(f"{name} ({result.settings['groups_spec']}, {result.settings['operator']}"
                  + (f" + {config.weight_decay:g}·I" if config.weight_decay else "") + "):")
            print("\n".join(f"  {line}" for line in result.table()))
        else:
            print(summary_line(name, result))
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0


def summary_line(name: str, result: object) -> str:
    """One printed line for an analysis's result."""
    from ..linalg import DensityResult, EigenResult, TraceResult

    if isinstance(result, EigenResult):
        values = ", ".join(f"{v:.6g}" for v in result.eigenvalues.tolist())
        flag = "converged" if result.all_converged else \
            f"NOT converged ({int(result.converged.sum())}/{result.k})"
        return (f"{name}: [{values}]  max rel. residual {float(result.residuals.max()):.1e}, {flag}, "
                f"{result.num_matvecs} HVPs in {result.num_data_passes} data passes")
    if isinstance(result, TraceResult):
        return f"{name}: {result.estimate:.6g} ± {result.stderr:.2g} ({result.method}, {result.num_probes} probes)"
    if isinstance(result, DensityResult):
        return f"{name}: {result.num_probes} probes × {result.num_steps} Lanczos steps"
    return name
