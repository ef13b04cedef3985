"""51×51 surface of the bundled digits MLP: batched evaluation vs a one-point-at-a-time loop.

    python benchmarks/bench_surface.py [--checkpoint data/digits_mlp.pt] [--points 51] [--loop-points 300]

The loop is what most loss-landscape scripts do per grid point: write θ* + αδ + βη into the
model with load_state_dict, then run forward over every batch. Both evaluate the train split
in the same process, and the first few batched values are checked against the loop's.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from landscape import load_problem
from landscape.directions import random_directions
from landscape.progress import set_enabled
from landscape.surface import compute_surface, grid_coefficients, points_at


def loop_points_per_second(problem, model, directions, coefficients) -> tuple[float, np.ndarray]:
    """Reference loop: load_state_dict + forward over the train batches, one point at a time."""
    state = model.state_dict()
    losses = []
    start = time.perf_counter()
    for row in coefficients:
        point = points_at(problem.params, directions, row[None])
        state.update({n: v[0] for n, v in point.items()})
        model.load_state_dict(state)
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in problem.batches("train"):
                total += float(problem.loss_fn(model(batch.inputs), batch.target)) * batch.size
                count += batch.size
        losses.append(total / count)
    return len(coefficients) / (time.perf_counter() - start), np.array(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="data/digits_mlp.pt")
    parser.add_argument("--points", type=int, default=51)
    parser.add_argument("--loop-points", type=int, default=300, help="points timed for the loop")
    args = parser.parse_args()
    set_enabled(False)
    torch.manual_seed(0)

    problem, _ = load_problem(args.checkpoint)
    directions = [d.vectors for d in random_directions(problem.params, 2, seed=0)]
    axes = [np.linspace(-1, 1, args.points)] * 2

    compute_surface(problem, directions, [axes[0][:3], axes[1][:3]], ["train"])  # warm-up
    start = time.perf_counter()
    surface = compute_surface(problem, directions, axes, ["train"])
    batched = args.points ** 2 / (time.perf_counter() - start)

    from landscape.loading import build_model, load_checkpoint
    model, _ = build_model(load_checkpoint(args.checkpoint))
    model.eval()
    coefficients = grid_coefficients(axes)[: args.loop_points]
    looped, loop_losses = loop_points_per_second(problem, model, directions, coefficients)
    ours = surface.values["train"]["loss"].reshape(-1)[: len(loop_losses)]
    max_rel = float(np.max(np.abs(ours - loop_losses) / np.abs(loop_losses)))

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"grid {args.points}x{args.points}, train split ({problem.num_examples('train')} examples), "
          f"{problem.points_per_pass()} points per pass")
    print(f"batched (vmap):        {batched:8.1f} points/s")
    print(f"loop (load+forward):   {looped:8.1f} points/s")
    print(f"ratio:                 {batched / looped:8.2f}x")
    print(f"max relative difference batched vs loop: {max_rel:.2e}")


if __name__ == "__main__":
    main()
