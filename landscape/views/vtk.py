"""2-D surfaces as VTK XML StructuredGrid files (``.vts``), which ParaView and VisIt open.

Our own short writer (the format is a little XML; no vtk dependency): points (α, β, z) with
z the first split's loss (or its log10), α varying fastest as VTK orders a structured grid,
and point data for every stored metric of every split (``train_loss``, ``test_accuracy``,
...), the log10 of every loss (``log10_train_loss``) and ``done`` (1 where the point was
computed). Arrays are Float64, base64 inline (``format="binary"``, an 8-byte little-endian
length header each), so values are exact and non-finite losses survive.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LandscapeError
from ..store import open_results
from .export import file_stem
from .panels import child_groups
from .surface_panels import read_surface


@dataclass(frozen=True)
class VtkGrid:
    """One 2-D surface ready for VTK: axes, heights and point data in 'ij' order."""

    name: str
    alpha: np.ndarray  # [nx]
    beta: np.ndarray  # [ny]
    z: np.ndarray  # [nx, ny]
    point_data: Mapping[str, np.ndarray]  # name -> [nx, ny]


def surface_grids(path: str | os.PathLike, log_z: bool = False) -> list[VtkGrid]:
    """Every 2-D surface of the results file ``path`` as a :class:`VtkGrid` (none is an error)."""
    grids = []
    with open_results(path) as h5:
        for name, group in child_groups(h5, "surfaces"):
            if int(group.attrs.get("ndim", 2 if "beta" in group else 1)) != 2:
                continue
            surface = read_surface(name, group)
            data: dict[str, np.ndarray] = {}
            for split, metrics in surface.values.items():
                for metric, grid in metrics.items():
                    data[f"{split}_{metric}"] = np.asarray(grid, dtype=np.float64)
                    if metric == "loss":
                        with np.errstate(divide="ignore", invalid="ignore"):
                            data[f"log10_{split}_loss"] = np.log10(np.asarray(grid, dtype=np.float64))
            losses = [k for k in data if k.endswith("_loss") and not k.startswith("log10_")]
            if not losses:
                continue
            height = f"log10_{losses[0]}" if log_z else losses[0]
            data["done"] = np.asarray(surface.done, dtype=np.float64)
            grids.append(VtkGrid(name, surface.axes[0], surface.axes[1], data[height], data))
    if not grids:
        raise LandscapeError(f"--vtk: '{path}' holds no 2-D surface with a loss; run `landscape scan` or "
                             "`landscape surface` with two directions first")
    return grids


def _data_array(values: np.ndarray, name: str | None = None, components: int = 1) -> str:
    raw = np.ascontiguousarray(values, dtype="<f8").tobytes()
    encoded = base64.b64encode(np.uint64(len(raw)).astype("<u8").tobytes() + raw).decode("ascii")
    label = f' Name="{name}"' if name else ""
    return (f'<DataArray type="Float64"{label} NumberOfComponents="{components}" format="binary">'
            f"{encoded}</DataArray>")


def vts_text(grid: VtkGrid) -> str:
    """The ``.vts`` file of ``grid`` as text."""
    nx, ny = len(grid.alpha), len(grid.beta)
    extent = f"0 {nx - 1} 0 {ny - 1} 0 0"
    a, b = np.meshgrid(grid.alpha, grid.beta, indexing="ij")
    # VTK's point order: the first index fastest, i.e. the 'ij' grids in Fortran order
    points = np.stack([a.ravel(order="F"), b.ravel(order="F"), grid.z.ravel(order="F")], axis=1)
    arrays = "".join(_data_array(v.ravel(order="F"), k) for k, v in grid.point_data.items())
    first = next(iter(grid.point_data))
    return ('<?xml version="1.0"?>\n<VTKFile type="StructuredGrid" version="1.0" byte_order="LittleEndian" '
            f'header_type="UInt64">\n<StructuredGrid WholeExtent="{extent}">\n<Piece Extent="{extent}">\n'
            f'<PointData Scalars="{first}">{arrays}</PointData>\n'
            f"<Points>{_data_array(points, components=3)}</Points>\n</Piece>\n</StructuredGrid>\n</VTKFile>\n")


def write_grids(grids: list[VtkGrid], out_dir: str | os.PathLike) -> list[Path]:
    """Write each grid to ``out_dir/<surface>.vts``; returns the files."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"--vtk '{out}' is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for grid in grids:
        path = out / f"{file_stem(grid.name)}.vts"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(vts_text(grid), encoding="ascii")
        os.replace(tmp, path)
        written.append(path)
    return written


def write_vtk(path: str | os.PathLike, out_dir: str | os.PathLike, log_z: bool = False) -> list[Path]:
    """Every 2-D surface of the results file ``path`` as ``out_dir/<surface>.vts``."""
    return write_grids(surface_grids(path, log_z), out_dir)
