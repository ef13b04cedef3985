"""Escaping: everything read from a results file is shown as text, never as markup.

The report escapes HTML with :func:`html.escape`. Plotly renders title, name, label and
annotation strings as a subset of HTML, so every figure passes through
:func:`plot_safe_figure` once before it leaves the views package: panels write plain
text and never markup of their own.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np
import plotly.graph_objects as go

# Layout/trace keys whose string values Plotly renders as pseudo-HTML text. Templates
# (hovertemplate, texttemplate) are excluded: panels never put file text into them.
_TEXT_KEYS = {"text", "name", "title", "label", "hovertext", "ticktext", "tickprefix", "ticksuffix"}


def html_text(value: Any) -> str:
    """Text for an HTML page (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def plot_text(value: str) -> str:
    """Text that Plotly shows literally: its entity decoder turns these back into < > &."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_text_key(key: str) -> bool:
    return key in _TEXT_KEYS or key.rsplit(".", 1)[-1] in _TEXT_KEYS


def _decode_typed_array(node: dict) -> np.ndarray:
    """Plotly ≥ 6 serialises numpy arrays as base64 ``{dtype, bdata, shape}``; decode them so
    figures handed to users hold arrays again."""
    array = np.frombuffer(base64.b64decode(node["bdata"]), dtype=np.dtype(node["dtype"])).copy()
    if "shape" in node:
        array = array.reshape([int(n) for n in str(node["shape"]).split(",")])
    return array


def _escape_tree(node: Any, text_context: bool = False) -> Any:
    if isinstance(node, dict) and "bdata" in node and "dtype" in node:
        return _decode_typed_array(node)
    if isinstance(node, dict):
        return {k: _escape_tree(v, text_context=_is_text_key(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_escape_tree(v, text_context) for v in node]
    if isinstance(node, tuple):
        return tuple(_escape_tree(v, text_context) for v in node)
    if text_context and isinstance(node, str):
        return plot_text(node)
    return node


def plot_safe_figure(figure: go.Figure) -> go.Figure:
    """A copy of ``figure`` whose every displayed string is escaped for Plotly.

    ``title: "<b>x"`` and ``title: {"text": "<b>x"}`` are both handled, as are restyle
    arguments in buttons (``{"colorbar.title.text": ...}``).
    """
    as_dict = figure.to_plotly_json()
    safe = {"data": _escape_tree(as_dict.get("data", [])), "layout": _escape_tree(as_dict.get("layout", {}))}
    return go.Figure(safe, skip_invalid=False)
