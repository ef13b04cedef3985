"""The results file: groups, directions by name, the lock, and resuming a scan that was
killed with SIGKILL (a real subprocess) without recomputing the points it had finished.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape import cli
from landscape.errors import LandscapeError
from landscape.store import ResultsWriter, open_results, read_attr
from landscape.surfaces import (
    create_surface,
    random_directions,
    read_directions,
    write_directions,
    write_surface_points,
)
from tests import models
from tests.conftest import cli_env, landscape_command, run_cli


# ---------------------------------------------------------------------------- writer basics
def test_groups_are_complete_only_when_written_and_directions_are_stored_by_name(tmp_path):
    params = {n: p.detach() for n, p in models.cnn_bn().named_parameters()}
    dirs = random_directions(params, 2, seed=4)
    out = tmp_path / "r.h5"
    with ResultsWriter(out, {"seed": 4, "note": None, "shape": [2, 3]}) as writer:
        assert not writer.has_group("analysis/x")
        writer.write_group("analysis/x", {"k": 3, "names": ["a", "b"]}, {"values": np.arange(4.0)})
        assert writer.has_group("analysis/x")
        write_directions(writer, dirs)
        back = read_directions(writer, ["d1"], params)[0]
        assert all(torch.equal(back.vectors[n], dirs[1].vectors[n]) for n in params)
        writer.finish()
    assert not Path(f"{out}.partial").exists()
    with open_results(out) as h5:
        assert read_attr(h5.attrs["complete"]) is True and read_attr(h5.attrs["seed"]) == 4
        assert read_attr(h5["analysis/x"].attrs["names"]) == ["a", "b"]
        assert set(h5["directions/d0"]) == set(params)  # one dataset per parameter name
        assert h5["directions/d0/conv1.weight"].shape == (3, 1, 3, 3)
        assert read_attr(h5["directions/d0"].attrs["distribution"]) == "gaussian"


def test_an_existing_result_is_not_overwritten_without_permission(tmp_path):
    out = tmp_path / "r.h5"
    with ResultsWriter(out, {"seed": 1}) as writer:
        writer.finish()
    with pytest.raises(LandscapeError, match="--overwrite"):
        with ResultsWriter(out, {"seed": 1}):
            pass
    with ResultsWriter(out, {"seed": 2}, overwrite=True) as writer:
        writer.finish()
    with open_results(out) as h5:
        assert read_attr(h5.attrs["seed"]) == 2


def test_resume_with_different_settings_is_refused_and_keeps_the_finished_file(tmp_path):
    out = tmp_path / "r.h5"
    with ResultsWriter(out, {"seed": 1}) as writer:
        writer.write_group("a", {}, {"v": np.ones(2)})
        writer.finish()
    with pytest.raises(LandscapeError, match="settings differ"):
        with ResultsWriter(out, {"seed": 2}, resume=True, must_match=["seed"]):
            pass
    # the complete file is still there, still complete, and nothing looks unfinished
    assert out.is_file() and not Path(f"{out}.partial").exists()
    with open_results(out) as h5:
        assert read_attr(h5.attrs["complete"]) is True


def test_a_second_writer_is_refused_while_the_first_holds_the_file(tmp_path):
    out = tmp_path / "r.h5"
    with ResultsWriter(out, {"seed": 1}):
        with pytest.raises(LandscapeError, match="another landscape process"):
            with ResultsWriter(out, {"seed": 1}, overwrite=True):
                pass


def test_a_writer_in_another_thread_is_refused_at_once_and_the_lock_file_goes(tmp_path):
    out = tmp_path / "r.h5"
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with ResultsWriter(out, {"seed": 1}, overwrite=True):
                pass
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    with ResultsWriter(out, {"seed": 1}):
        assert Path(f"{out}.lock").exists()
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()  # refused, not waiting
    assert len(errors) == 1 and isinstance(errors[0], LandscapeError)
    assert str(errors[0]) == (f"'{out}' is being written by another landscape process (lock '{out}.lock'); "
                              "wait for it or choose another -o")
    assert not Path(f"{out}.lock").exists()
    with ResultsWriter(out, {"seed": 1}, overwrite=True) as writer:  # free again
        writer.finish()


def test_views_import_without_fcntl_and_without_a_lock_backend():
    """Reading results (views, info) needs no lock: it works where fcntl does not exist."""
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import landscape.views, landscape.store\n"
            "from landscape.views import write_report\n"
            "assert 'filelock' not in sys.modules, 'reading needs no lock backend'\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_open_results_explains_what_is_wrong(tmp_path):
    with pytest.raises(LandscapeError, match="not found"):
        open_results(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(LandscapeError, match="not an HDF5"):
        open_results(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = 1
    with pytest.raises(LandscapeError, match="not a landscape"):
        open_results(tmp_path / "other.h5")


@pytest.mark.slow
def test_a_second_process_is_refused_while_the_first_holds_the_output(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    torch.save(models.mlp().state_dict(), ckpt)
    out = tmp_path / "r.h5"
    with ResultsWriter(out, {"seed": 0}):  # this process is the first writer
        second = run_cli("surface", ckpt, "--model", "tests.models:mlp", "--data", "tests.models:vector_data",
                         "--loss", "cross_entropy", "--points", "3", "--no-report", "-o", out, "--overwrite",
                         cwd=tmp_path)
        assert Path(f"{out}.partial").exists()  # the first writer's file is untouched
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0 and second.stderr.startswith("landscape: error: ")
    assert "being written by another landscape process" in second.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------- kill and resume
GRID = ["--dims", "2", "--points", "10", "--range", "-1", "1", "--dtype", "float64", "--seed", "3",
        "--data", "tests.models:slow_data", "--loss", "cross_entropy", "--model", "tests.models:recorder",
        "--no-report"]


def _read_done(partial: Path) -> np.ndarray | None:
    """The done mask of the running scan, read without taking HDF5's file lock; None while
    the file is mid-write or not yet there."""
    try:
        with h5py.File(partial, "r", locking=False) as h5:
            return h5["surfaces/2d/done"][()]
    except (OSError, KeyError, RuntimeError):
        return None


def _fingerprints(log: Path) -> set[float]:
    return {float(line) for line in log.read_text().split()} if log.exists() else set()


def _fingerprint(params: dict[str, torch.Tensor]) -> float:
    return float(params["fc1.weight"].double().sum()) + math.pi * float(params["fc2.weight"].double().sum())


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_scan_killed_mid_way_resumes_to_the_uninterrupted_result_without_recomputing(tmp_path, capsys):
    ckpt = tmp_path / "recorder.pt"
    theta = models.recorder().double()
    torch.save(models.recorder().state_dict(), ckpt)
    out, partial = tmp_path / "killed.h5", tmp_path / "killed.h5.partial"
    first_log, resumed_log = tmp_path / "first.log", tmp_path / "resumed.log"

    # 1. a slow scan (30 ms per model call, 100 points × 2 batches, chunks of 64 points: the
    #    second chunk gives a > 2 s window in which some but not all points are stored)
    first = subprocess.Popen(landscape_command("surface", ckpt, *GRID, "-o", out), cwd=tmp_path,
                             env=cli_env(LANDSCAPE_TEST_DELAY="0.03", LANDSCAPE_TEST_LOG=str(first_log)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # 2. kill it hard once some, not all, points are stored
        _wait(lambda: (d := _read_done(partial)) is not None and d.any(), 60, "the first chunk")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    assert not out.exists() and partial.exists()  # nothing complete-looking was left
    done_at_kill = _read_done(partial)
    assert done_at_kill is not None and 0 < done_at_kill.sum() < done_at_kill.size
    assert cli.main(["info", str(out)]) == 2  # points the user at the partial file
    assert "--resume" in capsys.readouterr().err

    # 3. resume: only the points not done at the kill are evaluated
    resumed = run_cli("surface", ckpt, *GRID, "-o", out, "--resume", cwd=tmp_path,
                      LANDSCAPE_TEST_LOG=str(resumed_log))
    assert resumed.returncode == 0, resumed.stderr
    assert out.exists() and not partial.exists()

    with h5py.File(out, "r") as h5:
        surface = h5["surfaces/2d"]
        alpha, beta = surface["alpha"][()], surface["beta"][()]
        d0 = {n: torch.from_numpy(h5[f"directions/d0/{n}"][()]) for n in h5["directions/d0"]}
        d1 = {n: torch.from_numpy(h5[f"directions/d1/{n}"][()]) for n in h5["directions/d1"]}
        assert surface["done"][()].all() and read_attr(h5.attrs["complete"]) is True
        resumed_values = {k: surface[f"train/{k}"][()] for k in ("loss", "accuracy")}

    # map every model call of the resumed run to its grid point (the fingerprint is affine in α, β)
    params = {n: p.detach() for n, p in theta.named_parameters()}
    origin = _fingerprint(params)
    a, b = _fingerprint(d0), _fingerprint(d1)
    expected = origin + alpha[:, None] * a + beta[None, :] * b
    evaluated = np.zeros_like(done_at_kill)
    for fp in _fingerprints(resumed_log) - {origin}:
        i, j = np.unravel_index(np.argmin(abs(expected - fp)), expected.shape)
        assert abs(expected[i, j] - fp) < 1e-9 * max(1.0, abs(fp)), "a call at a point off the grid"
        evaluated[i, j] = True
    np.testing.assert_array_equal(evaluated, ~done_at_kill)  # exactly the unfinished points, once more
    assert _fingerprints(first_log)  # the first run did log its calls

    # 4. the same scan uninterrupted (in-process) gives the same arrays
    reference = tmp_path / "reference.h5"
    assert cli.main(["surface", str(ckpt), *GRID, "-o", str(reference), "--quiet"]) == 0
    with h5py.File(reference, "r") as h5:
        for key, value in resumed_values.items():
            np.testing.assert_array_equal(value, h5[f"surfaces/2d/train/{key}"][()])


def test_resume_after_a_kill_between_two_direction_writes(tmp_path):
    """A scan killed after writing d0 but before d1 must redo the directions, not crash."""
    import torch.nn.functional as F

    from landscape.problem import Problem
    from landscape.scan import run_scan
    from landscape.surfaces import SurfaceSpec, directions_step, surface_step

    problem = Problem.create(models.mlp().double(), F.cross_entropy, models.vector_data())
    make = lambda: random_directions(problem.params, 2, seed=1)  # noqa: E731
    spec = SurfaceSpec("2d", ["d0", "d1"], [np.linspace(-1, 1, 3)] * 2, ["train"])
    out = tmp_path / "r.h5"
    with ResultsWriter(out, {"seed": 1}) as writer:
        write_directions(writer, make()[:1])  # ... and then the process died
    reference = run_scan(problem, tmp_path / "ref.h5", [directions_step(["d0", "d1"], make), surface_step(spec)],
                         {"seed": 1})
    run_scan(problem, out, [directions_step(["d0", "d1"], make), surface_step(spec)], {"seed": 1}, resume=True)
    with h5py.File(out, "r") as a, h5py.File(reference, "r") as b:
        np.testing.assert_array_equal(a["surfaces/2d/train/loss"][()], b["surfaces/2d/train/loss"][()])


@pytest.mark.parametrize("changed", [["--orthogonal"], ["--seed", "2"], ["--normalization", "layer"],
                                     ["--points", "4"], ["--max-examples", "20"]])
def test_resume_refuses_an_option_that_changes_the_result(tmp_path, capsys, changed):
    args = ["surface", str(tmp_path / "ckpt.pt"), "--model", "tests.models:mlp", "--data",
            "tests.models:vector_data", "--loss", "cross_entropy", "--dims", "2", "--points", "3",
            "--seed", "1", "--no-report", "--quiet", "-o", str(tmp_path / "r.h5")]
    torch.save(models.mlp().state_dict(), tmp_path / "ckpt.pt")
    assert cli.main(args) == 0
    with h5py.File(tmp_path / "r.h5", "r") as h5:
        before = h5["surfaces/2d/train/loss"][()]
    capsys.readouterr()
    assert cli.main([*args, *changed, "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    # the finished file is left where it was, complete, with its results
    assert not Path(f"{tmp_path / 'r.h5'}.partial").exists()
    with open_results(tmp_path / "r.h5") as h5:
        assert read_attr(h5.attrs["complete"]) is True
        np.testing.assert_array_equal(h5["surfaces/2d/train/loss"][()], before)


def test_resume_of_a_finished_scan_with_the_same_options_changes_nothing(tmp_path, capsys):
    args = ["surface", str(tmp_path / "ckpt.pt"), "--model", "tests.models:mlp", "--data",
            "tests.models:vector_data", "--loss", "cross_entropy", "--dims", "1", "--points", "3",
            "--no-report", "--quiet", "-o", str(tmp_path / "r.h5")]
    torch.save(models.mlp().state_dict(), tmp_path / "ckpt.pt")
    assert cli.main(args) == 0
    with h5py.File(tmp_path / "r.h5", "r") as h5:
        before = h5["surfaces/1d/train/loss"][()]
    assert cli.main([*args, "--resume"]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "r.h5")]) == 0
    printed = capsys.readouterr().out
    lines = [line.split() for line in printed.splitlines()]
    assert ["complete", "True"] in lines and ["loss", "dataset", "float64", "(3,),", "3/3", "finite,"] in \
        [line[:6] for line in lines]
    with open_results(tmp_path / "r.h5") as h5:
        assert read_attr(h5.attrs["complete"]) is True
        np.testing.assert_array_equal(h5["surfaces/1d/train/loss"][()], before)


def mlp_checkpoint_args(tmp_path: Path) -> list[str]:
    """A saved test MLP and the options every command needs for it, writing r.h5."""
    torch.save(models.mlp().state_dict(), tmp_path / "ckpt.pt")
    return [str(tmp_path / "ckpt.pt"), "--model", "tests.models:mlp", "--data", "tests.models:vector_data",
            "--loss", "cross_entropy", "--no-report", "--quiet", "-o", str(tmp_path / "r.h5")]


def test_resume_adds_other_analyses_to_a_finished_file_and_records_their_settings(tmp_path, capsys):
    common = mlp_checkpoint_args(tmp_path)
    assert cli.main(["hessian", *common, "--top", "2"]) == 0
    with h5py.File(tmp_path / "r.h5", "r") as h5:
        eigenvalues = h5["curvature/hessian_top/eigenvalues"][()]
        assert "normalization" not in h5.attrs
    assert cli.main(["surface", *common, "--dims", "1", "--points", "3", "--resume"]) == 0, capsys.readouterr().err
    with open_results(tmp_path / "r.h5") as h5:
        assert read_attr(h5.attrs["normalization"]) == "filter"  # the new command's settings are recorded
        assert h5["surfaces/1d/done"][()].all()
        np.testing.assert_array_equal(h5["curvature/hessian_top/eigenvalues"][()], eigenvalues)


def test_resume_refuses_to_keep_an_analysis_computed_with_other_settings(tmp_path, capsys):
    common = mlp_checkpoint_args(tmp_path)
    assert cli.main(["hessian", *common, "--top", "3"]) == 0
    assert cli.main(["hessian", *common, "--top", "2", "--resume"]) == 0  # top-3 answers top-2
    capsys.readouterr()
    assert cli.main(["hessian", *common, "--top", "4", "--resume"]) == 2
    assert "k=3 < 4" in capsys.readouterr().err
    assert cli.main(["hessian", *common, "--top", "3", "--split", "test", "--resume"]) == 2
    assert "computed with other settings" in capsys.readouterr().err
    assert cli.main(["noise", *common, "--examples", "16", "--batch-size", "4", "--no-hessian", "--resume"]) == 0
    capsys.readouterr()
    assert cli.main(["noise", *common, "--examples", "16", "--batch-size", "8", "--no-hessian", "--resume"]) == 2
    assert "batch_size=4 there, 8 asked" in capsys.readouterr().err
    with open_results(tmp_path / "r.h5") as h5:  # the finished file is as it was
        assert h5["curvature/hessian_top/eigenvalues"].shape == (3,)
        assert h5["noise"].attrs["batch_size"] == 4


# ---------------------------------------------------------------------------- failed runs
@pytest.mark.parametrize("finished", [False, True])
def test_a_failed_run_keeps_its_partial_only_when_it_holds_finished_work(tmp_path, finished):
    """An unfinished file with no finished point would only block the corrected rerun."""
    out = tmp_path / "r.h5"
    with pytest.raises(LandscapeError, match="bad option found late"):
        with ResultsWriter(out, {"seed": 0}) as writer:
            create_surface(writer, "1d", [np.linspace(-1, 1, 3)], ["alpha"], ["d0"], ["train"], ["loss"], {})
            if finished:
                write_surface_points(writer, "1d", np.array([1]), {"train": {"loss": np.array([0.5])}})
            raise LandscapeError("bad option found late")
    assert Path(f"{out}.partial").exists() == finished and not out.exists()
    assert not Path(f"{out}.lock").exists()
    if finished:
        with h5py.File(f"{out}.partial", "r") as h5:
            assert h5["surfaces/1d/train/loss"][1] == 0.5 and h5["surfaces/1d/done"][()].tolist() == [0, 1, 0]
