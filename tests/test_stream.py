"""Streamed data: a split over the memory budget is read again on every pass instead of being
cached, and every analysis gives the numbers it gives on the cached split.

Tolerances: float64 throughout, same batches in the same order; streamed and cached passes
differ only where the loop strategy merges batches differently (summation order, ~1e-16
relative per addition), so values are compared at rtol 1e-10 (atol 1e-12 for values near 0).
Curvature: the HVP mode is picked by timing on each problem, so two runs may take different
(exact) AD paths: 1e-9 for traces; eigenvalues at 1e-8, Lanczos's relative tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from landscape import api
from landscape.cli import main
from landscape.curvature.operators import HessianOperator
from landscape.errors import LandscapeError
from landscape.problem import Problem
from landscape.store import open_results
from tests import models

RTOL, ATOL = 1e-10, 1e-12


def image_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(60, 1, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return x, models.teacher_labels(x)


def loader() -> DataLoader:
    """60 images in batches of 8 (the last of 4), not shuffled: a re-iterable source."""
    return DataLoader(TensorDataset(*image_tensors()), batch_size=8)


def bn_model() -> torch.nn.Module:
    x, y = image_tensors()
    return models.trained_bn_state(models.cnn_bn().double(), [(x, y)])


def make(data_mode: str = "auto", budget: int | None = None, data: object = None) -> Problem:
    problem = Problem.create(bn_model(), F.cross_entropy, data if data is not None else loader(),
                             bn_policy="recompute", bn_batches=2, data_mode=data_mode,  # type: ignore[arg-type]
                             memory_budget_bytes=budget)
    problem.memory_budget_bytes = 1 << 30  # the same chunks and merged batches as the cached problem
    problem.evaluator.merged.clear()
    return problem


DATA_BYTES = 60 * 36 * 8 + 60 * 8  # float64 images and int64 labels


@pytest.fixture(scope="module")
def cached() -> Problem:
    return make("cache")


def test_streamed_and_cached_splits_give_the_same_numbers(cached):
    streamed = make("stream")
    assert streamed.batches().mode == "stream" and cached.batches().mode == "cache"
    assert streamed.batches().sizes == cached.batches().sizes == (8,) * 7 + (4,)

    for a, b in zip(streamed.batches(), cached.batches()):  # same batches, same order
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.target, b.target)

    surfaces = [api.random_plane(p, points=3).result.values["train"]["loss"] for p in (streamed, cached)]
    np.testing.assert_allclose(*surfaces, rtol=RTOL, atol=ATOL)  # BatchNorm recomputed on 2 streamed batches

    eigs = [api.hessian_eigs(p, k=1).result.eigenvalues for p in (streamed, cached)]
    np.testing.assert_allclose(*eigs, rtol=1e-8)  # Lanczos converged to 1e-8 relative on both
    traces = [api.hessian_trace(p, probes=6).result.estimate for p in (streamed, cached)]
    assert traces[0] == pytest.approx(traces[1], rel=1e-9)  # the HVP mode is picked by timing: rounding

    noise = [api.gradient_noise(p, examples=20, batch_size=4, k=2, hessian=False).result.to_group()
             for p in (streamed, cached)]  # the Hessian's part is the curvature engine, compared above
    for field in ("trace_sigma", "grad_norm_sq", "b_simple", "tail_index"):
        assert noise[0][0][field] == pytest.approx(noise[1][0][field], rel=RTOL), field
    np.testing.assert_allclose(noise[0][1]["eigenvalues"], noise[1][1]["eigenvalues"], rtol=1e-8)

    measures = [api.sharpness_measures(p, "worst_l2", "m_sharpness", "average", steps=2, restarts=1, m=16,
                                       samples=4).result for p in (streamed, cached)]
    for name in ("worst_l2", "m_sharpness", "average"):
        assert measures[0][name].value == pytest.approx(measures[1][name].value, rel=1e-8, abs=ATOL), name
        assert measures[0][name].loss_evaluations == measures[1][name].loss_evaluations


def test_a_split_over_the_budget_is_streamed_with_the_same_numbers(cached):
    streamed = make("auto", budget=DATA_BYTES // 2)
    assert streamed.batches().mode == "stream"
    lines = [api.random_line(p, points=3).result.values["train"]["loss"] for p in (streamed, cached)]
    np.testing.assert_allclose(*lines, rtol=RTOL, atol=ATOL)
    worst = [api.sharpness_measures(p, "worst_l2", steps=2, restarts=1).result["worst_l2"].value
             for p in (streamed, cached)]
    assert worst[0] == pytest.approx(worst[1], rel=1e-8)


def test_a_streamed_split_is_a_sequence_with_its_sizes_known(cached):
    streamed, reference = make("stream").batches(), cached.batches()
    assert len(streamed) == 8 and streamed.num_examples == 60
    for index in (0, 3, -1):
        assert torch.equal(streamed[index].inputs, reference[index].inputs)
    assert [b.size for b in streamed[5:]] == [8, 8, 4] and [b.size for b in streamed.head(2)] == [8, 8]
    assert streamed.largest.size == 8 and streamed.first.size == 8


def test_the_budget_rule_is_fixed_and_the_mode_is_recorded(tmp_path):
    estimate = len(loader()) * (8 * 36 * 8 + 8 * 8)  # the first batch's bytes × batches: 4 too many examples
    assert make("auto", budget=estimate).batches().mode == "cache"
    assert make("auto", budget=estimate - 1).batches().mode == "stream"
    # a source without len: bytes counted as batches come
    assert make("auto", budget=DATA_BYTES, data=NoLen(loader())).batches().mode == "cache"
    assert make("auto", budget=DATA_BYTES - 1, data=NoLen(loader())).batches().mode == "stream"
    assert make("stream").describe()["data_mode_train"] == "stream"

    out = tmp_path / "h.h5"
    assert main(["hessian", "data/digits_mlp.pt", "--top", "1", "--max-examples", "200", "--device", "cpu",
                 "--data-mode", "stream", "-o", str(out), "--quiet", "--no-report"]) == 0
    with open_results(out) as h5:
        assert h5.attrs["data_mode_train"] == "stream" and h5.attrs["data_mode_test"] == "stream"


class NoLen:
    """A re-iterable without ``__len__``."""

    def __init__(self, source: DataLoader) -> None:
        self.source = source

    def __iter__(self):
        return iter(self.source)


def test_a_generator_is_cached_when_it_fits_and_refused_when_it_does_not():
    batches = list(loader())
    fits = make("stream", data=(b for b in batches))  # cannot be read twice: cached anyway
    assert fits.batches().mode == "cache" and fits.num_examples() == 60
    with pytest.raises(LandscapeError, match=r"one-shot iterator .* pass a re-iterable .*--max-examples"):
        make("auto", budget=DATA_BYTES // 2, data=(b for b in batches))


class Noisy(Dataset):
    """Random augmentation: every read of an example differs."""

    def __len__(self) -> int:
        return 60

    def __getitem__(self, index: int):
        x, y = image_tensors()
        return x[index] + 0.1 * torch.randn(x[index].shape, dtype=x.dtype), y[index]


@pytest.mark.parametrize("source", [
    lambda: DataLoader(TensorDataset(*image_tensors()), batch_size=8, shuffle=True),
    lambda: DataLoader(Noisy(), batch_size=8),
], ids=["shuffled", "augmented"])
def test_data_that_changes_between_reads_is_refused_before_any_work(source):
    with pytest.raises(LandscapeError, match=r"changed between reads .*--data-mode cache"):
        make("stream", data=source())


def test_streaming_neither_consumes_nor_mutates_the_users_data():
    x, y = image_tensors()
    batches = [(x[i:i + 8].clone(), y[i:i + 8].clone()) for i in range(0, 60, 8)]
    before = [(a.clone(), b.clone()) for a, b in batches]
    problem = make("stream", data=batches)
    api.random_line(problem, points=3)
    api.hessian_eigs(problem, k=1)
    assert len(batches) == len(before)
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(batches, before))


def test_cached_graphs_are_refused_on_a_streamed_split():
    problem = make("stream")
    assert not HessianOperator(problem, hvp_mode="autograd").cache_graphs
    with pytest.raises(LandscapeError, match="streamed"):
        HessianOperator(problem, hvp_mode="autograd", cache_graphs=True)


def test_a_bad_data_mode_is_one_line():
    with pytest.raises(LandscapeError, match="data_mode must be 'auto', 'cache' or 'stream'"):
        make("lazy")
