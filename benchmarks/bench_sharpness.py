"""Sharpness measures: what each one costs with the default settings, on the bundled digits MLP and CNN.

Every measure of ``MEASURE_NAMES`` run by ``compute_measures`` with a default
``SharpnessConfig`` (what ``landscape compare`` computes; train split), once per model, in
one process. For each: its value, the full passes over the data it counts
(``gradient_evaluations``: loss and gradient; ``loss_evaluations``: loss only), its wall
time, and that time ÷ the time of one full-batch loss + gradient (the reference row: the
median of ``--repeats`` ``Objective.loss_and_gradient`` calls at θ*, after a warm-up),
i.e. what the measure costs "in gradients". A loss-only pass is timed the same way.
Both are timed before and after the model's measures; the ratio uses the mean of the two.
λ_max and tr H count each Hessian-vector product as two gradient evaluations; m_sharpness
counts passes over its m-example batches (default m = 128 examples each).

    PYTHONPATH=. python benchmarks/bench_sharpness.py [--models mlp cnn] [--measure NAME ...]
        [--threads 1] [--max-examples N] [--repeats 20]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

from landscape import load_problem
from landscape.problem import Problem
from landscape.sharpness import MEASURE_NAMES, SharpnessConfig, compute_measures
from landscape.sharpness.objective import Objective

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = {"mlp": ("digits MLP", ROOT / "data" / "digits_mlp.pt"),
               "cnn": ("digits CNN (BatchNorm)", ROOT / "data" / "digits_cnn.pt")}


def median_seconds(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls, after one warm-up call (a median, not the fastest:
    the measures are single runs of many passes, so their passes run at a typical speed)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_seconds(problem: Problem, split: str, repeats: int) -> tuple[float, float]:
    """One full pass over ``split``: (loss + gradient, loss only), median of ``repeats``."""
    objective = Objective.on_split(problem, split)
    zero = torch.zeros(objective.size, dtype=torch.float64)
    return (median_seconds(lambda: objective.loss_and_gradient(zero), repeats),
            median_seconds(lambda: objective.loss(zero), repeats))


def model_rows(label: str, problem: Problem, config: SharpnessConfig, repeats: int) -> tuple[list[str], list[str]]:
    """The table rows of one model and the notes of its measures. The reference passes are
    timed before and after the measures (a shared machine drifts); the ratio column divides
    by the mean of the two medians."""
    before = reference_seconds(problem, config.split, repeats)
    results = []
    for result in compute_measures(problem, config):
        results.append(result)
        print(f"  {label}: {result.name} done in {result.seconds:.1f} s", flush=True)
    after = reference_seconds(problem, config.split, repeats)
    gradient_s, loss_s = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    rows = [f"| {label} | one loss + gradient (reference; before / after) | | 1 | 0 | "
            f"{before[0]:.4f} / {after[0]:.4f} | 1 | |",
            f"| {label} | one loss only (before / after) | | 0 | 1 | {before[1]:.4f} / {after[1]:.4f} | "
            f"{loss_s / gradient_s:.2f} | |"]
    notes = []
    for result in results:
        value = f"{result.value:.4g}" + (f" ± {result.stderr:.2g}" if math.isfinite(result.stderr) else "")
        converged = "yes" if result.converged else "**no**"
        rows.append(f"| {label} | {result.name} | {value} | {result.gradient_evaluations:,} | "
                    f"{result.loss_evaluations:,} | {result.seconds:.2f} | {result.seconds / gradient_s:,.0f} | "
                    f"{converged} |")
        if result.notes:
            notes.append(f"{label}, {result.name}: {result.notes}")
    total_s = sum(r.seconds for r in results)
    rows.append(f"| {label} | **all measures** | | {sum(r.gradient_evaluations for r in results):,} | "
                f"{sum(r.loss_evaluations for r in results):,} | {total_s:.1f} | {total_s / gradient_s:,.0f} | |")
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CHECKPOINTS), default=["mlp", "cnn"])
    parser.add_argument("--measure", action="append", choices=MEASURE_NAMES, default=[],
                        help="measure to run (repeatable; default: every measure)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1, as bench_curvature.py: on a shared 2-core "
                        "machine two threads contend with other jobs and wall times swing by 10×; 0: torch's default)")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="use at most this many examples per split (default: all)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls of the reference passes")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = SharpnessConfig(measures=tuple(args.measure))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}, torch {torch.__version__}, torch threads: {torch.get_num_threads()}")
    rows, notes = [], []
    start = time.perf_counter()
    for key in args.models:
        label, path = CHECKPOINTS[key]
        problem, _ = load_problem(path, device="cpu", max_examples=args.max_examples)
        dim = sum(p.numel() for p in problem.params.values())
        print(f"{label}: {dim:,} parameters, {problem.num_examples(config.split):,} {config.split} examples in "
              f"{len(problem.batches(config.split))} batches, {problem.dtype}", flush=True)
        model_table, model_notes = model_rows(label, problem, config, args.repeats)
        rows += model_table
        notes += model_notes
    print(f"load average at the end {os.getloadavg()[0]:.1f}; total {time.perf_counter() - start:.0f} s")
    print()
    print("| model | measure | value | gradient evals | loss evals | seconds | seconds ÷ one gradient | converged |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if notes:
        print()
        print("\n".join(f"- {note}" for note in notes))


if __name__ == "__main__":
    main()
