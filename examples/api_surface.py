"""The Python API on your own model and DataLoader: a 1-D and a 2-D loss surface.

    python examples/api_surface.py

Trains a small MLP on a synthetic teacher-student regression task for a few seconds, then
scans around the solution. The model you pass is never modified.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape import Problem
from landscape.surfaces import compute_surface, random_directions


def teacher_student(n: int, seed: int) -> TensorDataset:
    """y = tanh(x·w) + noise, with one fixed teacher w and ``seed`` choosing the examples."""
    teacher = torch.randn(10, 1, generator=torch.Generator().manual_seed(1234))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=gen)
    y = torch.tanh(x @ teacher) + 0.1 * torch.randn(n, 1, generator=gen)
    return TensorDataset(x, y)


def main() -> None:
    torch.manual_seed(0)
    train, test = teacher_student(512, seed=0), teacher_student(256, seed=1)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.mse_loss(model(train.tensors[0]), train.tensors[1]).backward()
        opt.step()

    problem = Problem.create(model, F.mse_loss, {"train": DataLoader(train, batch_size=128),
                                                  "test": DataLoader(test, batch_size=128)})
    d0, d1 = random_directions(problem.params, 2, seed=0)  # filter-normalized, biases held fixed
    line = compute_surface(problem, [d0.vectors], [np.linspace(-1, 1, 21)])
    plane = compute_surface(problem, [d0.vectors, d1.vectors], [np.linspace(-1, 1, 11)] * 2)

    print("train loss at θ*:", problem.loss())
    print("1-D test loss:", np.round(line.values["test"]["loss"], 4))
    print("2-D train loss, min and max:", plane.values["train"]["loss"].min(), plane.values["train"]["loss"].max())


if __name__ == "__main__":
    main()
