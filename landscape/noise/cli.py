"""``landscape noise CKPT --examples N --batch-size B`` and the ``scan --noise`` options.

``--batch-size`` is the SGD mini-batch size B the noise is reported for; the batch size of
the data passes is the shared ``--eval-batch-size``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..errors import LandscapeError
from ..options import add_problem_arguments, integer, problem_from_args, run_into_file, write_report_next_to

HELP = "gradient-noise covariance Σ, noise scales and their alignment with H"


def _noise_options(group: argparse._ArgumentGroup, prefix: str) -> None:
    group.add_argument(f"--{prefix}examples", type=integer(2), metavar="N",
                       help="examples whose per-example gradients form Σ (default: min(1024, split size))")
    group.add_argument(f"--{prefix}k", type=integer(1), default=10, metavar="K",
                       help="top eigenvalues of Σ (and of H) to compute")
    group.add_argument(f"--{prefix}split", default="train", help="data split the noise is measured on")
    group.add_argument(f"--{prefix}no-hessian", action="store_true",
                       help="skip tr(HΣ), B_noise and the Σ/H eigenspace overlap (they need HVPs over the split)")
    group.add_argument(f"--{prefix}two-batch-sizes", type=integer(1), nargs=2, metavar=("SMALL", "BIG"),
                       help="batch sizes of McCandlish's two-batch estimator (default: B and 4B)")
    group.add_argument(f"--{prefix}gradient-method", choices=["auto", "vmap", "loop"], default="auto",
                       help="per-example gradients: vmap, a loop of single examples, or auto (vmap, "
                            "falling back to the loop where the model has no batching rule)")


BATCH_HELP = ("SGD mini-batch size B the noise is reported for (Σ/B, tail index) (default: the training "
              "batch size recorded in the checkpoint)")


def add_noise_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser, output_name="noise")
    parser.add_argument("--batch-size", type=integer(1), metavar="B", help=BATCH_HELP)
    _noise_options(parser.add_argument_group("gradient noise"), "")


def add_noise_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``scan --noise`` and its options (prefixed ``--noise-``)."""
    group = parser.add_argument_group("gradient noise (scan --noise)")
    group.add_argument("--noise", action="store_true", help="add the gradient-noise analysis (group 'noise')")
    group.add_argument("--noise-batch-size", type=integer(1), metavar="B", help=BATCH_HELP + ", else 32")
    _noise_options(group, "noise-")


def batch_size_for(given: int | None, provenance: dict[str, Any], fallback: int | None) -> int:
    """``given``, else the training batch size the checkpoint records, else ``fallback``."""
    size = given or provenance.get("training_batch_size") or fallback
    if size is None:
        raise LandscapeError("noise: pass --batch-size B (the SGD mini-batch size the noise is for); "
                             "the checkpoint records no training batch size")
    return int(size)


def noise_steps_from_args(args: argparse.Namespace, provenance: dict[str, Any]) -> list:
    """The scan steps ``scan --noise`` adds (none without the flag)."""
    from .step import noise_step

    if not args.noise:
        return []
    return [noise_step(args.noise_examples, batch_size_for(args.noise_batch_size, provenance, 32),
                       k=args.noise_k, split=args.noise_split, seed=args.seed, hessian=not args.noise_no_hessian,
                       two_batch_sizes=tuple(args.noise_two_batch_sizes) if args.noise_two_batch_sizes else None,
                       gradient_method=args.noise_gradient_method)]


def run_noise(args: argparse.Namespace) -> int:
    from .step import noise_step

    problem, provenance = problem_from_args(args)
    step = noise_step(args.examples, batch_size_for(args.batch_size, provenance, None), k=args.k,
                      split=args.split, seed=args.seed, hessian=not args.no_hessian,
                      two_batch_sizes=tuple(args.two_batch_sizes) if args.two_batch_sizes else None,
                      gradient_method=args.gradient_method)
    path = run_into_file(args, problem, provenance, [step], {"seed": args.seed}, [args.checkpoint])
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
