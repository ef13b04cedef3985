"""landscape: loss-landscape and sharpness analysis of PyTorch models."""

__version__ = "0.1.0"

from .errors import LandscapeError  # noqa: E402
from .loading import load_checkpoint, load_problem, save  # noqa: E402
from .problem import Batch, Problem  # noqa: E402

__all__ = ["Batch", "LandscapeError", "Problem", "__version__", "load_checkpoint", "load_problem", "save"]
