"""The one parameter layout: named tensors ↔ flat vectors.

Every flat vector in the package lists the entries of named tensors one after another in
the mapping's order (``problem.params`` order, or an operator's selected subset of it),
each tensor in row-major order. Matrices of several such vectors come in two orientations:
rows ``[m, D]`` (per-example gradients, eigenvectors as stored) and columns ``[D, m]``
(blocks of vectors for operators); the named form of either is ``{name: [m, *shape]}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

Params = dict[str, Tensor]


def flatten(tensors: Mapping[str, Tensor]) -> Tensor:
    """Concatenate named tensors (in mapping order) into one vector."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Inverse of :func:`flatten`: split ``vector`` into tensors shaped like ``like`` (views)."""
    out, offset = {}, 0
    for name, ref in like.items():
        n = ref.numel()
        out[name] = vector[offset:offset + n].view_as(ref)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters have {offset}")
    return out


def flatten_rows(parts: Mapping[str, Tensor], out: Tensor | None = None) -> Tensor:
    """``{name: [m, *shape]}`` → ``[m, D]``, one flat vector per row.

    Written into ``out`` (shape ``[m, D]``) when given, without an intermediate copy.
    """
    first = next(iter(parts.values()))
    rows = first.shape[0]
    if out is None:
        return torch.cat([t.reshape(rows, -1) for t in parts.values()], dim=1)
    offset = 0
    for t in parts.values():
        width = t.numel() // rows
        out[:, offset:offset + width] = t.reshape(rows, width)
        offset += width
    return out


def unflatten_rows(rows: Tensor, like: Mapping[str, Tensor]) -> Params:
    """``[m, D]`` → ``{name: [m, *shape]}`` with shapes from ``like`` (views where possible)."""
    out, offset = {}, 0
    for name, ref in like.items():
        n = ref.numel()
        out[name] = rows[:, offset:offset + n].reshape(rows.shape[0], *ref.shape)
        offset += n
    return out


def flatten_columns(parts: Mapping[str, Tensor]) -> Tensor:
    """``{name: [m, *shape]}`` → ``[D, m]``, one flat vector per column (a transposed view)."""
    return flatten_rows(parts).T


def unflatten_columns(vectors: Tensor, like: Mapping[str, Tensor]) -> Params:
    """``[D, m]`` → ``{name: [m, *shape]}`` with shapes from ``like`` (views where possible)."""
    return unflatten_rows(vectors.T, like)
