"""Shared test helpers: the repository on sys.path and a real-subprocess CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
