"""Forwards and HVPs under ``torch.autocast``, as a model trained with mixed precision runs.

The reference for every number is the same function written out by hand: the user's model
called under ``torch.autocast("cpu", bfloat16)`` with float32 parameters, the loss averaged
over batches by size, and its gradient and Hessian by plain ``torch.autograd``. The loss
agrees to float32 rounding of the sums (rtol 1e-5: the forward's ops and their bfloat16
roundings are the same), HVPs to a few bfloat16 roundings (see BF16_PRODUCT_RTOL). The dense
Hessian is built column by column from those hand-written HVPs; Lanczos on autocast products must take bfloat16's
tolerance and error bounds (``operator.precision``), and every pair it calls converged must
lie within its bound of the dense spectrum.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from landscape.curvature import HessianOperator
from landscape.errors import LandscapeError
from landscape.linalg import lanczos
from landscape.linalg.lanczos import tol_floor
from landscape.loading import load_problem
from landscape.params import flatten
from landscape.problem import Problem
from tests.conftest import ROOT, run_cli
from tests.models import MLP, seeded, vectors

AUTOCAST = torch.bfloat16
# The backward's bfloat16 ops round values that differ between our per-batch products and the
# hand-written graph of the whole sum (the batch weight enters before or after them), so
# products agree to a few bfloat16 roundings (eps 2⁻⁸ ≈ 0.004), not to float32's.
BF16_PRODUCT_RTOL = 0.03
HIDDEN = 8  # 83 parameters: the dense reference is 83 hand-written HVPs (bfloat16 is slow on most CPUs)


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = vectors(200, seed=0)
    return [(x[i:i + 64], y[i:i + 64]) for i in range(0, 200, 64)]  # 64, 64, 64, 8: uneven on purpose


def problem(autocast: torch.dtype | None) -> Problem:
    return Problem.create(seeded(MLP, hidden=HIDDEN), F.cross_entropy, data(), autocast=autocast)


def hand_loss(model: torch.nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float32)
    for x, y in data():
        with torch.autocast("cpu", dtype=AUTOCAST):  # as mixed-precision training computes its loss
            loss = F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)
        total = total + loss.float() * len(y)
    return total / 200


@functools.cache
def hand_hessian() -> torch.Tensor:
    model = seeded(MLP, hidden=HIDDEN)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    grad = flatten(dict(zip(params, torch.autograd.grad(hand_loss(model, params), list(params.values()),
                                                          create_graph=True))))
    columns = []
    for i in range(grad.numel()):
        column = torch.autograd.grad(grad[i], list(params.values()), retain_graph=True)
        columns.append(flatten(dict(zip(params, column))))
    return torch.stack(columns, dim=1).double()


def test_the_loss_is_the_autocast_forward() -> None:
    model = seeded(MLP, hidden=HIDDEN)
    with_autocast, plain = problem(AUTOCAST), problem(None)
    with torch.no_grad():
        want = float(hand_loss(model, dict(model.named_parameters())))
    assert with_autocast.loss() == pytest.approx(want, rel=1e-5)
    assert abs(with_autocast.loss() - plain.loss()) > 1e-4 * plain.loss()  # bfloat16 ops really ran
    assert with_autocast.describe()["autocast"] == "bfloat16" and plain.describe()["autocast"] == ""
    assert next(iter(with_autocast.params.values())).dtype == torch.float32


def test_hvps_differentiate_the_autocast_loss() -> None:
    hessian = hand_hessian()
    op = HessianOperator(problem(AUTOCAST), hvp_mode="autograd")
    assert op.precision == AUTOCAST and op.dtype == torch.float32
    vector = torch.randn(op.size, generator=torch.Generator().manual_seed(0))
    basis = torch.eye(op.size)[:, :5]
    columns = op.matmat(basis).double()
    assert ((columns - hessian[:, :5]).norm(dim=0) <= BF16_PRODUCT_RTOL * hessian[:, :5].norm(dim=0)).all()
    product, want = op.matvec(vector).double(), hessian @ vector.double()
    assert (product - want).norm() <= BF16_PRODUCT_RTOL * want.norm()


def test_eigenvalues_under_autocast_are_honest() -> None:
    hessian = hand_hessian()
    exact = torch.linalg.eigvalsh((hessian + hessian.T) / 2).flip(0)[:2]
    result = lanczos(HessianOperator(problem(AUTOCAST)), 2, "LA", return_eigenvectors=True)
    assert result.tol >= tol_floor(AUTOCAST)  # bfloat16's tolerance, not float32's
    assert bool(result.converged[0]), result
    ok = result.converged
    assert ((result.eigenvalues - exact).abs()[ok] <= result.error_bounds[ok]).all(), (result.eigenvalues, exact)


def test_autocast_needs_float32_parameters_and_a_16_bit_dtype() -> None:
    with pytest.raises(LandscapeError, match="use --dtype float32"):
        Problem.create(seeded(MLP).double(), F.cross_entropy, [(torch.randn(4, 6).double(), torch.zeros(4).long())],
                       autocast="bfloat16")
    with pytest.raises(LandscapeError, match="autocast must be one of"):
        Problem.create(seeded(MLP), F.cross_entropy, data(), autocast="int8")


def test_load_problem_takes_dtype_names() -> None:
    problem, _ = load_problem(ROOT / "data" / "digits_mlp.pt", dtype="float64", max_examples=32)
    assert problem.dtype == torch.float64
    with pytest.raises(LandscapeError, match="dtype must be one of"):
        load_problem(ROOT / "data" / "digits_mlp.pt", dtype="double-ish")


def test_cli_records_autocast_and_refuses_it_in_float64(tmp_path) -> None:
    import h5py

    done = run_cli("hessian", ROOT / "data" / "digits_mlp.pt", "--autocast", "bfloat16", "--top", "1",
                   "--max-examples", "64", "-o", tmp_path / "ac.h5", "--no-report", "--quiet")
    assert done.returncode == 0, done.stderr
    with h5py.File(tmp_path / "ac.h5") as h5:
        assert h5.attrs["autocast"] == "bfloat16"
    refused = run_cli("hessian", ROOT / "data" / "digits_mlp.pt", "--autocast", "bfloat16", "--dtype", "float64",
                      "-o", tmp_path / "no.h5", "--no-report", "--quiet")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--dtype float32" in refused.stderr
    assert not list(tmp_path.glob("no.h5*"))

