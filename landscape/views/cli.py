"""``landscape view FILE.h5 [-o report.html] [--export DIR --formats pdf,svg,png ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import LandscapeError
from ..options import guard_outputs, integer, positive_float
from .export import DEFAULT_HEIGHT, DEFAULT_WIDTH, ExportOptions, export_figures, parse_formats, select_figures
from .report import default_report_path, load_report, write_report
from .style import DEFAULT_LEVELS, SurfaceStyle


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
    parser.add_argument("--width", type=integer(1), default=DEFAULT_WIDTH,
                        help="figure width in CSS pixels")
    parser.add_argument("--height", type=integer(1), default=DEFAULT_HEIGHT,
                        help="figure height in CSS pixels")
    parser.add_argument("--scale", type=positive_float, default=1.0,
                        help="PNG pixels per CSS pixel (1: a PNG is exactly width×height)")
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
    guard_outputs([] if args.no_report else [html], [Path(args.results)])
    if args.export and Path(args.export).exists() and not Path(args.export).is_dir():
        raise LandscapeError(f"--export '{args.export}' is a file; give a folder for the figures")
    for skipped in report.skipped:
        print(f"skipped {skipped.what}: {skipped.reason}", file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if not args.no_report:
        out = write_report(args.results, html, style)
        print(f"report: {out} ({len(report.figures)} figures)")
    if args.export:
        options = ExportOptions(formats=args.formats, width=args.width, height=args.height,
                                scale=args.scale, titles=not args.no_titles)
        written = export_figures(select_figures(report.figures, args.figure, args.results), args.export, options)
        print(f"figures: {len(written)} files in {args.export}")
    return 0


VIEW_HELP = "the standalone HTML report of a results file; --export writes its figures as PDF/SVG/PNG"
