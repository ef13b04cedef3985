"""Hessian-vector products of one batch's loss, and the fixed rule that picks how.

Three ways to the same product H·v (``{name: [m, *shape]}`` blocks of m columns):

* 'autograd' — reverse-over-reverse through the autograd engine: ``create_graph`` gradient,
  then a double backward (columns batched with ``is_grads_batched``);
* 'reverse' — reverse-over-reverse with torch.func: ``vjp`` of ``grad``;
* 'forward' — forward-over-reverse with torch.func: ``jvp`` of ``grad``.

Both reverse modes split into a *setup* (forward and first backward at θ*, the part that
does not depend on v) and a *product* (one double-backward pass); the setup can be kept per
batch and reused for every product (θ* never changes during an analysis). Forward mode has
no such split: each product pushes v through the forward and the first backward again.

The rule for ``hvp_mode="auto"`` (:data:`AUTO_RULE`) is fixed, not a timing race, so a
rerun computes the same way; benchmarks/RESULTS.md ("HVP modes") has the measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp

from ..fallback import is_vmap_unsupported
from ..params import Params

HVPMode = Literal["auto", "reverse", "forward", "autograd"]
HVP_MODES: tuple[str, ...] = ("reverse", "forward", "autograd")
AUTO_ORDER: tuple[str, ...] = ("autograd", "reverse", "forward")
AUTO_RULE = ("auto: autograd double backward on every device and block width, its gradient graph kept "
             "per batch when it fits; torch.func reverse, then forward, only where the model's layers "
             "have no double backward")
Vmapped = Callable[[Callable[[Params], Params], Params], Params]


def width_of(block: Params) -> int:
    """Columns in a ``{name: [m, *shape]}`` block."""
    return next(iter(block.values())).shape[0]


def map_columns(fn: Callable[[Params], Params], block: Params, vmapped: Vmapped) -> Params:
    """``fn`` on every column of ``block``; a single column is called directly, since a vmap
    over one column still pays the batching rules of every operation (~40 % of a ResNet HVP)."""
    if width_of(block) == 1:
        return {n: t.unsqueeze(0) for n, t in fn({n: c[0] for n, c in block.items()}).items()}
    return vmapped(fn, block)


# ---------------------------------------------------------------------------- torch.func
Pullback = Callable[[Params], Params]


def reverse_pullback(loss_of: Callable[[Params], Tensor], at: Params) -> Pullback:
    """The map v ↦ H·v by torch.func ``vjp`` of ``grad``: the forward and first backward run here,
    once; the returned function (one double backward per call) may be called many times."""
    pullback = vjp(grad(loss_of), at)[1]
    return lambda v: dict(pullback(v)[0])


def batch_hvp(loss_of: Callable[[Params], Tensor], at: Params, block: Params, mode: str,
              vmapped: Vmapped) -> Params:
    """Hessian of ``loss_of`` at ``at`` times each column of ``block``, nothing kept."""
    if mode == "autograd":
        return apply_graph(gradient_graph(loss_of, at), block, retain=False)
    if mode == "reverse":
        return map_columns(reverse_pullback(loss_of, at), block, vmapped)
    gradient = grad(loss_of)
    return map_columns(lambda v: dict(jvp(gradient, (at,), (v,))[1]), block, vmapped)


# ---------------------------------------------------------------------------- autograd
@dataclass
class GradientGraph:
    """The gradient of one batch's loss with its autograd graph kept (``create_graph``)."""

    names: list[str]
    at: Params
    leaves: list[Tensor]
    live: list[int]  # indices of gradients that depend on θ (the others add zero curvature)
    outputs: list[Tensor]


def gradient_graph(loss_of: Callable[[Params], Tensor], at: Params) -> GradientGraph:
    """Forward and first backward with ``create_graph``, on fresh leaves (the model is untouched)."""
    names = list(at)
    leaves = [at[n].detach().requires_grad_(True) for n in names]
    with torch.enable_grad():
        loss = loss_of(dict(zip(names, leaves)))
        grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    return GradientGraph(names, dict(at), leaves, live, [grads[i] for i in live])


def apply_graph(graph: GradientGraph, block: Params, retain: bool) -> Params:
    """Double backward of ``graph`` for every column of ``block`` (batched with
    ``is_grads_batched``, or one by one where the double backward has no batching rule)."""
    names, leaves, live, outputs = graph.names, graph.leaves, graph.live, graph.outputs
    width = width_of(block)
    if not live:
        return {n: torch.zeros_like(block[n]) for n in names}
    with torch.enable_grad():
        if width == 1:
            out = torch.autograd.grad(outputs, leaves, [block[names[i]][0] for i in live],
                                      retain_graph=retain, allow_unused=True)
            return {n: _zero_if_none(o, graph.at[n]).unsqueeze(0) for n, o in zip(names, out)}
        try:
            out = torch.autograd.grad(outputs, leaves, [block[names[i]] for i in live], retain_graph=True,
                                      allow_unused=True, is_grads_batched=True)
            return {n: _zero_if_none(o, block[n]) for n, o in zip(names, out)}
        except Exception as exc:  # is_grads_batched is vmap inside
            if not is_vmap_unsupported(exc):
                raise
            rows = [torch.autograd.grad(outputs, leaves, [block[names[i]][c] for i in live],
                                        retain_graph=True, allow_unused=True) for c in range(width)]
            return {n: torch.stack([_zero_if_none(r[j], graph.at[n]) for r in rows]) for j, n in enumerate(names)}


def _zero_if_none(value: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if value is None else value.detach()
