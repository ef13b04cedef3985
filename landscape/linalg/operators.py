"""The linear-algebra core's operator: a symmetric matrix known through its products.

:class:`LinearOperator` is what every solver in :mod:`landscape.linalg` takes (restarted
Lanczos, Hutchinson/Hutch++ traces, SLQ densities): ``size``, ``dtype``, ``device``,
``matmat(V)`` for ``V`` of shape ``[D, m]`` (one pass over the data for all ``m`` columns in
the model-based operators of :mod:`landscape.curvature.operators`), ``matvec`` and the cost
counters ``num_matvecs``/``num_data_passes``. :class:`DenseOperator` wraps an explicit
matrix; :func:`to_dense` materializes any operator (the test harness); ``to_scipy()`` hands
any operator to SciPy's iterative solvers (``eigsh``, ``lobpcg``, ``cg``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError

if TYPE_CHECKING:
    import scipy.sparse.linalg


class LinearOperator:
    """A symmetric linear operator with ``matvec``/``matmat`` and cost counters."""

    name = "linear"

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device) -> None:
        self.size = size
        self.dtype = dtype
        self.device = device
        self.num_matvecs = 0
        self.num_data_passes = 0
        self.on_products: Callable[[int], Any] | None = None  # told the columns of each product (progress)

    @property
    def shape(self) -> tuple[int, int]:
        """``(size, size)``."""
        return (self.size, self.size)

    @property
    def precision(self) -> torch.dtype:
        """The dtype whose rounding the products carry (tolerances and error bounds follow
        it): ``dtype``, unless the products are computed in a lower one (autocast)."""
        return self.dtype

    def matmat(self, vectors: Tensor) -> Tensor:
        """``A @ V`` for ``V`` of shape ``[D, m]`` (one data pass for all columns)."""
        if vectors.ndim != 2 or vectors.shape[0] != self.size:
            raise LandscapeError(f"{self.name} operator: expected vectors of shape [{self.size}, m], "
                                 f"got {list(vectors.shape)}")
        out = self._matmat(vectors.to(device=self.device, dtype=self.dtype))
        self.num_matvecs += vectors.shape[1]
        self.num_data_passes += 1
        if self.on_products is not None:
            self.on_products(vectors.shape[1])
        return out

    def matvec(self, vector: Tensor) -> Tensor:
        """``A @ v`` for one vector of length ``size`` (a one-column :meth:`matmat`)."""
        return self.matmat(vector.reshape(-1, 1))[:, 0]

    def __matmul__(self, other: Tensor) -> Tensor:
        """``op @ v`` (:meth:`matvec`) or ``op @ V`` (:meth:`matmat`)."""
        return self.matvec(other) if other.ndim == 1 else self.matmat(other)

    def reset_counters(self) -> None:
        """Zero ``num_matvecs`` and ``num_data_passes``."""
        self.num_matvecs = 0
        self.num_data_passes = 0

    def describe(self) -> dict[str, Any]:
        """Attributes worth storing next to results computed with this operator."""
        return {"operator": self.name, "num_parameters": self.size}

    def to_scipy(self) -> scipy.sparse.linalg.LinearOperator:
        """The operator for SciPy's iterative solvers (``eigsh``, ``lobpcg``, ``cg``, ...): a
        :class:`scipy.sparse.linalg.LinearOperator` of shape ``(size, size)`` and dtype float64
        whose products take and return float64 NumPy arrays on the host. Every product goes
        through :meth:`matmat` (cast to this operator's dtype and device, counted as usual; a
        block of columns is one data pass). Symmetric, so ``rmatvec`` is ``matvec``."""
        from scipy.sparse.linalg import LinearOperator as ScipyOperator

        def matmat(block: np.ndarray) -> np.ndarray:
            columns = torch.tensor(np.asarray(block, dtype=np.float64).reshape(self.size, -1))
            return self.matmat(columns).detach().to(device="cpu", dtype=torch.float64).numpy()

        def matvec(vector: np.ndarray) -> np.ndarray:
            return matmat(vector).reshape(-1)

        return ScipyOperator(self.shape, matvec=matvec, rmatvec=matvec, matmat=matmat, rmatmat=matmat,
                             dtype=np.float64)

    def _matmat(self, vectors: Tensor) -> Tensor:
        raise NotImplementedError


class DenseOperator(LinearOperator):
    """An explicit symmetric matrix (synthetic spectra in tests, small dense Hessians)."""

    name = "dense"

    def __init__(self, matrix: Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise LandscapeError(f"dense operator: expected a square matrix, got {list(matrix.shape)}")
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix

    def _matmat(self, vectors: Tensor) -> Tensor:
        return self.matrix @ vectors


def is_low_precision(dtype: torch.dtype) -> bool:
    """True for dtypes coarser than float32 (bfloat16, float16)."""
    return torch.finfo(dtype).eps > torch.finfo(torch.float32).eps


def as_operator(operator: LinearOperator | Tensor) -> LinearOperator:
    """``operator`` itself, or a :class:`DenseOperator` around a square matrix."""
    return DenseOperator(operator) if isinstance(operator, Tensor) else operator


def to_dense(operator: LinearOperator, chunk: int = 256) -> Tensor:
    """Materialize ``operator`` by applying it to the identity, ``chunk`` columns per pass
    (a test harness; symmetric by construction of the operators, not enforced)."""
    eye = torch.eye(operator.size, dtype=operator.dtype, device=operator.device)
    return torch.cat([operator.matmat(eye[:, i:i + chunk]) for i in range(0, operator.size, chunk)], dim=1)

