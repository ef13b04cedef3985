"""Basin statistics against independent references: a breadth-first flood fill and
``scipy.ndimage.label`` per threshold for θ*'s component, a relabel-every-level reference for
the persistence pairs, and closed forms (one bowl, two bowls with a known saddle)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections import deque

import h5py
import numpy as np
import pytest
from scipy import ndimage

from landscape import LandscapeError
from landscape.sharpness.basins import ascending_cells, basin_statistics, basins_of_surface
from landscape.store import ResultsWriter
from landscape.surfaces.results import SurfaceResult
from landscape.views import load_report
from tests.conftest import ROOT

STEPS = {4: [(-1, 0), (1, 0), (0, -1), (0, 1)],
         8: [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]}
STRUCTURE = {4: None, 8: np.ones((3, 3), dtype=bool)}  # None: scipy's default cross = 4-connectivity


def random_grid(seed: int, shape: tuple[int, int], holes: float = 0.1, ties: bool = False) -> np.ndarray:
    """Smooth-ish random values (so basins are larger than one cell) with NaN and ±inf walls."""
    rng = np.random.default_rng(seed)
    grid = ndimage.uniform_filter(rng.normal(size=shape), size=2) + 0.3 * rng.normal(size=shape)
    if ties:  # a few levels only: plateaus and equal minima
        grid = np.round(grid * 3)
    walls = rng.random(shape) < holes
    grid[walls] = rng.choice([np.nan, np.inf, -np.inf], size=int(walls.sum()))
    return grid


def axes(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.linspace(-1.0, 1.0, shape[0]), np.linspace(-0.5, 0.7, shape[1])


def flood_fill_cells(grid: np.ndarray, origin: tuple[int, int], level: float, connectivity: int) -> int:
    """Breadth-first search from the origin through finite cells with value ≤ level."""
    inside = np.isfinite(grid) & (grid <= level)
    if not inside[origin]:
        return 0
    seen, queue = {origin}, deque([origin])
    while queue:
        i, j = queue.popleft()
        for di, dj in STEPS[connectivity]:
            n = (i + di, j + dj)
            if 0 <= n[0] < grid.shape[0] and 0 <= n[1] < grid.shape[1] and inside[n] and n not in seen:
                seen.add(n)
                queue.append(n)
    return len(seen)


def relabel_persistence(grid: np.ndarray, connectivity: int) -> list[tuple[float, float, int]]:
    """(birth, death, flat index of the minimum) of every basin, relabelling the sublevel set
    at each distinct value: a component of level k that holds several components of level
    k−1 keeps the one whose minimum comes first (lowest value, then lowest flat index: the
    order of a stable sort) and the others die at this level. Components alive at the
    highest level die at +inf."""
    finite = np.isfinite(grid)
    flat = grid.reshape(-1)
    previous: dict[int, int] = {}  # label at level k−1 → flat index of its minimum
    previous_labels = np.zeros(grid.shape, dtype=int)
    pairs = []
    for level in np.unique(grid[finite]):
        labels, count = ndimage.label(finite & (grid <= level), STRUCTURE[connectivity])
        current = {}
        for label in range(1, count + 1):
            members = np.flatnonzero(labels.reshape(-1) == label)
            minimum = min(members, key=lambda c: (flat[c], c))
            current[label] = minimum
            older = {previous[p] for p in np.unique(previous_labels[labels == label]) if p}
            survivor = min(older, key=lambda c: (flat[c], c)) if older else minimum
            pairs += [(float(flat[c]), float(level), int(c)) for c in older if c != survivor]
        previous, previous_labels = current, labels
    return sorted(pairs + [(float(flat[c]), np.inf, int(c)) for c in previous.values()])


CASES = [(seed, shape, connectivity) for seed, shape in enumerate([(7, 9), (12, 10), (15, 15), (2, 11), (20, 6)])
         for connectivity in (4, 8)]


@pytest.mark.parametrize("seed,shape,connectivity", CASES)
def test_origin_component_equals_flood_fill_and_scipy_label(seed, shape, connectivity):
    grid = random_grid(seed, shape)
    rng = np.random.default_rng(100 + seed)
    origin = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
    finite = grid[np.isfinite(grid)]
    # levels between, at and beyond the values: ties with cell values test the "≤" side
    levels = np.concatenate([np.linspace(finite.min() - 1, finite.max() + 1, 25), rng.choice(finite, 10)])
    stats = basin_statistics(grid, *axes(shape), levels, origin=origin, connectivity=connectivity)
    np.testing.assert_array_equal(stats.thresholds, np.sort(levels))
    expected = [flood_fill_cells(grid, origin, t, connectivity) for t in stats.thresholds]
    np.testing.assert_array_equal(stats.cells, expected)
    for t, cells in zip(stats.thresholds, stats.cells):
        labels, _ = ndimage.label(np.isfinite(grid) & (grid <= t), STRUCTURE[connectivity])
        assert cells == (np.count_nonzero(labels == labels[origin]) if labels[origin] else 0)
    alpha, beta = axes(shape)
    cell_area = (alpha[1] - alpha[0]) * (beta[1] - beta[0])
    np.testing.assert_allclose(stats.area, stats.cells * cell_area, rtol=1e-12)  # linspace spacing round-off


@pytest.mark.parametrize("seed,shape,connectivity", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_persistence_pairs_equal_the_relabelling_reference(seed, shape, connectivity, ties):
    grid = random_grid(seed, shape, ties=ties)
    stats = basin_statistics(grid, *axes(shape), connectivity=connectivity)
    minima = stats.birth_cell[:, 0] * shape[1] + stats.birth_cell[:, 1]
    found = sorted(zip(stats.birth.tolist(), stats.death.tolist(), minima.tolist()))
    assert found == relabel_persistence(grid, connectivity)  # exact: the same cell values
    order = np.lexsort((minima, stats.birth))
    assert (order == np.arange(len(order))).all() and stats.death[0] == np.inf  # by birth: the global minimum first
    assert stats.birth[0] == np.nanmin(np.where(np.isfinite(grid), grid, np.nan))
    saddles = stats.death_cell[np.isfinite(stats.death)]
    np.testing.assert_array_equal(grid[saddles[:, 0], saddles[:, 1]], stats.death[np.isfinite(stats.death)])
    assert (stats.death_cell[~np.isfinite(stats.death)] == -1).all()
    if not ties:  # one cell per level: the saddle is the unique cell at the death level next to both basins
        for (i, j), d in zip(saddles, stats.death[np.isfinite(stats.death)]):
            assert np.count_nonzero(grid == d) == 1 and grid[i, j] == d


def test_a_bowl_is_one_basin_whose_area_counts_the_disc():
    alpha = beta = np.linspace(-1, 1, 21)
    grid = np.add.outer(alpha**2, beta**2)
    stats = basin_statistics(grid, alpha, beta, np.array([0.0, 0.05, 0.3, 1.0, 2.0]))
    assert stats.origin == (10, 10) and stats.origin_value == 0.0 and stats.origin_basin == 0
    assert stats.birth.tolist() == [0.0] and stats.death.tolist() == [np.inf]
    assert stats.birth_cell.tolist() == [[10, 10]] and stats.death_cell.tolist() == [[-1, -1]]
    # the lattice points of a centred disc form one 4-connected set: every cell below t counts
    np.testing.assert_array_equal(stats.cells, [(grid <= t).sum() for t in stats.thresholds])
    # every cell stands for a 0.1 × 0.1 square, the edge cells' squares reaching past ±1
    np.testing.assert_allclose(stats.area[-1], 21 * 21 * 0.01, rtol=1e-12)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_two_bowls_merge_at_the_saddle_height(connectivity):
    """Z = min((α−1)² + β², (α+1)² + β² + ½): the bowls meet on the line α = −⅛, lowest at
    β = 0 with Z = (9/8)²; every path between them crosses that grid column (spacing ⅛), so
    the barrier on the grid is exactly (9/8)² = 1.265625 (exact in binary floating point)."""
    alpha = beta = np.linspace(-2, 2, 33)
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    grid = np.minimum((a - 1) ** 2 + b**2, (a + 1) ** 2 + b**2 + 0.5)
    stats = basin_statistics(grid, alpha, beta, connectivity=connectivity)
    assert stats.birth.tolist() == [0.0, 0.5] and stats.death.tolist() == [np.inf, 1.265625]
    assert stats.birth_cell.tolist() == [[24, 16], [8, 16]] and stats.death_cell[1].tolist() == [15, 16]
    assert stats.persistence[1] == 1.265625 - 0.5
    # θ* = (0, 0) is on the deep bowl's side (Z = 1 < 1.5): its basin is the global minimum's,
    # which holds the shallow bowl too only once the threshold passes the saddle
    assert stats.origin == (16, 16) and stats.origin_basin == 0
    below = basin_statistics(grid, alpha, beta, [1.265625 - 1e-9, 1.265625], connectivity=connectivity)
    assert below.cells.tolist() == [((grid <= 1.265625 - 1e-9) & (a > -0.125)).sum(), (grid <= 1.265625).sum()]


def test_walls_split_the_grid_into_parts_that_never_merge():
    grid = np.random.default_rng(0).random((6, 8))
    grid[:, 3] = np.nan
    left, right = grid[:, :3].min(), grid[:, 4:].min()
    for origin, cells in (((2, 1), 6 * 3), ((2, 6), 6 * 4)):
        stats = basin_statistics(grid, *axes((6, 8)), origin=origin)
        assert sorted(stats.birth[np.isinf(stats.death)]) == sorted([left, right])
        assert stats.cells[-1] == cells  # at the highest level: its whole side, never through the wall


def test_an_origin_that_is_not_finite_has_no_basin():
    grid = np.arange(16.0).reshape(4, 4)
    grid[1, 2] = np.nan
    stats = basin_statistics(grid, np.arange(4.0), np.arange(4.0), origin=(1, 2))
    assert (stats.cells == 0).all() and stats.origin_basin == -1 and np.isnan(stats.origin_value)


@pytest.mark.parametrize("values,alpha,beta,kwargs,message", [
    (np.zeros(5), np.arange(5.0), np.arange(1.0), {}, "need a 2-D grid"),
    (np.zeros((1, 5)), np.arange(1.0), np.arange(5.0), {}, "at least a 2×2 grid"),
    (np.zeros((3, 4)), np.arange(4.0), np.arange(4.0), {}, "axis alpha has shape"),
    (np.zeros((3, 4)), np.arange(3.0), np.zeros(4), {}, "strictly monotonic"),
    (np.full((3, 4), np.nan), np.arange(3.0), np.arange(4.0), {}, "at least one finite value"),
    (np.zeros((3, 4)), np.arange(3.0), np.arange(4.0), {"connectivity": 6}, "must be 4 or 8"),
    (np.zeros((3, 4)), np.arange(3.0), np.arange(4.0), {"origin": (3, 0)}, "outside the 3×4 grid"),
    (np.zeros((3, 4)), np.arange(3.0), np.arange(4.0), {"thresholds": [0.0, np.nan]}, "finite loss levels"),
])
def test_bad_input_is_one_line_error(values, alpha, beta, kwargs, message):
    with pytest.raises(LandscapeError, match=message) as info:
        basin_statistics(values, alpha, beta, **kwargs)
    assert "\n" not in str(info.value)


def test_basins_of_a_stored_surface(tmp_path):
    alpha, beta = np.linspace(-1, 1, 9), np.linspace(-2, 2, 13)
    loss = np.add.outer(alpha**2, beta**2)
    loss[0, 0] = np.nan  # not done
    result = SurfaceResult([alpha, beta], {"train": {"loss": loss}, "test": {"loss": loss + 1}},
                           np.isfinite(loss))
    with ResultsWriter(tmp_path / "s.h5", {"seed": 0}) as writer:
        writer.write_group("surfaces/2d", *result.to_group(["d0", "d1"]))
        writer.finish()
    with h5py.File(tmp_path / "s.h5") as f:
        stats = basins_of_surface(f["surfaces/2d"], split="test")
        expected = basin_statistics(loss + 1, alpha, beta)
        np.testing.assert_array_equal(stats.cells, expected.cells)
        assert stats.origin == (4, 6) and stats.origin_value == 1.0
        with pytest.raises(LandscapeError, match="no train/accuracy grid"):
            basins_of_surface(f["surfaces/2d"], metric="accuracy")


def test_no_writable_cache_folder_compiles_per_process(tmp_path):
    """numba looks for its cache folder when the module is imported and raises RuntimeError
    when none is writable; the module must then still import and compute. Permissions do not
    bind root, so the folders are blocked by regular files standing where they should be."""
    copy = tmp_path / "installed"
    shutil.copytree(ROOT / "landscape", copy / "landscape", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "landscape" / "sharpness" / "__pycache__").write_text("a file, not a folder")
    (tmp_path / "home-cache").write_text("a file, not a folder")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(copy), XDG_CACHE_HOME=str(tmp_path / "home-cache"), PYTHONDONTWRITEBYTECODE="1")
    script = textwrap.dedent("""
        import numba, numpy as np, pathlib, sys
        probe = pathlib.Path("landscape/sharpness/probe.py")
        probe.write_text("import numba\\n@numba.njit(cache=True)\\ndef f(x):\\n    return x\\n")
        sys.path.insert(0, str(probe.parent))
        try:
            import probe  # the environment really leaves numba no cache folder
            raise SystemExit("a cache folder was found")
        except RuntimeError as e:
            assert "no locator available" in str(e), e
        from landscape.sharpness.basins import basin_statistics
        grid = np.add.outer(np.arange(-2.0, 3.0) ** 2, np.arange(-2.0, 3.0) ** 2)
        print(basin_statistics(grid, np.arange(5.0), np.arange(5.0), [1.0], origin=(2, 2)).cells[0])
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"  # the centre and its four neighbours have value ≤ 1


def test_ascending_cells_is_numpys_stable_argsort_of_the_finite_values():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(0, 300))
        scale = 10.0 ** rng.integers(-300, 300)  # exponents vary: every digit of the key matters somewhere
        values = [rng.normal(size=n) * scale, np.round(rng.normal(size=n) * 2), rng.normal(size=n)][_ % 3]
        special = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1.0], size=n)
        values = np.where(rng.random(n) < 0.3, special, values)
        order = np.argsort(values, kind="stable")
        np.testing.assert_array_equal(ascending_cells(values), order[np.isfinite(values[order])])


def write_surfaces(path, surfaces: dict[str, dict[str, dict[str, np.ndarray]]], alpha, beta):
    with ResultsWriter(path, {"seed": 0}) as writer:
        for name, values in surfaces.items():
            grid = next(iter(next(iter(values.values())).values()))
            result = SurfaceResult([alpha, beta], values, np.isfinite(grid))
            writer.write_group(f"surfaces/{name}", *result.to_group(["d0", "d1"]))
        return writer.finish()


def test_report_draws_the_basin_of_theta_and_its_barrier(tmp_path):
    """θ* = (0, 0) lies in the shallow bowl of Z = min((α−½)² + β², (α+3/2)² + β² − ½), which
    spills into the deep one over the grid column α = −3/8 at Z = (7/8)² (as in the two-bowls
    test: every path crosses that column, lowest at β = 0): the barrier above L(θ*) = ¼ is
    (7/8)² − ¼ = 0.515625, exact in binary."""
    alpha, beta = np.linspace(-2.5, 1.5, 33), np.linspace(-2, 2, 33)
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    bowls = np.minimum((a - 0.5) ** 2 + b**2, (a + 1.5) ** 2 + b**2 - 0.5)
    path = write_surfaces(tmp_path / "s.h5", {"2d": {"train": {"loss": bowls, "accuracy": -bowls}},
                                              "blank": {"train": {"loss": np.full(bowls.shape, np.nan)}},
                                              "scores": {"test": {"accuracy": bowls}}}, alpha, beta)
    report = load_report(path)
    assert {k for k in report.figures if k.startswith("basins/")} == {"basins/2d/area", "basins/2d/persistence"}
    assert [(s.what, "at least one finite value" in s.reason) for s in report.skipped] == [
        ("surfaces/blank (basins)", True)]  # nothing computed yet: said, not fatal; accuracy alone: no basin
    area = report.figures["basins/2d/area"]
    assert area.data[0].x[0] == 0.0 and area.layout.shapes[0].x0 == 0.515625
    diagram = report.figures["basins/2d/persistence"]
    by_name = {t.name: t for t in diagram.data if t.name}
    assert by_name["merges into a deeper basin"].x == (0.0,) and by_name["merges into a deeper basin"].y == (0.765625,)
    assert by_name["never merges"].x == (-0.5,) and by_name["θ*'s basin"].x == (0.0,)
    with h5py.File(path) as f:
        stats = basins_of_surface(f["surfaces/2d"])
    assert stats.death[stats.origin_basin] - stats.origin_value == 0.515625
