"""Static PDF/SVG/PNG export of a bundled (real, small) scan through kaleido + Chromium."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import plotly.graph_objects as go
import pytest

from landscape import LandscapeError
from landscape.cli import main
from landscape.views import ExportOptions, export_results, figures, paper_figure
from landscape.views.export import file_stem, parse_formats
from tests.test_views_browser import CHROMIUM
from tests.test_views_report import EXPECTED_FIGURES
from tests.test_views_samples import png_size

pytestmark = pytest.mark.xdist_group("scan")  # with the report tests: one real scan per run


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"static export cannot be tested under CI: {CHROMIUM} not found")
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium); kaleido needs a browser")
    return CHROMIUM


@pytest.fixture(scope="module")
def bundled_scan(tmp_path_factory) -> Path:
    """`landscape scan` of the bundled digits MLP checkpoint (11×11, no report)."""
    out = tmp_path_factory.mktemp("bundled") / "digits_mlp.h5"
    checkpoint = Path(__file__).resolve().parents[1] / "data" / "digits_mlp.pt"
    assert main(["scan", str(checkpoint), "--points", "11", "--quiet", "--no-report", "-o", str(out)]) == 0
    return out


def _check_pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and len(data) > 1000


def _check_svg(data: bytes, width: int, height: int) -> None:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (float(root.get("width")), float(root.get("height"))) == (width, height)
    assert len(list(root.iter())) > 20  # axes, ticks, traces: not an empty canvas


@pytest.mark.slow
def test_every_figure_in_every_format(chromium, scan, tmp_path):
    written = export_results(scan, tmp_path, ExportOptions(width=500, height=400))
    assert len(written) == 3 * len(EXPECTED_FIGURES)
    for key in EXPECTED_FIGURES:
        stem = tmp_path / file_stem(key)
        _check_pdf(stem.with_suffix(".pdf").read_bytes())
        _check_svg(stem.with_suffix(".svg").read_bytes(), 500, 400)
        assert png_size(stem.with_suffix(".png").read_bytes()) == (500, 400)


@pytest.mark.slow
def test_cli_export_of_the_bundled_scan(chromium, bundled_scan, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["view", str(bundled_scan), "--no-report", "--export", str(out), "--formats", "png,svg",
                 "--width", "320", "--height", "240", "--scale", "2", "--figure", "curves/1d",
                 "--figure", "surfaces/2d/surface3d", "--no-titles"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves-1d.png", "curves-1d.svg",
                                                     "surfaces-2d-surface3d.png", "surfaces-2d-surface3d.svg"]
    assert png_size((out / "curves-1d.png").read_bytes()) == (640, 480)  # scale 2: pixels = 2 × CSS size
    _check_svg((out / "curves-1d.svg").read_bytes(), 320, 240)
    assert "report:" not in capsys.readouterr().out  # --no-report: figures only


def test_paper_style_is_plain_and_keeps_the_default_view(scan):
    fig = figures(scan)["surfaces/2d/contour"]
    paper = paper_figure(fig, titles=False)
    assert paper.layout.updatemenus == () and paper.layout.sliders == ()
    assert paper.layout.font.size == 12 and paper.layout.paper_bgcolor == "white"
    assert not paper.layout.title.text
    assert paper.data[0].z is not None and (paper.data[0].z == fig.data[0].z).all()  # the default variant
    assert fig.layout.updatemenus  # the report's figure is not modified
    density = paper_figure(figures(scan)["curvature/density"])
    assert [t.visible for t in density.data].count(True) == 1 and density.layout.title.text


def test_bad_export_requests_are_one_line_errors(scan, tmp_path, capsys):
    with pytest.raises(LandscapeError, match="unknown jpg"):
        parse_formats("pdf,jpg")
    assert parse_formats(" PNG, .svg,png") == ("png", "svg")
    with pytest.raises(LandscapeError, match="no figure 'nope'"):
        export_results(scan, tmp_path, keys=["nope"])
    with pytest.raises(LandscapeError, match="too small"):
        from landscape.views import export_figures
        export_figures({"x": go.Figure()}, tmp_path, ExportOptions(width=10))
    assert main(["view", str(scan), "--formats", "gif"]) == 2
    err = capsys.readouterr().err
    assert "unknown gif" in err and err.count("\n") == 1
