"""``landscape view FILE.h5 [-o report.html] [--plotlyjs MODE] [--export DIR --preset P ...] [--vtk DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import LandscapeError
from ..options import add_plotlyjs_argument, guard_outputs, integer
from .export import (
    DEFAULT_PRESET,
    PRESETS,
    ExportOptions,
    check_options,
    export_figures,
    parse_formats,
    select_figures,
)
from .report import default_report_path, load_report, plotlyjs_outputs, write_report
from .style import DEFAULT_LEVELS, SurfaceStyle
from .vtk import surface_grids, write_grids


def _formats(text: str) -> tuple[str, ...]:
    try:
        return parse_formats(text)
    except LandscapeError as exc:  # argparse turns this into its usage line and exit status 2
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``landscape view`` options (results file, report path, static export) to ``parser``."""
    parser.add_argument("results", metavar="FILE.h5", help="results file written by `landscape scan`")
    parser.add_argument("-o", "--output", metavar="REPORT.html", default=None,
                        help="where to write the report; FILE.html beside the results when not given")
    parser.add_argument("--no-report", action="store_true", help="only export figures, write no HTML")
    parser.add_argument("--export", metavar="DIR", default=None,
                        help="also write every figure as static files into DIR")
    parser.add_argument("--formats", default="pdf,svg,png", type=_formats,
                        help="static formats, comma-separated")
    parser.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                        help="figure size: one column 3.25 in, two columns 6.75 in, a slide 10 in wide "
                        "(square contours and heatmaps, 4:3 otherwise), text 8-10 pt at that size")
    parser.add_argument("--dpi", type=integer(10), default=300, help="PNG pixels per inch of the preset's size")
    parser.add_argument("--raster", action="store_true",
                        help="keep heatmaps as embedded images in PDF/SVG (for very large grids)")
    parser.add_argument("--vtk", metavar="DIR", default=None,
                        help="write every 2-D surface as a VTK StructuredGrid (.vts, opens in ParaView) into DIR")
    add_plotlyjs_argument(parser)
    parser.add_argument("--no-titles", action="store_true", help="static figures without titles")
    parser.add_argument("--levels", type=integer(2), default=DEFAULT_LEVELS,
                        help="contour levels of the 2-D and 3-D loss figures")
    parser.add_argument("--vmin", type=float, default=None, help="lowest loss of the colour scale")
    parser.add_argument("--vmax", type=float, default=None, help="highest loss of the colour scale")
    parser.add_argument("--zmax", type=float, default=None,
                        help="3-D surfaces: losses above it are drawn at it (clipped)")
    parser.add_argument("--log", action="store_true", help="show the log10 loss first in 2-D and 3-D figures")
    parser.add_argument("--figure", action="append", default=None, metavar="KEY",
                        help="export only this figure (repeatable), e.g. surfaces/2d/contour")


def run_view(args: argparse.Namespace) -> int:
    """Write the report and/or export the figures of ``args.results``; returns the exit status."""
    style = SurfaceStyle(args.levels, args.vmin, args.vmax, args.zmax, args.log)  # checked before any file
    report = load_report(args.results, style)  # fails early, with one line, on a bad file
    html = Path(args.output or default_report_path(args.results))
    guard_outputs([] if args.no_report else [html, *plotlyjs_outputs(html, args.plotlyjs)], [Path(args.results)])
    options = ExportOptions(formats=args.formats, preset=args.preset, dpi=args.dpi, titles=not args.no_titles,
                            raster=args.raster)
    check_options(options)
    for option, folder in (("--export", args.export), ("--vtk", args.vtk)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise LandscapeError(f"{option} '{folder}' is a file; give a folder")
    selected = select_figures(report.figures, args.figure, args.results) if args.export else {}
    grids = surface_grids(args.results) if args.vtk else []
    for skipped in report.skipped:
        print(f"skipped {skipped.what}: {skipped.reason}", file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if not args.no_report:
        out = write_report(args.results, html, style, plotlyjs=args.plotlyjs)
        print(f"report: {out} ({len(report.figures)} figures)")
    if args.export:
        written = export_figures(selected, args.export, options)
        print(f"figures: {len(written)} files in {args.export}")
    if args.vtk:
        written = write_grids(grids, args.vtk)
        print(f"vtk: {len(written)} surfaces in {args.vtk}")
    return 0


VIEW_HELP = ("the HTML report of a results file; --export writes its figures as PDF/SVG/PNG, "
             "--vtk its 2-D surfaces as .vts for ParaView")
