"""51×51 surface of a bundled checkpoint: our evaluation vs one-point-at-a-time loops.

    python benchmarks/bench_surface.py [--checkpoint data/digits_mlp.pt] [--points 51] [--loop-points 300]

Two loops, each writing θ* + αδ + βη into the model per grid point and running forward:
- "cached loop": load_state_dict, then forward over the same device-cached batches we use
  (a strong baseline: no data-loading cost at all);
- "DataLoader loop": what loss-landscape scripts typically do: copy the weights into the
  parameters in place, then iterate a DataLoader (batch 128) summing ``loss.item()``.
All evaluate the train split in one process; the first values are checked against ours.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from landscape import load_problem
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="data/digits_mlp.pt")
    parser.add_argument("--points", type=int, default=51)
    parser.add_argument("--loop-points", type=int, default=300, help="points timed for the loop")
    parser.add_argument("--eval-mode", choices=["auto", "vmap", "loop"], default="auto")
    args = parser.parse_args()
    torch.manual_seed(0)

    problem, _ = load_problem(args.checkpoint)
    problem.eval_mode = args.eval_mode
    directions = [d.vectors for d in random_directions(problem.params, 2, seed=0)]
    axes = [np.linspace(-1, 1, args.points)] * 2

    compute_surface(problem, directions, [axes[0][:3], axes[1][:3]], ["train"], show_progress=False)  # warm-up
    start = time.perf_counter()
    surface = compute_surface(problem, directions, axes, ["train"], show_progress=False)
    batched = args.points ** 2 / (time.perf_counter() - start)

    from landscape.loading import build_model, load_checkpoint
    model, _ = build_model(load_checkpoint(args.checkpoint))
    model.eval()
    coefficients = grid_coefficients(axes)[: args.loop_points]
    looped, loop_losses = loop_points_per_second(problem, model, directions, coefficients)
    peer = dataloader_points_per_second(problem, model, directions, coefficients[: args.loop_points // 3])
    ours = surface.values["train"]["loss"].reshape(-1)[: len(loop_losses)]
    max_rel = float(np.max(np.abs(ours - loop_losses) / np.abs(loop_losses)))

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"grid {args.points}x{args.points}, train split ({problem.num_examples('train')} examples), "
          f"evaluation mode: {problem.resolved_eval_mode()}")
    print(f"ours:                       {batched:8.1f} points/s")
    print(f"cached loop (load+forward): {looped:8.1f} points/s   ratio {batched / looped:6.2f}x")
    print(f"DataLoader loop (batch 128):{peer:8.1f} points/s   ratio {batched / peer:6.2f}x")
    print(f"max relative difference ours vs cached loop: {max_rel:.2e}")


if __name__ == "__main__":
    main()
