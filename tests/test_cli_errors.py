"""The CLI as a user meets it, in real subprocesses: bad input gets one clear line on stderr,
a non-zero exit and no complete-looking output; good input (including divergent points,
trusted pickles, interpolation and non-square grids) completes.

All runs of this module are made by one fixture; the tests then check them. Importing torch
costs ~1.3 s of the ~2 s a `python -m landscape` run takes here, so most runs are separate
processes forked (two at a time) from one driver that imported `landscape.cli` first: each
still has its own exit status, stdout and stderr, exactly as `python -m landscape` would
(``sys.exit(main())``). A few cases (GENUINE) also run as `python -m landscape` proper.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import landscape
from landscape.problem import Problem
from landscape.store import read_attr
from tests import models
from tests.conftest import cli_env, run_cli

# one xdist worker runs this module (with --dist loadgroup): the other never waits for the runs
pytestmark = pytest.mark.xdist_group("cli_errors")

MLP_SPECS = ["--model", "tests.models:mlp", "--data", "tests.models:vector_data", "--loss", "cross_entropy"]
SMALL = ["--points", "3", "--no-report"]
MARKER = "marker-created-by-metadata"


@dataclass
class Case:
    args: list[str]
    expect: str  # substring of the one error line ('' for a run that must succeed)


def _files(root: Path) -> dict[str, Path]:
    files = {}
    model = models.mlp()
    files["good"] = root / "good.pt"
    torch.save(model.state_dict(), files["good"])
    raw = files["good"].read_bytes()
    files["truncated"] = root / "truncated.pt"
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["corrupt"] = root / "corrupt.pt"
    files["corrupt"].write_bytes(bytes(range(256)) * 8)
    files["pickled"] = root / "whole_model.pt"
    torch.save(model, files["pickled"])
    nan_state = model.state_dict()
    nan_state["fc1.weight"][2, 3] = float("nan")
    files["nan"] = root / "nan.pt"
    torch.save(nan_state, files["nan"])
    _, y = models.vectors(10)
    files["wide"] = root / "wide.npz"
    np.savez(files["wide"], x=np.zeros((10, 7), np.float32), y=y.numpy())
    files["empty_npz"] = root / "empty.npz"
    np.savez(files["empty_npz"], x=np.zeros((0, 6), np.float32), y=np.zeros((0,), np.int64))
    files["script"] = root / "script.pt"
    torch.jit.script(model).save(str(files["script"]))
    files["existing"] = root / "existing.h5"
    files["existing"].write_bytes(b"an earlier result")
    files["cnn"] = root / "cnn.pt"
    torch.save(models.trained_bn_state(models.cnn_bn(), models.image_data()["train"]).state_dict(), files["cnn"])
    files["exp"] = root / "exp.pt"
    torch.save(models.exp_model().state_dict(), files["exp"])
    files["linear"] = root / "linear.safetensors"
    save_file(models.linear().state_dict(), str(files["linear"]), metadata={
        "landscape.model": "tests.models:linear", "landscape.data": "tests.models:regression_data",
        "landscape.loss": "mse", "landscape.model_kwargs": json.dumps({})})
    for seed in (0, 1):
        files[f"pickled{seed}"] = root / f"whole{seed}.pt"
        torch.save(models.seeded(models.MLP, seed=seed), files[f"pickled{seed}"])
    files["text"] = root / "notes.pt"
    files["text"].write_text("epoch 3: loss 0.12\n")
    files["results"] = root / "earlier.landscape.h5"
    with h5py.File(files["results"], "w") as h5:
        h5.attrs["schema"] = "landscape-results"
        h5.attrs["checkpoint_path"] = str(files["good"])
    x, y = models.vectors(10)
    files["vectors"] = root / "vectors.npz"
    np.savez(files["vectors"], x=x.numpy(), y=y.numpy())
    files["spec"] = root / "spec.py"
    files["spec"].write_text("from tests.models import mlp  # noqa: F401\n")
    files["evil"] = root / "evil.pt"  # metadata naming a callable that would leave a marker
    landscape.save(files["evil"], model, model_spec="subprocess:run",
                   model_kwargs={"args": ["touch", str(root / MARKER)]}, data_spec="tests.models:vector_data",
                   loss="cross_entropy")
    for seed in (0, 1, 2):
        files[f"lightning{seed}"] = root / f"run{seed}.ckpt"
        state = {f"model.{k}": v for k, v in models.seeded(models.MLP, seed=seed).state_dict().items()}
        torch.save({"pytorch-lightning_version": "2.4.0", "state_dict": state, "epoch": seed},
                   files[f"lightning{seed}"])
    return files


def _cases(f: dict[str, Path]) -> dict[str, Case]:
    return {
        # ---- bad input
        "missing_file": Case(["surface", "nope.pt", *MLP_SPECS], "not found"),
        "truncated": Case(["surface", f["truncated"], *MLP_SPECS], "could not read checkpoint"),
        "corrupt": Case(["surface", f["corrupt"], *MLP_SPECS], "could not read checkpoint"),
        "misfit_state_dict": Case(["surface", f["good"], "--model", "tests.models:lstm",
                                   "--data", "tests.models:vector_data"], "does not fit the model"),
        "wrong_data_shape": Case(["surface", f["good"], "--model", "tests.models:mlp", "--data", f["wide"],
                                  "--loss", "cross_entropy"], "the model failed on this input"),
        "float_labels": Case(["surface", f["good"], "--model", "tests.models:mlp", "--data",
                              "tests.models:vector_float_labels", "--loss", "cross_entropy"], "labels' dtype"),
        "empty_factory": Case(["surface", f["good"], "--model", "tests.models:mlp", "--data",
                               "tests.models:vector_empty", "--loss", "cross_entropy"], "empty"),
        "empty_file": Case(["surface", f["good"], "--model", "tests.models:mlp", "--data", f["empty_npz"],
                            "--loss", "cross_entropy"], "empty"),
        "untrusted_pickle": Case(["surface", f["pickled"], "--data", "tests.models:vector_data",
                                  "--loss", "cross_entropy"], "--trust"),
        "nan_weights": Case(["surface", f["nan"], *MLP_SPECS], "NaN"),
        "unknown_builtin": Case(["surface", f["good"], "--model", "resnet9000", "--data",
                                 "tests.models:vector_data"], "neither a built-in"),
        "unknown_module": Case(["surface", f["good"], "--model", "no_such_pkg.nets:mlp", "--data",
                                "tests.models:vector_data"], "cannot import"),
        "no_model_for_weights": Case(["surface", f["good"], "--data", "tests.models:vector_data"],
                                     "--model"),
        "existing_output": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "-o", f["existing"]],
                                "--overwrite"),
        "no_output_folder": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "-o", "no/such/folder/r.h5"],
                                 "does not exist"),
        "unknown_split": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "--splits", "valid"], "no data split"),
        "text_checkpoint": Case(["surface", f["text"], *MLP_SPECS], "looks like a text file"),
        "results_as_checkpoint": Case(["surface", f["results"], *MLP_SPECS], "is a landscape results file"),
        **{f"untrusted_metadata_{command}": Case([command, *files, *extra], "--trust")
           for command, files, extra in [("scan", [f["evil"]], []), ("surface", [f["evil"]], []),
                                         ("interpolate", [f["evil"], f["evil"]], []),
                                         ("hessian", [f["evil"]], []), ("noise", [f["evil"]], ["--batch-size", "4"])]},
        # ---- outputs: never an input, a folder or an impossible name (refused before any work)
        "output_is_checkpoint": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "-o", f["good"], "--overwrite"],
                                     "never overwritten"),
        "output_is_data_file": Case(["surface", f["good"], "--model", "tests.models:mlp", "--data", f["vectors"],
                                     "--loss", "cross_entropy", *SMALL, "-o", f["vectors"]], "never overwritten"),
        "output_is_spec_file": Case(["surface", f["good"], "--model", f"{f['spec']}:mlp", "--data",
                                     "tests.models:vector_data", "--loss", "cross_entropy", *SMALL, "-o", f["spec"],
                                     "--overwrite"], "never overwritten"),
        "output_is_folder": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "-o", f["good"].parent], "is a folder"),
        "output_name_too_long": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "-o", "x" * 300 + ".h5"],
                                     "choose a shorter -o"),
        # ---- options checked before the file exists
        "max_examples_zero": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "--max-examples", "0"], "must be ≥ 1"),
        "max_examples_negative": Case(["surface", f["good"], *MLP_SPECS, *SMALL, "--max-examples", "-5"],
                                      "must be ≥ 1"),
        "grid_too_big": Case(["surface", f["good"], *MLP_SPECS, "--points", "100000", "--no-report"], "GiB"),
        "points_per_axis": Case(["surface", f["good"], *MLP_SPECS, "--dims", "1", "--points", "3", "4",
                                 "--no-report"], "--points takes 1 or 1 values"),
        "ignored_option": Case(["interpolate", f["lightning0"], f["lightning1"], *MLP_SPECS, "--orthogonal"],
                               "unrecognized arguments: --orthogonal"),
        "params_match_nothing": Case(["hessian", f["good"], *MLP_SPECS, "--params", "zzz.*", "--no-report"],
                                     "match no trainable parameter"),
        "negative_tol": Case(["hessian", f["good"], *MLP_SPECS, "--tol", "-1"], "must be a positive number"),
        "block_size_zero": Case(["hessian", f["good"], *MLP_SPECS, "--block-size", "0"], "must be ≥ 1"),
        "max_basis_too_small": Case(["hessian", f["good"], *MLP_SPECS, "--max-basis", "2"], "too small"),
        "nothing_to_compute": Case(["hessian", f["good"], *MLP_SPECS, "--top", "0", "--bottom", "0"],
                                   "nothing to compute"),
        "too_many_eigenvalues": Case(["hessian", f["good"], *MLP_SPECS, "--top", "100000"], "choose 0 ≤ top"),
        "trace_probes_one": Case(["hessian", f["good"], *MLP_SPECS, "--trace", "--trace-probes", "1"],
                                 "needs at least 6"),
        "examples_one": Case(["noise", f["good"], *MLP_SPECS, "--batch-size", "4", "--examples", "1"],
                             "must be ≥ 2"),
        "batch_over_split": Case(["noise", f["good"], *MLP_SPECS, "--batch-size", "100000"],
                                 "larger than the dataset"),
        "two_batch_sizes_reversed": Case(["noise", f["good"], *MLP_SPECS, "--batch-size", "4",
                                          "--two-batch-sizes", "64", "16"], "SMALL < BIG"),
        "noise_without_batch_size": Case(["noise", f["good"], *MLP_SPECS], "pass --batch-size B"),
        # ---- good input
        "trusted_pickle": Case(["surface", f["pickled"], "--trust", "--data", "tests.models:vector_data",
                                "--loss", "cross_entropy", "--dims", "1", *SMALL], ""),
        "divergent": Case(["surface", f["exp"], "--model", "tests.models:exp_model", "--data",
                           "tests.models:vector_data", "--loss", "cross_entropy", "--points", "5",
                           "--range", "-400", "400", "--no-report"], ""),
        "closed_form": Case(["surface", f["linear"], "--trust", "--points", "7", "5", "--range", "-1", "2",
                             "-0.5", "0.3", "--include-1d", "--dtype", "float64", "--seed", "5", "--no-report"], ""),
        "cnn_recompute": Case(["surface", f["cnn"], "--model", "tests.models:cnn_bn", "--data",
                               "tests.models:image_data", "--loss", "cross_entropy", "--bn", "recompute",
                               "--dtype", "float64", "--dims", "1", "--range", "-1", "1", *SMALL], ""),
        "scan_lightning": Case(["scan", f["lightning0"], *MLP_SPECS, *SMALL, "--bn", "recompute"], ""),
        "interpolate_line": Case(["interpolate", f["lightning0"], f["lightning1"], *MLP_SPECS,
                                  "--points", "5", "--range", "0", "1", "--dtype", "float64", "--no-report"], ""),
        "interpolate_pickled": Case(["interpolate", f["pickled0"], f["pickled1"], "--trust", "--data",
                                     "tests.models:vector_data", "--loss", "cross_entropy", "--points", "3",
                                     "--range", "0", "1", "--dtype", "float64", "--no-report"], ""),
        "scan_points_per_axis": Case(["scan", f["good"], *MLP_SPECS, "--points", "3", "4", "--range", "-1", "1",
                                      "-0.5", "0.5", "--no-report"], ""),
        "interpolate_plane": Case(["interpolate", f["lightning0"], f["lightning1"], f["lightning2"], *MLP_SPECS,
                                   "--points", "4", "--no-report"], ""),
    }


GENUINE = ["corrupt", "untrusted_pickle", "divergent"]

# Forks one child per case (two at a time) after importing the CLI once. The parent runs no
# torch op before forking, so the children start with torch's thread pools untouched.
DRIVER = r"""
import json, os, sys, traceback
from landscape.cli import main
import tests.models  # noqa: F401  (specs import it in every case)
cases = json.load(open(sys.argv[1]))
results, running, queue = {}, {}, list(cases)
def start(name):
    argv, cwd, out, err = cases[name]
    pid = os.fork()
    if pid:
        running[pid] = name
        return
    os.chdir(cwd)
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    sys.argv = ["landscape", *argv]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code or 0)
while queue or running:
    while queue and len(running) < 2:
        start(queue.pop(0))
    pid, status = os.wait()
    results[running.pop(pid)] = os.waitstatus_to_exitcode(status)
print(json.dumps(results))
"""


def run_forked(cases: dict[str, list[str]], root: Path) -> dict[str, subprocess.CompletedProcess]:
    spec = {name: [argv, str(root), str(root / f"{name}.stdout"), str(root / f"{name}.stderr")]
            for name, argv in cases.items()}
    (root / "cases.json").write_text(json.dumps(spec))
    driver = subprocess.run([sys.executable, "-c", DRIVER, str(root / "cases.json")], cwd=root,
                            env=cli_env(), capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    codes = json.loads(driver.stdout.strip().splitlines()[-1])
    return {name: subprocess.CompletedProcess(argv, codes[name], (root / f"{name}.stdout").read_text(),
                                              (root / f"{name}.stderr").read_text())
            for name, argv in cases.items()}


def _make_runs(root: Path) -> dict:
    """Make every run of this module under ``root``; returns JSON-able results."""
    root.mkdir(parents=True, exist_ok=True)
    files = _files(root)
    cases = _cases(files)
    sha = lambda: {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}  # noqa: E731
    sha_before = sha()
    outputs, argvs = {}, {}
    for name, case in cases.items():
        args = [str(a) for a in case.args]
        outputs[name] = Path(args[args.index("-o") + 1]) if "-o" in args else root / f"{name}.h5"
        argvs[name] = args if "-o" in args else [*args, "-o", str(outputs[name])]
    genuine_root = root / "genuine"
    genuine_root.mkdir()
    with ThreadPoolExecutor(max_workers=1) as pool:  # one genuine run beside the two forks
        genuine = pool.map(lambda n: run_cli(*[a.replace(str(outputs[n]), str(genuine_root / f"{n}.h5"))
                                               for a in argvs[n]], cwd=root), GENUINE)
        forked = run_forked(argvs, root)
        genuine = dict(zip(GENUINE, genuine))
    as_json = lambda runs: {n: [r.returncode, r.stdout, r.stderr] for n, r in runs.items()}  # noqa: E731
    return {"results": as_json(forked), "genuine": as_json(genuine), "files": {k: str(v) for k, v in files.items()},
            "outputs": {n: str(p) for n, p in outputs.items()},
            "genuine_outputs": {n: str(genuine_root / f"{n}.h5") for n in GENUINE},
            "sha_before": sha_before, "sha_after": sha()}


def _once_per_session(tmp_path_factory, key: str, make) -> dict:
    """``make(folder)`` once per test session, also under pytest-xdist (workers share the
    result through a file lock), so `pytest -n 2` does not make every run twice."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        return make(tmp_path_factory.mktemp(key))
    shared = tmp_path_factory.getbasetemp().parent / f"{key}-{run_id}"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = shared / "result.json"
        if not result.exists():
            result.write_text(json.dumps(make(shared / "work")))
        return json.loads(result.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    made = _once_per_session(tmp_path_factory, "cli-runs", _make_runs)
    files = {k: Path(v) for k, v in made["files"].items()}
    completed = lambda runs: {n: subprocess.CompletedProcess(n, *r) for n, r in runs.items()}  # noqa: E731
    return {"cases": _cases(files), "files": files, "results": completed(made["results"]),
            "genuine": completed(made["genuine"]),
            "outputs": {n: Path(p) for n, p in made["outputs"].items()},
            "genuine_outputs": {n: Path(p) for n, p in made["genuine_outputs"].items()},
            "sha_before": made["sha_before"], "sha_after": made["sha_after"]}


def test_python_m_landscape_behaves_like_the_forked_runs(runs):
    for name in GENUINE:
        real, forked = runs["genuine"][name], runs["results"][name]
        assert (real.returncode, real.stderr, real.stdout.replace(str(runs["genuine_outputs"][name]),
                                                                  str(runs["outputs"][name]))) == \
            (forked.returncode, forked.stderr, forked.stdout), name
    with h5py.File(runs["genuine_outputs"]["divergent"], "r") as a, \
            h5py.File(runs["outputs"]["divergent"], "r") as b:
        np.testing.assert_array_equal(a["surfaces/2d/train/loss"][()], b["surfaces/2d/train/loss"][()])


GOOD_CASES = ["trusted_pickle", "divergent", "closed_form", "cnn_recompute", "scan_lightning", "interpolate_line",
              "interpolate_pickled", "scan_points_per_axis", "interpolate_plane"]
BAD_CASES = [name for name in _cases(defaultdict(Path)) if name not in GOOD_CASES]


def test_no_input_file_changed_and_no_named_callable_ran(runs):
    """Every file the runs read is byte-identical afterwards, and no run without --trust called
    the callable that evil.pt's metadata names (it would have created the marker)."""
    assert runs["sha_after"] == runs["sha_before"]
    assert not (runs["files"]["good"].parent / MARKER).exists()


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_input_gets_one_clear_line_and_no_output(runs, name):
    result, case = runs["results"][name], runs["cases"][name]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert lines[0].startswith("landscape: error: ")
    assert case.expect in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    out = runs["outputs"][name]
    if name in ("output_is_folder", "output_name_too_long"):
        return  # no file can be made there (the folder itself is an input and stays unchanged)
    assert not Path(f"{out}.partial").exists() and not Path(f"{out}.lock").exists()
    if out.is_absolute() and out not in runs["files"].values():  # an input stays (its sha256 is checked)
        assert not out.exists() and not out.with_suffix(".html").exists()


def _ok(runs, name: str) -> Path:
    result = runs["results"][name]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # LANDSCAPE_QUIET: no bars, no warnings
    out = runs["outputs"][name]
    assert f"results: {out}" in result.stdout
    with h5py.File(out, "r") as h5:
        assert read_attr(h5.attrs["complete"]) is True
    return out


def test_trusted_pickle_loads(runs):
    with h5py.File(_ok(runs, "trusted_pickle"), "r") as h5:
        assert read_attr(h5.attrs["trusted"]) is True
        assert read_attr(h5.attrs["checkpoint_format"]) == "pickled module"
        assert np.isfinite(h5["surfaces/1d/train/loss"][()]).all()


def test_divergent_points_are_stored_as_inf_or_nan_and_the_scan_completes(runs):
    with h5py.File(_ok(runs, "divergent"), "r") as h5:
        surface = h5["surfaces/2d"]
        loss = surface["train/loss"][()]
        assert surface["done"][()].all() and read_attr(surface.attrs["complete"]) is True
        assert (~np.isfinite(loss)).sum() >= 4  # far corners overflow
        assert np.isfinite(loss[2, 2])  # the checkpoint itself does not


def test_non_square_grid_in_the_file_is_ij_and_matches_the_closed_form(runs):
    """value[i, j] at (alpha[i], beta[j]) for a linear model with MSE, recomputed in closed form
    from the directions stored in the file (float64; rtol 1e-10, see test_surface.py)."""
    with h5py.File(_ok(runs, "closed_form"), "r") as h5:
        surface = h5["surfaces/2d"]
        alpha, beta, loss = surface["alpha"][()], surface["beta"][()], surface["train/loss"][()]
        assert read_attr(surface.attrs["indexing"]) == "ij" and read_attr(surface.attrs["axes"]) == ["alpha", "beta"]
        d = [{n: torch.from_numpy(h5[f"directions/d{k}/{n}"][()]) for n in ("weight", "bias")} for k in (0, 1)]
    assert loss.shape == (7, 5)
    np.testing.assert_allclose(alpha, np.linspace(-1, 2, 7))
    np.testing.assert_allclose(beta, np.linspace(-0.5, 0.3, 5))
    model = models.linear().double()
    data = models.regression_data()["train"]
    theta = {n: p.detach() for n, p in model.named_parameters()}
    for i, j in np.ndindex(7, 5):
        with torch.no_grad():
            w = theta["weight"] + alpha[i] * d[0]["weight"] + beta[j] * d[1]["weight"]
            b = theta["bias"] + alpha[i] * d[0]["bias"] + beta[j] * d[1]["bias"]
            x = torch.cat([x for x, _ in data]).double()
            y = torch.cat([y for _, y in data]).double()
            expected = float(((x @ w.T + b - y) ** 2).mean())
        assert loss[i, j] == pytest.approx(expected, rel=1e-10), (i, j)


def test_scan_of_a_lightning_checkpoint_with_bn_recompute(runs):
    with h5py.File(_ok(runs, "scan_lightning"), "r") as h5:
        assert set(h5["surfaces"]) == {"1d", "2d"}
        assert read_attr(h5.attrs["checkpoint_format"]) == "lightning"
        assert read_attr(h5.attrs["bn_policy"]) == "eval"  # no BatchNorm: says what really ran
        assert set(h5["surfaces/2d"]) >= {"alpha", "beta", "done", "train", "test"}


@pytest.mark.parametrize("name", ["interpolate_line", "interpolate_pickled"])
def test_interpolation_line_ends_at_both_checkpoints(runs, name):
    with h5py.File(_ok(runs, name), "r") as h5:
        loss = h5["surfaces/interpolation/train/loss"][()]
        np.testing.assert_array_equal(h5["surfaces/interpolation/alpha"][()], np.linspace(0, 1, len(loss)))
        np.testing.assert_array_equal(h5["surfaces/interpolation"].attrs["markers"], [[0.0], [1.0]])
    for index, seed in ((0, 0), (-1, 1)):
        problem = Problem.create(models.seeded(models.MLP, seed=seed).double(), F.cross_entropy,
                                 models.vector_data())
        assert loss[index] == pytest.approx(problem.loss(), rel=1e-12)


def test_bn_recompute_through_the_cli(runs):
    from tests.test_surface import reference_metrics

    with h5py.File(_ok(runs, "cnn_recompute"), "r") as h5:
        assert read_attr(h5.attrs["bn_policy"]) == "recompute" and read_attr(h5.attrs["bn_batches"]) == 4
        loss = h5["surfaces/1d/train/loss"][()]
        d0 = {n: torch.from_numpy(h5[f"directions/d0/{n}"][()]) for n in h5["directions/d0"]}
    model = models.trained_bn_state(models.cnn_bn(), models.image_data()["train"]).double()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    data = models.image_data()["train"]
    for index, alpha in enumerate((-1.0, 0.0, 1.0)):
        point = {n: theta[n] + alpha * d0[n] for n in theta}
        expected, _ = reference_metrics(model, point, data, F.cross_entropy, recompute_bn=4)
        assert loss[index] == pytest.approx(expected, rel=1e-10)


def test_interpolation_plane_marks_the_three_checkpoints(runs):
    with h5py.File(_ok(runs, "interpolate_plane"), "r") as h5:
        markers = h5["surfaces/plane"].attrs["markers"]
        labels = read_attr(h5["surfaces/plane"].attrs["marker_labels"])
        d0 = {n: h5[f"directions/d0/{n}"][()] for n in h5["directions/d0"]}
    thetas = [{n: p.detach().numpy().astype(np.float64) for n, p in
               models.seeded(models.MLP, seed=s).named_parameters()} for s in (0, 1, 2)]
    c_x = sum(float(((thetas[2][n] - thetas[0][n]) * d0[n]).sum()) for n in d0) / \
        sum(float((d0[n] ** 2).sum()) for n in d0)
    np.testing.assert_allclose(markers, [[0, 0], [1, 0], [c_x, 1]], rtol=1e-5, atol=1e-6)
    assert labels == ["run0.ckpt", "run1.ckpt", "run2.ckpt"]
