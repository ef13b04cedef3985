"""Curvature of the empirical risk: the model-based operators (Hessian, GGN, empirical
Fisher), the analyses built on them (top/bottom eigenvalues, trace, SLQ density) as a scan
step and the ``landscape hessian`` command. The solvers are :mod:`landscape.linalg`'s."""

from .operators import (
                        EmpiricalFisherOperator,
                        GGNOperator,
                        HessianOperator,
                        ProblemOperator,
                        make_operator,
                        select_parameters,
)
from .step import CurvatureConfig, hessian_directions, hessian_step, run_curvature

__all__ = [
    "CurvatureConfig", "EmpiricalFisherOperator", "GGNOperator", "HessianOperator", "ProblemOperator",
    "hessian_directions", "hessian_step", "make_operator", "run_curvature", "select_parameters",
]
