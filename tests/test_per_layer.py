"""Weight decay in the curvature (H + λI) and per-layer curvature (each group's diagonal
block), against dense float64 Hessians by torch.func.hessian."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import landscape as ls
from curvature_cases import dense_hessian, mlp_problem
from landscape.cli import main
from landscape.curvature import CurvatureConfig, HessianOperator
from landscape.curvature.per_layer import group_spec, module_groups, resolve_groups
from landscape.curvature.step import compute_density
from landscape.errors import LandscapeError
from landscape.linalg import spectral_density, to_dense
from landscape.views.layer_panels import log_axis

LAMBDA = 0.3


@pytest.fixture(scope="module")
def problem():
    return mlp_problem(torch.float64, hidden=4)  # D = 64·4 + 4 + 4·10 + 10 = 310


def test_weight_decay_operator_is_the_hessian_plus_lambda_identity(problem) -> None:
    names = ["2.weight", "2.bias"]
    op = HessianOperator(problem, param_patterns=names, weight_decay=LAMBDA)
    reference = dense_hessian(problem, names) + LAMBDA * torch.eye(50, dtype=torch.float64)
    # both float64 sums of the same per-batch terms: agreement to rounding (~1e-15 relative)
    torch.testing.assert_close(to_dense(op), reference, rtol=1e-10, atol=1e-12)


def test_weight_decay_shifts_eigenvalues_trace_and_density_exactly(problem) -> None:
    dense = dense_hessian(problem, ["2.weight", "2.bias"])
    expected = torch.linalg.eigvalsh(dense + LAMBDA * torch.eye(50, dtype=torch.float64)).flip(0)[:2]
    eigs = ls.hessian_eigs(problem, k=2, params=["2.*"], weight_decay=LAMBDA)
    # float64 Lanczos stops at relative Ritz residual 1e-6; the Ritz values' error is far smaller
    np.testing.assert_allclose(eigs.eigenvalues.numpy(), expected.numpy(), rtol=1e-6)
    plain = ls.hessian_trace(problem, probes=12, seed=3)
    decayed = ls.hessian_trace(problem, probes=12, seed=3, weight_decay=LAMBDA)
    # λ·D is added to every sample exactly (same probes): only float64 rounding differs
    assert decayed.estimate == pytest.approx(plain.estimate + LAMBDA * 310, rel=1e-12)
    assert decayed.stderr == pytest.approx(plain.stderr, rel=1e-9)
    config = CurvatureConfig(density=True, density_probes=2, density_steps=8)
    shifted = compute_density(HessianOperator(problem, param_patterns=["2.*"], weight_decay=LAMBDA), config)
    base = spectral_density(HessianOperator(problem, param_patterns=["2.*"]), 2, 8)
    # Lanczos on H + λI: the same Krylov space, T + λI, so nodes + λ and equal weights
    torch.testing.assert_close(shifted.nodes, base.nodes + LAMBDA, rtol=0, atol=1e-9)
    torch.testing.assert_close(shifted.weights, base.weights, rtol=0, atol=1e-9)


def test_per_layer_values_are_those_of_the_dense_blocks(problem) -> None:
    names = list(problem.params)
    dense = dense_hessian(problem) + 0.05 * torch.eye(310, dtype=torch.float64)
    result = ls.per_layer_curvature(problem, weight_decay=0.05)
    assert result.names == ("0", "2")
    offsets = np.cumsum([0] + [problem.params[n].numel() for n in names])
    spans = {"0": slice(offsets[0], offsets[2]), "2": slice(offsets[2], offsets[4])}
    for i, name in enumerate(result.names):
        block = dense[spans[name], spans[name]]
        assert result.num_parameters[i] == block.shape[0]
        assert result.converged[i] and result.trace_exact[i]  # both blocks ≤ 512 parameters: exact
        assert result.top_eigenvalue[i] == pytest.approx(float(torch.linalg.eigvalsh(block)[-1]), rel=1e-6)
        assert result.trace[i] == pytest.approx(float(block.trace()), rel=1e-10)
        assert result.trace_stderr[i] == 0


def test_explicit_groups_take_pattern_lists_and_mappings(problem) -> None:
    groups = resolve_groups(problem.params, "first=0.*,2.bias,head=2.weight")
    assert [(g.name, g.parameters) for g in groups] == [("first", ("0.weight", "0.bias", "2.bias")),
                                                        ("head", ("2.weight",))]
    assert group_spec({"first": ["0.*", "2.bias"], "head": "2.weight"}) == "first=0.*,2.bias,head=2.weight"
    dense = dense_hessian(problem, ["2.weight"])
    result = ls.per_layer_curvature(problem, {"head": ["2.weight"]})
    assert result.top_eigenvalue[0] == pytest.approx(float(torch.linalg.eigvalsh(dense)[-1]), rel=1e-6)
    assert module_groups(["weight", "bias", "a.b[0].w"])[1].patterns == ("a.b[[]0].w",)


@pytest.mark.parametrize("spec, message", [
    ("0.*", "comes before any group name"), ("a=", "needs a group name and a pattern"),
    ("a=0.*,a=2.*", "named twice"), ("a=nothing.*", "matches no selected parameter"), (",", "no groups"),
])
def test_bad_group_specs_are_one_clear_error(problem, spec, message) -> None:
    with pytest.raises(LandscapeError, match=message):
        resolve_groups(problem.params, spec)


def test_log_axis_only_for_positive_values_spanning_two_decades() -> None:
    assert log_axis(np.array([0.01, 1.0, 5.0])) and not log_axis(np.array([0.1, 1.0, 5.0]))
    assert not log_axis(np.array([-0.01, 1.0, 500.0])) and not log_axis(np.array([np.nan, 1.0, 500.0]))




def test_hessian_per_layer_command_writes_prints_and_resumes(tiny_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "h.h5"
    common = [str(tiny_checkpoint), "--top", "1", "--max-examples", "100", "--dtype", "float64", "--device", "cpu",
              "-o", str(out), "--quiet", "--no-report"]
    assert main(["hessian", *common, "--per-layer", "--weight-decay", "0.1"]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("  ")]
    assert table[0].split()[:3] == ["group", "parameters", "top"] and len(table) == 4  # header + 3 modules
    right_edge = table[0].index("parameters") + len("parameters")  # numbers right-aligned under it
    assert [line[:right_edge].split()[-1] for line in table[1:]] == ["260", "20", "50"]
    assert all(line[right_edge] == " " for line in table[1:])
    with h5py.File(out, "r") as f:
        group = f["curvature/per_layer"]
        assert [n.decode() for n in group["names"][()]] == ["0", "2", "4"]
        assert group.attrs["weight_decay"] == 0.1 and f["curvature/hessian_top"].attrs["weight_decay"] == 0.1
        for name in ("num_parameters", "top_eigenvalue", "residual", "converged", "trace", "trace_stderr"):
            assert group[name].shape == (3,)
        assert (group["top_eigenvalue"][()] > 0.1).all()  # λ_max(H_gg + 0.1 I) ≥ 0.1 at a trained point
    assert main(["hessian", *common, "--per-layer", "--weight-decay", "0.1", "--resume"]) == 0
    assert "per_layer (" not in capsys.readouterr().out  # kept, not recomputed
    assert main(["hessian", *common, "--per-layer", "--resume"]) == 2
    assert "--weight-decay 0.1, not 0" in capsys.readouterr().err
    assert main(["hessian", *common, "--per-layer", "x=nothing.*", "-o", str(tmp_path / "bad.h5")]) == 2
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "bad.h5.partial").exists()
