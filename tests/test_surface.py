"""Surfaces: grid layout against a closed form, and batched (vmap) evaluation against plain
one-model-per-point evaluation for every kind of model in tests/models.py.

Tolerances: everything runs in float64. The batched and the reference paths sum the same
terms in different orders (and the transformer's reference may take PyTorch's fused
inference path), so they agree to ~1e-15 relative; rtol 1e-10 leaves room for that and still
fails on any real mistake (a wrong point, a wrong BN statistic, a dropped batch weight).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.problem import Problem
from landscape.surfaces import compute_surface, grid_coefficients, points_at, random_directions
from tests import models

RTOL = 1e-10


# ---------------------------------------------------------------------------- grid layout
def quadratic_coefficients(params, d0, d1, batches):
    """L(α, β) = mean‖r0 + α r1 + β r2‖² for a linear model with MSE, as six scalars."""
    def residual_parts(x, y):
        r0 = x @ params["weight"].T + params["bias"] - y
        r1 = x @ d0["weight"].T + d0["bias"]
        r2 = x @ d1["weight"].T + d1["bias"]
        return r0, r1, r2

    total = sum(y.numel() for _, y in batches)
    sums = np.zeros(6)
    for x, y in batches:
        r0, r1, r2 = residual_parts(x, y)
        sums += [float((a * b).sum()) for a, b in
                 ((r0, r0), (r0, r1), (r0, r2), (r1, r1), (r1, r2), (r2, r2))]
    return sums / total


def closed_form(coef, alpha, beta):
    c00, c01, c02, c11, c12, c22 = coef
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    return c00 + 2 * a * c01 + 2 * b * c02 + a * a * c11 + 2 * a * b * c12 + b * b * c22


def test_non_square_grid_matches_closed_form_at_alpha_i_beta_j():
    model = models.linear().double()
    data = models.regression_data()["train"]
    problem = Problem.create(model, F.mse_loss, data)
    d0, d1 = (d.vectors for d in random_directions(problem.params, 2, seed=0, include_1d=True))
    alpha = np.linspace(-1.0, 2.0, 7)  # asymmetric, different lengths: a transpose cannot pass
    beta = np.linspace(-0.5, 0.3, 5)
    result = compute_surface(problem, [d0, d1], [alpha, beta])
    loss = result.values["train"]["loss"]
    assert loss.shape == (7, 5) and result.done.all()
    x64 = [(x.double(), y.double()) for x, y in data]
    expected = closed_form(quadratic_coefficients(problem.params, d0, d1, x64), alpha, beta)
    np.testing.assert_allclose(loss, expected, rtol=RTOL)
    # and cell by cell, the way a reader of the file indexes it
    for i, j in [(0, 4), (6, 0), (3, 2)]:
        theta = {n: problem.params[n] + alpha[i] * d0[n] + beta[j] * d1[n] for n in problem.params}
        assert loss[i, j] == pytest.approx(problem.loss(theta), rel=RTOL)


def test_grid_coefficients_are_in_ij_order():
    coef = grid_coefficients([np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0])])
    np.testing.assert_array_equal(coef, [[1, 10], [1, 20], [2, 10], [2, 20], [3, 10], [3, 20]])


def test_one_dimensional_surface_matches_closed_form():
    model = models.linear().double()
    data = models.regression_data()["train"]
    problem = Problem.create(model, F.mse_loss, data)
    d0, d1 = (d.vectors for d in random_directions(problem.params, 2, seed=1, include_1d=True))
    alpha = np.linspace(-2.0, 1.0, 9)
    result = compute_surface(problem, [d0], [alpha])
    x64 = [(x.double(), y.double()) for x, y in data]
    expected = closed_form(quadratic_coefficients(problem.params, d0, d1, x64), alpha, [0.0])[:, 0]
    np.testing.assert_allclose(result.values["train"]["loss"], expected, rtol=RTOL)


# ---------------------------------------------------------------------------- batched vs reference
def reference_metrics(model: nn.Module, point: dict, batches, loss_fn, *,
                      recompute_bn: int = 0) -> tuple[float, float]:
    """Loss and accuracy at ``point`` the plain way: a fresh copy of the module with the
    point's weights loaded, called batch by batch (batch means weighted by batch size)."""
    net = copy.deepcopy(model).double()
    state = net.state_dict()
    state.update({n: v.detach().clone() for n, v in point.items()})
    net.load_state_dict(state)
    if recompute_bn:
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
                m.train()
        with torch.no_grad():
            for batch in batches[:recompute_bn]:
                net(_inputs(batch))
    net.eval()
    total_loss = total_correct = count = 0.0
    with torch.no_grad():
        for batch in batches:
            inputs, target = _inputs(batch), _target(batch)
            out = net(**inputs) if isinstance(inputs, dict) else net(inputs)
            n = len(target)
            total_loss += float(loss_fn(out, target)) * n
            total_correct += float((out.argmax(-1) == target).double().sum())
            count += n
    return total_loss / count, total_correct / count


def _inputs(batch):
    if isinstance(batch, dict):
        return {k: v.double() for k, v in batch.items() if k != "label"}
    x = batch[0]
    return x.double() if x.is_floating_point() else x


def _target(batch):
    return batch["label"] if isinstance(batch, dict) else batch[1]


def random_points(problem: Problem, count: int, seed: int) -> dict[str, torch.Tensor]:
    """θ* plus ``count`` perturbations along filter-normalized directions (1-D included)."""
    dirs = [d.vectors for d in random_directions(problem.params, 2, seed=seed, include_1d=True)]
    coef = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(count, 2))
    coef[0] = 0.0
    return points_at(problem.params, dirs, coef)


CASES = {
    # name: (model factory, data factory, loss, bn policy, must vmap?)
    "mlp": (models.mlp, lambda: models.vector_data()["train"], F.cross_entropy, "eval", True),
    "cnn_bn_eval": (models.cnn_bn, lambda: models.image_data()["train"], F.cross_entropy, "eval", True),
    "cnn_bn_recompute": (models.cnn_bn, lambda: models.image_data()["train"], F.cross_entropy,
                         "recompute", None),
    "no_vmap_model": (lambda: models.seeded(models.NoVmapMLP), lambda: models.vector_data()["train"],
                      F.cross_entropy, "eval", False),
    "no_vmap_loss": (models.mlp, lambda: models.vector_data()["train"], models.item_loss, "eval", False),
    "lstm": (models.lstm, lambda: models.sequence_data()["train"], F.cross_entropy, "eval", None),
    "gru": (models.gru, lambda: models.sequence_data()["train"], F.cross_entropy, "eval", None),
    "transformer": (models.transformer, lambda: models.token_data()["train"], F.cross_entropy, "eval", None),
    "dict_batches": (models.dict_model, lambda: models.dict_data()["train"], F.cross_entropy, "eval", True),
}


@pytest.mark.parametrize("mode", ["vmap", "loop", "auto"])
@pytest.mark.parametrize("case", list(CASES))
def test_batched_evaluation_equals_one_point_at_a_time(case, mode):
    """Every evaluation strategy (points batched by vmap; one point per pass over merged
    batches; the device's default) equals a fresh module per point."""
    make_model, make_data, loss_fn, bn_policy, must_vmap = CASES[case]
    model, data = make_model().double(), make_data()
    if case.startswith("cnn"):
        models.trained_bn_state(model, [(x.double(), y) for x, y in data])
    problem = Problem.create(model, loss_fn, data, bn_policy=bn_policy, bn_batches=1)
    assert problem.bn_policy == bn_policy
    problem.max_points_per_pass = 3  # 7 points: chunks of 3, 3, 1
    problem.eval_mode = mode
    points = random_points(problem, 7, seed=len(case))
    batched = problem.evaluate(points, show_progress=False)
    if mode == "vmap" and must_vmap is not None:
        assert problem._vmap_ok is must_vmap, "the path under test was not the one taken"
    if mode == "auto":
        assert problem.resolved_eval_mode() == "loop"  # CPU
    for k in range(7):
        point = {n: p[k] for n, p in points.items()}
        loss, accuracy = reference_metrics(model, point, data, loss_fn,
                                           recompute_bn=1 if bn_policy == "recompute" else 0)
        assert float(batched["loss"][k]) == pytest.approx(loss, rel=RTOL), k
        assert float(batched["accuracy"][k]) == pytest.approx(accuracy, abs=1e-12), k
        assert problem.loss(point) == pytest.approx(loss, rel=RTOL)
    # the perturbations matter: not every point has the checkpoint's loss
    assert float(batched["loss"].std()) > 1e-3


def test_recompute_differs_from_eval_policy_on_a_bn_model():
    model = models.trained_bn_state(models.cnn_bn().double(),
                                    [(x.double(), y) for x, y in models.image_data()["train"]])
    data = models.image_data()["train"]
    fixed = Problem.create(model, F.cross_entropy, data, bn_policy="eval")
    recomputed = Problem.create(model, F.cross_entropy, data, bn_policy="recompute", bn_batches=2)
    points = random_points(fixed, 4, seed=9)
    a = fixed.evaluate(points, show_progress=False)["loss"]
    b = recomputed.evaluate(points, show_progress=False)["loss"]
    assert not torch.allclose(a[1:], b[1:], rtol=1e-6)
    assert recomputed.describe()["bn_policy"] == "recompute"
    # no BatchNorm: 'recompute' is reported as what actually ran
    assert Problem.create(models.mlp(), F.cross_entropy, models.vector_data(),
                          bn_policy="recompute").describe()["bn_policy"] == "eval"


def test_divergent_points_are_stored_as_non_finite_and_marked_done():
    problem = Problem.create(models.exp_model().double(), F.cross_entropy, models.vector_data())
    dirs = [d.vectors for d in random_directions(problem.params, 2, seed=0)]
    axis = np.linspace(-400.0, 400.0, 5)
    result = compute_surface(problem, dirs, [axis, axis])
    loss = result.values["train"]["loss"]
    assert result.done.all()
    assert not np.isfinite(loss).all() and np.isfinite(loss[2, 2])


# ---------------------------------------------------------------------------- Hessian directions
def test_surface_along_the_top_hessian_eigenvector_bends_with_its_eigenvalue(tmp_path):
    """`--directions hessian`: d0 is the unit top eigenvector, so L(α) ≈ L(0) + ½λ₁α² near 0.

    Float64; a central second difference with α = ±1e-3 has O(α²) truncation error from the
    third/fourth derivatives, far below the rtol 1e-4 used here; a random or unnormalized
    direction would miss by orders of magnitude.
    """
    from landscape import cli
    from landscape.store import open_results

    torch.save(models.mlp().double().state_dict(), tmp_path / "m.pt")
    out = tmp_path / "h.h5"
    assert cli.main(["surface", str(tmp_path / "m.pt"), "--model", "tests.models:mlp", "--data",
                     "tests.models:vector_data", "--loss", "cross_entropy", "--dtype", "float64",
                     "--directions", "hessian", "--dims", "1", "--points", "3", "--range", "-0.001", "0.001",
                     "--splits", "train", "--quiet", "--no-report", "-o", str(out)]) == 0
    with open_results(out) as h5:
        loss = h5["surfaces/1d/train/loss"][()]
        eigenvalue = h5["directions/d0"].attrs["eigenvalue"]
        norm = np.sqrt(sum((h5[f"directions/d0/{n}"][()] ** 2).sum() for n in h5["directions/d0"]))
    second_difference = (loss[0] - 2 * loss[1] + loss[2]) / 1e-3 ** 2
    assert norm == pytest.approx(1.0, rel=1e-10)
    assert second_difference == pytest.approx(eigenvalue, rel=1e-4)


def test_loop_mode_merges_batches_within_the_budget_and_keeps_ragged_ones():
    from landscape.problem import Batch, _merge

    data = models.vector_data()["train"]
    problem = Problem.create(models.mlp().double(), F.cross_entropy, data)
    merged = problem._merged_batches("train")
    assert len(merged) == 1 and merged[0].size == sum(len(y) for _, y in data)
    problem._merged.clear()
    problem.memory_budget_bytes = 1  # room for one original batch at a time: nothing merges
    assert [b.size for b in problem._merged_batches("train")] == [len(y) for _, y in data]
    ragged = [Batch(torch.zeros(2, n), torch.zeros(2), 2) for n in (3, 4)]
    assert _merge(ragged, 100) == ragged
