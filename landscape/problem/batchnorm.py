"""BatchNorm: detection and the 'recompute' policy's running statistics at other parameters."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TypeGuard

import torch
from torch import Tensor, nn

from ..params import Params
from .data import Batch, call_model


def is_batchnorm(module: nn.Module) -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    """True for every BatchNorm layer (1d/2d/3d, lazy and sync variants)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def has_batchnorm(model: nn.Module) -> bool:
    """True when any submodule of ``model`` is a BatchNorm layer."""
    return any(is_batchnorm(m) for m in model.modules())


def statistics_model(model: nn.Module) -> nn.Module:
    """A private copy of ``model`` whose BatchNorm layers (only) are in train mode with a
    cumulative average (``momentum=None``); dropout and everything else stay as they are."""
    bn_model = copy.deepcopy(model)
    for module in bn_model.modules():
        if is_batchnorm(module):
            module.train()
            module.momentum = None
    return bn_model


def recompute_running_stats(bn_model: nn.Module, params: Mapping[str, Tensor],
                            buffers: Mapping[str, Tensor], at: Mapping[str, Tensor],
                            batches: Sequence[Batch]) -> Params:
    """Buffers with BatchNorm running statistics re-estimated at ``at`` over ``batches``.

    ``bn_model`` comes from :func:`statistics_model`; ``params``/``buffers`` are θ* and its
    buffers (``at`` overrides any subset of ``params``). Statistics of layers that track
    them are reset and accumulated from scratch; every other buffer is a copy of ``buffers``.
    """
    fresh = {n: b.clone() for n, b in buffers.items()}
    for name, module in bn_model.named_modules():
        if is_batchnorm(module) and module.track_running_stats:
            prefix = f"{name}." if name else ""
            fresh[prefix + "running_mean"].zero_()
            fresh[prefix + "running_var"].fill_(1.0)
            fresh[prefix + "num_batches_tracked"].zero_()
    state = {**params, **fresh, **at}
    with torch.no_grad():
        for batch in batches:
            call_model(bn_model, state, batch.inputs)
    return {n: state[n] for n in fresh}


def stacked_buffers(recompute: Callable[[Params], Params], points: Mapping[str, Tensor]) -> Params:
    """Per-point buffers ``{name: [P, *shape]}`` for stacked points ``{name: [P, *shape]}``,
    each from ``recompute`` at that point."""
    rows = [recompute({n: p[i] for n, p in points.items()})
            for i in range(next(iter(points.values())).shape[0])]
    return {n: torch.stack([r[n] for r in rows]) for n in rows[0]}
