"""Sharpness and flatness measures of a Problem, each returning a :class:`SharpnessResult`."""

from .objective import Objective
from .result import SharpnessResult

__all__ = ["Objective", "SharpnessResult"]
