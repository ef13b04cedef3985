r"""One standalone HTML report per results file: plotly.js inlined once, no network.

All text from the file is escaped with :func:`html.escape`; figure JSON is embedded in
``<script type="application/json">`` blocks with ``<``, ``>`` and ``&`` as ``\u`` escapes,
so no string in the file can close a tag or start one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .. import __version__
from ..store import open_results, read_attr
from .panels import FigureItem, PanelResult, Skipped, TableItem, run_panels, schema_notes
from .style import DEFAULT_STYLE, SurfaceStyle
from .text import html_text as esc


@dataclass
class Report:
    """What a report shows, before it becomes HTML (also what tests inspect)."""

    source: str
    results: list[PanelResult]
    notes: list[str]

    @property
    def figures(self) -> dict[str, go.Figure]:
        """Every figure, keyed like ``surfaces/2d/contour``."""
        return {i.key: i.figure for r in self.results for i in r.items if isinstance(i, FigureItem)}

    @property
    def skipped(self) -> list[Skipped]:
        """Every part of the file some panel could not show."""
        return [s for r in self.results for s in r.skipped]


def build_report(h5: h5py.File, source: str, style: SurfaceStyle = DEFAULT_STYLE) -> Report:
    """Run every panel on the open file ``h5`` (``source`` names it in the report); surfaces
    are drawn with ``style``."""
    return Report(source, run_panels(h5, style=style), schema_notes(h5))


def load_report(path: str | os.PathLike, style: SurfaceStyle = DEFAULT_STYLE) -> Report:
    """Open ``path`` (a clear :class:`LandscapeError` if it is not a results file) and run
    every panel on it."""
    with open_results(path) as h5:
        return build_report(h5, str(path), style)


def default_report_path(results_path: str | os.PathLike) -> Path:
    """``scan.h5`` → ``scan.html`` beside it."""
    return Path(results_path).with_suffix(".html")


def write_report(path: str | os.PathLike, out_html: str | os.PathLike | None = None,
                 style: SurfaceStyle = DEFAULT_STYLE) -> Path:
    """Write the standalone HTML report of the results file ``path``; returns its path."""
    out = Path(out_html) if out_html is not None else default_report_path(path)
    with open_results(path) as h5:
        report = build_report(h5, str(path), style)
        header = {k: read_attr(h5.attrs[k]) for k in ("checkpoint_path", "model_spec", "created_utc")
                  if k in h5.attrs}
    html_text = render_html(report, header)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html_text, encoding="utf-8")
    os.replace(tmp, out)
    return out


# ============================================================================ HTML
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #fafafa; }
header { background: #243447; color: #fff; padding: 14px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header .meta { font-size: 13px; opacity: 0.85; word-break: break-all; }
main { padding: 8px 28px 40px 28px; max-width: 1280px; }
nav { font-size: 14px; margin: 12px 0; }
nav a { margin-right: 14px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px 18px; margin: 16px 0; }
section h2 { font-size: 18px; margin: 6px 0 10px 0; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; flex: 1 1 560px; min-width: 420px; }
figcaption { font-size: 12px; color: #555; margin-top: 2px; }
.lsplot { width: 100%; height: 460px; }
.lsplot.tall { height: 560px; }
figure.scene3d { flex: 0 1 780px; }  /* a 3-D scene as wide as it is drawn: its colour bar stays beside it */
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
.table { overflow-x: auto; }
td { word-break: normal; overflow-wrap: normal; max-width: 720px; }
td:first-child { white-space: nowrap; }
.notes { background: #fff8e1; border: 1px solid #f0d48a; border-radius: 6px; padding: 8px 16px; margin-top: 14px;
         font-size: 14px; }
.skipped { color: #8a4b00; font-size: 13px; }
"""

_SCRIPT = """
(function () {
  var config = {responsive: true, displaylogo: false};
  var blocks = document.querySelectorAll('script.figure-data');
  for (var k = 0; k < blocks.length; k++) {
    var block = blocks[k];
    var div = document.getElementById(block.getAttribute('data-target'));
    var fig = JSON.parse(block.textContent);
    var own = Object.assign({}, config, {toImageButtonOptions:
      {format: 'svg', filename: div.getAttribute('data-filename')}});
    (function (div) {
      Plotly.newPlot(div, fig.data, fig.layout, own).then(function () {
        div.setAttribute('data-rendered', 'true');
      });
    })(div);
  }
})();
"""


def _figure_json(figure: go.Figure) -> str:
    text = figure.to_json(validate=False, pretty=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table_html(item: TableItem) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in item.header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in item.rows)
    caption = f'<figcaption>{esc(item.caption)}</figcaption>' if item.caption else ""
    return (f'<div class="table" data-key="{esc(item.key)}"><h3 style="font-size:15px;margin:6px 0">'
            f'{esc(item.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f'{caption}</div>')


def _file_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in key).strip("-") or "figure"


def render_html(report: Report, header: dict | None = None, plotlyjs: str | None = None) -> str:
    """The whole page as one string (plotly.js inline unless ``plotlyjs`` is given)."""
    header = header or {}
    parts: list[str] = []
    data_blocks: list[str] = []
    toc: list[str] = []
    plot_index = 0
    for result in report.results:
        if not result.items:
            continue
        anchor = f"panel-{_file_name(result.panel.name).lower()}"
        toc.append(f'<a href="#{esc(anchor)}">{esc(result.panel.name)}</a>')
        figures_html, tables_html, skipped_html = [], [], []
        for item in result.items:
            if isinstance(item, FigureItem):
                plot_id = f"plot-{plot_index}"
                plot_index += 1
                tall = " tall" if any(t.type in ("surface", "scatter3d") for t in item.figure.data) else ""
                # a figure that sets its own height (grids of subplots) gets a box that tall
                height = item.figure.layout.height
                style = f' style="height: {int(height)}px"' if height else ""
                caption = f"<figcaption>{esc(item.caption)}</figcaption>" if item.caption else ""
                box = ' class="scene3d"' if tall else ""
                figures_html.append(
                    f'<figure{box}><div class="lsplot{tall}"{style} id="{plot_id}" data-key="{esc(item.key)}" '
                    f'data-filename="{esc(_file_name(item.key))}"></div>{caption}</figure>')
                data_blocks.append(f'<script type="application/json" class="figure-data" '
                                   f'data-target="{plot_id}">{_figure_json(item.figure)}</script>')
            elif isinstance(item, TableItem):
                tables_html.append(_table_html(item))
            else:
                skipped_html.append(f"<li>{esc(item.what)}: {esc(item.reason)}</li>")
        skipped_block = f'<ul class="skipped">{"".join(skipped_html)}</ul>' if skipped_html else ""
        figures_block = f'<div class="figures">{"".join(figures_html)}</div>' if figures_html else ""
        parts.append(f'<section id="{esc(anchor)}"><h2>{esc(result.panel.name)}</h2>{skipped_block}'
                     f'{figures_block}{"".join(tables_html)}</section>')

    notes = [f"<li>{esc(n)}</li>" for n in report.notes]
    notes += [f'<li class="skipped">skipped {esc(s.what)}: {esc(s.reason)}</li>' for s in report.skipped]
    notes_block = f'<div class="notes"><ul>{"".join(notes)}</ul></div>' if notes else ""
    meta = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in header.items() if v not in ("", None))
    title = f"landscape report: {Path(report.source).name}"
    js = plotlyjs if plotlyjs is not None else get_plotlyjs()
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"generator\" content=\"landscape {esc(__version__)}\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style>"
        f"<script type=\"text/javascript\">{js}</script></head>\n<body>"
        f"<header><h1>{esc(title)}</h1><div class=\"meta\">{meta}</div></header><main>"
        f"{notes_block}<nav>{' '.join(toc)}</nav>{''.join(parts)}</main>\n"
        f"{''.join(data_blocks)}\n<script type=\"text/javascript\">{_SCRIPT}</script></body></html>\n"
    )


def figures(path: str | os.PathLike, style: SurfaceStyle = DEFAULT_STYLE) -> dict[str, go.Figure]:
    """Every figure the report of ``path`` would show, keyed like ``surfaces/2d/contour``
    (for notebooks: ``figures("scan.h5")["surfaces/2d/contour"].show()``)."""
    return load_report(path, style).figures


def tables(path: str | os.PathLike) -> dict[str, TableItem]:
    """Every table the report of ``path`` would show, keyed like ``surfaces/table``."""
    report = load_report(path)
    return {i.key: i for r in report.results for i in r.items if isinstance(i, TableItem)}


__all__: Sequence[str] = ["Report", "build_report", "figures", "load_report", "render_html", "tables",
                          "write_report", "default_report_path"]
