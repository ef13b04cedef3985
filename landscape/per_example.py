"""Per-example gradients g_i = ∇ℓ(θ*; x_i, y_i), stacked as the rows of a matrix G [n, d].

The fast path is ``vmap(grad(ℓ_i))`` over ``functional_call``, chunked to the problem's
memory budget. Models ``vmap`` cannot handle (ops without batching rules, ``.item()`` in
``forward``, some RNN kernels) fall back to a loop of single-example ``grad`` calls, which is
correct but slower; the result says which was used (``method``). Only torch.func's refusal to
batch switches to the loop (:mod:`landscape.fallback`); any other error propagates.

The per-example loss ℓ_i is the user's loss called on a batch of one example (a leading
batch dimension of size 1 on every tensor leaf of the inputs and on the target), so any
mean-reduced loss works unchanged. A loss that sums over the batch is detected up front.

This is the one per-example-gradient implementation: the gradient-noise analysis
(``landscape.noise``) stacks all rows with :func:`per_example_gradients`, and the empirical
Fisher operator (``landscape.curvature``) streams chunks of rows, over any subset of the
parameters, with :func:`batch_example_gradients`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.func import grad, vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from . import distributed
from .errors import LandscapeError, first_line
from .fallback import Fallback
from .memory import tensor_bytes
from .params import Params, flatten_rows
from .problem import Batch, Problem
from .problem.data import concat_batches
from .progress import progress

GradientMethod = Literal["vmap", "loop"]


@dataclass
class PerExampleGradients:
    """Rows of ``matrix`` are flattened per-example gradients in ``problem.params`` order.

    ``indices`` are the examples' positions in the split (batches concatenated in order);
    ``method`` says whether ``vmap`` or the single-example loop produced them and, for the
    loop, ``fallback_reason`` says why ``vmap`` was not used.
    """

    matrix: Tensor
    indices: Tensor
    method: GradientMethod
    split: str
    fallback_reason: str = ""

    @property
    def num_examples(self) -> int:
        """Number of examples (rows of ``matrix``)."""
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        """Number of parameters D (columns of ``matrix``)."""
        return int(self.matrix.shape[1])


# ---------------------------------------------------------------------------- data access
def gather_examples(problem: Problem, indices: Tensor, split: str = "train") -> Batch:
    """One batch holding the examples at ``indices`` (positions in the concatenated split)."""
    return concat_batches(_pieces(problem, indices, split)[0])


def _pieces(problem: Problem, indices: Tensor, split: str) -> tuple[list[Batch], Tensor]:
    """The examples at ``indices`` that this process holds, batch by batch, and their positions
    (all of them, unless a data-parallel rank holds only part of each batch)."""
    batches = problem.batches(split)
    pieces: list[Batch] = []
    held: list[Tensor] = []
    indices = indices.to("cpu")
    for batch, offset in zip(batches, batches.positions):
        inside = indices[(indices >= offset) & (indices < offset + batch.size)]
        if inside.numel():
            pieces.append(_take(batch, (inside - offset).to(batch.target.device)))
            held.append(inside)
    if not pieces and problem.shard is None:
        raise LandscapeError(f"no examples selected from split '{split}'")
    return pieces, torch.cat(held) if held else torch.zeros(0, dtype=torch.int64)


def _take(batch: Batch, rows: Tensor) -> Batch:
    leaves, spec = tree_flatten(batch.inputs)
    taken = [leaf.index_select(0, rows) if isinstance(leaf, Tensor) else leaf for leaf in leaves]
    return Batch(tree_unflatten(taken, spec), batch.target.index_select(0, rows), int(rows.numel()))


def select_examples(problem: Problem, num_examples: int | None, split: str = "train",
                    seed: int = 0) -> Tensor:
    """Sorted positions of ``num_examples`` examples drawn without replacement (all if None)."""
    total = problem.num_examples(split)
    if num_examples is None or num_examples == total:
        return torch.arange(total)
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 2:
        raise LandscapeError(f"--examples must be an integer ≥ 2 (a covariance needs two gradients), "
                             f"got {num_examples!r}")
    if num_examples > total:
        raise LandscapeError(f"--examples {num_examples} is larger than split '{split}', which has "
                             f"{total} examples; use at most {total}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=generator)[:num_examples].sort().values


# ---------------------------------------------------------------------------- per-example loss
def _split_leaves(inputs: Any) -> tuple[list[Tensor], list[Any], Any]:
    """Tensor leaves (vmapped over dim 0) apart from the other leaves (closed over)."""
    leaves, spec = tree_flatten(inputs)
    return [leaf for leaf in leaves if isinstance(leaf, Tensor)], leaves, spec


def _single_loss_fn(problem: Problem, all_leaves: list[Any],
                    spec: Any) -> Callable[[dict[str, Tensor], tuple[Tensor, ...], Tensor], Tensor]:
    """ℓ(params, tensor_leaves_of_one_example, target_of_one_example) with batch dim 1."""
    tensor_slots = [i for i, leaf in enumerate(all_leaves) if isinstance(leaf, Tensor)]

    def loss(params: dict[str, Tensor], tensor_leaves: tuple[Tensor, ...], target: Tensor) -> Tensor:
        leaves = list(all_leaves)
        for slot, leaf in zip(tensor_slots, tensor_leaves):
            leaves[slot] = leaf.unsqueeze(0)
        inputs = tree_unflatten(leaves, spec)
        return problem.loss_of(problem.forward(params, inputs), target.unsqueeze(0)).reshape(())

    return loss


def single_example_losses(problem: Problem, batch: Batch) -> Tensor:
    """ℓ_i for each example of ``batch``, each computed on a batch of one (a loop)."""
    values = []
    with torch.no_grad():
        for i in range(batch.size):
            one = batch.slice(i, i + 1)
            values.append(problem.batch_loss(problem.params, one).reshape(()))
    return torch.stack(values)


def check_mean_reduction(problem: Problem, split: str = "train", max_pairs: int = 8) -> None:
    """Refuse a loss that is not the mean of per-example losses (e.g. ``reduction='sum'``).

    Compares the loss on a 2-example batch with the mean of the two single-example losses;
    pairs whose losses are both ~0 say nothing and the next pair is tried.
    """
    batch = next((b for b in problem.batches(split) if b.size >= 2), None)
    if batch is None:
        return
    tol = 1e-4 if problem.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9
    for start in range(0, min(batch.size - 1, 2 * max_pairs), 2):
        pair = batch.slice(start, start + 2)
        with torch.no_grad():
            together = float(problem.batch_loss(problem.params, pair))
        singles = single_example_losses(problem, pair).double()
        mean, total = float(singles.mean()), float(singles.sum())
        scale = max(abs(mean), abs(total), abs(together))
        if scale < 1e-12:
            continue
        if abs(together - mean) <= tol * scale:
            return
        if abs(together - total) <= tol * scale:
            raise LandscapeError(
                "the loss sums over the batch (reduction='sum'): on two examples it gave "
                f"{together:.6g}, their sum; gradient-noise statistics need the batch mean — "
                "use reduction='mean' (or divide the loss by the batch size)")
        raise LandscapeError(
            f"the loss on two examples ({together:.6g}) is neither the mean ({mean:.6g}) nor the "
            f"sum ({total:.6g}) of their single-example losses; per-example gradients need a loss "
            "that is the mean of per-example losses")


# ---------------------------------------------------------------------------- gradients
def _vmap_chunk(problem: Problem, batch: Batch, out: Tensor | None = None,
                params: Params | None = None) -> Tensor:
    tensors, leaves, spec = _split_leaves(batch.inputs)
    loss = _single_loss_fn(problem, leaves, spec)
    at = problem.params if params is None else params
    grads = vmap(grad(loss), in_dims=(None, 0, 0))(at, tuple(tensors), batch.target)
    return flatten_rows(grads, out)


def _loop_chunk(problem: Problem, batch: Batch, out: Tensor | None = None,
                params: Params | None = None) -> Tensor:
    at = problem.params if params is None else params
    rows = out if out is not None else torch.empty(batch.size, sum(p.numel() for p in at.values()),
                                                   dtype=problem.dtype, device=problem.device)
    for i in range(batch.size):
        one = batch.slice(i, i + 1)
        g = grad(lambda p, one=one: problem.batch_loss(p, one).reshape(()))(at)
        flatten_rows({n: t.unsqueeze(0) for n, t in g.items()}, rows[i:i + 1])
    return rows


def batch_example_gradients(problem: Problem, batch: Batch, params: Params | None = None,
                            fallback: Fallback | None = None) -> Tensor:
    """``[batch.size, D]`` per-example gradients of ``batch`` over ``params`` (a subset of
    ``problem.params`` in its order, the rest fixed at θ*; all when None).

    ``vmap``, falling back to the single-example loop when torch.func cannot batch the
    model or loss; pass the same ``fallback`` to every call of a stream of batches so the
    failing try is made once (``fallback.ok`` then says which method ran).
    """
    fallback = fallback if fallback is not None else Fallback("vmap")
    return fallback.run(lambda: _vmap_chunk(problem, batch, params=params),
                        lambda: _loop_chunk(problem, batch, params=params))


def examples_per_chunk(problem: Problem) -> int:
    """How many per-example gradients to compute in one ``vmap`` call within the budget.

    Per example: its gradient (d entries), copies of its activations, and the batched
    weight-gradient intermediates, counted as 8 × (activations + d) entries (measured
    peaks on the digits MLP/CNN were ~7× the gradient size per example).
    """
    largest = max(problem.batches(split).largest.size for split in problem.split_names)
    param_bytes = tensor_bytes(problem.params)
    activation_bytes = max(0, problem.point_bytes() - param_bytes) / (2 * largest)
    per_example = 8 * (activation_bytes + param_bytes)
    return int(max(1, min(4096, problem.memory_budget_bytes // max(1, per_example))))


def per_example_gradients(problem: Problem, indices: Tensor | None = None, *, split: str = "train",
                          chunk_size: int | None = None, method: str = "auto",
                          show_progress: bool = True) -> PerExampleGradients:
    """Per-example gradients at θ* for the examples at ``indices`` (all of the split if None).

    Rows follow the sorted ``indices`` (stored in the result).

    ``method``: "auto" tries ``vmap`` on a small chunk and falls back to the loop if
    torch.func cannot batch the model or loss (any other error propagates); "vmap" or
    "loop" force one. The matrix lives on ``problem.device`` in ``problem.dtype``; it
    needs n·d entries of memory.
    """
    if method not in ("auto", "vmap", "loop"):
        raise LandscapeError(f"method must be 'auto', 'vmap' or 'loop', got {method!r}")
    if indices is None:
        indices = torch.arange(problem.num_examples(split))
    indices = indices.to("cpu").sort().values  # rows come out in split order
    pieces, held = _pieces(problem, indices, split)  # a data-parallel rank: its own, gathered below
    examples = concat_batches(pieces) if pieces else None
    dim = sum(p.numel() for p in problem.params.values())
    matrix_bytes = indices.numel() * dim * torch.finfo(problem.dtype).bits // 8
    if matrix_bytes > 4 * problem.memory_budget_bytes:
        raise LandscapeError(
            f"{indices.numel()} per-example gradients of {dim} parameters need "
            f"{matrix_bytes / 2**30:.1f} GiB, over the memory budget "
            f"({problem.memory_budget_bytes / 2**30:.1f} GiB); lower --examples")
    chunk = chunk_size or examples_per_chunk(problem)

    chosen: GradientMethod = "loop" if method == "loop" else "vmap"
    reason = "forced by method='loop'" if method == "loop" else ""
    if method == "auto":
        fallback = Fallback("vmap")
        first = problem.batches(split).first  # held by every rank: all decide alike
        probe = first.slice(0, min(2, first.size))
        if not fallback.probe(lambda: _vmap_chunk(problem, probe)):
            chosen, reason = "loop", fallback.reason
    compute = _vmap_chunk if chosen == "vmap" else _loop_chunk

    count = 0 if examples is None else examples.size
    matrix = torch.empty(count, dim, dtype=problem.dtype, device=problem.device)
    bar = progress(count, f"per-example gradients ({chosen})", "ex") if show_progress else None
    try:
        for start in range(0, count, chunk):
            assert examples is not None
            part = examples.slice(start, min(start + chunk, count))
            try:
                compute(problem, part, matrix[start:start + part.size])
            except LandscapeError:
                raise
            except Exception as exc:
                raise LandscapeError(f"per-example gradient ({chosen}) failed on examples "
                                     f"{start}..{start + part.size - 1} of split '{split}' "
                                     f"({type(exc).__name__}: {first_line(exc)}); check the model and loss") from None
            if bar is not None:
                bar.update(part.size)
    finally:
        if bar is not None:
            bar.close()
    if problem.shard is not None:
        matrix = distributed.gather_rows(matrix, held, f"gathering per-example gradients of split '{split}'")
    return PerExampleGradients(matrix, indices.clone(), chosen, split, reason)
