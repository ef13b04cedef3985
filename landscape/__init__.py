"""landscape: loss-landscape and sharpness analysis of PyTorch models."""

from .errors import LandscapeError
from .problem import Batch, Problem

__version__ = "0.1.0"

__all__ = ["Batch", "LandscapeError", "Problem", "__version__"]
