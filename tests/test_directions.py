"""Directions: filter/layer normalization, 1-D handling, seeding by name, orthogonality,
Gaussianity, interpolation and the plane through three checkpoints.

Tolerances: norms are compared in float64 where the only error is rounding in a few
hundred-term sums (rtol 1e-12). The distribution checks use 10^5 draws: the standard error of
the sample kurtosis is sqrt(24/n) ≈ 0.015, so |kurtosis − 3| < 0.1 is a > 6σ margin, while a
uniform distribution (kurtosis 1.8) is 80σ away.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.errors import LandscapeError
from landscape.surfaces import points_at
from landscape.surfaces.directions import (
    dot,
    gaussian_direction,
    interpolation_direction,
    normalize,
    orthogonalize,
    plane_directions,
    random_directions,
)
from tests import models


def cnn_params() -> dict[str, torch.Tensor]:
    model = models.cnn_bn().double()
    # BN affine parameters away from their (1, 0) init so "zero" and "scaled" are distinguishable
    with torch.no_grad():
        model.bn1.weight.uniform_(0.5, 2.0)
        model.bn1.bias.uniform_(-1.0, 1.0)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_filter_normalization_matches_filter_norms_of_conv_and_linear_weights():
    params = cnn_params()
    (direction,) = [d.vectors for d in random_directions(params, 1, seed=3, normalization="filter")]
    checked = 0
    for name, w in params.items():
        d = direction[name]
        assert d.shape == w.shape and d.dtype == w.dtype
        if w.ndim >= 2:  # conv weights [out, in, k, k] and linear weights [out, in]: one filter per row
            d_norms = d.reshape(d.shape[0], -1).norm(dim=1)
            w_norms = w.reshape(w.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(d_norms, w_norms, rtol=1e-12, atol=0)
            checked += 1
    assert checked == 3  # conv1, conv2, head


def test_layer_normalization_matches_tensor_norms():
    params = cnn_params()
    direction = random_directions(params, 1, seed=3, normalization="layer")[0].vectors
    for name, w in params.items():
        if w.ndim >= 2:
            torch.testing.assert_close(direction[name].norm(), w.norm(), rtol=1e-12, atol=0)
            # per-tensor, not per-filter: filter norms are not all equal to the weight's
            rows = direction[name].reshape(w.shape[0], -1).norm(dim=1)
            assert not torch.allclose(rows, w.reshape(w.shape[0], -1).norm(dim=1), rtol=1e-3)


@pytest.mark.parametrize("normalization", ["filter", "layer", "none"])
def test_one_dimensional_tensors_are_exactly_zero_by_default(normalization):
    params = cnn_params()
    direction = random_directions(params, 2, seed=1, normalization=normalization)
    one_d = [n for n, p in params.items() if p.ndim == 1]
    assert {"conv1.bias", "bn1.weight", "bn1.bias", "bn2.weight", "head.bias"} <= set(one_d)
    for d in direction:
        for name in one_d:
            assert torch.count_nonzero(d.vectors[name]) == 0, name
        for name in set(params) - set(one_d):
            assert torch.count_nonzero(d.vectors[name]) == d.vectors[name].numel()


def test_include_1d_scales_one_dimensional_tensors_and_never_copies_the_weight():
    params = cnn_params()
    raw = gaussian_direction(params, seed=5, index=0)
    direction = random_directions(params, 1, seed=5, include_1d=True)[0].vectors
    for name, w in params.items():
        if w.ndim != 1:
            continue
        d = direction[name]
        torch.testing.assert_close(d.norm(), w.norm(), rtol=1e-12, atol=0)
        if w.norm() == 0:  # bn2.bias keeps its zero init: a zero-norm tensor gets a zero direction
            assert name == "bn2.bias" and torch.count_nonzero(d) == 0
            continue
        # a positive multiple of the Gaussian draw, not the weight itself (a known peer bug)
        torch.testing.assert_close(d / d.norm(), raw[name] / raw[name].norm(), rtol=1e-12, atol=1e-15)
        cosine = float(dot({name: d}, {name: w}) / (d.norm() * w.norm()))
        assert abs(cosine) < 0.99, name


def test_directions_are_reproducible_from_the_seed():
    params = cnn_params()
    a = random_directions(params, 2, seed=7)
    b = random_directions(params, 2, seed=7)
    c = random_directions(params, 2, seed=8)
    for x, y, z in zip(a, b, c):
        for name in params:
            assert torch.equal(x.vectors[name], y.vectors[name])
            if params[name].ndim > 1:
                assert not torch.allclose(x.vectors[name], z.vectors[name])
    assert not torch.allclose(a[0].vectors["conv1.weight"], a[1].vectors["conv1.weight"])
    assert a[0].attrs["seed"] == 7 and a[0].attrs["distribution"] == "gaussian"


def test_directions_are_keyed_by_parameter_name_not_position():
    params = cnn_params()
    base = random_directions(params, 2, seed=11)
    # a parameter added in front, and the order reversed: every existing tensor is unchanged
    grown = {"a_new_layer.weight": torch.ones(4, 4, dtype=torch.float64), **params}
    reordered = dict(reversed(list(grown.items())))
    other = random_directions(reordered, 2, seed=11)
    for before, after in zip(base, other):
        for name in params:
            assert torch.equal(before.vectors[name], after.vectors[name]), name


def test_orthogonalized_second_direction_is_orthogonal_and_keeps_its_norm():
    params = cnn_params()
    plain = random_directions(params, 2, seed=2)
    ortho = random_directions(params, 2, seed=2, orthogonal=True)
    d0, d1 = ortho[0].vectors, ortho[1].vectors
    norm = lambda d: float(dot(d, d).sqrt())  # noqa: E731
    assert abs(float(dot(d0, d1))) <= 1e-12 * norm(d0) * norm(d1)
    assert norm(d1) == pytest.approx(norm(plain[1].vectors), rel=1e-12)
    # the first direction is untouched; unorthogonalized directions are not orthogonal by accident
    assert all(torch.equal(d0[n], plain[0].vectors[n]) for n in params)
    cosine = float(dot(plain[0].vectors, plain[1].vectors)) / (norm(plain[0].vectors) * norm(plain[1].vectors))
    assert abs(cosine) > 1e-6
    assert ortho[1].attrs["orthogonalized"] is True
    with pytest.raises(LandscapeError, match="parallel"):
        orthogonalize(d0, d0)


def _kurtosis(x: np.ndarray) -> float:
    x = x - x.mean()
    return float((x ** 4).mean() / (x ** 2).mean() ** 2)


def test_directions_are_gaussian_not_uniform():
    params = {"big.weight": torch.randn(50, 2000, dtype=torch.float64)}
    raw = gaussian_direction(params, seed=0)["big.weight"].numpy().ravel()
    assert abs(raw.mean()) < 0.02 and abs(raw.var() - 1) < 0.02
    assert abs((raw < 0).mean() - 0.5) < 0.01  # symmetric around zero, not U(0, 1)
    assert abs(_kurtosis(raw) - 3.0) < 0.1  # U(-a, a) would give 1.8
    # the normalized direction is a per-row rescaling of the same Gaussian draws
    d = random_directions(params, 1, seed=0)[0].vectors["big.weight"]
    rows = (d / d.norm(dim=1, keepdim=True)).numpy().ravel() * np.sqrt(2000)
    assert abs(_kurtosis(rows) - 3.0) < 0.1
    assert abs((rows < 0).mean() - 0.5) < 0.01


def test_normalization_none_is_the_raw_gaussian_draw_and_bad_names_are_refused():
    params = cnn_params()
    raw = gaussian_direction(params, seed=4, index=1)
    d = random_directions(params, 2, seed=4, normalization="none", include_1d=True)[1].vectors
    assert all(torch.equal(d[n], raw[n]) for n in params)
    with pytest.raises(LandscapeError, match="normalization"):
        normalize(raw, params, "batch")  # type: ignore[arg-type]


def _three_checkpoints() -> list[dict[str, torch.Tensor]]:
    out = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        model = models.MLP().double()
        out.append({n: p.detach().clone() for n, p in model.named_parameters()})
    return out


def test_interpolation_direction_runs_from_a_to_b_including_biases():
    a, b, _ = _three_checkpoints()
    direction = interpolation_direction(a, b)
    assert direction.attrs["normalization"] == "none"
    points = points_at(a, [direction.vectors], np.array([[0.0], [1.0], [0.5]]))
    for name in a:
        assert torch.equal(points[name][0], a[name])
        torch.testing.assert_close(points[name][1], b[name], rtol=0, atol=1e-15)
        torch.testing.assert_close(points[name][2], (a[name] + b[name]) / 2, rtol=0, atol=1e-15)
    with pytest.raises(LandscapeError, match="names differ"):
        interpolation_direction(a, {**b, "extra": torch.zeros(2)})


def test_plane_through_three_checkpoints_reproduces_each_checkpoint():
    a, b, c = _three_checkpoints()
    (d0, d1), markers = plane_directions(a, b, c)
    c_x = float(dot({n: c[n] - a[n] for n in a}, d0.vectors) / dot(d0.vectors, d0.vectors))
    assert markers[0] == (0.0, 0.0) and markers[1] == (1.0, 0.0)
    assert markers[2][1] == 1.0 and markers[2][0] == pytest.approx(c_x, rel=1e-14)
    assert abs(float(dot(d0.vectors, d1.vectors))) < 1e-12 * float(dot(d0.vectors, d0.vectors))
    points = points_at(a, [d0.vectors, d1.vectors], np.array(markers))
    for k, theta in enumerate((a, b, c)):
        for name in a:
            # float64 rounding of θ + c·d over O(1) values: 1e-14 absolute
            torch.testing.assert_close(points[name][k], theta[name], rtol=0, atol=1e-14)


def test_plane_refuses_collinear_checkpoints():
    a, b, _ = _three_checkpoints()
    c = {n: a[n] + 2.0 * (b[n] - a[n]) for n in a}
    with pytest.raises(LandscapeError, match="collinear"):
        plane_directions(a, b, c)
