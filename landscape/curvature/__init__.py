"""Curvature of the empirical risk: operators (Hessian, GGN, empirical Fisher), thick-restart
block Lanczos for extreme eigenpairs, Hutchinson/Hutch++ traces and SLQ spectral density."""

from .density import DensityResult, smooth_density, spectral_density
from .lanczos import EigenResult, default_tol, lanczos
from .operators import (DenseOperator, EmpiricalFisherOperator, GGNOperator, HessianOperator,
                        LinearOperator, ProblemOperator, make_operator, select_parameters, to_dense)
from .step import CurvatureConfig, hessian_directions, hessian_step, run_curvature
from .trace import TraceResult, estimate_trace

__all__ = [
    "CurvatureConfig", "DenseOperator", "DensityResult", "EigenResult", "EmpiricalFisherOperator",
    "GGNOperator", "HessianOperator", "LinearOperator", "ProblemOperator", "TraceResult",
    "default_tol", "estimate_trace", "hessian_directions", "hessian_step", "lanczos",
    "make_operator", "run_curvature", "select_parameters", "smooth_density", "spectral_density",
    "to_dense",
]
