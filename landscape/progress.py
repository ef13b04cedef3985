"""Progress bars for long work, switchable off globally (``--quiet``, tests)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

_enabled = os.environ.get("LANDSCAPE_QUIET", "") == ""


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def progress(total: int, desc: str, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; call ``.update(n)`` and close it (or use it as a context)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not _enabled, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5, leave=False)
