"""Loss surfaces: metrics at θ₀ + α·d0 (+ β·d1) on a grid, along named directions.

``directions.py``: seeded Gaussian directions with filter/layer/no normalization,
interpolation and three-checkpoint planes. ``compute.py``: grid points, :func:`evaluate_points`,
:func:`compute_surface` (in memory). ``refine.py``: the coarse-to-fine order of grid points
and the finest complete level of a partial grid. ``config.py``: :class:`SurfaceConfig`. ``results.py``:
:class:`SurfaceResult` and the ``surfaces``/``directions`` HDF5 groups. ``step.py``: the scan
steps. ``cli.py``: ``landscape scan``, ``surface`` and ``interpolate``.

Python API::

    from landscape.surfaces import compute_surface, random_directions
    d0, d1 = random_directions(problem.params, 2, seed=0)
    result = compute_surface(problem, [d0.vectors, d1.vectors], [np.linspace(-1, 1, 41)] * 2)
"""

from .compute import compute_surface, evaluate_points, grid_coefficients, points_at
from .config import DirectionKind, SurfaceConfig, grid_axes
from .directions import (
    Direction,
    NamedDirection,
    Normalization,
    gaussian_direction,
    interpolation_direction,
    normalize,
    orthogonalize,
    plane_directions,
    random_directions,
)
from .results import (
    SurfaceResult,
    create_surface,
    read_directions,
    surface_todo,
    write_directions,
    write_surface_points,
)
from .step import SurfaceSpec, directions_step, surface_bytes, surface_step, surface_steps

__all__ = [
    "Direction", "DirectionKind", "NamedDirection", "Normalization", "SurfaceConfig", "SurfaceResult",
    "SurfaceSpec", "compute_surface", "create_surface", "directions_step", "evaluate_points",
    "gaussian_direction", "grid_axes", "grid_coefficients", "interpolation_direction", "normalize",
    "orthogonalize", "plane_directions", "points_at", "random_directions", "read_directions",
    "surface_bytes", "surface_step", "surface_steps", "surface_todo", "write_directions",
    "write_surface_points",
]
