"""The paper-style figure builders (no browser): equal axes, the style's levels and limits,
the log view, the 3-D clip and camera, θ* raised into view, and the options' one-line errors.
Geometry in a real browser is tested in test_views_browser.py."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.views import grid_plots, plots
from landscape.views.style import SurfaceStyle

X = Y = np.linspace(-1, 1, 21)
BOWL = np.add.outer(X ** 2, 2 * Y ** 2) + 0.1  # 'ij', minimum 0.1 at the origin
ACCURACY = 1.0 - BOWL / BOWL.max()
AXES = grid_plots.GridAxes(X, Y, "alpha (d0)", "beta (d1)", [plots.Marker("θ*", (0.0, 0.0))])
HOVER = (("train loss", BOWL), ("train accuracy", ACCURACY))
VARIANTS = [grid_plots.GridVariant("train loss", BOWL, "train loss", "loss", False, HOVER),
            grid_plots.GridVariant("train loss (log10)", np.log10(BOWL), "log10 train loss", "loss", True, HOVER),
            grid_plots.GridVariant("train accuracy", ACCURACY, "train accuracy", "accuracy", False, HOVER)]


def test_contour_axes_are_equal_for_a_square_plane_and_free_for_a_strip():
    fig = grid_plots.contour_figure("t", AXES, VARIANTS)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert fig.layout.xaxis.constrain == "domain"  # the plot area shrinks, the ranges stay the grid's
    strip = grid_plots.GridAxes(X, Y / 10, "a", "b")  # spans 2 and 0.2: a 10:1 strip would be unreadable
    assert grid_plots.heatmap_figure("t", strip, [VARIANTS[0]]).layout.yaxis.scaleanchor is None


def test_style_sets_levels_and_colour_range_of_loss_but_not_accuracy():
    style = SurfaceStyle(levels=8, vmin=0.2, vmax=2.0)
    fig = grid_plots.contour_figure("t", AXES, VARIANTS, style)
    trace = fig.data[0]
    assert (trace.zmin, trace.zmax) == (0.2, 2.0)
    assert trace.contours.start == 0.2 and trace.contours.end == 2.0
    assert trace.contours.size == pytest.approx(1.8 / 8, rel=1e-12)
    buttons = fig.layout.updatemenus[0].buttons
    log = buttons[1].args[0]
    assert log["zmin"] == [pytest.approx(np.log10(0.2), rel=1e-12)] and log["zmax"] == [pytest.approx(np.log10(2.0))]
    accuracy = buttons[2].args[0]  # the limits are losses: accuracy keeps its own range
    assert accuracy["zmin"] == [ACCURACY.min()] and accuracy["zmax"] == [ACCURACY.max()]


def test_log_style_shows_the_log_view_first_with_its_title():
    fig = grid_plots.heatmap_figure("t", AXES, VARIANTS, SurfaceStyle(log=True))
    np.testing.assert_array_equal(fig.data[0].z, np.log10(BOWL).T)
    assert fig.layout.updatemenus[0].active == 1
    assert fig.layout.title.text == "t: train loss (log10)"
    surface = grid_plots.surface3d_figure("t", AXES, VARIANTS, SurfaceStyle(log=True))
    assert surface.layout.scene.zaxis.title.text == "log10 train loss"


def test_3d_surface_is_clipped_at_zmax_and_theta_star_stands_above_it():
    fig = grid_plots.surface3d_figure("t", AXES, VARIANTS, SurfaceStyle(zmax=1.0))
    z = np.asarray(fig.data[0].z)
    np.testing.assert_array_equal(z, np.minimum(BOWL, 1.0).T)
    assert fig.data[0].contours.z.project.z is True and fig.data[0].lighting.specular > 0
    stem, marker = fig.data[1], fig.data[2]
    assert stem.z[0] == BOWL[10, 10] and marker.z[0] == stem.z[1] > BOWL[10, 10]
    low, high = fig.layout.scene.zaxis.range
    assert low < BOWL.min() and marker.z[0] < high  # the floor below the surface, θ* inside the box


def test_camera_looks_from_the_lowest_corner():
    tilted = BOWL + 0.5 * np.add.outer(X, -Y)  # lowest corner at x = −1, y = +1
    eye = grid_plots.camera_eye(AXES, tilted)
    assert eye["x"] < 0 < eye["y"] and eye["z"] > 0
    assert np.hypot(np.hypot(eye["x"], eye["y"]), eye["z"]) == pytest.approx(grid_plots.CAMERA_DISTANCE)


def test_lift_clears_a_wall_between_theta_star_and_the_camera():
    """A flat floor with a wall of height 5 halfway to the camera: the line from the returned
    height to the camera passes over every grid height (checked 10 000 times along it), and
    a height 1 % of the wall lower does not."""
    surface = np.zeros_like(BOWL)
    eye = grid_plots.camera_eye(AXES, surface + np.add.outer(X, Y) * 1e-9)  # from the (−1, −1) corner
    wall = (np.add.outer(X, Y) > -0.8) & (np.add.outer(X, Y) < -0.6)
    surface[wall] = 5.0
    z_range = (-1.0, 5.0)
    assert grid_plots.lift_to_view(AXES, np.zeros_like(BOWL), (0.0, 0.0), 0.1, z_range, eye) == 0.1
    height = grid_plots.lift_to_view(AXES, surface, (0.0, 0.0), 0.1, z_range, eye)
    assert height > 0.1

    spans = [2.0, 2.0, z_range[1] - z_range[0]]
    mids = [0.0, 0.0, sum(z_range) / 2]
    camera = [mids[k] + eye[a] * spans[k] / grid_plots.ASPECT[a] for k, a in enumerate("xyz")]

    def clears(z0: float) -> bool:
        for t in np.linspace(0, 1, 10_000, endpoint=False)[1:]:
            x, y = t * camera[0], t * camera[1]
            if not (-1 <= x <= 1 and -1 <= y <= 1):
                return True
            if z0 + t * (camera[2] - z0) < grid_plots.nearest_value(AXES, surface, (x, y)) - 1e-9:
                return False
        return True
    assert clears(height) and not clears(height - 0.05)


@pytest.mark.parametrize("style, message", [
    (dict(vmin=2.0, vmax=1.0), "--vmin 2.0 is not below --vmax 1.0"),
    (dict(vmin=0.0, log=True), "--vmin 0.0 with --log: log10 needs a positive loss"),
    (dict(zmax=float("nan")), "--zmax nan: give a finite loss value"),
    (dict(levels=1), "--levels 1: give a whole number of contour levels from 2 to 500"),
    (dict(vmin=1.0, zmax=0.5), "--zmax 0.5 is not above --vmin 1.0"),
])
def test_style_refuses_options_that_cannot_draw(style, message):
    with pytest.raises(LandscapeError, match=message.replace("(", r"\(")):
        SurfaceStyle(**style)


def test_view_refuses_bad_style_before_writing(tmp_path, capsys):
    results = tmp_path / "missing.h5"  # the style is checked before the file is even opened
    assert main(["view", str(results), "--vmin", "3", "--vmax", "1", "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--vmin 3.0 is not below --vmax 1.0" in err[0]
    assert list(tmp_path.iterdir()) == []
    assert main(["view", str(results), "--levels", "1"]) == 2
    assert "--levels" in capsys.readouterr().err
