"""landscape: loss-landscape and sharpness analysis of PyTorch models."""

__version__ = "0.1.0"

from .api import (  # noqa: E402
    Analysis,
    gradient_noise,
    hessian_eigs,
    hessian_trace,
    interpolate,
    per_layer_curvature,
    random_line,
    random_plane,
    sharpness_measures,
)
from .errors import LandscapeError  # noqa: E402
from .loading import load_checkpoint, load_problem, save  # noqa: E402
from .problem import Batch, Problem  # noqa: E402
from .tracking import SharpnessTracker, TrackerCallback, read_tracker  # noqa: E402

__all__ = ["Analysis", "Batch", "LandscapeError", "Problem", "SharpnessTracker", "TrackerCallback", "__version__",
           "gradient_noise", "hessian_eigs", "hessian_trace", "interpolate", "load_checkpoint", "load_problem",
           "per_layer_curvature", "random_line", "random_plane", "read_tracker", "save", "sharpness_measures"]
