"""One rule for "try the batched strategy, fall back to a loop".

``vmap`` cannot batch every model: an op without a batching rule, ``.item()`` or a tensor in
Python control flow inside ``forward``, an ``autograd.Function`` without a vmap rule, an
in-place write into an unbatched tensor (``nn.GRU``'s kernel). Those failures are a property
of the model and loss, so they are remembered and the loop is used from then on. Any other
error propagates: an out-of-memory error says the chunk was too big, not that the strategy
is wrong, and must never switch a model to the slow path for good.

The rule is an allowlist of the messages torch.func raises when it *refuses* to batch
(checked against torch 2.4–2.13); an error it does not recognise propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor
from torch.func import vmap

from .errors import first_line

T = TypeVar("T")

# Resource errors: never a reason to change strategy (CUDA OOM, device faults).
RESOURCE_ERRORS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError,
                getattr(torch, "AcceleratorError", None)) if t is not None)

# What torch.func says when it refuses to batch (all RuntimeError or NotImplementedError).
VMAP_UNSUPPORTED: tuple[str, ...] = (
    "Batching rule not implemented",  # an op with no batching rule and no generated fallback
    "vmap:",  # .item(), data-dependent control flow, dynamic shapes, randomness, in-place on unbatched
    "does not have vmap support",  # an autograd.Function without a vmap staticmethod
    "FuncTorchBatched",  # "Could not run 'aten::x' with arguments from the 'FuncTorchBatched' backend"
    "Cannot access data pointer of Tensor that doesn't have storage",  # .tolist()/.numpy() of a batched tensor
    "doesn't match the broadcast shape",  # an in-place write of batched values into an unbatched tensor
)

# What autograd says when an op has no forward-mode derivative (NotImplementedError).
FORWARD_AD_UNSUPPORTED: tuple[str, ...] = (
    "forward AD",  # "Trying to use forward AD with aten::x that does not support it"
    "forward mode AD",  # "You must implement the jvp function for custom autograd.Function ..."
)


def is_resource_error(exc: BaseException) -> bool:
    """Out of memory (CUDA, or the CPU allocator's "can't allocate memory") or a device fault."""
    return isinstance(exc, RESOURCE_ERRORS) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def _matches(exc: BaseException, patterns: tuple[str, ...]) -> bool:
    if not isinstance(exc, RuntimeError) or is_resource_error(exc):  # NotImplementedError included
        return False
    text = str(exc)
    return any(p in text for p in patterns)


def is_vmap_unsupported(exc: BaseException) -> bool:
    """True when ``exc`` is torch.func refusing to batch (see ``VMAP_UNSUPPORTED``)."""
    return _matches(exc, VMAP_UNSUPPORTED)


def is_forward_ad_unsupported(exc: BaseException) -> bool:
    """True when ``exc`` says an op has no forward-mode (``jvp``) derivative."""
    return _matches(exc, FORWARD_AD_UNSUPPORTED)


@dataclass
class Fallback:
    """Whether the fast strategy works for one model and loss, learned on first use.

    ``ok`` is None until tried, True once it worked, False once it raised an error that
    ``unsupported`` accepts (then ``reason`` says which, and the slow strategy is used from
    then on). Every other error propagates, whatever ``ok`` is.
    """

    label: str = "vmap"
    unsupported: Callable[[BaseException], bool] = is_vmap_unsupported
    ok: bool | None = None
    reason: str = ""

    @property
    def failed(self) -> bool:
        """True once the fast strategy has been given up."""
        return self.ok is False

    def run(self, fast: Callable[[], T], slow: Callable[[], T]) -> T:
        """``fast()``, or ``slow()`` when the fast strategy is unsupported (now or before)."""
        if self.ok is not False:
            try:
                result = fast()
            except Exception as exc:
                if not self.unsupported(exc):
                    raise
                self.give_up(exc)
            else:
                self.ok = True
                return result
        return slow()

    def probe(self, fast: Callable[[], object]) -> bool:
        """Try ``fast()`` once (result discarded); whether the fast strategy works."""
        self.run(fast, lambda: None)
        return self.ok is True

    def give_up(self, exc: BaseException) -> None:
        """Record ``exc`` as the reason the fast strategy is not used."""
        self.ok = False
        self.reason = f"{self.label} failed: {type(exc).__name__}: {first_line(exc)}"


def vmap_or_loop(fn: Callable[[dict[str, Tensor]], Mapping[str, Tensor]],
                 block: Mapping[str, Tensor], fallback: Fallback) -> dict[str, Tensor]:
    """``fn`` applied to every slice along dim 0 of ``block`` (``{name: [m, ...]}``), stacked:
    one ``vmap`` call, or one call per slice once ``fallback`` says vmap is unsupported."""
    def loop() -> dict[str, Tensor]:
        m = next(iter(block.values())).shape[0]
        rows = [fn({n: v[i] for n, v in block.items()}) for i in range(m)]
        return {n: torch.stack([r[n] for r in rows]) for n in rows[0]}

    return fallback.run(lambda: dict(vmap(fn)(dict(block))), loop)
