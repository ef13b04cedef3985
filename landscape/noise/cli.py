"""``landscape noise CKPT --examples N --batch-size B`` and the ``scan --noise`` options.

``--batch-size`` is the SGD mini-batch size B the noise is reported for; the batch size of
the data passes is the shared ``--eval-batch-size``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..options import (
    add_config_arguments,
    add_problem_arguments,
    config_from_args,
    problem_from_args,
    run_into_file,
    write_report_next_to,
)
from .step import NoiseConfig, noise_step

HELP = "gradient-noise covariance Σ, noise scales and their alignment with H"


def add_noise_arguments(parser: argparse.ArgumentParser) -> None:
    """``landscape noise``: the checkpoint, the shared problem options and NoiseConfig's."""
    parser.add_argument("checkpoint", help="checkpoint file (.pt, .pth, .ckpt, .safetensors, TorchScript)")
    add_problem_arguments(parser, output_name="noise")
    add_config_arguments(parser.add_argument_group("gradient noise"), NoiseConfig, skip=["seed"])


def add_noise_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``scan --noise`` and the noise options, prefixed ``--noise-``."""
    group = parser.add_argument_group("gradient noise (scan --noise; B defaults to 32 when the checkpoint "
                                      "records no training batch size)")
    group.add_argument("--noise", action="store_true", help="add the gradient-noise analysis (group 'noise')")
    add_config_arguments(group, NoiseConfig, "noise-", skip=["seed"])


def noise_config(args: argparse.Namespace, provenance: dict[str, Any], prefix: str = "",
                 fallback_batch_size: int | None = None) -> NoiseConfig:
    """The options as a :class:`NoiseConfig`; B is ``--batch-size``, else the training batch
    size the checkpoint records, else ``fallback_batch_size``."""
    config = config_from_args(NoiseConfig, args, prefix, seed=args.seed)
    batch_size = config.batch_size or provenance.get("training_batch_size") or fallback_batch_size
    return replace(config, batch_size=batch_size)


def noise_steps_from_args(args: argparse.Namespace, provenance: dict[str, Any]) -> list:
    """The scan steps ``scan --noise`` adds (none without the flag)."""
    return [noise_step(noise_config(args, provenance, "noise-", 32))] if args.noise else []


def run_noise(args: argparse.Namespace) -> int:
    """``landscape noise``: compute into the results file and print the summary."""
    problem, provenance = problem_from_args(args)
    step = noise_step(noise_config(args, provenance))
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
    """The noise group's main numbers, one per line."""
    from ..store import open_results, read_attr

    with open_results(path) as handle:
        group = handle["noise"]
        for key, label in SUMMARY:
            value = read_attr(group.attrs[key])
            text = f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else str(value)
            print(f"  {label:38s} {text}")
        eigenvalues = group["eigenvalues"][()]
        print(f"  {'top eigenvalues of Σ':38s} " + " ".join(f"{v:.4g}" for v in eigenvalues[:5]))
