"""Progress bars for long work, on stderr.

Whether a bar shows is decided when it is made, in one place (:func:`bars_enabled`): the
caller asked for it (public functions take ``show_progress``), ``LANDSCAPE_QUIET`` is unset
or empty (read at that moment, never cached at import), and no enclosing :func:`quiet` block
(the CLI's ``--quiet``) turned bars off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tqdm.auto import tqdm

QUIET_ENV = "LANDSCAPE_QUIET"

_quiet: ContextVar[bool] = ContextVar("landscape_quiet", default=False)


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


def progress(total: int, desc: str, unit: str = "it", *, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr, shown if :func:`bars_enabled` (``enabled`` is the caller's
    request); call ``.update(n)`` and close it (or use it as a context)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not bars_enabled(enabled), file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5, leave=False)
