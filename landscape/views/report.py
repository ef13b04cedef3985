r"""One HTML report per results file, offline by default.

plotly.js comes one of three ways (:data:`PLOTLYJS_MODES`): ``directory`` (the default) writes
the ``plotly.min.js`` bundled with the plotly package beside the report once per folder (kept
when it is already the same bytes) and loads it by a relative ``<script src>``, so the reports
of one folder share one copy and open offline; ``inline`` puts it inside the page (one
standalone file to mail around); ``cdn`` loads it from the plotly CDN (needs the network).

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
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from .. import __version__
from ..errors import LandscapeError
from ..store import open_results, read_attr
from .panels import VIEWABLE_SCHEMAS, FigureItem, PanelResult, Skipped, TableItem, run_panels, schema_notes
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
    with open_results(path, tuple(VIEWABLE_SCHEMAS)) as h5:
        return build_report(h5, str(path), style)


def default_report_path(results_path: str | os.PathLike) -> Path:
    """``scan.h5`` → ``scan.html`` beside it."""
    return Path(results_path).with_suffix(".html")


PLOTLYJS_MODES = ("directory", "inline", "cdn")
PLOTLYJS_FILE = "plotly.min.js"


def plotlyjs_outputs(out_html: str | os.PathLike, plotlyjs: str) -> list[Path]:
    """The files besides the report that ``plotlyjs`` writes (``plotly.min.js`` for ``directory``)."""
    return [Path(out_html).parent / PLOTLYJS_FILE] if plotlyjs == "directory" else []


def plotlyjs_tag(plotlyjs: str) -> str:
    """The ``<script>`` that loads plotly.js in mode ``plotlyjs``."""
    if plotlyjs == "inline":
        return f'<script type="text/javascript">{get_plotlyjs()}</script>'
    if plotlyjs == "cdn":
        return f'<script src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js" charset="utf-8"></script>'
    if plotlyjs == "directory":
        return f'<script src="{PLOTLYJS_FILE}" charset="utf-8"></script>'
    raise LandscapeError(f"--plotlyjs {plotlyjs!r}: unknown; choose from {', '.join(PLOTLYJS_MODES)}")


def write_text_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` or what it held before, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(path: str | os.PathLike, out_html: str | os.PathLike | None = None,
                 style: SurfaceStyle = DEFAULT_STYLE, plotlyjs: str = "directory") -> Path:
    """Write the HTML report of the results file ``path`` (plotly.js as ``plotlyjs`` says, see
    :data:`PLOTLYJS_MODES`), surfaces drawn with ``style``; returns its path."""
    out = Path(out_html) if out_html is not None else default_report_path(path)
    tag = plotlyjs_tag(plotlyjs)  # checks the mode before anything is written
    with open_results(path, tuple(VIEWABLE_SCHEMAS)) as h5:
        report = build_report(h5, str(path), style)
        header = {k: read_attr(h5.attrs[k]) for k in ("checkpoint_path", "model_spec", "created_utc")
                  if k in h5.attrs}
    for js in plotlyjs_outputs(out, plotlyjs):
        bundle = get_plotlyjs()
        if not (js.is_file() and js.read_text(encoding="utf-8") == bundle):
            write_text_atomically(js, bundle)
    write_text_atomically(out, render_html(report, header, tag))
    return out


# ============================================================================ HTML
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #fafafa; }
header { background: #243447; color: #fff; padding: 14px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header .meta { font-size: 13px; opacity: 0.85; word-break: break-all; }
main { padding: 8px 28px 40px 28px; max-width: 1280px; }
nav.toc { font-size: 14px; margin: 12px 0; }
nav.toc ol { margin: 4px 0; padding-left: 22px; columns: 2; }
nav.toc .hint { font-size: 12px; color: #555; }
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
    // the mode bar's camera: an SVG at the panel's size on screen (null width/height = as drawn)
    var own = Object.assign({}, config, {toImageButtonOptions:
      {format: 'svg', filename: div.getAttribute('data-filename'), width: null, height: null}});
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


def render_html(report: Report, header: dict | None = None, plotlyjs_script: str | None = None) -> str:
    """The whole page as one string; ``plotlyjs_script`` is the tag that loads plotly.js
    (:func:`plotlyjs_tag`; plotly.js inline when None)."""
    header = header or {}
    parts: list[str] = []
    data_blocks: list[str] = []
    toc: list[str] = []
    plot_index = 0
    for result in report.results:
        if not result.items:
            continue
        anchor = f"panel-{_file_name(result.panel.name).lower()}"
        toc.append(f'<li><a href="#{esc(anchor)}">{esc(result.panel.name)}</a></li>')
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
    script = plotlyjs_script if plotlyjs_script is not None else plotlyjs_tag("inline")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"generator\" content=\"landscape {esc(__version__)}\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style>"
        f"{script}</head>\n<body>"
        f"<header><h1>{esc(title)}</h1><div class=\"meta\">{meta}</div></header><main>"
        f'<nav class="toc"><strong>Contents</strong><ol>{"".join(toc)}</ol><div class="hint">each figure\'s '
        f'camera button (top right, on hover) downloads it as SVG at its size on screen</div></nav>'
        f"{notes_block}{''.join(parts)}</main>\n"
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
