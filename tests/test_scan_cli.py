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
