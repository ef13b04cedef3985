"""Full-batch gradient descent at the edge of stability: does λ_max rise to 2/η and stay there?

    python analyses/edge_of_stability.py [--out DIR] [--quick] [--no-figures]

Cohen, Kaur, Li, Kolter & Talwalkar (2021), "Gradient descent on neural networks typically
occurs at the edge of stability": with full-batch GD at step size η, the top Hessian
eigenvalue λ_max first rises (progressive sharpening) until it reaches 2/η — where GD on a
quadratic with that curvature would diverge — and then hovers just above 2/η while the loss
keeps decreasing, non-monotonically, over long times.

Here: the zoo's digits MLP (64→32→32→10, tanh, 3.5 k parameters) from one initialization,
trained by plain full-batch gradient descent on all 1437 training examples with the squared
loss ½‖f(x) − onehot(y)‖² (averaged over examples; Cohen et al.'s main setting), at several
step sizes η. A landscape.SharpnessTracker records, every few steps, λ_max of the full
training loss (Lanczos, warm-started from the previous record) into one tracker file per η.
Writes the tracker files, results.json, a figure (PNG + PDF) and summary.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("LANDSCAPE_QUIET", "1")  # no progress bars in the printed table
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's landscape, and common.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

import landscape as ls  # noqa: E402
from common import add_run_options, export, format_table, load_digits, machine, replot, write_json  # noqa: E402
from landscape import zoo  # noqa: E402

STUDY = "edge_of_stability"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
HOVER_BAND = (0.9, 1.1)  # "at 2/η": the late-time mean of λ_max·η/2 inside this band


def square_loss(output: Tensor, target: Tensor) -> Tensor:
    """½‖f(x) − onehot(y)‖², averaged over the examples."""
    return 0.5 * (output - F.one_hot(target, output.shape[1]).to(output.dtype)).pow(2).sum(1).mean()


def run_gd(x: Tensor, y: Tensor, lr: float, steps: int, every: int, seed: int, path: Path) -> dict:
    """Full-batch GD at step size ``lr`` from the seed's initialization, tracked into ``path``."""
    torch.manual_seed(seed)
    model = zoo.digits_mlp()
    path.unlink(missing_ok=True)  # a fresh trajectory, not an append to an older run's file
    tracker = ls.SharpnessTracker(model, square_loss, [(x, y)], path, every=every, learning_rate=lr,
                                  save_parameters=False, seed=seed)
    start, train_seconds = time.perf_counter(), 0.0
    tracker.step(0)
    for step in range(1, steps + 1):
        tick = time.perf_counter()
        model.zero_grad(set_to_none=True)
        square_loss(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad  # plain gradient descent: no momentum, no weight decay
        train_seconds += time.perf_counter() - tick
        tracker.step(step)
    run = ls.read_tracker(path)
    return {"lr": lr, "threshold": 2 / lr, "series": {k: v.tolist() for k, v in run.series.items()},
            "train_seconds": train_seconds, "seconds": time.perf_counter() - start}


def summarize(run: dict) -> dict:
    """λ_max against 2/η: when it first reached 0.9·2/η, its late-time mean (last quarter of
    the records) and whether that mean lies in the hover band."""
    step = np.asarray(run["series"]["step"])
    lam = np.asarray(run["series"]["lambda_max"])
    loss = np.asarray(run["series"]["loss"])
    ratio = lam / run["threshold"]
    reached = np.flatnonzero(ratio >= HOVER_BAND[0])
    late = ratio[-max(1, len(ratio) // 4):]
    return {"lr": run["lr"], "threshold": run["threshold"], "lambda_max_initial": float(lam[0]),
            "lambda_max_final": float(lam[-1]), "late_mean_ratio": float(late.mean()),
            "late_min_ratio": float(late.min()), "late_max_ratio": float(late.max()),
            "peak_ratio": float(ratio.max()), "peak_step": int(step[int(np.argmax(ratio))]),
            "first_step_at_0.9": int(step[reached[0]]) if reached.size else None,
            "loss_initial": float(loss[0]), "loss_final": float(loss[-1]),
            "at_edge": bool(HOVER_BAND[0] <= late.mean() <= HOVER_BAND[1]),
            "mean_matvecs": float(np.mean(run["series"]["lambda_max_matvecs"])),
            "max_residual": float(np.max(run["series"]["lambda_max_residual"]))}


def figures(payload: dict) -> dict[str, object]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("Hessian λ_max (dashed: 2/η)", "training loss"))
    for color, run in zip(COLORS, payload["runs"], strict=False):
        s, label = run["series"], f"η = {run['lr']:g}"
        fig.add_trace(go.Scatter(x=s["step"], y=s["lambda_max"], mode="lines", name=label,
                                 line=dict(color=color, width=1.5), legendgroup=label), row=1, col=1)
        fig.add_hline(y=run["threshold"], line=dict(color=color, dash="dash", width=2), opacity=0.8, row=1, col=1)
        fig.add_trace(go.Scatter(x=s["step"], y=s["loss"], mode="lines", name=label, showlegend=False,
                                 line=dict(color=color, width=1.5), legendgroup=label), row=1, col=2)
    fig.update_xaxes(title_text="gradient descent step")
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title="Full-batch GD on digits: sharpening to 2/η, then the edge of stability")
    return {"sharpness": fig}


def summary_markdown(payload: dict, table: str) -> str:
    agree = all(s["at_edge"] for s in payload["summaries"])
    verdict = ("**They agree**: at every step size λ_max rose to 2/η and its late-time mean stays within "
               f"{HOVER_BAND[0]:g}–{HOVER_BAND[1]:g} × 2/η, while the loss kept falling."
               if agree else
               "**Not at every step size**: the rows with `at 2/η` = no did not reach or did not stay near "
               "2/η within the step budget (see `first step λ ≥ 0.9·2/η`).")
    return f"""# Edge of stability (`edge_of_stability.py`)

**The paper's finding** (Cohen et al. 2021, "Gradient descent on neural networks typically occurs
at the edge of stability"): under full-batch gradient descent with step size η, the sharpness
λ_max rises during training (progressive sharpening) until it reaches 2/η, then hovers just
above 2/η instead of exceeding it, while the training loss keeps decreasing non-monotonically.

**Here**: {payload['model']}, {payload['examples']} digits training examples, full-batch GD with
the square loss, {payload['steps']} steps per η, seed {payload['seed']}; λ_max of the full training
loss recorded every {payload['every']} steps by `landscape.SharpnessTracker` (Lanczos, float32,
relative Ritz residual ≤ 1e-4; largest residual over all records {payload['max_residual']:.1e}).
"late λ·η/2" is the mean (min–max) of λ_max/(2/η) over the last quarter of the records, "peak"
its largest value over the run (an overshoot past 2/η comes with a spike of the loss, after
which λ_max falls back: the self-stabilization Cohen et al. describe);
"at 2/η" means that mean lies in [{HOVER_BAND[0]:g}, {HOVER_BAND[1]:g}].

{table}

{verdict}

Files: `sharpness.png` (λ_max and loss against the step), one tracker file per η
(`tracker_lr*.h5`, series only; `landscape view` draws each), `results.json` (every series and
the machine). Run time {payload['seconds']:.0f} s (`python analyses/edge_of_stability.py`) on a
shared {payload['machine']['processor']} VM
({payload['machine']['cpu_count']} cores, torch {payload['machine']['torch']},
{payload['machine']['torch_threads']} thread).
"""


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / STUDY)
    p.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.15, 0.2], help="step sizes η")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--every", type=int, default=20, help="record λ_max every this many steps")
    p.add_argument("--seed", type=int, default=0)
    add_run_options(p, "tiny budget for the smoke test (200 steps, a record every 20)")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.out, figures)
    if args.quick:
        args.steps, args.every = 200, 20
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    data = load_digits(images=False)
    start = time.perf_counter()
    runs = []
    for lr in args.lrs:
        run = run_gd(data.x_train, data.y_train, lr, args.steps, args.every, args.seed,
                     args.out / f"tracker_lr{lr:g}.h5")
        runs.append(run)
        s = summarize(run)
        print(f"η={lr:g}: λ_max {s['lambda_max_initial']:.2f} → {s['lambda_max_final']:.2f} "
              f"(2/η = {2 / lr:.2f}), loss {s['loss_initial']:.3f} → {s['loss_final']:.4f}, "
              f"{run['seconds']:.0f} s", flush=True)
    summaries = [summarize(r) for r in runs]
    header = ["η", "2/η", "λ_max at step 0", "first step λ ≥ 0.9·2/η", "peak λ·η/2 (step)", "λ_max at the end",
              "late λ·η/2 mean (min–max)", "at 2/η", "loss start → end"]
    rows = [[f"{s['lr']:g}", f"{s['threshold']:.2f}", f"{s['lambda_max_initial']:.2f}",
             str(s["first_step_at_0.9"]) if s["first_step_at_0.9"] is not None else "never",
             f"{s['peak_ratio']:.3f} ({s['peak_step']})",
             f"{s['lambda_max_final']:.2f}",
             f"{s['late_mean_ratio']:.3f} ({s['late_min_ratio']:.2f}–{s['late_max_ratio']:.2f})",
             "yes" if s["at_edge"] else "no", f"{s['loss_initial']:.3f} → {s['loss_final']:.4f}"]
            for s in summaries]
    table = format_table(header, rows)
    payload = {"study": STUDY, "model": "landscape.zoo.digits_mlp (64→32→32→10, tanh)",
               "examples": len(data.y_train), "loss": "0.5·‖f(x) − onehot(y)‖², mean over examples",
               "optimizer": "full-batch gradient descent, no momentum", "lrs": args.lrs, "steps": args.steps,
               "every": args.every, "seed": args.seed, "seeds": [args.seed], "quick": args.quick,
               "hover_band": list(HOVER_BAND), "table": table, "summaries": summaries,
               "max_residual": max(s["max_residual"] for s in summaries),
               "seconds": time.perf_counter() - start, "machine": machine(), "runs": runs}
    write_json(args.out / "results.json", payload)
    (args.out / "summary.md").write_text(summary_markdown(payload, table))
    print(f"\n{table}")
    if not args.no_figures:
        for path in export(figures(payload), args.out):
            print("wrote", path)
    if not all(math.isfinite(s["lambda_max_final"]) for s in summaries):
        print("warning: a run diverged (λ_max not finite)", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
