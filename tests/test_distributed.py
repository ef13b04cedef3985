"""Data-parallel runs under ``torchrun``: two gloo ranks on the CPU give the one-process file.

The slow tests start ``python -m torch.distributed.run --standalone --nproc-per-node 2`` in a
subprocess, exactly as a user would, and compare every floating-point dataset and numeric
attribute of its results file with a one-process run of the same command. In float64 the two
differ only by the order of the sums over examples (each rank sums its part, then the parts
are added), about 1e-16 relative per pass; Lanczos, Hutch++ and the sharpness optimizers
carry that through a few dozen products, so 1e-9 relative (1e-12 absolute near zero) is a
bound with a wide margin. Residuals are exempt: they are rounding-level numbers (1e-10 of
the eigenvalue) whose own relative error is large by nature.

The fast tests check the shard arithmetic without starting processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape.distributed import Shard
from landscape.errors import LandscapeError
from landscape.problem.data import Batch
from landscape.problem.splits import shard_split

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "data" / "digits_mlp.pt"
CNN = ROOT / "data" / "digits_cnn.pt"
SKIP_ATTRS = {"command", "created_utc", "data_parallel_ranks", "seconds", "elapsed_s", "wall_seconds"}


# ---------------------------------------------------------------------------- shards (fast)
def _batches(sizes: list[int]) -> list[Batch]:
    start, out = 0, []
    for size in sizes:
        x = torch.arange(start, start + size, dtype=torch.float32)[:, None]
        out.append(Batch(x, torch.zeros(size, dtype=torch.int64), size))
        start += size
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_shards_cover_every_example_once_at_its_position(world: int) -> None:
    sizes = [64, 64, 45, 7]
    batches = _batches(sizes)
    seen: list[float] = []
    for rank in range(world):
        read, global_sizes, positions, head = shard_split(lambda: iter(batches), "train", Shard(rank, world),
                                                          torch.device("cpu"), torch.float32, head_count=2)
        parts = list(read())
        assert global_sizes == sizes
        assert [float(p.inputs[0, 0]) for p in parts] == positions  # inputs hold each example's position
        assert [b.size for b in head] == sizes[:2]  # whole batches, as one process has them
        seen += [float(v) for p in parts for v in p.inputs[:, 0]]
    assert sorted(seen) == list(range(sum(sizes)))


def test_a_rank_left_without_examples_is_refused() -> None:
    batches = _batches([1, 1])
    with pytest.raises(LandscapeError, match="leaves rank 0 of 2 with no example"):
        shard_split(lambda: iter(batches), "test", Shard(1, 2), torch.device("cpu"), torch.float32, head_count=0)


# ---------------------------------------------------------------------------- torchrun (slow)
def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANDSCAPE_QUIET": "1", "OMP_NUM_THREADS": "1"}
    env.pop("LANDSCAPE_DEBUG", None)
    return env


def _torchrun(args: list[str], cwd: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "landscape", *args]


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _compare(one: Path, two: Path) -> int:
    """Assert every float dataset and numeric attribute agree; returns how many were compared."""
    compared = 0
    with h5py.File(one, "r") as a, h5py.File(two, "r") as b:
        assert int(b.attrs["data_parallel_ranks"]) == 2 and int(a.attrs["data_parallel_ranks"]) == 1
        names: list[str] = []
        a.visit(names.append)
        for name in ["", *names]:
            node_a, node_b = (a, b) if name == "" else (a[name], b[name])
            if isinstance(node_a, h5py.Dataset) and node_a.dtype.kind == "f" and "residual" not in name:
                np.testing.assert_allclose(node_b[()], node_a[()], rtol=1e-9, atol=1e-12, err_msg=name)
                compared += 1
            for key, value in node_a.attrs.items():
                if key in SKIP_ATTRS or "residual" in key or "seconds" in key:
                    continue
                if isinstance(value, (float, np.floating)):
                    np.testing.assert_allclose(node_b.attrs[key], value, rtol=1e-9, atol=1e-12,
                                               err_msg=f"{name}@{key}")
                    compared += 1
    return compared


CASES = {
    "mlp-scan-noise-sharpness": ["scan", str(MLP), "--points", "5", "--max-examples", "301", "--eval-batch-size", "64",
                                 "--noise", "--sharpness", "--sharpness-measure", "average",
                                 "--sharpness-measure", "worst_l2", "--sharpness-measure", "epsilon",
                                 "--sharpness-measure", "ray_width"],
    "cnn-bn-recompute-streamed": ["surface", str(CNN), "--dims", "2", "--points", "5", "--bn", "recompute",
                                  "--max-examples", "200", "--eval-batch-size", "50", "--data-mode", "stream"],
    "cnn-hessian-trace-density": ["hessian", str(CNN), "--top", "3", "--trace", "--density", "--max-examples", "150",
                                  "--density-probes", "2", "--density-steps", "20"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_give_the_one_process_results(case: str, tmp_path: Path) -> None:
    args = [*CASES[case], "--dtype", "float64", "--no-report", "--quiet"]
    _run([sys.executable, "-m", "landscape", *args, "-o", "one.h5"], tmp_path)
    done = _run(_torchrun([*args, "-o", "two.h5"], tmp_path), tmp_path)
    assert "landscape: error" not in done.stderr
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.lock"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]  # rank 1 wrote nothing
    assert _compare(tmp_path / "one.h5", tmp_path / "two.h5") > 5


def _rank_pid(rank: int, marker: str) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and marker.encode() in cmdline \
                and b"torch.distributed.run" not in cmdline:
            return int(proc.name)
    return None


def _points_done(partial: Path) -> int:
    try:
        with h5py.File(partial, "r", locking=False) as h5:
            return int(h5["surfaces/2d/done"][()].sum()) if "surfaces/2d/done" in h5 else 0
    except (OSError, KeyError):
        return 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_every_rank_cleanly_and_the_file_resumes(tmp_path: Path) -> None:
    args = ["surface", str(CNN), "--dims", "2", "--points", "21", "--no-report", "--quiet"]
    process = subprocess.Popen(_torchrun([*args, "-o", "killed.h5"], tmp_path), cwd=tmp_path, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        partial = tmp_path / "killed.h5.partial"
        deadline = time.monotonic() + 120
        while _points_done(partial) < 20 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = _rank_pid(1, "killed.h5")
        assert pid is not None and process.poll() is None, "the run ended before a rank could be killed"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = process.communicate(timeout=120)  # never a hang: every rank is gone well within this
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0
    assert time.monotonic() - killed_at < 60
    lines = [line for line in stderr.splitlines() if line.startswith("landscape:")]
    assert lines and all("rank 0 of 2" in line and "--resume" in line for line in lines), stderr[-2000:]
    frames = [line for line in stderr.splitlines() if line.strip().startswith("File ")]
    assert not [f for f in frames if "/landscape/" in f], stderr[-2000:]  # torchrun's own report only
    assert 0 < _points_done(partial) < 21 * 21
    _run([sys.executable, "-m", "landscape", *args, "-o", "killed.h5", "--resume"], tmp_path)
    _run([sys.executable, "-m", "landscape", *args, "-o", "reference.h5"], tmp_path)
    with h5py.File(tmp_path / "killed.h5", "r") as got, h5py.File(tmp_path / "reference.h5", "r") as want:
        for split in ("train", "test"):
            # float32, points computed in other chunks and by other processes: rounding of the sums only
            np.testing.assert_allclose(got[f"surfaces/2d/{split}/loss"][()], want[f"surfaces/2d/{split}/loss"][()],
                                       rtol=1e-5)
