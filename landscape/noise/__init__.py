"""Gradient noise at a checkpoint: per-example gradients, their covariance Σ and what SGD sees.

Main entry point: :func:`gradient_noise` (a :class:`NoiseResult`, written to the HDF5 group
``noise``). The pieces are usable alone: :func:`per_example_gradients` (from
``landscape.per_example``, shared with the empirical Fisher operator),
:class:`CovarianceOperator` / :func:`covariance_spectrum`, :func:`two_batch_noise_scale`,
:func:`alpha_stable_tail_index`. The solvers (Lanczos, traces) are the linear-algebra
core's (``landscape.linalg``), the Hessian operator is ``landscape.curvature``'s.
"""

from ..per_example import (
                           PerExampleGradients,
                           check_mean_reduction,
                           gather_examples,
                           per_example_gradients,
                           select_examples,
)
from .analysis import (
                           GROUP,
                           CongruenceOperator,
                           HessianAlignment,
                           NoiseResult,
                           gradient_noise,
                           hessian_alignment,
                           hessian_operator,
                           subspace_overlap,
                           trace_h_sigma,
)
from .covariance import (
                           CovarianceOperator,
                           TwoBatchEstimate,
                           alpha_stable_tail_index,
                           covariance_spectrum,
                           minibatch_noise_samples,
                           minibatch_scales,
                           noise_tail_index,
                           two_batch_noise_scale,
)

__all__ = [
    "GROUP", "CongruenceOperator", "CovarianceOperator", "HessianAlignment", "NoiseResult",
    "PerExampleGradients", "TwoBatchEstimate", "alpha_stable_tail_index", "check_mean_reduction",
    "covariance_spectrum", "gather_examples", "gradient_noise", "hessian_alignment",
    "hessian_operator", "minibatch_noise_samples", "minibatch_scales", "noise_tail_index",
    "per_example_gradients", "select_examples", "subspace_overlap", "trace_h_sigma",
    "two_batch_noise_scale",
]
