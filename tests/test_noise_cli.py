"""`landscape noise` and `landscape scan --noise` end to end on the bundled digits MLP."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

import landscape
from landscape import zoo
from landscape.cli import main
from landscape.store import read_attr

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "data" / "digits_mlp.pt")
SMALL = ["--max-examples", "96", "--quiet", "--no-report"]

# The names the report panels read (docs/architecture.md, "Gradient-noise group"); keep them.
ATTRS = ["num_examples", "batch_size", "method", "seed", "split", "trace_sigma", "grad_norm_sq", "b_simple",
         "b_noise", "b_simple_two_batch", "tr_h_sigma", "tr_h_sigma_isotropic", "tail_index",
         "minibatch_scale_with_replacement", "minibatch_scale_without_replacement"]


def test_noise_command_writes_the_group(tmp_path, capsys):
    out = tmp_path / "noise.h5"
    rc = main(["noise", MLP, "--examples", "64", "--batch-size", "8", "--k", "3", "-o", str(out), *SMALL])
    assert rc == 0, capsys.readouterr().err
    assert "B_simple" in capsys.readouterr().out
    with h5py.File(out, "r") as handle:
        assert read_attr(handle.attrs["complete"]) is True or handle.attrs["complete"]
        group = handle["noise"]
        attrs = {k: read_attr(v) for k, v in group.attrs.items()}
        assert set(ATTRS) <= set(attrs)
        assert attrs["num_examples"] == 64 and attrs["batch_size"] == 8 and attrs["method"] == "vmap"
        assert attrs["minibatch_scale_with_replacement"] == pytest.approx(1 / 8)
        assert attrs["minibatch_scale_without_replacement"] == pytest.approx((96 - 8) / (8 * 95))
        for key in ("trace_sigma", "b_simple", "b_noise", "tr_h_sigma", "tr_h_sigma_isotropic", "tail_index"):
            assert math.isfinite(attrs[key]), key
        assert attrs["b_simple"] == pytest.approx(attrs["trace_sigma"] / attrs["grad_norm_sq"])
        eigenvalues = group["eigenvalues"][()]
        assert eigenvalues.shape == (3,) and np.all(np.diff(eigenvalues) <= 0)
        assert group["hessian_eigenvalues"].shape == (3,) and group["overlap"].shape == (3,)
        assert np.all((group["overlap"][()] >= 0) & (group["overlap"][()] <= 1 + 1e-9))
        assert group["example_grad_norms"].shape == (64,)


def test_scan_with_noise_flag(tmp_path):
    out = tmp_path / "scan.h5"
    rc = main(["scan", MLP, "--points", "3", "--noise", "--noise-examples", "32", "--noise-batch-size", "4",
               "--noise-k", "2", "--noise-no-hessian", "-o", str(out), *SMALL])
    assert rc == 0
    with h5py.File(out, "r") as handle:
        assert "surfaces/2d" in handle and "noise" in handle
        group = handle["noise"]
        assert read_attr(group.attrs["hessian_computed"]) is False or not group.attrs["hessian_computed"]
        assert math.isnan(group.attrs["b_noise"]) and math.isnan(group.attrs["tr_h_sigma"])
        assert "hessian_eigenvalues" not in group and "overlap" not in group
    # without the flag, no noise group
    plain = tmp_path / "plain.h5"
    assert main(["scan", MLP, "--points", "3", "-o", str(plain), *SMALL]) == 0
    with h5py.File(plain, "r") as handle:
        assert "noise" not in handle


@pytest.mark.parametrize("argv, message", [
    (["--examples", "500", "--batch-size", "8"], "--examples 500 is larger than split 'train', which has 96"),
    (["--examples", "32", "--batch-size", "0"], "argument --batch-size: must be ≥ 1, got 0"),
    (["--examples", "32", "--batch-size", "200"], "--batch-size 200 is larger than the dataset"),
])
def test_bad_input_gives_one_clear_line(tmp_path, capsys, argv, message):
    rc = main(["noise", MLP, *argv, "-o", str(tmp_path / "x.h5"), *SMALL])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("landscape: error:") and message in err


def test_batch_size_defaults_to_the_training_batch_size_the_checkpoint_records(tmp_path, capsys):
    """The bundled checkpoints record B = 64; a checkpoint that records none needs --batch-size."""
    out = tmp_path / "x.h5"
    assert main(["noise", MLP, "--examples", "32", "--k", "2", "--no-hessian", "-o", str(out), *SMALL]) == 0
    with h5py.File(out, "r") as handle:
        assert int(handle["noise"].attrs["batch_size"]) == 64
        assert int(handle.attrs["training_batch_size"]) == 64
    bare = tmp_path / "bare.pt"
    landscape.save(bare, zoo.digits_mlp(), model_spec="digits_mlp", data_spec="digits", loss="cross_entropy")
    assert main(["noise", str(bare), "--examples", "32", "-o", str(tmp_path / "y.h5"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --batch-size B" in err and not (tmp_path / "y.h5").exists()


def test_sum_reduced_loss_is_refused(tmp_path, capsys, monkeypatch):
    import torch.nn as nn

    import landscape.loading as loading
    monkeypatch.setitem(loading.LOSSES, "sum_ce", nn.CrossEntropyLoss(reduction="sum"))
    rc = main(["noise", MLP, "--loss", "sum_ce", "--examples", "32", "--batch-size", "4",
               "-o", str(tmp_path / "x.h5"), *SMALL])
    err = capsys.readouterr().err
    assert rc == 2 and "reduction='sum'" in err


def test_resume_keeps_a_finished_noise_group(tmp_path):
    out = tmp_path / "noise.h5"
    args = ["noise", MLP, "--examples", "32", "--batch-size", "4", "--k", "2", "--no-hessian", "-o", str(out), *SMALL]
    assert main(args) == 0
    with h5py.File(out, "r+") as handle:
        handle["noise"].attrs["marker"] = "kept"
    assert main([*args, "--resume"]) == 0
    with h5py.File(out, "r") as handle:
        assert read_attr(handle["noise"].attrs["marker"]) == "kept"  # not recomputed
