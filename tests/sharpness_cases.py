"""Problems with known sharpness, shared by the sharpness tests.

* :func:`quadratic_problem`: L(θ) = ½(θ − c)ᵀH(θ − c) with θ* = c, so every measure has a
  closed form in H (average case σ²tr H/2, worst case ℓ2 ρ²λ_max/2, box maxima of a
  diagonal H), in float64.
* :func:`relu_mlp_problem` and :func:`rescaled`: a ReLU MLP on digits and the same function
  with one layer scaled by α and the next by 1/α (adaptive measures must not change).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape import Problem, zoo


class ParameterVector(nn.Module):
    """Outputs its own parameter vector for every example (the input only sets the batch size)."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(theta.clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.w.expand(x.shape[0], -1)


def quadratic_loss(hessian: Tensor, center: Tensor):
    """``loss(out, target)`` = ½(out − c)ᵀH(out − c), averaged over the batch."""

    def loss(out: Tensor, target: Tensor) -> Tensor:
        diff = out - center
        return 0.5 * ((diff @ hessian) * diff).sum(-1).mean()

    return loss


def quadratic_problem(hessian: Tensor, center: Tensor, *, batches: int = 1, batch_size: int = 4) -> Problem:
    """Problem whose risk is ½(θ − c)ᵀH(θ − c) exactly, with θ* = c (float64)."""
    hessian, center = hessian.double(), center.double()
    data = [(torch.zeros(batch_size, 1, dtype=torch.float64), torch.zeros(batch_size, dtype=torch.float64))
            for _ in range(batches)]
    return Problem.create(ParameterVector(center), quadratic_loss(hessian, center), data, dtype=torch.float64)


def spd_with_spectrum(eigenvalues: Tensor, seed: int = 0) -> Tensor:
    """Q diag(λ) Qᵀ with a seeded random orthogonal Q (float64)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=gen, dtype=torch.float64))
    return q @ torch.diag(eigenvalues.double()) @ q.T


class ReluMLP(nn.Module):
    """64 → 16 → ReLU → 10: scaling fc1 by α and fc2's weight by 1/α leaves the function unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def trained_relu_mlp(steps: int = 300, seed: int = 0) -> ReluMLP:
    """A ReLU MLP fitted to digits by full-batch Adam (float64, deterministic)."""
    torch.manual_seed(seed)
    model = ReluMLP().double()
    (x, y), = zoo.digits(batch_size=10_000)["train"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x.double()), y).backward()
        opt.step()
    return model


def rescaled(model: ReluMLP, alpha: float) -> ReluMLP:
    """The same function: fc1 (weight and bias) × α, fc2's weight × 1/α."""
    out = ReluMLP().double()
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        out.fc1.weight.mul_(alpha)
        out.fc1.bias.mul_(alpha)
        out.fc2.weight.div_(alpha)
    return out


def relu_mlp_problem(model: nn.Module, batch_size: int = 512) -> Problem:
    """The digits train/test splits on ``model`` in float64."""
    return Problem.create(model, F.cross_entropy, zoo.digits(batch_size), dtype=torch.float64)
