"""ε-sharpness (Keskar et al.) and width along random rays, against closed forms in float64.

Ground truth: L(θ) = ½(θ − c)ᵀH(θ − c) (+ a constant) with θ* = c. The maximum of a convex
quadratic over a box is at a vertex (closed form for a diagonal H, enumeration of the 2^p
vertices otherwise); along a ray the rise is ½α²dᵀHd, crossing Δ at √(2Δ/dᵀHd).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape import LandscapeError, Problem, zoo
from landscape.sharpness.epsilon import box_half_widths, epsilon_sharpness, random_subspace
from landscape.sharpness.rays import first_crossing, ray_width
from landscape.surfaces.directions import random_directions
from tests.sharpness_cases import ParameterVector, ReluMLP, quadratic_loss, quadratic_problem, rescaled

H_DIAG = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1, 4.0], dtype=torch.float64)
CENTER = torch.tensor([0.3, -1.2, 0.0, 2.5, -0.7, 1.1], dtype=torch.float64)


def offset_quadratic(hessian: torch.Tensor, center: torch.Tensor, offset: float) -> Problem:
    """½(θ − c)ᵀH(θ − c) + offset, so L(θ*) = offset (the 1 + f denominator is exercised)."""
    quadratic = quadratic_loss(hessian.double(), center.double())
    data = [(torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))]
    return Problem.create(ParameterVector(center.double()), lambda out, t: quadratic(out, t) + offset, data,
                          dtype=torch.float64)


def small_relu_problem(model: torch.nn.Module) -> Problem:
    """The ReLU MLP on 256 digits (float64): enough for the rescaling checks, fast on 2 cores."""
    return Problem.create(model, F.cross_entropy, zoo.digits(128), dtype=torch.float64, max_examples=256)


@pytest.fixture(scope="module")
def relu_pair() -> tuple[Problem, Problem]:
    """An (untrained) ReLU MLP and the same function with fc1 × 3 and fc2's weight / 3."""
    torch.manual_seed(0)
    model = ReluMLP().double()
    return small_relu_problem(model), small_relu_problem(rescaled(model, 3.0))


# ---------------------------------------------------------------------------- first_crossing
def test_first_crossing_exact_hit_interpolation_never_and_non_finite():
    alpha = np.array([0.0, 1.0, 2.0, 3.0])
    assert first_crossing(alpha, np.array([0.0, 0.5, 1.0, 2.0]), 1.0) == (2.0, False)  # lands on a grid point
    width, censored = first_crossing(alpha, np.array([0.0, 0.2, 0.6, 0.9]), 0.5)
    assert not censored and width == pytest.approx(1.75, rel=1e-14)  # 1 + (0.5 − 0.2)/(0.6 − 0.2)
    assert first_crossing(alpha, np.array([0.0, 0.1, 0.2, 0.3]), 0.5) == (3.0, True)  # censored at α_max
    assert first_crossing(alpha, np.array([0.0, 0.1, np.nan, 0.3]), 0.5) == (2.0, False)  # no interpolation
    assert first_crossing(alpha, np.array([0.0, 0.1, np.inf, 9.0]), 0.5) == (2.0, False)
    width, _ = first_crossing(alpha, np.array([0.0, 2.0, 0.0, 2.0]), 1.0)  # the first crossing, not a later one
    assert width == pytest.approx(0.5, rel=1e-14)


def test_first_crossing_refuses_mismatched_or_unsorted_grids():
    with pytest.raises(LandscapeError, match="rise_curve"):
        first_crossing(np.arange(3.0), np.zeros(4), 1.0)
    with pytest.raises(LandscapeError, match="increasing"):
        first_crossing(np.array([0.0, 2.0, 1.0]), np.zeros(3), 1.0)


# ---------------------------------------------------------------------------- ε-sharpness
@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_full_space_epsilon_sharpness_is_the_box_maximum_of_a_diagonal_quadratic(offset):
    """max over |z_i| ≤ ε(|c_i| + 1) of ½Σh_i z_i² is at every vertex: ½Σh_i ε²(|c_i| + 1)².

    L-BFGS-B ends exactly on the bounds (it projects onto them), so only the summation order
    differs from the closed form: rel 1e-10.
    """
    epsilon = 1e-2
    result = epsilon_sharpness(offset_quadratic(torch.diag(H_DIAG), CENTER, offset), epsilon=epsilon)
    box_max = 0.5 * float((H_DIAG * (epsilon * (CENTER.abs() + 1)) ** 2).sum())
    assert result.name == "epsilon" and not result.rescaling_invariant
    assert result.baseline_loss == pytest.approx(offset, abs=1e-15)
    assert result.value == pytest.approx(100 * box_max / (1 + offset), rel=1e-10)
    assert result.parameters["max_loss"] == pytest.approx(offset + box_max, rel=1e-10)
    assert result.samples.tolist() == [result.parameters["max_loss"]]
    assert result.converged  # a vertex with the gradient pointing out of the box: a KKT point
    assert result.gradient_evaluations >= 2 and result.loss_evaluations == 1
    assert result.parameters["subspace_dim"] == 0 and 1 <= result.parameters["iterations"] <= 10


def test_random_subspace_has_unit_columns_and_is_seeded():
    a = random_subspace(50, 7, seed=3)
    assert a.shape == (50, 7) and a.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(a, random_subspace(50, 7, seed=3))
    assert not np.allclose(a, random_subspace(50, 7, seed=4))
    theta = np.arange(1.0, 51.0)
    half = box_half_widths(theta, 0.1, a)  # ε(|A⁺θ| + 1), A⁺ = the pseudo-inverse
    np.testing.assert_allclose(half, 0.1 * (np.abs(np.linalg.pinv(a) @ theta) + 1), rtol=1e-10)


@pytest.mark.parametrize("subspace_dim", [3, 6])
def test_subspace_epsilon_sharpness_matches_the_best_vertex(subspace_dim):
    """In y-coordinates f(y) = ½yᵀ(AᵀHA)y: convex, so its box maximum is at one of the 2^p vertices.

    A local ascent can stop at any vertex that is a local maximum; H = 5uuᵀ + small diagonal
    leaves only the best pair ±v (at any other vertex a coordinate against sign(Aᵀu) gains by
    moving inwards), so the optimizer's answer must be the brute-force one: rel 1e-10 (the
    optimizer ends exactly on the bounds; the rest is summation order).
    """
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(6, generator=gen, dtype=torch.float64)
    hessian = 5 * torch.outer(u, u) + torch.diag(torch.linspace(0.01, 0.05, 6, dtype=torch.float64))
    epsilon, seed = 1e-2, 2
    result = epsilon_sharpness(quadratic_problem(hessian, CENTER), epsilon=epsilon, subspace_dim=subspace_dim,
                               seed=seed, maxiter=50)
    a = random_subspace(6, subspace_dim, seed)
    half = epsilon * (np.abs(np.linalg.pinv(a) @ CENTER.numpy()) + 1)
    m = a.T @ hessian.numpy() @ a
    vertices = np.array(list(itertools.product([-1.0, 1.0], repeat=subspace_dim))) * half
    best = max(0.5 * v @ m @ v for v in vertices)
    assert result.name == "epsilon_subspace" and result.parameters["subspace_dim"] == subspace_dim
    assert result.value == pytest.approx(100 * best, rel=1e-10)
    assert result.converged


def test_epsilon_sharpness_changes_when_relu_layers_are_rescaled(relu_pair):
    """The box ε(|θ_i| + 1) is not scale-covariant (the +1), so α/(1/α) rescaling changes the measure.

    The two values differ by tens of percent here, far beyond the optimizer's variation.
    """
    original, scaled = (epsilon_sharpness(p, epsilon=1e-2, maxiter=5) for p in relu_pair)
    assert original.baseline_loss == pytest.approx(scaled.baseline_loss, rel=1e-12)  # the same function
    assert abs(scaled.value / original.value - 1) > 0.1
    assert not original.rescaling_invariant


@pytest.mark.parametrize(("option", "value"), [("epsilon", 0.0), ("epsilon", -1e-3), ("epsilon", float("nan")),
                                               ("epsilon", float("inf")), ("maxiter", 0), ("maxiter", 2.5),
                                               ("subspace_dim", 0), ("subspace_dim", 7), ("seed", -1),
                                               ("split", "validation")])
def test_epsilon_sharpness_refuses_bad_options_in_one_line(option, value):
    with pytest.raises(LandscapeError, match=option) as info:
        epsilon_sharpness(quadratic_problem(torch.diag(H_DIAG), CENTER), **{option: value})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- rays
def drawn(problem: Problem, rays: int, seed: int, normalization: str) -> list[torch.Tensor]:
    return [d.vectors["w"] for d in random_directions(problem.params, rays, seed=seed,
                                                      normalization=normalization, include_1d=True)]


@pytest.mark.parametrize("normalization", ["none", "filter"])
def test_ray_widths_of_a_quadratic_are_the_closed_form_crossings(normalization):
    """L rises by ½α²dᵀHd, crossing Δ at α* = √(2Δ/dᵀHd). Linear interpolation of a convex curve
    crosses early, by at most h²/(4α*) on a grid of step h (chord above the parabola by ≤ kh²/8,
    chord slope ≥ kα*/2): the widths lie in [α* − h²/(4α*), α*] up to rounding."""
    problem = quadratic_problem(torch.diag(H_DIAG), CENTER)
    rise, rays, points, alpha_max = 0.1, 6, 41, 1.0
    result = ray_width(problem, rays=rays, rise=rise, alpha_max=alpha_max, points=points, seed=5,
                       normalization=normalization, include_1d=True, show_progress=False)
    curvature = np.array([float(d @ torch.diag(H_DIAG) @ d) for d in drawn(problem, rays, 5, normalization)])
    exact = np.sqrt(2 * rise / curvature)
    assert (exact < alpha_max).all()  # every ray crosses: nothing censored
    step = alpha_max / (points - 1)
    assert (result.samples <= exact * (1 + 1e-12)).all()
    assert (result.samples >= exact - step**2 / (4 * exact) - 1e-12).all()
    assert result.value == pytest.approx(result.samples.mean(), rel=1e-14)
    assert result.stderr == pytest.approx(result.samples.std(ddof=1) / np.sqrt(rays), rel=1e-12)
    np.testing.assert_allclose(result.curves["loss"], 0.5 * np.outer(curvature, result.curves["alpha"] ** 2),
                               rtol=1e-12, atol=1e-15)
    assert result.parameters["censored"] == 0 and result.loss_evaluations == rays * points
    assert result.rescaling_invariant == (normalization != "none")


def test_a_rise_reached_on_a_grid_point_gives_that_point_exactly():
    problem = quadratic_problem(torch.diag(H_DIAG), CENTER)
    (d,) = drawn(problem, 1, 0, "none")
    alpha = np.linspace(0, 1, 11)
    rise = 0.5 * alpha[7] ** 2 * float(d @ torch.diag(H_DIAG) @ d)  # reached exactly at α = 0.7
    result = ray_width(problem, rays=1, rise=rise, points=11, normalization="none", include_1d=True,
                       show_progress=False)
    assert result.samples[0] == pytest.approx(0.7, rel=1e-9)  # the loss is computed, not the formula: rounding
    assert np.isnan(result.stderr)  # one ray: no spread to estimate


def test_censored_rays_count_as_alpha_max_and_are_counted():
    problem = quadratic_problem(torch.diag(H_DIAG), CENTER)
    rays, rise = 8, 0.1
    exact = np.sqrt(2 * rise / np.array([float(d @ torch.diag(H_DIAG) @ d)
                                         for d in drawn(problem, rays, 0, "none")]))
    alpha_max = float(np.median(exact))  # about half the rays stop short of the rise
    result = ray_width(problem, rays=rays, rise=rise, alpha_max=alpha_max, normalization="none", include_1d=True,
                       show_progress=False)
    expected = exact > alpha_max
    assert 0 < expected.sum() < rays
    assert result.parameters["censored"] == expected.sum()
    np.testing.assert_array_equal(result.curves["censored"], expected.astype(float))
    np.testing.assert_array_equal(result.samples[expected], alpha_max)
    assert (result.samples[~expected] < alpha_max).all()
    assert "censored" in result.notes

    all_short = ray_width(problem, rays=rays, rise=rise, alpha_max=1e-3, normalization="none", include_1d=True,
                          show_progress=False)
    assert all_short.parameters["censored"] == rays and all_short.value == 1e-3


def test_a_non_finite_loss_is_a_crossing_at_its_own_alpha():
    """A loss that is inf beyond ‖θ − c‖ = r: the width is the first grid α past r/‖d‖, not interpolated."""
    radius = 0.5
    quadratic = quadratic_loss(torch.diag(H_DIAG), CENTER)

    def walled(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        outside = (out - CENTER).norm(dim=-1).max() > radius
        return torch.where(outside, torch.tensor(float("inf"), dtype=torch.float64), quadratic(out, target))

    data = [(torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))]
    problem = Problem.create(ParameterVector(CENTER), walled, data, dtype=torch.float64)
    result = ray_width(problem, rays=3, rise=1e9, points=21, normalization="none", include_1d=True,
                       show_progress=False)
    alpha = result.curves["alpha"]
    for d, width in zip(drawn(problem, 3, 0, "none"), result.samples):
        assert width == alpha[np.argmax(alpha * float(d.norm()) > radius)]
    assert result.parameters["censored"] == 0


def test_rays_are_drawn_by_name_and_normalized_at_each_problems_theta():
    """Two problems with the parameter 'w': with no normalization their curves coincide; with
    filter normalization d = r·‖c‖/‖r‖, so L(α)/‖c‖² is the same curve (rel 1e-12: rounding)."""
    first, second = CENTER, 3 * CENTER.flip(0) + 0.1
    for normalization in ("none", "filter"):
        a, b = (ray_width(quadratic_problem(torch.diag(H_DIAG), c), rays=3, normalization=normalization,
                          include_1d=True, show_progress=False) for c in (first, second))
        scale = (1.0, 1.0) if normalization == "none" else (float(first.norm()) ** 2, float(second.norm()) ** 2)
        np.testing.assert_allclose(a.curves["loss"] / scale[0], b.curves["loss"] / scale[1], rtol=1e-12, atol=1e-300)


def test_origin_moves_the_start_but_keeps_the_directions():
    """From θ₀ = c + v: L(θ₀ + αd) = ½(v + αd)ᵀH(v + αd), directions normalized at θ* = c."""
    problem = quadratic_problem(torch.diag(H_DIAG), CENTER)
    v = torch.linspace(-0.2, 0.3, 6, dtype=torch.float64)
    result = ray_width(problem, rays=2, origin={"w": CENTER + v}, normalization="filter", include_1d=True,
                       show_progress=False)
    alpha = result.curves["alpha"]
    for d, curve in zip(drawn(problem, 2, 0, "filter"), result.curves["loss"]):
        points = v[None, :] + torch.as_tensor(alpha)[:, None] * d[None, :]
        np.testing.assert_allclose(curve, 0.5 * ((points * H_DIAG) * points).sum(1).numpy(), rtol=1e-12)
    assert result.baseline_loss == pytest.approx(0.5 * float((v * H_DIAG * v).sum()), rel=1e-12)


@pytest.mark.parametrize(("normalization", "include_1d"), [("filter", False), ("filter", True), ("layer", False)])
def test_normalized_ray_widths_are_unchanged_by_relu_rescaling(relu_pair, normalization, include_1d):
    """fc1 × 3, fc2's weight / 3: filter (or layer) normalization scales d the same way, so the
    rays are the rescaled images of each other and the loss along them is the same function
    (rel 1e-9: only rounding differs; 3 is not a power of two, so it does differ). At this
    untrained model's loss of ~2.35 the rays need α up to ~2.3 to rise by 0.1, hence α_max = 3."""
    original, scaled = (ray_width(p, rays=3, points=21, alpha_max=3.0, normalization=normalization,
                                  include_1d=include_1d, show_progress=False) for p in relu_pair)
    assert original.parameters["censored"] == 0  # the widths are measured, not α_max
    np.testing.assert_allclose(scaled.curves["loss"], original.curves["loss"], rtol=1e-9)
    np.testing.assert_allclose(scaled.samples, original.samples, rtol=1e-9)
    assert original.rescaling_invariant and scaled.rescaling_invariant


def test_unnormalized_ray_widths_change_with_relu_rescaling(relu_pair):
    original, scaled = (ray_width(p, rays=3, points=21, alpha_max=0.5, normalization="none", show_progress=False)
                        for p in relu_pair)
    assert original.parameters["censored"] < 3 and scaled.parameters["censored"] < 3
    assert np.abs(scaled.samples / original.samples - 1).max() > 0.1
    assert not original.rescaling_invariant


@pytest.mark.parametrize(("option", "value"), [("rays", 0), ("rise", 0.0), ("rise", float("nan")),
                                               ("alpha_max", -1.0), ("points", 1), ("seed", -1),
                                               ("normalization", "unit"), ("split", "validation")])
def test_ray_width_refuses_bad_options_in_one_line(option, value):
    with pytest.raises(LandscapeError, match=option) as info:
        ray_width(quadratic_problem(torch.diag(H_DIAG), CENTER), show_progress=False, **{option: value})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("origin", [{"v": CENTER}, {"w": CENTER[:3]}])
def test_ray_width_refuses_an_origin_of_another_architecture(origin):
    with pytest.raises(LandscapeError, match="origin"):
        ray_width(quadratic_problem(torch.diag(H_DIAG), CENTER), origin=origin, show_progress=False)


def test_neither_measure_touches_the_users_model():
    torch.manual_seed(1)
    model = ReluMLP().double().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    problem = small_relu_problem(model)
    epsilon_sharpness(problem, maxiter=2)
    ray_width(problem, rays=1, points=3, show_progress=False)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
