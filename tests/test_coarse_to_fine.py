"""Surfaces are evaluated coarse to fine (landscape.surfaces.refine) and ``--time-budget``
stops a run after the chunk in flight: the order is a permutation with every level complete
before the next starts, the values are those of grid order, a stopped run resumes to the
uninterrupted grid, and the report draws the finest complete level of a partial grid.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape import cli, scan
from landscape.options import duration
from landscape.problem import Problem
from landscape.store import ResultsWriter
from landscape.surfaces import compute_surface, evaluate_points, random_directions
from landscape.surfaces.refine import axis_levels, coarse_to_fine, grid_levels, level_subgrid, refinement
from landscape.views.panels import FigureItem
from landscape.views.surface_panels import surfaces_2d_panel
from tests import models
from tests.conftest import cli_env, landscape_command, run_cli

# float64 throughout: the same point evaluated in another chunk differs at most by summation
# order inside batched kernels, ~1e-16 relative; 1e-12 leaves room and still catches any
# point evaluated at the wrong coefficients (those differ at ~1e-3 and more)
RTOL = 1e-12


# ---------------------------------------------------------------------------- the order
@pytest.mark.parametrize("shape", [(2,), (3,), (4,), (51,), (2, 2), (3, 2), (21, 21), (51, 4), (8, 13)])
def test_the_order_is_a_permutation_and_each_level_is_a_complete_subgrid_before_the_next(shape):
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    levels = grid_levels(axes)
    order = coarse_to_fine(axes)
    np.testing.assert_array_equal(np.sort(order), np.arange(levels.size))
    in_order = levels.reshape(-1)[order]
    assert (np.diff(in_order) >= 0).all(), "a point of a finer level came before a coarser one"
    assert set(np.unique(levels)) == set(range(levels.max() + 1)), "no level is empty"
    for level in range(levels.max() + 1):
        sub = level_subgrid(levels, level)
        count = int((levels <= level).sum())
        assert np.prod([len(i) for i in sub]) == count, "levels ≤ l are a product subgrid"
        # the first `count` points of the order are exactly that subgrid
        np.testing.assert_array_equal(np.sort(order[:count]),
                                      np.sort(np.ravel_multi_index(np.ix_(*sub), levels.shape).reshape(-1)))
        for n, indices in zip(shape, sub):
            assert indices[0] == 0 and indices[-1] == n - 1  # both ends in every level
            if n % 2:
                assert (n - 1) // 2 in indices  # the origin of a symmetric odd axis (θ*)
            gaps = np.diff(indices)
            if level > 0 and len(indices) > 3:
                assert gaps.max() - gaps.min() <= 1, "a level is a nearly even subgrid"


def test_levels_of_the_default_axis_and_anchored_markers():
    levels = axis_levels(np.linspace(-1, 1, 51), [0.0])
    assert [np.flatnonzero(levels <= k).tolist() for k in (0, 2)] == [[0, 25, 50], [0, 12, 25, 38, 50]]
    assert [len(np.flatnonzero(levels <= k)) for k in range(int(levels.max()) + 1)] == [3, 3, 5, 9, 17, 33, 51]
    # checkpoints on the grid are level 0 (interpolation: -0.5 .. 1.5, markers at 0 and 1)
    line = np.linspace(-0.5, 1.5, 9)
    assert np.flatnonzero(grid_levels([line], [(0.0,), (1.0,)]) == 0).tolist() == [0, 2, 6, 8]
    assert np.flatnonzero(axis_levels(line, [0.3]) == 0).tolist() == [0, 8]  # off the grid: ignored


def test_refinement_of_a_partly_done_grid():
    axes = [np.linspace(-1, 1, 21)] * 2
    order = coarse_to_fine(axes)
    done = np.zeros(441, dtype=bool)
    assert refinement(axes, done.reshape(21, 21)).level == -1
    levels = grid_levels(axes).reshape(-1)
    done[order[:int((levels <= 1).sum()) + 3]] = True  # level 1 and three points of level 2
    found = refinement(axes, done.reshape(21, 21))
    assert found.level == 1 and found.shape == (5, 5) and found.describe() == "level 1 of 4 (5×5 points)"


# ---------------------------------------------------------------------------- the values
def test_coarse_to_fine_values_equal_grid_order_values():
    problem = Problem.create(models.mlp().double(), F.cross_entropy, models.vector_data())
    directions = [d.vectors for d in random_directions(problem.params, 2, seed=5)]
    axes = [np.linspace(-1, 1, 7), np.linspace(-0.5, 1.5, 6)]
    result = compute_surface(problem, directions, axes, show_progress=False)
    grid_order = {split: np.full(42, np.nan) for split in problem.split_names}
    for indices, chunk in evaluate_points(problem, problem.params, directions, axes, problem.split_names,
                                          np.arange(42), show_progress=False):
        for split in problem.split_names:
            grid_order[split][indices] = chunk[split]["loss"]
    for split in problem.split_names:
        np.testing.assert_allclose(result.values[split]["loss"].reshape(-1), grid_order[split], rtol=RTOL, atol=0)


# ---------------------------------------------------------------------------- --time-budget
@pytest.mark.parametrize("text, seconds", [("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), (" 2s ", 2.0)])
def test_durations_parse(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "10x", "-5s", "0s", "1h30m", "", "s", "1e3s", "ten m", "5 m"])
def test_bad_durations_are_one_line_errors_and_write_nothing(tmp_path, capsys, text):
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)
    torch.save(models.mlp().state_dict(), tmp_path / "ckpt.pt")
    out = tmp_path / "r.h5"
    code = cli.main(["surface", str(tmp_path / "ckpt.pt"), "--model", "tests.models:mlp", "--data",
                     "tests.models:vector_data", "--loss", "cross_entropy", "--time-budget", text, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--time-budget" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def _surface_args(tmp_path: Path) -> list[str]:
    torch.save(models.mlp().state_dict(), tmp_path / "ckpt.pt")
    return ["surface", str(tmp_path / "ckpt.pt"), "--model", "tests.models:mlp", "--data", "tests.models:vector_data",
            "--loss", "cross_entropy", "--dtype", "float64", "--dims", "2", "--points", "13", "--seed", "2",
            "--quiet", "--no-report"]


def test_a_budgeted_run_keeps_a_resumable_partial_whose_report_shows_the_coarse_grid(tmp_path, capsys, monkeypatch):
    args, out = _surface_args(tmp_path), tmp_path / "r.h5"
    ticks = itertools.count()
    # a clock that advances 1 s per reading: started (0), before the directions (1), before the
    # surface (2), after its first chunk (3): a 3 s budget stops after exactly one chunk
    monkeypatch.setattr(scan, "now", lambda: float(next(ticks)))
    assert cli.main([*args, "-o", str(out), "--time-budget", "3s"]) == 0  # 169 points, chunks of ≤ 64
    printed = capsys.readouterr().out
    partial = Path(f"{out}.partial")
    assert partial.exists() and not out.exists()
    with h5py.File(partial, "r") as h5:
        done = h5["surfaces/2d/done"][()]
        assert not bool(h5["surfaces/2d"].attrs["complete"])
    axes = [np.linspace(-1, 1, 13)] * 2
    stored = int(done.sum())
    assert 0 < stored < 169
    np.testing.assert_array_equal(np.flatnonzero(done), np.sort(coarse_to_fine(axes)[:stored]))  # a prefix
    found = refinement(axes, done)
    budget_lines = [line for line in printed.splitlines() if line.startswith("time budget")]
    assert budget_lines == [f"time budget of 3 s spent: surfaces/2d has {stored} of 169 points (finest complete "
                            f"level: {found.describe()}); the remaining work runs with --resume into {partial}"]
    with h5py.File(partial, "r") as h5:  # the report's panel (the whole report: the slow test below)
        figures = surfaces_2d_panel(h5)
    assert figures and all(isinstance(item, FigureItem) for item in figures)
    for item in figures:
        assert item.caption.startswith(f"{stored} of 169 grid points computed; shown: the finest complete level, "
                                       f"{found.describe()}")
        trace = item.figure.data[0]
        assert np.asarray(trace.z).shape[::-1] == found.shape or np.asarray(trace.z).shape == found.shape
        assert not np.isnan(np.asarray(trace.z, dtype=float)).any()  # no holes
    monkeypatch.undo()

    assert cli.main([*args, "-o", str(out), "--resume", "--no-report"]) == 0
    assert cli.main([*args, "-o", str(tmp_path / "ref.h5"), "--no-report"]) == 0
    with h5py.File(out, "r") as resumed, h5py.File(tmp_path / "ref.h5", "r") as reference:
        assert resumed["surfaces/2d/done"][()].all()
        for split in ("train", "test"):
            np.testing.assert_allclose(resumed[f"surfaces/2d/{split}/loss"][()],
                                       reference[f"surfaces/2d/{split}/loss"][()], rtol=RTOL, atol=0)


def test_run_scan_starts_no_step_once_the_budget_is_spent_and_keeps_the_partial(tmp_path, monkeypatch):
    problem = Problem.create(models.mlp().double(), F.cross_entropy, models.vector_data())
    ran: list[str] = []

    def step(name: str) -> scan.ScanStep:
        def run(_problem: Problem, writer: ResultsWriter) -> None:
            if not writer.has_group(name):  # as every step does: skip what the file holds
                ran.append(name)
                writer.write_group(name, {}, {})
        return scan.ScanStep(name, run)

    steps = [step("a"), step("b")]
    ticks = itertools.count()
    monkeypatch.setattr(scan, "now", lambda: float(next(ticks)))
    budget = scan.TimeBudget.start(2.0)  # 0; before a: 1; before b: 2, spent
    path = scan.run_scan(problem, tmp_path / "r.h5", steps, {"seed": 0}, budget=budget)
    assert ran == ["a"] and path == tmp_path / "r.h5.partial" and path.exists()
    with h5py.File(path, "r") as h5:
        assert "a" in h5 and "b" not in h5 and not bool(h5.attrs["complete"])
    path = scan.run_scan(problem, tmp_path / "r.h5", steps, {"seed": 0}, resume=True)  # b, then the file
    assert ran == ["a", "b"] and path == tmp_path / "r.h5" and not (tmp_path / "r.h5.partial").exists()


@pytest.mark.slow
def test_the_budget_clock_counts_the_whole_scan_and_later_steps_wait_for_resume(tmp_path, capsys, monkeypatch):
    """A budget spent during the surfaces leaves curvature for --resume; one spent before a
    step that cannot stop part-way starts it never."""
    torch.save(models.mlp().state_dict(), tmp_path / "ckpt.pt")
    args = ["scan", str(tmp_path / "ckpt.pt"), "--model", "tests.models:mlp", "--data", "tests.models:vector_data",
            "--loss", "cross_entropy", "--points", "5", "--quiet", "--no-report", "-o", str(tmp_path / "r.h5")]
    ticks = itertools.count()
    # started 0, directions 1, 1d 2, 2d 3 (25 points: one chunk), curvature 4 ≥ 4: stop before it
    monkeypatch.setattr(scan, "now", lambda: float(next(ticks)))
    assert cli.main([*args, "--time-budget", "4s"]) == 0
    assert "every surface is done" in capsys.readouterr().out
    with h5py.File(tmp_path / "r.h5.partial", "r") as h5:
        assert h5["surfaces/2d/done"][()].all() and "curvature" not in h5
    monkeypatch.undo()
    assert cli.main([*args, "--resume"]) == 0
    with h5py.File(tmp_path / "r.h5", "r") as h5:
        assert "curvature/hessian_top" in h5


@pytest.mark.slow
def test_a_real_time_budget_stops_a_slow_scan_and_resume_finishes_it(tmp_path):
    """A real process and a real clock: 30 ms per model call, 100 points; whatever the load,
    the points stored are a prefix of the coarse-to-fine order and --resume completes them."""
    torch.save(models.recorder().state_dict(), tmp_path / "recorder.pt")
    grid = ["--dims", "2", "--points", "10", "--dtype", "float64", "--seed", "3", "--data", "tests.models:slow_data",
            "--loss", "cross_entropy", "--model", "tests.models:recorder"]
    out = tmp_path / "r.h5"
    first = subprocess.run(landscape_command("surface", tmp_path / "recorder.pt", *grid, "-o", out,
                                             "--time-budget", "2s"),
                           cwd=tmp_path, env=cli_env(LANDSCAPE_TEST_DELAY="0.03"), capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr and Path(f"{out}.partial").exists() and not out.exists()
    assert sum(line.startswith("time budget of 2 s spent") for line in first.stdout.splitlines()) == 1
    with h5py.File(f"{out}.partial", "r") as h5:  # under heavy load the budget may end before the surface
        done = h5["surfaces/2d/done"][()] if "surfaces/2d" in h5 else np.zeros((10, 10), dtype=bool)
    order = coarse_to_fine([np.linspace(-1, 1, 10)] * 2)
    np.testing.assert_array_equal(np.flatnonzero(done), np.sort(order[:int(done.sum())]))
    found = refinement([np.linspace(-1, 1, 10)] * 2, done)
    if found.level >= 0:  # the report of the partial file, where the finished one's goes
        assert f"shown: the finest complete level, {found.describe()}" in (tmp_path / "r.html").read_text()
    resumed = run_cli("surface", tmp_path / "recorder.pt", *grid, "-o", out, "--resume", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with h5py.File(out, "r") as h5:
        assert h5["surfaces/2d/done"][()].all() and np.isfinite(h5["surfaces/2d/train/loss"][()]).all()
