"""The trust boundary: nothing named inside a checkpoint runs unless the user trusts the file.

A checkpoint's metadata may name its model factory, data factory and loss. Without trust only
landscape's own built-ins and data files are used; the user's explicit specs always run.
Every refusal here is checked against a real side effect (a marker file that code named by
the file would create), not only against the message.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import landscape
from landscape import cli, zoo
from landscape.errors import LandscapeError
from landscape.loading import build_model, load_checkpoint, load_problem
from tests import models
from tests.conftest import ROOT


def touching(marker) -> dict:
    """kwargs for ``subprocess:run`` that create ``marker``."""
    return {"args": ["touch", str(marker)]}


def refusal(path, **options) -> str:
    with pytest.raises(LandscapeError) as caught:
        load_problem(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_model_factory_named_by_metadata_needs_trust(tmp_path):
    marker = tmp_path / "ran"
    path = landscape.save(tmp_path / "x.pt", zoo.digits_mlp(), model_spec="subprocess:run",
                          model_kwargs=touching(marker), data_spec="digits", loss="cross_entropy")
    assert refusal(path) == (
        f"checkpoint '{path}' names model factory 'subprocess:run' in its metadata; landscape runs code "
        "named by a file only with --trust (trust=True): pass --trust if you trust the file's source, "
        "or give --model explicitly")
    with pytest.raises(LandscapeError, match="--trust"):
        build_model(load_checkpoint(path))
    assert not marker.exists()


def test_data_factory_named_by_metadata_needs_trust(tmp_path):
    marker = tmp_path / "ran"
    path = landscape.save(tmp_path / "x.pt", zoo.digits_mlp(), model_spec="digits_mlp",
                          data_spec="subprocess:run", data_kwargs=touching(marker), loss="cross_entropy")
    message = refusal(path)
    assert "names data factory 'subprocess:run' in its metadata" in message and "give --data explicitly" in message
    assert not marker.exists()


def test_loss_named_by_metadata_needs_trust_and_is_not_even_imported(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "losses.py").write_text(f"open({str(marker)!r}, 'w').close()\n\n"
                                        "def loss(output, target):\n    raise AssertionError\n")
    spec = f"{tmp_path / 'losses.py'}:loss"
    path = landscape.save(tmp_path / "x.pt", zoo.digits_mlp(), model_spec="digits_mlp", data_spec="digits",
                          loss=spec)
    message = refusal(path)
    assert f"names loss function '{spec}' in its metadata" in message and "give --loss explicitly" in message
    assert not marker.exists()
    assert "loss function 'tests.models:smooth_cross_entropy'" in refusal(landscape.save(
        tmp_path / "y.pt", zoo.digits_mlp(), model_spec="digits_mlp", data_spec="digits",
        loss="tests.models:smooth_cross_entropy"))


def test_safetensors_header_specs_need_trust(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "m.safetensors"
    save_file(models.mlp().state_dict(), str(path), metadata={
        "landscape.model": "subprocess:run", "landscape.model_kwargs": json.dumps(touching(marker)),
        "landscape.data": "tests.models:vector_data", "landscape.loss": "cross_entropy"})
    assert "names data factory 'tests.models:vector_data'" in refusal(path)
    assert "names model factory 'subprocess:run'" in refusal(path, data="tests.models:vector_data")
    assert not marker.exists()


def test_trusted_metadata_specs_are_called(tmp_path):
    torch.manual_seed(0)
    model = models.MLP(hidden=9)
    path = landscape.save(tmp_path / "x.pt", model, model_spec="tests.models:MLP", model_kwargs={"hidden": 9},
                          data_spec="tests.models:vector_data", data_kwargs={"batch_size": 8},
                          loss="tests.models:smooth_cross_entropy")
    assert "--trust" in refusal(path)
    problem, provenance = load_problem(path, trust=True)
    assert (provenance.model_spec, provenance.data_spec, provenance.loss_spec, provenance.trusted) == \
        ("tests.models:MLP", "tests.models:vector_data", "tests.models:smooth_cross_entropy", True)
    assert [b.size for b in problem.batches()] == [8, 8, 8, 6]  # the data factory got its kwargs
    x, y = models.vectors(30)
    with torch.no_grad():
        assert problem.loss() == pytest.approx(float(models.smooth_cross_entropy(model(x), y)), rel=1e-6)
    built, spec = build_model(load_checkpoint(path), trust=True)
    assert spec == "tests.models:MLP" and built.fc1.out_features == 9


def test_explicit_specs_are_the_users_own(tmp_path):
    marker = tmp_path / "ran"
    path = landscape.save(tmp_path / "x.pt", models.mlp(), model_spec="subprocess:run",
                          model_kwargs=touching(marker), data_spec="subprocess:run",
                          data_kwargs=touching(marker), loss="subprocess:run")
    problem, provenance = load_problem(path, model="tests.models:mlp", data="tests.models:vector_data",
                                       loss="cross_entropy")
    assert provenance.model_spec == "tests.models:mlp" and not provenance.trusted
    assert problem.loss() > 0 and not marker.exists()


@pytest.mark.parametrize("name", ["digits_mlp.pt", "digits_cnn.pt"])
def test_bundled_checkpoints_name_built_ins_and_load_untrusted(name):
    problem, provenance = load_problem(ROOT / "data" / name, max_batches=1)
    assert provenance.model_spec in zoo.BUILTINS and provenance.data_spec in zoo.BUILTINS
    assert not provenance.trusted and np.isfinite(problem.loss())


def test_zoo_module_specs_and_data_files_in_metadata_need_no_trust(tmp_path):
    x, y = models.vectors(20)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((20, 64), np.float32), y=y.numpy())
    path = landscape.save(tmp_path / "x.pt", zoo.digits_mlp(hidden=5), model_spec="landscape.zoo:digits_mlp",
                          model_kwargs={"hidden": 5}, data_spec=str(data), loss="nll")
    problem, provenance = load_problem(path)
    assert (provenance.model_spec, provenance.data_spec, provenance.loss_spec) == \
        ("landscape.zoo:digits_mlp", str(data), "nll")
    assert problem.num_examples("train") == 20
    assert "'landscape.zoo:_digits_arrays'" in refusal(landscape.save(
        tmp_path / "y.pt", zoo.digits_mlp(), model_spec="digits_mlp", data_spec="landscape.zoo:_digits_arrays",
        loss="cross_entropy"))


def test_interpolate_vets_the_metadata_of_every_checkpoint(tmp_path, capsys):
    """The first checkpoint is self-contained, so the second one's metadata names its model."""
    marker = tmp_path / "ran"
    model = models.mlp()
    first = tmp_path / "a.pt"
    torch.jit.trace(model, models.vectors(4)[0]).save(str(first))
    second = landscape.save(tmp_path / "b.pt", model, model_spec="subprocess:run",
                            model_kwargs=touching(marker))
    argv = ["interpolate", str(first), str(second), "--data", "tests.models:vector_data", "--loss",
            "cross_entropy", "--points", "3", "--quiet", "--no-report", "-o", str(tmp_path / "i.h5")]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert f"checkpoint '{second}' names model factory 'subprocess:run'" in error and "--trust" in error
    assert not marker.exists()
    # with --trust the second checkpoint's own factory builds its model
    landscape.save(second, model, model_spec="tests.models:mlp")
    assert cli.main(argv) == 2 and "--trust" in capsys.readouterr().err
    assert cli.main([*argv, "--trust"]) == 0, capsys.readouterr().err


def test_pickled_modules_still_need_trust_with_built_in_metadata(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save({"model": models.mlp(), "landscape": {"model": "digits_mlp"}}, path)
    with pytest.raises(LandscapeError, match="pickled tests.models.MLP"):
        load_checkpoint(path)
