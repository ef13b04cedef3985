"""The hessian command, the scan step, the HDF5 groups, directions and bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from curvature_cases import dense_hessian, digits_subset, mlp_problem
from landscape.cli import main
from landscape.curvature import CurvatureConfig, hessian_directions, hessian_step, run_curvature
from landscape.errors import LandscapeError
from landscape.problem import Problem
from landscape.scan import ScanStep
from landscape.store import ResultsWriter, read_attr


def test_hessian_command_writes_the_schema(tiny_checkpoint, tmp_path) -> None:
    out = tmp_path / "h.h5"
    code = main(["hessian", str(tiny_checkpoint), "--top", "3", "--bottom", "2", "--trace", "--density",
                 "--eigenvectors", "--max-examples", "200", "--dtype", "float64", "--device", "cpu",
                 "--density-probes", "2", "--density-steps", "10", "--trace-probes", "12",
                 "--block-size", "2", "-o", str(out), "--quiet", "--no-report"])
    assert code == 0
    with h5py.File(out, "r") as f:
        top, bottom = f["curvature/hessian_top"], f["curvature/hessian_bottom"]
        for group, which, k in ((top, "LA", 3), (bottom, "SA", 2)):
            attrs = {key: read_attr(v) for key, v in group.attrs.items()}
            for key in ("operator", "which", "k", "tol", "seed", "split", "param_patterns",
                        "num_matvecs", "num_data_passes", "hvp_mode"):
                assert key in attrs, key
            assert (attrs["which"], attrs["k"], attrs["operator"], attrs["split"]) == (which, k, "hessian", "train")
            assert group["eigenvalues"].shape == (k,) and group["eigenvalues"].dtype == np.float64
            assert group["residuals"].shape == (k,) and group["converged"].dtype == bool
            assert group["converged"][()].all() and attrs["complete"]
            assert group["eigenvectors/0.weight"].shape == (k, 4, 64)
        values = top["eigenvalues"][()]
        assert np.all(np.diff(values) <= 0)
        trace = f["curvature/trace"]
        assert read_attr(trace.attrs["method"]) == "hutch++" and trace.attrs["num_probes"] == 12
        assert trace.attrs["stderr"] > 0 and trace["samples"].shape == (4,)
        assert np.isclose(trace["samples"][()].mean(), trace.attrs["estimate"])
        density = f["curvature/density"]
        assert density["nodes"].shape == (2, 10) and density["weights"].shape == (2, 10)
        assert density.attrs["num_parameters"] == 64 * 4 + 4 + 4 * 4 + 4 + 4 * 10 + 10


def test_hessian_command_in_bfloat16_records_its_bounds(tiny_checkpoint, tmp_path) -> None:
    """--dtype bfloat16: the tol actually used (clamped to 4·eps) and per-pair error bounds
    (explicit residual + 8·eps·‖H‖) are stored; the top pair converges."""
    out = tmp_path / "bf16.h5"
    code = main(["hessian", str(tiny_checkpoint), "--top", "3", "--tol", "1e-6", "--max-examples", "200",
                 "--dtype", "bfloat16", "--device", "cpu", "-o", str(out), "--quiet", "--no-report"])
    assert code == 0
    eps = torch.finfo(torch.bfloat16).eps
    with h5py.File(out, "r") as f:
        top = f["curvature/hessian_top"]
        values, residuals = top["eigenvalues"][()], top["residuals"][()]
        bounds, converged = top["error_bounds"][()], top["converged"][()]
        assert top.attrs["tol"] == 4 * eps and bounds.shape == (3,) and bounds.dtype == np.float64
        floor = residuals * np.abs(values) + 8 * eps * np.abs(values).max()
        assert converged[0] and np.all(bounds >= floor * (1 - 1e-12))


def test_scan_step_skips_finished_groups(tmp_path) -> None:
    problem = mlp_problem()
    step = hessian_step(top=2, trace=True, hvp_mode="reverse", trace_probes=6)
    assert isinstance(step, ScanStep)
    with ResultsWriter(tmp_path / "s.h5", {"seed": 0}) as writer:
        step.run(problem, writer)
        assert writer.has_group("curvature/hessian_top") and writer.has_group("curvature/trace")
        exact = torch.linalg.eigvalsh(dense_hessian(problem)).flip(0)[:2]
        stored = torch.from_numpy(writer.h5["curvature/hessian_top/eigenvalues"][()])
        assert torch.allclose(stored, exact, rtol=1e-6)  # default tol 1e-6 (float64): error ≲ residual²/gap
        config = CurvatureConfig(top=2, trace=True, hvp_mode="reverse")
        assert run_curvature(problem, writer, config) == {}  # resumed: nothing redone
        writer.finish()


def test_hessian_directions_are_unit_eigenvectors() -> None:
    problem = mlp_problem()
    dense = dense_hessian(problem)
    directions = hessian_directions(problem, 2, param_patterns=["2.*"])
    assert [d.name for d in directions] == ["d0", "d1"]
    flat = [torch.cat([d.vectors[n].reshape(-1) for n in problem.params]) for d in directions]
    assert all(float(d.vectors["0.weight"].abs().max()) == 0 for d in directions)  # not selected
    assert abs(float(flat[0] @ flat[1])) < 1e-10 and abs(float(flat[0].norm()) - 1) < 1e-10
    for d, v in zip(directions, flat):
        assert abs(float(v @ dense @ v) - d.attrs["eigenvalue"]) < 1e-9 * abs(d.attrs["eigenvalue"])
        assert d.attrs["converged"] and d.attrs["kind"] == "hessian_eigenvector"


def test_bad_input_gives_one_clear_line(tiny_checkpoint, tmp_path, capsys) -> None:
    code = main(["hessian", str(tiny_checkpoint), "--top", "100000", "--max-examples", "50", "--device", "cpu",
                 "-o", str(tmp_path / "x.h5"), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--top 100000" in err and "330" in err
    code = main(["hessian", str(tiny_checkpoint), "--params", "nothing*", "--max-examples", "50",
                 "--device", "cpu", "-o", str(tmp_path / "y.h5"), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "match no trainable parameter" in err


def test_bad_models_and_losses_are_refused() -> None:
    data = digits_subset(20, 20)
    frozen = nn.Linear(64, 10)
    frozen.requires_grad_(False)
    with pytest.raises(LandscapeError, match="no trainable parameters"):
        Problem.create(frozen, F.cross_entropy, data)
    with pytest.raises(LandscapeError, match="not a scalar"):
        Problem.create(nn.Linear(64, 10), lambda out, y: F.cross_entropy(out, y, reduction="none"), data)
    problem = mlp_problem()
    with pytest.raises(LandscapeError, match="choose 0 ≤ top"):
        run_curvature(problem, _NoGroups(), CurvatureConfig(top=10**6, trace=False))


class _NoGroups:
    def has_group(self, _path: str, _expected: object = None) -> bool:
        return False


def test_hessian_options_come_from_the_config() -> None:
    """``landscape hessian``'s options are CurvatureConfig's fields: defaults (the trace off
    unless asked), the repeatable --params and --eigenvectors; the Literals are the choices."""
    from typing import get_args

    from landscape.cli import build_parser
    from landscape.curvature.cli import config_from_args
    from landscape.curvature.config import OperatorName
    from landscape.curvature.operators import OPERATORS
    from landscape.curvature.step import Eigenpairs, Trace, curvature_analyses

    assert set(get_args(OperatorName)) == set(OPERATORS)
    plain = config_from_args(build_parser().parse_args(["hessian", "x.pt", "--seed", "3"]))
    assert plain == CurvatureConfig(trace=False, seed=3)
    assert curvature_analyses(plain) == [Eigenpairs("hessian_top", "LA", 5)]
    assert curvature_analyses(CurvatureConfig()) == [Eigenpairs("hessian_top", "LA", 5), Trace()]  # the scan's
    given = config_from_args(build_parser().parse_args(
        ["hessian", "x.pt", "--params", "fc.*", "--params", "*.bias", "--eigenvectors", "--trace",
         "--operator", "ggn", "--bottom", "2"]))
    assert given.param_patterns == ("fc.*", "*.bias") and given.store_eigenvectors and given.trace
    assert [a.path for a in curvature_analyses(given)] == ["curvature/hessian_top", "curvature/hessian_bottom",
                                                           "curvature/trace"]
