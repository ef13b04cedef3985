"""Report and static export of a default scan: ours vs the naive Plotly way, in one run.

    python benchmarks/bench_views.py [--results scan.h5] [--formats png]

Without ``--results`` it scans the bundled digits MLP first (51×51 + 1-D, into a temp folder).
Report: one page with plotly.js inlined once vs one ``fig.write_html(include_plotlyjs=True)``
per figure (what a script that saves each figure does). Export: every figure in one kaleido
browser session (``pio.write_images``) vs ``fig.write_image`` per file, which starts a
browser each call.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import plotly
import plotly.io as pio
import torch

from landscape.cli import main as cli_main
from landscape.views import ExportOptions, export_figures, figures, paper_figure, write_report
from landscape.views.export import file_stem


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None)
    parser.add_argument("--formats", default="png")
    args = parser.parse_args()
    formats = tuple(args.formats.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench_views_"))
    results = Path(args.results) if args.results else work / "scan.h5"
    if not args.results:
        checkpoint = Path(__file__).resolve().parents[1] / "data" / "digits_mlp.pt"
        cli_main(["scan", str(checkpoint), "--quiet", "--no-report", "-o", str(results)])

    figs = figures(results)
    t_report, html = timed(lambda: write_report(results, work / "report.html", plotlyjs="inline"))
    naive_dir = work / "naive_html"
    naive_dir.mkdir()

    def naive_report() -> int:
        total = 0
        for key, fig in figs.items():
            path = naive_dir / f"{file_stem(key)}.html"
            fig.write_html(path, include_plotlyjs=True, full_html=True)
            total += path.stat().st_size
        return total
    t_naive_report, naive_bytes = timed(naive_report)
    ours_bytes = html.stat().st_size

    options = ExportOptions(formats=formats)
    t_export, written = timed(lambda: export_figures(figs, work / "ours", options))
    loop_dir = work / "loop"
    loop_dir.mkdir()

    def naive_export() -> int:
        count = 0
        for key, fig in figs.items():
            styled = paper_figure(fig, fmt=formats[0])
            for fmt in formats:
                pio.write_image(styled, loop_dir / f"{file_stem(key)}.{fmt}", width=styled.layout.width,
                                height=styled.layout.height)
                count += 1
        return count
    t_loop, loop_count = timed(naive_export)
    assert loop_count == len(written)

    machine = f"{os.cpu_count()}-core {platform.machine()}, torch {torch.__version__}, plotly {plotly.__version__}"
    print(f"machine: {machine}")
    print(f"figures: {len(figs)}; formats: {','.join(formats)}; files: {len(written)}")
    print(f"report: ours {t_report:.2f} s, {ours_bytes / 1e6:.1f} MB (one page) | per-figure write_html "
          f"{t_naive_report:.2f} s, {naive_bytes / 1e6:.1f} MB ({len(figs)} pages) | size ratio "
          f"{naive_bytes / ours_bytes:.1f}×")
    print(f"export: ours {t_export:.2f} s | write_image per file {t_loop:.2f} s | ratio {t_loop / t_export:.1f}×")


if __name__ == "__main__":
    main()
