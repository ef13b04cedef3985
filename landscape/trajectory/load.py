"""A trajectory's checkpoints loaded: the final checkpoint's Problem (model, data, loss) and the
trainable parameters of every checkpoint, in training order, checked to be one architecture.

Only the final checkpoint becomes a Problem (one copy of the data); the others are read as
weights only (:func:`landscape.loading.checkpoint_parameters`).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..compare.steps import check_same_parameters
from ..errors import LandscapeError
from ..loading import checkpoint_parameters, load_checkpoint, resolve_callable, trainable_parameters
from ..loading.checkpoints import file_sha256
from ..problem import Problem
from .inputs import Source, TrackerRecords, checkpoint_order, read_tracker, recorded_step

MIN_CHECKPOINTS = 3
ProblemLoader = Callable[[str], tuple[Problem, dict[str, Any]]]


@dataclass(frozen=True)
class Trajectory:
    """Checkpoints in training order (the last is θ_final, the Problem's own weights may differ:
    ``final`` is what the plane and surface are centred on)."""

    problem: Problem
    provenance: dict[str, Any]
    thetas: tuple[dict[str, Tensor], ...]
    steps: tuple[int, ...]
    labels: tuple[str, ...]
    steps_from: str
    inputs: tuple[str, ...]  # every file read, for the output guard

    @property
    def final(self) -> dict[str, Tensor]:
        """θ_final on the Problem's device and dtype."""
        ref = self.problem.params
        return {n: self.thetas[-1][n].to(ref[n].device, ref[n].dtype) for n in ref}


def too_few(count: int, source: str) -> LandscapeError:
    """The line refusing a trajectory of fewer than 3 checkpoints."""
    return LandscapeError(f"trajectory: '{source}' gives {count} checkpoint(s); a trajectory plane needs at least "
                          f"{MIN_CHECKPOINTS} (e.g. save one every epoch)")


def load_checkpoints(source: Source, args: argparse.Namespace, load: ProblemLoader) -> Trajectory:
    """A folder's or glob's checkpoints, ordered by recorded step, else by natural name order."""
    if len(source.files) < MIN_CHECKPOINTS:
        raise too_few(len(source.files), source.text)
    checkpoints = [load_checkpoint(f, trust=args.trust) for f in source.files]  # each file read once here
    order, steps, steps_from = checkpoint_order(source.files, [c.metadata for c in checkpoints])
    files = [source.files[i] for i in order]
    problem, provenance = load(files[-1])
    thetas = []
    for index in order[:-1]:
        path = source.files[index]
        theta = checkpoint_parameters(checkpoints[index], provenance, args.model, args.trust)
        check_same_parameters(problem.params, files[-1], theta, path, "trajectory")
        thetas.append(theta)
    thetas.append({n: p.detach().cpu() for n, p in problem.params.items()})
    return Trajectory(problem, provenance, tuple(thetas), tuple(steps), tuple(Path(f).name for f in files),
                      steps_from, tuple(files))


def load_tracker(source: Source, args: argparse.Namespace, load: ProblemLoader) -> Trajectory:
    """A tracker file's saved records; model, data and loss from ``--final`` (whose weights end
    the trajectory when they differ from the last record) or from ``--model/--data/--loss``."""
    if args.final is None and not (args.model and args.data and args.loss):
        raise LandscapeError(f"trajectory: tracker file '{source.text}' holds only weights: give the final "
                             "checkpoint with --final CKPT, or --model, --data and --loss")
    records = read_tracker(source.text)
    if args.final is not None:
        problem, provenance = load(args.final)
        thetas, steps, labels = _with_final(records, problem.params, args.final, args.trust)
    else:
        problem, provenance = _problem_from_specs(records, args, load)
        thetas, steps = list(records.parameters), list(records.steps)
        labels = [f"step {s}" for s in steps]
    if len(thetas) < MIN_CHECKPOINTS:
        raise too_few(len(thetas), source.text)
    for step, theta in zip(steps, thetas):
        check_same_parameters(problem.params, args.final or args.model, theta, f"{source.text}, step {step}",
                              "trajectory")
    inputs = (source.text, *([args.final] if args.final else []))
    return Trajectory(problem, provenance, tuple(thetas), tuple(steps), tuple(labels), "tracker step", inputs)


def _with_final(records: TrackerRecords, final: Mapping[str, Tensor], path: str, trust: bool
                ) -> tuple[list[dict[str, Tensor]], list[int], list[str]]:
    thetas, steps = list(records.parameters), list(records.steps)
    labels = [f"step {s}" for s in steps]
    last = thetas[-1]
    same = set(last) == set(final) and all(
        last[n].shape == final[n].shape and torch.equal(last[n].to(final[n].dtype).cpu(), final[n].cpu())
        for n in final)
    if not same:
        recorded = recorded_step(load_checkpoint(path, trust=trust).metadata)
        steps.append(recorded[0] if recorded is not None else steps[-1] + 1)
        thetas.append({n: p.detach().cpu() for n, p in final.items()})
        labels.append(Path(path).name)
    return thetas, steps, labels


def _problem_from_specs(records: TrackerRecords, args: argparse.Namespace, load: ProblemLoader
                        ) -> tuple[Problem, dict[str, Any]]:
    """The Problem of ``--model/--data/--loss`` at the last record's weights (buffers, e.g.
    BatchNorm statistics, are the model factory's: the tracker saves trainable parameters only)."""
    model = resolve_callable(args.model, "model")()
    if not isinstance(model, torch.nn.Module):
        raise LandscapeError(f"model factory '{args.model}' returned {type(model).__name__}, not an nn.Module")
    last = records.parameters[-1]
    check_same_parameters(trainable_parameters(model), args.model, last, f"{records.path}, step {records.steps[-1]}",
                          "trajectory")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in last:
                p.copy_(last[name].to(p.dtype))
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "last_record.pt"
        torch.save({"state_dict": model.state_dict()}, weights)
        problem, provenance = load(str(weights))
    provenance.update(checkpoint_path=records.path, checkpoint_sha256=file_sha256(Path(records.path)),
                      checkpoint_format="landscape-tracker (last record)")
    return problem, provenance
