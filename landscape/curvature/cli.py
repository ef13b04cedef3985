"""``landscape hessian CKPT``: Hessian (or GGN / empirical Fisher) eigenvalues, trace, density."""

from __future__ import annotations

import argparse
from typing import Any

from ..options import (add_problem_arguments, integer, positive_float, problem_from_args, run_into_file,
                       write_report_next_to)
from .operators import OPERATORS
from .step import GROUP, CurvatureConfig, check_curvature, hessian_step, run_curvature

HELP = "Hessian (or GGN / empirical Fisher) top and bottom eigenvalues, trace and spectral density"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser, output_name="hessian")
    c = parser.add_argument_group("curvature")
    c.add_argument("--top", type=integer(0), default=5, metavar="K", help="largest K eigenvalues (0: skip)")
    c.add_argument("--bottom", type=integer(0), default=0, metavar="K",
                   help="smallest (most negative) K eigenvalues (0: skip)")
    c.add_argument("--trace", action="store_true", help="estimate tr(H) with a standard error")
    c.add_argument("--density", action="store_true", help="spectral density (stochastic Lanczos quadrature)")
    c.add_argument("--operator", choices=sorted(OPERATORS), default="hessian",
                   help="curvature matrix: Hessian, generalized Gauss-Newton or empirical Fisher")
    c.add_argument("--split", default="train", help="data split the empirical risk is taken over")
    c.add_argument("--params", action="append", metavar="PATTERN", default=[],
                   help="restrict to parameters matching this fnmatch pattern (repeatable), e.g. 'fc.*'")
    c.add_argument("--tol", type=positive_float, help="relative Ritz residual "
                   "(default: 1e-6 in float64, 1e-4 in float32)")
    c.add_argument("--block-size", type=integer(1), default=1, help="vectors per data pass in Lanczos "
                   "(≥ 2 finds repeated eigenvalues and needs fewer passes; 1 needs fewest HVPs)")
    c.add_argument("--max-basis", type=integer(1), help="Lanczos basis size (default: max(3K, 20) + block)")
    c.add_argument("--max-matvecs", type=integer(1), help="HVP budget per eigenproblem (default: 40 × basis)")
    c.add_argument("--hvp-mode", choices=["auto", "reverse", "forward", "autograd"], default="auto",
                   help="HVPs by torch.func reverse-over-reverse, forward-over-reverse, or autograd "
                   "double backward (auto: time them on the first batch and keep the fastest)")
    c.add_argument("--trace-method", choices=["hutch++", "hutchinson"], default="hutch++",
                   help="trace estimator (Hutch++ needs fewer products for the same error)")
    c.add_argument("--trace-probes", type=integer(1), default=30, help="operator products for the trace")
    c.add_argument("--density-probes", type=integer(1), default=4, help="random probes for the density")
    c.add_argument("--density-steps", type=integer(1), default=40, help="Lanczos steps per density probe")
    c.add_argument("--eigenvectors", action="store_true", help="store the eigenvectors per parameter")


def default_scan_step(args: argparse.Namespace) -> Any:
    """The curvature part of ``landscape scan``: top-5 eigenvalues and the trace."""
    return hessian_step(top=5, bottom=0, trace=True, density=False, seed=args.seed)


def config_from_args(args: argparse.Namespace) -> CurvatureConfig:
    return CurvatureConfig(
        top=args.top, bottom=args.bottom, trace=args.trace, density=args.density, operator=args.operator,
        split=args.split, param_patterns=list(args.params), tol=args.tol, block_size=args.block_size,
        max_basis=args.max_basis, max_matvecs=args.max_matvecs, hvp_mode=args.hvp_mode, seed=args.seed,
        trace_method=args.trace_method, trace_probes=args.trace_probes,
        density_probes=args.density_probes, density_steps=args.density_steps,
        store_eigenvectors=args.eigenvectors)


def run(args: argparse.Namespace) -> int:
    from ..scan import ScanStep

    config = config_from_args(args)
    problem, provenance = problem_from_args(args)
    results: dict[str, object] = {}  # what this run computed, for the summary lines
    step = ScanStep(GROUP, lambda p, writer: results.update(run_curvature(p, writer, config)),
                    lambda p: check_curvature(p, config))
    path = run_into_file(args, problem, provenance, [step], {"seed": args.seed}, [args.checkpoint])
    for name, result in results.items():
        print(summary_line(name, result))
    print(f"results: {path}")
    write_report_next_to(path, args)
    return 0


def summary_line(name: str, result: object) -> str:
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
