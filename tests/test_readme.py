"""The README's shell commands that use the bundled checkpoints run as written, in README
order, in a fresh folder, as a newcomer would type them after the set-up command."""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

CHROMIUM = Path("/usr/bin/chromium")


def readme_commands() -> list[str]:
    """``landscape ...`` commands of the ```bash blocks that use the bundled checkpoints
    (``data/``) or their results (``digits_*``); ``pip install ... &&`` prefixes dropped."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        if "data/" not in block and "digits_" not in block:
            continue
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                if part.strip().startswith("landscape "):
                    commands.append(part.strip())
    return commands


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_readme_names_the_main_commands():
    commands = readme_commands()
    assert commands[0] == "landscape scan data/digits_mlp.pt"  # the set-up command's job
    assert {c.split()[1] for c in commands} >= {"scan", "surface", "hessian", "noise", "info", "view"}


@pytest.mark.slow
def test_readme_commands_run_in_order_in_a_fresh_folder(tmp_path):
    shutil.copytree(ROOT / "data", tmp_path / "data")
    before = {p.name: sha256(p) for p in (tmp_path / "data").iterdir()}
    for command in readme_commands():
        if "--export" in command and not CHROMIUM.exists():
            continue  # static export needs Debian's chromium (.ci/run installs it)
        done = run_cli(*shlex.split(command)[1:], cwd=tmp_path, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        assert done.stderr == "", f"{command}\n{done.stderr}"  # LANDSCAPE_QUIET: no bars, no warnings
    assert {p.name: sha256(p) for p in (tmp_path / "data").iterdir()} == before  # inputs untouched
    written = {p.name for p in tmp_path.iterdir()}
    assert {"digits_mlp.landscape.h5", "digits_mlp.surface.h5", "digits_mlp.hessian-plane.h5",
            "digits_mlp.hessian.h5", "digits_mlp.noise.h5"} <= written


def readme_python_block(marker: str) -> str:
    """The ```python block of the README that contains ``marker``."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if marker in b]
    assert len(blocks) == 1, marker
    return blocks[0]


@pytest.mark.slow
def test_readme_notebook_lines_run_on_a_real_model_and_loaders(tmp_path, monkeypatch):
    """Top-5 eigenvalues and a 2-D surface take two lines after the imports, as the README
    shows them; here with the bundled digits MLP and DataLoaders standing for the user's."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import landscape
    from landscape import zoo

    block = readme_python_block("ls.hessian_eigs")
    body = [line for line in block.strip().splitlines() if line and not line.startswith("import")]
    assert body[0].startswith("problem = ") and body[1].startswith("eigs = ") and body[2].startswith("plane = ")
    model = zoo.digits_mlp()  # the user's module, with the bundled θ*
    model.load_state_dict(torch.load(ROOT / "data" / "digits_mlp.pt", weights_only=True)["state_dict"])
    loaders = {s: DataLoader(TensorDataset(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])),
                             batch_size=128) for s, batches in zoo.digits().items()}
    monkeypatch.chdir(tmp_path)
    scope = {"model": model, "train_loader": loaders["train"], "test_loader": loaders["test"]}
    exec(compile(block, "README.md", "exec"), scope)
    eigs, plane = scope["eigs"], scope["plane"]
    assert eigs.all_converged and eigs.eigenvalues[0] == pytest.approx(0.961606, rel=1e-4)  # the scan's λ_max
    assert plane.values["test"]["loss"].shape == (41, 41)
    with landscape.store.open_results(tmp_path / "run.landscape.h5") as h5:
        assert {"surfaces/2d", "curvature/hessian_top", "directions/d1"} <= set(_paths(h5))


def _paths(h5) -> list[str]:
    found: list[str] = []
    h5.visit(found.append)
    return found
