"""Small real models, data and dense float64 references for the curvature tests.

References are built only from ``problem.batch_loss``/``problem.forward`` and
``torch.func.hessian``/``jacrev`` on a flat vector: independent of the operators under test.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape import zoo
from landscape.problem import Batch, Problem, flatten, unflatten


class TinyRNN(nn.Module):
    """nn.RNN over a short sequence, last hidden state → linear head."""

    def __init__(self, features: int = 3, hidden: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.rnn = nn.RNN(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def digits_subset(n: int = 120, batch_size: int = 50, images: bool = False):
    data = (zoo.digits_images if images else zoo.digits)(batch_size=batch_size)["train"]
    batches, seen = [], 0
    for x, y in data:
        take = min(len(y), n - seen)
        batches.append((x[:take], y[:take]))
        seen += take
        if seen >= n:
            break
    return batches


def mlp_problem(dtype: torch.dtype = torch.float64, hidden: int = 4) -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
    # uneven batch sizes (50, 50, 20) check the batch-size weighting
    return Problem.create(model, F.cross_entropy, digits_subset(120, 50), dtype=dtype)


def cnn_problem(dtype: torch.dtype = torch.float64) -> Problem:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 10))
    bn = model[1]
    bn.running_mean.uniform_(-0.2, 0.2)  # non-trivial running statistics
    bn.running_var.uniform_(0.5, 2.0)
    model.train()  # Problem.create must switch to eval (running stats), not use batch stats
    return Problem.create(model, F.cross_entropy, digits_subset(60, 40, images=True), dtype=dtype)


def rnn_problem(dtype: torch.dtype = torch.float64) -> Problem:
    torch.manual_seed(2)
    teacher, student = TinyRNN(), TinyRNN()
    x = torch.randn(40, 5, 3)
    with torch.no_grad():
        y = teacher(x).argmax(-1)
    return Problem.create(student, F.cross_entropy, [(x[:25], y[:25]), (x[25:], y[25:])], dtype=dtype)


def linear_regression_problem(n: int = 80, d: int = 6) -> tuple[Problem, Tensor]:
    """MSE linear regression and its closed-form Hessian (2/n)·X̃ᵀX̃ (X̃ = [X, 1], weight then bias)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(0.3, 2.0, d, dtype=torch.float64)
    y = (x @ torch.randn(d, 1, generator=gen, dtype=torch.float64)
         + 0.1 * torch.randn(n, 1, generator=gen, dtype=torch.float64))
    model = nn.Linear(d, 1).double()
    problem = Problem.create(model, F.mse_loss, [(x[:50], y[:50]), (x[50:], y[50:])], dtype=torch.float64)
    xt = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    return problem, 2.0 / n * xt.T @ xt


def logistic_regression_problem(n: int = 90, d: int = 5) -> tuple[Problem, Tensor]:
    """BCE-with-logits logistic regression; Hessian (1/n)·Σ σ(1−σ) x̃x̃ᵀ at θ*."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (torch.rand(n, 1, generator=gen, dtype=torch.float64) < torch.sigmoid(x[:, :1] - x[:, 1:2])).double()
    model = nn.Linear(d, 1).double()
    problem = Problem.create(model, F.binary_cross_entropy_with_logits, [(x[:60], y[:60]), (x[60:], y[60:])],
                             dtype=torch.float64)
    w, b = problem.params["weight"], problem.params["bias"]
    s = torch.sigmoid(x @ w.T + b)
    xt = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    return problem, (xt * (s * (1 - s))).T @ xt / n


def selected(problem: Problem, names: list[str] | None = None) -> dict[str, Tensor]:
    return {n: problem.params[n] for n in (names or list(problem.params))}


def transformer_problem() -> Problem:
    """The shared suite's tiny pre-norm transformer (embedding, attention, MLP, LayerNorm)."""
    from tests import models

    data = models.token_data()["train"][:2]
    return Problem.create(models.transformer(), F.cross_entropy, data, dtype=torch.float64)


def recast(problem: Problem, dtype: torch.dtype = torch.float64,
           batches: list[Batch] | None = None) -> Problem:
    """``problem`` rebuilt from its own (rounded) weights, buffers and data in ``dtype``, over
    ``batches`` (default: its train batches). In float64 the cast is exact, so the Hessian is
    the exact one that products in the problem's low precision approximate."""
    model = copy.deepcopy(problem.model)
    for name, param in model.named_parameters():
        param.requires_grad_(name in problem.params)
        if name in problem.params:
            param.data.copy_(problem.params[name])
    data = [(b.inputs, b.target) for b in (batches or problem.batches())]
    return Problem.create(model, problem.loss_fn, data, dtype=dtype)


def dense_hessian(problem: Problem, names: list[str] | None = None, *, engine: str = "func") -> Tensor:
    """∇² of the batch-size-weighted empirical risk over ``names``, by torch.func.hessian
    (``engine='autograd'``: torch.autograd.functional.hessian, a loop of double backwards —
    for nn.TransformerEncoderLayer, whose fused fast path gives wrong second derivatives
    under torch.func.hessian's vmap)."""
    params = selected(problem, names)
    total = problem.num_examples()

    def risk(flat: Tensor) -> Tensor:
        p = unflatten(flat, params)
        return sum(problem.batch_loss(p, b) * b.size for b in problem.batches()) / total

    from landscape.curvature.operators import differentiable_attention

    with differentiable_attention():  # fused attention kernels have no second derivatives
        if engine == "autograd":
            return torch.autograd.functional.hessian(risk, flatten(params), vectorize=True)
        return torch.func.hessian(risk)(flatten(params))


def dense_ggn(problem: Problem) -> Tensor:
    """Σ_b (n_b/N) J_bᵀ ∇²_z ℓ_b J_b with J from jacrev and ∇²_z from hessian."""
    params = selected(problem)
    flat = flatten(params)
    total = problem.num_examples()
    out = torch.zeros(flat.numel(), flat.numel(), dtype=flat.dtype)
    for b in problem.batches():
        z = problem.forward(unflatten(flat, params), b.inputs)
        if not isinstance(z, Tensor):
            raise TypeError("dense_ggn needs a tensor output")
        jac = torch.func.jacrev(lambda v, b=b: problem.forward(unflatten(v, params), b.inputs).reshape(-1))(flat)
        hz = torch.func.hessian(lambda u, z=z, b=b: problem.loss_fn(u.reshape(z.shape), b.target))(z.reshape(-1))
        out += b.size / total * jac.T @ hz @ jac
    return out


def dense_fisher(problem: Problem) -> Tensor:
    """(1/N) Σ_i g_i g_iᵀ, each g_i by a separate backward pass on one example."""
    params = selected(problem)
    flat = flatten(params)
    rows = []
    for b in problem.batches():
        for i in range(b.size):
            one = b.slice(i, i + 1)
            rows.append(torch.func.grad(lambda v, one=one: problem.batch_loss(unflatten(v, params), one))(flat))
    grads = torch.stack(rows)
    return grads.T @ grads / grads.shape[0]
