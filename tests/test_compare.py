"""`landscape compare`: one file holding every checkpoint's measures, the shared rays and the
lines between checkpoints with their barriers (and, with --ensemble, averaged weights against
averaged predictions); its report panels; its one-line errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import landscape
import landscape.compare.steps
from landscape.cli import main
from landscape.compare import line_axis, loss_barrier
from landscape.sharpness.ensembles import SplitComparison, swa_vs_fge
from landscape.sharpness.result import SharpnessResult
from landscape.views import build_report, write_report
from landscape.views.flatness import read_comparison, read_ensemble
from tests.conftest import FAST

pytestmark = pytest.mark.xdist_group("compare")


def test_file_holds_every_model_measure_line_and_barrier(compared):
    with h5py.File(compared, "r") as h5:
        assert h5.attrs["complete"]
        assert list(h5.attrs["labels"]) == ["A", "B", "C"]
        assert sorted(h5["models"]) == ["c0", "c1", "c2"]
        for key in ("c0", "c1", "c2"):
            assert sorted(h5[f"sharpness/{key}"]) == ["average", "lambda_max", "ray_width", "worst_l2"]
        assert sorted(h5["barriers"]) == ["line_c0_c1", "line_c0_c2", "line_c1_c2"]
        line = h5["surfaces/line_c0_c2"]
        np.testing.assert_allclose(line["alpha"][()], np.arange(-1, 6) * 0.25)
        assert list(line.attrs["marker_labels"]) == ["A", "C"]
        barrier = h5["barriers/line_c0_c2"].attrs
        # the stored barrier is the one recomputed from the stored line (same arithmetic)
        expected, at = loss_barrier(line["alpha"][()], line["train/loss"][()])
        assert barrier["train_barrier"] == pytest.approx(expected, rel=1e-12)
        assert barrier["train_peak_at"] == at
        # the line's ends are the checkpoints: its loss at t=0 and t=1 equals each model's own
        loss = line["train/loss"][()]
        assert loss[1] == pytest.approx(h5["models/c0"].attrs["train_loss"], rel=1e-6)
        assert loss[5] == pytest.approx(h5["models/c2"].attrs["train_loss"], rel=1e-6)


def test_measures_equal_the_same_measures_computed_directly(compared, checkpoints):
    # the file's numbers are those the notebook API gives on the same problem and settings
    # (same seeds, same data: equal up to float32 summation order, rel 1e-5)
    problem, _ = landscape.load_problem(checkpoints[1], max_examples=256)
    direct = landscape.sharpness_measures(problem, "average", "worst_l2", samples=8, steps=3, restarts=1)
    stored = read_comparison(compared).models[1].measures
    for name in ("average", "worst_l2"):
        assert stored[name].value == pytest.approx(direct[name].value, rel=1e-5)
        assert isinstance(stored[name], SharpnessResult)
    assert stored["ray_width"].curves["loss"].shape == (3, 9)


def test_report_draws_measures_rays_and_lines(compared, tmp_path):
    with h5py.File(compared, "r") as h5:
        report = build_report(h5, "cmp")
    # the grid of bar charts sets its own height; its box in the page is that tall, not the default
    bars_height = report.figures["sharpness/bars"].layout.height
    assert f'style="height: {bars_height}px" id=' in write_report(compared, tmp_path / "r.html").read_text()
    for key in ("sharpness/bars", "sharpness/rays", "lines/loss"):
        assert key in report.figures, sorted(report.figures)
    tables = {i.key for r in report.results for i in r.shown if not hasattr(i, "figure")}
    assert {"sharpness/table", "sharpness/cost", "lines/barriers"} <= tables
    assert not report.skipped, report.skipped
    # the lines are drawn by their own panel, not again among the 1-D curves
    assert not any(k.startswith("curves/") for k in report.figures)


ENSEMBLE = ["--ensemble", "--measure", "average", "--samples", "4", "--no-lines", "--max-examples", "256",
            "--no-report", "--quiet"]


@pytest.fixture(scope="module")
def ensembled(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("ens") / "ens.h5"
    assert main(["compare", *checkpoints, "--labels", "A,B,C", "-o", str(out), *ENSEMBLE]) == 0
    return out


def test_ensemble_group_equals_swa_vs_fge_called_directly(ensembled, checkpoints):
    # the same function on the same three problems (same data, same float32 forward passes in
    # the same order, scores summed in float64): equal to rounding, rel 1e-12 (measured: bit-equal)
    problems = [landscape.load_problem(path, max_examples=256)[0] for path in checkpoints]
    direct = swa_vs_fge(problems)
    with h5py.File(ensembled, "r") as h5:
        attrs = h5["ensemble"].attrs
        assert attrs["complete"] and attrs["prediction"] == "probabilities"
        assert list(attrs["checkpoint_keys"]) == ["c0", "c1", "c2"]
        assert list(attrs["checkpoint_labels"]) == ["A", "B", "C"]
        assert attrs["num_checkpoints"] == 3 and attrs["num_parameters"] == direct.num_parameters
        assert attrs["bn_rule"] == direct.bn_rule == "no BatchNorm"
        assert attrs["mean_sq_distance"] == pytest.approx(direct.mean_sq_distance, rel=1e-12)
        assert direct.mean_sq_distance > 0
        for split in ("train", "test"):
            for name in SplitComparison.__dataclass_fields__:
                assert attrs[f"{split}_{name}"] == pytest.approx(getattr(direct.splits[split], name), rel=1e-12), \
                    (split, name)
    read = read_ensemble(ensembled)
    assert read is not None and read.splits == direct.splits and read.labels == ["A", "B", "C"]


def test_report_shows_the_ensemble_table(ensembled):
    with h5py.File(ensembled, "r") as h5:
        report = build_report(h5, "ens")
    assert not report.skipped, report.skipped
    tables = {i.key: i for r in report.results for i in r.shown if not hasattr(i, "figure")}
    table = tables["ensemble/table"]
    assert [row[0] for row in table.rows] == ["train", "test"] and len(table.header) == 9
    assert "O(‖Δ‖²)" in table.caption and "Mean ‖Δ‖²" in table.caption
    # read by its panel, not shown again as a raw group
    other = next(r for r in report.results if r.panel.name == "Other results")
    assert not any("ensemble" in getattr(i, "key", "") for i in other.items)


def test_resume_keeps_the_ensemble_group_and_refuses_another_prediction(ensembled, checkpoints, monkeypatch,
                                                                         capsys):
    with h5py.File(ensembled, "r") as h5:
        before = dict(h5["ensemble"].attrs)

    def not_again(*args, **kwargs):
        raise AssertionError("the finished ensemble group was computed again")
    monkeypatch.setattr(landscape.compare.steps, "swa_vs_fge", not_again)
    args = ["compare", *checkpoints, "--labels", "A,B,C", "-o", str(ensembled), *ENSEMBLE, "--resume"]
    assert main(args) == 0
    assert "SWA vs FGE (3 checkpoints, probabilities" in capsys.readouterr().out
    with h5py.File(ensembled, "r") as h5:
        after = dict(h5["ensemble"].attrs)
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert main([*args, "--ensemble-prediction", "outputs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0], err


def test_resume_with_other_settings_is_refused(compared, checkpoints, capsys):
    args = ["compare", *checkpoints, "--labels", "A,B,C", "-o", str(compared), *FAST, "--resume",
            "--rho", "0.1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0]


def test_line_axis_holds_both_ends_and_extends_by_the_spacing():
    axis = line_axis(11, 0.5)
    assert axis[0] == pytest.approx(-0.5) and axis[-1] == pytest.approx(1.5)
    assert 0.0 in axis and np.isclose(axis, 1.0).any()
    np.testing.assert_allclose(np.diff(axis), 0.1)


def test_loss_barrier_of_a_bump_and_of_a_diverged_segment():
    t = np.linspace(-0.5, 1.5, 21)
    bump = 1.0 + 0.5 * t + 2.0 * np.clip(1 - np.abs(t - 0.5) / 0.5, 0, None)  # ends 1.0 and 1.5, peak 3.25
    assert loss_barrier(t, bump) == pytest.approx((3.25 - 1.25, 0.5))
    bump[12] = np.inf
    assert loss_barrier(t, bump)[0] == np.inf


@pytest.mark.parametrize("extra, message", [
    (["--labels", "A,B"], "--labels gives 2 names for 3 checkpoints"),
    (["--labels", "A,A,B"], "must be non-empty and different"),
    (["--m", "100000"], "m-sharpness needs 1 ≤ m ≤"),
    (["--measure", "nonsense"], "unknown measure"),
    (["--subspace-dim", "999999"], "--subspace-dim 999999"),
    (["--ensemble-prediction", "outputs"], "needs --ensemble"),
    (["--ensemble", "--ensemble-prediction", "logits"], "invalid choice"),
])
def test_bad_options_are_one_line_errors_and_leave_no_file(checkpoints, tmp_path, capsys, extra, message):
    out = tmp_path / "x.h5"
    assert main(["compare", *checkpoints, "-o", str(out), "--no-report", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.iterdir())


def test_checkpoints_of_different_architectures_are_refused(tmp_path, capsys):
    assert main(["compare", "data/digits_mlp.pt", "data/digits_cnn.pt", "-o", str(tmp_path / "x.h5"),
                 "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one architecture" in err[0], err


@pytest.mark.parametrize("option", ["--rho", "--sigma", "--epsilon"])
def test_non_positive_radius_is_refused_by_the_parser(checkpoints, tmp_path, capsys, option):
    assert main(["compare", *checkpoints[:2], option, "0", "-o", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "positive" in err[0]


def test_scan_with_sharpness_stores_the_measures_and_resumes_without_recomputing(tmp_path, capsys):
    out = tmp_path / "scan.h5"
    scan = ["scan", "data/digits_mlp.pt", "--points", "3", "--max-examples", "256", "--no-report", "--quiet",
            "--sharpness", "--sharpness-measure", "average", "--sharpness-samples", "8", "-o", str(out)]
    assert main(scan) == 0
    with h5py.File(out, "r") as h5:
        group = h5["sharpness/c0/average"]
        stored, label = group.attrs["value"], group.attrs["model_label"]
        written = group.attrs["seconds"]
    problem, _ = landscape.load_problem("data/digits_mlp.pt", max_examples=256)
    direct = landscape.sharpness_measures(problem, "average", samples=8)["average"]
    assert stored == pytest.approx(direct.value, rel=1e-5) and label == "digits_mlp"
    assert main([*scan, "--resume"]) == 0
    with h5py.File(out, "r") as h5:  # the finished measure was kept, not computed again
        assert h5["sharpness/c0/average"].attrs["seconds"] == written
    assert main([*scan[:-2], "--sharpness-sigma", "0", "-o", str(tmp_path / "bad.h5")]) == 2
    assert "positive" in capsys.readouterr().err and not (tmp_path / "bad.h5").exists()
