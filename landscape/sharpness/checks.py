"""Option checks shared by the sharpness measures: one line saying what, where and what to do."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import LandscapeError
from ..problem import Problem


def require_positive(value: Any, option: str, where: str) -> float:
    """``value`` as a float when it is a finite number > 0, else a :class:`LandscapeError`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise LandscapeError(f"{where}: {option} must be a finite number > 0, got {value!r}; "
                             f"pass a positive {option}")
    return float(value)


def require_count(value: Any, option: str, where: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` when it is an integer in [minimum, maximum] (bools refused: ``True`` is not a count)."""
    upper = "" if maximum is None else f" and ≤ {maximum}"
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        raise LandscapeError(f"{where}: {option} must be an integer ≥ {minimum}{upper}, got {value!r}")
    return value


def require_choice(value: Any, choices: Sequence[str], option: str, where: str) -> str:
    """``value`` when it is one of ``choices``, else a :class:`LandscapeError` listing them."""
    if value not in choices:
        raise LandscapeError(f"{where}: unknown {option} {value!r}; choose one of {', '.join(choices)}")
    return str(value)


def require_split(problem: Problem, split: Any, where: str) -> str:
    """``split`` when the problem has that data split, else a :class:`LandscapeError` naming them."""
    if split not in problem.splits:
        raise LandscapeError(f"{where}: split {split!r} is not a data split of this problem; "
                             f"choose one of {', '.join(problem.splits)}")
    return str(split)
