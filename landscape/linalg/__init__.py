"""The linear-algebra core: symmetric operators known through their products, and the
solvers every analysis shares.

``operators.py``: :class:`LinearOperator` (size, dtype, device, ``matmat``/``matvec``, cost
counters, ``to_scipy()``), :class:`DenseOperator`, :func:`as_operator`, :func:`to_dense`.
``lanczos.py``: thick-restart block Lanczos → :class:`EigenResult`. ``trace.py``:
Hutchinson / Hutch++ / exact traces → :class:`TraceResult`. ``density.py``: stochastic
Lanczos quadrature → :class:`DensityResult`. Nothing here knows about models or data:
the model-based operators (Hessian, GGN, empirical Fisher) are :mod:`landscape.curvature`'s,
the gradient covariance is :mod:`landscape.noise`'s.
"""

from .density import DensityResult, smooth_density, spectral_density
from .lanczos import EigenResult, default_tol, lanczos
from .operators import DenseOperator, LinearOperator, as_operator, to_dense
from .trace import TraceResult, estimate_trace

__all__ = [
    "DenseOperator", "DensityResult", "EigenResult", "LinearOperator", "TraceResult", "as_operator",
    "default_tol", "estimate_trace", "lanczos", "smooth_density", "spectral_density", "to_dense",
]
