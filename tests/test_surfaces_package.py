"""No hidden state: the recorded command, the progress switch, nothing read from argv or the
environment at import."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from landscape import cli, progress
from landscape.problem import Problem
from landscape.scan import PYTHON_API, base_settings
from landscape.store import open_results, read_attr
from tests import models


def small_problem() -> Problem:
    return Problem.create(models.mlp().double(), F.cross_entropy, models.vector_data())


def mlp_args(tmp_path: Path, *extra: str) -> list[str]:
    torch.save(models.mlp().double().state_dict(), tmp_path / "m.pt")
    return [str(tmp_path / "m.pt"), "--model", "tests.models:mlp", "--data", "tests.models:vector_data",
            "--loss", "cross_entropy", "--dtype", "float64", "--no-report", "--quiet", *extra]


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
