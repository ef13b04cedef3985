"""Shared test helpers: the repository on sys.path and a real-subprocess CLI runner."""

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
