"""A scan: a sequence of steps, each computing one analysis of a Problem into the results file.

Steps skip what the file already holds, so ``resume`` after a kill redoes only the unfinished
work (for surfaces: only the grid points not marked done). The steps themselves live with
their analyses (``landscape.surfaces.step``, ``landscape.curvature.step``, ``landscape.noise.step``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__, distributed
from .problem import Problem
from .store import ResultsWriter


def _nothing_to_check(_problem: Problem) -> None:
    return None


@dataclass
class ScanStep:
    """One analysis: ``run`` computes it on the problem and writes it (skipping finished work).

    ``check`` validates the step's options against the problem (sizes, memory) and raises
    :class:`LandscapeError`; :func:`run_scan` calls every step's check before the results
    file is created, so a bad option never leaves a file behind.
    """

    name: str
    run: Callable[[Problem, ResultsWriter], None]
    check: Callable[[Problem], None] = _nothing_to_check


def now() -> float:
    """The budget clock: monotonic seconds (a module function, so tests can replace it)."""
    return time.monotonic()


@dataclass(frozen=True)
class TimeBudget:
    """``--time-budget``: ``seconds`` of wall time counted from ``started`` (:func:`now`), which
    the CLI takes when the command starts, so loading the checkpoint and data counts."""

    seconds: float
    started: float

    @classmethod
    def start(cls, seconds: float) -> TimeBudget:
        """A budget whose clock starts now."""
        return cls(seconds, now())

    def spent(self) -> bool:
        """Whether the budget is used up (checked between steps and between surface chunks)."""
        # every rank of a data-parallel run follows rank 0's clock, so all stop at the same chunk
        return distributed.broadcast(now() - self.started >= self.seconds, "checking the time budget")


class BudgetSpent(Exception):
    """Raised by a step that stopped because the time budget is spent; :func:`run_scan`
    keeps the ``.partial`` file, which ``--resume`` continues."""


# Root attributes that must be equal for a scan to be resumed.
RESUME_KEYS = ("checkpoint_sha256", "model_spec", "data_spec", "loss_spec", "seed", "dtype", "autocast", "directions",
               "bn_policy", "normalization", "include_1d", "orthogonal", "checkpoints",
               "num_examples_train", "num_examples_test")

# Groups a step can make again at no loss (directions are drawn again from their seed): alone
# they do not make a failed run's .partial worth keeping.
REMADE_GROUPS = ("directions",)

# The ``command`` root attribute of results made through the Python API (the CLI records
# its command line).
PYTHON_API = "python API"


def base_settings(problem: Problem, provenance: Mapping[str, Any], *, command: str = PYTHON_API,
                  **extra: Any) -> dict[str, Any]:
    """Root attributes of a results file: versions, provenance, problem settings, options.

    ``command`` is recorded as given: the CLI passes its command line (``landscape scan ...``);
    from Python it is :data:`PYTHON_API` unless the caller says otherwise. Nothing is read
    from ``sys.argv`` (in a notebook that is the kernel's command line).
    """
    return {
        "landscape_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "command": command,
        **provenance,
        **problem.describe(),
        **extra,
    }


def run_scan(problem: Problem, output: str | Path, steps: Sequence[ScanStep],
             settings: Mapping[str, Any], *, resume: bool = False, overwrite: bool = False,
             budget: TimeBudget | None = None) -> Path:
    """Run ``steps`` into ``output`` (written as ``output.partial`` until all finish); returns
    ``output``, or ``output.partial`` when ``budget`` ran out first.

    Every step's ``check`` runs first: options that cannot work are refused before the
    file exists. With a ``budget``, a step is started only while time is left, and a step
    that can stop part-way (a surface, after the chunk in flight) raises :class:`BudgetSpent`;
    a step that cannot (Lanczos, noise, a measure) runs to its end. The ``.partial`` is kept.
    """
    for step in steps:
        step.check(problem)
    with ResultsWriter(output, settings, resume=resume, overwrite=overwrite,
                       must_match=RESUME_KEYS, remade=REMADE_GROUPS) as writer:
        try:
            for step in steps:
                if budget is not None and budget.spent():
                    raise BudgetSpent(step.name)
                step.run(problem, writer)
        except BudgetSpent:
            return writer.partial  # leaving the block without finish() keeps the .partial
        return writer.finish()
