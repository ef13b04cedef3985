"""Cached vs streamed data: peak memory and time of a small scan on a CIFAR-shaped split.

The data (``landscape.zoo.cifar_shaped``) is written once to a raw float32 file and read back
batch by batch with plain file reads (a ``Dataset`` over the file, the way data larger than
memory is read), so the process holds only what the Problem keeps. ``Problem.create`` with
``data_mode="cache"`` keeps every batch on the device; ``"stream"`` reads the file again on
every pass. Each mode runs in a fresh process (so one mode's peak cannot hide the other's):
``Problem.create``, a 1-D surface of ``--points`` points and the top Hessian eigenvalue of
``landscape.zoo.resnet18_cifar(width=8)``. Peak memory: on CPU the growth of the peak
resident set size (ru_maxrss) over the process after the model is built; on CUDA
``torch.cuda.max_memory_allocated``; and the resident set size the process holds after the
surface over what it held before ``Problem.create`` (CPU). Times are the best of ``--repeats``.

    PYTHONPATH=. python benchmarks/bench_data.py [--examples 1024] [--points 3] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

IMAGE = 3 * 32 * 32


class FileImages(Dataset):
    """Examples read from a raw float32 file on every access (nothing kept in memory)."""

    def __init__(self, path: Path, labels: np.ndarray) -> None:
        self.path, self.labels = path, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = np.fromfile(self.path, dtype=np.float32, count=IMAGE, offset=index * IMAGE * 4)
        return torch.from_numpy(pixels).reshape(3, 32, 32), int(self.labels[index])


def write_data(folder: Path, examples: int) -> tuple[Path, np.ndarray]:
    from landscape.zoo import cifar_shaped

    splits = cifar_shaped(examples=examples, test_examples=1, batch_size=examples)
    x, y = splits["train"][0]
    path = folder / "images.f32"
    x.numpy().astype(np.float32).tofile(path)
    return path, y.numpy()


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def resident_bytes() -> int:
    """The resident set size now (Linux /proc/self/statm)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def best(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(mode: str, path: Path, labels: np.ndarray, args: argparse.Namespace, queue: mp.Queue) -> None:
    torch.set_num_threads(args.threads)
    from landscape import Problem, api
    from landscape.zoo import resnet18_cifar

    torch.manual_seed(0)
    model = resnet18_cifar(width=8)
    data = DataLoader(FileImages(path, labels), batch_size=args.batch_size)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before, resident = peak_bytes(args.device), resident_bytes()
    start = time.perf_counter()
    problem = Problem.create(model, F.cross_entropy, {"train": data}, device=args.device, data_mode=mode)
    created = time.perf_counter() - start
    surface = best(lambda: api.random_line(problem, points=args.points), args.repeats)
    surface_peak = (peak_bytes(args.device) - before) / 2**20  # data + surface, before any HVP
    held = (resident_bytes() - resident) / 2**20  # what the Problem keeps between passes (CPU)
    eig = api.hessian_eigs(problem, k=1, tol=args.tol) if args.eig else None
    eig_seconds = best(lambda: api.hessian_eigs(problem, k=1, tol=args.tol), args.repeats - 1) \
        if args.eig and args.repeats > 1 else float("nan")
    queue.put({"mode": problem.batches().mode, "create_s": created, "surface_s": surface,
               "eig_s": eig_seconds, "eig": float(eig.result.eigenvalues[0]) if eig else float("nan"),
               "surface_peak_mib": surface_peak, "held_mib": held,
               "peak_mib": (peak_bytes(args.device) - before) / 2**20})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-eig", dest="eig", action="store_false", help="skip the eigenvalue (surface only)")
    args = parser.parse_args()
    from machine import cpu_model

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.1f}, device {args.device}")
    print(f"data: {args.examples} CIFAR-shaped examples ({args.examples * IMAGE * 4 / 2**20:.0f} MiB float32) "
          f"in batches of {args.batch_size}, read from a file; resnet18_cifar(width=8)")
    context = mp.get_context("spawn")
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        path, labels = write_data(Path(folder), args.examples)
        for mode in ("cache", "stream"):
            queue = context.Queue()
            process = context.Process(target=measure, args=(mode, path, labels, args, queue))
            process.start()
            rows[mode] = queue.get()
            process.join()
    print("| mode | create s | surface s | top-1 eig s | held MiB | peak MiB (surface) | peak MiB (all) | λ_max |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows.values():
        print(f"| {r['mode']} | {r['create_s']:.2f} | {r['surface_s']:.2f} | {r['eig_s']:.2f} | {r['held_mib']:.0f} | "
              f"{r['surface_peak_mib']:.0f} | {r['peak_mib']:.0f} | {r['eig']:.6g} |")
    c, s = rows["cache"], rows["stream"]
    print(f"stream ÷ cache: surface time {s['surface_s'] / c['surface_s']:.2f}×, eig time "
          f"{s['eig_s'] / c['eig_s']:.2f}×, peak memory (create + surface) "
          f"{s['surface_peak_mib'] / max(c['surface_peak_mib'], 1e-9):.2f}×; "
          f"λ_max relative difference {abs(s['eig'] - c['eig']) / abs(c['eig']):.1e}")


if __name__ == "__main__":
    main()
