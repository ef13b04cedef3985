"""Memory: up-front checks that refuse work which cannot fit before any file is created,
and the byte counts that size chunks of work to a budget."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .errors import LandscapeError

# Share of the memory available now that one analysis's host arrays may take: the rest is
# for the model, the data and the arrays the computation makes on the way.
HOST_SHARE = 0.5


def available_host_bytes() -> int:
    """Memory available to this process now (``MemAvailable``; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def default_budget_bytes(device: torch.device) -> int:
    """A Problem's memory budget when none is given: half the free memory on CUDA, 1 GiB elsewhere."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 1 << 30


def format_bytes(size: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def require_fits(nbytes: int, what: str, hint: str) -> None:
    """Raise a one-line :class:`LandscapeError` when ``nbytes`` exceed the host share."""
    budget = int(available_host_bytes() * HOST_SHARE)
    if nbytes > budget:
        raise LandscapeError(f"{what} needs about {format_bytes(nbytes)} of memory but "
                             f"{format_bytes(budget)} is available for it; {hint}")


def tensor_bytes(tensors: Mapping[str, Tensor]) -> int:
    """Bytes held by named tensors (e.g. one copy of the parameters)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


def module_output_bytes(model: nn.Module, run: Callable[[], Any]) -> int:
    """Bytes of every tensor output of every module of ``model`` while ``run()`` runs (no grad).

    Measured with forward hooks, removed again afterwards: the activations one forward pass
    makes, a proxy for what evaluating it at one more parameter point costs.
    """
    sizes: list[int] = []

    def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, Tensor):
                sizes.append(t.numel() * t.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return sum(sizes)
