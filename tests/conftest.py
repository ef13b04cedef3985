"""Shared test helpers: the repository on sys.path, a real-subprocess CLI runner, and the
real scan (plain and with markup in it) that the report, export and browser tests read, and a
real `landscape compare` file of three checkpoints."""

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


# ---------------------------------------------------------------------------- compare fixtures
# cheap settings: the measures' correctness is tested against closed forms elsewhere; here the
# file, its schema and the numbers' agreement with the same measures computed directly
FAST = ["--measure", "lambda_max", "--measure", "average", "--measure", "worst_l2", "--measure", "ray_width",
        "--samples", "8", "--steps", "3", "--restarts", "1", "--rays", "3", "--ray-points", "9",
        "--max-examples", "256", "--line-points", "5", "--line-extend", "0.25", "--no-report", "--quiet"]


def fine_tuned(seed: int, lr: float) -> torch.nn.Module:
    """The bundled MLP after one epoch of SGD with another data order (close to it, not equal)."""
    import torch.nn.functional as F

    from landscape import zoo

    model = zoo.digits_mlp()
    model.load_state_dict(torch.load("data/digits_mlp.pt", weights_only=True)["state_dict"])
    (x, y), = zoo.digits(batch_size=10_000)["train"]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    order = torch.randperm(len(y), generator=gen)
    for i in range(0, len(y), 64):
        idx = order[i:i + 64]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """The bundled digits MLP and two fine-tuned copies of it, saved as checkpoints."""
    import landscape

    folder = tmp_path_factory.mktemp("compare")
    paths = []
    for k, lr in enumerate((0.05, 0.2)):
        paths.append(landscape.save(folder / f"tuned{k}.pt", fine_tuned(k, lr), model_spec="digits_mlp",
                                    data_spec="digits", loss="cross_entropy", batch_size=64))
    return ["data/digits_mlp.pt", *map(str, paths)]


@pytest.fixture(scope="session")
def compared(checkpoints, tmp_path_factory):
    """A finished `landscape compare` file of the three checkpoints, labels A, B, C."""
    from landscape.cli import main

    out = tmp_path_factory.mktemp("out") / "cmp.h5"
    assert main(["compare", *checkpoints, "--labels", "A,B,C", "-o", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A digits MLP with 4 hidden units saved with built-in specs (loads without --trust)."""
    from landscape import loading
    from landscape.zoo import digits_mlp

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    loading.save(path, digits_mlp(hidden=4), model_spec="digits_mlp", model_kwargs={"hidden": 4},
                 data_spec="digits", loss="cross_entropy")
    return path
