"""Average-case, worst-case and m-sharpness against closed forms, in float64.

On L(θ) = ½(θ − c)ᵀH(θ − c) at θ* = c: the average rise is σ² tr H/2 (adaptive: σ²/2 Σ Hᵢᵢcᵢ²),
the ℓ2 worst case ρ²λ_max(H)/2 (adaptive: of diag|c| H diag|c|), and for a diagonal H ≥ 0 the
ℓ∞ worst case is any corner of the box: ½ρ² Σ hᵢ (adaptive: ½ρ² Σ hᵢcᵢ²). On a linear loss aᵀθ
the worst cases are ρ‖a‖₂ and ρ‖a‖₁, reached by SAM's first-order start alone. A ReLU MLP and
its α-rescaling compute the same function, so the adaptive measures agree on both.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape import Problem
from landscape.errors import LandscapeError
from landscape.sharpness.average import average_sharpness, gaussian_perturbations
from landscape.sharpness.worst import m_example_batches, m_sharpness, worst_case_sharpness
from tests.sharpness_cases import (
    ParameterVector,
    quadratic_problem,
    relu_mlp_problem,
    rescaled,
    spd_with_spectrum,
    trained_relu_mlp,
)

# λ₂/λ₁ = 1/2: the ℓ2 ascent's direction error shrinks by ~3/4 a step, so 40 steps leave the
# gain ~1e-10 short of ρ²λ_max/2 (measured: 6e-12 standard, 6e-9 adaptive), far below 1e-6
SPECTRUM = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.5, 0.3, 0.1], dtype=torch.float64)
HESSIAN = spd_with_spectrum(SPECTRUM)
CENTER = torch.linspace(-1.0, 2.0, 10, dtype=torch.float64)  # holds an exact 0: adaptive leaves it alone
RHO = 0.05


@pytest.fixture(scope="module")
def quadratic() -> Problem:
    return quadratic_problem(HESSIAN, CENTER)


@pytest.fixture(scope="module")
def relu_model() -> torch.nn.Module:
    return trained_relu_mlp()


@pytest.fixture(scope="module")
def relu_problem(relu_model) -> Problem:
    return relu_mlp_problem(relu_model)


def quadratic_rises(deltas: torch.Tensor, hessian: torch.Tensor) -> np.ndarray:
    return (0.5 * ((deltas @ hessian) * deltas).sum(1)).numpy()


# ---------------------------------------------------------------- average case
@pytest.mark.parametrize("adaptive", [False, True])
def test_average_sharpness_on_a_quadratic_matches_the_closed_form(quadratic, adaptive):
    sigma, samples = 0.1, 400
    result = average_sharpness(quadratic, sigma=sigma, adaptive=adaptive, samples=samples, seed=3,
                               show_progress=False)
    # each draw's rise is ½δᵀHδ for the documented draws (float64 rounding only)
    deltas = gaussian_perturbations(CENTER, sigma=sigma, adaptive=adaptive, samples=samples, seed=3)
    np.testing.assert_allclose(result.samples, quadratic_rises(deltas, HESSIAN), rtol=1e-10)
    # E[½δᵀHδ] = ½ tr(M), Var = ½ tr(M²) for M = σ² S H S (S = diag|c| adaptive, else I)
    scale = torch.diag(CENTER.abs()) if adaptive else torch.eye(10, dtype=torch.float64)
    m = sigma ** 2 * scale @ HESSIAN @ scale
    expected, spread = 0.5 * float(torch.trace(m)), math.sqrt(0.5 * float(torch.trace(m @ m)))
    assert abs(result.value - expected) < 4 * result.stderr
    # the sample std of a weighted χ² with S = 400 is within ~7 % of the true one (1σ): 25 % is 4σ
    assert 0.75 < result.stderr / (spread / math.sqrt(samples)) < 1.25
    assert result.name == ("average_adaptive" if adaptive else "average")
    assert result.rescaling_invariant is adaptive
    assert (result.loss_evaluations, result.gradient_evaluations) == (samples + 1, 0)
    assert result.baseline_loss == pytest.approx(0.0, abs=1e-15)
    assert dict(result.parameters) == {"sigma": sigma, "adaptive": adaptive, "samples": samples,
                                       "split": "train", "seed": 3}


def test_average_draws_are_seeded_and_adaptive_ones_scale_with_the_weights():
    theta = torch.tensor([2.0, -0.5, 0.0])
    standard = gaussian_perturbations(theta, sigma=0.1, adaptive=False, samples=5, seed=7)
    adaptive = gaussian_perturbations(theta, sigma=0.1, adaptive=True, samples=5, seed=7)
    assert standard.dtype == torch.float64
    torch.testing.assert_close(adaptive, standard * theta.double().abs(), rtol=0, atol=0)
    torch.testing.assert_close(standard, gaussian_perturbations(theta, sigma=0.1, adaptive=False, samples=5,
                                                                seed=7), rtol=0, atol=0)
    assert not torch.equal(standard, gaussian_perturbations(theta, sigma=0.1, adaptive=False, samples=5, seed=8))


# ---------------------------------------------------------------- worst case
@pytest.mark.parametrize("adaptive", [False, True])
def test_worst_case_l2_on_a_quadratic_is_half_rho_squared_lambda_max(quadratic, adaptive):
    steps, restarts = 20, 3
    result = worst_case_sharpness(quadratic, rho=RHO, adaptive=adaptive, steps=steps, restarts=restarts,
                                  show_progress=False)
    scale = torch.diag(CENTER.abs()) if adaptive else torch.eye(10, dtype=torch.float64)
    expected = 0.5 * RHO ** 2 * float(torch.linalg.eigvalsh(scale @ HESSIAN @ scale).max())
    assert result.value == pytest.approx(expected, rel=1e-6)
    assert result.value <= expected * (1 + 1e-12)  # every iterate is feasible: a lower bound
    assert result.converged and result.notes == ""
    assert result.name == ("worst_l2_adaptive" if adaptive else "worst_l2")
    assert result.rescaling_invariant is adaptive
    assert result.parameters["relative_change"] < 0.01
    assert result.parameters["gain_at_steps"] <= result.value
    # one gradient at θ* (baseline and SAM start); per restart one at the start and one per step
    # but the last, whose candidate needs only its loss
    assert result.gradient_evaluations == 1 + restarts * 2 * steps
    assert result.loss_evaluations == restarts
    curves = result.curves["gain_by_step"]
    assert curves.shape == (restarts, 2 * steps + 1)
    assert (np.diff(curves, axis=1) >= 0).all()  # rejected steps keep the iterate
    np.testing.assert_array_equal(result.samples, curves[:, -1])


def test_worst_case_with_too_few_steps_says_it_did_not_converge(quadratic):
    result = worst_case_sharpness(quadratic, rho=RHO, steps=1, restarts=1, show_progress=False)
    expected = 0.5 * RHO ** 2 * float(SPECTRUM.max())
    assert result.value < 0.99 * expected
    assert not result.converged
    assert result.parameters["relative_change"] >= 0.01
    assert "not converged" in result.notes


@pytest.mark.parametrize("adaptive", [False, True])
def test_worst_case_linf_on_a_diagonal_quadratic_is_the_box_corner(adaptive):
    h = torch.tensor([3.0, 1.0, 0.5, 2.0, 0.25], dtype=torch.float64)
    center = torch.tensor([1.0, -2.0, 0.3, 0.0, 4.0], dtype=torch.float64)
    problem = quadratic_problem(torch.diag(h), center)
    result = worst_case_sharpness(problem, rho=RHO, norm="linf", adaptive=adaptive, steps=3, restarts=2,
                                  show_progress=False)
    expected = 0.5 * RHO ** 2 * float((h * center ** 2).sum() if adaptive else h.sum())
    assert result.value == pytest.approx(expected, rel=1e-12)  # reached exactly: rounding only
    assert result.converged
    assert result.name == ("worst_linf_adaptive" if adaptive else "worst_linf")


def test_worst_case_of_a_linear_loss_is_reached_from_the_sam_start():
    a = torch.tensor([0.5, -1.0, 2.0, 0.0, -0.25], dtype=torch.float64)
    theta = torch.tensor([1.0, -3.0, 0.5, 2.0, 0.0], dtype=torch.float64)
    data = [(torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))]
    problem = Problem.create(ParameterVector(theta), lambda out, target: (out @ a).mean(), data)
    expected = {("l2", False): RHO * float(a.norm()), ("linf", False): RHO * float(a.abs().sum()),
                ("l2", True): RHO * float((a * theta.abs()).norm())}
    for (norm, adaptive), value in expected.items():
        result = worst_case_sharpness(problem, rho=RHO, norm=norm, adaptive=adaptive, steps=1, restarts=1,
                                      show_progress=False)
        # the SAM point is the exact maximizer: no ascent step can add to it
        assert result.curves["gain_by_step"][0, 0] == pytest.approx(value, rel=1e-12)
        assert result.value == pytest.approx(value, rel=1e-12)
        assert result.converged


def test_restarts_that_end_at_different_local_maxima_are_noted():
    # L(θ) = θ² + bθ on the interval |δ| ≤ ρ: local maxima at +ρ (ρ² + bρ, SAM's side, as g = b > 0)
    # and at −ρ (ρ² − bρ, where random starts below −b/2 climb to)
    b = 0.01
    data = [(torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))]
    problem = Problem.create(ParameterVector(torch.zeros(1, dtype=torch.float64)),
                             lambda out, target: (out ** 2 + b * out).sum(-1).mean(), data)
    result = worst_case_sharpness(problem, rho=RHO, steps=3, restarts=4, show_progress=False)
    assert result.value == pytest.approx(RHO ** 2 + b * RHO, rel=1e-12)
    assert result.samples[0] == pytest.approx(RHO ** 2 + b * RHO, rel=1e-12)
    assert result.samples.min() == pytest.approx(RHO ** 2 - b * RHO, rel=1e-12)  # seed 0: a start below −b/2
    assert result.converged and "apart" in result.notes


# ---------------------------------------------------------------- rescaling invariance
def test_adaptive_measures_ignore_a_relu_rescaling_and_standard_ones_do_not(relu_model, relu_problem):
    other = relu_mlp_problem(rescaled(relu_model, 3.0))
    assert other.loss() == pytest.approx(relu_problem.loss(), rel=1e-12)  # the same function
    measures = {
        "average": lambda p, adaptive: average_sharpness(p, sigma=0.05, adaptive=adaptive, samples=8,
                                                         show_progress=False),
        "worst_l2": lambda p, adaptive: worst_case_sharpness(p, adaptive=adaptive, steps=2, restarts=2,
                                                             show_progress=False),
        "worst_linf": lambda p, adaptive: worst_case_sharpness(p, norm="linf", adaptive=adaptive, steps=2,
                                                               restarts=2, show_progress=False),
    }
    for name, measure in measures.items():
        # same seed, same draws and starts in u: the perturbed nets are rescalings of each other
        assert measure(other, True).value == pytest.approx(measure(relu_problem, True).value, rel=1e-8), name
        # standard δ is α times too small on fc1 and α too large on fc2 (measured: ×6.6, ×6.1, ×1.45)
        standard, moved = measure(relu_problem, False).value, measure(other, False).value
        assert abs(moved / standard - 1) > 0.2, name


# ---------------------------------------------------------------- m-sharpness
def test_m_sharpness_with_m_equal_to_n_is_the_full_batch_worst_case(relu_problem):
    n = relu_problem.num_examples("train")
    assert len(relu_problem.batches("train")) > 1  # the full case sums batches, m = n one merged batch
    options = {"rho": RHO, "steps": 2, "restarts": 2, "seed": 5, "show_progress": False}
    full = worst_case_sharpness(relu_problem, **options)
    whole = m_sharpness(relu_problem, m=n, **options)
    # the same ascent on one concatenated batch: sums reordered, float64 rounding only
    assert whole.value == pytest.approx(full.value, rel=1e-9)
    assert whole.samples.shape == (1,) and math.isnan(whole.stderr)
    assert whole.baseline_loss == pytest.approx(full.baseline_loss, rel=1e-12)
    assert whole.name == "m_sharpness" and "dropped" not in whole.notes
    assert whole.converged is full.converged
    assert whole.gradient_evaluations == full.gradient_evaluations
    assert whole.parameters["m"] == n and whole.parameters["batches_used"] == 1


def test_m_sharpness_of_smaller_batches_is_at_least_the_full_worst_case(relu_problem):
    # 1437 = 3 × 479 examples: the full maximizer δ* is feasible for each batch, so
    # mean_B max_δ L_B(δ) ≥ mean_B L_B(δ*) = L(δ*), with the same baseline (no example dropped).
    # The ascent gives lower bounds; the margin measured is 58 %, so 0 % is safe.
    options = {"rho": RHO, "steps": 3, "restarts": 1, "show_progress": False}
    full = worst_case_sharpness(relu_problem, **options)
    thirds = m_sharpness(relu_problem, m=479, **options)
    assert thirds.samples.shape == (3,)
    assert thirds.value >= full.value
    assert thirds.baseline_loss == pytest.approx(full.baseline_loss, rel=1e-12)


@pytest.mark.parametrize("m", [1, 5, 12])
def test_m_sharpness_on_a_quadratic_whose_batches_all_share_the_loss(m):
    # the model ignores its input: every m-example batch has the full risk ½(θ−c)ᵀH(θ−c)
    problem = quadratic_problem(HESSIAN, CENTER, batches=3, batch_size=4)
    result = m_sharpness(problem, m=m, rho=RHO, steps=20, restarts=1, show_progress=False)
    assert result.value == pytest.approx(0.5 * RHO ** 2 * float(SPECTRUM.max()), rel=1e-6)
    assert result.samples.shape == (12 // m,)
    assert result.parameters["examples_dropped"] == 12 % m
    assert ("dropped" in result.notes) == (12 % m > 0)


def test_m_example_batches_cut_the_split_in_order(relu_problem):
    batches = relu_problem.batches("train")
    targets = torch.cat([b.target for b in batches])
    chunks = m_example_batches(batches, 100)
    assert [c.size for c in chunks] == [100] * 14  # 1437 = 14 × 100 + 37 dropped
    torch.testing.assert_close(torch.cat([c.target for c in chunks]), targets[:1400], rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([c.inputs for c in chunks]),
                               torch.cat([b.inputs for b in batches])[:1400], rtol=0, atol=0)
    spread = m_example_batches(batches, 100, max_batches=3)  # evenly spaced: batches 0, 6 (6.5 rounds to 6), 13
    for chunk, index in zip(spread, [0, 6, 13], strict=True):
        torch.testing.assert_close(chunk.target, targets[index * 100:(index + 1) * 100], rtol=0, atol=0)


# ---------------------------------------------------------------- bad input, the user's model
BAD_INPUTS = [
    (average_sharpness, {"sigma": 0.0}, "sigma"),
    (average_sharpness, {"sigma": float("nan")}, "sigma"),
    (average_sharpness, {"samples": 0}, "samples"),
    (average_sharpness, {"split": "valid"}, "split"),
    (worst_case_sharpness, {"rho": -1.0}, "rho"),
    (worst_case_sharpness, {"rho": float("inf")}, "rho"),
    (worst_case_sharpness, {"norm": "l1"}, "norm"),
    (worst_case_sharpness, {"steps": 0}, "steps"),
    (worst_case_sharpness, {"restarts": 0}, "restarts"),
    (worst_case_sharpness, {"split": "valid"}, "split"),
    (m_sharpness, {"m": 0}, "m must"),
    (m_sharpness, {"m": 13}, "m = 13"),
    (m_sharpness, {"rho": 0.0}, "rho"),
    (m_sharpness, {"norm": "l3"}, "norm"),
    (m_sharpness, {"max_batches": 0}, "max_batches"),
]


@pytest.mark.parametrize(("measure", "options", "named"), BAD_INPUTS)
def test_bad_options_raise_one_line_naming_the_option(measure, options, named):
    problem = quadratic_problem(HESSIAN, CENTER, batches=3, batch_size=4)  # 12 examples
    with pytest.raises(LandscapeError) as info:
        measure(problem, **options, show_progress=False)
    message = str(info.value)
    assert named in message and measure.__name__ in message and "\n" not in message


def test_batches_that_cannot_be_cut_into_m_examples_or_no_batches_raise(quadratic):
    # ragged inputs (sequence lengths 3 and 5): a 4-example batch would straddle both
    data = [(torch.zeros(2, length, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)) for length in (3, 5)]
    ragged = Problem.create(ParameterVector(CENTER), lambda out, target: out.sum(-1).mean(), data)
    with pytest.raises(LandscapeError, match="m_sharpness: .*concatenated"):
        m_sharpness(ragged, m=4, show_progress=False)
    assert m_sharpness(ragged, m=2, steps=1, show_progress=False).samples.shape == (2,)  # no batch straddles
    with pytest.raises(LandscapeError, match="batches is empty"):
        worst_case_sharpness(quadratic, batches=[], show_progress=False)


def test_the_users_model_is_not_mutated(relu_model):
    model = rescaled(relu_model, 1.0)
    model.fc2.bias.requires_grad_(False)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    problem = relu_mlp_problem(model)
    average_sharpness(problem, samples=4, adaptive=True, show_progress=False)
    worst_case_sharpness(problem, steps=1, restarts=1, show_progress=False)
    m_sharpness(problem, m=700, steps=1, show_progress=False)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.detach(), before[name], rtol=0, atol=0)
        assert parameter.requires_grad is flags[name]
    assert model.training
