"""Sharpness and flatness measures of a Problem, each returning a :class:`SharpnessResult`.

One function per measure (average, worst-case, m-sharpness, ε-sharpness, ray width), basin
statistics of a 2-D surface and the SWA-vs-FGE check; :func:`compute_measures` runs the
measures a :class:`SharpnessConfig` selects.
"""

from .average import average_sharpness
from .basins import BasinStatistics, basin_statistics, basins_of_surface
from .config import MEASURE_NAMES, SharpnessConfig
from .ensembles import EnsembleComparison, swa_vs_fge
from .epsilon import epsilon_sharpness
from .measures import compute_measures
from .objective import Objective
from .rays import first_crossing, ray_width
from .result import SharpnessResult
from .worst import m_sharpness, worst_case_sharpness

__all__ = ["MEASURE_NAMES", "BasinStatistics", "EnsembleComparison", "Objective", "SharpnessConfig",
           "SharpnessResult", "average_sharpness", "basin_statistics", "basins_of_surface", "compute_measures",
           "epsilon_sharpness", "first_crossing", "m_sharpness", "ray_width", "swa_vs_fge", "worst_case_sharpness"]
