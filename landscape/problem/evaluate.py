"""Metrics at many parameter points: chunks sized to the memory budget, two strategies.

``vmap`` batches a chunk of points through one forward pass per batch; ``loop`` runs one
point per pass over the split's batches merged up to ``MERGED_BATCH_BYTES``. A model that
``vmap`` cannot batch falls back to the loop (:mod:`landscape.fallback`); any other error,
out-of-memory included, propagates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor
from torch.func import vmap

from .. import distributed
from ..errors import LandscapeError
from ..fallback import Fallback
from ..memory import module_output_bytes, tensor_bytes
from ..params import Params
from ..progress import progress
from .batchnorm import stacked_buffers
from .data import Batch, merge_batches, merged

if TYPE_CHECKING:
    from .problem import Problem

EvalMode = Literal["auto", "vmap", "loop"]
EVAL_MODES: tuple[str, ...] = ("auto", "vmap", "loop")

# Merging small batches saves per-call overhead, but past a cache-sized working set a
# bigger batch is slower on a CPU (measured: digits MLP 1.5× faster merged to 1437
# examples, ~1.7 MB; digits CNN 1.4× slower merged, ~50 MB): merge up to this size.
MERGED_BATCH_BYTES = 16 << 20


def classification_accuracy(output: object, target: Tensor) -> Tensor | None:
    """Fraction correct, when the output/target pair looks like classification (class
    indices against logits, or 0/1 targets against logits of the same shape); else None."""
    if not isinstance(output, Tensor):
        return None
    if not target.is_floating_point() and output.ndim == target.ndim + 1 \
            and output.shape[:-1] == target.shape:
        return (output.argmax(-1) == target).to(torch.float64).mean()
    if target.is_floating_point() and output.shape == target.shape and bool(
            ((target == 0) | (target == 1)).all()):
        return ((output > 0).to(target.dtype) == target).to(torch.float64).mean()
    return None


class Evaluator:
    """How one :class:`Problem` evaluates its metrics at stacked parameter points.

    Reads the problem's policies (``eval_mode``, ``max_points_per_pass``,
    ``memory_budget_bytes``, ``bn_policy``) at every call; keeps what it learns: the bytes
    of one point's forward pass, the merged batches per split and, in ``fallback``,
    whether ``vmap`` works for this model and loss.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.fallback = Fallback("vmap")
        self.merged: dict[str, Iterable[Batch]] = {}
        self._point_bytes: int | None = None

    # ------------------------------------------------------------------ sizes
    def point_bytes(self) -> int:
        """Bytes of one parameter point's forward pass: the parameters plus twice every module
        output for the largest batch (measured once with forward hooks, then cached)."""
        if self._point_bytes is None:
            problem = self.problem
            largest = max((problem.batches(s).largest for s in problem.split_names), key=lambda b: b.size)
            activations = module_output_bytes(problem.model,
                                              lambda: problem.forward(problem.params, largest.inputs))
            own = max(1, 2 * activations + tensor_bytes(problem.params))
            # every rank of a data-parallel run takes the same chunks of points (the same collectives)
            self._point_bytes = own if problem.shard is None else distributed.all_reduce_max(own)
        return self._point_bytes

    def points_per_pass(self) -> int:
        """How many parameter points to evaluate per forward pass within the budget."""
        problem = self.problem
        return int(max(1, min(problem.max_points_per_pass, problem.memory_budget_bytes // self.point_bytes())))

    def resolved_mode(self) -> str:
        """``eval_mode`` with "auto" resolved: on a GPU, points batched through ``vmap``
        (per-call overhead dominates small models there); elsewhere one point per pass over
        batches merged up to ``MERGED_BATCH_BYTES`` (a CPU forward is compute-bound already, and
        ``vmap`` turns convolutions into slow grouped ones). A fixed rule, not a timing
        race, so reruns and resumed scans compute every point the same way."""
        if self.problem.eval_mode == "auto":
            return "vmap" if self.problem.device.type == "cuda" else "loop"
        return self.problem.eval_mode

    def merged_batches(self, split: str) -> Iterable[Batch]:
        """The split's batches concatenated up to ``MERGED_BATCH_BYTES`` of activations each
        (the batch-size-weighted mean is unchanged); as they are where they do not concatenate.
        A cached split's merged batches are kept; a streamed split's are merged on every pass.
        Cached per split (clear ``merged`` after changing the memory budget)."""
        if split not in self.merged:
            problem = self.problem
            batches = problem.batches(split)
            largest = batches.largest.size
            per_example = max(1, (self.point_bytes() - tensor_bytes(problem.params)) // largest)
            budget = min(problem.memory_budget_bytes, MERGED_BATCH_BYTES)
            limit = max(largest, budget // per_example)
            self.merged[split] = merge_batches(batches, limit) if batches.mode == "cache" \
                else MergedStream(batches, limit)
        return self.merged[split]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, points: Mapping[str, Tensor], split: str = "train", *,
                 show_progress: bool = True) -> dict[str, Tensor]:
        """Loss, accuracy and extra metrics at P stacked parameter points (see
        :meth:`Problem.evaluate`); float64 CPU tensors of shape ``[P]``."""
        num_points = next(iter(points.values())).shape[0]
        per_pass = self.points_per_pass()
        results: dict[str, list[Tensor]] = {k: [] for k in self.problem.metric_names()}
        bar = progress(num_points, f"evaluating {split}", "pt") if show_progress and num_points > per_pass else None
        for start in range(0, num_points, per_pass):
            chunk = {n: p[start:start + per_pass] for n, p in points.items()}
            for key, value in self.evaluate_chunk(chunk, split).items():
                results[key].append(value)
            if bar is not None:
                bar.update(min(per_pass, num_points - start))
        if bar is not None:
            bar.close()
        return {k: torch.cat(v) for k, v in results.items()}

    def evaluate_chunk(self, chunk: Params, split: str) -> dict[str, Tensor]:
        """One chunk of points by the resolved strategy (``vmap`` falling back to the loop)."""
        buffers = self.buffers_for(chunk)
        if self.resolved_mode() == "vmap":
            values = self.fallback.run(lambda: self.vmap_chunk(chunk, buffers, split),
                                       lambda: self.loop_chunk(chunk, buffers, split))
        else:
            values = self.loop_chunk(chunk, buffers, split)
        if self.problem.shard is None:
            return values
        summed = self.problem.batches(split).reduce(torch.stack(list(values.values())))
        return dict(zip(values, summed))

    def buffers_for(self, chunk: Params) -> Params | None:
        """Per-point buffers under the 'recompute' policy, else None (θ*'s buffers)."""
        if self.problem.bn_policy != "recompute":
            return None
        return stacked_buffers(self.problem.recompute_bn_buffers, chunk)

    def vmap_chunk(self, chunk: Params, buffers: Params | None, split: str) -> dict[str, Tensor]:
        """All points of ``chunk`` through one vmapped forward pass per batch of the split."""
        problem = self.problem
        num_points = next(iter(chunk.values())).shape[0]
        totals = {k: torch.zeros(num_points, dtype=torch.float64, device=problem.device)
                  for k in problem.metric_names()}
        with torch.no_grad():
            for batch in problem.batches(split):
                metrics_at = lambda params, bufs, batch=batch: self.metrics_at(params, bufs, batch)  # noqa: E731
                values = vmap(metrics_at, in_dims=(0, None if buffers is None else 0))(chunk, buffers)
                for key, value in values.items():
                    totals[key] += value.to(torch.float64) * batch.size
        return {k: (v / problem.num_examples(split)).cpu() for k, v in totals.items()}

    def loop_chunk(self, chunk: Params, buffers: Params | None, split: str) -> dict[str, Tensor]:
        """One point per forward pass, over the split's merged batches (one pass over the data
        for the whole chunk: the points are the inner loop)."""
        num_points = next(iter(chunk.values())).shape[0]
        points = [{n: p[i] for n, p in chunk.items()} for i in range(num_points)]
        point_buffers = [None if buffers is None else {n: b[i] for n, b in buffers.items()}
                         for i in range(num_points)]
        totals: list[dict[str, Tensor]] = [{} for _ in range(num_points)]
        with torch.no_grad():
            for batch in self.merged_batches(split):
                for point, bufs, sums in zip(points, point_buffers, totals):
                    for key, value in self.metrics_at(point, bufs, batch).items():
                        sums[key] = sums.get(key, 0) + value.to(torch.float64) * batch.size
        count = self.problem.num_examples(split)
        return {k: torch.stack([sums[k] / count for sums in totals]).cpu() for k in totals[0]}

    def metrics_at(self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor] | None,
                   batch: Batch) -> dict[str, Tensor]:
        """Scalar metrics (loss, accuracy, extras) of one batch at one parameter point."""
        problem = self.problem
        out = problem.forward(params, batch.inputs, buffers)
        values = {"loss": problem.loss_of(out, batch.target).reshape(())}
        if problem.has_accuracy:
            accuracy = classification_accuracy(out, batch.target)
            if accuracy is None:  # the first batches looked like classification, this one does not
                raise LandscapeError("accuracy: a batch's output and target do not look like classification "
                                     "although the first batch of every split did")
            values["accuracy"] = accuracy
        for name, fn in problem.metrics.items():
            values[name] = torch.as_tensor(fn(out, batch.target)).reshape(())
        return values


class MergedStream:
    """A streamed split's batches merged up to ``limit`` examples, anew on every pass."""

    def __init__(self, batches: Iterable[Batch], limit: int) -> None:
        self.batches, self.limit = batches, limit

    def __iter__(self) -> Iterator[Batch]:
        return merged(self.batches, self.limit)
