"""Specs to callables: built-in names, ``package.module:callable`` and ``file.py:callable``;
the trust rule for specs a file names; losses; building the model and fitting its weights."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .. import zoo
from ..errors import LandscapeError
from ..problem import LossFn
from .checkpoints import DATA_FILE_SUFFIXES, Checkpoint


def token_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over the last axis, averaged over every token: logits [..., classes]
    against class indices [...], e.g. a language model's [batch, seq, vocab] outputs and
    next-token targets (``F.cross_entropy`` wants the classes in dim 1)."""
    return F.cross_entropy(output.flatten(0, -2), target.flatten())


LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "token_cross_entropy": token_cross_entropy,
    "mse": F.mse_loss,
    "nll": F.nll_loss,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
}


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
        raise LandscapeError(f"no loss given: pass --loss ({', '.join(LOSSES)} or module:callable), "
                             "or save it in the checkpoint")
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
