"""Curvature operators: symmetric D×D matrices known only through matrix-vector products.

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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp
from torch.utils._pytree import tree_map

from ..errors import LandscapeError
from ..fallback import Fallback, is_forward_ad_unsupported, is_resource_error, is_vmap_unsupported, vmap_or_loop
from ..linalg.operators import LinearOperator, is_low_precision
from ..params import Params, flatten_columns, unflatten_columns
from ..per_example import batch_example_gradients
from ..per_example import examples_per_chunk as default_examples_per_chunk
from ..problem import Batch, Problem

HVPMode = Literal["auto", "reverse", "forward", "autograd"]


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
                 param_patterns: Sequence[str] | None = None, max_columns: int | None = None) -> None:
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

    def describe(self) -> dict[str, Any]:
        """What the operator is over: split, parameters, BatchNorm and dropout handling."""
        return {**super().describe(), "split": self.split, "param_patterns": self.param_patterns,
                "parameter_names": self.names, "bn_policy_used": "eval (running statistics fixed)",
                "dropout": "off (model evaluated in eval mode)"}

    def matmat(self, vectors: Tensor) -> Tensor:
        """``A @ V`` with attention layers on their differentiable path."""
        with differentiable_attention():
            return super().matmat(vectors)

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
        return total.to(self.dtype)

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

    ``hvp_mode``:
      * 'reverse' — reverse-over-reverse with torch.func: ``vjp`` of ``grad``; one forward and
        first backward per batch, the second backward vmapped over the columns;
      * 'forward' — forward-over-reverse with torch.func: ``jvp`` of ``grad``, vmapped;
      * 'autograd' — reverse-over-reverse through the autograd engine (``create_graph``
        double backward, columns batched with ``is_grads_batched``): the same math without
        torch.func's per-operation overhead, which dominates on small models;
      * 'auto' — time the modes on the first batch, separately for one column and for a
        block, and use the faster for each (models without forward-mode AD, e.g. some RNN
        kernels, or without vmap rules simply lose those candidates).
    """

    name = "hessian"
    MODES = ("reverse", "forward", "autograd")

    def __init__(self, problem: Problem, *, split: str = "train",
                 param_patterns: Sequence[str] | None = None, hvp_mode: HVPMode = "auto",
                 max_columns: int | None = None, cache_graphs: bool | None = None) -> None:
        super().__init__(problem, split=split, param_patterns=param_patterns, max_columns=max_columns)
        if cache_graphs and self.batches.mode == "stream":
            raise LandscapeError(f"cache_graphs=True keeps every batch's gradient graph, but split '{split}' is "
                                 "streamed (it does not fit the memory budget); leave cache_graphs unset")
        self.cache_graphs = self._graphs_fit() if cache_graphs is None else cache_graphs
        self._graphs: dict[int, _GradientGraph] = {}
        if hvp_mode not in ("auto", *self.MODES):
            raise LandscapeError(f"hvp_mode must be auto, reverse, forward or autograd, got {hvp_mode!r}")
        self.requested_mode = hvp_mode
        self.mode_timings: dict[str, float] = {}
        self.mode_note = ""
        if hvp_mode == "auto":
            with differentiable_attention():
                self.single_mode, self.block_mode = self._pick_modes()
        else:
            mode = hvp_mode
            with differentiable_attention():
                works = self._mode_works(mode)
            if not works:
                self.mode_note = f"{mode} HVPs failed for this model (e.g. no forward-mode AD); used reverse"
                mode = "reverse"
            self.single_mode = self.block_mode = mode

    @property
    def hvp_mode(self) -> str:
        """The mode used for one column (and for blocks, when it differs)."""
        if self.block_mode == self.single_mode:
            return self.single_mode
        return f"{self.single_mode} (blocks: {self.block_mode})"

    def describe(self) -> dict[str, Any]:
        """The base description plus the HVP modes used and whether graphs are cached."""
        cached = self.cache_graphs and "autograd" in (self.single_mode, self.block_mode)
        return {**super().describe(), "hvp_mode": self.hvp_mode, "hvp_mode_requested": self.requested_mode,
                "hvp_mode_note": self.mode_note, "hvp_graph_cached": bool(cached)}

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
        width = next(iter(block.values())).shape[0]
        return self._hvp(batch, block, self.single_mode if width == 1 else self.block_mode)

    def _hvp(self, batch: Batch, block: Params, mode: str) -> Params:
        if mode == "autograd" and self.cache_graphs:
            # θ* never changes: the forward and first backward (with create_graph) are done
            # once per batch, each product is then a single double-backward pass
            graph = self._graphs.get(id(batch))
            if graph is None:
                graph = self._graphs[id(batch)] = _gradient_graph(self._loss_of(batch), self.selected)
            return _apply_graph(graph, block, retain=True)
        return batch_hvp(self._loss_of(batch), self.selected, block, mode, self._vmapped)

    def _mode_works(self, mode: str) -> bool:
        probe = {n: torch.ones_like(p).unsqueeze(0) for n, p in self.selected.items()}
        try:
            self._hvp(self.batches[0], probe, mode)
            return True
        except Exception as exc:
            if is_resource_error(exc):  # out of memory says nothing about the mode
                raise
            return False

    def _pick_modes(self) -> tuple[str, str]:
        """Time every mode on the first batch with 1 column and with a small block."""
        batch = self.batches[0]
        gen = torch.Generator().manual_seed(0)
        widths = sorted({1, min(self.max_columns, 4)})
        timings: dict[tuple[str, int], float] = {}
        failures = []
        for mode in self.MODES:
            try:
                for width in widths:
                    block = {n: torch.randn((width, *p.shape), generator=gen, dtype=torch.float64).to(p)
                             for n, p in self.selected.items()}
                    run = lambda block=block, mode=mode: self._hvp(batch, block, mode)  # noqa: E731
                    run()  # warm-up (builds the cached graph, if any)
                    timings[(mode, width)] = _best_seconds(run, self.device)
            except Exception as exc:
                if is_resource_error(exc):  # out of memory says nothing about the mode
                    raise
                self._graphs.clear()
                failures.append(f"{mode} unavailable ({type(exc).__name__})")
                timings = {key: t for key, t in timings.items() if key[0] != mode}
        if not timings:
            raise LandscapeError(f"cannot compute Hessian-vector products for this model ({'; '.join(failures)}); "
                                 "its layers and loss must support torch.func.grad/vjp or double backward")
        self.mode_timings = {f"{mode}/{width}": t for (mode, width), t in timings.items()}
        self.mode_note = "; ".join(failures)
        best = {w: min((t, m) for (m, width), t in timings.items() if width == w)[1] for w in widths}
        if "autograd" not in best.values():
            self._graphs.clear()
        return best[1], best[widths[-1]]


def _best_seconds(run: Callable[[], Any], device: torch.device, repeats: int = 5) -> float:
    """Fastest of ``repeats`` runs: other load on the machine only ever adds time."""
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def batch_hvp(loss_of: Callable[[Params], Tensor], at: Params, block: Params, mode: str,
              vmapped: Callable[[Callable[[Params], Params], Params], Params]) -> Params:
    """Hessian of ``loss_of`` at ``at`` times each column of ``block`` (``{name: [m, *shape]}``)."""
    if mode == "autograd":
        return _autograd_hvp(loss_of, at, block)
    gradient = grad(loss_of)
    if mode == "reverse":
        pullback = vjp(gradient, at)[1]
        return vmapped(lambda v: pullback(v)[0], block)
    return vmapped(lambda v: jvp(gradient, (at,), (v,))[1], block)


@dataclass
class _GradientGraph:
    """The gradient of one batch's loss with its autograd graph kept (``create_graph``)."""

    names: list[str]
    at: Params
    leaves: list[Tensor]
    live: list[int]  # indices of gradients that depend on θ (the others add zero curvature)
    outputs: list[Tensor]


def _gradient_graph(loss_of: Callable[[Params], Tensor], at: Params) -> _GradientGraph:
    names = list(at)
    leaves = [at[n].detach().requires_grad_(True) for n in names]  # fresh leaves: the model is untouched
    with torch.enable_grad():
        loss = loss_of(dict(zip(names, leaves)))
        grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    return _GradientGraph(names, dict(at), leaves, live, [grads[i] for i in live])


def _apply_graph(graph: _GradientGraph, block: Params, retain: bool) -> Params:
    """Double backward of ``graph`` for every column of ``block`` (batched with
    ``is_grads_batched``, or one by one where the double backward has no batching rule)."""
    names, leaves, live, outputs = graph.names, graph.leaves, graph.live, graph.outputs
    width = next(iter(block.values())).shape[0]
    if not live:
        return {n: torch.zeros_like(block[n]) for n in names}
    with torch.enable_grad():
        if width == 1:
            out = torch.autograd.grad(outputs, leaves, [block[names[i]][0] for i in live],
                                      retain_graph=retain, allow_unused=True)
            return {n: _zero_if_none(o, graph.at[n]).unsqueeze(0) for n, o in zip(names, out)}
        try:
            out = torch.autograd.grad(outputs, leaves, [block[names[i]] for i in live], retain_graph=True,
                                      allow_unused=True, is_grads_batched=True)
            return {n: _zero_if_none(o, block[n]) for n, o in zip(names, out)}
        except Exception as exc:  # is_grads_batched is vmap inside
            if not is_vmap_unsupported(exc):
                raise
            rows = [torch.autograd.grad(outputs, leaves, [block[names[i]][c] for i in live],
                                        retain_graph=True, allow_unused=True) for c in range(width)]
            return {n: torch.stack([_zero_if_none(r[j], graph.at[n]) for r in rows]) for j, n in enumerate(names)}


def _autograd_hvp(loss_of: Callable[[Params], Tensor], at: Params, block: Params) -> Params:
    """Double backward through the autograd engine, graph built for this call only."""
    return _apply_graph(_gradient_graph(loss_of, at), block, retain=False)


def _zero_if_none(value: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if value is None else value.detach()


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
            return problem.loss_fn(z, target)

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
        return (total / self.num_examples).to(self.dtype)

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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
