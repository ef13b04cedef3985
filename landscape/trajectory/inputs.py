"""Where a trajectory's weights come from: a folder of checkpoints, a glob, or a tracker file.

Checkpoints are ordered by the step (else epoch) their metadata records
(``landscape.save(..., step=...)``), else by natural name order (``ckpt_2`` before
``ckpt_10``). A tracker file (``landscape-tracker``, schema version 1, written during
training) holds only weights: one ``parameters/step_*`` group per saved record.
"""

from __future__ import annotations

import glob as globbing
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError

TRACKER_SCHEMA = "landscape-tracker"
TRACKER_VERSIONS = (1,)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")
SourceKind = Literal["folder", "glob", "tracker"]


@dataclass(frozen=True)
class Source:
    """What ``landscape trajectory SOURCE`` names: its kind, the checkpoint files (none for a
    tracker), and the name the default output file takes."""

    kind: SourceKind
    text: str
    files: tuple[str, ...]
    stem: str


def is_tracker_file(path: Path) -> bool:
    """An HDF5 file whose root ``schema`` attribute is ``landscape-tracker``."""
    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as h5:
        schema = h5.attrs.get("schema", "")
    return (schema.decode() if isinstance(schema, bytes) else str(schema)) == TRACKER_SCHEMA


def natural_key(path: str) -> list[Any]:
    """``ckpt_2.pt`` before ``ckpt_10.pt``: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", Path(path).name)]


def resolve_source(text: str) -> Source:
    """A folder (its checkpoint files), a tracker file, or a glob; one clear line when none matches."""
    path = Path(text)
    if path.is_dir():
        files = sorted((str(p) for p in path.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES),
                       key=natural_key)
        return Source("folder", text, tuple(files), path.resolve().name or "trajectory")
    if is_tracker_file(path):
        return Source("tracker", text, (), path.stem)
    if path.is_file():  # one checkpoint: refused later as too few
        return Source("glob", text, (text,), path.stem)
    files = sorted((f for f in globbing.glob(text) if Path(f).is_file()), key=natural_key)
    if not files:
        raise LandscapeError(f"trajectory: '{text}' is no folder, no tracker file, and as a glob matches no "
                             "file; give a folder of checkpoints, a quoted glob such as 'run/ckpt_*.pt', or a "
                             "tracker .h5")
    parent = Path(files[0]).resolve().parent.name
    return Source("glob", text, tuple(files), parent or "trajectory")


def recorded_step(metadata: dict[str, Any]) -> tuple[int, str] | None:
    """The training step (else epoch) a checkpoint's metadata records, and which it was."""
    provenance = metadata.get("provenance")
    for where in (provenance if isinstance(provenance, dict) else {}, metadata):
        for key in ("step", "global_step", "epoch"):
            value = where.get(key)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                return int(value), "epoch" if key == "epoch" else "step"
    return None


def checkpoint_order(files: Sequence[str], metadata: Sequence[dict[str, Any]]) -> tuple[list[int], list[int], str]:
    """The order to take ``files`` in, their steps, and what the steps are: every file's
    recorded step (or every file's epoch) when all record one and they differ, else the
    natural name order numbered 0, 1, ..."""
    found = [recorded_step(m) for m in metadata]
    kinds = {f[1] for f in found if f is not None}
    if all(f is not None for f in found) and len(kinds) == 1:
        steps = [f[0] for f in found if f is not None]
        if len(set(steps)) == len(steps):
            order = sorted(range(len(files)), key=lambda i: steps[i])
            return order, [steps[i] for i in order], f"metadata {kinds.pop()}"
    order = sorted(range(len(files)), key=lambda i: natural_key(files[i]))
    return order, list(range(len(files))), "file name order"


@dataclass(frozen=True)
class TrackerRecords:
    """The weights a tracker file saved: steps in order and each record's parameters."""

    path: str
    steps: tuple[int, ...]
    parameters: tuple[dict[str, Tensor], ...]
    attrs: dict[str, Any]


def no_parameters(path: str) -> str:
    """The line refusing a tracker file that saved no weights."""
    return (f"tracker file '{path}' holds no saved parameters (no 'parameters/step_*' group): the trajectory "
            "needs weights; run the tracker with parameters saved and rerun")


def read_tracker(path: str) -> TrackerRecords:
    """Every ``parameters/step_*`` record of a tracker file, by step; one line when it has none."""
    with h5py.File(path, "r") as h5:
        version = int(np.asarray(h5.attrs.get("schema_version", -1)).item())
        if version not in TRACKER_VERSIONS:
            raise LandscapeError(f"tracker file '{path}' has schema_version {version}; this landscape reads "
                                 f"{', '.join(map(str, TRACKER_VERSIONS))}: upgrade landscape")
        records = h5.get("parameters")
        if not isinstance(records, h5py.Group):
            raise LandscapeError(no_parameters(path))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5.attrs.get("parameter_names", [])]
        loaded = []
        for key, group in records.items():
            if not key.startswith("step_") or not isinstance(group, h5py.Group):
                continue
            order = names or list(group)
            missing = [n for n in order if n not in group]
            if missing:
                raise LandscapeError(f"tracker file '{path}': record '{key}' lacks parameter '{missing[0]}' "
                                     "(a record cut short?); rerun the tracker or delete that record")
            step = int(np.asarray(group.attrs.get("step", int(key.removeprefix("step_")))).item())
            loaded.append((step, {n: torch.from_numpy(np.asarray(group[n][()])) for n in order}))
        attrs = {k: v for k, v in h5.attrs.items()}
    if not loaded:
        raise LandscapeError(no_parameters(path))
    loaded.sort(key=lambda record: record[0])
    return TrackerRecords(path, tuple(s for s, _ in loaded), tuple(p for _, p in loaded), attrs)
