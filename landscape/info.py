"""``landscape info FILE.h5``: what a results file holds, as aligned ``key  value`` lines
under each group's path, long values wrapped to the terminal's width and long arrays
summarized (shape, dtype, first values)."""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

import h5py
import numpy as np

from .store import read_attr

DEFAULT_WIDTH = 100  # when the width cannot be asked (output not a terminal)
MAX_KEY_WIDTH = 28  # longer keys get their value on the next line
FIRST_VALUES = 6  # values shown of a long array
MAX_FINITE_COUNT = 10_000_000  # larger float datasets are not read to count finite values


def terminal_width() -> int:
    """The terminal's width (``COLUMNS``), :data:`DEFAULT_WIDTH` when unknown; at least 40."""
    return max(40, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def value_text(value: Any) -> str:
    """One attribute value as text: arrays over :data:`FIRST_VALUES` entries as shape,
    dtype and their first values."""
    value = read_attr(value)
    if isinstance(value, np.ndarray):
        if value.size <= FIRST_VALUES:
            return "[" + ", ".join(_scalar_text(v) for v in value.reshape(-1).tolist()) + "]"
        head = ", ".join(_scalar_text(v) for v in value.reshape(-1)[:FIRST_VALUES].tolist())
        return f"{value.dtype} {value.shape}: [{head}, …]"
    if isinstance(value, list) and len(value) > FIRST_VALUES:
        head = ", ".join(_scalar_text(v) for v in value[:FIRST_VALUES])
        return f"list of {len(value)}: [{head}, …]"
    return str(value)


def _scalar_text(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def dataset_text(node: h5py.Dataset) -> str:
    """A dataset's dtype and shape, how many values are finite, and its first values."""
    parts = [f"dataset {node.dtype} {node.shape}"]
    if node.size <= MAX_FINITE_COUNT and node.dtype.kind in "fiub":
        values = np.asarray(node[()])
        if node.dtype.kind == "f":
            parts.append(f"{int(np.isfinite(values).sum())}/{values.size} finite")
        parts.append(value_text(values.reshape(-1)[:FIRST_VALUES + 1] if values.size > FIRST_VALUES
                                else values))
    elif node.dtype.kind in "OS" and node.size <= 1000:
        parts.append(value_text(np.asarray(node.asstr()[()]) if node.dtype.kind == "O" else node[()]))
    return ", ".join(parts)


def key_value_lines(pairs: list[tuple[str, str]], width: int, indent: str = "  ") -> list[str]:
    """``key  value`` lines with the values aligned in one column and wrapped to ``width``."""
    if not pairs:
        return []
    key_width = min(MAX_KEY_WIDTH, max(len(k) for k, _ in pairs))
    lines = []
    for key, value in pairs:
        prefix = f"{indent}{key.ljust(key_width)}  "
        if len(prefix) > len(indent) + key_width + 2 or width - len(prefix) < 20:  # a long key: value below it
            lines += textwrap.wrap(key, width, initial_indent=indent, subsequent_indent=indent)
            prefix = indent + " " * 4
        hanging = " " * len(prefix)
        lines += textwrap.wrap(value, width, initial_indent=prefix, subsequent_indent=hanging) or [prefix.rstrip()]
    return lines


def describe_file(h5: h5py.File, name: str, width: int | None = None) -> list[str]:
    """Every group of ``h5`` (root first) as its path then aligned attribute and dataset lines."""
    width = width or terminal_width()
    lines = textwrap.wrap(name, width)
    lines += key_value_lines([(k, value_text(v)) for k, v in sorted(h5.attrs.items())], width)

    def visit(path: str, node: Any) -> None:
        if not isinstance(node, h5py.Group):
            return
        pairs = [(k, value_text(v)) for k, v in sorted(node.attrs.items())]
        pairs += [(k, dataset_text(child)) for k, child in node.items() if isinstance(child, h5py.Dataset)]
        lines.append("")
        lines.extend(textwrap.wrap(f"/{path}", width))
        lines.extend(key_value_lines(pairs, width))

    h5.visititems(visit)
    return lines
