"""What both studies share: digits data as tensors, the measurements made with the
landscape library's public API (λ_max, Hutch++ trace, 1-D filter-normalized curves and
widths along them), JSON output and static figures.

Imported by the study scripts, which put this folder and the repository root on sys.path.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape import Problem, zoo
from landscape.curvature import HessianOperator
from landscape.linalg import estimate_trace, lanczos
from landscape.sharpness import first_crossing
from landscape.surfaces import compute_surface, random_directions


@dataclass
class Digits:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    images: bool

    def splits(self, batch_size: int = 512) -> dict[str, list[tuple[Tensor, Tensor]]]:
        """The same fixed split as ``landscape.zoo``, as the batches a Problem is made from."""
        return (zoo.digits_images if self.images else zoo.digits)(batch_size)


def load_digits(images: bool) -> Digits:
    """The zoo's digits (1437 train / 360 test) as whole tensors for the training loops."""
    splits = (zoo.digits_images if images else zoo.digits)(batch_size=10_000)
    (x_tr, y_tr), = splits["train"]
    (x_te, y_te), = splits["test"]
    return Digits(x_tr, y_tr, x_te, y_te, images)


def full_loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Mean cross-entropy of ``model`` in eval mode (BatchNorm on running statistics)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        value = float(F.cross_entropy(model(x), y))
    model.train(was_training)
    return value


@dataclass
class Ray:
    """Train/test loss along θ* + α·d for one filter-normalized random direction d."""

    seed: int
    alpha: list[float]
    train_loss: list[float]
    test_loss: list[float]
    test_accuracy: list[float]
    width: float          # distance between the two crossings of L(θ*) + rise (α units)
    censored: bool        # True when the loss did not rise that much inside the range on some side


@dataclass
class Measurement:
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lambda_max: float
    lambda_max_residual: float
    lambda_max_converged: bool
    trace: float
    trace_stderr: float
    width_mean: float
    width_rise: float
    weight_norm: float    # ‖W‖ over the tensors the directions move (ndim > 1): BN nets are scale-invariant in them
    rays: list[Ray] = field(default_factory=list)
    seconds: float = 0.0


def ray_width(alpha: np.ndarray, loss: np.ndarray, rise: float) -> tuple[float, bool]:
    """Width of the basin along a symmetric α grid: α₊ + α₋ where L first exceeds L(0) + rise."""
    center = int(np.argmin(np.abs(alpha)))
    base = loss[center]
    right, c_right = first_crossing(alpha[center:], loss[center:] - base, rise)
    left, c_left = first_crossing(-alpha[center::-1], loss[center::-1] - base, rise)
    return right + left, c_right or c_left


def measure(model: nn.Module, data: Digits, *, rays: int, alpha_max: float, points: int,
            width_rise: float, trace_probes: int, direction_seed: int, curvature_seed: int,
            dtype: torch.dtype = torch.float32, hvp_mode: str = "autograd") -> Measurement:
    """Everything the studies report about one trained model, via the library's public API.

    Curvature is of the training risk (all 1437 examples), in ``dtype``; the model is left
    untouched (Problem works on its own eval-mode copy: BatchNorm uses running statistics).
    float32 and a fixed HVP mode because on this 2-core CPU float64 costs 2.5× and the
    automatic HVP-mode timing costs more than the Lanczos run itself (λ_max and the trace
    agree with float64 to ~1e-6 relative on these models, far inside the seed-to-seed spread).
    """
    start = time.perf_counter()
    problem = Problem.create(model, F.cross_entropy, data.splits(), dtype=dtype)
    at_min = {s: problem.evaluate_point(problem.params, s) for s in ("train", "test")}

    hessian = HessianOperator(problem, split="train", hvp_mode=hvp_mode)
    top = lanczos(hessian, 1, "LA", seed=curvature_seed)
    trace = estimate_trace(hessian, trace_probes, method="hutch++", seed=curvature_seed)

    alpha = np.linspace(-alpha_max, alpha_max, points)
    measured_rays = []
    for direction in random_directions(problem.params, rays, seed=direction_seed):
        curve = compute_surface(problem, [direction.vectors], [alpha], splits=["train", "test"])
        train = curve.values["train"]["loss"]
        width, censored = ray_width(alpha, train, width_rise)
        measured_rays.append(Ray(direction_seed * 1000 + int(direction.attrs["index"]), alpha.tolist(),
                                 train.tolist(), curve.values["test"]["loss"].tolist(),
                                 curve.values["test"]["accuracy"].tolist(), width, censored))
    return Measurement(
        train_loss=at_min["train"]["loss"], train_accuracy=at_min["train"]["accuracy"],
        test_loss=at_min["test"]["loss"], test_accuracy=at_min["test"]["accuracy"],
        lambda_max=float(top.eigenvalues[0]), lambda_max_residual=float(top.residuals[0]),
        lambda_max_converged=bool(top.converged[0]), trace=trace.estimate, trace_stderr=trace.stderr,
        width_mean=float(np.mean([r.width for r in measured_rays])), width_rise=width_rise,
        weight_norm=float(torch.sqrt(sum((p.double() ** 2).sum() for p in problem.params.values() if p.ndim > 1))),
        rays=measured_rays, seconds=time.perf_counter() - start)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": __import__("os").cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


def paired_ratios(runs: Sequence[dict[str, Any]], group: str, baseline: Any, metrics: Sequence[str]
                  ) -> dict[str, dict[str, dict[str, Any]]]:
    """Per seed, each group's metric divided by the baseline group's (same seed = same
    initialization and data order), with how many seeds the ratio is below 1."""
    by_seed = {(r["seed"], r[group]): r["measurement"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in dict.fromkeys(r[group] for r in runs):
        if name == baseline:
            continue
        out[str(name)] = {}
        for metric in metrics:
            ratios = [by_seed[(s, name)][metric] / by_seed[(s, baseline)][metric] for s in seeds]
            out[str(name)][metric] = {"ratios": ratios, "seeds_below_1": sum(r < 1 for r in ratios),
                                      "num_seeds": len(ratios)}
    return out


def ratio_table(paired: dict[str, dict[str, dict[str, Any]]], baseline: str) -> str:
    metrics = list(next(iter(paired.values())))
    rows = [[f"{name} / {baseline}", *(f"{pm(v['ratios'], '{:.2f}')} ({v['seeds_below_1']}/{v['num_seeds']} < 1)"
                                        for v in per.values())] for name, per in paired.items()]
    return format_table(["paired by seed", *metrics], rows)


def rounded(obj: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` significant digits (keeps the committed JSON small)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rounded(payload), indent=None, allow_nan=True) + "\n")


def export(figures: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG and PDF of each figure through the library's paper-figure exporter (kaleido)."""
    from landscape.views.export import ExportOptions, export_figures

    return export_figures(figures, out_dir, ExportOptions(formats=("png", "pdf"), preset="two-column"))


def add_run_options(parser: Any, quick_help: str) -> None:
    """Options every study takes: a smoke-test budget, figures on/off or redrawn, threads."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--replot", action="store_true", help="only redraw the figures from OUT/results.json")
    parser.add_argument("--threads", type=int, default=1)


def replot(out: Path, make_figures: Any) -> dict[str, Any]:
    """Redraw a study's figures from its results.json; ``make_figures(payload)`` builds them."""
    payload = json.loads((out / "results.json").read_text())
    for path in export(make_figures(payload), out):
        print("wrote", path)
    return payload


def per_seed_boxes(runs: Sequence[dict[str, Any]], group: str, groups: dict[Any, tuple[str, str]],
                   metrics: Sequence[tuple[str, str]], title: str) -> Any:
    """One box plot per metric, a box per group (``groups[value] = (label, colour)``),
    every seed's value drawn as a point."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[label for _, label in metrics],
                        horizontal_spacing=0.3 / len(metrics))
    for col, (key, _) in enumerate(metrics, start=1):
        for value, (label, color) in groups.items():
            values = [r["measurement"][key] for r in runs if r[group] == value]
            fig.add_trace(go.Box(y=values, name=label, boxpoints="all", pointpos=0, jitter=0.3,
                                 marker=dict(color=color), line=dict(color=color), showlegend=False),
                          row=1, col=col)
    fig.update_layout(title=title)
    return fig


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-markdown table (printed and pasted into the README as is)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def pm(values: Sequence[float], fmt: str = "{:.3g}") -> str:
    mean, std = mean_std(values)
    return f"{fmt.format(mean)} ± {fmt.format(std)}"

