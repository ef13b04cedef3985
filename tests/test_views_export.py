"""Static PDF/SVG/PNG export of a bundled (real, small) scan through kaleido + Chromium, and
the .vts surfaces (read back by parsing the VTK XML here: meshio reads no StructuredGrid)."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import plotly.graph_objects as go
import pytest

from landscape import LandscapeError
from landscape.cli import main
from landscape.views import ExportOptions, export_results, figures, paper_figure
from landscape.views.export import PRESETS, figure_size, file_stem, parse_formats
from landscape.views.export import png_size as expected_png_size
from landscape.views.vtk import write_vtk
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



def pdf_facts(path: Path) -> tuple[float, list[str], list[float]]:
    """(page width in pt, image XObjects, every text run's size in pt at the page's scale:
    the Tf size times the vertical scale of text matrix × CTM)."""
    from pypdf import PdfReader

    page = PdfReader(path).pages[0]
    xobjects = page["/Resources"].get("/XObject") or {}
    images = [n for n in xobjects if xobjects[n].get_object().get("/Subtype") == "/Image"]
    sizes: list[float] = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            sizes.append(size * math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3]))

    page.extract_text(visitor_text=visit)
    return float(page.mediabox.width), images, sizes


def _check_svg(data: bytes, width: int, height: int, images: bool = False) -> None:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (float(root.get("width")), float(root.get("height"))) == (width, height)
    assert len(list(root.iter())) > 20  # axes, ticks, traces: not an empty canvas
    assert images or not list(root.iter("{http://www.w3.org/2000/svg}image"))  # heatmaps are vector cells


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["one-column", "slide"])
def test_every_figure_is_a_vector_pdf_at_the_preset_with_readable_text(chromium, scan, tmp_path, preset):
    written = export_results(scan, tmp_path, ExportOptions(preset=preset, dpi=150))
    assert len(written) == 3 * len(EXPECTED_FIGURES)
    spec = PRESETS[preset]
    figs = figures(scan)
    for key in EXPECTED_FIGURES:
        stem = tmp_path / file_stem(key)
        width, images, sizes = pdf_facts(stem.with_suffix(".pdf"))
        assert width == pytest.approx(spec.width_in * 72, abs=0.01), key  # the page is the column
        # Plotly draws 3-D scenes with WebGL: a raster in any format (the .vts is the vector 3-D)
        assert images == [] or key.endswith("surface3d"), (key, images)
        # Chromium writes sizes to 0.01 px; 8 pt is the floor, the title's size the ceiling
        assert sizes and min(sizes) >= spec.text_pt - 0.01 and max(sizes) <= spec.title_pt + 0.1, (key, sizes)
        assert png_size(stem.with_suffix(".png").read_bytes()) == expected_png_size(figs[key], preset, 150)
        _check_svg(stem.with_suffix(".svg").read_bytes(), *figure_size(figs[key], preset), key.endswith("surface3d"))


@pytest.mark.slow
def test_raster_keeps_the_heatmap_an_image_and_png_has_the_preset_s_pixels(chromium, scan, tmp_path):
    export_results(scan, tmp_path, ExportOptions(formats=("pdf", "png"), raster=True), keys=["surfaces/2d/heatmap"])
    assert pdf_facts(tmp_path / "surfaces-2d-heatmap.pdf")[1] != []
    assert png_size((tmp_path / "surfaces-2d-heatmap.png").read_bytes()) == (975, 975)  # 3.25 in × 300 dpi


@pytest.mark.slow
def test_cli_export_of_the_bundled_scan(chromium, bundled_scan, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["view", str(bundled_scan), "--no-report", "--export", str(out), "--formats", "png,svg",
                 "--preset", "two-column", "--dpi", "100", "--figure", "curves/1d",
                 "--figure", "surfaces/2d/surface3d", "--no-titles"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves-1d.png", "curves-1d.svg",
                                                     "surfaces-2d-surface3d.png", "surfaces-2d-surface3d.svg"]
    assert png_size((out / "curves-1d.png").read_bytes()) == (675, 506)  # 6.75 × 5.0625 in at 100 dpi
    _check_svg((out / "curves-1d.svg").read_bytes(), 648, 486)
    _check_svg((out / "surfaces-2d-surface3d.svg").read_bytes(), 648, 486, images=True)
    assert "report:" not in capsys.readouterr().out  # --no-report: figures only


def test_one_figure_exports_as_a_vector_pdf_with_8_pt_text(chromium, tmp_path):
    """The fast tier's one kaleido run: a small heatmap, drawn as vector cells."""
    fig = go.Figure(go.Heatmap(z=np.arange(12.0).reshape(3, 4), x=[0, 1, 2, 4], y=[0, 1, 3]))
    from landscape.views import export_figures

    [pdf] = export_figures({"h": fig}, tmp_path, ExportOptions(formats=("pdf",)))
    width, images, sizes = pdf_facts(pdf)
    assert width == pytest.approx(234, abs=0.01) and images == [] and min(sizes) >= 7.99


def test_paper_style_is_plain_and_keeps_the_default_view(scan):
    fig = figures(scan)["surfaces/2d/contour"]
    paper = paper_figure(fig, titles=False)
    assert paper.layout.updatemenus == () and paper.layout.sliders == ()
    assert paper.layout.font.size == pytest.approx(8 / 0.75, abs=0.1)  # 8 pt at 0.75 pt per CSS px (SVG)
    assert (paper.layout.width, paper.layout.height) == (312, 312) and paper.layout.paper_bgcolor == "white"
    assert not paper.layout.title.text
    assert paper.data[0].z is not None and (paper.data[0].z == fig.data[0].z).all()  # the default variant
    assert fig.layout.updatemenus  # the report's figure is not modified
    density = paper_figure(figures(scan)["curvature/density"])
    assert [t.visible for t in density.data].count(True) == 1 and density.layout.title.text
    assert (density.layout.width, density.layout.height) == (312, 234)


def test_heatmap_cells_cover_the_grid_with_the_stored_values(scan):
    heat = figures(scan)["surfaces/2d/heatmap"]
    cells = paper_figure(heat).data[0]
    z = np.asarray(heat.data[0].z)
    assert cells.type == "bar" and len(cells.x) == np.isfinite(z).sum()
    np.testing.assert_array_equal(np.asarray(cells.marker.color), z[np.isfinite(z)])  # exact: same numbers
    x = np.asarray(heat.data[0].x)
    assert min(cells.x - cells.width / 2) == pytest.approx(x[0] - (x[1] - x[0]) / 2, rel=1e-12)
    assert paper_figure(heat, raster=True).data[0].type == "heatmap"


def read_vts(path: Path) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """(WholeExtent, points [n, 3], point data) of a .vts with base64 Float64 arrays, each
    behind an 8-byte little-endian length (header_type UInt64), as VTK's reader decodes it."""
    import base64

    root = ET.parse(path).getroot()
    assert (root.get("type"), root.get("byte_order"), root.get("header_type")) == (
        "StructuredGrid", "LittleEndian", "UInt64")

    def decode(node) -> np.ndarray:
        assert (node.get("type"), node.get("format")) == ("Float64", "binary")
        raw = base64.b64decode(node.text)
        assert int(np.frombuffer(raw[:8], "<u8")[0]) == len(raw) - 8
        return np.frombuffer(raw[8:], "<f8").reshape(-1, int(node.get("NumberOfComponents")))

    grid = root.find("StructuredGrid")
    points = decode(grid.find("Piece/Points/DataArray"))
    data = {n.get("Name"): decode(n)[:, 0] for n in grid.find("Piece/PointData")}
    return grid.get("WholeExtent"), points, data


def test_vts_reads_back_with_the_stored_grid(scan, tmp_path):
    [path] = write_vtk(scan, tmp_path)
    assert path.name == "2d.vts"
    extent, points, data = read_vts(path)
    with h5py.File(scan) as f:
        alpha, beta = f["surfaces/2d/alpha"][()], f["surfaces/2d/beta"][()]
        loss, accuracy = f["surfaces/2d/train/loss"][()], f["surfaces/2d/test/accuracy"][()]
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    # VTK orders points with the first index fastest: the 'ij' grid in Fortran order; exact (Float64)
    np.testing.assert_array_equal(points, np.stack([a.ravel("F"), b.ravel("F"), loss.ravel("F")], axis=1))
    np.testing.assert_array_equal(data["test_accuracy"], accuracy.ravel("F"))
    np.testing.assert_allclose(data["log10_train_loss"], np.log10(loss.ravel("F")), rtol=1e-15)
    assert (data["done"] == 1).all() and {"train_loss", "test_loss", "train_accuracy"} <= set(data)
    assert extent == f"0 {len(alpha) - 1} 0 {len(beta) - 1} 0 0"
    _, log_points, _ = read_vts(write_vtk(scan, tmp_path / "log", log_z=True)[0])
    np.testing.assert_allclose(log_points[:, 2], np.log10(loss.ravel("F")), rtol=1e-15)


def test_bad_export_requests_are_one_line_errors(scan, tmp_path, capsys):
    with pytest.raises(LandscapeError, match="unknown jpg"):
        parse_formats("pdf,jpg")
    assert parse_formats(" PNG, .svg,png") == ("png", "svg")
    with pytest.raises(LandscapeError, match="no figure 'nope'"):
        export_results(scan, tmp_path, keys=["nope"])
    from landscape.views import export_figures
    with pytest.raises(LandscapeError, match="--preset 'poster'"):
        export_figures({"x": go.Figure()}, tmp_path / "new", ExportOptions(preset="poster"))
    assert not (tmp_path / "new").exists()
    assert main(["view", str(scan), "--formats", "gif"]) == 2
    err = capsys.readouterr().err
    assert "unknown gif" in err and err.count("\n") == 1
    out = tmp_path / "never.html"
    assert main(["view", str(scan), "-o", str(out), "--vtk", str(scan)]) == 2  # a file, not a folder
    assert "--vtk" in capsys.readouterr().err and not out.exists()
