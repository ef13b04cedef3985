"""A ResNet-18 at CIFAR shape on a CPU: train briefly, save, scan with the real CLI.

    python examples/resnet18.py [--out resnet18] [--width 64] [--examples 512] [--epochs 2]
                                [--points 5] [--max-examples 256] [-- more `landscape scan` options]

Trains ``landscape.zoo.resnet18_cifar`` (``torch.nn`` only; 11.2 M parameters at width 64,
0.18 M at width 8) on ``cifar_shaped`` (synthetic 3×32×32 images labelled by a fixed random
teacher, generated locally) with SGD, saves it with ``landscape.save`` (built-in names, so it
loads without ``--trust``), then runs

    landscape scan OUT/resnet18.pt --points 5 --max-examples 256 -o OUT/resnet18.landscape.h5

the 1-D and 2-D surfaces on 5 and 5×5 points, the top-5 Hessian eigenvalues and the trace,
each on 256 train and 256 test examples. The scan reads your own arrays with
``-- --data file.npz`` (x_train [n, 3, 32, 32] float32, y_train [n] int64, x_test, y_test).

Measured at width 64 on the 2-core AMD EPYC VM (torch's 2 threads, load 6–9 from other jobs;
see benchmarks/RESULTS.md): ``--epochs 1 --points 5 --max-examples 64`` trains in 102 s and
scans in 56 minutes of wall time (20.4 CPU-minutes, peak 6.5 GiB resident): 4.5 minutes of
surface points, 23.5 of top-5 eigenvalues, 27 of Hutch++ trace. At ``--max-examples 256`` the
scan ran past 32 CPU-minutes (stopped unfinished).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import landscape
from landscape import zoo
from landscape.cli import main as landscape_main

BATCH_SIZE = 64


def train(width: int, examples: int, epochs: int, seed: int) -> tuple[torch.nn.Module, dict[str, int]]:
    """SGD with momentum on shuffled mini-batches; returns the model (eval mode) and the data's kwargs."""
    torch.manual_seed(seed)
    data_kwargs = {"examples": examples, "test_examples": max(examples // 2, 1), "seed": seed}
    data = zoo.cifar_shaped(**data_kwargs, batch_size=examples)
    (x, y), = data["train"]
    model = zoo.resnet18_cifar(width=width)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    order = torch.Generator().manual_seed(seed + 1)
    for epoch in range(epochs):
        model.train()
        permutation = torch.randperm(len(y), generator=order)
        total = 0.0
        for start in range(0, len(y), BATCH_SIZE):
            idx = permutation[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / len(y):.4f}", flush=True)
    return model.eval(), data_kwargs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("resnet18"))
    parser.add_argument("--width", type=int, default=64, help="channels of the first stage (64: ResNet-18)")
    parser.add_argument("--examples", type=int, default=512, help="training images (test: half as many)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--points", type=int, default=5, help="grid points per axis of the scan")
    parser.add_argument("--max-examples", type=int, default=256, help="examples per split the scan uses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("scan_options", nargs=argparse.REMAINDER, help="more `landscape scan` options, after --")
    args = parser.parse_args()

    started = time.perf_counter()
    model, data_kwargs = train(args.width, args.examples, args.epochs, args.seed)
    trained = time.perf_counter()
    checkpoint = landscape.save(args.out / "resnet18.pt", model, model_spec="resnet18_cifar",
                                model_kwargs={"width": args.width}, data_spec="cifar_shaped",
                                data_kwargs=data_kwargs, loss="cross_entropy", script="examples/resnet18.py",
                                epochs=args.epochs, seed=args.seed, batch_size=BATCH_SIZE)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"saved {checkpoint}: ResNet-18, width {args.width}, {parameters:,} parameters, "
          f"trained in {trained - started:.0f} s", flush=True)
    status = landscape_main(["scan", str(checkpoint), "--points", str(args.points), "--max-examples",
                             str(args.max_examples), "-o", str(args.out / "resnet18.landscape.h5"), "--overwrite",
                             *[a for a in args.scan_options if a != "--"]])
    if status:
        raise SystemExit(status)
    print(f"scan took {time.perf_counter() - trained:.0f} s")


if __name__ == "__main__":
    main()
