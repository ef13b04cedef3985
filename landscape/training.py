"""Training helpers whose checkpoints the analyses compare: SAM / adaptive SAM and SWA.

:class:`SAM` is a ``torch.optim.Optimizer`` wrapping a base optimizer (Foret et al. 2021,
"Sharpness-aware minimization", Alg. 1; the adaptive form of Kwon et al. 2021, ASAM). Its
``param_groups`` and ``state`` are the base optimizer's, so learning-rate schedulers and
``state_dict`` work on it as on the base optimizer. :class:`SWA` averages weights with
``torch.optim.swa_utils`` (Izmailov et al. 2018) and hands out the average with its BatchNorm
statistics recomputed.

Unlike the analyses, these helpers train: they change the model they are given, as an
optimizer does. :meth:`SWA.averaged` returns a new module and leaves the model alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import zip_longest
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, update_bn

from .errors import LandscapeError
from .problem.batchnorm import has_batchnorm, is_batchnorm


def _check_rho(rho: Any, where: str) -> None:
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho <= 0:
        raise LandscapeError(f"{where}: rho must be a finite number > 0 (the radius of the SAM "
                             f"perturbation), got {rho!r}")


@contextmanager
def running_statistics_frozen(model: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorm layers of ``model`` in train mode normalize with the batch's
    statistics as usual but update neither their running statistics nor ``num_batches_tracked``.

    ``_BatchNorm.forward`` in train mode with ``track_running_stats=False`` passes no running
    buffers to ``F.batch_norm`` (batch statistics, nothing written) and skips the counter.
    """
    layers = [m for m in model.modules() if is_batchnorm(m) and m.training and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around a base optimizer.

    Each :meth:`step` calls ``closure`` twice: at θ for g = ∇L_B(θ), then at θ + ε̂ for
    ∇L_B(θ + ε̂), where ε̂ = ρ g/‖g‖, or with ``adaptive=True`` ε̂ = ρ T²g/‖Tg‖, T = |θ|
    elementwise (ASAM). θ is restored exactly and the base optimizer steps with the second
    gradient. The second pass leaves BatchNorm running statistics and counters untouched
    (it still normalizes with batch statistics, like the first). A zero gradient gives ε̂ = 0.
    ``rho``/``adaptive`` live in each param group next to the base optimizer's settings.
    """

    def __init__(self, model: nn.Module, base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD, *,
                 rho: float = 0.05, adaptive: bool = False, **base_kwargs: Any) -> None:
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"SAM: model must be a torch.nn.Module, got {type(model).__name__}")
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise LandscapeError(f"SAM: base_optimizer must be a torch.optim.Optimizer class such as "
                                 f"torch.optim.SGD, got {base_optimizer!r}")
        _check_rho(rho, "SAM")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise LandscapeError("SAM: the model has no trainable parameters (all requires_grad=False)")
        self.model = model
        super().__init__(params, {"rho": rho, "adaptive": bool(adaptive)})
        try:
            self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        except (TypeError, ValueError) as exc:
            raise LandscapeError(f"SAM: {base_optimizer.__name__} refused its settings {base_kwargs} "
                                 f"({exc}); pass that optimizer's own keyword arguments") from None
        # one set of groups and state: schedulers and state_dict see the base optimizer's
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.defaults.update(self.base_optimizer.defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (its ``rho``, if given, must be > 0) to this and the base optimizer."""
        _check_rho(param_group.get("rho", self.defaults["rho"]), "SAM param group")
        if not hasattr(self, "base_optimizer"):  # during __init__
            super().add_param_group(param_group)
            return
        self.base_optimizer.add_param_group({"rho": self.defaults["rho"], "adaptive": self.defaults["adaptive"],
                                             **param_group})

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (its groups carry ``rho`` and ``adaptive``)."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the base optimizer and share its new groups and state again."""
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One SAM step; ``closure`` computes the mini-batch loss, calls ``backward`` and returns
        the loss (gradients are zeroed before each call). Returns the loss at θ."""
        if closure is None:
            raise LandscapeError("SAM.step needs a closure that computes the loss, calls backward() and "
                                 "returns the loss: it is evaluated at θ and at θ + ε̂")
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        saved = [(p, p.detach().clone()) for group in self.param_groups for p in group["params"]]
        with torch.no_grad():
            for p, eps in self.perturbation():
                p.add_(eps)
        self.zero_grad(set_to_none=True)
        try:
            with torch.enable_grad(), running_statistics_frozen(self.model):
                closure()
        finally:  # θ comes back even when the closure fails at θ + ε̂
            with torch.no_grad():
                for p, theta in saved:
                    p.copy_(theta)
        self.base_optimizer.step()
        return loss

    @torch.no_grad()
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """ε̂ for every parameter with a gradient, from the gradients held now (ε̂ = 0 when ‖g‖ = 0)."""
        with_grad = [(group, p) for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not with_grad:
            return []
        scaled = [p.grad * p.abs() if group["adaptive"] else p.grad for group, p in with_grad]
        device = scaled[0].device
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s).to(device) for s in scaled]))
        if norm == 0:
            return [(p, torch.zeros_like(p)) for _, p in with_grad]
        out = []
        for (group, p), s in zip(with_grad, scaled):
            scale = group["rho"] / norm.to(p.device)
            out.append((p, (s * p.abs() if group["adaptive"] else s) * scale))
        return out


class SWA:
    """Stochastic weight averaging of ``model``'s weights (``torch.optim.swa_utils.AveragedModel``).

    :meth:`update` adds the current weights of ``model`` (or of another module of the same
    architecture) to the running mean; :meth:`averaged` returns a copy of the average in eval
    mode with BatchNorm statistics recomputed by ``swa_utils.update_bn``. The model is only read.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"SWA: model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.average = AveragedModel(model)
        self.layout = _parameter_layout(model)

    @property
    def count(self) -> int:
        """How many snapshots have been averaged."""
        return int(self.average.n_averaged)

    def update(self, model: nn.Module | None = None) -> None:
        """Add the current weights of ``model`` (default: the model given at construction)."""
        source = self.model if model is None else model
        layout = _parameter_layout(source)
        if layout != self.layout:
            expected, got = next((a, b) for a, b in zip_longest(self.layout, layout) if a != b)
            raise LandscapeError(f"SWA.update: the model's parameters differ from the averaged model's "
                                 f"(first difference: {_describe(got)} where the average has "
                                 f"{_describe(expected)}); average snapshots of one architecture")
        self.average.update_parameters(source)

    def averaged(self, loader: Iterable[Any] | None = None) -> nn.Module:
        """A copy of the averaged model in eval mode; with BatchNorm, its running statistics
        recomputed on ``loader`` (batches as ``update_bn`` takes them: a tensor or (x, ...))."""
        if self.count == 0:
            raise LandscapeError("SWA.averaged: no snapshot averaged yet; call update() first")
        module = copy.deepcopy(self.average.module)
        if has_batchnorm(module):
            if loader is None:
                raise LandscapeError("SWA.averaged: the model has BatchNorm, whose running statistics must be "
                                     "recomputed for the averaged weights; pass loader= (training batches)")
            update_bn(loader, module)
        return module.eval()


def _parameter_layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in model.named_parameters()]


def _describe(entry: tuple[str, tuple[int, ...]] | None) -> str:
    return "no parameter" if entry is None else f"'{entry[0]}' of shape {list(entry[1])}"
