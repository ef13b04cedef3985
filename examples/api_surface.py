"""The Python API on your own model and DataLoader: 1-D and 2-D loss surfaces, top eigenvalues.

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

import landscape as ls


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

    problem = ls.Problem.create(model, F.mse_loss, {"train": DataLoader(train, batch_size=128),
                                                     "test": DataLoader(test, batch_size=128)})
    line = ls.random_line(problem, points=21, seed=0)  # filter-normalized, biases held fixed
    plane = ls.random_plane(problem, points=11, seed=0)
    eigs = ls.hessian_eigs(problem, k=3)

    print("train loss at θ*:", problem.loss())
    print("1-D test loss:", np.round(line.values["test"]["loss"], 4))
    print("2-D train loss, min and max:", plane.values["train"]["loss"].min(), plane.values["train"]["loss"].max())
    print("top-3 Hessian eigenvalues:", np.round(eigs.eigenvalues.numpy(), 4), "converged:", eigs.all_converged)
    saved = plane.save("api_surface.landscape.h5", overwrite=True)
    print(f"saved: {saved} (landscape view {saved} draws it)")


if __name__ == "__main__":
    main()
