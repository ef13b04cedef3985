"""Loading: every checkpoint format, model/data/loss specs, and the trust boundary.

Each format is checked the same way: the Problem it yields holds exactly the original
model's weights (torch.equal) and its empirical risk equals the original module's loss on
the same data (float32 model; rtol 1e-6 covers float32 summation-order differences).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import landscape
from landscape.errors import LandscapeError
from landscape.loading import LOSSES, load_checkpoint, load_data, load_problem, resolve_loss
from tests import models
from tests.conftest import ROOT

MODEL = "tests.models:mlp"
DATA = "tests.models:vector_data"
MODELS_FILE = str(ROOT / "tests" / "models.py")


def reference_loss(model, splits, loss_fn=F.cross_entropy, split="train") -> float:
    x = torch.cat([b[0] for b in splits[split]])
    y = torch.cat([b[1] for b in splits[split]])
    with torch.no_grad():
        return float(loss_fn(model.eval()(x), y))


def assert_matches(problem, model, splits=None, loss_fn=F.cross_entropy) -> None:
    splits = splits or models.vector_data()
    expected = {n: p for n, p in model.named_parameters()}
    assert list(problem.params) == list(expected)
    for name, p in expected.items():
        assert torch.equal(problem.params[name], p.detach()), name
    for split in splits:
        assert problem.loss(split=split) == pytest.approx(reference_loss(model, splits, loss_fn, split), rel=1e-6)


def trained_like(seed: int = 5):
    """An MLP whose weights differ from the factory's (so loading must really load them)."""
    return models.seeded(models.MLP, seed=seed)


@pytest.mark.parametrize("wrap, fmt", [
    (lambda sd: sd, "state_dict"),
    (lambda sd: {"state_dict": sd, "epoch": 3}, "dict['state_dict']"),
    (lambda sd: {"model": sd, "optimizer": {"lr": 0.1}}, "dict['model']"),
    (lambda sd: {"model_state_dict": sd}, "dict['model_state_dict']"),
    (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "state_dict"),  # DataParallel
    (lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()}, "state_dict"),  # torch.compile
])
def test_pickled_state_dict_layouts(tmp_path, wrap, fmt):
    model = trained_like()
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(model.state_dict()), path)
    problem, provenance = load_problem(path, model=MODEL, data=DATA, loss="cross_entropy")
    assert provenance.checkpoint_format == fmt
    assert_matches(problem, model)


def test_lightning_checkpoint_with_model_prefix(tmp_path):
    model = trained_like()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["criterion.weight"] = torch.ones(3)  # other submodules of the LightningModule
    path = tmp_path / "epoch=3-step=120.ckpt"
    torch.save({"pytorch-lightning_version": "2.4.0", "epoch": 3, "global_step": 120,
                "state_dict": state, "optimizer_states": [{"state": {}, "param_groups": []}],
                "lr_schedulers": [], "callbacks": {}, "hyper_parameters": {"lr": 0.1}}, path)
    problem, provenance = load_problem(path, model=MODEL, data=DATA, loss="cross_entropy")
    assert provenance.checkpoint_format == "lightning"
    assert_matches(problem, model)


def test_safetensors_without_metadata_needs_specs(tmp_path):
    model = trained_like()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    with pytest.raises(LandscapeError, match="--model"):
        load_problem(path, data=DATA, loss="cross_entropy")
    problem, provenance = load_problem(path, model=MODEL, data=DATA, loss="cross_entropy")
    assert provenance.checkpoint_format == "safetensors"
    assert_matches(problem, model)


def test_safetensors_with_landscape_metadata_needs_nothing_else(tmp_path):
    torch.manual_seed(0)
    model = models.MLP(hidden=9)
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path), metadata={
        "landscape.model": "tests.models:MLP", "landscape.model_kwargs": json.dumps({"hidden": 9}),
        "landscape.data": DATA, "landscape.loss": "cross_entropy", "other": "ignored"})
    problem, provenance = load_problem(path, trust=True)  # its specs name test code (test_trust.py)
    assert (provenance.model_spec, provenance.data_spec, provenance.loss_spec) == \
        ("tests.models:MLP", DATA, "cross_entropy")
    assert_matches(problem, model)


def test_landscape_save_metadata_rebuilds_model_data_and_loss(tmp_path):
    torch.manual_seed(0)
    model = models.MLP(hidden=9)
    path = landscape.save(tmp_path / "run" / "ckpt.pt", model, model_spec="tests.models:MLP",
                          model_kwargs={"hidden": 9}, data_spec=DATA, loss="cross_entropy", seed=0,
                          script="tests")
    raw = torch.load(path, weights_only=True)  # loadable without trusting the file
    assert raw["landscape"]["provenance"] == {"seed": 0, "script": "tests"}
    problem, provenance = load_problem(path, trust=True)  # its specs name test code (test_trust.py)
    assert provenance.checkpoint_sha256 == load_checkpoint(path).sha256 and len(provenance.checkpoint_sha256) == 64
    assert_matches(problem, model)
    # an explicit option wins over the metadata
    _, explicit = load_problem(path, loss="tests.models:smooth_cross_entropy", trust=True)
    assert explicit.loss_spec == "tests.models:smooth_cross_entropy" and explicit.model_spec == "tests.models:MLP"


def test_bundled_checkpoint_loads_from_its_metadata():
    problem, provenance = load_problem(ROOT / "data" / "digits_mlp.pt")
    assert (provenance.model_spec, provenance.data_spec, provenance.loss_spec) == \
        ("digits_mlp", "digits", "cross_entropy")
    assert problem.num_examples("train") == 1437 and problem.num_examples("test") == 360
    assert problem.evaluate_point({}, "test")["accuracy"] > 0.9  # it is a trained model


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_loads_alone_or_into_a_python_model(tmp_path, how):
    model = trained_like()
    example = models.vectors(4)[0]
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, example)
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    assert load_checkpoint(path).format == "torchscript"
    problem, _ = load_problem(path, model=MODEL, data=DATA, loss="cross_entropy")
    assert_matches(problem, model)
    problem, provenance = load_problem(path, data=DATA, loss="cross_entropy")
    assert provenance.model_spec == "torchscript"
    assert_matches(problem, model)
    # and at weights other than the stored ones (what a surface needs), like the Python model
    reference = landscape.Problem.create(model, F.cross_entropy, models.vector_data())
    moved = {n: p + 0.1 * torch.randn_like(p) for n, p in reference.params.items()}
    assert problem.loss(moved) == pytest.approx(reference.loss(moved), rel=1e-6)


def test_torch_export_program_is_self_contained(tmp_path):
    model = trained_like().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (models.vectors(4)[0],), dynamic_shapes=({0: batch},))
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    problem, provenance = load_problem(path, data=DATA, loss="cross_entropy")
    assert provenance.checkpoint_format == "torch.export"
    assert problem.loss() == pytest.approx(reference_loss(model, models.vector_data()), rel=1e-6)
    point = {n: p * 1.5 for n, p in problem.params.items()}
    scaled = models.seeded(models.MLP, seed=5)
    scaled.load_state_dict({n: p * 1.5 for n, p in model.state_dict().items()})
    assert problem.loss(point) == pytest.approx(reference_loss(scaled, models.vector_data()), rel=1e-6)


def test_pickled_module_needs_trust(tmp_path):
    model = trained_like()
    path = tmp_path / "whole_model.pt"
    torch.save(model, path)
    with pytest.raises(LandscapeError, match="--trust"):
        load_problem(path, data=DATA, loss="cross_entropy")
    problem, provenance = load_problem(path, data=DATA, loss="cross_entropy", trust=True)
    assert provenance.trusted and provenance.checkpoint_format == "pickled module"
    assert_matches(problem, model)


@pytest.mark.parametrize("spec", ["tests.models:mlp", f"{MODELS_FILE}:mlp", "tests.models:MLP"])
def test_model_specs(tmp_path, spec):
    model = trained_like()
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    problem, provenance = load_problem(path, model=spec, data=DATA, loss="cross_entropy")
    assert provenance.model_spec == spec
    assert_matches(problem, model)


@pytest.mark.parametrize("spec, message", [
    ("no_such_builtin", "neither a built-in"),
    ("no_such_package.models:mlp", "cannot import"),
    ("tests.models:no_such_factory", "no attribute"),
    ("does/not/exist.py:mlp", "not found"),
    ("tests.models:vector_data", "not an nn.Module"),
    ("tests.models:lstm", "does not fit"),
])
def test_bad_model_specs_are_explained(tmp_path, spec, message):
    path = tmp_path / "ckpt.pt"
    torch.save(trained_like().state_dict(), path)
    with pytest.raises(LandscapeError, match=message):
        load_problem(path, model=spec, data=DATA, loss="cross_entropy")


def test_data_files_pt_and_npz(tmp_path):
    x, y = models.vectors(30)
    xt, yt = models.vectors(12, seed=1)
    torch.save({"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}, tmp_path / "d.pt")
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    from_pt = load_data(str(tmp_path / "d.pt"), batch_size=16)
    assert set(from_pt) == {"train", "test"} and [len(b[1]) for b in from_pt["train"]] == [16, 14]
    from_npz = load_data(str(tmp_path / "d.npz"), batch_size=7)
    assert set(from_npz) == {"train"} and sum(len(b[1]) for b in from_npz["train"]) == 30
    model = trained_like()
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    problem, _ = load_problem(path, model=MODEL, data=str(tmp_path / "d.npz"), loss="cross_entropy",
                              batch_size=7)
    assert [b.size for b in problem.batches()] == [7, 7, 7, 7, 2]
    assert problem.loss() == pytest.approx(reference_loss(model, {"train": [(x, y)]}), rel=1e-6)


@pytest.mark.parametrize("spec, splits", [
    ("tests.models:vector_data", {"train", "test"}),
    ("tests.models:vector_pair", {"train", "test"}),
    ("tests.models:vector_loader", {"train"}),
    (f"{MODELS_FILE}:vector_data", {"train", "test"}),
])
def test_data_factories(tmp_path, spec, splits):
    model = trained_like()
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    problem, _ = load_problem(path, model=MODEL, data=spec, loss="cross_entropy")
    assert set(problem.split_names) == splits
    assert problem.loss() == pytest.approx(reference_loss(model, models.vector_data()), rel=1e-6)


def test_dict_batches_from_a_factory(tmp_path):
    model = models.dict_model()
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    problem, _ = load_problem(path, model="tests.models:dict_model", data="tests.models:dict_data",
                              loss="cross_entropy")
    batch = models.dict_data()["train"]
    with torch.no_grad():
        losses = [float(F.cross_entropy(model(image=b["image"], extra=b["extra"]), b["label"])) * len(b["label"])
                  for b in batch]
    assert problem.loss() == pytest.approx(sum(losses) / 20, rel=1e-6)


@pytest.mark.parametrize("loss, model_spec, data_spec", [
    ("cross_entropy", MODEL, DATA),
    ("nll", "tests.models:log_softmax_mlp", DATA),
    ("mse", MODEL, "tests.models:regression_data"),
    ("bce_with_logits", MODEL, "tests.models:binary_data"),
    ("tests.models:smooth_cross_entropy", MODEL, DATA),
])
def test_named_and_callable_losses(tmp_path, loss, model_spec, data_spec):
    from landscape.loading import resolve_callable
    model = resolve_callable(model_spec, "model")()
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    problem, provenance = load_problem(path, model=model_spec, data=data_spec, loss=loss)
    loss_fn = LOSSES.get(loss) or models.smooth_cross_entropy
    splits = resolve_callable(data_spec, "data")()
    assert provenance.loss_spec == loss
    assert problem.loss() == pytest.approx(reference_loss(model, splits, loss_fn), rel=1e-6)
    assert problem.has_accuracy == (loss != "mse")


def test_resolve_loss_accepts_a_callable_and_refuses_unknown_names():
    fn, name = resolve_loss(models.smooth_cross_entropy)
    assert fn is models.smooth_cross_entropy and name == "smooth_cross_entropy"
    with pytest.raises(LandscapeError, match="unknown loss"):
        resolve_loss("hinge")
    with pytest.raises(LandscapeError, match="no loss"):
        resolve_loss(None)


def test_problem_accepts_a_torchscript_module_without_changing_it():
    model = trained_like()
    scripted = torch.jit.script(model)
    before = {k: v.clone() for k, v in scripted.state_dict().items()}
    problem = landscape.Problem.create(scripted, F.cross_entropy, models.vector_data())
    assert_matches(problem, model)
    assert all(torch.equal(before[k], v) for k, v in scripted.state_dict().items())


# ---------------------------------------------------------------------------- unreadable files
def load_error(path, trust: bool = False) -> str:
    """The one-line message of loading ``path`` as a checkpoint."""
    with pytest.raises(LandscapeError) as caught:
        load_checkpoint(path, trust=trust)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    assert "may be truncated or corrupt" not in message and "Weights only load failed" not in message
    return message


def test_pickled_module_refusal_names_the_class_briefly(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(trained_like(), path)
    message = load_error(path)
    assert message == (f"checkpoint '{path}' holds Python objects beyond tensors (e.g. a pickled "
                       "tests.models.MLP); loading them runs code from the file: pass --trust only if "
                       "you trust its source, or re-save it as a state_dict")


def test_trusted_pickle_whose_class_is_gone_says_so(tmp_path, monkeypatch):
    (tmp_path / "vanishing_net.py").write_text(
        "from torch import nn\n\nclass Net(nn.Linear):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing_net
    path = tmp_path / "whole.pt"
    torch.save(vanishing_net.Net(2, 2), path)
    monkeypatch.delitem(sys.modules, "vanishing_net")
    (tmp_path / "vanishing_net.py").unlink()
    message = load_error(path, trust=True)
    assert "whose code cannot be imported here (No module named 'vanishing_net')" in message
    assert "re-save the model as a state_dict" in message


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.parametrize("content, expected", [
    (b"", "is an empty file (0 bytes)"),
    (b"epoch 3 loss 0.51\nepoch 4 loss 0.48\n", "is not a PyTorch checkpoint (it looks like a text file)"),
    ('{"model": "r\u00e9seau"}\n'.encode(), "is not a PyTorch checkpoint (it looks like a text file)"),
    (bytes(range(256)) * 8, "is not a PyTorch checkpoint or is truncated/corrupt"),
])
def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path, content, expected, trust):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(content)
    message = load_error(path, trust)
    assert message.startswith(("checkpoint ", "could not read checkpoint ")) and f"'{path}'" in message
    assert expected in message and "Error" not in message and "KeyError" not in message


def test_random_bytes_and_a_cut_off_zip_are_corrupt(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    assert load_error(noise) == (f"could not read checkpoint '{noise}': it is not a PyTorch checkpoint or is "
                                 "truncated/corrupt; check the path, or save it again")
    whole = tmp_path / "whole.pt"
    torch.save(trained_like().state_dict(), whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:1000])
    assert "without its end, so it is truncated; save or copy it again" in load_error(cut)


@pytest.mark.parametrize("trust", [False, True])
def test_results_file_given_as_checkpoint_points_to_its_checkpoint(tmp_path, trust):
    import h5py
    path = tmp_path / "scan.landscape.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["schema"] = "landscape-results"
        h5.attrs["checkpoint_path"] = "runs/ckpt.pt"
    assert load_error(path, trust) == (
        f"'{path}' is a landscape results file, not a checkpoint; give the checkpoint the scan was "
        "made from, 'runs/ckpt.pt' (recorded in the file's checkpoint_path attribute)")
    with h5py.File(path, "w") as h5:
        h5.attrs["schema"] = "landscape-results"
    assert "(its path is recorded in the file's checkpoint_path attribute)" in load_error(path, trust)
    with h5py.File(path, "w") as h5:
        h5["weights"] = np.zeros(3)
    assert load_error(path, trust).startswith(f"'{path}' is an HDF5 file, not a PyTorch checkpoint; give ")


# ---------------------------------------------------------------------------- spec files and their neighbours
@pytest.fixture
def stranger_module():
    """``stranger`` is imported from a test folder: forget it afterwards."""
    yield
    sys.modules.pop("stranger", None)


def write_stranger(folder) -> None:
    (folder / "stranger.py").write_text(
        "from tests import models\n\n"
        "def loader():\n    return models.vector_data()\n\n"
        "def build():\n    return models.MLP()\n")


def test_a_spec_file_imports_its_neighbours(tmp_path, stranger_module):
    write_stranger(tmp_path)
    (tmp_path / "sib.py").write_text("from stranger import loader\n")
    before = list(sys.path)
    assert str(tmp_path) not in before
    splits = load_data(f"{tmp_path / 'sib.py'}:loader")
    assert set(splits) == {"train", "test"} and len(splits["train"]) == 2
    assert sys.path == before  # the folder was on sys.path only while sib.py ran


def test_a_module_spec_imports_from_the_working_directory(tmp_path, monkeypatch, stranger_module):
    write_stranger(tmp_path)
    here = tmp_path.resolve()
    # as under the console script: neither '' nor the working directory on sys.path
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p and p != "." and Path(p).resolve() != here])
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    path = tmp_path / "ckpt.pt"
    model = trained_like()
    torch.save(model.state_dict(), path)
    problem, provenance = load_problem(path, model="stranger:build", data="stranger:loader", loss="cross_entropy")
    assert provenance.model_spec == "stranger:build"
    assert_matches(problem, model)
    assert sys.path == before


def test_shipped_digits_are_scikit_learns_digits_and_split():
    """landscape/datasets/digits.npz replaces scikit-learn at run time: same pixels, labels and
    train/test split as ``load_digits`` + ``train_test_split(test_size=360, random_state=0,
    stratify=y)``, so the bundled checkpoints' numbers do not move."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from landscape import zoo

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, torch.tensor(digits.target), test_size=360, random_state=0,
                                              stratify=digits.target)
    shipped = zoo.digits(batch_size=2000)
    assert torch.equal(shipped["train"][0][0], x_tr) and torch.equal(shipped["train"][0][1], y_tr)
    assert torch.equal(shipped["test"][0][0], x_te) and torch.equal(shipped["test"][0][1], y_te)
