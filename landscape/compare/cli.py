"""``landscape compare A.pt B.pt C.pt --labels SGD,SAM,SWA``: the same sharpness measures on
every checkpoint, the same random rays, and the line through each pair with its loss barrier."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import LandscapeError
from ..options import (
    add_config_arguments,
    add_problem_arguments,
    config_from_args,
    integer,
    problem_from_args,
    run_into_file,
    write_report_next_to,
)
from ..sharpness.config import SharpnessConfig
from ..sharpness.ensembles import Prediction
from ..sharpness.result import SharpnessResult
from .steps import Checkpoint, check_same_architecture, compare_steps, line_axis

HELP = "sharpness measures, random rays and connecting lines of several checkpoints side by side (+ report)"


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoints and labels, the problem options, the measures' and the lines' options."""
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="two or more checkpoints of one architecture")
    parser.add_argument("--labels", help="comma-separated names, one per checkpoint (default: file names)")
    add_problem_arguments(parser, output_name="compare")
    add_config_arguments(parser.add_argument_group("sharpness measures"), SharpnessConfig)
    lines = parser.add_argument_group("lines between checkpoints")
    lines.add_argument("--line-points", type=integer(2), default=21, metavar="N",
                       help="points on the segment from each checkpoint to the next (both ends included)")
    lines.add_argument("--line-extend", type=float, default=0.5, metavar="T",
                       help="how far past both ends the line continues, in units of the segment")
    lines.add_argument("--no-lines", action="store_true", help="skip the lines and barriers")
    ensemble = parser.add_argument_group("averaged weights (SWA) vs averaged predictions (FGE)")
    ensemble.add_argument("--ensemble", action="store_true",
                          help="also compare the model with the checkpoints' averaged weights to the ensemble "
                               "averaging their predictions (off by default: averaging weights only makes sense "
                               "for checkpoints of one trajectory or one basin, e.g. SWA snapshots)")
    ensemble.add_argument("--ensemble-prediction", choices=("probabilities", "outputs"), default=None,
                          help="what the ensemble averages: softmax probabilities (classification, the default) "
                               "or raw outputs scored with the loss")


def labels_from_args(args: argparse.Namespace) -> list[str]:
    """``--labels`` split on commas (or the file names), one per checkpoint, all different."""
    if len(args.checkpoints) < 2:
        raise LandscapeError(f"compare takes at least 2 checkpoints, got {len(args.checkpoints)}")
    labels = ([s.strip() for s in args.labels.split(",")] if args.labels is not None
              else [Path(p).stem for p in args.checkpoints])
    if len(labels) != len(args.checkpoints):
        raise LandscapeError(f"--labels gives {len(labels)} names for {len(args.checkpoints)} checkpoints; "
                             "give one per checkpoint, comma-separated")
    if any(not label for label in labels) or len(set(labels)) != len(labels):
        raise LandscapeError(f"--labels {args.labels}: the names must be non-empty and different")
    return labels


def run_compare(args: argparse.Namespace) -> int:
    """``landscape compare``: check every option, load every checkpoint, then compute into one file."""
    labels = labels_from_args(args)
    config = config_from_args(SharpnessConfig, args, seed=args.seed)
    config.selected()
    axis = None if args.no_lines else line_axis(args.line_points, args.line_extend)
    if args.ensemble_prediction is not None and not args.ensemble:
        raise LandscapeError(f"--ensemble-prediction {args.ensemble_prediction} needs --ensemble")
    ensemble: Prediction | None = (args.ensemble_prediction or "probabilities") if args.ensemble else None
    checkpoints = []
    for index, (path, label) in enumerate(zip(args.checkpoints, labels)):
        problem, provenance = problem_from_args(args, path)
        checkpoints.append(Checkpoint(f"c{index}", label, path, problem, provenance))
    check_same_architecture(checkpoints)
    first = checkpoints[0]
    splits = first.problem.split_names
    steps = compare_steps(checkpoints, config, line_axis_values=axis, splits=splits, ensemble=ensemble)
    settings = {"seed": args.seed, "checkpoints": [str(p) for p in args.checkpoints], "labels": labels,
                "sharpness_options": config.settings()}
    path = run_into_file(args, first.problem, first.provenance, steps, settings, list(args.checkpoints))
    print(f"results: {path}")
    print_table(path)
    write_report_next_to(path, args)
    return 0


def _cell(result: SharpnessResult | None) -> str:
    """``value ± stderr`` with ``*`` when not converged; ``—`` for a measure not computed."""
    if result is None:
        return "—"
    return result.value_text() + ("" if result.converged else "*")


def print_table(path: Path) -> None:
    """Each measure's value per checkpoint (± its standard error; * where not converged)."""
    from ..views.flatness import read_comparison, read_ensemble

    comparison = read_comparison(path)
    rows = [["measure", *(model.label for model in comparison.models)]]
    for name in comparison.measure_names():
        rows.append([name, *(_cell(model.measures.get(name)) for model in comparison.models)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + f"{row[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(row[1:], widths[1:])))
    if any(cell.endswith("*") for row in rows for cell in row):
        print("  * not converged: see the measure's notes in the report")
    for barrier in comparison.barriers:
        print(f"  barrier {barrier.first_label} → {barrier.second_label}: "
              + ", ".join(f"{split} {value:.4g}" for split, value in barrier.values.items()))
    ensemble = read_ensemble(path)
    if ensemble is not None:
        print(f"  SWA vs FGE ({ensemble.num_checkpoints} checkpoints, {ensemble.prediction}, mean ‖Δ‖² "
              f"{ensemble.mean_sq_distance:.3g}): "
              + ", ".join(f"{split} loss {row.swa_loss:.4g} vs {row.fge_loss:.4g} (gap {row.loss_gap:+.3g})"
                          for split, row in ensemble.splits.items()))
