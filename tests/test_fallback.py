"""The one fallback rule (landscape.fallback): torch.func refusing to batch switches to the
loop, and is remembered; every other error, out of memory above all, propagates and
switches nothing.

The refusals are real errors raised by the installed torch, so a torch upgrade that rewords
them fails here first. Results after a fallback are compared with the other strategy in
float64 at rtol 1e-10 (summation order only).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import jvp, vmap

from landscape import LandscapeError, Problem
from landscape.curvature.operators import EmpiricalFisherOperator, GGNOperator
from landscape.fallback import Fallback, is_forward_ad_unsupported, is_resource_error, is_vmap_unsupported, vmap_or_loop
from landscape.linalg import to_dense
from landscape.params import flatten, flatten_columns, flatten_rows, unflatten, unflatten_columns, unflatten_rows
from landscape.per_example import per_example_gradients
from tests import models

RTOL = 1e-10


def raised(fn) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def _inside_vmap() -> bool:
    from torch._C._functorch import TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    return any(i.key() == TransformType.Vmap for i in retrieve_all_functorch_interpreters())


class FailsUnderVmap(models.MLP):
    """An MLP that raises ``error`` whenever it runs inside vmap (a class attribute, so the
    Problem's private copy sees it) and works otherwise."""

    error: BaseException | None = None

    def forward(self, x: Tensor) -> Tensor:
        if FailsUnderVmap.error is not None and _inside_vmap():
            raise FailsUnderVmap.error
        return super().forward(x)


@pytest.fixture
def failing_problem():
    """A float64 problem whose model raises the error the test sets, but only under vmap."""
    problem = Problem.create(models.seeded(FailsUnderVmap).double(), F.cross_entropy, models.vector_data(),
                             eval_mode="vmap")
    yield problem
    FailsUnderVmap.error = None


def stacked(problem: Problem, count: int = 3) -> dict[str, Tensor]:
    return {n: torch.stack([p * (1 + 0.1 * k) for k in range(count)]) for n, p in problem.params.items()}


# ---------------------------------------------------------------------------- the rule
x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

REFUSALS = {
    "item": lambda: vmap(lambda t: t * float(t.sum()))(x),
    "control_flow": lambda: vmap(lambda t: t if t.sum() > 0 else -t)(x),
    "dynamic_shape": lambda: vmap(torch.nonzero)(x),
    "boolean_mask": lambda: vmap(lambda t: t[t > 0])(x),
    "randomness": lambda: vmap(lambda t: t + torch.randn(4, dtype=t.dtype))(x),
    "tolist": lambda: vmap(lambda t: torch.tensor(t.tolist()))(x),
    "inplace_into_unbatched": lambda: vmap(lambda t: torch.zeros(4, dtype=t.dtype).add_(t))(x),
    "autograd_function": lambda: vmap(models.NoVmapNoJvpTanh.apply)(x),
    "no_batching_rule": lambda: vmap(lambda w: models.lstm().double().rnn(
        torch.randn(2, 5, 4, dtype=torch.float64))[0].sum() * w)(x),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_torch_func_refusals_to_batch_are_recognised(case):
    exc = raised(REFUSALS[case])
    assert is_vmap_unsupported(exc), f"{type(exc).__name__}: {exc}"
    assert not is_resource_error(exc)


def test_no_batching_rule_for_lstm_points_is_recognised():
    model = models.lstm().double()
    inputs = models.sequence_data()["train"][0][0].double()
    params = {n: torch.stack([p.detach()] * 2) for n, p in model.named_parameters()}
    exc = raised(lambda: vmap(lambda p: torch.func.functional_call(model, p, (inputs,)))(params))
    assert "Batching rule not implemented" in str(exc) and is_vmap_unsupported(exc)


def test_out_of_memory_and_other_errors_are_not_refusals():
    cuda_oom = raised(lambda: vmap(lambda t: (_ for _ in ()).throw(
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")))(x))
    assert isinstance(cuda_oom, torch.OutOfMemoryError)
    cpu_oom = raised(lambda: vmap(lambda t: torch.empty(1 << 48) + t.sum())(x))  # 1 PiB
    shape = raised(lambda: vmap(lambda t: t @ torch.ones(5, 2, dtype=t.dtype))(x))
    for exc in (cuda_oom, cpu_oom):
        assert is_resource_error(exc) and not is_vmap_unsupported(exc), exc
    assert not is_vmap_unsupported(shape) and not is_resource_error(shape)
    assert not is_vmap_unsupported(ValueError("vmap: not a RuntimeError"))
    # resource errors win even when the message looks like a refusal
    assert not is_vmap_unsupported(torch.OutOfMemoryError("vmap: Batching rule not implemented"))


def test_missing_forward_mode_derivative_is_recognised():
    exc = raised(lambda: jvp(models.NoVmapNoJvpTanh.apply, (x,), (torch.ones_like(x),)))
    assert is_forward_ad_unsupported(exc) and not is_vmap_unsupported(exc)
    assert not is_forward_ad_unsupported(torch.OutOfMemoryError("forward AD out of memory"))


def test_fallback_remembers_a_refusal_and_never_retries():
    calls = {"fast": 0, "slow": 0}

    def fast():
        calls["fast"] += 1
        return vmap(lambda t: t * float(t.sum()))(x)

    def slow():
        calls["slow"] += 1
        return "loop"

    fallback = Fallback("vmap")
    assert fallback.run(fast, slow) == "loop" and fallback.failed
    assert fallback.reason.startswith("vmap failed: RuntimeError: vmap: It looks like you're calling .item()")
    assert fallback.run(fast, slow) == "loop"
    assert calls == {"fast": 1, "slow": 2}


def test_fallback_lets_out_of_memory_through_and_keeps_the_fast_strategy():
    fallback = Fallback("vmap")
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def slow():
        raise AssertionError("the loop must not run after an out-of-memory error")

    with pytest.raises(torch.OutOfMemoryError):
        fallback.run(lambda: (_ for _ in ()).throw(oom), slow)
    assert fallback.ok is None and fallback.reason == ""
    with pytest.raises(torch.OutOfMemoryError):
        vmap_or_loop(lambda v: (_ for _ in ()).throw(oom), {"w": x}, fallback)
    assert fallback.ok is None
    assert fallback.run(lambda: "vmap", slow) == "vmap" and fallback.ok is True


# ---------------------------------------------------------------------------- the sites
def test_out_of_memory_under_vmap_propagates_from_every_site(failing_problem):
    problem = failing_problem
    points = stacked(problem)
    FailsUnderVmap.error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(torch.OutOfMemoryError):
        problem.evaluate(points, show_progress=False)
    assert problem.evaluator.fallback.ok is None  # not switched to the loop
    with pytest.raises(torch.OutOfMemoryError):
        per_example_gradients(problem, method="auto", show_progress=False)
    fisher = EmpiricalFisherOperator(problem, examples_per_chunk=5)
    with pytest.raises(torch.OutOfMemoryError):
        fisher.matvec(torch.ones(fisher.size, dtype=torch.float64))
    assert fisher.gradient_fallback.ok is None
    # the memory is back: vmap is used, as it would have been without the error
    FailsUnderVmap.error = None
    problem.evaluate(points, show_progress=False)
    assert problem.evaluator.fallback.ok is True
    assert per_example_gradients(problem, method="auto", show_progress=False).method == "vmap"


def test_an_unrecognised_error_under_vmap_propagates(failing_problem):
    problem = failing_problem
    FailsUnderVmap.error = ValueError("a bug that only shows under vmap")
    with pytest.raises(ValueError, match="only shows under vmap"):
        problem.evaluate(stacked(problem), show_progress=False)
    assert problem.evaluator.fallback.ok is None


def test_a_model_without_batching_rules_falls_back_everywhere():
    problem = Problem.create(models.mlp().double(), models.item_loss, models.vector_data(), eval_mode="vmap")
    assert problem.eval_mode == "vmap" and problem.resolved_eval_mode() == "vmap"
    points = stacked(problem)
    batched = problem.evaluate(points, show_progress=False)
    assert problem.evaluator.fallback.failed
    assert "calling .item()" in problem.evaluator.fallback.reason
    problem.eval_mode = "loop"
    looped = problem.evaluate(points, show_progress=False)
    torch.testing.assert_close(batched["loss"], looped["loss"], rtol=RTOL, atol=0)

    result = per_example_gradients(problem, method="auto", show_progress=False)
    assert result.method == "loop" and result.fallback_reason.startswith("vmap failed: RuntimeError: vmap:")
    fisher = EmpiricalFisherOperator(problem, examples_per_chunk=7)
    dense = to_dense(fisher)
    assert fisher.gradient_fallback.failed
    expected = result.matrix.T @ result.matrix / result.num_examples
    torch.testing.assert_close(dense, expected, rtol=RTOL, atol=1e-14)


class _TanhNet(nn.Module):
    def __init__(self, activation) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(4, 3)
        self.activation = activation

    def forward(self, inputs: Tensor) -> Tensor:
        return self.b(self.activation(self.a(inputs)))


def test_ggn_falls_back_from_forward_mode_and_from_vmap():
    """An activation with neither a jvp nor a vmap rule: the GGN switches to the double-vjp
    product and to one column at a time, and equals the GGN of the same net with torch.tanh."""
    data = models.vector_data()
    torch.manual_seed(0)
    custom = _TanhNet(models.NoVmapNoJvpTanh.apply)
    plain = _TanhNet(torch.tanh)
    plain.load_state_dict(custom.state_dict())
    ggn = GGNOperator(Problem.create(custom, F.cross_entropy, data, dtype=torch.float64))
    reference = GGNOperator(Problem.create(plain, F.cross_entropy, data, dtype=torch.float64))
    torch.testing.assert_close(to_dense(ggn), to_dense(reference), rtol=RTOL, atol=1e-14)
    assert ggn.forward_fallback.failed and ggn.vmap_fallback.failed
    assert reference.forward_fallback.ok and reference.vmap_fallback.ok


# ---------------------------------------------------------------------------- Problem.create
def test_eval_mode_is_a_create_keyword_and_still_an_attribute():
    problem = Problem.create(models.mlp(), F.cross_entropy, models.vector_data(), eval_mode="loop")
    assert problem.resolved_eval_mode() == "loop" and problem.describe()["eval_mode"] == "loop"
    problem.eval_mode = "vmap"
    assert problem.resolved_eval_mode() == "vmap"
    with pytest.raises(LandscapeError, match="eval_mode"):
        Problem.create(models.mlp(), F.cross_entropy, models.vector_data(), eval_mode="fast")


def test_point_bytes_is_public_and_sizes_the_chunks():
    problem = Problem.create(models.mlp().double(), F.cross_entropy, models.vector_data())
    param_bytes = sum(p.numel() * 8 for p in problem.params.values())
    # largest batch 16: outputs of fc1 [16, 7], fc2 [16, 3] and the MLP [16, 3], doubled, + θ
    assert problem.point_bytes() == 2 * 16 * (7 + 3 + 3) * 8 + param_bytes
    problem.memory_budget_bytes = 3 * problem.point_bytes()
    assert problem.points_per_pass() == 3


# ---------------------------------------------------------------------------- params
def test_parameter_layout_round_trips():
    like = {"w": torch.zeros(3, 2), "b": torch.zeros(2), "s": torch.zeros(())}
    vector = torch.arange(9.0)
    parts = unflatten(vector, like)
    assert [tuple(t.shape) for t in parts.values()] == [(3, 2), (2,), ()]
    assert torch.equal(flatten(parts), vector)
    with pytest.raises(ValueError):
        unflatten(torch.arange(10.0), like)
    rows = torch.arange(36.0).reshape(4, 9)
    named = unflatten_rows(rows, like)
    assert named["w"].shape == (4, 3, 2) and torch.equal(named["w"][1], rows[1, :6].reshape(3, 2))
    assert torch.equal(flatten_rows(named), rows)
    out = torch.empty(4, 9)
    assert flatten_rows(named, out) is out and torch.equal(out, rows)
    assert all(torch.equal(flatten(unflatten(rows[i], like)), rows[i]) for i in range(4))
    columns = rows.T
    assert all(torch.equal(a, b) for a, b in zip(unflatten_columns(columns, like).values(), named.values()))
    assert torch.equal(flatten_columns(named), columns)
