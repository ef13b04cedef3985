"""Per-example gradients against an independent loop of single-example backward passes.

Ground truth: ``torch.autograd.grad`` of the loss on ``x[i:i+1]`` through a private copy of
the user's nn.Module (ordinary autograd, no torch.func, no Problem.forward), one example at a
time, in float64. The tolerance 1e-10 is float64 round-off (~1e-16 relative) amplified by
summation order differences between batched and single matmuls, far below any real error.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape import LandscapeError, Problem
from landscape.noise import check_mean_reduction, gradient_noise, per_example_gradients, select_examples
from landscape.problem import flatten
from landscape.zoo import digits, digits_cnn, digits_images, digits_mlp

TOL = 1e-10


def reference_gradients(model: nn.Module, loss_fn, examples: list[tuple]) -> torch.Tensor:
    """Loop of single-example backward passes on an eval-mode float64 copy of the model."""
    ref = copy.deepcopy(model).double().eval()
    rows = []
    for inputs, target in examples:
        params = [p for p in ref.parameters() if p.requires_grad]
        if isinstance(inputs, dict):
            out = ref(**inputs)
        elif isinstance(inputs, tuple):
            out = ref(*inputs)
        else:
            out = ref(inputs)
        grads = torch.autograd.grad(loss_fn(out, target), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def first_examples(data, count: int, to_double=True):
    x, y = data["train"][0] if isinstance(data, dict) else data[0]
    cast = (lambda t: t.double()) if to_double else (lambda t: t)
    return [(cast(x[i:i + 1]), y[i:i + 1]) for i in range(count)]


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN running statistics so eval-mode BN is not the identity."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_vmap_matches_single_example_loop(name):
    torch.manual_seed(0)
    if name == "mlp":
        model, data = digits_mlp(16), digits(64)
    else:
        model, data = trained_like(digits_cnn(4)), digits_images(64)
    problem = Problem.create(model, F.cross_entropy, data, dtype=torch.float64, max_examples=64)
    result = per_example_gradients(problem, torch.arange(40), show_progress=False)
    assert result.method == "vmap"
    expected = reference_gradients(model, F.cross_entropy, first_examples(data, 40))
    assert result.matrix.shape == expected.shape
    assert (result.matrix - expected).abs().max() < TOL
    forced_loop = per_example_gradients(problem, torch.arange(40), method="loop", show_progress=False)
    assert (forced_loop.matrix - expected).abs().max() < TOL


def test_chunking_and_selection_across_batches():
    """Examples spread over several data batches and computed in chunks of 7."""
    torch.manual_seed(1)
    model, data = digits_mlp(8), digits(16)
    problem = Problem.create(model, F.cross_entropy, data, dtype=torch.float64, max_examples=80)
    indices = select_examples(problem, 30, seed=3)
    assert len(set(indices.tolist())) == 30 and indices.max() < 80
    result = per_example_gradients(problem, indices, chunk_size=7, show_progress=False)
    x = torch.cat([b[0] for b in data["train"]])[:80]
    y = torch.cat([b[1] for b in data["train"]])[:80]
    expected = reference_gradients(model, F.cross_entropy,
                                   [(x[i:i + 1].double(), y[i:i + 1]) for i in indices.tolist()])
    assert (result.matrix - expected).abs().max() < TOL
    # the mean over every example is the full-batch gradient of the empirical risk
    everything = per_example_gradients(problem, show_progress=False)
    assert (everything.matrix.mean(0) - flatten(problem.gradient())).abs().max() < TOL


class DictInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(2, 3)

    def forward(self, image, extra, scale=1.0):
        return torch.tanh(self.a(image)) * scale + self.b(extra)


def test_dict_and_tuple_inputs():
    torch.manual_seed(2)
    model = DictInputs()
    image, extra, target = torch.randn(12, 4), torch.randn(12, 2), torch.randint(0, 3, (12,))
    dict_data = [{"image": image, "extra": extra, "label": target}]
    problem = Problem.create(model, F.cross_entropy, dict_data, dtype=torch.float64)
    result = per_example_gradients(problem, show_progress=False)
    expected = reference_gradients(model, F.cross_entropy, [
        ({"image": image[i:i + 1].double(), "extra": extra[i:i + 1].double()}, target[i:i + 1])
        for i in range(12)])
    assert result.method == "vmap"
    assert (result.matrix - expected).abs().max() < TOL
    tuple_problem = Problem.create(model, F.cross_entropy, [(image, extra, target)], dtype=torch.float64)
    tuple_result = per_example_gradients(tuple_problem, show_progress=False)
    assert (tuple_result.matrix - expected).abs().max() < TOL


class TinyGRU(nn.Module):
    """A recurrent model: nn.GRU has no vmap batching rule here, so the loop is used."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_loop_fallback_for_models_vmap_rejects():
    torch.manual_seed(3)
    model = TinyGRU()
    x, y = torch.randn(9, 6, 3), torch.randint(0, 4, (9,))
    problem = Problem.create(model, F.cross_entropy, [(x, y)], dtype=torch.float64)
    result = per_example_gradients(problem, show_progress=False)
    assert result.method == "loop"
    assert "vmap failed" in result.fallback_reason
    expected = reference_gradients(model, F.cross_entropy, [(x[i:i + 1].double(), y[i:i + 1]) for i in range(9)])
    assert (result.matrix - expected).abs().max() < TOL


def test_user_model_is_not_mutated():
    torch.manual_seed(4)
    model = trained_like(digits_cnn(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    problem = Problem.create(model, F.cross_entropy, digits_images(32), max_examples=32)
    gradient_noise(problem, batch_size=4, k=3, show_progress=False, hessian=False)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small_problem():
    torch.manual_seed(5)
    return Problem.create(digits_mlp(8), F.cross_entropy, digits(32), max_examples=64)


def test_too_many_examples_is_refused(small_problem):
    with pytest.raises(LandscapeError, match="larger than split 'train', which has 64 examples"):
        gradient_noise(small_problem, examples=65, batch_size=8, show_progress=False)
    with pytest.raises(LandscapeError, match="at least 2|≥ 2"):
        select_examples(small_problem, 1)


@pytest.mark.parametrize("bad", [0, -3])
def test_batch_size_must_be_positive(small_problem, bad):
    with pytest.raises(LandscapeError, match="--batch-size must be a positive integer"):
        gradient_noise(small_problem, batch_size=bad, show_progress=False)


def test_batch_size_larger_than_dataset(small_problem):
    with pytest.raises(LandscapeError, match="larger than the dataset"):
        gradient_noise(small_problem, batch_size=65, show_progress=False)


def test_sum_reduction_is_detected():
    torch.manual_seed(6)
    problem = Problem.create(digits_mlp(8), nn.CrossEntropyLoss(reduction="sum"), digits(32), max_examples=64)
    with pytest.raises(LandscapeError, match="reduction='sum'"):
        gradient_noise(problem, batch_size=8, show_progress=False)


def test_loss_that_is_not_a_per_example_mean_is_refused():
    torch.manual_seed(7)
    problem = Problem.create(digits_mlp(8), lambda out, y: F.cross_entropy(out, y) ** 2, digits(32),
                             max_examples=64)
    with pytest.raises(LandscapeError, match="neither the mean"):
        check_mean_reduction(problem)
    mean_problem = Problem.create(digits_mlp(8), nn.CrossEntropyLoss(), digits(32), max_examples=64)
    check_mean_reduction(mean_problem)  # the ordinary mean passes
