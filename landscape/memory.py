"""Up-front memory checks: refuse work that cannot fit before any file is created."""

from __future__ import annotations

import os

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
