"""The plane of a training trajectory (Li et al. 2018, §7): the top-2 principal directions of
the checkpoints' offsets θ_t − θ_final, and every checkpoint projected onto that plane.

Pure functions of named tensors: no files, no Problem. Everything is float64 on the CPU.
The offset matrix is not mean-centred: its origin is θ_final (the plane passes through the
final weights, which the surface is drawn around), as Li et al. do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from ..memory import require_fits
from ..params import flatten, unflatten

# second singular value below this fraction of the first: the offsets span a line, not a plane
RANK_TOLERANCE = 1e-10


@dataclass(frozen=True)
class TrajectoryPlane:
    """The PCA plane through θ_final and each checkpoint's place on it.

    ``directions[k]``: unit-norm principal direction k by parameter name (float64, CPU), signed
    so that the first checkpoint has a coordinate ≤ 0 on it (the path runs towards +).
    ``coordinates[t]``: least-squares coefficients c of [d1 d2] c ≈ θ_t − θ_final.
    ``residual_norm[t]``: ‖θ_t − θ_final − [d1 d2] c‖, checkpoint t's distance from the plane.
    ``distance[t]``: ‖θ_t − θ_final‖. ``explained_variance``: σ_k² / Σ σ_j² of the offsets.
    """

    directions: tuple[dict[str, Tensor], dict[str, Tensor]]
    coordinates: np.ndarray  # [T, 2]
    residual_norm: np.ndarray  # [T]
    distance: np.ndarray  # [T]
    explained_variance: np.ndarray  # [2]
    singular_values: np.ndarray  # [min(T, D)]

    @property
    def relative_residual(self) -> np.ndarray:
        """``residual_norm / distance`` (0 at θ_final itself, where both are 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.distance > 0, self.residual_norm / np.where(self.distance > 0, self.distance, 1.0),
                            0.0)


def offset_rows(thetas: Sequence[Mapping[str, Tensor]], final: Mapping[str, Tensor]) -> Tensor:
    """``[T, D]`` float64: row t is θ_t − θ_final flattened in ``final``'s parameter order."""
    rows, dims = len(thetas), sum(p.numel() for p in final.values())
    require_fits(8 * rows * dims * 2, f"the trajectory's offset matrix ({rows} × {dims})",
                 "use fewer checkpoints")
    reference = flatten({n: p.detach().to("cpu", torch.float64) for n, p in final.items()})
    out = torch.empty(rows, dims, dtype=torch.float64)
    for t, theta in enumerate(thetas):
        out[t] = flatten({n: theta[n].detach().to("cpu", torch.float64) for n in final}) - reference
    return out


def pca_plane(thetas: Sequence[Mapping[str, Tensor]], final: Mapping[str, Tensor]) -> TrajectoryPlane:
    """The top-2 right singular vectors of the offsets θ_t − θ_final and the least-squares
    projection of every checkpoint onto them (not the per-axis cosine: exact for any basis)."""
    if len(thetas) < 3:
        raise LandscapeError(f"a trajectory plane needs at least 3 checkpoints, got {len(thetas)}")
    offsets = offset_rows(thetas, final)
    _, singular, vh = torch.linalg.svd(offsets, full_matrices=False)
    if singular[0] == 0 or singular[1] <= RANK_TOLERANCE * singular[0]:
        raise LandscapeError("the checkpoints lie on one line through the final one (or all coincide): "
                             "no plane to draw; use `landscape interpolate` for a line")
    basis = vh[:2].clone()  # [2, D]
    coefficients = torch.linalg.lstsq(basis.T, offsets.T).solution  # [2, T]
    signs = torch.where(coefficients[:, 0] > 0, -1.0, 1.0).to(torch.float64)
    basis, coefficients = basis * signs[:, None], coefficients * signs[:, None]
    residual = (offsets.T - basis.T @ coefficients).norm(dim=0)
    like = {n: p.detach().to("cpu", torch.float64) for n, p in final.items()}
    energy = singular.square()
    return TrajectoryPlane(
        directions=(dict(unflatten(basis[0].clone(), like)), dict(unflatten(basis[1].clone(), like))),
        coordinates=coefficients.T.numpy().copy(), residual_norm=residual.numpy().copy(),
        distance=offsets.norm(dim=1).numpy().copy(),
        explained_variance=(energy[:2] / energy.sum()).numpy().copy(), singular_values=singular.numpy().copy())


def covering_range(coordinates: np.ndarray, margin: float = 0.15) -> tuple[float, float, float, float]:
    """MIN MAX per axis covering every point, widened by ``margin`` of each axis's extent."""
    out: list[float] = []
    for k in range(2):
        lo, hi = float(coordinates[:, k].min()), float(coordinates[:, k].max())
        pad = margin * (hi - lo) if hi > lo else max(abs(lo), 1.0) * margin
        out += [lo - pad, hi + pad]
    return out[0], out[1], out[2], out[3]
