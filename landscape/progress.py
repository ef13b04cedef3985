"""Progress on stderr, for long work.

Whether progress shows is decided when a bar is made, in one place (:func:`bars_enabled`):
the caller asked for it (public functions take ``show_progress``), ``LANDSCAPE_QUIET`` is
unset or empty (read at that moment, never cached at import), and no enclosing :func:`quiet`
block (the CLI's ``--quiet``) turned bars off.

How it shows depends on where stderr goes, also decided when the bar is made: a terminal
(or a notebook) gets a tqdm bar with rate and ETA, left in place when done; anything else
(a file, a pipe, a CI log) gets :class:`LineProgress`: plain lines without carriage
returns, at most one per ~10 % of the total or per 30 s, and one when done. ``total=None``
counts with a rate (no ETA) where the amount of work is not known in advance.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import IO, Any, Protocol

from tqdm.auto import tqdm

QUIET_ENV = "LANDSCAPE_QUIET"
LINE_FRACTION = 0.1  # a plain line per tenth of the total ...
LINE_SECONDS = 30.0  # ... or per 30 s, whichever comes first

_quiet: ContextVar[bool] = ContextVar("landscape_quiet", default=False)


class Progress(Protocol):
    """What callers use of a bar: ``update(n)``, a postfix, ``close()``, and ``with``."""

    def update(self, n: float = 1) -> Any:
        """Count ``n`` more units."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any:
        """Text shown after the counts."""

    def close(self) -> Any:
        """Finish the bar (left in place)."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: Any) -> Any: ...


def bars_enabled(requested: bool = True) -> bool:
    """Whether a bar requested by its caller shows now (see the module docstring)."""
    return requested and not _quiet.get() and os.environ.get(QUIET_ENV, "") == ""


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Within the block (this thread or task), no bars when ``enabled``; restored after."""
    token = _quiet.set(_quiet.get() or enabled)
    try:
        yield
    finally:
        _quiet.reset(token)


def progress(total: int | None, desc: str, unit: str = "it", *, enabled: bool = True) -> Progress:
    """Progress of ``total`` units (``None``: unknown, counted with a rate), shown if
    :func:`bars_enabled` (``enabled`` is the caller's request): a tqdm bar on a terminal,
    plain lines elsewhere. Call ``.update(n)`` and close it (or use it as a context)."""
    stream = sys.stderr
    show = bars_enabled(enabled)
    if not show or _interactive(stream):
        return tqdm(total=total, desc=desc, unit=unit, disable=not show, file=stream, dynamic_ncols=True,
                    mininterval=0.5, leave=True)
    return LineProgress(total, desc, unit, stream)


def _interactive(stream: IO[str]) -> bool:
    """A terminal, or a notebook kernel (where tqdm.auto draws a widget rather than text)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


class LineProgress:
    """Progress as plain lines (``desc: n/total units (p%), elapsed, ETA``): one when a tenth
    of the total more is done or 30 s passed since the last line, and one on close."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: IO[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.stream, self.clock = total, desc, unit, stream, clock
        self.n = 0.0
        self.postfix = ""
        self.start = self.last_time = clock()
        self.last_n = 0.0
        self.closed = False
        self.disable = False  # tqdm's flag, for callers that check it

    def update(self, n: float = 1) -> None:
        """Count ``n`` more units; print a line when due."""
        self.n += n
        now = self.clock()
        if self.total and self.n >= self.total:
            return  # the line on close says it
        step = LINE_FRACTION * self.total if self.total else float("inf")
        if self.n - self.last_n >= step or now - self.last_time >= LINE_SECONDS:
            self._print(now)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text shown after the counts in the next line (tqdm's name for it)."""
        self.postfix = s

    def close(self) -> None:
        """Print the final line (once)."""
        if not self.closed:
            self.closed = True
            self._print(self.clock(), done=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def line(self, now: float, done: bool = False) -> str:
        """The text of one progress line at time ``now``."""
        elapsed = now - self.start
        count = f"{self.n:g}/{self.total} {self.unit}" if self.total else f"{self.n:g} {self.unit}"
        parts = [f"{self.desc}: {count}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{_clock_text(elapsed)} elapsed")
        if elapsed > 0 and self.n > 0:
            rate = self.n / elapsed
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total and not done and self.n < self.total:
                parts.append(f"ETA {_clock_text((self.total - self.n) / rate)}")
        if done:
            parts.append("done")
        return ", ".join(parts) + (f"  [{self.postfix}]" if self.postfix else "")

    def _print(self, now: float, done: bool = False) -> None:
        print(self.line(now, done), file=self.stream, flush=True)
        self.last_time, self.last_n = now, self.n


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


@contextmanager
def counting_products(operator: Any, bar: Progress) -> Iterator[None]:
    """Within the block, every product of ``operator`` (a :class:`landscape.linalg.LinearOperator`)
    advances ``bar`` by its number of columns (HVPs)."""
    previous = operator.on_products
    operator.on_products = bar.update
    try:
        yield
    finally:
        operator.on_products = previous
