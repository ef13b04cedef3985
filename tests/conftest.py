"""Shared test helpers: the repository on sys.path, a real-subprocess CLI runner, and the
real scan (plain and with markup in it) that the report, export and browser tests read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per worker: with -n 2 on 2 cores, two threads each oversubscribe the
    # machine and small float64 kernels slow down by orders of magnitude
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the CLI subprocesses too

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests.models` and this checkout's `landscape`, however pytest is run
    sys.path.insert(0, str(ROOT))


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["LANDSCAPE_QUIET"] = "1"
    env.pop("LANDSCAPE_DEBUG", None)
    env.update(extra)
    return env


def landscape_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "landscape", *map(str, args)]


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m landscape ARGS`` in a fresh process; returns the completed process."""
    return subprocess.run(landscape_command(*args), cwd=cwd or ROOT, env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


# ---------------------------------------------------------------------------- report fixtures
SCRIPT = "<script>alert(1)</script>"
BOLD = "<b onclick=alert(3)>bold"  # no "/": HDF5 names cannot hold one
IMG = "<img src=x onerror=alert(2)>"


@pytest.fixture(scope="session")
def scan(tmp_path_factory) -> Path:
    """A finished results file of a real small scan (surfaces, curvature, noise); tests only read it."""
    from tests.test_views_samples import write_real_scan

    return write_real_scan(tmp_path_factory.mktemp("scan") / "scan.h5")


@pytest.fixture(scope="session")
def hostile(tmp_path_factory, scan) -> Path:
    """The real scan with markup in a root attribute, a group name, a split, a metric and a label."""
    import h5py
    import numpy as np

    from tests.test_views_samples import copy_without

    path = copy_without(scan, tmp_path_factory.mktemp("hostile") / "hostile.h5", [],
                        {"model_spec": SCRIPT, "data_spec": IMG})
    with h5py.File(path, "a") as f:
        f.move("surfaces/2d", f"surfaces/{BOLD}")
        f.move("surfaces/interpolation/test", f"surfaces/interpolation/{IMG}")
        f["surfaces/interpolation"].attrs["splits"] = np.array(["train", IMG], dtype=h5py.string_dtype())
        f["surfaces/interpolation"].attrs["marker_labels"] = np.array(["init", SCRIPT], dtype=h5py.string_dtype())
        f.create_group(f"{BOLD}-group").attrs[SCRIPT] = IMG
    return path
