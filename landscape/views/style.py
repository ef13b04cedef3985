"""How the report draws 2-D and 3-D surfaces: one frozen record the figure builders take.

``landscape view FILE.h5 --levels N --vmin V --vmax V --zmax Z --log`` fills it; the
notebook API and the static export pass the same record to the same builders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import LandscapeError

DEFAULT_LEVELS = 25


@dataclass(frozen=True)
class SurfaceStyle:
    """Options of every 2-D/3-D loss figure.

    ``levels``: number of contour levels (also projected on the 3-D floor). ``vmin``/``vmax``:
    the colour range of loss figures, in loss units (``None``: the data's range). ``zmax``: loss
    values above it are drawn at it on the 3-D surface (clipped, as in Li et al.'s renderings).
    ``log``: the log10 view of the loss is the one shown first. Accuracy figures keep their
    own range: the limits are loss values.
    """

    levels: int = DEFAULT_LEVELS
    vmin: float | None = None
    vmax: float | None = None
    zmax: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        check_style(self)


def check_style(style: SurfaceStyle) -> None:
    """One :class:`LandscapeError` line for options that cannot draw a figure."""
    if isinstance(style.levels, bool) or not isinstance(style.levels, int) or not 2 <= style.levels <= 500:
        raise LandscapeError(f"--levels {style.levels!r}: give a whole number of contour levels from 2 to 500")
    for name, value in (("vmin", style.vmin), ("vmax", style.vmax), ("zmax", style.zmax)):
        if value is None:
            continue
        if not math.isfinite(value):
            raise LandscapeError(f"--{name} {value}: give a finite loss value")
        if style.log and value <= 0:
            raise LandscapeError(f"--{name} {value} with --log: log10 needs a positive loss value; "
                                 f"give --{name} > 0 or drop --log")
    if style.vmin is not None and style.vmax is not None and style.vmin >= style.vmax:
        raise LandscapeError(f"--vmin {style.vmin} is not below --vmax {style.vmax}: give vmin < vmax")
    if style.zmax is not None and style.vmin is not None and style.zmax <= style.vmin:
        raise LandscapeError(f"--zmax {style.zmax} is not above --vmin {style.vmin}: the clipped surface "
                             "would be empty; give zmax > vmin")


DEFAULT_STYLE = SurfaceStyle()


def loss_limits(style: SurfaceStyle, log: bool) -> tuple[float | None, float | None, float | None]:
    """``(vmin, vmax, zmax)`` in the units of a loss grid (log10 of them for its log view)."""
    def unit(value: float | None) -> float | None:  # a limit ≤ 0 has no log: the data's range is used
        if value is None or not log:
            return value
        return math.log10(value) if value > 0 else None
    return unit(style.vmin), unit(style.vmax), unit(style.zmax)
