"""Small-batch vs large-batch SGD on digits: are large-batch solutions sharper?

    python analyses/batch_size_sharpness.py [--out DIR] [--quick] [--no-figures]

Keskar et al. (2017), "On large-batch training for deep learning: generalization gap and
sharp minima", report that large-batch training converges to sharper minima that generalize
worse. Here: the zoo's digits MLP (64→32→32→10, tanh) trained from the same initializations
with SGD (momentum 0.9, the same learning rate) at batch size 16 and at full batch (1437,
i.e. gradient descent) until the full training loss reaches the same target, for several
seeds. Each solution is then measured with the landscape library: test accuracy, Hessian
λ_max (Lanczos), tr(H) (Hutch++) and 1-D filter-normalized loss curves with the width of
the basin along them. Writes results.json, figures (PNG + PDF) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("LANDSCAPE_QUIET", "1")  # no progress bars in the printed table
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's landscape, and common.py

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import (  # noqa: E402
    Digits,
    add_run_options,
    export,
    format_table,
    full_loss,
    load_digits,
    machine,
    measure,
    paired_ratios,
    per_seed_boxes,
    pm,
    ratio_table,
    replot,
    write_json,
)
from landscape import zoo  # noqa: E402

STUDY = "batch_size_sharpness"


def train(data: Digits, batch_size: int, *, seed: int, lr: float, momentum: float, target_loss: float,
          max_epochs: int) -> tuple[nn.Module, dict[str, float]]:
    """SGD from the seed's initialization until the full training loss ≤ ``target_loss``
    (checked after every step, so both batch sizes stop at the same loss) or ``max_epochs``;
    the data order is seeded too."""
    torch.manual_seed(seed)
    model = zoo.digits_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    order = torch.Generator().manual_seed(seed + 10_000)
    n = len(data.y_train)
    start, steps, epoch, loss = time.perf_counter(), 0, 0, full_loss(model, data.x_train, data.y_train)
    while loss > target_loss and epoch < max_epochs:
        perm = torch.randperm(n, generator=order)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            steps += 1
            loss = full_loss(model, data.x_train, data.y_train)
            if loss <= target_loss:
                break
        epoch += 1
    return model, {"epochs": steps * batch_size / n if batch_size < n else steps, "steps": steps,
                   "final_train_loss": loss, "reached_target": loss <= target_loss,
                   "train_seconds": time.perf_counter() - start}


def figures(runs: list[dict], batch_sizes: list[int]) -> dict[str, object]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    colors = {batch_sizes[0]: "#1f77b4", batch_sizes[1]: "#d62728"}
    curves = make_subplots(rows=1, cols=2, subplot_titles=("train loss", "test loss"), horizontal_spacing=0.1)
    for run in runs:
        ray = run["measurement"]["rays"][0]
        first = run["seed"] == runs[0]["seed"]
        for col, key in ((1, "train_loss"), (2, "test_loss")):
            curves.add_trace(go.Scatter(x=ray["alpha"], y=ray[key], mode="lines",
                                        line=dict(color=colors[run["batch_size"]], width=1.5),
                                        name=f"B={run['batch_size']}", legendgroup=str(run["batch_size"]),
                                        showlegend=first and col == 1), row=1, col=col)
    curves.update_xaxes(title_text="α (filter-normalized random direction)")
    curves.update_yaxes(type="log", title_text="loss", col=1)
    curves.update_yaxes(type="log", col=2)
    curves.update_layout(title="1-D loss curves, one per seed (same direction seed)")

    sharp = per_seed_boxes(runs, "batch_size", {b: (f"B={b}", colors[b]) for b in batch_sizes},
                           [("lambda_max", "Hessian λ_max"), ("trace", "tr(H) (Hutch++)"),
                            ("test_accuracy", "test accuracy")], "Sharpness and generalization per seed")
    return {"loss_curves": curves, "sharpness": sharp}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / STUDY)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--batch-sizes", type=int, nargs=2, default=[16, 1437], metavar=("SMALL", "LARGE"))
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--target-loss", type=float, default=0.01)
    p.add_argument("--max-epochs", type=int, default=5000)
    p.add_argument("--rays", type=int, default=8, help="random directions per model")
    add_run_options(p, "tiny budget for the smoke test (1 seed, loose target)")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.out, lambda payload: figures(payload["runs"], [int(b) for b in payload["batch_sizes"]]))
    if args.quick:
        args.seeds, args.target_loss, args.max_epochs, args.rays = args.seeds[:1], 0.5, 3, 1
    torch.set_num_threads(args.threads)

    data = load_digits(images=False)
    settings = dict(rays=args.rays, alpha_max=1.0, points=41 if not args.quick else 11, width_rise=0.1,
                    trace_probes=30 if not args.quick else 9, direction_seed=0, curvature_seed=0)
    runs = []
    for seed in args.seeds:
        for b in args.batch_sizes:
            model, info = train(data, b, seed=seed, lr=args.lr, momentum=args.momentum,
                                target_loss=args.target_loss, max_epochs=args.max_epochs)
            m = measure(model, data, **settings)
            runs.append({"seed": seed, "batch_size": b, "training": info, "measurement": m.__dict__ | {
                "rays": [r.__dict__ for r in m.rays]}})
            print(f"seed {seed} B={b}: {info['epochs']:.1f} epochs, {info['steps']} steps, "
                  f"λ_max={m.lambda_max:.3g}, tr={m.trace:.3g}, test acc={m.test_accuracy:.3f}", flush=True)

    header = ["B", "epochs", "steps", "train loss", "test acc", "λ_max", "tr(H)", "width (ΔL=0.1)"]
    rows = []
    for b in args.batch_sizes:
        mine = [r for r in runs if r["batch_size"] == b]
        get = lambda key, mine=mine: [r["measurement"][key] for r in mine]  # noqa: E731
        rows.append([str(b), pm([r["training"]["epochs"] for r in mine], "{:.1f}"),
                     pm([r["training"]["steps"] for r in mine], "{:.0f}"),
                     pm(get("train_loss"), "{:.4f}"), pm(get("test_accuracy"), "{:.3f}"),
                     pm(get("lambda_max"), "{:.2f}"), pm(get("trace"), "{:.1f}"), pm(get("width_mean"), "{:.3f}")])
    table = format_table(header, rows)
    paired = paired_ratios(runs, "batch_size", args.batch_sizes[0],
                           ("lambda_max", "trace", "width_mean", "test_accuracy"))
    table += "\n\n" + ratio_table(paired, str(args.batch_sizes[0]))
    payload = {"study": STUDY, "seeds": args.seeds, "direction_seed": settings["direction_seed"],
               "curvature_seed": settings["curvature_seed"], "model": "landscape.zoo.digits_mlp (hidden 32, tanh)",
               "batch_sizes": args.batch_sizes,
               "optimizer": {"name": "SGD", "lr": args.lr, "momentum": args.momentum},
               "stop": f"full training loss <= {args.target_loss}, checked after every step "
                       f"(max {args.max_epochs} epochs)",
               "gd_stability_threshold": 2 * (1 + args.momentum) / args.lr,
               "measure_settings": settings, "quick": args.quick, "machine": machine(), "table": table,
               "paired_ratios": paired,
               "runs": runs}
    write_json(args.out / "results.json", payload)
    print(f"\nseeds {args.seeds} (mean ± std over seeds); GD edge of stability 2(1+β)/η = "
          f"{payload['gd_stability_threshold']:.1f}\n{table}")
    if not args.no_figures:
        for path in export(figures(runs, args.batch_sizes), args.out):
            print("wrote", path)
    return payload


if __name__ == "__main__":
    main()
