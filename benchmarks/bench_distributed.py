"""One process against two under ``torchrun`` on this CPU: surface points/s and HVPs/s.

    python benchmarks/bench_distributed.py [--repeats 2] [--examples 512] [--points 17] [--probes 60]

Three ways to spend the machine's cores on the same command, each a child process (or a
``torchrun`` group) started fresh:

- ``1 proc × 1 thread``: ``python -m landscape ...`` with one torch thread;
- ``1 proc × 2 threads``: the same with two threads (what a plain run uses on 2 cores);
- ``torchrun 2 × 1 thread``: ``torchrun --standalone --nproc-per-node 2 -m landscape ...``,
  each rank one thread, each holding half of every batch (gloo all-reduce per pass).

What is timed is the difference between a long and a short run of the same command, so
loading, process start and the rendezvous cancel out: a 2-D surface on ``--points``² against
3×3 points (280 points at 17), and the Hessian trace by Hutchinson with ``--probes`` against
a tenth as many (exactly 54 HVPs at 60).
Models: the bundled digits CNN (BatchNorm; 1,437 train + 360 test examples) and an untrained
ResNet-18 of width 8 on ``--examples`` CIFAR-shaped images (train and test). Best of
``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import landscape
from landscape import zoo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import cpu_model  # noqa: E402

WAYS = {"1 proc × 1 thread": (1, 1), "1 proc × 2 threads": (1, 2), "torchrun 2 × 1 thread": (2, 1)}


def command(processes: int, args: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "landscape", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
            "-m", "landscape", *args]


def seconds(processes: int, threads: int, args: list[str], folder: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT), "LANDSCAPE_QUIET": "1"}
    started = time.perf_counter()
    subprocess.run(command(processes, [*args, "-o", str(folder / "out.h5"), "--overwrite", "--no-report"]),
                   env=env, check=True, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def rate(processes: int, threads: int, long: list[str], short: list[str], work: int, folder: Path,
         repeats: int) -> float:
    """Work units per second of the long run beyond the short one (best of ``repeats`` each)."""
    best_long = min(seconds(processes, threads, long, folder) for _ in range(repeats))
    best_short = min(seconds(processes, threads, short, folder) for _ in range(repeats))
    return work / max(best_long - best_short, 1e-9)


def resnet_checkpoint(folder: Path, examples: int) -> Path:
    torch.manual_seed(0)
    model = zoo.resnet18_cifar(width=8)
    return landscape.save(folder / "resnet8.pt", model, model_spec="resnet18_cifar", model_kwargs={"width": 8},
                          data_spec="cifar_shaped",
                          data_kwargs={"examples": examples, "test_examples": examples, "seed": 0},
                          loss="cross_entropy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--points", type=int, default=17)
    parser.add_argument("--probes", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average before {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = {"digits CNN (BN)": ROOT / "data" / "digits_cnn.pt",
                  f"ResNet-18 w8, {args.examples}+{args.examples} ex.": resnet_checkpoint(folder, args.examples)}
        print("| model | way | surface points/s | HVPs/s | points/s ÷ 1×1 | HVPs/s ÷ 1×1 |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, checkpoint in models.items():
            surface = ["surface", str(checkpoint), "--dims", "2"]
            trace = ["hessian", str(checkpoint), "--top", "0", "--trace", "--trace-method", "hutchinson"]
            base: tuple[float, float] | None = None
            for way, (processes, threads) in WAYS.items():
                few = max(1, args.probes // 10)
                points = rate(processes, threads, [*surface, "--points", str(args.points)],
                              [*surface, "--points", "3"], args.points ** 2 - 9, folder, args.repeats)
                hvps = rate(processes, threads, [*trace, "--trace-probes", str(args.probes)],
                            [*trace, "--trace-probes", str(few)], args.probes - few, folder, args.repeats)
                base = base or (points, hvps)
                print(f"| {name} | {way} | {points:.1f} | {hvps:.2f} | {points / base[0]:.2f} | "
                      f"{hvps / base[1]:.2f} |", flush=True)
    print(f"load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
