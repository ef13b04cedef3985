"""Averaged weights (SWA) against averaged predictions (FGE) over a set of checkpoints.

With w_SWA = mean_i w_i and Δ_i = w_i − w_SWA, a second-order expansion of the network's
prediction f around w_SWA gives f_FGE − f(w_SWA) = mean_i f(w_i) − f(w_SWA)
= ½ mean_i Δ_iᵀ ∇²f Δ_i + O(‖Δ‖³): the first-order terms cancel because mean_i Δ_i = 0, so the
two ensembles agree to O(‖Δ‖²) (Izmailov et al. 2018, §3.5). :func:`swa_vs_fge` measures both
and the gap on each split, next to mean_i ‖Δ_i‖².

Evaluation rule: every prediction is made on the first problem's model and data, through
``Problem.forward``. Checkpoint i uses its own parameters and buffers (converted to the first
problem's device and dtype), as it was trained. w_SWA has no running statistics of its own:
with BatchNorm they are recomputed at w_SWA by ``problems[0].recompute_bn_buffers`` (its first
``bn_batches`` train batches, cumulative average, as ``swa_utils.update_bn``); without BatchNorm
the first problem's buffers are used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

import torch
from torch import Tensor

from ..errors import LandscapeError
from ..params import Params
from ..problem import Batch, Problem
from ..problem.batchnorm import has_batchnorm
from ..problem.evaluate import classification_accuracy

Prediction = Literal["probabilities", "outputs"]


@dataclass(frozen=True)
class SplitComparison:
    """SWA and FGE on one split (examples weighted equally).

    ``loss`` is the negative log-likelihood of the predicted class probabilities with
    ``prediction="probabilities"`` (for FGE: of the mean probability) and the problem's loss
    otherwise (for FGE: on the mean output); accuracy is NaN unless the data looks like
    classification. ``member_*`` are the checkpoints' own values, averaged.
    ``prediction_gap`` = mean over examples of ‖f_FGE(x) − f(x; w_SWA)‖ (over the output's
    entries); ``loss_gap`` = ``fge_loss − swa_loss``.
    """

    swa_loss: float
    swa_accuracy: float
    fge_loss: float
    fge_accuracy: float
    member_loss: float
    member_accuracy: float
    prediction_gap: float
    loss_gap: float


@dataclass(frozen=True)
class EnsembleComparison:
    """:func:`swa_vs_fge`'s result: one :class:`SplitComparison` per split, mean_i ‖Δ_i‖²
    (``mean_sq_distance``, float64 over all trainable parameters), the number of checkpoints,
    what was averaged (``prediction``) and how w_SWA's BatchNorm statistics were made."""

    splits: Mapping[str, SplitComparison]
    mean_sq_distance: float
    num_checkpoints: int
    num_parameters: int
    prediction: str
    bn_rule: str


def swa_vs_fge(problems: Sequence[Problem], *, splits: Sequence[str] | None = None,
               prediction: Prediction = "probabilities") -> EnsembleComparison:
    """Loss and accuracy of the averaged weights and of the averaged predictions of ``problems``
    (checkpoints of one architecture), their gap, and the mean squared distance to the average.

    ``prediction="probabilities"`` averages softmax probabilities (class-index targets);
    ``"outputs"`` averages the raw outputs and scores them with the problem's loss.
    ``splits`` defaults to every split of the first problem.
    """
    _check_arguments(problems, prediction)
    base = problems[0]
    members = [({n: p.to(base.device, base.dtype) for n, p in problem.params.items()},
                {n: b.to(base.device, b.dtype if not b.is_floating_point() else base.dtype)
                 for n, b in problem.buffers.items()}) for problem in problems]
    average = {n: torch.stack([params[n].double() for params, _ in members]).mean(0) for n in base.params}
    mean_sq_distance = sum(sum(float(((params[n].double() - average[n]) ** 2).sum()) for n in average)
                           for params, _ in members) / len(members)
    swa_params = {n: p.to(base.dtype) for n, p in average.items()}
    with_bn = has_batchnorm(base.model)
    swa_buffers = base.recompute_bn_buffers(swa_params) if with_bn else base.buffers
    bn_rule = (f"recomputed at w_SWA on {min(base.bn_batches, len(base.batches('train')))} train batches of "
               "checkpoint 0" if with_bn else "no BatchNorm")
    names = list(splits) if splits is not None else base.split_names
    return EnsembleComparison(
        splits={s: _compare_split(base, s, members, (swa_params, swa_buffers), prediction) for s in names},
        mean_sq_distance=mean_sq_distance, num_checkpoints=len(members),
        num_parameters=sum(p.numel() for p in base.params.values()), prediction=prediction, bn_rule=bn_rule)


def check_swa_vs_fge(problems: Sequence[Problem], prediction: Prediction = "probabilities") -> None:
    """Refuse, before any work, what :func:`swa_vs_fge` would refuse midway: the arguments
    and checkpoints it checks first, and (one forward pass on checkpoint 0's first batch of its
    first split) a model output that cannot be averaged as ``prediction`` asks."""
    _check_arguments(problems, prediction)
    base = problems[0]
    split = base.split_names[0]
    batch = base.batches(split)[0]
    with torch.no_grad():
        _check_output(base.forward(base.params, batch.inputs, base.buffers), batch.target, prediction)


def _check_arguments(problems: Sequence[Problem], prediction: str) -> None:
    if prediction not in ("probabilities", "outputs"):
        raise LandscapeError(f"swa_vs_fge: prediction must be 'probabilities' or 'outputs', got {prediction!r}")
    if len(problems) < 2:
        raise LandscapeError(f"swa_vs_fge: needs at least 2 checkpoints to average, got {len(problems)}")
    base = problems[0]
    for index, other in enumerate(problems[1:], start=1):
        _check_same_layout(base.params, other.params, f"checkpoint {index} parameter")
        _check_same_layout(base.buffers, other.buffers, f"checkpoint {index} buffer")


def _check_output(output: object, target: Tensor, prediction: str) -> None:
    if not isinstance(output, Tensor):
        raise LandscapeError(f"swa_vs_fge: the model returns {type(output).__name__}, not a tensor; "
                             "averaging predictions needs one output tensor per batch")
    if prediction == "probabilities" and not _class_indices(output, target):
        raise LandscapeError("swa_vs_fge: prediction='probabilities' needs logits [..., classes] and "
                             f"class-index targets, got output {list(output.shape)} and target "
                             f"{list(target.shape)} ({target.dtype}); use prediction='outputs'")


def _check_same_layout(reference: Mapping[str, Tensor], other: Mapping[str, Tensor], what: str) -> None:
    for ref, got in zip_longest(reference.items(), other.items()):
        if ref is None or got is None or ref[0] != got[0] or ref[1].shape != got[1].shape:
            raise LandscapeError(f"swa_vs_fge: {what} {_describe(got)} does not match checkpoint 0's "
                                 f"{_describe(ref)}; give checkpoints of one architecture")


def _describe(entry: tuple[str, Tensor] | None) -> str:
    return "(none)" if entry is None else f"'{entry[0]}' {list(entry[1].shape)}"


def _compare_split(problem: Problem, split: str, members: Sequence[tuple[Params, Params]],
                   swa: tuple[Params, Params], prediction: Prediction) -> SplitComparison:
    keys = ("swa_loss", "swa_accuracy", "fge_loss", "fge_accuracy", "member_loss", "member_accuracy",
            "prediction_gap")
    batches = problem.batches(split)
    sums = torch.zeros(len(keys), dtype=torch.float64)
    for batch in batches:
        with torch.no_grad():
            outputs = [problem.forward(params, batch.inputs, buffers) for params, buffers in members]
            swa_output = problem.forward(swa[0], batch.inputs, swa[1])
            scores = _batch_scores(problem, batch, outputs, swa_output, prediction)
        sums += torch.tensor([scores[key] for key in keys], dtype=torch.float64) * batch.size
    means = dict(zip(keys, (batches.reduce(sums) / batches.num_examples).tolist()))
    return SplitComparison(**means, loss_gap=means["fge_loss"] - means["swa_loss"])


def _batch_scores(problem: Problem, batch: Batch, outputs: Sequence[Tensor], swa_output: Tensor,
                  prediction: Prediction) -> dict[str, float]:
    """Batch means of every score (examples weighted equally within the batch)."""
    target = batch.target
    for output in [swa_output, *outputs]:
        _check_output(output, target, prediction)
    if prediction == "probabilities":
        member_predictions = [torch.softmax(out.double(), -1) for out in outputs]
        swa_prediction = torch.softmax(swa_output.double(), -1)
        fge_prediction = torch.stack(member_predictions).mean(0)
        loss = lambda probs: float(_nll(probs, target))  # noqa: E731
    else:
        member_predictions = [out.double() for out in outputs]
        swa_prediction = swa_output.double()
        fge_prediction = torch.stack(member_predictions).mean(0)
        loss = lambda out: float(problem.loss_of(out.to(problem.dtype), target))  # noqa: E731
    gap = (fge_prediction - swa_prediction).reshape(batch.size, -1)
    return {"swa_loss": loss(swa_prediction), "swa_accuracy": _accuracy(swa_prediction, target),
            "fge_loss": loss(fge_prediction), "fge_accuracy": _accuracy(fge_prediction, target),
            "member_loss": sum(map(loss, member_predictions)) / len(outputs),
            "member_accuracy": sum(_accuracy(p, target) for p in member_predictions) / len(outputs),
            "prediction_gap": float(torch.linalg.vector_norm(gap, dim=1).mean())}


def _class_indices(output: Tensor, target: Tensor) -> bool:
    return (not target.is_floating_point() and output.ndim == target.ndim + 1
            and output.shape[:-1] == target.shape)


def _nll(probabilities: Tensor, target: Tensor) -> Tensor:
    """Mean −log p[y] (a probability of 0 gives inf, as it should)."""
    return -torch.log(probabilities.gather(-1, target.unsqueeze(-1))).mean()


def _accuracy(prediction: Tensor, target: Tensor) -> float:
    """Classification accuracy (argmax of logits or probabilities alike, or 0/1 targets against
    logits); NaN when the data does not look like classification."""
    value = classification_accuracy(prediction, target)
    return float("nan") if value is None else float(value)
