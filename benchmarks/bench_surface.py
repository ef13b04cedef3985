"""51×51 surface of a bundled checkpoint (or a small grid of the zoo's ResNet-18): our evaluation
vs one-point-at-a-time loops and the `loss_landscapes` package.

    python benchmarks/bench_surface.py [--checkpoint data/digits_mlp.pt] [--points 51] [--loop-points 300]
    python benchmarks/bench_surface.py --resnet [--points 9]   (ResNet-18 width 8, 256 CIFAR-shaped examples)

Two loops, each writing θ* + αδ + βη into the model per grid point and running forward:
- "cached loop": load_state_dict, then forward over the same device-cached batches we use
  (a strong baseline: no data-loading cost at all);
- "DataLoader loop": what loss-landscape scripts typically do: copy the weights into the
  parameters in place, then iterate a DataLoader (batch 128) summing ``loss.item()``.
- "loss_landscapes": the `loss-landscapes` package's `random_plane` (its own filter-normalized
  random directions, in-place steps along the grid, its `Loss` metric: one forward over the
  whole split as one batch, no `torch.no_grad`), when it is installed (`.[bench]`).
All evaluate the train split in one process, one torch thread, best of `--repeats`; the first
values of the cached loop are checked against ours.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.machine import cpu_model
from landscape import load_problem, zoo
from landscape.problem import Problem
from landscape.surfaces import compute_surface, grid_coefficients, points_at, random_directions


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


def dataloader_points_per_second(problem, model, directions, coefficients, batch_size: int = 128) -> float:
    """Peer-style loop: in-place weight copy, DataLoader over a TensorDataset, .item() per batch."""
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.cat([b.inputs for b in problem.batches("train")])
    y = torch.cat([b.target for b in problem.batches("train")])
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    named = dict(model.named_parameters())
    start = time.perf_counter()
    for row in coefficients:
        point = points_at(problem.params, directions, row[None])
        with torch.no_grad():
            for name, value in point.items():
                named[name].copy_(value[0])
            total = sum(problem.loss_fn(model(xb), yb).item() * len(yb) for xb, yb in loader)
        _ = total / len(y)
    return len(coefficients) / (time.perf_counter() - start)


def loss_landscapes_points_per_second(problem, model, points: int) -> float | None:
    """`loss_landscapes.random_plane` over points×points, on a copy (it turns requires_grad off)."""
    try:
        import loss_landscapes
        from loss_landscapes.metrics import Loss
    except ImportError:
        return None
    x = torch.cat([b.inputs for b in problem.batches("train")])
    y = torch.cat([b.target for b in problem.batches("train")])
    start = time.perf_counter()
    try:
        loss_landscapes.random_plane(copy.deepcopy(model), Loss(problem.loss_fn, x, y), distance=1, steps=points,
                                     normalization="filter")
    except ZeroDivisionError:
        # its filter normalization scales a 1-D direction by the parameter's norm, then divides
        # by the zeroed direction's norm: any all-zero 1-D parameter (fresh BatchNorm biases)
        # fails; layer normalization costs the same per point
        print("loss_landscapes: filter normalization divided by zero (an all-zero 1-D parameter); layer instead")
        start = time.perf_counter()
        loss_landscapes.random_plane(copy.deepcopy(model), Loss(problem.loss_fn, x, y), distance=1, steps=points,
                                     normalization="layer")
    return points**2 / (time.perf_counter() - start)


def best_of(repeats: int, measure: Callable[[], float | None]) -> float | None:
    """Highest throughput of `repeats` runs: other jobs on a shared machine only ever slow a run."""
    runs = [measure() for _ in range(repeats)]
    return None if runs[0] is None else max(r for r in runs if r is not None)


def resnet_problem_and_model() -> tuple[Problem, nn.Module]:
    torch.manual_seed(0)
    model = zoo.resnet18_cifar(width=8)
    problem = Problem.create(model, F.cross_entropy, zoo.cifar_shaped(examples=256))
    return problem, copy.deepcopy(model).eval()


def checkpoint_problem_and_model(checkpoint: str) -> tuple[Problem, nn.Module]:
    from landscape.loading import build_model, load_checkpoint

    problem, _ = load_problem(checkpoint)
    model, _ = build_model(load_checkpoint(checkpoint))
    return problem, model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="data/digits_mlp.pt")
    parser.add_argument("--points", type=int, default=51)
    parser.add_argument("--loop-points", type=int, default=300, help="points timed for the loop")
    parser.add_argument("--eval-mode", choices=["auto", "vmap", "loop"], default="auto")
    parser.add_argument("--resnet", action="store_true", help="ResNet-18 width 8 on 256 CIFAR-shaped examples")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per method")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    if args.resnet:
        problem, model = resnet_problem_and_model()
    else:
        problem, model = checkpoint_problem_and_model(args.checkpoint)
    problem.eval_mode = args.eval_mode
    directions = [d.vectors for d in random_directions(problem.params, 2, seed=0)]
    axes = [np.linspace(-1, 1, args.points)] * 2

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.1f}")
    compute_surface(problem, directions, [axes[0][:3], axes[1][:3]], ["train"], show_progress=False)  # warm-up
    surfaces = []

    def ours_rate() -> float:
        start = time.perf_counter()
        surfaces.append(compute_surface(problem, directions, axes, ["train"], show_progress=False))
        return args.points ** 2 / (time.perf_counter() - start)

    coefficients = grid_coefficients(axes)[: args.loop_points]
    loop_losses = []

    def loop_rate() -> float:
        rate, losses = loop_points_per_second(problem, model, directions, coefficients)
        loop_losses.append(losses)
        return rate

    rates = {"ours": best_of(args.repeats, ours_rate),
             "cached loop (load+forward)": best_of(args.repeats, loop_rate),
             "DataLoader loop (batch 128)": best_of(args.repeats, lambda: dataloader_points_per_second(
                 problem, model, directions, coefficients[: max(args.loop_points // 3, 1)])),
             "loss_landscapes.random_plane": best_of(args.repeats, lambda: loss_landscapes_points_per_second(
                 problem, model, args.points))}
    ours = surfaces[0].values["train"]["loss"].reshape(-1)[: len(loop_losses[0])]
    max_rel = float(np.max(np.abs(ours - loop_losses[0]) / np.abs(loop_losses[0])))

    print(f"grid {args.points}x{args.points}, train split ({problem.num_examples('train')} examples), "
          f"evaluation mode: {problem.resolved_eval_mode()}, best of {args.repeats}")
    for name, rate in rates.items():
        if rate is None:
            print(f"{name:30s} not installed")
            continue
        print(f"{name:30s} {rate:8.1f} points/s   ours ÷ it {rates['ours'] / rate:6.2f}x")
    print(f"max relative difference ours vs cached loop: {max_rel:.2e}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
