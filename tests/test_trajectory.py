"""`landscape trajectory`: the PCA plane of a training path recovered exactly on synthetic runs
that lie in a known plane (ground truth: the plane's projector and the points), the reported
off-plane distance equal to a known added component, a real digits run drawn in the report,
tracker files as input, and one clear line for each bad input."""

from __future__ import annotations

import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape
from landscape.cli import main
from landscape.params import flatten
from landscape.trajectory import pca_plane
from landscape.views import load_report, write_report
from landscape.zoo import digits, digits_mlp

SHAPES = {"fc1.weight": (6, 5), "fc1.bias": (6,), "fc2.weight": (3, 6)}
SMALL = ["--points", "7", "--no-report", "--quiet"]
DIGITS = ["--model", "digits_mlp", "--data", "digits", "--loss", "cross_entropy"]


def _named(vector: torch.Tensor) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, shape in SHAPES.items():
        n = int(np.prod(shape))
        out[name] = vector[offset:offset + n].reshape(shape).clone()
        offset += n
    return out


def _synthetic(off_plane_scale: float = 0.0, steps: int = 9, seed: int = 0):
    """θ_t = θ_final + a_t u + b_t v (+ e_t w) with u, v, w orthonormal by parameter and e ⟂ a, b
    in R^T, so the offsets' top-2 right singular vectors span exactly {u, v} (e is small)."""
    gen = torch.Generator().manual_seed(seed)
    dims = sum(int(np.prod(s)) for s in SHAPES.values())
    basis, _ = torch.linalg.qr(torch.randn(dims, 3, generator=gen, dtype=torch.float64))
    final = torch.randn(dims, generator=gen, dtype=torch.float64)
    coefficients = torch.randn(steps, 2, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 1.0],
                                                                                         dtype=torch.float64)
    coefficients[-1] = 0.0  # the last checkpoint is θ_final
    extra = torch.randn(steps, generator=gen, dtype=torch.float64)
    extra[-1] = 0.0
    q, _ = torch.linalg.qr(coefficients)
    extra = extra - q @ (q.T @ extra)  # orthogonal to both coefficient columns: no cross terms
    extra = off_plane_scale * extra / extra.norm()
    points = final + coefficients @ basis[:, :2].T + extra[:, None] * basis[:, 2]
    return [_named(p) for p in points], basis, coefficients, extra


def test_plane_and_coordinates_recovered_exactly():
    thetas, basis, _, _ = _synthetic()
    plane = pca_plane(thetas, thetas[-1])
    directions = torch.stack([flatten(d) for d in plane.directions])  # [2, D], parameter order of SHAPES
    # span recovered: same orthogonal projector (sign and rotation within the plane do not matter)
    expected = basis[:, :2] @ basis[:, :2].T
    torch.testing.assert_close(directions.T @ directions, expected, atol=1e-6, rtol=0)
    # every checkpoint rebuilt from θ_final + C D (float64; the SVD's rounding is ~1e-15)
    final = flatten(thetas[-1])
    rebuilt = final + torch.from_numpy(plane.coordinates) @ directions
    torch.testing.assert_close(rebuilt, torch.stack([flatten(t) for t in thetas]), atol=1e-6, rtol=0)
    assert (plane.relative_residual < 1e-8).all()
    assert plane.explained_variance.sum() == pytest.approx(1.0, abs=1e-12)
    assert plane.explained_variance[0] >= plane.explained_variance[1] > 0
    assert (plane.coordinates[0] <= 0).all()  # the sign rule: the path runs towards +


def test_off_plane_distance_equals_the_added_component():
    thetas, basis, _, extra = _synthetic(off_plane_scale=0.3)
    plane = pca_plane(thetas, thetas[-1])
    directions = torch.stack([flatten(d) for d in plane.directions])
    torch.testing.assert_close(directions.T @ directions, basis[:, :2] @ basis[:, :2].T, atol=1e-6, rtol=0)
    np.testing.assert_allclose(plane.residual_norm, extra.abs().numpy(), atol=1e-9)
    distance = np.array([float((flatten(t) - flatten(thetas[-1])).norm()) for t in thetas])
    np.testing.assert_allclose(plane.relative_residual[:-1], extra.abs().numpy()[:-1] / distance[:-1], rtol=1e-8)


def test_collinear_checkpoints_are_refused():
    final = _named(torch.zeros(sum(int(np.prod(s)) for s in SHAPES.values()), dtype=torch.float64))
    line = [{n: p + t for n, p in final.items()} for t in (2.0, 1.0)] + [final]
    with pytest.raises(landscape.LandscapeError, match="one line"):
        pca_plane(line, final)


# ---------------------------------------------------------------------------- a real digits run
def _train(folder: Path, count: int, *, hidden: int = 32, seed: int = 0) -> list[Path]:
    """The bundled MLP trained by SGD on digits, one checkpoint every 3 steps (step recorded)."""
    torch.manual_seed(seed)
    model = digits_mlp(hidden)
    batches = list(digits(batch_size=64)["train"])
    velocity = [torch.zeros_like(p) for p in model.parameters()]
    paths = []
    for step in range(3 * count):  # SGD with heavy-ball momentum 0.9, lr 0.1, by hand (no optimizer import)
        x, y = batches[step % len(batches)]
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
        with torch.no_grad():
            for p, v, g in zip(model.parameters(), velocity, grads):
                v.mul_(0.9).add_(g)
                p.sub_(0.1 * v)
        if step % 3 == 2:
            # names do not sort by step (ckpt_10 < ckpt_3 as text): the recorded step orders them
            paths.append(landscape.save(folder / f"ckpt_{step + 1}.pt", model, model_spec="digits_mlp",
                                        model_kwargs={"hidden": hidden}, data_spec="digits",
                                        loss="cross_entropy", step=step + 1))
    return paths


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return _train(folder, 20), folder


def test_digits_run_is_drawn_with_its_path(digits_run, tmp_path):
    _, folder = digits_run
    out = tmp_path / "traj.h5"
    assert main(["trajectory", str(folder), "-o", str(out), "--points", "7", "--splits", "train", "--quiet",
                 "--max-examples", "512", "--no-report"]) == 0
    with h5py.File(out, "r") as h5:
        group = h5["trajectory"]
        np.testing.assert_array_equal(group["steps"][()], np.arange(1, 21) * 3)
        ratio = group["explained_variance"][()]
        assert ((ratio > 0) & (ratio <= 1)).all() and ratio.sum() <= 1 + 1e-12
        assert group["coordinates"].shape == (20, 2)
        assert group["train/loss"][0] > group["train/loss"][-1]  # training lowered the loss
        surface = h5["surfaces/trajectory"]
        assert list(surface.attrs["directions"]) == ["pc1", "pc2"] and surface.attrs["complete"]
        coords = group["coordinates"][()]
        assert surface["alpha"][0] < coords[:, 0].min() and coords[:, 0].max() < surface["alpha"][-1]
        assert h5["directions/pc1"].attrs["explained_variance_ratio"] == pytest.approx(ratio[0])
        # θ_final is the surface's origin: at (0, 0) the surface's loss is the last checkpoint's
        alpha, beta = surface["alpha"][()], surface["beta"][()]
        i, j = int(np.abs(alpha).argmin()), int(np.abs(beta).argmin())
        if abs(alpha[i]) < 1e-12 and abs(beta[j]) < 1e-12:
            assert surface["train/loss"][i, j] == pytest.approx(group["train/loss"][-1], rel=1e-5)
    report = load_report(out)
    assert not report.skipped
    html = write_report(out, tmp_path / "traj.html").read_text()
    assert "Training trajectory on its PCA plane" in html
    path = report.figures["trajectory/path"]
    names = [trace.name for trace in path.data]
    assert "path" in names and path.layout.sliders
    assert f"PC1 ({100 * ratio[0]:.1f} %)" in path.layout.xaxis.title.text


# ---------------------------------------------------------------------------- tracker files
def write_tracker(path: Path, records: list[tuple[int, dict[str, torch.Tensor]]], *,
                  with_parameters: bool = True, every: int = 1) -> Path:
    """A tracker file exactly as schema version 1 says (the SharpnessTracker's contract)."""
    with h5py.File(path, "a") as h5:
        h5.attrs.update({"schema": "landscape-tracker", "schema_version": 1, "every": every,
                         "learning_rate": 0.1, "momentum": 0.0,
                         "parameter_names": list(records[0][1]) if records else [],
                         "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                         "landscape_version": landscape.__version__})
        series = h5.create_group("series")
        kinds = {"step": np.int64, "loss": np.float64, "lambda_max": np.float64, "lambda_max_residual": np.float64,
                 "lambda_max_matvecs": np.int64, "trace": np.float64, "trace_stderr": np.float64,
                 "noise_scale": np.float64, "seconds": np.float64}
        for name, dtype in kinds.items():
            series.create_dataset(name, shape=(0,), maxshape=(None,), chunks=True, dtype=dtype)
        if with_parameters:
            h5.create_group("parameters")
        for step, params in records:
            for name in [*(k for k in kinds if k != "step"), "step"]:  # step last: the record is complete
                data = series[name]
                data.resize((data.shape[0] + 1,))
                data[-1] = step if name == "step" else (np.nan if name.startswith(("trace", "noise")) else 1.0)
            if with_parameters:
                group = h5["parameters"].create_group(f"step_{step:010d}")
                group.attrs["step"] = step
                for name, tensor in params.items():
                    group.create_dataset(name, data=tensor.numpy())
            h5.flush()
    return path


def _records(paths: list[Path]) -> list[tuple[int, dict[str, torch.Tensor]]]:
    out = []
    for path in paths:
        blob = torch.load(path, weights_only=True)
        out.append((blob["landscape"]["provenance"]["step"], {k: v for k, v in blob["state_dict"].items()}))
    return out


def test_tracker_file_with_specs_or_final(digits_run, tmp_path):
    paths, _ = digits_run
    tracker = write_tracker(tmp_path / "run.tracker.h5", _records(paths[:8]))
    out = tmp_path / "a.h5"
    assert main(["trajectory", str(tracker), *DIGITS, "-o", str(out), *SMALL, "--splits", "test"]) == 0
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["trajectory/steps"][()], np.arange(1, 9) * 3)
        assert h5.attrs["checkpoint_format"] == "landscape-tracker (last record)"
    out = tmp_path / "b.h5"  # --final past the last record ends the trajectory at its recorded step
    assert main(["trajectory", str(tracker), "--final", str(paths[-1]), "-o", str(out), *SMALL,
                 "--splits", "test"]) == 0
    with h5py.File(out, "r") as h5:
        assert list(h5["trajectory/steps"][()]) == [*range(3, 25, 3), 60]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["two", "architecture", "glob", "no_parameters", "empty_parameters", "no_specs",
                                  "final_with_folder"])
def test_bad_input_is_one_line(case, digits_run, tmp_path, capsys):
    paths, folder = digits_run
    args: list[str]
    if case == "two":
        args = [str(tmp_path / "ckpt_*.pt")]
        for p in paths[:2]:
            (tmp_path / p.name).write_bytes(p.read_bytes())
        expect = "gives 2 checkpoint(s); a trajectory plane needs at least 3"
    elif case == "architecture":
        for p in paths[:3]:
            (tmp_path / p.name).write_bytes(p.read_bytes())
        _train(tmp_path / "other", 1, hidden=16)
        (tmp_path / "ckpt_0.pt").write_bytes((tmp_path / "other" / "ckpt_3.pt").read_bytes())
        args = [str(tmp_path)]
        expect = "has shape [16, 64]"
    elif case == "glob":
        args = [str(tmp_path / "nothing_*.pt")]
        expect = "matches no file"
    elif case in ("no_parameters", "empty_parameters"):
        tracker = write_tracker(tmp_path / "t.h5", _records(paths[:3]) if case == "empty_parameters" else [],
                                with_parameters=case == "empty_parameters")
        if case == "empty_parameters":
            with h5py.File(tracker, "a") as h5:
                for key in list(h5["parameters"]):
                    del h5["parameters"][key]
        args = [str(tracker), *DIGITS]
        expect = "holds no saved parameters"
    elif case == "no_specs":
        args = [str(write_tracker(tmp_path / "t.h5", _records(paths[:3])))]
        expect = "give the final checkpoint with --final CKPT, or --model, --data and --loss"
    else:
        args = [str(folder), "--final", str(paths[-1])]
        expect = "--final goes with a tracker file"
    out = tmp_path / "out.h5"
    assert main(["trajectory", *args, "-o", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists() and not Path(f"{out}.partial").exists()
