"""Static figures for papers: PDF, SVG and PNG through kaleido (headless Chromium).

A figure is drawn for a :data:`PRESETS` size (one column 3.25 in, two columns 6.75 in, a slide
10 in wide; square for contours and heatmaps, 4:3 otherwise) with its text in points at that
final size, white background, tight margins that grow to hold tick labels, no menus or
sliders. The PDF is vector except 3-D WebGL scenes (Plotly cannot draw those as vectors; for
a vector 3-D figure render the ``.vts`` of :mod:`landscape.views.vtk` in ParaView): heatmaps
are redrawn as vector rectangles unless ``raster``. kaleido looks for Chrome/Chromium itself;
``BROWSER_PATH`` overrides, and Debian's ``/usr/bin/chromium`` is used when nothing else is set.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from ..errors import LandscapeError

FORMATS = ("pdf", "svg", "png")
FONT_FAMILY = "Helvetica, Arial, 'DejaVu Sans', sans-serif"
CSS_PX_PER_IN, PT_PER_IN = 96, 72  # kaleido's pages are CSS px: 1 px = 0.75 pt in the PDF
# kaleido prints every PDF with 0.1 in page margins, which Chromium keeps as whole CSS px (9 px,
# measured: the figure is shrunk from W to W − 18 px inside a page W px wide)
KALEIDO_PDF_MARGIN_PX = 9
CELLS = "heatmap cells"  # the meta of a heatmap redrawn as rectangles
SQUARE_TRACES = frozenset({"contour", "heatmap", "histogram2d", "histogram2dcontour"})


@dataclass(frozen=True)
class Preset:
    """A figure's final size and text: width in inches, text and title sizes in points."""

    width_in: float
    text_pt: float
    title_pt: float


PRESETS = {"one-column": Preset(3.25, 8, 9), "two-column": Preset(6.75, 9, 10), "slide": Preset(10.0, 10, 10)}
DEFAULT_PRESET = "one-column"


@dataclass(frozen=True)
class ExportOptions:
    """How static figures are written: formats, preset size, PNG resolution, titles, raster heatmaps."""

    formats: tuple[str, ...] = FORMATS
    preset: str = DEFAULT_PRESET
    dpi: int = 300  # PNG pixels per inch of the preset's size; PDF/SVG are vector
    titles: bool = True
    raster: bool = False  # keep heatmaps as embedded images (for grids too large for vector cells)


def parse_formats(text: str) -> tuple[str, ...]:
    """``"pdf,SVG,.png"`` → ``("pdf", "svg", "png")``; unknown or no formats are a :class:`LandscapeError`."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise LandscapeError(f"--formats {text!r}: unknown {', '.join(bad) or 'empty list'}; "
                             f"choose from {','.join(FORMATS)}")
    return formats


def check_options(options: ExportOptions) -> None:
    """One-line errors for a preset, format or resolution that cannot be exported."""
    if options.preset not in PRESETS:
        raise LandscapeError(f"--preset {options.preset!r}: unknown; choose from {', '.join(PRESETS)}")
    parse_formats(",".join(options.formats))
    if not 10 <= options.dpi <= 2400:
        raise LandscapeError(f"--dpi {options.dpi}: choose a resolution from 10 to 2400 pixels per inch")


def is_square(figure: go.Figure) -> bool:
    """Contours and heatmaps are square (α and β on equal footing); everything else is 4:3."""
    return any(t.type in SQUARE_TRACES for t in figure.data)


def figure_size(figure: go.Figure, preset: str = DEFAULT_PRESET) -> tuple[int, int]:
    """The figure's (width, height) in CSS px at ``preset``: 1 in = 96 px."""
    width = round(PRESETS[preset].width_in * CSS_PX_PER_IN)
    return width, width if is_square(figure) else round(width * 3 / 4)


def png_size(figure: go.Figure, preset: str = DEFAULT_PRESET, dpi: int = 300) -> tuple[int, int]:
    """The PNG's pixels: the preset's inches × ``dpi``, down to whole pixels (as Chromium cuts them)."""
    width, height = figure_size(figure, preset)
    return int(width * dpi / CSS_PX_PER_IN + 1e-9), int(height * dpi / CSS_PX_PER_IN + 1e-9)


def points_per_px(fmt: str, width_px: int) -> float:
    """Points per CSS px of the figure at its final size in ``fmt`` (the PDF's is smaller:
    kaleido shrinks the figure into its page margins)."""
    inner = width_px - 2 * KALEIDO_PDF_MARGIN_PX if fmt == "pdf" else width_px
    return PT_PER_IN / CSS_PX_PER_IN * inner / width_px


def paper_figure(figure: go.Figure, titles: bool = True, preset: str = DEFAULT_PRESET, fmt: str = "svg",
                 raster: bool = False) -> go.Figure:
    """A copy styled for print at ``preset`` (text in points at the final size of ``fmt``);
    interactive controls removed (the default view stays); heatmaps as vector cells unless ``raster``."""
    spec = PRESETS[preset]
    width, height = figure_size(figure, preset)
    scale = points_per_px(fmt, width)
    # px, rounded up to 0.1 px: Chromium writes sizes to 0.01 and a hair under 8 pt is under 8 pt
    text, title, pad = (math.ceil(pt / scale * 10) / 10 for pt in (spec.text_pt, spec.title_pt, 4))
    traces = [heatmap_as_cells(t) if t.type == "heatmap" and not raster else t for t in figure.data]
    fig = go.Figure(data=traces, layout=figure.layout)
    subtitle = 2 * text if figure.layout.title.subtitle.text else 0  # a second title line, at text size
    fig.update_layout(template="simple_white", width=width, height=height, paper_bgcolor="white",
                      plot_bgcolor="white", font=dict(family=FONT_FAMILY, size=text, color="black"),
                      title=dict(font=dict(size=title), subtitle=dict(font=dict(size=text)), y=1.0, yanchor="top",
                                 yref="container", pad=dict(t=pad)),
                      margin=dict(l=pad, r=pad, b=pad, t=2 * title + subtitle + 2 * pad if titles else pad, pad=0),
                      legend=dict(orientation="h", x=0.5, xanchor="center", yref="container", y=0,
                                  yanchor="bottom", font=dict(size=text), bgcolor="rgba(0,0,0,0)"))
    fig.layout.updatemenus, fig.layout.sliders = (), ()  # update_layout(updatemenus=[]) keeps them
    fig.update_xaxes(automargin=True, title_font_size=text, tickfont_size=text)
    fig.update_yaxes(automargin=True, title_font_size=text, tickfont_size=text)
    fig.update_annotations(font_size=text)
    # a set tickformat keeps log-axis labels at one size (Plotly's own shrinks the 2s and 5s to
    # 75 % and the powers of ten's exponents to 87.5 %)
    fig.for_each_xaxis(lambda axis: axis.update(tickformat="~g") if axis.type == "log" and not axis.tickformat
                       else None)
    fig.for_each_yaxis(lambda axis: axis.update(tickformat="~g") if axis.type == "log" and not axis.tickformat
                       else None)
    if not titles:
        fig.update_layout(title_text="", title_subtitle_text="")
        fig.layout.annotations = [a for a in fig.layout.annotations
                                  if not (a.yref == "paper" and a.y is not None and a.y >= 1.0)]
    for trace in fig.data:
        _size_trace_text(trace, text)
    if any(t.type in ("surface", "scatter3d") for t in fig.data):
        _fit_scene(fig, text, pad)
    for trace in traces:
        if trace.type == "bar" and trace.meta == CELLS:
            fig.update_xaxes(range=[min(trace.x - trace.width / 2), max(trace.x + trace.width / 2)])
            fig.update_yaxes(range=[min(trace.base), max(trace.base + trace.y)])
    return fig


def _size_trace_text(trace: go.BaseTraceType, text: float) -> None:
    if "colorbar" in trace:
        trace.colorbar.update(thickness=text, tickfont_size=text, title_font_size=text)
    elif "marker" in trace and "showscale" in trace.marker and trace.marker.showscale:
        trace.marker.colorbar.update(thickness=text, tickfont_size=text, title_font_size=text)
    if "textfont" in trace:
        trace.textfont.size = text
    if trace.type == "contour":
        trace.contours.labelfont.size = text


def _fit_scene(fig: go.Figure, text: float, pad: float) -> None:
    """3-D: ticks and axis titles inside the page: the camera steps back and the margins stay."""
    camera = fig.layout.scene.camera
    eye = camera.eye if camera.eye.x is not None else dict(x=1.25, y=1.25, z=1.25)
    back = 1.6  # looked at on the digits scan: every tick label and axis title stays on the page
    fig.update_scenes(camera_eye=dict(x=eye["x"] * back, y=eye["y"] * back, z=eye["z"] * back),
                      xaxis=dict(tickfont_size=text, title_font_size=text),
                      yaxis=dict(tickfont_size=text, title_font_size=text),
                      zaxis=dict(tickfont_size=text, nticks=4, title_text=""))  # the colorbar names z
    fig.update_layout(margin=dict(l=pad, r=pad, b=pad))


def cell_edges(centers: np.ndarray) -> np.ndarray:
    """Edges of the cells around sorted ``centers``: midpoints, the ends mirrored."""
    c = np.asarray(centers, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def heatmap_as_cells(trace: go.Heatmap) -> go.Bar:
    """The heatmap as one bar trace of coloured rectangles, one per finite cell (vector in a PDF)."""
    z = np.asarray(trace.z, dtype=float)
    x = np.asarray(trace.x if trace.x is not None else np.arange(z.shape[1]), dtype=float)
    y = np.asarray(trace.y if trace.y is not None else np.arange(z.shape[0]), dtype=float)
    xe, ye = cell_edges(x), cell_edges(y)
    rows, cols = np.nonzero(np.isfinite(z))
    values = z[rows, cols]
    low = trace.zmin if trace.zmin is not None else (float(values.min()) if values.size else 0.0)
    high = trace.zmax if trace.zmax is not None else (float(values.max()) if values.size else 1.0)
    colors = dict(colorscale=trace.colorscale, cmin=low, cmax=high)
    # each cell's outline in its own colour: no hairline seams between neighbours in PDF viewers
    return go.Bar(x=x[cols], base=ye[rows], y=ye[rows + 1] - ye[rows], width=(xe[cols + 1] - xe[cols]),
                  marker=dict(color=values, **colors, showscale=trace.showscale is not False,
                              colorbar=trace.colorbar.to_plotly_json(), line=dict(color=values, width=0.3, **colors)),
                  name=trace.name, showlegend=False, hoverinfo="skip", meta=CELLS)


def file_stem(key: str) -> str:
    """A figure key as a file name: ``surfaces/2d/contour`` → ``surfaces-2d-contour``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in key).strip("-.") or "figure"


def _ensure_browser() -> None:
    if not os.environ.get("BROWSER_PATH") and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"


def export_figures(figures: Mapping[str, go.Figure], out_dir: str | os.PathLike,
                   options: ExportOptions = ExportOptions()) -> list[Path]:
    """Write every figure in every format to ``out_dir``; returns the files written."""
    check_options(options)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"--export {out}: exists and is not a folder")
    jobs: list[tuple[go.Figure, Path, str, float]] = []
    for key, figure in figures.items():
        for fmt in options.formats:
            styled = paper_figure(figure, options.titles, options.preset, fmt, options.raster)
            scale = options.dpi / CSS_PX_PER_IN if fmt == "png" else 1.0
            jobs.append((styled, out / f"{file_stem(key)}.{fmt}", fmt, scale))
    if not jobs:
        return []
    out.mkdir(parents=True, exist_ok=True)
    _ensure_browser()
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        staged = [Path(tmp) / j[1].name for j in jobs]
        todo = list(range(len(jobs)))
        for _ in range(2):  # kaleido logs a figure that timed out (a loaded machine) and goes on: once more
            _write_images([jobs[i] for i in todo], [staged[i] for i in todo])
            todo = [i for i in todo if not staged[i].is_file()]
            if not todo:
                break
        if todo:
            raise LandscapeError(f"static export wrote no {jobs[todo[0]][1].name} (kaleido failed on it twice); "
                                 "run again, or export that figure alone with --figure")
        for job, path in zip(jobs, staged):  # complete files only, never half of a batch
            os.replace(path, job[1])
    return [j[1] for j in jobs]


def _write_images(jobs: list[tuple[go.Figure, Path, str, float]], paths: list[Path]) -> None:
    try:
        pio.write_images([j[0] for j in jobs], paths, format=[j[2] for j in jobs],
                         width=[j[0].layout.width for j in jobs], height=[j[0].layout.height for j in jobs],
                         scale=[j[3] for j in jobs])
    except Exception as exc:  # kaleido raises several types; all mean "no usable browser" or similar
        found = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("google-chrome")
        hint = ("install Chromium (Debian: apt-get install chromium) or set BROWSER_PATH" if not found
                else f"browser used: {found}")
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LandscapeError(f"static export failed ({type(exc).__name__}: {first_line}); {hint}") from None


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
