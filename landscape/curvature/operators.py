"""Curvature operators: symmetric D×D matrices known only through matrix-vector products.

``weight_decay`` λ > 0 makes every operator the curvature of L(θ) + λ/2‖θ_S‖² over the
selected parameters S: A + λI, added exactly to each product (no autograd, no extra pass).

Every operator here is the curvature of the *empirical risk* L(θ) = Σ_b (n_b/N)·ℓ_b(θ)
(batch means weighted by batch size), at θ*, restricted to a subset of parameters
chosen by ``fnmatch`` name patterns. Vectors are flat over the selected parameters in
``problem.params`` order (the layout of :mod:`landscape.params`).

``matmat(V)`` with ``V`` of shape ``[D, m]`` makes ONE pass over the data for all ``m``
columns: per batch, the forward pass and first backward are shared and the ``m``
second-order products are batched with ``vmap``. Counters record HVPs (``num_matvecs``)
and sweeps over the data (``num_data_passes``) so algorithms can report their cost.
The base class and the solvers are the linear-algebra core's (:mod:`landscape.linalg`).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp
from torch.utils._pytree import tree_map

from ..errors import LandscapeError, first_line
from ..fallback import Fallback, is_forward_ad_unsupported, is_resource_error, vmap_or_loop
from ..linalg.operators import LinearOperator, is_low_precision
from ..params import Params, flatten_columns, unflatten_columns
from ..per_example import batch_example_gradients
from ..per_example import examples_per_chunk as default_examples_per_chunk
from ..problem import Batch, Problem
from .hvp import (
    AUTO_ORDER,
    AUTO_RULE,
    HVP_MODES,
    GradientGraph,
    HVPMode,
    Pullback,
    apply_graph,
    batch_hvp,
    gradient_graph,
    map_columns,
    reverse_pullback,
)


def _accumulator(vectors: Tensor) -> Tensor:
    """Zeros for a sum of products over batches: float32 for 16-bit ``vectors`` (one rounding
    to their dtype at the end, not one per batch), their own dtype otherwise."""
    dtype = torch.float32 if is_low_precision(vectors.dtype) else vectors.dtype
    return torch.zeros(vectors.shape, dtype=dtype, device=vectors.device)


# ---------------------------------------------------------------------------- parameters
def select_parameters(params: Mapping[str, Tensor], patterns: Sequence[str] | None) -> list[str]:
    """Names of ``params`` (in order) matching any ``fnmatch`` pattern; all when None."""
    if not params:
        raise LandscapeError("the model has no trainable parameters: there is no curvature to compute")
    if not patterns:
        return list(params)
    chosen = [n for n in params if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        names = ", ".join(list(params)[:6]) + (", ..." if len(params) > 6 else "")
        raise LandscapeError(f"parameter patterns {list(patterns)} match no trainable parameter "
                             f"(names: {names}); use fnmatch patterns such as '0.*' or '*.weight'")
    return chosen


# ---------------------------------------------------------------------------- problem-based
def differentiable_attention() -> contextlib.AbstractContextManager[Any]:
    """Route scaled-dot-product attention to its math kernel: the fused CPU/GPU kernels
    have neither forward-mode AD nor a double backward, so no HVP could pass through them."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # older torch: nothing to switch
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


class ProblemOperator(LinearOperator):
    """Common machinery: selected parameters, split, per-batch weighting, column chunks."""

    def __init__(self, problem: Problem, *, split: str = "train",
                 param_patterns: Sequence[str] | None = None, max_columns: int | None = None,
                 weight_decay: float = 0.0) -> None:
        if not 0 <= weight_decay < float("inf"):
            raise LandscapeError(f"weight_decay must be a finite number ≥ 0, got {weight_decay}")
        self.weight_decay = float(weight_decay)
        self.problem = problem
        self.split = split
        self.param_patterns = list(param_patterns or [])
        self.names = select_parameters(problem.params, self.param_patterns)
        self.selected = {n: problem.params[n] for n in self.names}
        self.batches = problem.batches(split)
        self.num_examples = self.batches.num_examples
        super().__init__(sum(p.numel() for p in self.selected.values()), problem.dtype, problem.device)
        self.max_columns = max_columns or self._default_max_columns()
        self.vmap_fallback = Fallback("vmap")  # columns one at a time once vmap is unsupported

    def _default_max_columns(self) -> int:
        # one point of the forward pass costs ~1 unit; an HVP column ~3 (forward, two backwards)
        per_pass = self.problem.points_per_pass()
        return max(1, min(64, per_pass // 3 if per_pass >= 3 else 1))

    @property
    def precision(self) -> torch.dtype:
        """The autocast dtype when the problem computes under autocast, else ``dtype``."""
        return self.problem.autocast or self.dtype

    def describe(self) -> dict[str, Any]:
        """What the operator is over: split, parameters, BatchNorm and dropout handling."""
        return {**super().describe(), "split": self.split, "param_patterns": self.param_patterns,
                "weight_decay": self.weight_decay,
                "parameter_names": self.names, "bn_policy_used": "eval (running statistics fixed)",
                "dropout": "off (model evaluated in eval mode)"}

    def matmat(self, vectors: Tensor) -> Tensor:
        """``(A + λI) @ V`` (λ = ``weight_decay``, the curvature of the loss plus λ/2‖θ_S‖²:
        exact, no extra pass) with attention layers on their differentiable path."""
        with differentiable_attention():
            products = super().matmat(vectors)
        if self.weight_decay:
            products = products + self.weight_decay * vectors.to(device=products.device, dtype=products.dtype)
        return products

    def _matmat(self, vectors: Tensor) -> Tensor:
        total = _accumulator(vectors)
        for batch in self.batches:
            weight = batch.size / self.num_examples
            for start in range(0, vectors.shape[1], self.max_columns):
                cols = vectors[:, start:start + self.max_columns]
                block = unflatten_columns(cols, self.selected)
                products = self._batch_products(batch, block)
                total[:, start:start + cols.shape[1]] += weight * flatten_columns(
                    {n: products[n] for n in self.names}).to(total.dtype)
        return self.batches.reduce(total).to(self.dtype)

    def _batch_products(self, batch: Batch, block: Params) -> Params:
        raise NotImplementedError

    def _vmapped(self, fn: Callable[[Params], Params], block: Params) -> Params:
        """``fn`` applied to every column of ``block`` with vmap, or one by one where
        torch.func cannot batch a layer or the loss (learned once per operator)."""
        return vmap_or_loop(fn, block, self.vmap_fallback)

    @property
    def _vmap_ok(self) -> bool | None:  # kept for tests/test_curvature_operators.py
        return self.vmap_fallback.ok


class HessianOperator(ProblemOperator):
    """∇²L(θ*) over the selected parameters.

    ``hvp_mode`` (:mod:`.hvp` has the three ways): 'autograd' (double backward through the
    autograd engine), 'reverse' (torch.func ``vjp`` of ``grad``), 'forward' (torch.func
    ``jvp`` of ``grad``), or 'auto', a fixed rule (:data:`.hvp.AUTO_RULE`): the first of
    autograd, reverse, forward whose product works on the first batch. A requested mode
    that fails for the model falls back to reverse (then autograd, forward); the note says so.

    ``cache_graphs`` (default: when ~3× the activations of all batches fit in half the
    Problem's memory budget) keeps each batch's forward and first backward for the reverse
    modes, so every product is one double-backward pass.
    """

    name = "hessian"
    MODES = HVP_MODES

    def __init__(self, problem: Problem, *, split: str = "train",
                 param_patterns: Sequence[str] | None = None, hvp_mode: HVPMode = "auto",
                 max_columns: int | None = None, cache_graphs: bool | None = None,
                 weight_decay: float = 0.0) -> None:
        if hvp_mode not in ("auto", *HVP_MODES):
            raise LandscapeError(f"hvp_mode must be auto, reverse, forward or autograd, got {hvp_mode!r}")
        super().__init__(problem, split=split, param_patterns=param_patterns, max_columns=max_columns,
                         weight_decay=weight_decay)
        if cache_graphs and self.batches.mode == "stream":
            raise LandscapeError(f"cache_graphs=True keeps every batch's gradient graph, but split '{split}' is "
                                 "streamed (it does not fit the memory budget); leave cache_graphs unset")
        self.cache_graphs = self._graphs_fit() if cache_graphs is None else cache_graphs
        self._graphs: dict[int, GradientGraph] = {}
        self._pullbacks: dict[int, Pullback] = {}
        self.requested_mode = hvp_mode
        self.mode_rule = AUTO_RULE if hvp_mode == "auto" else f"{hvp_mode}: requested"
        # a requested mode that fails falls back to reverse, as it always has, then to the rule's order
        order = AUTO_ORDER if hvp_mode == "auto" else tuple(dict.fromkeys((hvp_mode, "reverse", *AUTO_ORDER)))
        self.mode, self.mode_note = self._first_working(order)

    @property
    def hvp_mode(self) -> str:
        """The mode every product uses."""
        return self.mode

    def describe(self) -> dict[str, Any]:
        """The base description plus the HVP mode, the rule that chose it and graph caching."""
        return {**super().describe(), "hvp_mode": self.mode, "hvp_mode_requested": self.requested_mode,
                "hvp_mode_rule": self.mode_rule, "hvp_mode_note": self.mode_note,
                "hvp_graph_cached": bool(self.cache_graphs and self.mode != "forward")}

    def _graphs_fit(self) -> bool:
        """Keep every batch's gradient graph between products when ~3× the forward
        activations of all batches fit in half the Problem's memory budget."""
        if self.batches.mode == "stream":  # graphs are kept by batch, and streamed batches are new each pass
            return False
        per_batch = 3 * self.problem.point_bytes()
        return per_batch * len(self.batches) <= self.problem.memory_budget_bytes // 2

    def _loss_of(self, batch: Batch) -> Callable[[Params], Tensor]:
        return lambda p: self.problem.batch_loss(p, batch)

    def _batch_products(self, batch: Batch, block: Params) -> Params:
        return self._hvp(batch, block, self.mode)

    def _hvp(self, batch: Batch, block: Params, mode: str) -> Params:
        if not self.cache_graphs or mode == "forward":
            return batch_hvp(self._loss_of(batch), self.selected, block, mode, self._vmapped)
        # θ* never changes: the forward and first backward are done once per batch, each
        # product is then a single double-backward pass
        if mode == "autograd":
            graph = self._graphs.get(id(batch))
            if graph is None:
                graph = self._graphs[id(batch)] = gradient_graph(self._loss_of(batch), self.selected)
            return apply_graph(graph, block, retain=True)
        pullback = self._pullbacks.get(id(batch))
        if pullback is None:
            pullback = self._pullbacks[id(batch)] = reverse_pullback(self._loss_of(batch), self.selected)
        return map_columns(pullback, block, self._vmapped)

    def _first_working(self, modes: Sequence[str]) -> tuple[str, str]:
        """The first of ``modes`` whose product works on the first batch, and a note naming
        those that failed (a capability check, not a timing: the choice is the same every run)."""
        probe = {n: torch.ones_like(p).unsqueeze(0) for n, p in self.selected.items()}
        failures = []
        for mode in modes:
            try:
                with differentiable_attention():
                    self._hvp(self.batches[0], probe, mode)
            except Exception as exc:
                if is_resource_error(exc):  # out of memory says nothing about the mode
                    raise
                self._graphs.clear()
                self._pullbacks.clear()
                failures.append(f"{mode} HVPs failed for this model ({type(exc).__name__}: {first_line(exc)})")
                continue
            used = f"; used {mode}" if failures else ""
            return mode, "; ".join(failures) + used
        raise LandscapeError(f"cannot compute Hessian-vector products for this model ({'; '.join(failures)}); "
                             "its layers and loss must support double backward or torch.func.grad/vjp")


class GGNOperator(ProblemOperator):
    """Generalized Gauss-Newton Σ_b (n_b/N)·J_bᵀ ∇²_z ℓ_b(z) J_b, z the model output.

    J v uses forward mode (``jvp``), or the double-vjp trick where forward mode is missing.
    """

    name = "ggn"

    def __init__(self, problem: Problem, **kwargs: Any) -> None:
        super().__init__(problem, **kwargs)
        self.forward_fallback = Fallback("forward-mode AD", is_forward_ad_unsupported)

    def _batch_products(self, batch: Batch, block: Params) -> Params:
        problem, target = self.problem, batch.target
        def model_out(p: Params) -> Any:
            return problem.forward(p, batch.inputs)

        def loss_of_output(z: Any) -> Tensor:
            return problem.loss_of(z, target)

        output, pullback = vjp(model_out, self.selected)[:2]
        loss_pullback = vjp(grad(loss_of_output), output)[1]

        def double_vjp(v: Params) -> Any:
            # pullback is linear in the cotangent u; its vjp at any u applies J
            zero = tree_map(torch.zeros_like, output)
            return vjp(lambda u: pullback(u)[0], zero)[1](v)[0]

        def jacobian_product(v: Params) -> Any:
            return self.forward_fallback.run(lambda: jvp(model_out, (self.selected,), (v,))[1],
                                             lambda: double_vjp(v))

        return self._vmapped(lambda v: pullback(loss_pullback(jacobian_product(v))[0])[0], block)


class EmpiricalFisherOperator(ProblemOperator):
    """Empirical Fisher (1/N) Σ_i g_i g_iᵀ, g_i the gradient of example i's loss at θ*.

    Per-example gradients come from :func:`landscape.per_example.batch_example_gradients`
    (``vmap(grad)`` over examples, exact, no sampling; a single-example loop where the model
    has no batching rule), ``examples_per_chunk`` at a time to bound memory (default from
    the memory budget, as for the gradient-noise analysis). Example i's loss is the user's
    loss on a batch holding only that example.
    """

    name = "empirical_fisher"

    def __init__(self, problem: Problem, *, examples_per_chunk: int | None = None, **kwargs: Any) -> None:
        super().__init__(problem, **kwargs)
        self.examples_per_chunk = examples_per_chunk or default_examples_per_chunk(problem)
        self.gradient_fallback = Fallback("vmap")  # the single-example loop once vmap is unsupported

    def _matmat(self, vectors: Tensor) -> Tensor:
        total = _accumulator(vectors)
        for batch in self.batches:
            for start in range(0, batch.size, self.examples_per_chunk):
                grads = self.per_example_gradients(batch.slice(start, start + self.examples_per_chunk))
                total += (grads.T @ (grads @ vectors)).to(total.dtype)
        return (self.batches.reduce(total) / self.num_examples).to(self.dtype)

    def per_example_gradients(self, batch: Batch) -> Tensor:
        """``[n, D]`` gradients of each example's loss over the selected parameters."""
        return batch_example_gradients(self.problem, batch, self.selected, self.gradient_fallback)


OPERATORS: dict[str, type[ProblemOperator]] = {
    "hessian": HessianOperator,
    "ggn": GGNOperator,
    "empirical_fisher": EmpiricalFisherOperator,
}


def make_operator(problem: Problem, kind: str = "hessian", **kwargs: Any) -> ProblemOperator:
    """An operator by name: 'hessian', 'ggn' or 'empirical_fisher'."""
    if kind not in OPERATORS:
        raise LandscapeError(f"unknown curvature operator {kind!r}; choose one of {', '.join(OPERATORS)}")
    if kind != "hessian":
        kwargs.pop("hvp_mode", None)
    return OPERATORS[kind](problem, **kwargs)

