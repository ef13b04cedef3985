"""The sharpness tracker: λ_max against a dense float64 Hessian of the saved weights, warm
start, the tracker file (append, reopen, a SIGKILLed run), the user's model left alone, the
duck-typed Lightning callback, one-line errors, and the report's tracker panel.

Tolerances: float64 models, so Lanczos runs at its float64 default (relative Ritz residual
≤ 1e-6). For a symmetric operator the Ritz value's error is ≤ residual²/gap (≤ residual when
the gap is unknown), so λ_max agrees with the dense eigvalsh to 1e-6 relative; two runs
from different start vectors agree to the same bound.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

import landscape as ls
from landscape.curvature import HessianOperator
from landscape.linalg import estimate_trace
from landscape.tracking import SERIES, read_parameters, read_tracker
from tests.conftest import cli_env
from tests.models import MLP, seeded, vectors

REL = 1e-6  # float64 Lanczos tolerance: see the module docstring


def float64_setup(seed: int = 0) -> tuple[torch.nn.Module, list, torch.Tensor, torch.Tensor]:
    model = seeded(MLP, seed=seed).double()
    x, y = vectors(60, seed=seed, dtype=torch.float64)
    return model, [(x[:32], y[:32]), (x[32:], y[32:])], x, y


def train(model: torch.nn.Module, trackers: list[ls.SharpnessTracker], x: torch.Tensor, y: torch.Tensor,
          steps: int, lr: float = 0.5) -> None:
    """Full-batch gradient descent, every tracker told after each step (by hand: the first
    ``torch.optim`` optimizer of a process imports torch._dynamo, seconds of a fast test)."""
    for step in range(1, steps + 1):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        for tracker in trackers:
            tracker.step(step)


def dense_lambda_max(params: dict[str, np.ndarray], x: torch.Tensor, y: torch.Tensor) -> float:
    """Largest eigenvalue of the dense float64 Hessian of the mean loss on (x, y)."""
    model = MLP().double()
    names = list(params)
    shapes = [params[n].shape for n in names]
    flat = torch.cat([torch.from_numpy(params[n]).reshape(-1) for n in names])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(theta, [int(np.prod(s)) for s in shapes])
        state = {n: p.reshape(s) for n, p, s in zip(names, pieces, shapes, strict=True)}
        return F.cross_entropy(functional_call(model, state, (x,)), y)
    return float(torch.linalg.eigvalsh(hessian(loss)(flat)).max())


def test_lambda_max_matches_dense_hessian_of_saved_parameters(tmp_path: Path) -> None:
    model, measure_set, x, y = float64_setup()
    tracker = ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "t.h5", every=3, learning_rate=0.5)
    train(model, [tracker], x, y, steps=9)
    run = read_tracker(tmp_path / "t.h5")
    assert list(run.series["step"]) == [3, 6, 9] and run.saved_steps == (3, 6, 9)
    assert run.settings.parameter_names == ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
    for step, lam in zip(run.series["step"], run.series["lambda_max"], strict=True):
        saved = read_parameters(tmp_path / "t.h5", int(step))
        assert saved["fc1.weight"].dtype == np.float64  # the training dtype
        assert lam == pytest.approx(dense_lambda_max(saved, x, y), rel=REL)
        # and the library's own post-hoc route agrees
        post = MLP().double()
        post.load_state_dict({k: torch.from_numpy(v) for k, v in saved.items()})
        eigs = ls.hessian_eigs(ls.Problem.create(post, F.cross_entropy, measure_set), k=1)
        assert lam == pytest.approx(float(eigs.eigenvalues[0]), rel=REL)
    # the last record is at the model's current weights
    current = {n: p.detach().numpy() for n, p in model.named_parameters()}
    assert np.array_equal(read_parameters(tmp_path / "t.h5", 9)["fc2.bias"], current["fc2.bias"])
    assert run.series["loss"][-1] == pytest.approx(float(F.cross_entropy(model(x), y).detach()), rel=1e-12)


def test_warm_start_same_lambda_fewer_products(tmp_path: Path) -> None:
    # small steps (lr 0.05, a record every step): the top eigenvector turns slowly
    model, measure_set, x, y = float64_setup(seed=1)
    warm = ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "w.h5", save_parameters=False)
    cold = ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "c.h5", save_parameters=False,
                               warm_start=False)
    train(model, [warm, cold], x, y, steps=8, lr=0.05)
    w, c = (read_tracker(tmp_path / n).series for n in ("w.h5", "c.h5"))
    np.testing.assert_allclose(w["lambda_max"], c["lambda_max"], rtol=REL)
    assert w["lambda_max_matvecs"][0] == c["lambda_max_matvecs"][0]  # nothing to start from yet
    assert w["lambda_max_matvecs"][1:].sum() < c["lambda_max_matvecs"][1:].sum()
    assert (w["lambda_max_residual"] <= REL).all() and (c["lambda_max_residual"] <= REL).all()


def test_trace_and_noise_scale(tmp_path: Path) -> None:
    model, measure_set, x, y = float64_setup()
    tracker = ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "t.h5", trace_probes=30,
                                  noise_examples=60, save_parameters=False)
    record = tracker.step(0)
    assert record is not None
    problem = ls.Problem.create(model, F.cross_entropy, measure_set)
    # noise over all 60 examples: B_simple = tr Σ / ‖ḡ‖², with g_i from an explicit loop
    grads = []
    for i in range(60):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    g = torch.stack(grads)
    b_simple = float((g - g.mean(0)).pow(2).sum(1).mean() / g.mean(0).pow(2).sum())
    assert record.noise_scale == pytest.approx(b_simple, rel=1e-10)
    # Hutch++ with 30 probes: within 4 standard errors of the exact trace
    exact = estimate_trace(HessianOperator(problem), method="exact").estimate
    assert abs(record.trace - exact) <= 4 * record.trace_stderr + 1e-9
    assert not math.isnan(read_tracker(tmp_path / "t.h5").series["trace"][0])


def test_model_not_mutated(tmp_path: Path) -> None:
    model, measure_set, x, y = float64_setup()
    model.train()
    model.fc1.bias.requires_grad_(False)  # a frozen parameter travels with the buffers
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tracker = ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "t.h5", trace_probes=9,
                                  noise_examples=8)
    tracker.step(0)
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == {
        "fc1.weight": True, "fc1.bias": False, "fc2.weight": True, "fc2.bias": True}
    assert all(p.grad is None for p in model.parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])
    assert read_tracker(tmp_path / "t.h5").settings.parameter_names == ("fc1.weight", "fc2.weight", "fc2.bias")


def test_reopen_appends_after_last_complete_record(tmp_path: Path) -> None:
    model, measure_set, x, y = float64_setup()
    path = tmp_path / "t.h5"
    first = ls.SharpnessTracker(model, F.cross_entropy, measure_set, path, every=2)
    train(model, [first], x, y, steps=4)
    with h5py.File(path, "a") as h5:  # what a kill inside a record leaves: some series one longer
        for name in ("loss", "lambda_max"):
            h5["series"][name].resize((3,))
        h5["parameters"].create_group("step_0000000006")
    second = ls.SharpnessTracker(model, F.cross_entropy, measure_set, path, every=2)
    assert second.step(4) is None  # already recorded
    assert second.step(6) is not None
    run = read_tracker(path)
    assert list(run.series["step"]) == [2, 4, 6] and run.saved_steps == (2, 4, 6)
    assert all(len(v) == 3 for v in run.series.values())


def test_lightning_style_callback(tmp_path: Path) -> None:
    model, measure_set, x, y = float64_setup()
    callback = ls.TrackerCallback(ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "t.h5",
                                                      every=2, save_parameters=False))

    class FakeTrainer:
        global_step = 0
    trainer = FakeTrainer()
    for batch_idx in range(5):
        trainer.global_step += 1  # Lightning has counted the optimizer step when the hook runs
        callback.on_train_batch_end(trainer, model, None, measure_set[0], batch_idx)
    assert list(read_tracker(tmp_path / "t.h5").series["step"]) == [2, 4]


@pytest.mark.parametrize("options, message", [
    ({"every": 0}, "every must be an integer ≥ 1"),
    ({"trace_probes": 3}, r"Hutch\+\+ needs ≥ 6 probes"),
    ({"noise_examples": 1000}, "more than the 60 examples"),
    ({"learning_rate": -1.0}, "learning_rate must be a finite number ≥ 0"),
    ({"top": 1000}, "more than the 73 trainable parameters"),
])
def test_bad_options_one_line_no_file(tmp_path: Path, options: dict, message: str) -> None:
    model, measure_set, _, _ = float64_setup()
    with pytest.raises(ls.LandscapeError, match=message) as info:
        ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "t.h5", **options)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "t.h5").exists()


def test_refuses_foreign_or_different_files(tmp_path: Path) -> None:
    model, measure_set, _, _ = float64_setup()
    results = tmp_path / "scan.h5"
    with h5py.File(results, "w") as h5:
        h5.attrs["schema"] = "landscape-results"
    with pytest.raises(ls.LandscapeError, match="is a landscape results file, not a tracker file"):
        ls.SharpnessTracker(model, F.cross_entropy, measure_set, results)
    path = tmp_path / "t.h5"
    ls.SharpnessTracker(model, F.cross_entropy, measure_set, path, every=2).step(0)
    with pytest.raises(ls.LandscapeError, match="records every 2 steps, not every=3"):
        ls.SharpnessTracker(model, F.cross_entropy, measure_set, path, every=3)
    other = torch.nn.Sequential(torch.nn.Linear(6, 3)).double()
    with pytest.raises(ls.LandscapeError, match="recorded for other parameters") as info:
        ls.SharpnessTracker(other, F.cross_entropy, measure_set, path, every=2)
    assert "\n" not in str(info.value)
    assert list(read_tracker(path).series["step"]) == [0]  # untouched


def test_report_panel(tmp_path: Path) -> None:
    from landscape.views import load_report

    model, measure_set, x, y = float64_setup()
    tracker = ls.SharpnessTracker(model, F.cross_entropy, measure_set, tmp_path / "t.h5", learning_rate=0.5,
                                  momentum=0.9, noise_examples=8)
    train(model, [tracker], x, y, steps=3)
    report = load_report(tmp_path / "t.h5")
    assert report.notes == [] and report.skipped == []
    figure = report.figures["tracker/series"]
    assert [t.name for t in figure.data] == ["λ_max", "loss", "noise scale B_simple"]
    lines = sorted(float(s["y0"]) for s in figure.layout.shapes)
    assert lines == pytest.approx([2 / 0.5, 2 * 1.9 / 0.5])
    assert list(figure.data[0].y) == pytest.approx(list(read_tracker(tmp_path / "t.h5").series["lambda_max"]))


@pytest.mark.slow
def test_killed_training_leaves_readable_file(tmp_path: Path) -> None:
    """A training run SIGKILLed after a few records: every complete record is in the file,
    and a new tracker appends after the last one."""
    script = f"""
import sys, torch, torch.nn.functional as F
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import landscape as ls
from landscape.curvature import HessianOperator
from landscape.linalg import estimate_trace
from tests.models import MLP, seeded, vectors
model = seeded(MLP).double()
x, y = vectors(60, dtype=torch.float64)
tracker = ls.SharpnessTracker(model, F.cross_entropy, [(x, y)], {str(tmp_path / 't.h5')!r}, every=2)
for step in range(1, 10**6):
    model.zero_grad(); F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    if tracker.step(step):
        print(step, flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        printed = [int(child.stdout.readline()) for _ in range(4)]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    run = read_tracker(tmp_path / "t.h5")
    steps = list(run.series["step"])
    assert steps[:4] == printed == [2, 4, 6, 8]
    assert steps == list(range(2, 2 * len(steps) + 1, 2))
    assert set(run.series) == set(SERIES) and all(len(v) == len(steps) for v in run.series.values())
    assert run.saved_steps == tuple(steps)
    model = seeded(MLP).double()
    x, y = vectors(60, dtype=torch.float64)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in read_parameters(tmp_path / "t.h5", steps[-1]).items()})
    again = ls.SharpnessTracker(model, F.cross_entropy, [(x, y)], tmp_path / "t.h5", every=2)
    assert again.step(steps[-1]) is None and again.step(steps[-1] + 2) is not None
