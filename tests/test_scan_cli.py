"""`landscape scan`: the default analyses in one file and the headline it prints."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from landscape import cli
from tests import models


def test_scan_prints_the_numbers_it_stored(tmp_path, capsys):
    torch.save(models.mlp().state_dict(), tmp_path / "m.pt")
    out = tmp_path / "s.h5"
    assert cli.main(["scan", str(tmp_path / "m.pt"), "--model", "tests.models:mlp", "--data",
                     "tests.models:vector_data", "--loss", "cross_entropy", "--points", "3",
                     "--quiet", "--no-report", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    with h5py.File(out, "r") as h5:
        assert h5["surfaces/1d/done"][()].all() and h5["surfaces/2d/done"][()].all()
        eigenvalues = h5["curvature/hessian_top/eigenvalues"][()]
        assert len(eigenvalues) == 5 and np.all(np.diff(eigenvalues) <= 0)
        train_loss = h5["surfaces/1d/train/loss"][1]  # alpha = 0
        trace = h5["curvature/trace"].attrs["estimate"]
    assert f"train loss at the checkpoint: {train_loss:.6g}" in printed
    assert "top Hessian eigenvalues: " + ", ".join(f"{v:.6g}" for v in eigenvalues) in printed
    assert f"Hessian trace: {trace:.6g}" in printed


def test_every_option_has_help_and_states_its_default_at_most_once():
    import argparse

    from landscape.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = command.formatter_class("x")._get_help_string(action) % {"default": action.default}
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            assert text.count("default") <= 1, f"{name} {action.option_strings}: {text}"
        assert "default: -0.5 1.5" in command.format_help() or name != "interpolate"


def test_version_names_the_toolkit_and_torch(capsys):
    from landscape import __version__
    from landscape.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"landscape {__version__} (torch {torch.__version__})"
