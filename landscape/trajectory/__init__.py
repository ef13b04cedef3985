"""``landscape trajectory``: the training path on the loss surface of its top-2 PCA plane.

``plane.py`` (the math: principal directions of θ_t − θ_final, least-squares coordinates,
distances from the plane), ``inputs.py`` (folder, glob or tracker file; ordering), ``load.py``
(the final checkpoint's Problem and every checkpoint's weights), ``step.py`` (the ``trajectory``
group, ``directions/pc1``, ``pc2``, ``surfaces/trajectory``), ``cli.py``.
"""

from .plane import TrajectoryPlane, covering_range, pca_plane

__all__ = ["TrajectoryPlane", "covering_range", "pca_plane"]
