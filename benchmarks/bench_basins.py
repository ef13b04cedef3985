"""Basin statistics of a 201×201 loss grid: one numba union–find pass vs scipy.ndimage.label per threshold.

    python benchmarks/bench_basins.py [--surface synthetic|digits] [--points 201] [--thresholds 100 1000]

Ours: ``basin_statistics`` (stable argsort, one union–find pass over the cells in ascending
order, the origin's component size read off at every threshold, and the elder-rule
persistence pairs, all in the one call). Baseline: for each threshold, ``scipy.ndimage.label``
of {Z ≤ t} (finite cells) and the size of the label at the origin cell: the same areas, no
persistence (scipy has no equivalent). Both run in this process on the same grid, the areas
are checked equal, and each is timed as the best and median of ``--repeats`` calls.

The first call compiles the numba kernel; it is timed apart, into a fresh numba cache folder
(``NUMBA_CACHE_DIR``, set before numba is imported), and a second process then times its first
call loading that cache, which is what a later report pays.

Surfaces: ``synthetic`` (default): a wide bowl with seven Gaussian wells of different depths
and widths (θ* in a shallow one) plus noise of standard deviation 0.01 (seeded): thousands of
small basins; ``digits``: the train loss of the bundled digits MLP on a random
filter-normalized plane, computed by landscape (40,401 forward passes over the train split:
about 2 minutes on a busy 2-core VM).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_basins_numba_")  # before numba is imported

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)
from scipy import ndimage  # noqa: E402

from landscape.sharpness.basins import basin_statistics  # noqa: E402

STRUCTURES = {4: None, 8: np.ones((3, 3), dtype=bool)}  # None: scipy's default cross


def synthetic_surface(points: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    axis = np.linspace(-1.0, 1.0, points)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    z = 0.6 * (a**2 + b**2)
    centres = rng.uniform(-0.8, 0.8, size=(7, 2))
    depths = rng.uniform(0.2, 0.8, 7)
    centres[0], depths[0] = (0.05, -0.03), 0.25  # θ* sits in a shallow well: its basin spills into a deeper one
    for (ca, cb), depth, width in zip(centres, depths, rng.uniform(0.08, 0.25, 7)):
        z -= depth * np.exp(-((a - ca) ** 2 + (b - cb) ** 2) / (2 * width**2))
    z += 0.01 * rng.normal(size=z.shape)
    return z, axis, axis


def digits_surface(points: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from landscape import load_problem
    from landscape.surfaces import compute_surface, random_directions

    problem, _ = load_problem(Path(__file__).resolve().parents[1] / "data" / "digits_mlp.pt")
    directions = [d.vectors for d in random_directions(problem.params, 2, seed=seed)]
    axis = np.linspace(-1.0, 1.0, points)
    surface = compute_surface(problem, directions, [axis, axis], ["train"], show_progress=False)
    return surface.values["train"]["loss"], axis, axis


def scipy_cells(z: np.ndarray, thresholds: np.ndarray, origin: tuple[int, int], connectivity: int) -> np.ndarray:
    finite = np.isfinite(z)
    cells = np.zeros(len(thresholds), dtype=np.int64)
    for k, t in enumerate(thresholds):
        labels, _ = ndimage.label(finite & (z <= t), STRUCTURES[connectivity])
        if labels[origin]:
            cells[k] = np.count_nonzero(labels == labels[origin])
    return cells


def timings(fn, repeats: int) -> tuple[float, float]:
    """Best and median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def first_call_in_new_process() -> float:
    script = ("import time, numpy as np; from landscape.sharpness.basins import basin_statistics; "
              "z = np.random.default_rng(0).random((5, 5)); s = time.perf_counter(); "
              "basin_statistics(z, np.arange(5.0), np.arange(5.0)); print(time.perf_counter() - s)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surface", choices=["synthetic", "digits"], default="synthetic")
    parser.add_argument("--points", type=int, default=201)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[100])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    z, alpha, beta = (synthetic_surface if args.surface == "synthetic" else digits_surface)(args.points, args.seed)
    start = time.perf_counter()
    basin_statistics(z, alpha, beta)
    compile_seconds = time.perf_counter() - start
    cached_seconds = first_call_in_new_process()
    start = time.perf_counter()
    order = np.argsort(z.reshape(-1), kind="stable")
    sort_ms = 1e3 * (time.perf_counter() - start)
    del order

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"numba {numba.__version__}")
    print(f"surface: {args.surface}, {args.points}×{args.points}; first call: {compile_seconds:.2f} s (compile), "
          f"{cached_seconds:.3f} s in a new process (numba cache); argsort alone {sort_ms:.2f} ms")
    print(f"best (median) of {args.repeats} calls")
    print("| connectivity | thresholds | numba: area + persistence ms | scipy.ndimage.label loop: area ms "
          "| ratio (best) | persistence pairs |")
    for connectivity in (4, 8):
        for count in args.thresholds:
            finite = z[np.isfinite(z)]
            thresholds = np.linspace(finite.min(), finite.max(), count)
            stats = basin_statistics(z, alpha, beta, thresholds, connectivity=connectivity)
            reference = scipy_cells(z, thresholds, stats.origin, connectivity)
            assert np.array_equal(stats.cells, reference), "numba and scipy areas differ"
            ours = timings(functools.partial(basin_statistics, z, alpha, beta, thresholds,
                                             connectivity=connectivity), args.repeats)
            theirs = timings(functools.partial(scipy_cells, z, thresholds, stats.origin, connectivity), args.repeats)
            print(f"| {connectivity} | {count} | {1e3 * ours[0]:.2f} ({1e3 * ours[1]:.2f}) | "
                  f"{1e3 * theirs[0]:.1f} ({1e3 * theirs[1]:.1f}) | {theirs[0] / ours[0]:.1f}× | "
                  f"{len(stats.birth)} |")


if __name__ == "__main__":
    main()
