"""Static figures for papers: PDF, SVG and PNG through kaleido (headless Chromium).

Figures get a paper style (white background, 12 pt sans-serif text, thin margins, no
interactive menus or sliders; titles optional) and are written in one browser session.
kaleido looks for Chrome/Chromium itself; ``BROWSER_PATH`` overrides, and Debian's
``/usr/bin/chromium`` is used when nothing else is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from ..errors import LandscapeError

FORMATS = ("pdf", "svg", "png")
PAPER_FONT = dict(family="Helvetica, Arial, 'DejaVu Sans', sans-serif", size=12, color="black")
DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480  # CSS px: 6.7 × 5 in at 96 dpi, one column at 0.75 scale


@dataclass(frozen=True)
class ExportOptions:
    """How static figures are written: formats, size in CSS pixels, PNG scale, titles."""

    formats: tuple[str, ...] = FORMATS
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    scale: float = 1.0  # PNG pixels per CSS px (PNG is width·scale × height·scale); PDF/SVG ignore it
    titles: bool = True


def parse_formats(text: str) -> tuple[str, ...]:
    """``"pdf,SVG,.png"`` → ``("pdf", "svg", "png")``; unknown or no formats are a :class:`LandscapeError`."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise LandscapeError(f"--formats {text!r}: unknown {', '.join(bad) or 'empty list'}; "
                             f"choose from {','.join(FORMATS)}")
    return formats


def paper_figure(figure: go.Figure, titles: bool = True) -> go.Figure:
    """A copy styled for print; interactive controls removed (the default view stays)."""
    fig = go.Figure(figure)
    fig.update_layout(template="simple_white", font=PAPER_FONT, paper_bgcolor="white", plot_bgcolor="white",
                      margin=dict(l=60, r=20, t=50 if titles else 20, b=55),
                      legend=dict(x=0.99, xanchor="right", y=0.99, yanchor="top", bgcolor="rgba(255,255,255,0.8)",
                                  bordercolor="#bbb", borderwidth=0.5))
    fig.layout.updatemenus, fig.layout.sliders = (), ()  # update_layout(updatemenus=[]) keeps them
    if not titles:
        fig.update_layout(title_text="")
        fig.layout.annotations = [a for a in fig.layout.annotations
                                  if not (a.yref == "paper" and a.y is not None and a.y >= 1.0)]
    for trace in fig.data:
        if trace.type == "surface":
            fig.update_layout(margin=dict(l=0, r=0, b=0, t=40 if titles else 0))
    return fig


def file_stem(key: str) -> str:
    """A figure key as a file name: ``surfaces/2d/contour`` → ``surfaces-2d-contour``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in key).strip("-.") or "figure"


def _ensure_browser() -> None:
    if not os.environ.get("BROWSER_PATH") and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"


def export_figures(figures: Mapping[str, go.Figure], out_dir: str | os.PathLike,
                   options: ExportOptions = ExportOptions()) -> list[Path]:
    """Write every figure in every format to ``out_dir``; returns the files written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"--export {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if options.width < 50 or options.height < 50:
        raise LandscapeError(f"figure size {options.width}×{options.height} is too small; use at least 50×50")
    jobs: list[tuple[go.Figure, Path, str]] = []
    for key, figure in figures.items():
        styled = paper_figure(figure, options.titles)
        for fmt in options.formats:
            jobs.append((styled, out / f"{file_stem(key)}.{fmt}", fmt))
    if not jobs:
        return []
    _ensure_browser()
    try:
        pio.write_images([j[0] for j in jobs], [j[1] for j in jobs], format=[j[2] for j in jobs],
                         width=options.width, height=options.height,
                         scale=[options.scale if j[2] == "png" else 1 for j in jobs])
    except Exception as exc:  # kaleido raises several types; all mean "no usable browser" or similar
        found = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("google-chrome")
        hint = ("install Chromium (Debian: apt-get install chromium) or set BROWSER_PATH" if not found
                else f"browser used: {found}")
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LandscapeError(f"static export failed ({type(exc).__name__}: {first_line}); {hint}") from None
    return [j[1] for j in jobs]


def export_results(path: str | os.PathLike, out_dir: str | os.PathLike,
                   options: ExportOptions = ExportOptions(), keys: Sequence[str] | None = None) -> list[Path]:
    """Every figure of the results file ``path`` (or only ``keys``) as static files."""
    from .report import figures

    return export_figures(select_figures(figures(path), keys, path), out_dir, options)


def select_figures(figs: Mapping[str, go.Figure], keys: Sequence[str] | None,
                   source: str | os.PathLike = "the results") -> dict[str, go.Figure]:
    """``figs`` restricted to ``keys`` (all when None), with a clear error for a wrong key."""
    if keys is None:
        return dict(figs)
    missing = [k for k in keys if k not in figs]
    if missing:
        raise LandscapeError(f"no figure {missing[0]!r} in '{source}'; available: {', '.join(figs)}")
    return {k: figs[k] for k in keys}
