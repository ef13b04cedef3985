"""Sharpness during training: λ_max (and optionally tr H and the gradient noise scale) of the
current weights, every k optimizer steps, on a fixed measurement set, into a tracker file.

One :class:`~landscape.problem.Problem` is made when the tracker is: it copies the model
once and caches the measurement batches on the model's device. Each record then builds a
Problem that shares that copy and those batches but holds the model's current parameters
and buffers (:func:`current_problem`): the same Problem ``Problem.create`` would make from
the current weights, without copying the model or reading the batches again. The user's
model is only read (``detach().clone()`` of its tensors): its weights, mode and
``requires_grad`` flags are never touched.

Lanczos is warm-started from the previous record's top eigenvector (``v0``): between
records a few optimizer steps move the weights a little, so the old top eigenvector is
close to the new one and fewer products reach the same tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..curvature import HessianOperator
from ..errors import LandscapeError
from ..linalg import estimate_trace, lanczos
from ..noise.covariance import CovarianceOperator
from ..per_example import check_mean_reduction, per_example_gradients, select_examples
from ..problem import Problem
from ..problem.problem import LossFn
from .file import Record, TrackerSettings, append_record, open_tracker_file


def _whole(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise LandscapeError(f"SharpnessTracker: {name} must be an integer ≥ {low}, got {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise LandscapeError(f"SharpnessTracker: {name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def trainable_names(model: nn.Module) -> tuple[str, ...]:
    """The parameters a tracker follows: trainable ones, in ``named_parameters()`` order."""
    return tuple(n for n, p in model.named_parameters() if p.requires_grad)


def current_problem(base: Problem, model: nn.Module) -> Problem:
    """``base`` (made from ``model`` earlier) at the model's current parameters and buffers."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    missing = [n for n in (*base.params, *base.buffers) if n not in state]
    if missing:
        raise LandscapeError(f"SharpnessTracker: the model no longer has '{missing[0]}' (renamed or removed "
                             "during training?); the tracker follows the tensors it was created with")

    def copy(name: str) -> Tensor:
        return state[name].detach().to(device=base.device, dtype=base.dtype).clone()
    params = {n: copy(n) for n in base.params}
    buffers = {n: copy(n) if state[n].is_floating_point() else state[n].detach().clone() for n in base.buffers}
    return dataclasses.replace(base, params=params, buffers=buffers)


def saved_parameters(model: nn.Module, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The named parameters as numpy arrays in the training dtype (bfloat16, which numpy
    lacks, as float32)."""
    tensors = dict(model.named_parameters())
    out = {}
    for name in names:
        t = tensors[name].detach().cpu()
        out[name] = (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()
    return out


def flat_eigenvector(vectors: Tensor | None) -> Tensor | None:
    """The top eigenvector (first column) as the next run's start vector."""
    return None if vectors is None else vectors[:, :1].clone()


class SharpnessTracker:
    """Records the sharpness of ``model`` every ``every`` optimizer steps into ``path``.

    ``batches``: the measurement set (an iterable of ``(inputs, target)`` batches, e.g. 512
    training examples), read once and kept. ``loss_fn(output, target)``: the mean loss.
    ``learning_rate``/``momentum`` are stored for the report's stability lines 2/η and
    2(1+β)/η. ``top``: Hessian eigenvalues Lanczos computes (λ_max is the first).
    ``trace_probes`` > 0: tr H by Hutch++ with that many products. ``noise_examples`` ≥ 2:
    the gradient noise scale B_simple = tr Σ/‖ḡ‖² over that many examples of the measurement
    set (drawn once from ``seed``). ``warm_start``: start Lanczos from the previous record's
    top eigenvector. Call :meth:`step` after every optimizer step.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: Iterable[Any] | Mapping[str, Iterable[Any]],
                 path: str | os.PathLike[str], *, every: int = 1, learning_rate: float | None = None,
                 momentum: float = 0.0, top: int = 1, trace_probes: int = 0, noise_examples: int = 0,
                 save_parameters: bool = True, seed: int = 0, warm_start: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"SharpnessTracker: model must be a torch.nn.Module, got {type(model).__name__}")
        self.every = _whole(every, "every", 1)
        self.top = _whole(top, "top", 1)
        self.trace_probes = _whole(trace_probes, "trace_probes", 0)
        if 0 < self.trace_probes < 6:
            raise LandscapeError(f"SharpnessTracker: trace_probes={trace_probes}: Hutch++ needs ≥ 6 probes for a "
                                 "standard error; use 0 (no trace) or ≥ 6")
        self.noise_examples = _whole(noise_examples, "noise_examples", 0)
        if self.noise_examples == 1:
            raise LandscapeError("SharpnessTracker: noise_examples=1: a covariance needs ≥ 2 examples; use 0 or ≥ 2")
        self.learning_rate = math.nan if learning_rate is None else _number(learning_rate, "learning_rate")
        self.momentum = _number(momentum, "momentum")
        self.seed = _whole(seed, "seed", 0)
        self.save_parameters, self.warm_start = bool(save_parameters), bool(warm_start)
        self.model, self.path = model, os.fspath(path)
        self.names = trainable_names(model)
        self.base = Problem.create(model, loss_fn, batches)
        self.noise_indices = self._noise_indices()
        dim = sum(p.numel() for p in self.base.params.values())
        if self.top > dim:
            raise LandscapeError(f"SharpnessTracker: top={top} is more than the {dim} trainable parameters")
        from .. import __version__
        settings = TrackerSettings(self.every, self.learning_rate, self.momentum, self.names)
        self.last_step = open_tracker_file(self.path, settings, __version__)  # options checked: the file may exist
        self.previous: Tensor | None = None
        self.records: list[Record] = []

    def _noise_indices(self) -> Tensor | None:
        if not self.noise_examples:
            return None
        total = self.base.num_examples()
        if self.noise_examples > total:
            raise LandscapeError(f"SharpnessTracker: noise_examples={self.noise_examples} is more than the "
                                 f"{total} examples of the measurement set; use at most {total}")
        check_mean_reduction(self.base)
        return select_examples(self.base, self.noise_examples, seed=self.seed)

    def step(self, step: int) -> Record | None:
        """Record when ``step`` is a multiple of ``every`` and after the file's last record."""
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise LandscapeError(f"SharpnessTracker.step: step must be an integer ≥ 0, got {step!r}")
        if step % self.every or step <= self.last_step:
            return None
        return self.record(int(step))

    maybe_record = step

    def record(self, step: int) -> Record:
        """Measure the current weights now and append the record for ``step``."""
        start = time.perf_counter()
        problem = current_problem(self.base, self.model)
        record, vectors = measure(problem, self.top, self.trace_probes, self.noise_indices, self.seed,
                                  self.previous if self.warm_start else None)
        record = dataclasses.replace(record, step=step, seconds=time.perf_counter() - start)
        parameters = saved_parameters(self.model, self.names) if self.save_parameters else None
        append_record(self.path, record, parameters)
        self.previous, self.last_step = flat_eigenvector(vectors), step
        self.records.append(record)
        return record


def measure(problem: Problem, top: int, trace_probes: int, noise_indices: Tensor | None, seed: int,
            start: Tensor | None) -> tuple[Record, Tensor | None]:
    """One record's numbers at ``problem``'s parameters (step and seconds left to the caller),
    and the Lanczos eigenvectors."""
    loss = problem.loss()
    hessian = HessianOperator(problem)
    eig = lanczos(hessian, top, "LA", seed=seed, v0=start, return_eigenvectors=True)
    trace = trace_stderr = noise_scale = math.nan
    if trace_probes:
        estimate = estimate_trace(hessian, trace_probes, method="hutch++", seed=seed)
        trace, trace_stderr = estimate.estimate, estimate.stderr
    if noise_indices is not None:
        grads = per_example_gradients(problem, noise_indices, show_progress=False)
        covariance = CovarianceOperator.from_gradients(grads.matrix)
        norm_sq = float(covariance.mean.to(torch.float64).pow(2).sum())
        noise_scale = float(covariance.trace()) / norm_sq if norm_sq > 0 else math.inf
    record = Record(step=-1, loss=loss, lambda_max=float(eig.eigenvalues[0]),
                    lambda_max_residual=float(eig.residuals[0]), lambda_max_matvecs=eig.num_matvecs,
                    trace=trace, trace_stderr=trace_stderr, noise_scale=noise_scale)
    return record, eig.eigenvectors


class TrackerCallback:
    """A Lightning-style callback (duck-typed: Lightning is not needed): records at
    ``trainer.global_step`` after every training batch."""

    def __init__(self, tracker: SharpnessTracker) -> None:
        self.tracker = tracker

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Lightning calls this after each optimizer step (``global_step`` already counts it)."""
        self.tracker.step(int(trainer.global_step))
