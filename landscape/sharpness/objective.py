"""The empirical risk as a function of a flat perturbation δ: L(θ* + δ) and its gradient.

Every sharpness measure is an optimization or an average of this one function. It runs on
the Problem's eval-mode copy (BatchNorm on the checkpoint's running statistics, dropout
off), over a fixed list of batches: a whole split, or the m-example batches of
m-sharpness. Risks are batch means weighted by batch size, summed in float64; δ and the
gradient are flat vectors in ``problem.params`` order (:mod:`landscape.params`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..params import flatten, unflatten
from ..problem import Batch, Problem
from ..problem.splits import Batches, count_examples


@dataclass
class Objective:
    """δ ↦ L(θ* + δ) over ``batches``, counting full passes over them."""

    problem: Problem
    batches: Iterable[Batch]
    gradient_evaluations: int = 0
    loss_evaluations: int = 0
    theta: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.theta = flatten(self.problem.params)
        self._total = count_examples(self.batches)

    @classmethod
    def on_split(cls, problem: Problem, split: str = "train") -> Objective:
        """The risk over one of the problem's splits."""
        return cls(problem, problem.batches(split))

    @property
    def size(self) -> int:
        """D, the number of trainable parameters."""
        return self.theta.numel()

    def point(self, delta: Tensor) -> dict[str, Tensor]:
        """θ* + δ as named tensors, in the problem's dtype and device."""
        shifted = self.theta + delta.to(device=self.theta.device, dtype=self.theta.dtype)
        return unflatten(shifted, self.problem.params)

    def loss(self, delta: Tensor) -> float:
        """L(θ* + δ)."""
        self.loss_evaluations += 1
        params = self.point(delta)
        total = torch.zeros((), dtype=torch.float64, device=self.theta.device)
        with torch.no_grad():
            for batch in self.batches:
                total += self.problem.batch_loss(params, batch).double() * batch.size
        return float(self.whole(total)) / self._total

    def loss_and_gradient(self, delta: Tensor) -> tuple[float, Tensor]:
        """L(θ* + δ) and ∇L(θ* + δ) (flat, float64 on the problem's device)."""
        self.gradient_evaluations += 1
        params = self.point(delta)
        grad_and_loss = torch.zeros(self.size + 1, dtype=torch.float64, device=self.theta.device)
        for batch in self.batches:
            g, value = torch.func.grad_and_value(lambda p, b=batch: self.problem.batch_loss(p, b))(params)
            weight = batch.size / self._total
            grad_and_loss[:-1] += flatten(g).double() * weight
            grad_and_loss[-1] += value.double() * weight
        grad_and_loss = self.whole(grad_and_loss)
        return float(grad_and_loss[-1]), grad_and_loss[:-1]

    def whole(self, total: Tensor) -> Tensor:
        """A sum over this objective's batches made whole across the ranks of a data-parallel
        run (a split's batches; an explicit list of batches is this process's own)."""
        return self.batches.reduce(total) if isinstance(self.batches, Batches) else total
