"""Report size and load time: plotly.js inline (before) vs one plotly.min.js beside the report
(``--plotlyjs directory``, the default), in one run, in headless Chromium (Debian's, by Playwright).

    python benchmarks/bench_report.py [--results scan.h5] [--repeats 3]

Without ``--results`` it scans the bundled digits MLP first (``landscape scan data/digits_mlp.pt``,
into a temp folder). Load time: a fresh page each time (its own cache), best of ``--repeats``:
DOMContentLoaded and the moment every plot has drawn (``data-rendered`` on every ``.lsplot``),
both from navigation start. Size: the HTML, and what a folder of three reports holds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import plotly
import torch

from benchmarks.machine import cpu_model
from landscape.cli import main as cli_main
from landscape.views import write_report

CHROMIUM = "/usr/bin/chromium"
RENDERED = ("document.querySelectorAll('.lsplot').length > 0 && "
            "[...document.querySelectorAll('.lsplot')].every(d => d.dataset.rendered === 'true')")


def load_times(browser, html: Path, repeats: int) -> tuple[float, float]:
    """Best (DOMContentLoaded, all plots drawn) in ms over ``repeats`` fresh pages."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        context = browser.new_context(viewport={"width": 1280, "height": 900})  # a cold cache each time
        page = context.new_page()
        page.goto(html.as_uri(), wait_until="domcontentloaded")
        page.wait_for_function(RENDERED, timeout=120_000)
        dom, drawn = page.evaluate("[performance.timing.domContentLoadedEventEnd - performance.timing.navigationStart,"
                                   " performance.now()]")
        context.close()
        best = (min(best[0], dom), min(best[1], drawn))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_report_"))
    results = Path(args.results) if args.results else work / "scan.h5"
    if not args.results:
        checkpoint = Path(__file__).resolve().parents[1] / "data" / "digits_mlp.pt"
        cli_main(["scan", str(checkpoint), "--quiet", "--no-report", "-o", str(results)])
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for mode in ("inline", "directory"):
            folder = work / mode
            folder.mkdir()
            pages = [write_report(results, folder / f"{name}.html", plotlyjs=mode) for name in ("a", "b", "c")]
            folder_bytes = sum(f.stat().st_size for f in folder.iterdir())
            dom, drawn = load_times(browser, pages[0], args.repeats)
            rows.append((mode, pages[0].stat().st_size, folder_bytes, dom, drawn))
        browser.close()
    load = os.getloadavg()[0]
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, plotly {plotly.__version__}, "
          f"load avg {load:.1f}; best of {args.repeats}")
    print("| plotly.js | report HTML | folder of 3 reports | DOMContentLoaded | all plots drawn |")
    print("| --- | --- | --- | --- | --- |")
    for mode, size, folder_bytes, dom, drawn in rows:
        print(f"| {mode} | {size / 1e6:.2f} MB | {folder_bytes / 1e6:.2f} MB | {dom:.0f} ms | {drawn:.0f} ms |")
    print(f"ratios inline/directory: HTML {rows[0][1] / rows[1][1]:.1f}x, folder {rows[0][2] / rows[1][2]:.1f}x, "
          f"DOMContentLoaded {rows[0][3] / rows[1][3]:.2f}x, drawn {rows[0][4] / rows[1][4]:.2f}x")


if __name__ == "__main__":
    main()
