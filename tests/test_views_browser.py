"""The report in real headless Chromium (Debian's, driven by Playwright): no console
errors, every plot drawn, the log toggle works, markup from the file stays text.

Skipped with a reason when /usr/bin/chromium or playwright is missing, except under CI=true
where that is a failure. ``LANDSCAPE_UPDATE_SCREENSHOT=1`` also refreshes docs/report.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.views import write_report
from landscape.views.style import SurfaceStyle
from tests.conftest import BOLD, IMG, SCRIPT
from tests.test_views_report import EXPECTED_FIGURES
from tests.test_views_samples import copy_without, png_pixels, png_size

CHROMIUM = Path(os.environ.get("LANDSCAPE_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
REPO = Path(__file__).resolve().parents[1]

# every test here drives a real Chromium; with the report tests: one real scan per run
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scan")]


def _require_browser():
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run under CI: {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, html: Path, width: int = 1280, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    events: dict[str, list[str]] = {"errors": [], "dialogs": [], "requests": []}
    page.on("console", lambda m: events["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: events["requests"].append(r.url) if not r.url.startswith(("file:", "data:",
                                                                                           "blob:")) else None)
    page.goto(html.as_uri())
    page.wait_for_function("document.querySelectorAll('.lsplot').length > 0 && "
                           "[...document.querySelectorAll('.lsplot')].every(d => d.dataset.rendered === 'true')",
                           timeout=30_000)
    return page, events


def _drawn(div) -> dict:
    """What a rendered plot div holds: its SVG box, drawn marks, WebGL canvases and traces."""
    return div.evaluate(DRAWN_JS)


DRAWN_JS = """d => {
    const svg = d.querySelector('svg.main-svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    // drawn marks: non-trivial SVG paths (lines, markers, contour levels, bars) and heatmap images
    const marks = [...d.querySelectorAll('.cartesianlayer .trace path')]
        .filter(p => (p.getAttribute('d') || '').length > 10).length
        + d.querySelectorAll('.cartesianlayer .hm image').length;
    const canvases = [...d.querySelectorAll('.gl-container canvas')].filter(c => c.width > 0).length;
    return {width: box.width, height: box.height, marks: marks, canvases: canvases,
            data: d.data.length};
}"""


@pytest.mark.parametrize("plotlyjs", ["directory", "inline"])
def test_report_renders_every_plot_without_errors(browser, scan, tmp_path, plotlyjs):
    """Offline: no request leaves file:// (directory loads ./plotly.min.js beside the page)."""
    html = write_report(scan, tmp_path / "report.html", plotlyjs=plotlyjs)
    page, events = _open(browser, html)
    keys = page.eval_on_selector_all(".lsplot", "els => els.map(e => e.dataset.key)")
    assert set(keys) == EXPECTED_FIGURES and len(keys) == len(EXPECTED_FIGURES)
    for key in keys:
        div = page.locator(f'.lsplot[data-key="{key}"]')
        drawn = _drawn(div)
        assert drawn["width"] > 300 and drawn["height"] > 300, key
        assert drawn["data"] > 0, key
        if key.endswith("surface3d"):
            assert drawn["canvases"] > 0, key
            pixels = png_pixels(div.screenshot())
            assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50, "3-D surface drew nothing"
        else:
            assert drawn["marks"] > 0, key
    assert events["errors"] == [] and events["requests"] == []

    shot = tmp_path / "report.png"
    page.mouse.move(2, 2)  # no hover toolbar in the picture
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot))
    assert png_size(shot.read_bytes()) == (1280, 900)
    if os.environ.get("LANDSCAPE_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        (REPO / "docs" / "report.png").write_bytes(shot.read_bytes())

    # the log toggle really restyles the plot in the browser
    contour = page.locator('.lsplot[data-key="surfaces/2d/contour"]')
    with h5py.File(scan) as f:
        loss = f["surfaces/2d/train/loss"][()]
    # Plotly's z[row=β index][col=α index] is the file's loss[α index, β index]
    assert contour.evaluate("d => d.calcdata[0][0].z[2][7]") == pytest.approx(loss[7, 2], rel=1e-12)
    before = contour.evaluate("d => d.calcdata[0][0].z[5][5]")
    contour.locator(".updatemenu-header-group").click()
    contour.locator(".updatemenu-dropdown-button", has_text="train loss (log10)").first.click()
    page.wait_for_function("v => document.querySelector('.lsplot[data-key=\"surfaces/2d/contour\"]')"
                           ".calcdata[0][0].z[5][5] !== v", arg=before, timeout=10_000)
    after = contour.evaluate("d => d.calcdata[0][0].z[5][5]")
    assert after == pytest.approx(np.log10(before), rel=1e-12)

    surface = page.locator('.lsplot[data-key="surfaces/2d/surface3d"]')
    surface.locator(".updatemenu-header-group").click()
    surface.locator(".updatemenu-dropdown-button", has_text="test loss (log10)").first.click()
    page.wait_for_function("() => document.querySelector('.lsplot[data-key=\"surfaces/2d/surface3d\"]')"
                           "._fullLayout.scene.zaxis.title.text === 'log10 test loss'", timeout=10_000)
    with h5py.File(scan) as f:
        test_loss = f["surfaces/2d/test/loss"][()]
    assert surface.evaluate("d => d._fullData[0].z[2][7]") == pytest.approx(np.log10(test_loss[7, 2]), rel=1e-12)
    assert events["errors"] == []

    page.close()


def test_markup_from_the_file_shows_as_text(browser, hostile, tmp_path):
    html = write_report(hostile, tmp_path / "hostile.html")
    page, events = _open(browser, html)
    assert events["dialogs"] == [] and events["errors"] == []
    body = page.evaluate("document.body.innerText")
    for raw in (SCRIPT, IMG):
        assert raw in body  # the settings table shows the literal text
    assert page.evaluate("document.querySelectorAll('main img, main b, main script').length") == 0
    titles = page.eval_on_selector_all(".lsplot .gtitle-subtitle", "els => els.map(e => e.textContent)")
    assert any(t.startswith(f"surfaces/{BOLD}: ") for t in titles)  # Plotly decoded our entities back to the name
    legend = page.eval_on_selector_all(".lsplot .legendtext", "els => els.map(e => e.textContent)")
    assert f"{IMG} loss" in legend
    annotations = page.eval_on_selector_all(".lsplot .annotation-text", "els => els.map(e => e.textContent)")
    assert SCRIPT in annotations
    page.close()


def test_a_damaged_partial_file_still_renders_cleanly(browser, scan, tmp_path):
    """Half the 2-D grid not computed, a dataset gone, an old schema: what is left renders
    without errors and the page says what it skipped."""
    path = copy_without(scan, tmp_path / "damaged.h5", ["curvature/density/nodes"],
                        {"schema_version": 0, "complete": False})
    with h5py.File(path, "a") as f:
        for key in ("train/loss", "train/accuracy", "test/loss", "test/accuracy"):
            grid = f[f"surfaces/2d/{key}"][()]
            grid[:, 6:] = np.nan
            f[f"surfaces/2d/{key}"][...] = grid
        done = f["surfaces/2d/done"][()]
        done[:, 6:] = False
        f["surfaces/2d/done"][...] = done
    page, events = _open(browser, write_report(path, tmp_path / "damaged.html"))
    assert events["errors"] == []
    notes = page.inner_text(".notes")
    assert "schema version 0" in notes and "did not finish" in notes
    assert "skipped curvature/density: dataset 'nodes' is missing" in notes
    assert "66 of 121 grid points computed" in page.inner_text("section#panel-2-d-surfaces")
    keys = page.eval_on_selector_all(".lsplot", "els => els.map(e => e.dataset.key)")
    assert set(keys) == EXPECTED_FIGURES - {"curvature/density"}
    page.close()


def test_compare_report_renders_every_plot_without_errors(browser, compared, tmp_path):
    html = write_report(compared, tmp_path / "compare.html")
    page, events = _open(browser, html)
    keys = page.eval_on_selector_all(".lsplot", "els => els.map(e => e.dataset.key)")
    assert {"sharpness/bars", "sharpness/rays", "lines/loss"} <= set(keys)
    for key in keys:
        drawn = _drawn(page.locator(f'.lsplot[data-key="{key}"]'))
        assert drawn["width"] > 300 and drawn["height"] > 300 and drawn["marks"] > 0, key
    assert events["errors"] == [] and events["requests"] == []


# ============================================================================ paper-ready geometry
GEOMETRY_JS = """d => {
    const box = e => { const r = e.getBoundingClientRect();
                       return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
    const areas = [...d.querySelectorAll('.nsewdrag')].map(box)
        .concat([...d.querySelectorAll('.gl-container > div')].map(box));
    const controls = [];
    for (const cls of ['updatemenu-container', 'legend', 'colorbar']) {
        for (const e of d.querySelectorAll('.' + cls)) {
            const b = box(e);
            if (b.right > b.left && b.bottom > b.top) controls.push(Object.assign({what: cls}, b));
        }
    }
    const fl = d._fullLayout;
    const axis = a => a ? {range: a.range, length: a._length} : null;
    return {areas: areas, controls: controls, x: axis(fl.xaxis), y: axis(fl.yaxis),
            z: fl.scene ? fl.scene.zaxis.range : null,
            traces: d._fullData.map(t => ({name: t.name, type: t.type, x: t.x, y: t.y, z: t.z}))};
}"""


def _overlap(a: dict, b: dict) -> float:
    """Pixels² two boxes share."""
    return max(0.0, min(a["right"], b["right"]) - max(a["left"], b["left"])) * \
        max(0.0, min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]))


def _red_pixels(png: bytes) -> int:
    """Pixels of θ*'s pure-red 3-D marker (Viridis and the grey frame hold no such colour)."""
    rgb = png_pixels(png)[..., :3].astype(int)
    return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)).sum())


@pytest.mark.parametrize("log", [False, True], ids=["linear", "log"])
def test_figures_are_paper_ready(browser, scan, tmp_path, log):
    """Equal axes on the contour and heatmap (px per unit within 1 %: Plotly rounds the plot
    area to whole pixels); θ* inside every 2-D view and, in 3-D, above the surface at θ* and
    seen by the camera (its red marker's pixels in a screenshot); no menu, legend or colour
    bar over a plot area (1 px² allowed for anti-aliased edges); no error, no request."""
    html = write_report(scan, tmp_path / "paper.html", SurfaceStyle(log=log))
    page, events = _open(browser, html)
    keys = page.eval_on_selector_all(".lsplot", "els => els.map(e => e.dataset.key)")
    for key in keys:
        div = page.locator(f'.lsplot[data-key="{key}"]')
        geometry = div.evaluate(GEOMETRY_JS)
        assert geometry["areas"], key
        for control in geometry["controls"]:
            for area in geometry["areas"]:
                assert _overlap(control, area) <= 1.0, (key, control["what"], control, area)
        if not key.startswith("surfaces/"):
            continue
        theta = next(t for t in geometry["traces"] if t["name"] == "checkpoints")
        surface = geometry["traces"][0]
        alpha, beta = np.asarray(surface["x"]), np.asarray(surface["y"])
        i, j = int(np.abs(alpha).argmin()), int(np.abs(beta).argmin())  # θ* at the origin
        z_at_theta = np.asarray(surface["z"], dtype=float)[j][i]
        if key.endswith("surface3d"):
            low, high = geometry["z"]
            assert z_at_theta < theta["z"][0] <= high, key
            assert _red_pixels(div.screenshot()) > 20, f"{key}: θ* hidden"
        else:
            x, y = geometry["x"], geometry["y"]
            per_unit = [a["length"] / (a["range"][1] - a["range"][0]) for a in (x, y)]
            assert per_unit[0] == pytest.approx(per_unit[1], rel=0.01), key
            assert x["range"][0] <= theta["x"][0] <= x["range"][1] and y["range"][0] <= theta["y"][0] <= y["range"][1]
            np.testing.assert_allclose(np.asarray(surface["z"], dtype=float),
                                       _grid(scan, log).T, rtol=1e-12)
    assert events["errors"] == [] and events["requests"] == []
    page.close()


def _grid(scan: Path, log: bool) -> np.ndarray:
    with h5py.File(scan) as f:
        loss = f["surfaces/2d/train/loss"][()]
    return np.log10(loss) if log else loss
