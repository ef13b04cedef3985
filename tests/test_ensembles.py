"""SWA (averaged weights) vs FGE (averaged predictions): landscape.sharpness.ensembles.swa_vs_fge.

Ground truth:
* a model whose output is a quadratic function of its parameters, f(x; θ) = ½θᵀAθ + xᵀθ: with
  w̄ = mean_i w_i and Δ_i = w_i − w̄, mean_i f(w_i) − f(w̄) = ½ mean_i Δ_iᵀAΔ_i exactly (the
  terms linear in Δ_i cancel), for every x, so the prediction gap is O(‖Δ‖²) and scales by s²
  when every Δ_i does by s;
* for classifiers, the same numbers computed by hand on fresh modules (softmax of each
  checkpoint, their mean, NLL and argmax; the averaged weights with ``update_bn`` for BatchNorm).
All in float64. Tolerances: rel 1e-10 for the quadratic gap (a difference of O(1) outputs that is
O(s²) itself: cancellation costs |f|/gap · eps ≈ 1e-12 at the smallest s, 0.01; measured 1.1e-12), rel 1e-12
elsewhere (the same operations in another order).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn

from landscape import LandscapeError, Problem
from landscape.sharpness.ensembles import check_swa_vs_fge, swa_vs_fge
from tests.models import CNNBN, MLP, image_data, trained_bn_state, vector_data

D = 5


class QuadraticOutput(nn.Module):
    """f(x; θ) = ½θᵀAθ + xᵀθ, one number per example."""

    def __init__(self, theta: Tensor, a: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.register_buffer("a", a.clone())

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * self.theta @ self.a @ self.theta + x @ self.theta


def quadratic_setup(scale: float) -> tuple[list[Problem], Tensor, Tensor]:
    """Four checkpoints c + s·Δ_i (Δ_i centred) as Problems; returns them, A and the s·Δ_i."""
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(D, D, generator=gen, dtype=torch.float64)
    a = m @ m.T + torch.eye(D, dtype=torch.float64)  # SPD: the gap is positive, so ‖gap‖ = gap
    center = torch.randn(D, generator=gen, dtype=torch.float64)
    deltas = torch.randn(4, D, generator=gen, dtype=torch.float64)
    deltas = scale * (deltas - deltas.mean(0))
    x = torch.randn(10, D, generator=gen, dtype=torch.float64)
    target = torch.randn(10, generator=gen, dtype=torch.float64)
    data = {"train": [(x[:6], target[:6]), (x[6:], target[6:])]}
    problems = [Problem.create(QuadraticOutput(center + d, a), F.mse_loss, data, dtype=torch.float64)
                for d in deltas]
    return problems, a, deltas


def test_gap_on_a_quadratic_is_half_the_mean_delta_a_delta() -> None:
    problems, a, deltas = quadratic_setup(scale=1.0)
    result = swa_vs_fge(problems, prediction="outputs")
    expected_gap = 0.5 * float(torch.einsum("id,de,ie->i", deltas, a, deltas).mean())
    assert result.splits["train"].prediction_gap == pytest.approx(expected_gap, rel=1e-10)
    assert result.mean_sq_distance == pytest.approx(float((deltas ** 2).sum(1).mean()), rel=1e-12)
    assert result.num_checkpoints == 4 and result.num_parameters == D and result.bn_rule == "no BatchNorm"

    # the losses, by hand: MSE of mean_i f(w_i) and of f(w̄)
    x = torch.cat([b.inputs for b in problems[0].batches()])
    target = torch.cat([b.target for b in problems[0].batches()])
    with torch.no_grad():
        outputs = torch.stack([QuadraticOutput(p.params["theta"], a)(x) for p in problems])
        swa_out = QuadraticOutput(torch.stack([p.params["theta"] for p in problems]).mean(0), a)(x)
    split = result.splits["train"]
    assert split.fge_loss == pytest.approx(float(((outputs.mean(0) - target) ** 2).mean()), rel=1e-12)
    assert split.swa_loss == pytest.approx(float(((swa_out - target) ** 2).mean()), rel=1e-12)
    assert split.member_loss == pytest.approx(float(((outputs - target) ** 2).mean()), rel=1e-12)
    assert split.loss_gap == pytest.approx(split.fge_loss - split.swa_loss, rel=1e-12)
    assert torch.isnan(torch.tensor(split.swa_accuracy))  # regression: no accuracy


def test_gap_is_second_order_in_the_spread() -> None:
    """Scaling every Δ_i by s scales the gap by s² (and mean ‖Δ_i‖² by s²): gap/mean‖Δ‖² is constant."""
    gaps, distances = [], []
    for scale in (1.0, 0.1, 0.01):
        result = swa_vs_fge(quadratic_setup(scale)[0], prediction="outputs")
        gaps.append(result.splits["train"].prediction_gap)
        distances.append(result.mean_sq_distance)
    assert gaps[1] / gaps[0] == pytest.approx(1e-2, rel=1e-10)
    assert gaps[2] / gaps[0] == pytest.approx(1e-4, rel=1e-10)
    assert distances[2] / distances[0] == pytest.approx(1e-4, rel=1e-12)


def perturbed_mlps(count: int, spread: float) -> list[nn.Module]:
    torch.manual_seed(0)
    center = MLP().double()
    gen = torch.Generator().manual_seed(1)
    models = []
    for _ in range(count):
        model = copy.deepcopy(center)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(spread * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        models.append(model)
    return models


def hand_made(models: list[nn.Module], averaged: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    with torch.no_grad():
        probs = torch.stack([torch.softmax(m.eval()(x), -1) for m in models])
        swa_out = averaged.eval()(x)
    fge = probs.mean(0)
    nll = lambda p: float(-torch.log(p[torch.arange(len(y)), y]).mean())  # noqa: E731
    return {"fge_loss": nll(fge), "fge_accuracy": float((fge.argmax(-1) == y).double().mean()),
            "swa_loss": float(F.cross_entropy(swa_out, y)),
            "swa_accuracy": float((swa_out.argmax(-1) == y).double().mean()),
            "member_loss": sum(nll(p) for p in probs) / len(models),
            "prediction_gap": float((fge - torch.softmax(swa_out, -1)).norm(dim=1).mean())}


def averaged_module(models: list[nn.Module]) -> nn.Module:
    out = copy.deepcopy(models[0])
    with torch.no_grad():
        for name, p in out.named_parameters():
            p.copy_(torch.stack([dict(m.named_parameters())[name] for m in models]).mean(0))
    return out


def test_classifier_probabilities_by_hand() -> None:
    models = perturbed_mlps(3, spread=0.3)
    data = vector_data()
    problems = [Problem.create(m, F.cross_entropy, data, dtype=torch.float64) for m in models]
    result = swa_vs_fge(problems)
    assert list(result.splits) == ["train", "test"] and result.prediction == "probabilities"
    averaged = averaged_module(models)
    for split, batches in data.items():
        x = torch.cat([b[0] for b in batches]).double()
        y = torch.cat([b[1] for b in batches])
        expected = hand_made(models, averaged, x, y)
        got = result.splits[split]
        for key, value in expected.items():
            assert getattr(got, key) == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert 0 < result.splits["train"].prediction_gap  # the spread is large enough to show
    only_test = swa_vs_fge(problems, splits=["test"], prediction="outputs")
    assert list(only_test.splits) == ["test"]
    assert only_test.splits["test"].swa_loss == pytest.approx(result.splits["test"].swa_loss, rel=1e-12)


def test_batchnorm_statistics_are_recomputed_at_the_average() -> None:
    """w_SWA uses running statistics re-estimated at w_SWA on checkpoint 0's bn_batches train
    batches (as update_bn); each checkpoint keeps its own."""
    data = image_data()
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(trained_bn_state(CNNBN().double(), [(x.double(), y) for x, y in data["train"]]))
    problems = [Problem.create(m, F.cross_entropy, data, dtype=torch.float64, bn_batches=1) for m in models]
    result = swa_vs_fge(problems)
    assert result.bn_rule.startswith("recomputed at w_SWA on 1 train batches")

    averaged = averaged_module(models)
    first_batch = [(data["train"][0][0].double(), data["train"][0][1])]
    update_bn(first_batch, averaged)
    x = torch.cat([b[0] for b in data["train"]]).double()
    y = torch.cat([b[1] for b in data["train"]])
    expected = hand_made(models, averaged, x, y)
    got = result.splits["train"]
    for key, value in expected.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_bad_input() -> None:
    data = vector_data()
    one = Problem.create(MLP(), F.cross_entropy, data)
    with pytest.raises(LandscapeError, match="at least 2"):
        swa_vs_fge([one])
    wider = Problem.create(MLP(hidden=8), F.cross_entropy, data)
    with pytest.raises(LandscapeError, match=r"checkpoint 1 parameter 'fc1.weight' \[8, 6\]") as info:
        swa_vs_fge([one, wider])
    assert "\n" not in str(info.value)
    with pytest.raises(LandscapeError, match="prediction must be"):
        swa_vs_fge([one, one], prediction="logits")  # type: ignore[arg-type]
    with pytest.raises(LandscapeError, match="no data split 'valid'"):
        swa_vs_fge([one, one], splits=["valid"])
    regression = quadratic_setup(1.0)[0]
    with pytest.raises(LandscapeError, match="use prediction='outputs'"):
        swa_vs_fge(regression)


def test_check_refuses_up_front_what_swa_vs_fge_would_refuse_midway() -> None:
    data = vector_data()
    one = Problem.create(MLP(), F.cross_entropy, data)
    check_swa_vs_fge([one, one])
    with pytest.raises(LandscapeError, match=r"checkpoint 1 parameter 'fc1.weight' \[8, 6\]"):
        check_swa_vs_fge([one, Problem.create(MLP(hidden=8), F.cross_entropy, data)])
    regression = quadratic_setup(1.0)[0]
    with pytest.raises(LandscapeError, match="use prediction='outputs'"):
        check_swa_vs_fge(regression)
    check_swa_vs_fge(regression, "outputs")
