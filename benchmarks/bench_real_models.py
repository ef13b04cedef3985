"""What `landscape scan` costs on the zoo's real shapes: ResNet-18 (CIFAR shape) and tiny_gpt.

    python benchmarks/bench_real_models.py [--width 64] [--points 5] [--max-examples 256] [--repeats 3]

For each model: an untrained checkpoint (seed 0; the cost does not depend on the weights)
saved with ``landscape.save``, then ``python -m landscape scan CKPT --points P --max-examples M
--no-report --quiet`` in a child process with one torch thread: its wall time, CPU time and peak
resident memory (``getrusage`` of the child). The yardstick, measured in this process with one
thread (best of ``--repeats``): one forward pass of the loss over the same examples (train and
test), so the scan's cost also reads as a number of forward passes, which the machine's load
moves less than seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import landscape
from landscape import zoo
from landscape.loading.specs import LOSSES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import cpu_model  # noqa: E402


def forward_seconds(checkpoint: Path, max_examples: int, repeats: int) -> float:
    """Best-of-``repeats`` time of the loss at θ* over every split's first ``max_examples`` examples
        (the scan's own evaluation path: one surface point costs this)."""
    problem, _ = landscape.load_problem(checkpoint, max_examples=max_examples)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for split in problem.split_names:
            problem.loss(split=split)
        best = min(best, time.perf_counter() - started)
    return best


def scan(checkpoint: Path, points: int, max_examples: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (GiB) of one `landscape scan` child process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "landscape", "scan", str(checkpoint), "--points", str(points),
                    "--max-examples", str(max_examples), "-o", str(checkpoint.with_suffix(".h5")), "--overwrite",
                    "--no-report", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, after.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 width (64: 11.2 M parameters)")
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--max-examples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {
        f"ResNet-18 width {args.width}": (zoo.resnet18_cifar(width=args.width), "resnet18_cifar",
                                          {"width": args.width}, "cifar_shaped", "cross_entropy"),
        "tiny_gpt (defaults)": (zoo.tiny_gpt(), "tiny_gpt", {}, "markov_copy", "token_cross_entropy"),
    }
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread, "
          f"load average before {os.getloadavg()[0]:.1f}")
    print(f"scan --points {args.points} --max-examples {args.max_examples}")
    print("| model | parameters | scan wall s | scan CPU s | peak RSS GiB | one forward s | scan ÷ forward (CPU) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for label, (model, model_spec, model_kwargs, data_spec, loss) in models.items():
            assert loss in LOSSES
            checkpoint = landscape.save(Path(folder) / f"{model_spec}.pt", model, model_spec=model_spec,
                                        model_kwargs=model_kwargs, data_spec=data_spec, loss=loss)
            forward = forward_seconds(checkpoint, args.max_examples, args.repeats)
            wall, cpu, rss = scan(checkpoint, args.points, args.max_examples)
            parameters = sum(p.numel() for p in model.parameters())
            print(f"| {label} | {parameters:,} | {wall:.0f} | {cpu:.0f} | {rss:.2f} | {forward:.2f} | "
                  f"{cpu / forward:.0f} |", flush=True)
    print(f"load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
