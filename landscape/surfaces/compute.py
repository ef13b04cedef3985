"""Loss surfaces: metrics at θ(α, β) = θ₀ + α·d0 + β·d1 on a grid.

Points are computed directly from θ₀ (never by accumulating steps) and evaluated many per
forward pass by :meth:`Problem.evaluate`. Grids use 'ij' indexing: value[i, j] belongs to
(axes[0][i], axes[1][j]); flat index = i·len(axes[1]) + j.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..problem import Problem
from ..progress import progress
from .directions import Direction
from .refine import coarse_to_fine
from .results import SurfaceResult


def grid_coefficients(axes: Sequence[np.ndarray]) -> np.ndarray:
    """All grid points as rows of coefficients, in 'ij' (C) order."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


def points_at(origin: Mapping[str, Tensor], directions: Sequence[Direction],
              coefficients: np.ndarray) -> dict[str, Tensor]:
    """Stacked parameters θ₀ + Σ_k c[p, k]·d_k for each row p of ``coefficients``."""
    out = {}
    for name, theta in origin.items():
        coef = torch.as_tensor(coefficients, dtype=theta.dtype, device=theta.device)
        basis = torch.stack([d[name] for d in directions])  # [k, *shape]
        out[name] = theta.unsqueeze(0) + torch.tensordot(coef, basis, dims=1)
    return out


def evaluate_points(problem: Problem, origin: Mapping[str, Tensor], directions: Sequence[Direction],
                    axes: Sequence[np.ndarray], splits: Sequence[str], todo: np.ndarray,
                    desc: str = "surface", *, show_progress: bool = True,
                    ) -> Generator[tuple[np.ndarray, dict[str, dict[str, np.ndarray]]], None, None]:
    """Evaluate the grid points whose flat indices are in ``todo``, in that order, one
    pass-sized chunk at a time; yields ``(flat_indices, {split: {metric: values}})`` so callers can store as they go.

    ``show_progress``: a bar on stderr (never with ``LANDSCAPE_QUIET=1`` or under ``--quiet``).
    """
    coefficients = grid_coefficients(axes)
    per_pass = problem.points_per_pass()
    with progress(len(todo), desc, "pt", enabled=show_progress) as bar:
        for start in range(0, len(todo), per_pass):
            indices = todo[start:start + per_pass]
            stacked = points_at(origin, directions, coefficients[indices])
            values = {split: {k: v.numpy() for k, v in
                              problem.evaluate(stacked, split, show_progress=False).items()}
                      for split in splits}
            bar.update(len(indices))
            yield indices, values


def compute_surface(problem: Problem, directions: Sequence[Direction], axes: Sequence[np.ndarray],
                    splits: Sequence[str] | None = None, origin: Mapping[str, Tensor] | None = None,
                    *, show_progress: bool = True) -> SurfaceResult:
    """A whole 1-D or 2-D surface in memory (the CLI stores and resumes; this does not).

    ``directions[k]`` runs along ``axes[k]``; ``origin`` is θ* unless given; ``splits`` all
    of the problem's unless given. Store it with ``writer.write_group(path, *result.to_group(names))``.
    """
    axes = [np.asarray(a, dtype=np.float64) for a in axes]
    splits = list(splits or problem.split_names)
    shape = tuple(len(a) for a in axes)
    values = {s: {m: np.full(shape, np.nan) for m in problem.metric_names()} for s in splits}
    done = np.zeros(shape, dtype=bool)
    todo = coarse_to_fine(axes)  # the order the CLI uses: same chunks, same values
    for indices, chunk in evaluate_points(problem, origin or problem.params, directions, axes, splits, todo,
                                          show_progress=show_progress):
        for split, metrics in chunk.items():
            for metric, v in metrics.items():
                values[split][metric].reshape(-1)[indices] = v
        done.reshape(-1)[indices] = True
    return SurfaceResult(axes, values, done)
