"""A measure whose perturbations the compute dtype cannot resolve is flagged, never reported
as converged: in bfloat16, rounding θ* + δ moves a point by eps/2·|θ*| per weight, more than
SAM's ρ on a real model; in float32 and float64 the same settings are unaffected."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from landscape import Problem, zoo
from landscape.sharpness import average_sharpness, epsilon_sharpness, m_sharpness, worst_case_sharpness
from landscape.sharpness.precision import ROUNDING_LIMIT, rounding_fraction, rounding_note
from tests.sharpness_cases import trained_relu_mlp


@pytest.fixture(scope="module")
def model():
    return trained_relu_mlp(steps=100)


def problem_in(model, dtype: torch.dtype) -> Problem:
    return Problem.create(model, F.cross_entropy, zoo.digits(512), dtype=dtype, max_examples=256)


def test_rounding_fraction_is_half_an_ulp_of_the_weights_against_the_radius():
    theta = torch.tensor([2.0, -1.0, 0.0, 0.5], dtype=torch.float32)
    half_ulp = torch.finfo(torch.float32).eps / 2
    moves = half_ulp * theta.double().abs()
    assert rounding_fraction(theta, None, 0.1, "l2") == pytest.approx(float(moves.norm()) / 0.1, rel=1e-12)
    assert rounding_fraction(theta, None, 0.1, "linf") == pytest.approx(2 * half_ulp / 0.1, rel=1e-12)
    # adaptive (δ = |θ*| ⊙ u): eps/2 in every perturbed coordinate of u; θ_i = 0 is never perturbed
    assert rounding_fraction(theta, theta, 0.1, "l2") == pytest.approx(half_ulp * math.sqrt(3) / 0.1, rel=1e-12)
    assert rounding_note(ROUNDING_LIMIT, torch.bfloat16) == ""
    assert "compute in float32" in rounding_note(2 * ROUNDING_LIMIT, torch.bfloat16)


@pytest.mark.parametrize("measure", [
    lambda p: worst_case_sharpness(p, rho=0.05, steps=2, restarts=1, show_progress=False),
    lambda p: worst_case_sharpness(p, rho=1e-3, norm="linf", steps=2, restarts=1, show_progress=False),
    lambda p: m_sharpness(p, m=128, rho=0.05, steps=2, restarts=1, max_batches=1, show_progress=False),
    lambda p: epsilon_sharpness(p, epsilon=1e-3, maxiter=2),
    lambda p: average_sharpness(p, sigma=1e-3, samples=4, show_progress=False),
], ids=["worst_l2", "worst_linf", "m_sharpness", "epsilon", "average"])
def test_bfloat16_cannot_resolve_the_default_radii_and_says_so(model, measure):
    result = measure(problem_in(model, torch.bfloat16))
    assert not result.converged and "bfloat16 rounding" in result.notes and "float32" in result.notes
    for dtype in (torch.float32, torch.float64):  # the same settings: no rounding note
        assert "rounding" not in measure(problem_in(model, dtype)).notes
