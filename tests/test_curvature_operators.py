"""Curvature operators against dense float64 definitions and closed forms.

Tolerances: every operator and reference is float64 and computes the same sums in a
different order, so agreement is at rounding level; 1e-10 relative (to the largest
entry) leaves room for accumulation over a few hundred terms and nothing more.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from curvature_cases import (
    cnn_problem,
    dense_fisher,
    dense_ggn,
    dense_hessian,
    linear_regression_problem,
    logistic_regression_problem,
    mlp_problem,
    rnn_problem,
    transformer_problem,
)
from landscape.curvature import EmpiricalFisherOperator, GGNOperator, HessianOperator, make_operator, select_parameters
from landscape.curvature.hvp import AUTO_RULE
from landscape.errors import LandscapeError
from landscape.linalg import to_dense
from landscape.problem import Problem
from tests import models

RTOL = 1e-10
CASES = {"mlp": mlp_problem, "cnn_bn_eval": cnn_problem, "rnn": rnn_problem}


@functools.cache
def case(name: str):
    problem = CASES[name]()
    return problem, dense_hessian(problem)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mode", ["reverse", "forward", "autograd"])
def test_hessian_matches_dense(name: str, mode: str) -> None:
    problem, reference = case(name)
    op = HessianOperator(problem, hvp_mode=mode)
    assert op.hvp_mode == mode
    assert rel_err(to_dense(op), reference) < RTOL


@pytest.mark.parametrize("name", list(CASES))
def test_cached_gradient_graphs_give_the_same_products(name: str) -> None:
    problem, reference = case(name)
    cached = HessianOperator(problem, hvp_mode="autograd", cache_graphs=True)
    assert cached.describe()["hvp_graph_cached"]
    first = to_dense(cached)
    assert len(cached._graphs) == len(problem.batches())  # one graph per batch, reused
    assert rel_err(first, reference) < RTOL and torch.equal(first, to_dense(cached))
    fresh = HessianOperator(problem, hvp_mode="autograd", cache_graphs=False)
    assert not fresh.describe()["hvp_graph_cached"] and rel_err(to_dense(fresh), reference) < RTOL
    assert not fresh._graphs


def test_transformer_hessian_through_attention() -> None:
    """Fused attention kernels have neither forward-mode AD nor a double backward; the
    operator routes attention to the math kernel, so every mode works and agrees with the
    autograd reference and with central differences of the gradient."""
    problem = transformer_problem()
    reference = dense_hessian(problem, engine="autograd")
    assert rel_err(to_dense(HessianOperator(problem, hvp_mode="autograd")), reference) < RTOL
    probes = torch.randn(reference.shape[0], 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for mode in ("reverse", "forward"):  # torch.func through attention: slow under vmap, so 4 columns
        op = HessianOperator(problem, hvp_mode=mode)
        assert op.hvp_mode == mode, op.mode_note
        assert rel_err(op.matmat(probes), reference @ probes) < RTOL
    from landscape.problem import flatten, unflatten
    flat, total = flatten(problem.params), problem.num_examples()

    def gradient(at: torch.Tensor) -> torch.Tensor:
        at = at.detach().requires_grad_(True)
        risk = sum(problem.batch_loss(unflatten(at, problem.params), b) * b.size for b in problem.batches())
        return torch.autograd.grad(risk / total, at)[0]

    step = torch.zeros_like(flat)
    step[7] = 1e-5
    column = (gradient(flat + step) - gradient(flat - step)) / 2e-5
    assert float((column - reference[:, 7]).abs().max()) < 1e-8  # O(h²) truncation + rounding/h


def test_auto_mode_is_a_fixed_rule_recorded_with_its_reason() -> None:
    """auto picks by rule, not by timing: autograd wherever its double backward works,
    the same on every construction, and the result says which rule chose it."""
    problem, reference = case("mlp")
    ops = [HessianOperator(problem, hvp_mode="auto") for _ in range(2)]
    assert [op.hvp_mode for op in ops] == ["autograd", "autograd"]
    described = ops[0].describe()
    assert described["hvp_mode"] == "autograd" and described["hvp_mode_rule"] == AUTO_RULE
    assert described["hvp_mode_note"] == "" and not hasattr(ops[0], "mode_timings")
    assert HessianOperator(problem, hvp_mode="forward").describe()["hvp_mode_rule"] == "forward: requested"
    assert rel_err(to_dense(ops[0]), reference) < RTOL


@pytest.mark.parametrize("name", ["mlp", "cnn_bn_eval"])
def test_cached_reverse_pullbacks_give_the_same_products(name: str) -> None:
    """torch.func's pullback is kept per batch (forward and first backward once) and reused."""
    problem, reference = case(name)
    cached = HessianOperator(problem, hvp_mode="reverse", cache_graphs=True)
    first = to_dense(cached)
    assert len(cached._pullbacks) == len(problem.batches()) and cached.describe()["hvp_graph_cached"]
    assert rel_err(first, reference) < RTOL and torch.equal(first, to_dense(cached))
    v = torch.randn(cached.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert rel_err(cached.matvec(v), reference @ v) < RTOL  # one column: called without vmap


def test_closed_form_linear_regression() -> None:
    problem, exact = linear_regression_problem()
    assert rel_err(to_dense(HessianOperator(problem)), exact) < RTOL
    # a linear model with a convex loss: the GGN is the Hessian
    assert rel_err(to_dense(GGNOperator(problem)), exact) < RTOL


def test_closed_form_logistic_regression() -> None:
    problem, exact = logistic_regression_problem()
    assert rel_err(to_dense(HessianOperator(problem)), exact) < RTOL
    assert rel_err(to_dense(GGNOperator(problem)), exact) < RTOL


@pytest.mark.parametrize("name", ["cnn_bn_eval", "rnn"])
def test_ggn_matches_dense_definition(name: str) -> None:
    problem, _ = case(name)
    assert rel_err(to_dense(GGNOperator(problem)), dense_ggn(problem)) < RTOL


@pytest.mark.parametrize("name", list(CASES))
def test_empirical_fisher_matches_dense_definition(name: str) -> None:
    problem, _ = case(name)
    op = EmpiricalFisherOperator(problem, examples_per_chunk=17)  # chunks that cut batches
    assert rel_err(to_dense(op), dense_fisher(problem)) < RTOL


def test_parameter_subset_is_the_dense_block() -> None:
    problem, _ = case("mlp")
    op = HessianOperator(problem, param_patterns=["2.*"])
    assert op.names == ["2.weight", "2.bias"]
    assert rel_err(to_dense(op), dense_hessian(problem, ["2.weight", "2.bias"])) < RTOL
    assert select_parameters(problem.params, ["*.bias"]) == ["0.bias", "2.bias"]
    with pytest.raises(LandscapeError, match="match no trainable parameter"):
        HessianOperator(problem, param_patterns=["conv*"])


def test_matmat_is_one_data_pass_and_equals_matvecs() -> None:
    problem, _ = case("cnn_bn_eval")
    op = HessianOperator(problem, hvp_mode="reverse", max_columns=3)  # column chunks inside a pass
    block = torch.randn(op.size, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    together = op.matmat(block)
    assert (op.num_matvecs, op.num_data_passes) == (7, 1)
    single = torch.stack([op.matvec(block[:, i]) for i in range(7)], dim=1)
    assert rel_err(together, single) < RTOL
    assert (op.num_matvecs, op.num_data_passes) == (14, 8)


class _CustomActivationNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 2), nn.Linear(2, 10)

    def forward(self, x):
        return self.b(models.NoVmapNoJvpTanh.apply(self.a(x)))


def test_fallbacks_without_forward_mode_or_vmap() -> None:
    from curvature_cases import digits_subset

    torch.manual_seed(0)
    problem = Problem.create(_CustomActivationNet(), F.cross_entropy, digits_subset(20, 10), dtype=torch.float64)
    flat_params = problem.params
    total = problem.num_examples()

    def risk(flat):  # torch.func.hessian would vmap over the Function: use the autograd loop
        from landscape.problem import unflatten
        params = unflatten(flat, flat_params)
        return sum(problem.batch_loss(params, b) * b.size for b in problem.batches()) / total

    from landscape.problem import flatten
    reference = torch.autograd.functional.hessian(risk, flatten(flat_params))
    op = HessianOperator(problem, hvp_mode="forward", cache_graphs=False)
    assert op.hvp_mode == "reverse" and "forward HVPs failed" in op.mode_note
    assert rel_err(to_dense(op), reference) < RTOL
    # the pullback's vmap sees only the Function's backward (ordinary ops), so columns batch
    assert op._vmap_ok is True
    cached = HessianOperator(problem, hvp_mode="forward", cache_graphs=True)
    assert cached.hvp_mode == "reverse" and rel_err(to_dense(cached), reference) < RTOL
    assert cached._vmap_ok is True  # the kept pullback runs only the backward under vmap
    auto = HessianOperator(problem, hvp_mode="auto")
    # autograd double backward works (and batches only through its own fallback): the rule keeps it
    assert auto.hvp_mode == "autograd" and auto.mode_note == ""
    assert rel_err(to_dense(auto), reference) < RTOL
    assert rel_err(to_dense(HessianOperator(problem, hvp_mode="autograd")), reference) < RTOL


def test_user_model_untouched_and_dropout_off() -> None:
    from curvature_cases import digits_subset

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 10)).double()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    problem = Problem.create(model, F.cross_entropy, digits_subset(40, 40), dtype=torch.float64)
    op = make_operator(problem, "hessian")
    v = torch.randn(op.size, dtype=torch.float64)
    first, second = op.matvec(v), op.matvec(v)
    assert torch.equal(first, second)  # dropout is off: the operator is deterministic
    assert problem.describe()["dropout_modules_disabled"] == ["2"]
    assert "eval" in op.describe()["dropout"]
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_operator_rejects_bad_vectors_and_kind() -> None:
    problem, _ = case("rnn")
    op = HessianOperator(problem)
    with pytest.raises(LandscapeError, match="expected vectors of shape"):
        op.matmat(torch.zeros(op.size + 1, 2, dtype=torch.float64))
    with pytest.raises(LandscapeError, match="unknown curvature operator"):
        make_operator(problem, "hessain")
