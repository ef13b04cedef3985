"""The surface and direction groups of a results file: the one place that knows their schema.

::

    /directions/<name>        attrs: how the direction was made (kind, normalization, seed, ...)
        <parameter name>      float64, the parameter's shape
    /surfaces/<name>          attrs: ndim, indexing='ij', axes, directions, splits, metrics, complete, ...
        alpha, beta           float64 axes
        done                  bool grid: which points are stored
        <split>/<metric>      float64 grid, NaN where not done

A scan creates a surface NaN-filled (:func:`create_surface`), stores points as chunks finish
(:func:`write_surface_points`, coarse to fine: :mod:`landscape.surfaces.refine`) and on resume
evaluates only :func:`surface_todo`. A surface
computed in memory (:class:`SurfaceResult`) is written whole with
``writer.write_group(*result.to_group(...))`` and read back with :meth:`SurfaceResult.from_group`.
Everything goes through the generic :class:`landscape.store.ResultsWriter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from ..store import ResultsWriter, read_attr
from .directions import NamedDirection

SURFACES = "surfaces"
DIRECTIONS = "directions"
AXIS_NAMES = ("alpha", "beta")


def surface_attrs(axis_names: Sequence[str], direction_names: Sequence[str], splits: Sequence[str],
                  metrics: Sequence[str], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The attributes of a ``surfaces/<name>`` group (``complete`` is the writer's)."""
    return {**(extra or {}), "ndim": len(axis_names), "indexing": "ij", "axes": list(axis_names),
            "directions": list(direction_names), "splits": list(splits), "metrics": list(metrics)}


@dataclass
class SurfaceResult:
    """Metric grids per split (NaN where not computed) with their axes and done mask.

    ``values[split][metric][i, j]`` is the metric at ``(axes[0][i], axes[1][j])`` ('ij' order).
    """

    axes: list[np.ndarray]
    values: dict[str, dict[str, np.ndarray]]  # split -> metric -> grid
    done: np.ndarray

    def to_group(self, directions: Sequence[str], attrs: Mapping[str, Any] | None = None
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Attributes and datasets of a ``surfaces/<name>`` group, for
        ``ResultsWriter.write_group``. ``directions`` name the groups under ``/directions``
        the axes run along; ``attrs`` adds e.g. ``origin`` or ``markers``."""
        if len(directions) != len(self.axes):
            raise LandscapeError(f"a {len(self.axes)}-D surface needs {len(self.axes)} direction names, "
                                 f"got {list(directions)}")
        axis_names = AXIS_NAMES[:len(self.axes)]
        splits = list(self.values)
        metrics = list(next(iter(self.values.values()), {}))
        arrays: dict[str, np.ndarray] = {name: np.asarray(axis, dtype=np.float64)
                                         for name, axis in zip(axis_names, self.axes)}
        arrays["done"] = np.asarray(self.done, dtype=bool)
        for split, grids in self.values.items():
            for metric, grid in grids.items():
                arrays[f"{split}/{metric}"] = np.asarray(grid, dtype=np.float64)
        return surface_attrs(axis_names, directions, splits, metrics, attrs), arrays

    @classmethod
    def from_group(cls, group: h5py.Group) -> SurfaceResult:
        """A surface group read back (the axes, every split and metric its attributes list)."""
        axis_names = [str(a) for a in read_attr(group.attrs["axes"])]
        values = {split: {metric: group[f"{split}/{metric}"][()] for metric in read_attr(group.attrs["metrics"])}
                  for split in read_attr(group.attrs["splits"])}
        return cls([group[a][()] for a in axis_names], values, group["done"][()])


# ---------------------------------------------------------------------------- surfaces, point by point
def create_surface(writer: ResultsWriter, name: str, axes: Sequence[np.ndarray], axis_names: Sequence[str],
                   direction_names: Sequence[str], splits: Sequence[str], metrics: Sequence[str],
                   attrs: Mapping[str, Any]) -> h5py.Group:
    """The NaN-filled grids and done mask of surface ``name`` (kept as they are on resume,
    after checking the grid is the same)."""
    path = f"{SURFACES}/{name}"
    if path in writer.h5:
        group = writer.h5[path]
        stored_axes = [group[a][()] for a in axis_names]
        if len(stored_axes) != len(axes) or any(
                s.shape != np.shape(a) or not np.allclose(s, a) for s, a in zip(stored_axes, axes)):
            raise LandscapeError(f"cannot resume surface '{name}': its grid differs from the "
                                 "interrupted scan; rerun with the same grid or --overwrite")
        return group
    shape = tuple(len(a) for a in axes)
    arrays: dict[str, np.ndarray] = {axis_name: np.asarray(axis, dtype=np.float64)
                                     for axis_name, axis in zip(axis_names, axes)}
    arrays["done"] = np.zeros(shape, dtype=bool)
    for split in splits:
        for metric in metrics:
            arrays[f"{split}/{metric}"] = np.full(shape, np.nan)
    return writer.create_group(path, surface_attrs(axis_names, direction_names, splits, metrics, attrs), arrays)


def surface_todo(writer: ResultsWriter, name: str, order: np.ndarray) -> np.ndarray:
    """The flat indices ('ij') in ``order`` (every point of the grid, e.g. coarse to fine)
    of surface ``name``'s points not stored yet, in that order."""
    done = writer.h5[f"{SURFACES}/{name}/done"][()].reshape(-1)
    return order[~done[order]]


def surface_progress(h5: h5py.File) -> dict[str, tuple[list[np.ndarray], np.ndarray, list[tuple[float, ...]]]]:
    """Each filled-as-it-goes surface of a results file: ``name -> (axes, done, markers)``."""
    out = {}
    for name, group in h5.get(SURFACES, {}).items():
        if "done" not in group:
            continue
        axes = [group[str(a)][()] for a in read_attr(group.attrs["axes"])]
        markers = np.asarray(group.attrs.get("markers", np.zeros((0, len(axes)))), dtype=np.float64)
        out[name] = (axes, group["done"][()], [tuple(m) for m in markers.reshape(-1, len(axes))])
    return out


def write_surface_points(writer: ResultsWriter, name: str, indices: np.ndarray,
                         values: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Store computed points, flush, then mark them done and flush: a kill loses at most
    the chunk in flight, never marks an unwritten point done."""
    path = f"{SURFACES}/{name}"
    for split, metrics in values.items():
        for metric, v in metrics.items():
            writer.set_at(f"{path}/{split}/{metric}", indices, v)
    writer.flush()
    done = writer.set_at(f"{path}/done", indices, True)
    if done.all():
        writer.mark_complete(path)
    writer.flush()


# ---------------------------------------------------------------------------- directions
def write_directions(writer: ResultsWriter, directions: Iterable[NamedDirection],
                     group: str = DIRECTIONS) -> None:
    """Each direction as ``<group>/<name>``: its attributes, one float64 dataset per parameter."""
    for direction in directions:
        writer.write_group(f"{group}/{direction.name}", direction.attrs,
                           {name: t.to(torch.float64) for name, t in direction.vectors.items()})


def read_directions(writer: ResultsWriter | h5py.File, names: Sequence[str], like: Mapping[str, Tensor],
                    group: str = DIRECTIONS) -> list[NamedDirection]:
    """Directions ``names`` read back, on the device and in the dtypes of ``like`` (the
    parameters they perturb); from a writer or an open file."""
    h5 = writer.h5 if isinstance(writer, ResultsWriter) else writer
    ref = next(iter(like.values()))
    out = []
    for name in names:
        node = h5[f"{group}/{name}"]
        vectors = {p: torch.from_numpy(node[p][()]).to(ref.device, like[p].dtype) for p in like}
        out.append(NamedDirection(name, vectors, {k: read_attr(v) for k, v in node.attrs.items()}))
    return out
