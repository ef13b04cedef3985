"""Checkpoint files of every supported format, read without running code from them, and
:func:`save`, which writes weights with the specs that rebuild model, data and loss."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import LandscapeError, first_line

METADATA_KEY = "landscape"

DATA_FILE_SUFFIXES = (".pt", ".pth", ".npz")
RESULTS_SCHEMA = "landscape-results"  # root attribute ``schema`` of the toolkit's results files


@dataclass
class Checkpoint:
    """What a checkpoint file held: weights or a self-contained module, and metadata."""

    path: Path
    sha256: str
    format: str
    state_dict: dict[str, Tensor] | None = None
    module: nn.Module | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- saving
def save(path: str | Path, model: nn.Module, *, model_spec: str, data_spec: str | None = None,
         loss: str | None = None, model_kwargs: Mapping[str, Any] | None = None,
         data_kwargs: Mapping[str, Any] | None = None, **extra: Any) -> Path:
    """Save ``model``'s state_dict with the specs that rebuild its model, data and loss.

    The file loads with ``weights_only=True``: specs are strings, kwargs plain values.
    ``extra`` (seed, script, epochs, ...) is stored as provenance; ``batch_size=B`` there is
    the training mini-batch size, the default B of ``landscape noise``.
    """
    metadata = {"model": model_spec, "model_kwargs": dict(model_kwargs or {}),
                "data": data_spec, "data_kwargs": dict(data_kwargs or {}), "loss": loss,
                "provenance": dict(extra)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, METADATA_KEY: metadata}, path)
    return path


# ---------------------------------------------------------------------------- reading
def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path, *, trust: bool = False) -> Checkpoint:
    """Read a checkpoint file of any supported format without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"checkpoint '{path}' not found (or not a file)")
    sha = file_sha256(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, sha)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in n for n in names):
            return _load_torchscript(path, sha)
        if any("serialized_exported_program" in n or n.endswith("models/model.json") for n in names):
            return _load_exported(path, sha)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as exc:
        raise _unreadable(path, exc) from None
    return _from_object(obj, path, sha)


def _unreadable(path: Path, exc: BaseException) -> LandscapeError:
    """One line saying why ``path`` could not be read as a checkpoint and what to do.

    The file itself is looked at (empty, HDF5, text, cut-off zip) because the loaders'
    messages describe their parser's state, not the file.
    """
    message = str(exc)
    if "GLOBAL " in message or "add_safe_globals" in message or "Trying to call reduce" in message:
        # torch's weights_only unpickler refused a class or function: a trust question, not a broken file
        found = re.search(r"GLOBAL (\S+)", message)
        example = f" (e.g. a pickled {found.group(1)})" if found else ""
        return LandscapeError(f"checkpoint '{path}' holds Python objects beyond tensors{example}; loading "
                              "them runs code from the file: pass --trust only if you trust its source, "
                              "or re-save it as a state_dict")
    if isinstance(exc, ModuleNotFoundError) or "Can't get attribute" in message:
        return LandscapeError(f"checkpoint '{path}' holds pickled Python objects whose code cannot be "
                              f"imported here ({first_line(exc)}); run landscape where the code that "
                              "saved it is importable, or re-save the model as a state_dict")
    if path.stat().st_size == 0:
        return LandscapeError(f"checkpoint '{path}' is an empty file (0 bytes); its save was probably "
                              "interrupted: save it again or give another file")
    if (hdf5 := _hdf5_error(path)) is not None:
        return hdf5
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if _looks_like_text(head):
        return LandscapeError(f"checkpoint '{path}' is not a PyTorch checkpoint (it looks like a text "
                              "file); give the file written by torch.save, safetensors, TorchScript or "
                              "torch.export")
    if head.startswith(b"PK\x03\x04"):
        return LandscapeError(f"could not read checkpoint '{path}': it is a zip archive (as torch.save "
                              "writes) without its end, so it is truncated; save or copy it again")
    return LandscapeError(f"could not read checkpoint '{path}': it is not a PyTorch checkpoint or is "
                          "truncated/corrupt; check the path, or save it again")


def _hdf5_error(path: Path) -> LandscapeError | None:
    """The error for an HDF5 file given as a checkpoint (a results file says where its checkpoint is)."""
    import h5py

    if not h5py.is_hdf5(path):
        return None
    try:
        with h5py.File(path, "r") as h5:
            attrs = {k: _text(h5.attrs[k]) for k in ("schema", "checkpoint_path") if k in h5.attrs}
    except Exception:  # an unreadable HDF5 file is still not a checkpoint
        attrs = {}
    if attrs.get("schema") != RESULTS_SCHEMA:
        return LandscapeError(f"'{path}' is an HDF5 file, not a PyTorch checkpoint; give the file written "
                              "by torch.save, safetensors, TorchScript or torch.export")
    source = attrs.get("checkpoint_path")
    where = f", '{source}' (recorded in the file's checkpoint_path attribute)" if source else \
        " (its path is recorded in the file's checkpoint_path attribute)"
    return LandscapeError(f"'{path}' is a landscape results file, not a checkpoint; give the checkpoint "
                          f"the scan was made from{where}")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are printable UTF-8 (a multi-byte character may be cut at the end)."""
    if not head or b"\x00" in head:
        return False
    for cut in range(4):
        try:
            text = head[:len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    return all(ch.isprintable() or ch in "\t\n\r\f" for ch in text)


def _load_safetensors(path: Path, sha: str) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            state = {k: handle.get_tensor(k) for k in handle.keys()}
            header = handle.metadata() or {}
    except Exception as exc:
        raise _unreadable(path, exc) from None
    metadata: dict[str, Any] = {k.removeprefix("landscape."): v for k, v in header.items()
                                if k.startswith("landscape.")}
    for key in ("model_kwargs", "data_kwargs"):  # safetensors metadata are strings: kwargs are JSON
        if key in metadata:
            try:
                metadata[key] = json.loads(metadata[key] or "{}")
            except json.JSONDecodeError:
                raise LandscapeError(f"checkpoint '{path}': metadata 'landscape.{key}' is not a JSON "
                                     f"object ({metadata[key][:60]!r})") from None
    return Checkpoint(path, sha, "safetensors", state_dict=state, metadata=metadata)


def _load_torchscript(path: Path, sha: str) -> Checkpoint:
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise _unreadable(path, exc) from None
    return Checkpoint(path, sha, "torchscript", module=module)


def _load_exported(path: Path, sha: str) -> Checkpoint:
    try:
        module = torch.export.load(str(path)).module()
    except Exception as exc:
        raise _unreadable(path, exc) from None
    return Checkpoint(path, sha, "torch.export", module=module)


def _from_object(obj: Any, path: Path, sha: str) -> Checkpoint:
    if isinstance(obj, nn.Module):
        return Checkpoint(path, sha, "pickled module", module=obj)
    if not isinstance(obj, Mapping):
        raise LandscapeError(f"checkpoint '{path}' holds a {type(obj).__name__}, not a state_dict "
                             "or a dict with one")
    metadata = dict(obj.get(METADATA_KEY) or {})
    if "pytorch-lightning_version" in obj and isinstance(obj.get("state_dict"), Mapping):
        return Checkpoint(path, sha, "lightning", state_dict=_tensors(obj["state_dict"], path),
                          metadata=metadata)
    for key in ("state_dict", "model_state_dict", "model"):
        inner = obj.get(key)
        if isinstance(inner, nn.Module):
            return Checkpoint(path, sha, "pickled module", module=inner, metadata=metadata)
        if isinstance(inner, Mapping):
            return Checkpoint(path, sha, f"dict['{key}']", state_dict=_tensors(inner, path),
                              metadata=metadata)
    return Checkpoint(path, sha, "state_dict", state_dict=_tensors(obj, path), metadata=metadata)


def _tensors(state: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise LandscapeError(f"checkpoint '{path}' holds no tensors where a state_dict was expected")
    return tensors
