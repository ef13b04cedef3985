"""The Problem: one functional view of a model, its parameters, loss and data.

Every analysis is a function of a :class:`Problem`. It owns a private copy of the user's
model (so the user's module is never mutated: no parameter perturbed, no mode flipped, no
``requires_grad`` changed), the trained parameters θ* by name, the buffers, the loss and
the data splits already placed on the device. Every pass over data goes through here; the
work itself lives next door: batches in :mod:`.data`, evaluating many points in
:mod:`.evaluate`, BatchNorm statistics in :mod:`.batchnorm`, TorchScript in :mod:`.torchscript`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .. import distributed
from ..distributed import Shard
from ..errors import LandscapeError, first_line
from ..memory import default_budget_bytes
from ..params import Params, flatten, unflatten
from .batchnorm import has_batchnorm, recompute_running_stats, statistics_model
from .data import Batch, call_model
from .evaluate import EVAL_MODES, EvalMode, Evaluator, classification_accuracy
from .splits import DATA_MODES, Batches, DataMode, load_split
from .torchscript import in_eval_mode, script_to_graph

BNPolicy = Literal["eval", "recompute"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                                  "bfloat16": torch.bfloat16}
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)
LossFn = Callable[[Any, Tensor], Tensor]
MetricFn = Callable[[Any, Tensor], Tensor]


@dataclass
class Problem:
    """A model, its trained parameters θ*, loss and data, viewed functionally.

    Build it with :meth:`Problem.create`. ``params`` are the trainable parameters (those
    with ``requires_grad`` in the user's model); frozen parameters travel with the buffers.
    The policies (``bn_policy``, ``eval_mode``, ``max_points_per_pass``,
    ``memory_budget_bytes``) may be changed after creation; ``evaluator`` reads them.
    """

    model: nn.Module
    params: Params
    buffers: dict[str, Tensor]
    loss_fn: LossFn
    splits: dict[str, Batches]
    device: torch.device
    dtype: torch.dtype
    bn_policy: BNPolicy = "eval"
    bn_batches: int = 4
    metrics: dict[str, MetricFn] = field(default_factory=dict)
    has_accuracy: bool = False
    max_points_per_pass: int = 64
    memory_budget_bytes: int = 1 << 30
    eval_mode: EvalMode = "auto"  # see resolved_eval_mode
    data_mode: DataMode = "auto"  # requested; each split's ``mode`` says what was used
    shard: Shard | None = None  # this rank's part of every batch in a data-parallel run
    autocast: torch.dtype | None = None  # forwards under torch.autocast to this dtype (AMP-trained models)
    evaluator: Evaluator = field(init=False, repr=False, compare=False)
    _bn_model: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        model: nn.Module,
        loss_fn: LossFn,
        data: Mapping[str, Iterable[Any]] | Iterable[Any],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        bn_policy: BNPolicy = "eval",
        bn_batches: int = 4,
        metrics: Mapping[str, MetricFn] | None = None,
        max_batches: int | None = None,
        max_examples: int | None = None,
        memory_budget_bytes: int | None = None,
        eval_mode: EvalMode = "auto",
        data_mode: DataMode = "auto",
        autocast: torch.dtype | str | None = None,
    ) -> Problem:
        """Copy the model to ``device``/``dtype`` in eval mode and cache (or stream) the data there.

        ``data`` is one iterable of batches (used as the ``train`` split) or a mapping
        ``{"train": ..., "test": ...}``. ``max_batches``/``max_examples`` cap each split.
        ``eval_mode`` is how :meth:`evaluate` batches points: "vmap", "loop" or "auto"
        (see :meth:`resolved_eval_mode`). ``data_mode``: "cache" keeps every batch on the
        device, "stream" reads the data again on every pass, "auto" caches the splits, in
        order, while their bytes fit the memory budget and streams the rest
        (:func:`~.splits.load_split`). ``autocast`` (torch.bfloat16 or torch.float16, or their
        names) runs every forward under ``torch.autocast``, as a model trained with mixed
        precision was: parameters stay float32, eligible ops compute in that dtype, and the
        HVPs differentiate those same ops. In a data-parallel run (:func:`landscape.distributed.start`,
        as ``torchrun`` does for the CLI) each rank keeps its part of every batch and every
        pass over the data is all-reduced, so every result is the one-process result.
        """
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if bn_policy not in ("eval", "recompute"):
            raise LandscapeError(f"bn_policy must be 'eval' or 'recompute', got {bn_policy!r}")
        if eval_mode not in EVAL_MODES:
            raise LandscapeError(f"eval_mode must be 'auto', 'vmap' or 'loop', got {eval_mode!r}")
        if data_mode not in DATA_MODES:
            raise LandscapeError(f"data_mode must be 'auto', 'cache' or 'stream', got {data_mode!r}")
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
        dtype = resolve_dtype(dtype, "dtype") or (first.dtype if first.is_floating_point() else torch.float32)
        autocast = resolve_dtype(autocast, "autocast")
        if autocast is not None and (autocast not in AUTOCAST_DTYPES or dtype != torch.float32):
            raise LandscapeError(f"autocast {str(autocast).removeprefix('torch.')} with parameters in "
                                 f"{str(dtype).removeprefix('torch.')}: autocast runs float32 parameters in "
                                 "bfloat16 or float16; use --dtype float32 with --autocast bfloat16|float16")

        budget = memory_budget_bytes if memory_budget_bytes is not None else default_budget_bytes(device)
        splits_in = dict(data) if isinstance(data, Mapping) else {"train": data}
        splits: dict[str, Batches] = {}
        shard = distributed.current()
        for name, source in splits_in.items():
            if source is not None:
                cached = sum(s.cached_bytes for s in splits.values())
                head = bn_batches if name == "train" and has_batchnorm(model) else 0  # whole batches for BN
                splits[name] = load_split(source, name, device, dtype, mode=data_mode, budget_bytes=budget - cached,
                                          max_batches=max_batches, max_examples=max_examples,
                                          shard=shard, head_count=head)
        if not splits:
            raise LandscapeError("no data: give at least a train split")

        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if isinstance(model, torch.jit.ScriptModule):  # converted into a new module of our own
            private = script_to_graph(model, next(iter(splits.values())).first.inputs)
        else:
            private = copy.deepcopy(model)
        private = in_eval_mode(private.to(device=device, dtype=dtype))
        if not trainable:
            raise LandscapeError("the model has no trainable parameters (all requires_grad=False)")
        # a converted TorchScript graph holds its weights as buffers: look names up in both
        state = {**dict(private.named_parameters()), **dict(private.named_buffers())}
        params = {n: state[n].detach().clone() for n in trainable}
        fixed = {n: t.detach().clone() for n, t in state.items() if n not in params}
        for p in private.parameters():
            p.requires_grad_(False)
        for name, tensor in params.items():
            if not torch.isfinite(tensor).all():
                raise LandscapeError(f"parameter '{name}' holds NaN or inf values; the checkpoint "
                                     "is not a usable trained model")

        problem = cls(model=private, params=params, buffers=fixed, loss_fn=loss_fn,
                      splits=splits, device=device, dtype=dtype, bn_policy=bn_policy,
                      bn_batches=bn_batches, metrics=dict(metrics or {}), memory_budget_bytes=budget,
                      eval_mode=eval_mode, data_mode=data_mode, shard=shard, autocast=autocast)
        problem.has_accuracy = problem.check_first_batches()
        if bn_policy == "recompute" and not has_batchnorm(private):
            problem.bn_policy = "eval"  # nothing to recompute; say what was really used
        return problem

    def check_first_batches(self) -> bool:
        """Run θ* on the first batch of each split; turn shape/dtype mistakes into one line.

        Returns whether every split's output/target pair looks like classification.
        """
        has_accuracy = True
        for split, batches in self.splits.items():
            where = f"data split '{split}', batch 0"
            batch = batches.first
            try:
                with torch.no_grad():
                    out = self.forward(self.params, batch.inputs)
            except Exception as exc:
                raise LandscapeError(f"{where}: the model failed on this input "
                                     f"({type(exc).__name__}: {first_line(exc)}); check that the "
                                     "data matches the model") from None
            try:
                with torch.no_grad():
                    value = self.loss_of(out, batch.target)
            except Exception as exc:
                raise LandscapeError(f"{where}: the loss failed on the model output "
                                     f"{_shape(out)} and target {_shape(batch.target)} "
                                     f"({type(exc).__name__}: {first_line(exc)}); check the "
                                     "labels' dtype and shape against the loss") from None
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise LandscapeError(f"{where}: the loss returned {_shape(value)}, not a scalar; "
                                     "use a mean-reduced loss")
            has_accuracy = has_accuracy and classification_accuracy(out, batch.target) is not None
        return has_accuracy

    # ------------------------------------------------------------------ data and loss
    @property
    def split_names(self) -> list[str]:
        """The data splits' names, in the order they were given."""
        return list(self.splits)

    def batches(self, split: str = "train") -> Batches:
        """The batches of ``split``, cached or streamed (a one-line error naming the splits when unknown)."""
        if split not in self.splits:
            raise LandscapeError(f"no data split '{split}'; available: {', '.join(self.splits)}")
        return self.splits[split]

    def num_examples(self, split: str = "train") -> int:
        """Examples in ``split``."""
        return self.batches(split).num_examples

    def forward(self, params: Mapping[str, Tensor], inputs: Any,
                buffers: Mapping[str, Tensor] | None = None) -> Any:
        """The model's output at ``params`` (any subset of names; the rest stay at θ*)."""
        state = {**self.params, **(self.buffers if buffers is None else buffers), **params}
        with self.autocasting():
            return call_model(self.model, state, inputs)

    def loss_of(self, output: Any, target: Tensor) -> Tensor:
        """The loss of a model output, under autocast when the problem computes with it (as
        mixed-precision training does: losses such as cross-entropy then come out in float32)."""
        with self.autocasting():
            return self.loss_fn(output, target)

    def autocasting(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` to ``autocast`` on this device, or nothing."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def batch_loss(self, params: Mapping[str, Tensor], batch: Batch,
                   buffers: Mapping[str, Tensor] | None = None) -> Tensor:
        """Mean loss on one batch; differentiable in ``params`` (use with torch.func)."""
        return self.loss_of(self.forward(params, batch.inputs, buffers), batch.target)

    def gradient(self, params: Mapping[str, Tensor] | None = None, split: str = "train") -> Params:
        """∇ of the empirical risk (batch gradients weighted by batch size)."""
        at = {**self.params, **(params or {})}
        batches = self.batches(split)
        grad = {n: torch.zeros_like(p) for n, p in at.items()}
        for batch in batches:
            g = torch.func.grad(lambda p, batch=batch: self.batch_loss(p, batch))(at)
            for n in grad:
                grad[n] += g[n] * (batch.size / batches.num_examples)
        return grad if self.shard is None else unflatten(batches.reduce(flatten(grad)), grad)

    # ------------------------------------------------------------------ evaluation
    def metric_names(self) -> list[str]:
        """The metrics :meth:`evaluate` returns, in order."""
        return ["loss"] + (["accuracy"] if self.has_accuracy else []) + list(self.metrics)

    def loss(self, params: Mapping[str, Tensor] | None = None, split: str = "train") -> float:
        """Empirical risk on a split: batch means weighted by batch size."""
        return self.evaluate_point(params or {}, split)["loss"]

    def evaluate_point(self, params: Mapping[str, Tensor], split: str = "train") -> dict[str, float]:
        """Every metric at one parameter point (any subset of names; the rest stay at θ*)."""
        stacked = {n: p.unsqueeze(0) for n, p in {**self.params, **params}.items()}
        return {k: float(v[0]) for k, v in self.evaluate(stacked, split, show_progress=False).items()}

    def evaluate(self, points: Mapping[str, Tensor], split: str = "train", *,
                 show_progress: bool = True) -> dict[str, Tensor]:
        """Loss, accuracy and extra metrics at P stacked parameter points.

        ``points[name]`` has shape ``[P, *param.shape]`` for every trainable parameter.
        Points go in chunks sized to the memory budget, each chunk either batched through
        ``vmap`` or one point per pass over merged batches (:meth:`resolved_eval_mode`);
        models that ``vmap`` cannot handle fall back to one point at a time.
        Returns float64 CPU tensors of shape ``[P]``; a diverged point is inf/NaN.
        """
        return self.evaluator.evaluate(points, split, show_progress=show_progress)

    def resolved_eval_mode(self) -> str:
        """``eval_mode`` with "auto" resolved (``vmap`` on CUDA, ``loop`` elsewhere)."""
        return self.evaluator.resolved_mode()

    def points_per_pass(self) -> int:
        """How many parameter points to evaluate per forward pass within the budget."""
        return self.evaluator.points_per_pass()

    def point_bytes(self) -> int:
        """Bytes of one parameter point's forward pass on the largest batch (cached)."""
        return self.evaluator.point_bytes()

    # ------------------------------------------------------------------ BatchNorm
    def recompute_bn_buffers(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Re-estimate BatchNorm running statistics at ``params`` on ``bn_batches`` train batches.

        Only the BatchNorm layers of a private copy run in train mode (cumulative average,
        ``momentum=None``); dropout stays off.
        """
        if self._bn_model is None:
            self._bn_model = statistics_model(self.model)
        return recompute_running_stats(self._bn_model, self.params, self.buffers, params,
                                       self.batches("train").head(self.bn_batches))

    def describe(self) -> dict[str, Any]:
        """Settings worth recording next to any result computed on this problem."""
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "autocast": "" if self.autocast is None else str(self.autocast).removeprefix("torch."),
            "bn_policy": self.bn_policy,
            "eval_mode": self.resolved_eval_mode(),
            **{f"data_mode_{s}": batches.mode for s, batches in self.splits.items()},
            "bn_batches": self.bn_batches if self.bn_policy == "recompute" else 0,
            "num_parameters": sum(p.numel() for p in self.params.values()),
            "parameter_names": list(self.params),
            **{f"num_examples_{s}": self.num_examples(s) for s in self.splits},
            "dropout_modules_disabled": _dropout_modules(self.model),
            "data_parallel_ranks": 1 if self.shard is None else self.shard.world,
        }

    # ------------------------------------------------------------------ kept for old tests
    # (tests/test_surface.py reads these; new code uses ``problem.evaluator``)
    @property
    def _vmap_ok(self) -> bool | None:
        return self.evaluator.fallback.ok

    @property
    def _merged(self) -> dict[str, Iterable[Batch]]:
        return self.evaluator.merged

    def _merged_batches(self, split: str) -> Iterable[Batch]:
        return self.evaluator.merged_batches(split)


def resolve_dtype(value: torch.dtype | str | None, what: str) -> torch.dtype | None:
    """A floating dtype from a dtype or its name ("bfloat16"), or None; one line otherwise."""
    if value is None or isinstance(value, torch.dtype):
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in DTYPES:
        return DTYPES[value.removeprefix("torch.")]
    raise LandscapeError(f"{what} must be one of {', '.join(DTYPES)} (or a torch dtype), got {value!r}")


def _dropout_modules(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def _shape(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__
