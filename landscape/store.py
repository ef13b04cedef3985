"""The results file (HDF5): root attributes, locking, writing as a run goes, resuming.

This module knows no analysis's schema: each analysis owns its groups (``surfaces``,
``curvature``, ``noise``) and writes them through :class:`ResultsWriter`'s generic methods.

A run writes ``OUT.partial`` and renames it to ``OUT`` only when every step finished, so a
file named ``OUT`` is always complete. ``OUT.lock`` (an OS lock through ``filelock``: ``flock``
on POSIX, ``msvcrt`` on Windows; released even when the process is killed) keeps a second
writer, thread or process, from writing the same file. The schema is documented in
``docs/architecture.md``; bump ``SCHEMA_VERSION`` when it changes.

Reading (:func:`open_results`, :func:`read_attr`) needs no lock: ``filelock`` is imported
when a writer takes its lock, so ``import landscape.views`` works wherever h5py does.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from . import distributed
from .errors import LandscapeError

SCHEMA_NAME = "landscape-results"
SCHEMA_VERSION = 1


def attr_value(value: Any) -> Any:
    """A value h5py can store as an attribute (None → '', dict → JSON, torch → numpy)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)  # plain str: subclasses such as torch's version string do not convert
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return np.array([str(v) for v in value], dtype=h5py.string_dtype())
        if all(isinstance(v, (int, float, bool, np.number)) for v in value):
            return np.asarray(value)
        return json.dumps(value, default=str)
    if isinstance(value, (str, int, float, bool, np.ndarray, np.number, np.bool_)):
        return value
    return str(value)


def read_attr(value: Any) -> Any:
    """Inverse of :func:`attr_value` for reading (bytes → str, string arrays → lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def set_attrs(node: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Store ``attrs`` on a file, group or dataset, converted by :func:`attr_value`."""
    for key, value in attrs.items():
        node.attrs[key] = attr_value(value)


def partial_path(path: str | os.PathLike[str]) -> Path:
    """``OUT.partial``: where a run writes until every step finished."""
    return Path(f"{path}.partial")


def lock_path(path: str | os.PathLike[str]) -> Path:
    """``OUT.lock``: the lock a writer holds while it runs."""
    return Path(f"{path}.lock")


def open_results(path: str | os.PathLike[str], schemas: Sequence[str] = (SCHEMA_NAME,)) -> h5py.File:
    """Open a results file read-only, with a clear error for anything that is not one
    (``schemas``: the root ``schema`` attributes accepted, e.g. also a tracker file's)."""
    path = Path(path)
    if not path.is_file():
        partial = partial_path(path)
        hint = f" (an unfinished scan left '{partial}': finish it with --resume)" if partial.exists() else ""
        raise LandscapeError(f"results file '{path}' not found{hint}")
    if not h5py.is_hdf5(path):
        raise LandscapeError(f"'{path}' is not an HDF5 file; give a results file written by landscape")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise LandscapeError(f"could not open '{path}' ({exc})") from None
    if read_attr(handle.attrs.get("schema", "")) not in schemas:
        handle.close()
        raise LandscapeError(f"'{path}' is an HDF5 file but not a landscape results file")
    return handle


class ResultsWriter:
    """Owns ``OUT.partial`` while a scan runs; use as a context manager.

    ``settings`` are the root attributes; on resume, the keys in ``must_match`` are
    compared with the interrupted scan's and a difference is refused. Groups under
    ``remade`` (e.g. directions drawn from a seed) are not finished work: a failed run whose
    file holds nothing else removes its ``.partial`` (see :func:`holds_finished_work`).
    """

    def __init__(self, path: str | Path, settings: Mapping[str, Any], *, resume: bool = False,
                 overwrite: bool = False, must_match: Sequence[str] = (), remade: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.lock_path = lock_path(self.path)
        self.settings = dict(settings)
        self.resume = resume
        self.overwrite = overwrite
        self.must_match = list(must_match)
        self.remade = tuple(remade)
        self.file: h5py.File | None = None
        self._lock_handle: Any = None
        self._copy_of_finished = False
        self.mirror = False  # a non-zero rank of a data-parallel run: an in-memory copy

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> ResultsWriter:
        if not distributed.is_writer():
            return self._open_mirror()
        try:
            if self.path.parent and not self.path.parent.exists():
                raise LandscapeError(f"output folder '{self.path.parent}' does not exist")
            self._acquire_lock()
            try:
                self._open()
            except BaseException:
                self._release_lock()
                raise
        except LandscapeError as exc:
            distributed.broadcast(str(exc), "opening the results file")
            raise
        if distributed.current() is not None:
            assert self.file is not None
            self.file.flush()
            distributed.broadcast(self.partial.read_bytes(), "sharing the results file")
        return self

    def _open_mirror(self) -> ResultsWriter:
        """Another rank of a data-parallel run: rank 0's file as it opened it, in memory. This
        rank writes the same groups there, so it skips (on resume) exactly what rank 0 skips;
        nothing reaches the disk."""
        opened: bytes | str = distributed.broadcast(b"", "hearing whether rank 0 opened the results file")
        if isinstance(opened, str):
            raise LandscapeError(opened)
        self.mirror = True
        self.file = h5py.File(io.BytesIO(opened), "r+")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.mirror:
            if self.file is not None:
                self.file.close()
                self.file = None
            return
        if self.file is not None:
            keep = exc is None or (not self._copy_of_finished and holds_finished_work(self.file, self.remade))
            self.file.close()
            self.file = None
            if not keep:
                # nothing worth resuming (or, for a copy of a finished file, the finished file
                # itself is still there, untouched): leave no file that blocks the rerun
                self.partial.unlink()
        self._release_lock()

    def _acquire_lock(self) -> None:
        # imported here: reading a results file needs no lock backend (nor fcntl)
        from filelock import FileLock, Timeout

        lock = FileLock(self.lock_path, timeout=0)  # refuse at once, never wait
        try:
            lock.acquire()
        except Timeout:
            raise LandscapeError(f"'{self.path}' is being written by another landscape process "
                                 f"(lock '{self.lock_path}'); wait for it or choose another -o") from None
        self._lock_handle = lock

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            # still held: no other writer can be inside. (Windows refuses to remove an open
            # file; there filelock removes it on release.)
            with contextlib.suppress(OSError):
                self.lock_path.unlink(missing_ok=True)
            self._lock_handle.release()
            self._lock_handle = None

    def _open(self) -> None:
        if self.resume and self.partial.exists():
            self.file = self._reopen_partial()
            return
        if self.resume and self.path.exists():
            # add missing steps to a finished file: work on a copy, so the finished file
            # stays as it is until this run finishes too
            shutil.copyfile(self.path, self.partial)
            self._copy_of_finished = True
            try:
                self.file = self._reopen_partial()
            except LandscapeError:
                self.partial.unlink()
                raise
            return
        if self.path.exists() and not self.overwrite:
            raise LandscapeError(f"'{self.path}' exists; pass --overwrite to replace it or "
                                 "--resume to add missing analyses")
        if self.partial.exists() and not self.overwrite:
            raise LandscapeError(f"an interrupted scan left '{self.partial}'; pass --resume to "
                                 "continue it or --overwrite to start over")
        self.partial.unlink(missing_ok=True)
        self.file = h5py.File(self.partial, "w")
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        set_attrs(self.file, {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION,
                              "complete": False, "created_utc": now, **self.settings})
        self.file.flush()

    def _reopen_partial(self) -> h5py.File:
        try:
            handle = h5py.File(self.partial, "a")
        except OSError as exc:
            raise LandscapeError(f"cannot resume: '{self.partial}' is damaged ({exc}); start over "
                                 "with --overwrite") from None
        stored = {k: read_attr(v) for k, v in handle.attrs.items()}
        # a key only one side has belongs to a command the other did not run (e.g. a surface
        # option when adding Hessian results): only keys both sides set must agree
        differing = [k for k in self.must_match if k in stored and k in self.settings
                     and _comparable(stored[k]) != _comparable(attr_value(self.settings[k]))]
        if differing:
            handle.close()
            detail = "; ".join(f"{k}: {stored.get(k)!r} then, {self.settings.get(k)!r} now" for k in differing[:3])
            raise LandscapeError(f"cannot resume '{self.partial}': settings differ from the "
                                 f"interrupted scan ({detail}); rerun with the same options or --overwrite")
        set_attrs(handle, {**{k: v for k, v in self.settings.items() if k not in stored}, "complete": False})
        return handle

    def finish(self) -> Path:
        """Mark complete, close and move ``OUT.partial`` to ``OUT``."""
        assert self.file is not None
        set_attrs(self.file, {"complete": True})
        self.file.close()
        self.file = None
        if not self.mirror:
            os.replace(self.partial, self.path)
        return self.path

    # -------------------------------------------------------------- generic groups
    @property
    def h5(self) -> h5py.File:
        """The open ``OUT.partial`` (only inside the ``with`` block)."""
        assert self.file is not None, "ResultsWriter used outside its context"
        return self.file

    def has_group(self, path: str, expected: Mapping[str, Any] | None = None) -> bool:
        """Whether a finished group is there. If it is but was computed with settings other
        than ``expected``, refuse: a resumed run must not pass off old results as the new ones."""
        if path not in self.h5 or not bool(self.h5[path].attrs.get("complete", False)):
            return False
        stored = self.h5[path].attrs
        expected = expected or {}
        differing = [k for k, v in expected.items()
                     if _comparable(stored.get(k, "")) != _comparable(attr_value(v))]
        if differing:
            detail = "; ".join(f"{k}={read_attr(stored.get(k, ''))!r} there, {expected[k]!r} asked"
                               for k in differing[:3])
            raise LandscapeError(f"'{self.path}' already holds '{path}' computed with other settings "
                                 f"({detail}); choose another -o, or --overwrite to start over")
        return True

    def write_group(self, path: str, attrs: Mapping[str, Any],
                    arrays: Mapping[str, Any]) -> h5py.Group:
        """Write (or replace) a finished analysis group: parameters as attributes, results
        as datasets; marked complete last, so a crash mid-write leaves it to be redone."""
        if path in self.h5:
            del self.h5[path]
        group = self.h5.create_group(path)
        set_attrs(group, {**attrs, "complete": False})
        for name, value in arrays.items():
            group.create_dataset(name, data=_as_array(value))
        group.attrs["complete"] = True
        self.h5.flush()
        return group

    def create_group(self, path: str, attrs: Mapping[str, Any], arrays: Mapping[str, Any]) -> h5py.Group:
        """A group to be filled as the run goes (e.g. NaN-filled grids and a ``done`` mask):
        ``attrs`` with ``complete=False``, ``arrays`` as its first datasets; flushed."""
        group = self.h5.create_group(path)
        set_attrs(group, {**attrs, "complete": False})
        for name, value in arrays.items():
            group.create_dataset(name, data=_as_array(value))
        self.h5.flush()
        return group

    def set_at(self, path: str, indices: np.ndarray, values: Any) -> np.ndarray:
        """Set the entries at flat ``indices`` (C order) of dataset ``path`` to ``values``;
        returns the whole updated array. Not flushed: call :meth:`flush`."""
        node = self.h5[path]
        data = node[()]
        data.reshape(-1)[indices] = values
        node[...] = data
        return data

    def mark_complete(self, path: str) -> None:
        """Mark group ``path`` finished (``complete=True``)."""
        self.h5[path].attrs["complete"] = True

    def flush(self) -> None:
        """Push everything written so far to the file (a kill after this keeps it)."""
        self.h5.flush()

def holds_finished_work(h5: h5py.File, remade: Sequence[str] = ()) -> bool:
    """Whether a file holds a finished analysis group (``complete``) or, in a group filled
    point by point (one with a boolean ``done`` dataset), at least one finished point. Groups
    under ``remade`` (cheap to make again, e.g. directions from their seed) do not count."""
    found = False

    def visit(name: str, node: Any) -> bool | None:
        nonlocal found
        if any(name == r or name.startswith(f"{r}/") for r in remade) or not isinstance(node, h5py.Group):
            return None
        done = node.get("done")
        if isinstance(done, h5py.Dataset) and done.dtype == bool:
            found = bool(done[()].any())
        else:
            found = bool(node.attrs.get("complete", False))
        return True if found else None

    h5.visititems(visit)
    return found


def _as_array(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _comparable(value: Any) -> Any:
    value = read_attr(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
