"""Option checks shared by the sharpness measures: one-line :class:`LandscapeError` naming
the measure, the option and what to pass instead."""

from __future__ import annotations

import math
from typing import Any

from ..errors import LandscapeError


def require_integer(where: str, name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (bools are refused: ``True`` is not a count)."""
    upper = "" if maximum is None else f" and ≤ {maximum}"
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        raise LandscapeError(f"{where}: {name} must be an integer ≥ {minimum}{upper}, got {value!r}; "
                             f"pass {name}={minimum}{'' if maximum is None else f'..{maximum}'}")
    return value


def require_positive(where: str, name: str, value: Any) -> float:
    """``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise LandscapeError(f"{where}: {name} must be a finite number > 0, got {value!r}; "
                             f"pass a positive {name}")
    return float(value)
