"""Gradient noise at a checkpoint: per-example gradients, their covariance Σ and what SGD sees.

Main entry point: :func:`gradient_noise` (a :class:`NoiseResult`, written to the HDF5 group
``noise``). The pieces are usable alone: :func:`per_example_gradients`,
:class:`CovarianceOperator` / :func:`covariance_spectrum`, :func:`two_batch_noise_scale`,
:func:`alpha_stable_tail_index`, :func:`hessian_vector_products`.
"""

from .analysis import (GROUP, HessianAlignment, NoiseResult, gradient_noise, hessian_alignment,
                       subspace_overlap, trace_h_sigma)
from .covariance import (CovarianceOperator, TwoBatchEstimate, alpha_stable_tail_index,
                         covariance_spectrum, minibatch_noise_samples, minibatch_scales,
                         noise_tail_index, two_batch_noise_scale)
from .hessian import TraceEstimate, hessian_top_eigen, hessian_trace, hessian_vector_products
from .lanczos import EigenResult, lanczos_top
from .per_example import (PerExampleGradients, check_mean_reduction, gather_examples,
                          per_example_gradients, select_examples)

__all__ = [
    "GROUP", "CovarianceOperator", "EigenResult", "HessianAlignment", "NoiseResult",
    "PerExampleGradients", "TraceEstimate", "TwoBatchEstimate", "alpha_stable_tail_index",
    "check_mean_reduction", "covariance_spectrum", "gather_examples", "gradient_noise",
    "hessian_alignment", "hessian_top_eigen", "hessian_trace", "hessian_vector_products",
    "lanczos_top", "minibatch_noise_samples", "minibatch_scales", "noise_tail_index",
    "per_example_gradients", "select_examples", "subspace_overlap", "trace_h_sigma",
    "two_batch_noise_scale",
]
