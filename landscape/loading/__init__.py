"""From files and specs to a :class:`~landscape.problem.Problem`.

Checkpoint formats: plain state_dicts, dicts holding ``state_dict``/``model``, Lightning
``.ckpt``, safetensors, TorchScript and ``torch.export`` programs. Model, data and loss are
named by metadata written by :func:`save`, by ``package.module:callable`` or
``path/to/file.py:callable`` specs, or by built-in names (:mod:`landscape.zoo`).

Trust: nothing named inside a file runs unless ``trust=True``. Pickled checkpoints are read
with ``weights_only=True``, and a model, data or loss spec found in a file's metadata is used
only if it names a built-in or a data file (:func:`metadata_spec`); specs the caller passes
explicitly are the caller's own and always run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import LandscapeError
from ..problem import BNPolicy, DataMode, EvalMode, Problem
from .checkpoints import METADATA_KEY, Checkpoint, file_sha256, load_checkpoint, save
from .data import as_splits, load_data
from .specs import LOSSES, build_model, fit_state_dict, metadata_spec, resolve_callable, resolve_loss

__all__ = ["LOSSES", "METADATA_KEY", "Checkpoint", "Provenance", "as_splits", "build_model", "file_sha256",
           "checkpoint_parameters", "fit_state_dict", "load_checkpoint", "load_data", "load_problem", "metadata_spec",
           "resolve_callable", "resolve_loss", "save", "trainable_parameters", "training_batch_size"]


@dataclass
class Provenance:
    """Where a problem came from, recorded as attributes of every results file."""

    checkpoint_path: str
    checkpoint_sha256: str
    checkpoint_format: str
    model_spec: str
    data_spec: str
    loss_spec: str
    trusted: bool
    training_batch_size: int | None = None  # recorded by whoever saved the checkpoint

    def as_attrs(self) -> dict[str, Any]:
        """The fields as a dict of results-file root attributes."""
        return dict(self.__dict__)


def training_batch_size(checkpoint: Checkpoint) -> int | None:
    """The training mini-batch size ``landscape.save(..., batch_size=B)`` recorded, if any."""
    recorded = checkpoint.metadata.get("provenance")
    size = recorded.get("batch_size") if isinstance(recorded, Mapping) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


def load_problem(checkpoint_path: str | Path, *, model: str | None = None, data: str | None = None,
                 loss: str | None = None, trust: bool = False, device: str | None = None,
                 dtype: torch.dtype | str | None = None, bn_policy: BNPolicy = "eval",
                 batch_size: int | None = None, max_batches: int | None = None,
                 max_examples: int | None = None,
                 metrics: Mapping[str, Callable[..., Any]] | None = None,
                 eval_mode: EvalMode = "auto", data_mode: DataMode = "auto",
                 autocast: torch.dtype | str | None = None) -> tuple[Problem, Provenance]:
    """Checkpoint + specs → Problem, with the provenance to record.

    ``model``, ``data`` and ``loss`` default to what the checkpoint's metadata names; those
    run code from the file's author only with ``trust`` unless they are built-ins.
    """
    checkpoint = load_checkpoint(checkpoint_path, trust=trust)
    meta = checkpoint.metadata
    # data and loss named by metadata are vetted here and the model's in build_model, all before
    # any factory runs, so a refusal comes before any code the file names
    data_spec = data or metadata_spec(checkpoint, "data", trust=trust)
    loss_spec = loss or metadata_spec(checkpoint, "loss", trust=trust)
    net, model_spec = build_model(checkpoint, model, trust=trust)
    if not data_spec:
        raise LandscapeError(f"checkpoint '{checkpoint.path}' names no data: pass --data "
                             "(a .pt/.npz file, package.module:factory or file.py:factory)")
    data_kwargs = dict(meta.get("data_kwargs") or {}) if data_spec == meta.get("data") else {}
    if batch_size is not None:
        if batch_size <= 0:
            raise LandscapeError(f"batch size must be positive, got {batch_size}")
        data_kwargs["batch_size"] = batch_size
    splits = load_data(data_spec, batch_size=batch_size or 256, kwargs=data_kwargs)
    loss_fn, loss_name = resolve_loss(loss_spec)
    problem = Problem.create(net, loss_fn, splits, device=device, dtype=dtype, bn_policy=bn_policy,
                             max_batches=max_batches, max_examples=max_examples, metrics=metrics,
                             eval_mode=eval_mode, data_mode=data_mode, autocast=autocast)
    provenance = Provenance(str(checkpoint.path), checkpoint.sha256, checkpoint.format,
                            model_spec, data_spec, loss_name, trust, training_batch_size(checkpoint))
    return problem, provenance


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's trainable parameters by name (detached, on the CPU)."""
    return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}


def checkpoint_parameters(checkpoint: Checkpoint, provenance: Mapping[str, Any], model: str | None,
                          trust: bool) -> dict[str, torch.Tensor]:
    """The trainable parameters of another checkpoint of the model ``provenance`` describes (a
    first checkpoint's), weights only: no data is loaded. The model is ``model`` when given, else
    the first checkpoint's spec; a self-contained first checkpoint (pickled module, torch.export)
    records its format as its spec, and the others then load by their own contents."""
    self_contained = provenance["model_spec"] == provenance["checkpoint_format"]
    net, _ = build_model(checkpoint, model or (None if self_contained else provenance["model_spec"]), trust=trust)
    return trainable_parameters(net)
