"""The report's content, escaping, and what it does with damaged, old or foreign files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from landscape import LandscapeError
from landscape.cli import main
from landscape.sharpness.basins import basin_statistics
from landscape.views import figures, load_report, panels, tables, write_report
from landscape.views.text import plot_safe_figure
from tests.conftest import BOLD, IMG, SCRIPT
from tests.test_views_samples import copy_without

# the views tests share one worker (with --dist loadgroup), which makes the real scan once
pytestmark = pytest.mark.xdist_group("scan")

EXPECTED_FIGURES = {
    "surfaces/2d/contour", "surfaces/2d/heatmap", "surfaces/2d/surface3d", "basins/2d/area", "basins/2d/persistence",
    "curves/1d", "curves/interpolation", "curvature/spectrum", "curvature/density", "noise/spectrum", "noise/overlap",
    "sharpness/bars", "sharpness/rays",
}


def test_every_group_gets_its_panel(scan):
    report = load_report(scan)
    assert set(report.figures) == EXPECTED_FIGURES
    assert report.skipped == [] and report.notes == []
    settings = tables(scan)["settings"]
    with h5py.File(scan) as f:
        root_attrs = set(f.attrs)
    assert {row[0] for row in settings.rows} == root_attrs  # every root attribute, none invented


def test_surface_figures_show_the_stored_grid_with_the_checkpoint(scan):
    figs = figures(scan)
    with h5py.File(scan) as f:
        loss = f["surfaces/2d/train/loss"][()]
        alpha = f["surfaces/2d/alpha"][()]
    contour = figs["surfaces/2d/contour"]
    np.testing.assert_array_equal(np.asarray(contour.data[0].z), loss.T)  # exact: same numbers, 'ij' → rows=β
    np.testing.assert_array_equal(contour.data[0].x, alpha)
    assert contour.data[1].text == ("θ*",) and contour.data[1].x == (0.0,)
    labels = [b.label for b in contour.layout.updatemenus[0].buttons]
    assert labels[:2] == ["train loss", "train loss (log10)"] and "test accuracy" in labels
    log_button = contour.layout.updatemenus[0].buttons[1]
    np.testing.assert_allclose(np.asarray(log_button.args[0]["z"][0]), np.log10(loss.T), rtol=1e-12)
    stem, marker = figs["surfaces/2d/surface3d"].data[1:3]
    assert stem.z[0] == loss[5, 5] and marker.z[0] == stem.z[1] > loss[5, 5]  # θ* above the surface at (0, 0)


def test_basin_figures_show_the_stored_grid_s_basins(scan):
    """The basin panel draws basin_statistics of the stored train-loss grid (exact: the same
    numbers), from L(θ*) up to the largest loss."""
    figs = figures(scan)
    with h5py.File(scan) as f:
        loss, alpha, beta = (f[f"surfaces/2d/{k}"][()] for k in ("train/loss", "alpha", "beta"))
    stats = basin_statistics(loss, alpha, beta, np.linspace(loss[5, 5], loss.max(), 100))
    area = figs["basins/2d/area"].data[0]
    np.testing.assert_array_equal(area.x, stats.thresholds - loss[5, 5])
    np.testing.assert_array_equal(area.y, stats.area)
    assert area.y[0] > 0 and area.y[-1] == pytest.approx(loss.size * 0.2**2)  # every cell of the 11×11 grid at the top
    diagram = figs["basins/2d/persistence"]
    points = {(x, y) for trace in diagram.data[1:] if trace.name != "θ*'s basin" for x, y in zip(trace.x, trace.y)}
    top = max(y for _, y in points)
    assert points == {(b, d if np.isfinite(d) else top) for b, d in zip(stats.birth, stats.death)}
    star = next(t for t in diagram.data if t.name == "θ*'s basin")
    assert star.x == (stats.birth[stats.origin_basin],)


def test_1d_panel_draws_loss_and_accuracy_on_twin_axes(scan):
    figs = figures(scan)
    fig = figs["curves/interpolation"]
    with h5py.File(scan) as f:
        expected = {f"{split} {metric}": f[f"surfaces/interpolation/{split}/{metric}"][()]
                    for split in ("train", "test") for metric in ("loss", "accuracy")}
    assert {t.name for t in fig.data} == set(expected)
    for trace in fig.data:
        np.testing.assert_array_equal(trace.y, expected[trace.name])
        assert trace.yaxis == ("y2" if "accuracy" in trace.name else "y")
        assert trace.line.dash == ("solid" if trace.name.startswith("train") else "dash")
    assert fig.layout.yaxis2.overlaying == "y" and fig.layout.yaxis2.side == "right"
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0  # below the plot, not on it
    assert {a.text for a in fig.layout.annotations} == {"init", "trained"}
    assert {a.text for a in figs["curves/1d"].layout.annotations} == {"θ*"}


def test_2d_hover_shows_every_metric_of_the_split_at_the_point(scan):
    contour = figures(scan)["surfaces/2d/contour"].data[0]
    with h5py.File(scan) as f:
        loss, accuracy = f["surfaces/2d/train/loss"][()], f["surfaces/2d/train/accuracy"][()]
    # Plotly's customdata[row = β index][col = α index] holds (loss, accuracy)[α index, β index]
    assert list(contour.customdata[2][7]) == [loss[7, 2], accuracy[7, 2]]
    assert "α = " in contour.hovertemplate and "train accuracy = %{customdata[1]" in contour.hovertemplate


def test_spectrum_stems_start_at_zero_and_carry_the_trace(scan):
    fig = figures(scan)["curvature/spectrum"]
    with h5py.File(scan) as f:
        top = f["curvature/hessian_top/eigenvalues"][()]
        bottom = f["curvature/hessian_bottom/eigenvalues"][()]
        estimate, stderr = f["curvature/trace"].attrs["estimate"], f["curvature/trace"].attrs["stderr"]
    low, high = fig.layout.yaxis.range
    assert low <= min(0.0, bottom.min()) and high >= top.max()
    stems = [t for t in fig.data if t.mode == "lines"]
    assert len(stems) == 2 and all(y == 0.0 for t in stems for y in t.y[0::3])
    assert [a.text for a in fig.layout.annotations] == [f"tr(H) = {estimate:.4g} ± {stderr:.3g} (s.e.) · "
                                                         "hutchinson, 30 probes"]


def test_noise_table_names_each_statistic(scan):
    rows = {row[2]: row for row in tables(scan)["noise/scalars"].rows}
    assert rows["trace_sigma"][0] == "tr Σ: total gradient variance"
    assert rows["b_simple"][0].startswith("B_simple = tr Σ / ‖ḡ‖²")


def test_spectrum_marks_exactly_the_unconverged_values(scan):
    fig = figures(scan)["curvature/spectrum"]
    with h5py.File(scan) as f:
        converged = f["curvature/hessian_top/converged"][()]
        values = f["curvature/hessian_top/eigenvalues"][()]
        residuals = f["curvature/hessian_top/residuals"][()]
    flagged = [t for t in fig.data if (t.name or "").endswith("(not converged)")]
    assert not converged.all() and len(flagged) == 1
    np.testing.assert_array_equal(flagged[0].y, values[~converged])
    np.testing.assert_array_equal(flagged[0].error_y.array, residuals[~converged])


def test_density_panel_shows_a_normalised_smoothed_mixture(scan):
    fig = figures(scan)["curvature/density"]
    visible = [t for t in fig.data if t.visible]
    assert len(visible) == 1 and fig.layout.yaxis.type == "log" and len(fig.layout.sliders[0].steps) == len(fig.data)
    x, y = np.asarray(visible[0].x), np.asarray(visible[0].y)
    # Lanczos weights of each probe sum to 1, so the smoothed density integrates to 1 (the
    # plotted floor of max·1e-7 adds < 1e-5 over this range).
    assert np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) == pytest.approx(1.0, abs=1e-4)


def test_html_is_standalone_with_plotly_inlined_once(scan, tmp_path):
    out = write_report(scan, tmp_path / "r.html", plotlyjs="inline")
    assert not (tmp_path / "plotly.min.js").exists()
    html = out.read_text()
    assert html.count(get_plotlyjs()[:200]) == 1
    page = html.replace(get_plotlyjs(), "")  # the bundle itself mentions its CDN in strings
    assert "<script src" not in page.replace(" ", "") and "cdn.plot.ly" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page
    assert html.count('class="figure-data"') == len(EXPECTED_FIGURES)


def test_reports_of_a_folder_share_one_plotly_js_beside_them(scan, tmp_path):
    first = write_report(scan, tmp_path / "a.html")
    js = tmp_path / "plotly.min.js"
    assert js.read_text() == get_plotlyjs()  # the bundle of the installed plotly package
    stamp = js.stat().st_mtime_ns
    second = write_report(scan, tmp_path / "b.html")
    assert js.stat().st_mtime_ns == stamp  # the same bytes are not written again
    for html in (first.read_text(), second.read_text()):
        assert '<script src="plotly.min.js" charset="utf-8"></script>' in html
        assert get_plotlyjs()[:200] not in html and "https://" not in html and len(html) < 1_000_000
        assert '<nav class="toc">' in html and 'href="#panel-' in html
    cdn = write_report(scan, tmp_path / "c.html", plotlyjs="cdn").read_text()
    assert cdn.count("https://cdn.plot.ly/plotly-") == 1
    with pytest.raises(LandscapeError, match="--plotlyjs 'cloud'"):
        write_report(scan, tmp_path / "d.html", plotlyjs="cloud")
    assert not (tmp_path / "d.html").exists()


def test_default_report_lands_next_to_the_results(scan, tmp_path):
    local = tmp_path / "copy.h5"
    local.write_bytes(scan.read_bytes())
    assert main(["view", str(local), "--plotlyjs", "inline"]) == 0
    assert (tmp_path / "copy.html").stat().st_size > 1_000_000
    assert main(["view", str(local)]) == 0  # directory: the report and one plotly.min.js
    assert (tmp_path / "copy.html").stat().st_size < 1_000_000 and (tmp_path / "plotly.min.js").is_file()


def test_every_text_from_the_file_is_escaped(hostile, tmp_path):
    html = write_report(hostile, tmp_path / "h.html").read_text()
    for raw in (SCRIPT, BOLD, IMG):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # settings table and header
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    figs = figures(hostile)
    contour = figs[f"surfaces/{BOLD}/contour"]
    assert contour.layout.title.subtitle.text.startswith("surfaces/&lt;b onclick=alert(3)&gt;bold: ")  # shown raw
    curve_names = {t.name for t in figs["curves/interpolation"].data}
    assert "&lt;img src=x onerror=alert(2)&gt; loss" in curve_names
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in {a.text for a in figs["curves/interpolation"].layout.annotations}
    assert "&lt;b onclick=alert(3)&gt;bold-group" in html  # the unknown group's raw table


def test_plot_safe_figure_escapes_titles_names_labels_and_restyle_text():
    fig = go.Figure(go.Scatter(x=[1], y=[1], name="<i>n</i>", text=["<b>t</b>"]))
    fig.update_layout(title="<b>T</b>", xaxis_title="a<b", annotations=[dict(text="<br>x", x=0, y=0)],
                      updatemenus=[dict(buttons=[dict(label="<u>l</u>", method="restyle",
                                                      args=[{"colorbar.title.text": "<s>c</s>", "z": [[1]]}])])])
    safe = plot_safe_figure(fig).to_plotly_json()
    assert safe["data"][0]["name"] == "&lt;i&gt;n&lt;/i&gt;"
    assert list(safe["data"][0]["text"]) == ["&lt;b&gt;t&lt;/b&gt;"]
    layout = safe["layout"]
    assert layout["title"]["text"] == "&lt;b&gt;T&lt;/b&gt;" and layout["xaxis"]["title"]["text"] == "a&lt;b"
    assert layout["annotations"][0]["text"] == "&lt;br&gt;x"
    button = layout["updatemenus"][0]["buttons"][0]
    assert button["label"] == "&lt;u&gt;l&lt;/u&gt;"
    assert button["args"][0]["colorbar.title.text"] == "&lt;s&gt;c&lt;/s&gt;"
    assert button["method"] == "restyle"  # non-text values untouched


def test_missing_parts_and_old_schema_render_what_they_can(scan, tmp_path):
    path = copy_without(scan, tmp_path / "old.h5",
                        ["surfaces/2d/train/loss", "curvature/density/weights", "noise"],
                        {"schema_version": 0, "complete": False})
    report = load_report(path)
    assert any("schema version 0" in n for n in report.notes)
    assert any("did not finish" in n for n in report.notes)
    skipped = {s.what: s.reason for s in report.skipped}
    assert "dataset 'loss' is missing" in skipped["surfaces/2d/train/loss"]
    assert "dataset 'weights' is missing" in skipped["curvature/density"]
    assert "Gradient noise" not in [r.panel.name for r in report.results if r.applies]
    assert set(report.figures) == EXPECTED_FIGURES - {"curvature/density", "noise/spectrum", "noise/overlap"}
    first = report.figures["surfaces/2d/contour"].layout.updatemenus[0].buttons[0].label
    assert first == "train accuracy"  # the loss grid is gone: the other grids still show
    html = write_report(path, tmp_path / "old.html").read_text()
    assert "skipped surfaces/2d/train/loss: dataset &#x27;loss&#x27; is missing" in html
    assert "Gradient noise" not in html  # only panels for what the file holds: no list of what it lacks


def test_malformed_groups_and_failing_panels_are_listed_not_fatal(scan, tmp_path, monkeypatch):
    path = copy_without(scan, tmp_path / "bad.h5", ["curvature/hessian_top/eigenvalues", "surfaces/1d/alpha"])
    with h5py.File(path, "a") as f:
        f["curvature/hessian_top/eigenvalues"] = np.array([b"not", b"numbers"])
        f["surfaces/1d/alpha"] = np.zeros(3)  # wrong length for the stored grids

    def broken(h5):
        raise RuntimeError("boom")
    monkeypatch.setitem(panels._REGISTRY, "Broken", panels.Panel(1, "Broken", broken))
    report = load_report(path)
    skipped = {s.what: s.reason for s in report.skipped}
    assert "expected numbers" in skipped["curvature/hessian_top"]
    assert "train/loss: shape (21,) does not match the axes (3,)" in skipped["surfaces/1d"]
    assert skipped["Broken"].startswith("RuntimeError: boom")
    assert "curvature/spectrum" in report.figures  # hessian_bottom still drawn
    assert "surfaces/2d/contour" in report.figures and "curves/interpolation" in report.figures


def test_an_xy_grid_from_an_old_writer_is_transposed(scan, tmp_path):
    path = copy_without(scan, tmp_path / "xy.h5", [])
    with h5py.File(path, "a") as f:
        group = f["surfaces/2d"]
        ij = {k: group[k][()] for k in ("train/loss", "train/accuracy", "test/loss", "test/accuracy")}
        for key, grid in ij.items():
            del group[key]
            group[key] = grid.T
        group.attrs["indexing"] = "xy"
        del group.attrs["axes"]  # old files: axes found by name
    fig = figures(path)["surfaces/2d/contour"]
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), ij["train/loss"].T)


def test_unknown_groups_are_shown_raw(scan, tmp_path):
    path = copy_without(scan, tmp_path / "extra.h5", [])
    with h5py.File(path, "a") as f:
        g = f.create_group("mystery/keskar")
        g.attrs["epsilon"] = 1e-3
        g["value"] = 4.25
        f.create_group("curvature/new_estimator").attrs["method"] = "magic"
    found = tables(path)
    assert ["keskar · epsilon", "0.001"] in found["other/mystery"].rows
    assert ["keskar/value", "4.25"] in found["other/mystery"].rows
    assert ["method", "magic"] in found["other/curvature/new_estimator"].rows


def test_a_new_panel_is_one_registered_function(scan, monkeypatch):
    monkeypatch.setattr(panels, "_REGISTRY", dict(panels._REGISTRY))

    @panels.panel(order=45, name="Parameter count")
    def count_panel(h5):
        return [panels.TableItem("count", "Count", ["n"], [[str(h5.attrs["num_parameters"])]])]
    assert tables(scan)["count"].rows == [["682"]]
    assert [p.name for p in panels.registered_panels()].index("Parameter count") == 7


@pytest.mark.parametrize("content", [b"plain text, not HDF5\n", b""])
def test_a_non_hdf5_file_is_one_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "notes.h5"
    bad.write_bytes(content)
    with pytest.raises(LandscapeError, match="not an HDF5 file"):
        write_report(bad)
    assert main(["view", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an HDF5 file" in err[0]


def test_foreign_hdf5_and_missing_file_are_clear_errors(tmp_path):
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(LandscapeError, match="not a landscape results file"):
        figures(foreign)
    with pytest.raises(LandscapeError, match="not found"):
        figures(tmp_path / "missing.h5")


def test_scan_writes_the_report_beside_the_results(tmp_path, monkeypatch):
    """End to end through the CLI on the bundled checkpoint (a 5×5 grid keeps it quick)."""
    checkpoint = Path(__file__).resolve().parents[1] / "data" / "digits_mlp.pt"
    monkeypatch.chdir(tmp_path)
    assert main(["scan", str(checkpoint), "--points", "5", "--quiet", "-o", "mlp.h5"]) == 0
    html = (tmp_path / "mlp.html").read_text()
    assert 'data-key="surfaces/2d/contour"' in html and 'data-key="curves/1d"' in html
