"""The surfaces package: the schema round trip, the config API against the CLI, and no
hidden state (the recorded command, the progress switch, nothing read from argv or the
environment at import)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape import cli, progress
from landscape.errors import LandscapeError
from landscape.problem import Problem
from landscape.scan import PYTHON_API, base_settings, run_scan
from landscape.store import ResultsWriter, open_results, read_attr
from landscape.surfaces import (
    SurfaceConfig,
    SurfaceResult,
    compute_surface,
    random_directions,
    surface_steps,
    write_directions,
)
from tests import models


def small_problem() -> Problem:
    return Problem.create(models.mlp().double(), F.cross_entropy, models.vector_data())


def mlp_args(tmp_path: Path, *extra: str) -> list[str]:
    torch.save(models.mlp().double().state_dict(), tmp_path / "m.pt")
    return [str(tmp_path / "m.pt"), "--model", "tests.models:mlp", "--data", "tests.models:vector_data",
            "--loss", "cross_entropy", "--dtype", "float64", "--no-report", "--quiet", *extra]


# ---------------------------------------------------------------------------- schema
def test_an_in_memory_surface_written_whole_reads_back_with_the_scan_schema(tmp_path):
    problem = small_problem()
    dirs = random_directions(problem.params, 2, seed=5)
    axes = [np.linspace(-1, 1, 3), np.linspace(-0.5, 0.5, 4)]
    result = compute_surface(problem, [d.vectors for d in dirs], axes, show_progress=False)
    with ResultsWriter(tmp_path / "api.h5", {"seed": 5}) as writer:
        write_directions(writer, dirs)
        writer.write_group("surfaces/2d", *result.to_group(["d0", "d1"], {"origin": "checkpoint"}))
        writer.finish()
    # the same surface through the scan steps (created NaN-filled, written point by point)
    config = SurfaceConfig(dims=(2,), points=(3, 4), range=(-1, 1, -0.5, 0.5), seed=5)
    run_scan(problem, tmp_path / "scan.h5", surface_steps(problem, config, show_progress=False), config.settings())
    with open_results(tmp_path / "api.h5") as api, open_results(tmp_path / "scan.h5") as scan:
        a, s = api["surfaces/2d"], scan["surfaces/2d"]
        assert {k: read_attr(v) for k, v in a.attrs.items()} == {k: read_attr(v) for k, v in s.attrs.items()}
        assert sorted(a) == sorted(s) and sorted(a["train"]) == sorted(s["train"])
        back = SurfaceResult.from_group(a)
        np.testing.assert_array_equal(back.values["train"]["loss"], s["train/loss"][()])
        assert back.done.all() and [len(x) for x in back.axes] == [3, 4]


def test_a_surface_needs_one_direction_name_per_axis():
    result = SurfaceResult([np.zeros(2)], {"train": {"loss": np.zeros(2)}}, np.ones(2, dtype=bool))
    with pytest.raises(LandscapeError, match="needs 1 direction"):
        result.to_group(["d0", "d1"])


def test_the_config_api_writes_what_the_surface_command_writes(tmp_path):
    assert cli.main(["surface", *mlp_args(tmp_path, "--dims", "1", "--points", "5", "--seed", "2",
                                          "-o", str(tmp_path / "cli.h5"))]) == 0
    problem = small_problem()
    config = SurfaceConfig(dims=(1,), points=(5,), seed=2)
    run_scan(problem, tmp_path / "api.h5", surface_steps(problem, config, show_progress=False),
             base_settings(problem, {}, **config.settings()))
    with open_results(tmp_path / "cli.h5") as a, open_results(tmp_path / "api.h5") as b:
        np.testing.assert_array_equal(a["surfaces/1d/train/loss"][()], b["surfaces/1d/train/loss"][()])
        for key in config.settings():
            assert read_attr(a.attrs[key]) == read_attr(b.attrs[key]), key


@pytest.mark.parametrize("field, value, message", [("normalization", "row", "filter, layer or none"),
                                                   ("directions", "pca", "random or hessian"),
                                                   ("dims", (3,), "1-D or 2-D"), ("points", (3, 3, 3), "--points")])
def test_the_config_refuses_what_its_types_do_not_allow(field, value, message):
    with pytest.raises(LandscapeError, match=message):
        SurfaceConfig(**{field: value}).check()


# ---------------------------------------------------------------------------- explicit state
def test_the_cli_records_its_command_line_and_the_api_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/some/kernel", "-f", "kernel.json"])  # a notebook's argv
    args = ["surface", *mlp_args(tmp_path, "--dims", "1", "--points", "3", "-o", str(tmp_path / "c.h5"))]
    assert cli.main(args) == 0
    with open_results(tmp_path / "c.h5") as h5:
        assert read_attr(h5.attrs["command"]) == shlex.join(["landscape", *args])
    assert base_settings(small_problem(), {})["command"] == PYTHON_API
    assert base_settings(small_problem(), {}, command="my sweep")["command"] == "my sweep"


def test_the_quiet_switch_is_read_when_a_bar_is_made(monkeypatch):
    monkeypatch.delenv("LANDSCAPE_QUIET", raising=False)
    assert progress.bars_enabled() and not progress.bars_enabled(False)
    monkeypatch.setenv("LANDSCAPE_QUIET", "1")  # after import: still honoured
    assert not progress.bars_enabled()
    monkeypatch.delenv("LANDSCAPE_QUIET")
    with progress.quiet():
        assert not progress.bars_enabled()
        with progress.quiet(False):  # an inner block cannot turn bars back on
            assert not progress.bars_enabled()
    assert progress.bars_enabled()  # restored after the block
    with progress.progress(3, "x") as bar:
        assert not bar.disable


def test_quiet_cli_runs_leave_bars_on_for_the_next_caller(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LANDSCAPE_QUIET", raising=False)
    assert cli.main(["surface", *mlp_args(tmp_path, "--dims", "1", "--points", "3",
                                          "-o", str(tmp_path / "q.h5"))]) == 0
    assert capsys.readouterr().err == ""
    assert progress.bars_enabled()


def test_no_module_of_the_surfaces_package_reads_the_environment_or_argv():
    root = Path(__file__).resolve().parents[1] / "landscape"
    for path in [*(root / "surfaces").glob("*.py"), root / "scan.py", root / "store.py"]:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (sys|fcntl)\b", text, re.M) and "os.environ" not in text, path
        assert len(text.splitlines()) <= 400, path
    assert not (root / "directions.py").exists() and not (root / "surface.py").exists()
