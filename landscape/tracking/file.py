"""The tracker file (schema ``landscape-tracker``, version 1): the one code that knows it.

One record per measured training step. Every record opens the file in append mode, writes
the saved parameters, then every series but ``step``, then ``step``, and flushes and closes
it: a record is complete exactly when ``series/step`` has its entry, so a training run
killed between records leaves a readable file, and a reader (or a reopened tracker) counts
the complete records as ``len(series/step)`` and ignores any longer tail. Closing after each
record also lets ``landscape view`` read the file while training goes on.

Layout (docs/architecture.md has the table)::

    /                     attrs: schema, schema_version, every, learning_rate, momentum,
                                 parameter_names, created_utc, landscape_version
    /series/<name>        1-D, resizable, one entry per record (SERIES)
    /parameters/step_{step:010d}/<parameter name>   attrs: step
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import LandscapeError
from ..store import read_attr, set_attrs

SCHEMA = "landscape-tracker"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Record:
    """One measured step; field order = the ``series`` datasets (``step`` is written last)."""

    step: int
    loss: float
    lambda_max: float
    lambda_max_residual: float  # relative Ritz residual ‖Hv − λv‖/|λ|
    lambda_max_matvecs: int
    trace: float = math.nan
    trace_stderr: float = math.nan
    noise_scale: float = math.nan  # B_simple = tr(Σ)/‖ḡ‖²
    seconds: float = 0.0


SERIES: dict[str, type] = {f.name: (np.int64 if f.type in ("int", int) else np.float64) for f in fields(Record)}


def parameters_key(step: int) -> str:
    """The subgroup of ``parameters`` holding the weights saved at ``step``."""
    return f"step_{step:010d}"


@dataclass(frozen=True)
class TrackerSettings:
    """The root attributes that say how the series were recorded."""

    every: int
    learning_rate: float
    momentum: float
    parameter_names: tuple[str, ...]


def _refuse_foreign(path: Path) -> None:
    if not h5py.is_hdf5(path):
        raise LandscapeError(f"tracker file '{path}' exists and is not an HDF5 file; give a new path")
    with h5py.File(path, "r") as h5:
        schema = read_attr(h5.attrs.get("schema", ""))
    if schema != SCHEMA:
        what = "a landscape results file" if schema == "landscape-results" else "an HDF5 file of another kind"
        raise LandscapeError(f"'{path}' is {what}, not a tracker file; give a new path for the tracker")


def _check_same(path: Path, h5: h5py.File, settings: TrackerSettings) -> None:
    version = int(h5.attrs.get("schema_version", 0))
    if version != SCHEMA_VERSION:
        raise LandscapeError(f"tracker file '{path}' has schema version {version}, this landscape writes "
                             f"{SCHEMA_VERSION}; give a new path")
    names = tuple(read_attr(h5.attrs["parameter_names"]))
    if names != settings.parameter_names:
        raise LandscapeError(f"tracker file '{path}' was recorded for other parameters ({len(names)} names, "
                             f"first {names[:1]}) than this model's ({len(settings.parameter_names)}, first "
                             f"{settings.parameter_names[:1]}); give a new path for this model")
    every = int(h5.attrs["every"])
    if every != settings.every:
        raise LandscapeError(f"tracker file '{path}' records every {every} steps, not every={settings.every}; "
                             f"pass every={every} to append to it, or give a new path")


def _drop_incomplete(h5: h5py.File) -> int:
    """Cut the series to the complete records and remove parameters saved for no complete step;
    returns the last complete step (−1 when there is none)."""
    series = h5["series"]
    steps = series["step"][()]
    for name in SERIES:
        if series[name].shape[0] != steps.shape[0]:
            series[name].resize((steps.shape[0],))
    kept = {parameters_key(int(s)) for s in steps}
    for key in [k for k in h5["parameters"] if k not in kept]:
        del h5["parameters"][key]
    return int(steps[-1]) if steps.size else -1


def open_tracker_file(path: str | os.PathLike[str], settings: TrackerSettings, version: str) -> int:
    """Create the file, or check an existing one and drop what a killed run left incomplete;
    returns the last complete step (−1 for a new file)."""
    path = Path(path)
    if path.is_dir():
        raise LandscapeError(f"tracker path '{path}' is a folder; give a file path such as run/tracker.h5")
    if not path.parent.is_dir():
        raise LandscapeError(f"the folder of tracker path '{path}' does not exist; create it first")
    if path.exists():
        _refuse_foreign(path)
        with h5py.File(path, "a") as h5:
            _check_same(path, h5, settings)
            return _drop_incomplete(h5)
    with h5py.File(path, "w") as h5:
        set_attrs(h5, {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "every": settings.every,
                       "learning_rate": settings.learning_rate, "momentum": settings.momentum,
                       "parameter_names": list(settings.parameter_names),
                       "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "landscape_version": version})
        series = h5.create_group("series")
        for name, dtype in SERIES.items():
            series.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(256,), dtype=dtype)
        h5.create_group("parameters")
    return -1


def append_record(path: str | os.PathLike[str], record: Record,
                  parameters: Mapping[str, np.ndarray] | None) -> None:
    """Write one record: parameters, the series but ``step``, then ``step``; flush, close."""
    with h5py.File(path, "a") as h5:
        if parameters is not None:
            group = h5["parameters"].create_group(parameters_key(record.step))
            group.attrs["step"] = record.step
            for name, values in parameters.items():
                group.create_dataset(name, data=values)
        series = h5["series"]
        entries = dict(zip(SERIES, astuple(record), strict=True))
        for name in [*(n for n in SERIES if n != "step"), "step"]:
            column = series[name]
            column.resize((column.shape[0] + 1,))
            column[-1] = entries[name]
        h5.flush()


@dataclass(frozen=True)
class TrackerRun:
    """A tracker file read back: its settings and its complete records as arrays."""

    settings: TrackerSettings
    series: dict[str, np.ndarray]
    saved_steps: tuple[int, ...]
    attrs: dict[str, Any]


def read_series(h5: h5py.File) -> dict[str, np.ndarray]:
    """The complete records of an open tracker file (a longer tail of a killed write is cut)."""
    series = h5["series"]
    count = series["step"].shape[0]
    return {name: series[name][:count] for name in SERIES if name in series}


def read_tracker(path: str | os.PathLike[str]) -> TrackerRun:
    """Read a tracker file (refusing any other file with one clear line)."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"tracker file '{path}' not found")
    _refuse_foreign(path)
    with h5py.File(path, "r") as h5:
        attrs = {k: read_attr(v) for k, v in h5.attrs.items()}
        settings = TrackerSettings(int(attrs["every"]), float(attrs["learning_rate"]), float(attrs["momentum"]),
                                   tuple(attrs["parameter_names"]))
        series = read_series(h5)
        complete = {parameters_key(int(s)) for s in series["step"]}
        saved = tuple(int(h5["parameters"][k].attrs["step"]) for k in h5["parameters"] if k in complete)
    return TrackerRun(settings, series, saved, attrs)


def read_parameters(path: str | os.PathLike[str], step: int, names: Sequence[str] | None = None
                    ) -> dict[str, np.ndarray]:
    """The parameters saved at ``step`` (all of them, or ``names``)."""
    with h5py.File(path, "r") as h5:
        group = h5["parameters"].get(parameters_key(step))
        if group is None:
            raise LandscapeError(f"tracker file '{path}' holds no parameters for step {step}; "
                                 "saved steps are listed by read_tracker(path).saved_steps")
        return {n: group[n][()] for n in (names or read_attr(h5.attrs["parameter_names"]))}
