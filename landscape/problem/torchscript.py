"""TorchScript models, which ``torch.func`` cannot call at other weights, as FX graphs."""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from ..errors import LandscapeError, first_line
from .data import move


def script_to_graph(module: torch.jit.ScriptModule, sample_inputs: Any) -> nn.Module:
    """A TorchScript module as an FX graph module with the same parameter names, so that
    ``torch.func`` can evaluate it at other weights (converted in eval mode; batch dim dynamic).

    ``sample_inputs`` (a batch's ``inputs``) trace the conversion; the module is not modified.
    """
    from torch._export.converter import TS2EPConverter

    scripted = copy.deepcopy(module).eval()
    first = next(iter(scripted.parameters()))
    sample = tree_map(lambda t: move(t, first.device, first.dtype), sample_inputs)
    args = tuple(sample) if isinstance(sample, tuple) else (sample,)
    export_log = logging.getLogger("torch._export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TS2EPConverter(scripted, args).convert().module()
    except Exception as exc:
        raise LandscapeError(f"this TorchScript model could not be converted for torch.func "
                             f"({type(exc).__name__}: {first_line(exc)}); pass --model "
                             "package.module:factory to load its weights into the Python model") from None
    finally:
        export_log.setLevel(level)


def in_eval_mode(module: nn.Module) -> nn.Module:
    """``module.eval()``; exported graphs (``torch.export``, converted TorchScript) have their
    mode baked in and refuse ``eval()``, so they are returned as they are."""
    try:
        return module.eval()
    except NotImplementedError:
        return module
