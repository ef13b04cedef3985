"""Small readers over an open results file: attributes as Python values, text for tables.

Views read the file defensively: a group may be missing, malformed or from an older
schema, and each reader says in one line what is wrong so the report can list it as
skipped instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from ..store import read_attr


class Unreadable(ValueError):
    """A group exists but does not hold what its panel needs (message: what is missing)."""


def attrs_of(node: h5py.HLObject) -> dict[str, Any]:
    """All attributes of a group or file as plain Python values, sorted by name."""
    return {key: read_attr(node.attrs[key]) for key in sorted(node.attrs.keys())}


def text_list(value: Any) -> list[str]:
    """An attribute that should be a list of strings (also accepts one string or JSON)."""
    value = read_attr(value)
    if value is None or (isinstance(value, str) and value == ""):
        return []
    if isinstance(value, str):
        if value.startswith("["):
            try:
                return [str(v) for v in json.loads(value)]
            except json.JSONDecodeError:
                pass
        return [value]
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def dataset(group: h5py.Group, name: str, *, ndim: int | None = None) -> np.ndarray:
    """A dataset of ``group`` as an array, or :class:`Unreadable` naming what is missing."""
    node = group.get(name)
    if node is None:
        raise Unreadable(f"dataset '{name}' is missing")
    if not isinstance(node, h5py.Dataset):
        raise Unreadable(f"'{name}' is a group, expected a dataset")
    value = np.asarray(node[()])
    if ndim is not None and value.ndim != ndim:
        raise Unreadable(f"dataset '{name}' has {value.ndim} dimensions, expected {ndim}")
    return value


def float_array(group: h5py.Group, name: str, *, ndim: int | None = None) -> np.ndarray:
    """A numeric dataset of ``group`` as float64, or :class:`Unreadable` when it is not numbers."""
    value = dataset(group, name, ndim=ndim)
    if value.dtype.kind not in "fiub":
        raise Unreadable(f"dataset '{name}' holds {value.dtype}, expected numbers")
    return value.astype(np.float64)


def format_value(value: Any, max_chars: int = 400) -> str:
    """A readable one-cell rendering of an attribute value (JSON pretty-compacted,
    arrays summarised when long)."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, np.ndarray):
        if value.size > 12:
            head = ", ".join(format_value(v) for v in value.reshape(-1)[:6].tolist())
            return f"[{head}, …] ({'×'.join(map(str, value.shape))} values)"
        return "[" + ", ".join(format_value(v) for v in value.reshape(-1).tolist()) + "]"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) if value else "(empty)"
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith(("{", "[")):
            try:
                value = json.dumps(json.loads(stripped), separators=(", ", ": "))
            except json.JSONDecodeError:
                pass
        text = value
    else:
        text = str(value)
    return text if len(text) <= max_chars else text[:max_chars - 1] + "…"


def attribute_rows(attrs: dict[str, Any], skip: Sequence[str] = ()) -> list[list[str]]:
    """``[name, formatted value]`` table rows of ``attrs``, leaving out the names in ``skip``."""
    return [[key, format_value(value)] for key, value in attrs.items() if key not in skip]


def describe_dataset(node: h5py.Dataset) -> str:
    """A scalar dataset's value, or its shape and dtype."""
    if node.shape == () or node.size == 1:
        return format_value(read_attr(np.asarray(node[()]).reshape(-1)[0]))
    return f"{node.dtype} array, shape {'×'.join(map(str, node.shape))}"
