"""Problem: the user's model is never mutated; the empirical risk and its gradient are the
batch-size-weighted means; bad data is refused with one clear message.

Tolerances: float64 throughout; a batch-weighted mean versus the mean over the concatenated
data differ only by summation order (~1e-16 relative), checked at rtol 1e-12.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import LandscapeError
from landscape.problem import Problem, flatten, make_batch, unflatten
from landscape.scan import run_scan
from landscape.surfaces import SurfaceSpec, compute_surface, directions_step, random_directions, surface_step
from tests import models


def snapshot(model: nn.Module) -> dict:
    """Everything about a module that an analysis could disturb."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=False).items()},
        "dtypes": {k: v.dtype for k, v in model.state_dict().items()},
        "data_ptrs": {k: v.data_ptr() for k, v in model.state_dict().items()},
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "bn": {n: (m.momentum, m.track_running_stats) for n, m in model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)},
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["dtypes"] == before["dtypes"]
    assert after["data_ptrs"] == before["data_ptrs"]
    assert after["bn"] == before["bn"]
    assert all(g is None for g in after["grads"].values())
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key  # bit-identical, incl. num_batches_tracked


def exercise(problem: Problem, tmp_path) -> None:
    """Everything the spine does to a problem: surfaces, gradients, BN recomputation, a scan file."""
    dirs = random_directions(problem.params, 2, seed=0, include_1d=True)
    compute_surface(problem, [d.vectors for d in dirs], [np.linspace(-1, 1, 3)] * 2)
    problem.gradient()
    problem.loss()
    if problem.bn_policy == "recompute":
        problem.recompute_bn_buffers({n: p * 1.1 for n, p in problem.params.items()})
    spec = SurfaceSpec("1d", ["d0"], [np.linspace(-1, 1, 4)], problem.split_names)
    run_scan(problem, tmp_path / "scan.h5", [directions_step([d.name for d in dirs], lambda: dirs), surface_step(spec)],
             {"seed": 0})


def test_cnn_with_bn_in_train_mode_is_untouched_with_recompute_policy(tmp_path):
    data = models.image_data()["train"]
    model = models.trained_bn_state(models.cnn_bn(), data).train()
    model.bn2.eval()  # mixed modes must survive too
    model.conv1.bias.requires_grad_(False)
    before = snapshot(model)
    assert int(model.bn1.num_batches_tracked) == 2
    problem = Problem.create(model, F.cross_entropy, data, bn_policy="recompute", bn_batches=2)
    exercise(problem, tmp_path)
    assert_unchanged(model, before)
    assert "conv1.bias" not in problem.params  # frozen: held fixed, not part of θ
    assert "conv1.bias" in problem.buffers


def test_dropout_model_in_train_mode_is_untouched_and_evaluated_without_dropout(tmp_path):
    model = models.dropout_mlp().train()
    before = snapshot(model)
    data = models.vector_data()
    problem = Problem.create(model, F.cross_entropy, data)
    exercise(problem, tmp_path)
    assert_unchanged(model, before)
    assert problem.describe()["dropout_modules_disabled"] == ["drop"]
    # deterministic, and equal to the eval-mode model's loss
    first, second = problem.loss(), problem.loss()
    assert first == second
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        x = torch.cat([b[0] for b in data["train"]])
        y = torch.cat([b[1] for b in data["train"]])
        assert first == pytest.approx(float(F.cross_entropy(reference(x), y)), rel=1e-6)


def test_float64_model_is_untouched_and_stays_float64(tmp_path):
    model = models.cnn_bn().double()
    before = snapshot(model)
    problem = Problem.create(model, F.cross_entropy, models.image_data())
    assert problem.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in problem.params.values())
    exercise(problem, tmp_path)
    assert_unchanged(model, before)


def test_dtype_conversion_works_on_a_private_copy(tmp_path):
    model = models.mlp()
    before = snapshot(model)
    problem = Problem.create(model, F.cross_entropy, models.vector_data(), dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in problem.params.values())
    assert all(b.inputs.dtype == torch.float64 for b in problem.batches())
    assert all(b.target.dtype == torch.int64 for b in problem.batches())  # labels keep their dtype
    exercise(problem, tmp_path)
    assert_unchanged(model, before)


def test_empirical_risk_and_gradient_weight_batches_by_size():
    model = models.mlp().double()
    x, y = models.vectors(30, seed=0, dtype=torch.float64)
    uneven = models.batches(x, y, [4, 19, 7])
    problem = Problem.create(model, F.cross_entropy, uneven)
    assert problem.num_examples() == 30 and [b.size for b in problem.batches()] == [4, 19, 7]
    point = {n: p + 0.1 * torch.randn_like(p) for n, p in problem.params.items()}

    reference = copy.deepcopy(model)
    reference.load_state_dict(point)
    full = F.cross_entropy(reference(x), y)
    full.backward()
    assert problem.loss(point) == pytest.approx(full.item(), rel=1e-12)
    grad = problem.gradient(point)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grad[name], p.grad, rtol=1e-12, atol=1e-14)
    # an unweighted mean of batch means would differ clearly
    batch_means = [float(problem.batch_loss(point, b)) for b in problem.batches()]
    assert abs(np.mean(batch_means) - full.item()) > 1e-4


def test_max_examples_caps_each_split():
    problem = Problem.create(models.mlp(), F.cross_entropy, models.vector_data(), max_examples=20)
    assert problem.num_examples("train") == 20 and [b.size for b in problem.batches()] == [16, 4]
    assert problem.num_examples("test") == 12


def test_flatten_unflatten_round_trip():
    params = Problem.create(models.cnn_bn(), F.cross_entropy, models.image_data()).params
    flat = flatten(params)
    assert flat.numel() == sum(p.numel() for p in params.values())
    back = unflatten(flat, params)
    assert list(back) == list(params) and all(torch.equal(back[n], params[n]) for n in params)


def test_dict_batches_pass_keyword_inputs():
    batch = make_batch({"image": torch.zeros(3, 6), "extra": torch.zeros(3, 2), "label": torch.zeros(3)},
                       "here")
    assert set(batch.inputs) == {"image", "extra"} and batch.size == 3
    with pytest.raises(LandscapeError, match="no target key"):
        make_batch({"image": torch.zeros(3, 6)}, "here")
    with pytest.raises(LandscapeError, match="must be"):
        make_batch(torch.zeros(3), "here")


@pytest.mark.parametrize("data, message", [
    (models.vector_float_labels(), "loss failed"),  # float class labels with cross_entropy
    ([(torch.zeros(5, 7), torch.zeros(5, dtype=torch.long))], "model failed"),  # wrong width
    ([], "empty"),
    ([(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long))], "empty"),
])
def test_bad_data_is_refused_with_one_line(data, message):
    with pytest.raises(LandscapeError, match=message) as info:
        Problem.create(models.mlp(), F.cross_entropy, data)
    assert "\n" not in str(info.value)


def test_nan_weights_and_parameterless_models_are_refused():
    model = models.mlp()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    with pytest.raises(LandscapeError, match="NaN"):
        Problem.create(model, F.cross_entropy, models.vector_data())
    with pytest.raises(LandscapeError, match="no parameters"):
        Problem.create(nn.ReLU(), F.cross_entropy, models.vector_data())
    with pytest.raises(LandscapeError, match="not a scalar"):
        Problem.create(models.mlp(), lambda o, t: F.cross_entropy(o, t, reduction="none"),
                       models.vector_data())


@pytest.mark.parametrize("option", ["max_examples", "max_batches", "bn_batches"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_count_options_are_checked_once_when_the_problem_is_made(option, value):
    with pytest.raises(LandscapeError, match=f"{option} must be an integer ≥ 1"):
        Problem.create(models.mlp(), F.cross_entropy, models.vector_data(), **{option: value})
