"""The Problem: one functional view of a model, its parameters, loss and data.

Every analysis is a function of a :class:`Problem`. It owns a private copy of the user's
model (so the user's module is never mutated: no parameter perturbed, no mode flipped, no
``requires_grad`` changed), the trained parameters θ* by name, the buffers, the loss and
the data splits already placed on the device. Every pass over data goes through here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils._pytree import tree_map

from .errors import LandscapeError
from .progress import progress

BNPolicy = Literal["eval", "recompute"]
Params = dict[str, Tensor]
LossFn = Callable[[Any, Tensor], Tensor]
MetricFn = Callable[[Any, Tensor], Tensor]

TARGET_KEYS = ("target", "targets", "label", "labels", "y")

# Merging small batches saves per-call overhead, but past a cache-sized working set a
# bigger batch is slower on a CPU (measured: digits MLP 1.5× faster merged to 1437
# examples, ~1.7 MB; digits CNN 1.4× slower merged, ~50 MB): merge up to this size.
MERGED_BATCH_BYTES = 16 << 20


@dataclass(frozen=True)
class Batch:
    """One batch: what the model is called with, the target, and the number of examples.

    ``inputs`` is a tensor (``model(x)``), a tuple (``model(*inputs)``) or a dict
    (``model(**inputs)``).
    """

    inputs: Any
    target: Tensor
    size: int

    def slice(self, start: int, stop: int) -> Batch:
        """Examples ``start:stop`` of this batch (every tensor sliced along dim 0)."""
        cut = lambda t: t[start:stop] if isinstance(t, Tensor) else t  # noqa: E731
        return Batch(tree_map(cut, self.inputs), self.target[start:stop], min(stop, self.size) - start)


def make_batch(raw: Any, where: str) -> Batch:
    """Split one raw batch from a data source into model inputs and target.

    Accepted: ``(x, y)`` / ``[x, y]`` (more than two items: all but the last are the
    model's positional inputs) and dicts whose target sits under one of ``TARGET_KEYS``
    (the remaining keys are passed to the model as keyword arguments).
    """
    if isinstance(raw, Batch):
        return raw
    if isinstance(raw, Mapping):
        keys = [k for k in TARGET_KEYS if k in raw]
        if not keys:
            raise LandscapeError(
                f"{where}: dict batch has no target key (looked for {', '.join(TARGET_KEYS)}); "
                f"it has {sorted(raw)}. Rename the target key or wrap the data.")
        target = raw[keys[0]]
        inputs: Any = {k: v for k, v in raw.items() if k != keys[0]}
    elif isinstance(raw, (tuple, list)) and len(raw) >= 2:
        target = raw[-1]
        inputs = raw[0] if len(raw) == 2 else tuple(raw[:-1])
    else:
        raise LandscapeError(
            f"{where}: a batch must be (inputs, target) or a dict with a target key, "
            f"got {type(raw).__name__}. Make the data yield (x, y) pairs.")
    if not isinstance(target, Tensor):
        try:
            target = torch.as_tensor(target)
        except Exception as exc:
            raise LandscapeError(f"{where}: target is {type(target).__name__}, not a tensor") from exc
    if target.ndim == 0 or target.shape[0] == 0:
        raise LandscapeError(f"{where}: empty batch (target shape {tuple(target.shape)}); "
                             "the data must yield at least one example per batch")
    return Batch(inputs, target, int(target.shape[0]))


def _move(t: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if not isinstance(t, Tensor):
        return t
    return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)


def _call(model: nn.Module, state: Mapping[str, Tensor], inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return functional_call(model, dict(state), args=(), kwargs=dict(inputs))
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    return functional_call(model, dict(state), args)


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _has_active_randomness(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def _classification_accuracy(output: Any, target: Tensor) -> Tensor | None:
    """Fraction correct, when the output/target pair looks like classification."""
    if not isinstance(output, Tensor):
        return None
    if not target.is_floating_point() and output.ndim == target.ndim + 1 \
            and output.shape[:-1] == target.shape:
        return (output.argmax(-1) == target).to(torch.float64).mean()
    if target.is_floating_point() and output.shape == target.shape and bool(
            ((target == 0) | (target == 1)).all()):
        return ((output > 0).to(target.dtype) == target).to(torch.float64).mean()
    return None


@dataclass
class Problem:
    """A model, its trained parameters θ*, loss and data, viewed functionally.

    Build it with :meth:`Problem.create`. ``params`` are the trainable parameters (those
    with ``requires_grad`` in the user's model); frozen parameters travel with the buffers.
    """

    model: nn.Module
    params: Params
    buffers: dict[str, Tensor]
    loss_fn: LossFn
    splits: dict[str, list[Batch]]
    device: torch.device
    dtype: torch.dtype
    bn_policy: BNPolicy = "eval"
    bn_batches: int = 4
    metrics: dict[str, MetricFn] = field(default_factory=dict)
    has_accuracy: bool = False
    max_points_per_pass: int = 64
    memory_budget_bytes: int = 1 << 30
    _point_bytes: int | None = None
    _bn_model: nn.Module | None = None
    _vmap_ok: bool | None = None  # learned on first use: does this model/loss vmap?
    eval_mode: Literal["auto", "vmap", "loop"] = "auto"  # see resolved_eval_mode
    _merged: dict[str, list[Batch]] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        model: nn.Module,
        loss_fn: LossFn,
        data: Mapping[str, Iterable[Any]] | Iterable[Any],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        bn_policy: BNPolicy = "eval",
        bn_batches: int = 4,
        metrics: Mapping[str, MetricFn] | None = None,
        max_batches: int | None = None,
        max_examples: int | None = None,
        memory_budget_bytes: int | None = None,
    ) -> Problem:
        """Copy the model to ``device``/``dtype`` in eval mode and cache the data there.

        ``data`` is one iterable of batches (used as the ``train`` split) or a mapping
        ``{"train": ..., "test": ...}``. ``max_batches``/``max_examples`` cap each split.
        """
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if bn_policy not in ("eval", "recompute"):
            raise LandscapeError(f"bn_policy must be 'eval' or 'recompute', got {bn_policy!r}")
        for name, value in (("max_batches", max_batches), ("max_examples", max_examples),
                            ("bn_batches", bn_batches)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise LandscapeError(f"{name} must be an integer ≥ 1 (or None for no limit), got {value!r}")
        first = next(iter(model.parameters()), None)
        if first is None:
            raise LandscapeError("the model has no parameters: there is no landscape to analyse")
        device = torch.device(device) if device is not None else first.device
        if device.type == "cuda" and not torch.cuda.is_available():
            raise LandscapeError(f"device {device} requested but CUDA is not available; use --device cpu")
        dtype = dtype or (first.dtype if first.is_floating_point() else torch.float32)

        splits_in = dict(data) if isinstance(data, Mapping) else {"train": data}
        splits = {name: _collect(src, name, device, dtype, max_batches, max_examples)
                  for name, src in splits_in.items() if src is not None}
        if not splits:
            raise LandscapeError("no data: give at least a train split")

        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if isinstance(model, torch.jit.ScriptModule):  # converted into a new module of our own
            private = _script_to_graph(model, next(iter(splits.values()))[0].inputs)
        else:
            private = copy.deepcopy(model)
        private = _eval_mode(private.to(device=device, dtype=dtype))
        if not trainable:
            raise LandscapeError("the model has no trainable parameters (all requires_grad=False)")
        # a converted TorchScript graph holds its weights as buffers: look names up in both
        state = {**dict(private.named_parameters()), **dict(private.named_buffers())}
        params = {n: state[n].detach().clone() for n in trainable}
        fixed = {n: t.detach().clone() for n, t in state.items() if n not in params}
        for p in private.parameters():
            p.requires_grad_(False)
        for name, p in params.items():
            if not torch.isfinite(p).all():
                raise LandscapeError(f"parameter '{name}' holds NaN or inf values; the checkpoint "
                                     "is not a usable trained model")


        problem = cls(model=private, params=params, buffers=fixed, loss_fn=loss_fn,
                      splits=splits, device=device, dtype=dtype, bn_policy=bn_policy,
                      bn_batches=bn_batches, metrics=dict(metrics or {}))
        if memory_budget_bytes is not None:
            problem.memory_budget_bytes = memory_budget_bytes
        elif device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            problem.memory_budget_bytes = int(free * 0.5)
        problem.has_accuracy = problem._check_first_batch()
        if bn_policy == "recompute" and not any(_is_bn(m) for m in private.modules()):
            problem.bn_policy = "eval"  # nothing to recompute; say what was really used
        return problem

    def _check_first_batch(self) -> bool:
        """Run θ* on the first batch of each split; turn shape/dtype mistakes into one line."""
        has_accuracy = True
        for split, batches in self.splits.items():
            where = f"data split '{split}', batch 0"
            batch = batches[0]
            try:
                with torch.no_grad():
                    out = self.forward(self.params, batch.inputs)
            except Exception as exc:
                raise LandscapeError(f"{where}: the model failed on this input "
                                     f"({type(exc).__name__}: {_first_line(exc)}); check that the "
                                     "data matches the model") from None
            try:
                with torch.no_grad():
                    value = self.loss_fn(out, batch.target)
            except Exception as exc:
                raise LandscapeError(f"{where}: the loss failed on the model output "
                                     f"{_shape(out)} and target {_shape(batch.target)} "
                                     f"({type(exc).__name__}: {_first_line(exc)}); check the "
                                     "labels' dtype and shape against the loss") from None
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise LandscapeError(f"{where}: the loss returned {_shape(value)}, not a scalar; "
                                     "use a mean-reduced loss")
            has_accuracy = has_accuracy and _classification_accuracy(out, batch.target) is not None
        return has_accuracy

    # ------------------------------------------------------------------ evaluation
    @property
    def split_names(self) -> list[str]:
        return list(self.splits)

    def batches(self, split: str = "train") -> list[Batch]:
        if split not in self.splits:
            raise LandscapeError(f"no data split '{split}'; available: {', '.join(self.splits)}")
        return self.splits[split]

    def num_examples(self, split: str = "train") -> int:
        return sum(b.size for b in self.batches(split))

    def forward(self, params: Mapping[str, Tensor], inputs: Any,
                buffers: Mapping[str, Tensor] | None = None) -> Any:
        """The model's output at ``params`` (any subset of names; the rest stay at θ*)."""
        state = {**self.params, **(self.buffers if buffers is None else buffers), **params}
        return _call(self.model, state, inputs)

    def batch_loss(self, params: Mapping[str, Tensor], batch: Batch,
                   buffers: Mapping[str, Tensor] | None = None) -> Tensor:
        """Mean loss on one batch; differentiable in ``params`` (use with torch.func)."""
        return self.loss_fn(self.forward(params, batch.inputs, buffers), batch.target)

    def loss(self, params: Mapping[str, Tensor] | None = None, split: str = "train") -> float:
        """Empirical risk on a split: batch means weighted by batch size."""
        return self.evaluate_point(params or {}, split)["loss"]

    def evaluate_point(self, params: Mapping[str, Tensor], split: str = "train") -> dict[str, float]:
        stacked = {n: p.unsqueeze(0) for n, p in {**self.params, **params}.items()}
        return {k: float(v[0]) for k, v in self.evaluate(stacked, split, show_progress=False).items()}

    def metric_names(self) -> list[str]:
        return ["loss"] + (["accuracy"] if self.has_accuracy else []) + list(self.metrics)

    def evaluate(self, points: Mapping[str, Tensor], split: str = "train", *,
                 show_progress: bool = True) -> dict[str, Tensor]:
        """Loss, accuracy and extra metrics at P stacked parameter points.

        ``points[name]`` has shape ``[P, *param.shape]`` for every trainable parameter.
        Points go in chunks sized to the memory budget, each chunk either batched through
        ``vmap`` or one point per pass over merged batches (:meth:`resolved_eval_mode`);
        models that ``vmap`` cannot handle fall back to one point at a time.
        Returns float64 CPU tensors of shape ``[P]``; a diverged point is inf/NaN.
        """
        num_points = next(iter(points.values())).shape[0]
        per_pass = self.points_per_pass()
        results: dict[str, list[Tensor]] = {k: [] for k in self.metric_names()}
        bar = progress(num_points, f"evaluating {split}", "pt") if show_progress and num_points > per_pass else None
        for start in range(0, num_points, per_pass):
            chunk = {n: p[start:start + per_pass] for n, p in points.items()}
            for key, value in self._evaluate_chunk(chunk, split).items():
                results[key].append(value)
            if bar is not None:
                bar.update(min(per_pass, num_points - start))
        if bar is not None:
            bar.close()
        return {k: torch.cat(v) for k, v in results.items()}

    def _evaluate_chunk(self, chunk: Params, split: str) -> dict[str, Tensor]:
        buffers = self._buffers_for(chunk)
        if self.resolved_eval_mode() == "vmap" and self._vmap_ok is not False:
            try:
                result = self._vmap_chunk(chunk, buffers, split)
                self._vmap_ok = True
                return result
            except Exception:
                if self._vmap_ok:
                    raise
                self._vmap_ok = False  # e.g. a loss or layer without a batching rule
        return self._loop_chunk(chunk, buffers, split)

    def resolved_eval_mode(self) -> str:
        """``eval_mode`` with "auto" resolved: on a GPU, points batched through ``vmap``
        (per-call overhead dominates small models there); elsewhere one point per pass over
        batches merged up to ``MERGED_BATCH_BYTES`` (a CPU forward is compute-bound already, and
        ``vmap`` turns convolutions into slow grouped ones). A fixed rule, not a timing
        race, so reruns and resumed scans compute every point the same way."""
        if self.eval_mode == "auto":
            return "vmap" if self.device.type == "cuda" else "loop"
        return self.eval_mode

    def _vmap_chunk(self, chunk: Params, buffers: Params | None, split: str) -> dict[str, Tensor]:
        num_points = next(iter(chunk.values())).shape[0]
        totals = {k: torch.zeros(num_points, dtype=torch.float64, device=self.device)
                  for k in self.metric_names()}
        count = 0
        with torch.no_grad():
            for batch in self.batches(split):
                metrics_at = lambda params, bufs: self._metrics_at(params, bufs, batch)  # noqa: E731
                values = vmap(metrics_at, in_dims=(0, None if buffers is None else 0))(chunk, buffers)
                for key, value in values.items():
                    totals[key] += value.to(torch.float64) * batch.size
                count += batch.size
        return {k: (v / count).cpu() for k, v in totals.items()}

    def _loop_chunk(self, chunk: Params, buffers: Params | None, split: str) -> dict[str, Tensor]:
        """One point per forward pass, over the split's merged batches."""
        rows = []
        batches = self._merged_batches(split)
        count = sum(b.size for b in batches)
        with torch.no_grad():
            for i in range(next(iter(chunk.values())).shape[0]):
                point = {n: p[i] for n, p in chunk.items()}
                bufs = None if buffers is None else {n: b[i] for n, b in buffers.items()}
                totals: dict[str, Tensor] = {}
                for batch in batches:
                    for key, value in self._metrics_at(point, bufs, batch).items():
                        totals[key] = totals.get(key, 0) + value.to(torch.float64) * batch.size
                rows.append({k: v / count for k, v in totals.items()})
        return {k: torch.stack([r[k] for r in rows]).cpu() for k in rows[0]}

    def _merged_batches(self, split: str) -> list[Batch]:
        """The split's batches concatenated up to ``MERGED_BATCH_BYTES`` of activations each
        (the batch-size-weighted mean is unchanged); as they are if they do not concatenate."""
        if split not in self._merged:
            batches = self.batches(split)
            largest = max(b.size for b in batches)
            per_example = max(1, (self._get_point_bytes() - _nbytes(self.params)) // largest)
            budget = min(self.memory_budget_bytes, MERGED_BATCH_BYTES)
            self._merged[split] = _merge(batches, max(largest, budget // per_example))
        return self._merged[split]

    def _metrics_at(self, params: Params, buffers: Mapping[str, Tensor] | None, batch: Batch) -> dict[str, Tensor]:
        out = self.forward(params, batch.inputs, buffers)
        values = {"loss": self.loss_fn(out, batch.target).reshape(())}
        if self.has_accuracy:
            values["accuracy"] = _classification_accuracy(out, batch.target)
        for name, fn in self.metrics.items():
            values[name] = torch.as_tensor(fn(out, batch.target)).reshape(())
        return values

    # ------------------------------------------------------------------ batching
    def points_per_pass(self) -> int:
        """How many parameter points to evaluate per forward pass within the budget."""
        return int(max(1, min(self.max_points_per_pass, self.memory_budget_bytes // self._get_point_bytes())))

    def _get_point_bytes(self) -> int:
        if self._point_bytes is None:
            self._point_bytes = self._estimate_point_bytes()
        return self._point_bytes

    def _estimate_point_bytes(self) -> int:
        """Parameters plus every module output for the largest batch, for one point."""
        sizes: list[int] = []

        def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, Tensor):
                    sizes.append(t.numel() * t.element_size())

        largest = max((b for bs in self.splits.values() for b in bs), key=lambda b: b.size)
        handles = [m.register_forward_hook(hook) for m in self.model.modules()]
        try:
            with torch.no_grad():
                self.forward(self.params, largest.inputs)
        finally:
            for h in handles:
                h.remove()
        return max(1, 2 * sum(sizes) + _nbytes(self.params))

    # ------------------------------------------------------------------ BatchNorm
    def _buffers_for(self, chunk: Params) -> dict[str, Tensor] | None:
        """Per-point buffers under the 'recompute' policy, else None (θ*'s buffers)."""
        if self.bn_policy != "recompute":
            return None
        rows = [self.recompute_bn_buffers({n: p[i] for n, p in chunk.items()})
                for i in range(next(iter(chunk.values())).shape[0])]
        return {n: torch.stack([r[n] for r in rows]) for n in rows[0]}

    def recompute_bn_buffers(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Re-estimate BatchNorm running statistics at ``params`` on ``bn_batches`` train batches.

        Only the BatchNorm layers of a private copy run in train mode (cumulative average,
        ``momentum=None``); dropout stays off.
        """
        if self._bn_model is None:
            bn_model = copy.deepcopy(self.model)
            for module in bn_model.modules():
                if _is_bn(module):
                    module.train()
                    module.momentum = None
            self._bn_model = bn_model
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        for name, module in self._bn_model.named_modules():
            if _is_bn(module) and module.track_running_stats:
                prefix = f"{name}." if name else ""
                buffers[prefix + "running_mean"].zero_()
                buffers[prefix + "running_var"].fill_(1.0)
                buffers[prefix + "num_batches_tracked"].zero_()
        state = {**self.params, **buffers, **params}
        with torch.no_grad():
            for batch in self.batches("train")[: self.bn_batches]:
                _call(self._bn_model, state, batch.inputs)
        return {n: state[n] for n in buffers}

    # ------------------------------------------------------------------ gradients
    def gradient(self, params: Mapping[str, Tensor] | None = None, split: str = "train") -> Params:
        """∇ of the empirical risk (batch gradients weighted by batch size)."""
        at = {**self.params, **(params or {})}
        total = sum(b.size for b in self.batches(split))
        grad = {n: torch.zeros_like(p) for n, p in at.items()}
        for batch in self.batches(split):
            g = torch.func.grad(lambda p: self.batch_loss(p, batch))(at)
            for n in grad:
                grad[n] += g[n] * (batch.size / total)
        return grad

    def describe(self) -> dict[str, Any]:
        """Settings worth recording next to any result computed on this problem."""
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "bn_policy": self.bn_policy,
            "eval_mode": self.resolved_eval_mode(),
            "bn_batches": self.bn_batches if self.bn_policy == "recompute" else 0,
            "num_parameters": sum(p.numel() for p in self.params.values()),
            "parameter_names": list(self.params),
            **{f"num_examples_{s}": self.num_examples(s) for s in self.splits},
            "dropout_modules_disabled": _has_active_randomness(self.model),
        }


def _eval_mode(module: nn.Module) -> nn.Module:
    try:
        return module.eval()
    except NotImplementedError:  # exported graphs have their mode baked in and refuse eval()
        return module


def _script_to_graph(module: torch.jit.ScriptModule, sample_inputs: Any) -> nn.Module:
    """A TorchScript module as an FX graph module with the same parameter names, so that
    ``torch.func`` can evaluate it at other weights (converted in eval mode; batch dim dynamic)."""
    import logging
    import warnings

    from torch._export.converter import TS2EPConverter

    scripted = copy.deepcopy(module).eval()
    first = next(iter(scripted.parameters()))
    sample = tree_map(lambda t: _move(t, first.device, first.dtype), sample_inputs)
    args = tuple(sample) if isinstance(sample, tuple) else (sample,)
    export_log = logging.getLogger("torch._export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TS2EPConverter(scripted, args).convert().module()
    except Exception as exc:
        raise LandscapeError(f"this TorchScript model could not be converted for torch.func "
                             f"({type(exc).__name__}: {_first_line(exc)}); pass --model "
                             "package.module:factory to load its weights into the Python model") from None
    finally:
        export_log.setLevel(level)


def _nbytes(tensors: Mapping[str, Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _merge(batches: list[Batch], max_examples: int) -> list[Batch]:
    """Concatenate consecutive batches up to ``max_examples`` each (all or nothing)."""
    groups: list[list[Batch]] = [[]]
    for batch in batches:
        if groups[-1] and sum(b.size for b in groups[-1]) + batch.size > max_examples:
            groups.append([])
        groups[-1].append(batch)
    try:
        return [Batch(tree_map(lambda *ts: torch.cat(ts) if isinstance(ts[0], Tensor) else ts[0],
                               *[b.inputs for b in group]),
                      torch.cat([b.target for b in group]), sum(b.size for b in group))
                if len(group) > 1 else group[0] for group in groups]
    except (RuntimeError, TypeError, ValueError):  # ragged inputs (e.g. sequence lengths)
        return batches


def _collect(source: Iterable[Any], split: str, device: torch.device, dtype: torch.dtype,
             max_batches: int | None, max_examples: int | None) -> list[Batch]:
    batches: list[Batch] = []
    seen = 0
    try:
        iterator: Iterator[Any] = iter(source)
    except TypeError:
        raise LandscapeError(f"data split '{split}' is a {type(source).__name__}, not an iterable "
                             "of batches") from None
    for index, raw in enumerate(iterator):
        if max_batches is not None and index >= max_batches:
            break
        batch = make_batch(raw, f"data split '{split}', batch {index}")
        if max_examples is not None and seen + batch.size > max_examples:
            batch = batch.slice(0, max_examples - seen)
        batches.append(Batch(tree_map(lambda t: _move(t, device, dtype), batch.inputs),
                             _move(batch.target, device, dtype), batch.size))
        seen += batch.size
        if max_examples is not None and seen >= max_examples:
            break
    if not batches:
        raise LandscapeError(f"data split '{split}' is empty: it yielded no batches")
    return batches


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _shape(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__


def flatten(tensors: Mapping[str, Tensor]) -> Tensor:
    """Concatenate named tensors (in mapping order) into one vector."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Inverse of :func:`flatten`: split ``vector`` into tensors shaped like ``like``."""
    out, offset = {}, 0
    for name, ref in like.items():
        n = ref.numel()
        out[name] = vector[offset:offset + n].view_as(ref)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters have {offset}")
    return out


def count(tensors: Mapping[str, Tensor]) -> int:
    return sum(t.numel() for t in tensors.values())

