"""From files and specs to a :class:`~landscape.problem.Problem`.

Checkpoint formats: plain state_dicts, dicts holding ``state_dict``/``model``, Lightning
``.ckpt``, safetensors, TorchScript and ``torch.export`` programs. Model, data and loss are
named by metadata written by :func:`save`, by ``package.module:callable`` or
``path/to/file.py:callable`` specs, or by built-in names (:mod:`landscape.zoo`).

Trust: nothing named inside a file runs unless ``trust=True``. Pickled checkpoints are read
with ``weights_only=True``, and a model, data or loss spec found in a file's metadata is used
only if it names a built-in or a data file (:func:`metadata_spec`); specs the caller passes
explicitly are the caller's own and always run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import zoo
from .errors import LandscapeError
from .problem import BNPolicy, EvalMode, LossFn, Problem

METADATA_KEY = "landscape"

LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
    "nll": F.nll_loss,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
}

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
                              f"imported here ({_first_line(message)}); run landscape where the code that "
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


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no details"


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


# ---------------------------------------------------------------------------- specs
def resolve_callable(spec: str, what: str) -> Callable[..., Any]:
    """``name`` (built-in), ``package.module:attr`` or ``path/to/file.py:attr``."""
    if ":" not in spec:
        if spec in zoo.BUILTINS:
            return zoo.BUILTINS[spec]
        raise LandscapeError(f"{what} '{spec}' is neither a built-in ({', '.join(zoo.BUILTINS)}) "
                             "nor of the form package.module:callable or path/to/file.py:callable")
    target, _, attr = spec.rpartition(":")
    module = _import_file(target, spec, what) if target.endswith(".py") else _import_module(target, spec, what)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise LandscapeError(f"{what} '{spec}': '{target}' has no attribute '{attr}'") from None


def _import_file(target: str, spec: str, what: str) -> Any:
    """Run ``target`` (a .py file) as a module once; like a script, it imports its neighbours."""
    file = Path(target)
    if not file.is_file():
        raise LandscapeError(f"{what} '{spec}': file '{file}' not found")
    name = f"_landscape_user_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, file)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        with _on_sys_path(str(file.resolve().parent)):
            module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise LandscapeError(f"{what} '{spec}': importing '{file}' failed "
                             f"({type(exc).__name__}: {exc})") from None
    return module


def _import_module(target: str, spec: str, what: str) -> Any:
    """Import ``package.module`` with the working directory importable, as under ``python -m``
    (the console script does not put it on sys.path)."""
    try:
        with _on_sys_path(os.getcwd()):
            return importlib.import_module(target)
    except ImportError as exc:
        raise LandscapeError(f"{what} '{spec}': cannot import '{target}' ({exc})") from None


@contextmanager
def _on_sys_path(folder: str) -> Iterator[None]:
    """``folder`` at the front of sys.path for the block, unless it is already there."""
    here = Path(folder).resolve()
    if any(Path(entry or os.curdir).resolve() == here for entry in sys.path if isinstance(entry, str)):
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


# What each metadata key names, and the option that names it instead.
METADATA_KEYS = {"model": ("model factory", "--model"), "data": ("data factory", "--data"),
                 "loss": ("loss function", "--loss")}


def metadata_spec(checkpoint: Checkpoint, key: str, *, trust: bool) -> str | None:
    """The model, data or loss spec (``key``) named by ``checkpoint``'s metadata, if any.

    A spec from a file is the file's author's choice, not the user's: one that would import
    and call code is returned only with ``trust``. Built-in names (``landscape.zoo``, the
    named losses) and data files (read without unpickling code) are always fine.
    """
    spec = checkpoint.metadata.get(key)
    what, option = METADATA_KEYS[key]
    if spec is None or spec == "":
        return None
    if not isinstance(spec, str):
        raise LandscapeError(f"checkpoint '{checkpoint.path}' names its {what} as a "
                             f"{type(spec).__name__}, not a string, in its metadata: give {option} explicitly")
    if trust or _runs_no_outside_code(spec):
        return spec
    raise LandscapeError(f"checkpoint '{checkpoint.path}' names {what} '{spec}' in its metadata; landscape "
                         "runs code named by a file only with --trust (trust=True): pass --trust if you "
                         f"trust the file's source, or give {option} explicitly")


def _runs_no_outside_code(spec: str) -> bool:
    """Whether ``spec`` names a built-in model/data/loss or a data file (nothing from elsewhere runs)."""
    builtin = spec.removeprefix("landscape.zoo:")
    return (builtin in zoo.BUILTINS or spec in LOSSES
            or (":" not in spec and Path(spec).suffix in DATA_FILE_SUFFIXES))


def resolve_loss(loss: str | LossFn | None) -> tuple[LossFn, str]:
    """A loss callable and the name to record, from a name, a spec or a callable."""
    if loss is None:
        raise LandscapeError("no loss given: pass --loss (cross_entropy, mse, nll, "
                             "bce_with_logits or module:callable), or save it in the checkpoint")
    if callable(loss):
        return loss, getattr(loss, "__qualname__", repr(loss))
    if loss in LOSSES:
        return LOSSES[loss], loss
    if ":" in loss:
        return resolve_callable(loss, "loss"), loss
    raise LandscapeError(f"unknown loss '{loss}'; use one of {', '.join(LOSSES)} or module:callable")


def build_model(checkpoint: Checkpoint, model_spec: str | None = None,
                model_kwargs: Mapping[str, Any] | None = None, *,
                trust: bool = False) -> tuple[nn.Module, str]:
    """The model with the checkpoint's weights, and the spec that built it.

    ``model_spec`` is the caller's own; without it the checkpoint's metadata names the model,
    which runs only if built in or with ``trust`` (:func:`metadata_spec`).
    """
    if checkpoint.module is not None and model_spec is None:
        return checkpoint.module, checkpoint.format
    spec = model_spec or metadata_spec(checkpoint, "model", trust=trust)
    if not spec:
        raise LandscapeError(f"checkpoint '{checkpoint.path}' holds only weights and no model "
                             "metadata: pass --model package.module:factory (or file.py:factory)")
    kwargs = dict(model_kwargs if model_kwargs is not None else
                  (checkpoint.metadata.get("model_kwargs") or {}) if spec == checkpoint.metadata.get("model") else {})
    factory = resolve_callable(spec, "model")
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise LandscapeError(f"model factory '{spec}' failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, nn.Module):
        raise LandscapeError(f"model factory '{spec}' returned {type(model).__name__}, not an nn.Module")
    if checkpoint.state_dict is not None:
        state = checkpoint.state_dict
    elif checkpoint.module is not None:
        state = checkpoint.module.state_dict()
    else:
        raise LandscapeError(f"checkpoint '{checkpoint.path}' holds neither weights nor a module")
    model.load_state_dict(fit_state_dict(state, model, checkpoint.path))
    return model, spec


def fit_state_dict(state: Mapping[str, Tensor], model: nn.Module, where: Path | str) -> dict[str, Tensor]:
    """Match checkpoint keys to the model's, removing a wrapper prefix (``model.``,
    ``module.``, ``_orig_mod.``) if that is what it takes; explain any mismatch."""
    wanted = model.state_dict()
    best: dict[str, Tensor] = dict(state)
    prefixes = {""} | {k[: i + 1] for k in state for i, ch in enumerate(k) if ch == "."}
    for prefix in sorted(prefixes, key=len):
        candidate = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if set(wanted) <= set(candidate):
            best = {k: candidate[k] for k in wanted}
            break
    missing = [k for k in wanted if k not in best]
    unexpected = [k for k in best if k not in wanted]
    if missing or unexpected:
        raise LandscapeError(f"state_dict in '{where}' does not fit the model: missing "
                             f"{_few(missing)}, unexpected {_few(unexpected)}; is --model right?")
    bad = [f"{k} {list(best[k].shape)} vs {list(v.shape)}" for k, v in wanted.items()
           if best[k].shape != v.shape]
    if bad:
        raise LandscapeError(f"state_dict in '{where}' does not fit the model: shape mismatch "
                             f"{_few(bad)} (checkpoint vs model); is --model (or its kwargs) right?")
    return best


def _few(items: list[str], n: int = 3) -> str:
    if not items:
        return "none"
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


# ---------------------------------------------------------------------------- data
def load_data(spec: str, *, batch_size: int = 256, kwargs: Mapping[str, Any] | None = None,
              ) -> dict[str, Iterable[Any]]:
    """Data splits from a ``.pt``/``.npz`` file of arrays or from a data factory spec.

    Files hold ``x``/``y`` (one train split) or ``x_train``/``y_train`` and
    ``x_test``/``y_test``. A factory returns an iterable of batches, a ``(train, test)``
    pair or a ``{"train": ..., "test": ...}`` mapping.
    """
    path = Path(spec)
    if path.suffix in DATA_FILE_SUFFIXES and ":" not in spec:
        return _data_file(path, batch_size)
    factory = resolve_callable(spec, "data")
    kwargs = dict(kwargs or {})
    if "batch_size" in kwargs and not _accepts(factory, "batch_size"):
        del kwargs["batch_size"]
    try:
        produced = factory(**kwargs)
    except Exception as exc:
        raise LandscapeError(f"data factory '{spec}' failed ({type(exc).__name__}: {exc})") from None
    return as_splits(produced, spec)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def as_splits(produced: Any, where: str) -> dict[str, Iterable[Any]]:
    """What a data factory returned as ``{split: batches}``: a train/test mapping, a
    ``(train, test)`` pair or one iterable of batches (train); anything else is refused."""
    if isinstance(produced, Mapping) and produced and all(k in ("train", "test") for k in produced):
        return dict(produced)
    if isinstance(produced, tuple) and len(produced) == 2 and not isinstance(produced[0], Tensor):
        return {"train": produced[0], "test": produced[1]}
    if isinstance(produced, Iterable):
        return {"train": produced}
    raise LandscapeError(f"data '{where}' produced a {type(produced).__name__}, not batches")


def _data_file(path: Path, batch_size: int) -> dict[str, Iterable[Any]]:
    if not path.is_file():
        raise LandscapeError(f"data file '{path}' not found")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                raw = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LandscapeError(f"could not read data file '{path}' ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, Mapping):
        raise LandscapeError(f"data file '{path}' must hold a dict of arrays (x, y or x_train, ...)")
    pairs = {"train": ("x", "y")} if "x" in raw else {s: (f"x_{s}", f"y_{s}") for s in ("train", "test")
                                                       if f"x_{s}" in raw}
    if not pairs or any(y not in raw for _, y in pairs.values()):
        raise LandscapeError(f"data file '{path}' must hold x and y, or x_train/y_train "
                             f"(and x_test/y_test); it holds {sorted(raw)}")
    if batch_size <= 0:
        raise LandscapeError(f"batch size must be positive, got {batch_size}")
    splits: dict[str, Iterable[Any]] = {}
    for split, (xk, yk) in pairs.items():
        x, y = torch.as_tensor(raw[xk]), torch.as_tensor(raw[yk])
        if len(x) != len(y):
            raise LandscapeError(f"data file '{path}': {xk} has {len(x)} rows but {yk} has {len(y)}")
        splits[split] = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]
    return splits


# ---------------------------------------------------------------------------- all together
@dataclass
class Provenance:
    """Where a problem came from, recorded as attributes of every results file."""

    checkpoint_path: str
    checkpoint_sha256: str
    checkpoint_format: str
    model_spec: str
    data_spec: str
    loss_spec: str
    trusted: bool
    training_batch_size: int | None = None  # recorded by whoever saved the checkpoint

    def as_attrs(self) -> dict[str, Any]:
        """The fields as a dict of results-file root attributes."""
        return dict(self.__dict__)


def training_batch_size(checkpoint: Checkpoint) -> int | None:
    """The training mini-batch size ``landscape.save(..., batch_size=B)`` recorded, if any."""
    recorded = checkpoint.metadata.get("provenance")
    size = recorded.get("batch_size") if isinstance(recorded, Mapping) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


def load_problem(checkpoint_path: str | Path, *, model: str | None = None, data: str | None = None,
                 loss: str | None = None, trust: bool = False, device: str | None = None,
                 dtype: torch.dtype | None = None, bn_policy: BNPolicy = "eval",
                 batch_size: int | None = None, max_batches: int | None = None,
                 max_examples: int | None = None,
                 metrics: Mapping[str, Callable[..., Any]] | None = None,
                 eval_mode: EvalMode = "auto") -> tuple[Problem, Provenance]:
    """Checkpoint + specs → Problem, with the provenance to record.

    ``model``, ``data`` and ``loss`` default to what the checkpoint's metadata names; those
    run code from the file's author only with ``trust`` unless they are built-ins.
    """
    checkpoint = load_checkpoint(checkpoint_path, trust=trust)
    meta = checkpoint.metadata
    # data and loss named by metadata are vetted here and the model's in build_model, all before
    # any factory runs, so a refusal comes before any code the file names
    data_spec = data or metadata_spec(checkpoint, "data", trust=trust)
    loss_spec = loss or metadata_spec(checkpoint, "loss", trust=trust)
    net, model_spec = build_model(checkpoint, model, trust=trust)
    if not data_spec:
        raise LandscapeError(f"checkpoint '{checkpoint.path}' names no data: pass --data "
                             "(a .pt/.npz file, package.module:factory or file.py:factory)")
    data_kwargs = dict(meta.get("data_kwargs") or {}) if data_spec == meta.get("data") else {}
    if batch_size is not None:
        if batch_size <= 0:
            raise LandscapeError(f"batch size must be positive, got {batch_size}")
        data_kwargs["batch_size"] = batch_size
    splits = load_data(data_spec, batch_size=batch_size or 256, kwargs=data_kwargs)
    loss_fn, loss_name = resolve_loss(loss_spec)
    problem = Problem.create(net, loss_fn, splits, device=device, dtype=dtype, bn_policy=bn_policy,
                             max_batches=max_batches, max_examples=max_examples, metrics=metrics,
                             eval_mode=eval_mode)
    provenance = Provenance(str(checkpoint.path), checkpoint.sha256, checkpoint.format,
                            model_spec, data_spec, loss_name, trust, training_batch_size(checkpoint))
    return problem, provenance
