"""Views: the interactive HTML report and static paper figures of a results file.

Python API::

    from landscape.views import figures, write_report, export_results
    figs = figures("scan.h5")              # {"surfaces/2d/contour": go.Figure, ...}
    write_report("scan.h5")                # scan.html (+ plotly.min.js) beside it, works offline
    export_results("scan.h5", "figs/")     # figs/*.pdf, *.svg, *.png at one-column size
    write_vtk("scan.h5", "vtk/")           # vtk/<surface>.vts for ParaView

New panels: see :mod:`landscape.views.panels` (the registry). The panels register when their
module is imported, so every panel module is imported here, once (each imports the registry itself).
"""

from . import (  # noqa: F401  (importing them registers their panels)
    analysis_panels,
    basin_panels,
    flatness_panels,
    layer_panels,
    surface_panels,
    tracker_panels,
    trajectory_panels,
)
from .export import ExportOptions, export_figures, export_results, paper_figure
from .panels import FigureItem, Skipped, TableItem, panel, registered_panels
from .report import build_report, default_report_path, figures, load_report, tables, write_report
from .vtk import write_vtk

__all__ = ["ExportOptions", "FigureItem", "Skipped", "TableItem", "build_report", "default_report_path",
           "export_figures", "export_results", "figures", "load_report", "panel", "paper_figure",
           "registered_panels", "tables", "write_report", "write_vtk"]
