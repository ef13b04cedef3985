"""``landscape noise CKPT --examples N --batch-size B`` and the ``scan --noise`` options.

``--batch-size`` is the SGD mini-batch size B the noise is reported for; the batch size of
the data passes is the shared ``--eval-batch-size``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import LandscapeError


def _noise_options(group: argparse._ArgumentGroup, prefix: str) -> None:
    group.add_argument(f"--{prefix}examples", type=int, metavar="N",
                       help="examples whose per-example gradients form Σ (default: min(1024, split size))")
    group.add_argument(f"--{prefix}k", type=int, default=10, metavar="K",
                       help="top eigenvalues of Σ (and of H) to compute")
    group.add_argument(f"--{prefix}split", default="train", help="data split the noise is measured on")
    group.add_argument(f"--{prefix}no-hessian", action="store_true",
                       help="skip tr(HΣ), B_noise and the Σ/H eigenspace overlap (they need HVPs over the split)")
    group.add_argument(f"--{prefix}two-batch-sizes", type=int, nargs=2, metavar=("SMALL", "BIG"),
                       help="batch sizes of McCandlish's two-batch estimator (default: B and 4B)")
    group.add_argument(f"--{prefix}gradient-method", choices=["auto", "vmap", "loop"], default="auto",
                       help="per-example gradients: vmap, a loop of single examples, or auto (vmap, "
                            "falling back to the loop where the model has no batching rule)")


def add_noise_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli import add_problem_arguments

    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser)
    parser.add_argument("--batch-size", type=int, metavar="B",
                        help="SGD mini-batch size B the noise is reported for (Σ/B, tail index); required")
    _noise_options(parser.add_argument_group("gradient noise"), "")
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def add_noise_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``scan --noise`` and its options (prefixed ``--noise-``)."""
    group = parser.add_argument_group("gradient noise (scan --noise)")
    group.add_argument("--noise", action="store_true", help="add the gradient-noise analysis (group 'noise')")
    group.add_argument("--noise-batch-size", type=int, default=32, metavar="B",
                       help="SGD mini-batch size B the noise is reported for")
    _noise_options(group, "noise-")


def noise_steps_from_args(args: argparse.Namespace) -> list:
    """The scan steps ``scan --noise`` adds (none without the flag)."""
    from .step import noise_step

    if not getattr(args, "noise", False):
        return []
    return [noise_step(args.noise_examples, args.noise_batch_size, k=args.noise_k, split=args.noise_split,
                       seed=args.seed, hessian=not args.noise_no_hessian,
                       two_batch_sizes=tuple(args.noise_two_batch_sizes) if args.noise_two_batch_sizes else None,
                       gradient_method=args.noise_gradient_method)]


def run_noise(args: argparse.Namespace) -> int:
    from ..cli import problem_from_args, write_report_next_to
    from ..scan import base_settings, run_scan
    from .step import noise_step

    if args.batch_size is None:
        raise LandscapeError("noise: --batch-size B is required (the SGD mini-batch size the noise is for)")
    if args.batch_size < 1:
        raise LandscapeError(f"--batch-size must be a positive integer, got {args.batch_size}")
    problem, provenance = problem_from_args(args)
    step = noise_step(args.examples, args.batch_size, k=args.k, split=args.split, seed=args.seed,
                      hessian=not args.no_hessian,
                      two_batch_sizes=tuple(args.two_batch_sizes) if args.two_batch_sizes else None,
                      gradient_method=args.gradient_method)
    out = args.output or Path(f"{Path(args.checkpoint).stem}.noise.h5")
    path = run_scan(problem, out, [step], base_settings(problem, provenance, seed=args.seed),
                    resume=args.resume, overwrite=args.overwrite)
    print(f"results: {path}")
    print_summary(path)
    write_report_next_to(path, args)
    return 0


SUMMARY = [
    ("num_examples", "examples n"), ("method", "per-example method"), ("batch_size", "batch size B"),
    ("trace_sigma", "tr Σ"), ("grad_norm_sq", "‖ḡ‖²"), ("b_simple", "B_simple = tr Σ/‖ḡ‖²"),
    ("b_simple_two_batch", "B_simple (two-batch, McCandlish)"), ("b_noise", "B_noise = tr(HΣ)/ḡᵀHḡ"),
    ("tr_h_sigma", "tr(HΣ)"), ("tr_h_sigma_isotropic", "tr(HΣ), isotropic Σ of equal trace"),
    ("tail_index", "tail index α (Simsekli et al.)"),
]


def print_summary(path: Path) -> None:
    from ..store import open_results, read_attr

    with open_results(path) as handle:
        group = handle["noise"]
        for key, label in SUMMARY:
            value = read_attr(group.attrs[key])
            text = f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else str(value)
            print(f"  {label:38s} {text}")
        eigenvalues = group["eigenvalues"][()]
        print(f"  {'top eigenvalues of Σ':38s} " + " ".join(f"{v:.4g}" for v in eigenvalues[:5]))
