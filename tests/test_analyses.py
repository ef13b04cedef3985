"""Smoke test of the two studies in analyses/: each script's whole pipeline (train, measure with
the library, write JSON) on a tiny budget (``--quick``: 1 seed, a few epochs, 1 ray, 11 points,
9 trace probes), without figures (kaleido needs a browser; the views tests cover export).

It checks the output is complete and sane, not the scientific findings (those need the full
budget and are reported in analyses/README.md): every number in the JSON is finite, λ_max and
tr(H) are positive (cross-entropy after some training: the Gauss-Newton part dominates), and
each 1-D curve passes through θ* (its α = 0 value equals the train loss measured there, to
float32 rounding of two evaluation orders: rel 1e-5).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"analyses_{name}", ANALYSES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def _quick_run(study: str, tmp_path: Path, monkeypatch) -> dict:
    """Run ``analyses/<study>.py --quick`` in this process; its results.json."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends its folder; undo afterwards
    module = _load(study)
    monkeypatch.delitem(sys.modules, "common")  # analyses/common.py: gone from sys.modules afterwards
    module.main(["--quick", "--no-figures", "--out", str(tmp_path), "--threads", "1"])
    return json.loads((tmp_path / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("study, groups", [
    ("batch_size_sharpness", {"batch_size": {16, 1437}}),
    ("sgd_sam_swa", {"method": {"SGD", "SAM", "SWA", "SWA last iterate"}}),
])
def test_quick_run_writes_finite_results(study: str, groups: dict, tmp_path: Path, monkeypatch) -> None:
    payload = _quick_run(study, tmp_path, monkeypatch)
    assert payload["study"] == study and payload["quick"] is True
    assert payload["seeds"] == [0]
    ((key, expected),) = groups.items()
    assert {run[key] for run in payload["runs"]} == expected
    assert _finite(payload["runs"])
    for run in payload["runs"]:
        m = run["measurement"]
        assert m["lambda_max"] > 0 and m["trace"] > 0
        assert 0 <= m["test_accuracy"] <= 1
        assert m["width_mean"] > 0
        ray = m["rays"][0]
        centre = len(ray["alpha"]) // 2
        assert ray["alpha"][centre] == 0.0
        # the curve passes through θ*: the loss at α = 0 is the train loss measured there
        assert ray["train_loss"][centre] == pytest.approx(m["train_loss"], rel=1e-5)
    assert "|" in payload["table"]


@pytest.mark.slow
def test_edge_of_stability_quick_run(tmp_path: Path, monkeypatch) -> None:
    """The study's pipeline on 200 GD steps: a tracker file per η with complete series, a
    finite summary, the 2/η thresholds, summary.md with its table."""
    import landscape as ls

    payload = _quick_run("edge_of_stability", tmp_path, monkeypatch)
    assert payload["study"] == "edge_of_stability" and payload["quick"] is True
    assert _finite(payload["summaries"])
    for lr, summary in zip(payload["lrs"], payload["summaries"], strict=True):
        assert summary["threshold"] == pytest.approx(2 / lr, rel=1e-5)  # results.json keeps 6 digits
        run = ls.read_tracker(tmp_path / f"tracker_lr{lr:g}.h5")
        assert list(run.series["step"]) == list(range(0, 201, 20))
        assert run.settings.learning_rate == lr
        assert (run.series["lambda_max"] > 0).all() and (run.series["lambda_max_residual"] <= 1e-4).all()
        assert summary["lambda_max_final"] == pytest.approx(float(run.series["lambda_max"][-1]), rel=1e-5)
    assert "| η" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_gd_vs_sgd_quick_run(tmp_path: Path, monkeypatch) -> None:
    """Every arm trained and measured (accuracy, λ_max, trace, gradient noise), and seed 0's
    paths drawn by `landscape trajectory` with an explained variance in (0, 1] per axis."""
    payload = _quick_run("gd_vs_sgd", tmp_path, monkeypatch)
    assert payload["study"] == "gd_vs_sgd" and payload["quick"] is True
    assert {run["method"] for run in payload["runs"]} == {"SGD", "GD", "GD + clip", "GD + clip + reg"}
    assert _finite(payload["runs"])
    for run in payload["runs"]:
        m = run["measurement"]
        assert m["lambda_max"] > 0 and m["trace"] > 0 and m["trace_sigma"] > 0 and m["b_simple"] > 0
        assert 0 <= m["test_accuracy"] <= 1
    steps = {run["method"]: run["training"]["steps"] for run in payload["runs"]}
    assert steps["SGD"] == 45 * steps["GD"]  # same epochs: 45 mini-batches of 32 per epoch
    for path in payload["trajectories"].values():
        ratio = path["explained_variance"]
        assert all(0 < r <= 1 for r in ratio) and len(path["steps"]) == 5
    summary = (tmp_path / "summary.md").read_text()
    assert "Geiping et al. (2022)" in summary and "Agreement, claim by claim" in summary
