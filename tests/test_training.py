"""SAM / adaptive SAM and SWA (landscape.training) against their formulas in float64.

Ground truth: the SAM step written out with torch.func on a separate copy of the model
(g = ∇L_B(θ), ε̂ = ρ g/‖g‖ or ρ T²g/‖Tg‖ with T = |θ|, then ∇L_B(θ + ε̂), BatchNorm on batch
statistics in both passes), the SGD-with-momentum update written out by hand, and SWA's
arithmetic mean of the snapshots and ``swa_utils.update_bn`` run by hand. Tolerances: rel 1e-12
in float64: the two sides do the same arithmetic in a different order (norms summed per tensor
vs. at once, a running mean vs. one mean), which costs a few ulps per step.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.optim.swa_utils import update_bn

from landscape.errors import LandscapeError
from landscape.training import SAM, SWA

RTOL = 1e-12  # float64, same operations in another order (see module docstring)


def small_model(batchnorm: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 6)] + ([nn.BatchNorm1d(6)] if batchnorm else []) + [nn.Tanh(), nn.Linear(6, 3)]
    return nn.Sequential(*layers).double().train()


def batch(seed: int, n: int = 12) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def closure_for(model: nn.Module, x: Tensor, y: Tensor):
    def closure() -> Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    return closure


def params_of(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def sam_gradient(reference: nn.Module, theta: dict[str, Tensor], x: Tensor, y: Tensor, rho: float,
                 adaptive: bool) -> tuple[dict[str, Tensor], float]:
    """∇L_B(θ + ε̂) by the formula, and L_B(θ). ``reference`` is a train-mode copy; its buffers are
    cloned per call so nothing is written to them (train-mode BatchNorm uses batch statistics)."""
    buffers = dict(reference.named_buffers())

    def loss(p: dict[str, Tensor]) -> Tensor:
        state = {**p, **{n: b.clone() for n, b in buffers.items()}}
        return F.cross_entropy(functional_call(reference, state, (x,)), y)

    g = torch.func.grad(loss)(theta)
    t = {n: theta[n].abs() if adaptive else torch.ones_like(theta[n]) for n in theta}
    norm = math.sqrt(sum(float(((t[n] * g[n]) ** 2).sum()) for n in theta))
    eps = {n: rho * t[n] ** 2 * g[n] / norm for n in theta}
    return torch.func.grad(loss)({n: theta[n] + eps[n] for n in theta}), float(loss(theta))


def assert_params_close(actual: dict[str, Tensor], expected: dict[str, Tensor], rtol: float = RTOL) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        scale = float(expected[name].abs().max())
        torch.testing.assert_close(actual[name], expected[name], rtol=rtol, atol=rtol * scale)


# ---------------------------------------------------------------------------- SAM
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_sam_step_equals_the_formula(adaptive: bool, batchnorm: bool) -> None:
    model = small_model(batchnorm)
    reference = copy.deepcopy(model)
    x, y = batch(1)
    theta = params_of(model)
    lr, rho = 0.3, 0.2
    sam = SAM(model, torch.optim.SGD, rho=rho, adaptive=adaptive, lr=lr)
    loss = sam.step(closure_for(model, x, y))

    g_perturbed, loss_at_theta = sam_gradient(reference, theta, x, y, rho, adaptive)
    assert float(loss.detach()) == pytest.approx(loss_at_theta, rel=RTOL)
    assert_params_close(params_of(model), {n: theta[n] - lr * g_perturbed[n] for n in theta})
    # the perturbation is really there: a plain SGD step lands elsewhere
    plain = torch.func.grad(lambda p: F.cross_entropy(functional_call(copy.deepcopy(reference), p, (x,)), y))(theta)
    assert max(float((theta[n] - lr * plain[n] - p).abs().max()) for n, p in params_of(model).items()) > 1e-6


def test_perturbed_pass_leaves_batchnorm_statistics_alone() -> None:
    model = small_model(batchnorm=True)
    once = copy.deepcopy(model)
    x, y = batch(2)
    with torch.no_grad():
        once(x)  # one train-mode pass at θ: what the first SAM pass alone must leave behind
    sam = SAM(model, torch.optim.SGD, rho=0.5, lr=0.1)
    sam.step(closure_for(model, x, y))
    bn, expected = model[1], once[1]
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, expected.running_mean, rtol=RTOL, atol=0)
    torch.testing.assert_close(bn.running_var, expected.running_var, rtol=RTOL, atol=0)
    assert bn.track_running_stats and bn.training  # restored after the perturbed pass
    sam.step(closure_for(model, *batch(3)))
    assert int(bn.num_batches_tracked) == 2


def test_sam_with_momentum_weight_decay_and_a_scheduler_and_state_dict() -> None:
    model = small_model(batchnorm=True)
    reference = copy.deepcopy(model)
    lr, rho, momentum, decay = 0.2, 0.1, 0.9, 1e-3
    sam = SAM(model, torch.optim.SGD, rho=rho, lr=lr, momentum=momentum, weight_decay=decay)
    scheduler = torch.optim.lr_scheduler.StepLR(sam, step_size=1, gamma=0.5)
    theta, buf = params_of(model), None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for step in range(3):
            x, y = batch(10 + step)
            sam.step(closure_for(model, x, y))
            scheduler.step()
            g, _ = sam_gradient(reference, theta, x, y, rho, adaptive=False)
            d = {n: g[n] + decay * theta[n] for n in theta}
            buf = d if buf is None else {n: momentum * buf[n] + d[n] for n in theta}
            theta = {n: theta[n] - lr * 0.5 ** step * buf[n] for n in theta}
            assert sam.param_groups[0]["lr"] == pytest.approx(lr * 0.5 ** (step + 1))
            assert sam.param_groups is sam.base_optimizer.param_groups
    assert_params_close(params_of(model), theta)

    saved = copy.deepcopy(sam.state_dict())
    assert saved["param_groups"][0]["rho"] == rho and saved["param_groups"][0]["momentum"] == momentum
    assert all("momentum_buffer" in s for s in saved["state"].values()) and len(saved["state"]) == 6
    twin = copy.deepcopy(model)
    resumed = SAM(twin, torch.optim.SGD, rho=1.0, lr=1.0)  # settings come from the state dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups is resumed.base_optimizer.param_groups
    assert resumed.param_groups[0]["rho"] == rho and resumed.param_groups[0]["lr"] == pytest.approx(lr / 8)
    x, y = batch(20)
    sam.step(closure_for(model, x, y))
    resumed.step(closure_for(twin, x, y))
    assert_params_close(params_of(twin), params_of(model))


def test_sam_with_another_base_optimizer_and_a_second_param_group() -> None:
    model = small_model()
    sam = SAM(model, torch.optim.Adam, rho=0.05, lr=1e-2)
    extra = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    sam.add_param_group({"params": [extra], "lr": 0.5})
    assert sam.param_groups[1]["rho"] == 0.05 and sam.param_groups[1]["betas"] == (0.9, 0.999)
    x, y = batch(4)
    sam.step(closure_for(model, x, y))
    assert all(len(sam.state[p]) > 0 for p in model.parameters())  # Adam's moments, shared state
    with pytest.raises(LandscapeError, match="rho"):
        sam.add_param_group({"params": [nn.Parameter(torch.zeros(1))], "rho": 0.0})


def test_zero_gradient_gives_no_perturbation_and_no_nan() -> None:
    model = small_model()
    before = params_of(model)
    x, _ = batch(5)

    def zero_loss() -> Tensor:
        loss = model(x).sum() * 0.0
        loss.backward()
        return loss

    SAM(model, torch.optim.SGD, rho=0.05, lr=0.1).step(zero_loss)
    assert_params_close(params_of(model), before, rtol=0)


def test_adaptive_sam_at_zero_weights_gives_no_perturbation_and_no_nan() -> None:
    """T = |θ| = 0 makes ‖Tg‖ = 0 although g is not (the last bias's gradient): ε̂ = 0, plain SGD."""
    model = small_model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    zeros = params_of(model)
    x, y = batch(5, n=10)  # 10 labels over 3 classes cannot all be 1/3: the bias gradient p − onehot ≠ 0
    SAM(model, torch.optim.SGD, rho=0.05, adaptive=True, lr=0.1).step(closure_for(model, x, y))
    fresh = small_model()
    g = torch.func.grad(lambda p: F.cross_entropy(functional_call(fresh, p, (x,)), y))(zeros)
    assert float(g["2.bias"].abs().max()) > 0.01
    assert_params_close(params_of(model), {n: -0.1 * g[n] for n in g})


@pytest.mark.parametrize("kwargs, match", [
    ({"rho": 0.0}, "rho must be"), ({"rho": -0.1}, "rho must be"), ({"rho": float("nan")}, "rho must be"),
    ({"rho": True}, "rho must be"), ({"base_optimizer": object}, "base_optimizer"),
    ({"lr": -1.0}, "SGD refused"), ({"nesterov_typo": True}, "SGD refused"),
])
def test_sam_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(LandscapeError, match=match) as info:
        SAM(small_model(), **kwargs)
    assert "\n" not in str(info.value)


def test_a_failing_perturbed_pass_leaves_theta_where_it_was() -> None:
    model = small_model(batchnorm=True)
    before = params_of(model)
    x, y = batch(6)
    calls = []

    def closure() -> Tensor:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory at θ + ε̂")
        return closure_for(model, x, y)()

    with pytest.raises(RuntimeError, match="θ"):
        SAM(model, rho=0.5, lr=0.1).step(closure)
    assert_params_close(params_of(model), before, rtol=0)
    assert model[1].track_running_stats


def test_sam_needs_a_closure_and_trainable_parameters() -> None:
    model = small_model()
    with pytest.raises(LandscapeError, match="closure"):
        SAM(model, lr=0.1).step()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(LandscapeError, match="no trainable"):
        SAM(model, lr=0.1)


# ---------------------------------------------------------------------------- SWA
def snapshots(model: nn.Module, count: int) -> list[dict[str, Tensor]]:
    """Seeded random weights standing in for the iterates of a training run."""
    gen = torch.Generator().manual_seed(7)
    return [{n: torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in model.named_parameters()}
            for _ in range(count)]


def load(model: nn.Module, weights: dict[str, Tensor]) -> None:
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(weights[n])


def test_swa_is_the_mean_of_the_snapshots() -> None:
    model = small_model()
    swa = SWA(model)
    taken = snapshots(model, 4)
    for weights in taken:
        load(model, weights)
        swa.update()
    assert swa.count == 4
    state = copy.deepcopy(model.state_dict())
    averaged = swa.averaged()
    mean = {n: torch.stack([w[n] for w in taken]).mean(0) for n in taken[0]}
    assert_params_close(params_of(averaged), mean)
    assert not averaged.training and model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # the model is only read

    other = small_model(seed=3)  # same architecture: its weights join the average
    swa.update(other)
    mean5 = {n: (4 * mean[n] + p) / 5 for n, p in params_of(other).items()}
    assert_params_close(params_of(swa.averaged()), mean5)


def test_swa_recomputes_batchnorm_statistics_like_update_bn() -> None:
    model = small_model(batchnorm=True)
    loader = [batch(30 + i, n=8) for i in range(3)]
    swa = SWA(model)
    taken = snapshots(model, 3)
    for weights in taken:
        load(model, weights)
        model(batch(40)[0])  # training moves the running statistics too
        swa.update()
    state = copy.deepcopy(model.state_dict())
    averaged = swa.averaged(loader)

    manual = copy.deepcopy(model)
    load(manual, {n: torch.stack([w[n] for w in taken]).mean(0) for n in taken[0]})
    update_bn(loader, manual)
    for name, expected in manual.state_dict().items():
        torch.testing.assert_close(averaged.state_dict()[name], expected, rtol=RTOL, atol=0)
    assert int(averaged[1].num_batches_tracked) == len(loader)
    assert not averaged.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_swa_bad_input() -> None:
    model = small_model(batchnorm=True)
    swa = SWA(model)
    with pytest.raises(LandscapeError, match="call update"):
        swa.averaged([batch(0)])
    swa.update()
    with pytest.raises(LandscapeError, match="loader="):
        swa.averaged()
    with pytest.raises(LandscapeError, match=r"'2.weight' of shape \[3, 6\] where the average has '1.weight'") as info:
        swa.update(small_model(batchnorm=False))
    assert "\n" not in str(info.value)
    with pytest.raises(LandscapeError, match="torch.nn.Module"):
        SWA("model")  # type: ignore[arg-type]
