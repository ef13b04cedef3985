"""Sharpness measures as a scan step: one HDF5 group per model and measure.

``sharpness/<key>/<measure>``: the :class:`SharpnessResult`'s attributes and datasets, plus
``model_label`` and ``options`` (the :class:`SharpnessConfig` settings as JSON: a resume with
other settings is refused). ``<key>`` is ``c0`` for a scan's checkpoint and ``c0, c1, ...``
for the checkpoints of ``landscape compare``. Each measure is written when it finishes, so a
resumed run computes only the missing ones.
"""

from __future__ import annotations

from ..problem import Problem
from ..scan import ScanStep
from ..store import ResultsWriter
from .config import SharpnessConfig
from .measures import compute_measures
from .result import SharpnessResult

GROUP = "sharpness"


def measure_path(key: str, name: str) -> str:
    """The group of measure ``name`` of model ``key``."""
    return f"{GROUP}/{key}/{name}"


def write_measure(writer: ResultsWriter, result: SharpnessResult, config: SharpnessConfig, *,
                  key: str = "c0", label: str = "") -> None:
    """Write one measure's group, with the model's label and the settings it was computed with."""
    writer.write_group(measure_path(key, result.name),
                       {**result.attrs(), "model_label": label, "options": config.settings()}, result.arrays())


def sharpness_step(config: SharpnessConfig, *, key: str = "c0", label: str = "",
                   problem: Problem | None = None) -> ScanStep:
    """Compute ``config``'s measures on ``problem`` (default: the scan's) into ``sharpness/<key>``."""
    def target(scan_problem: Problem) -> Problem:
        return problem if problem is not None else scan_problem

    def run(scan_problem: Problem, writer: ResultsWriter) -> None:
        expected = {"options": config.settings()}
        skip = lambda name: writer.has_group(measure_path(key, name), expected)  # noqa: E731
        for result in compute_measures(target(scan_problem), config, skip):
            write_measure(writer, result, config, key=key, label=label)

    return ScanStep(f"{GROUP}/{key}", run, lambda scan_problem: config.check(target(scan_problem)))
