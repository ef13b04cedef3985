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
