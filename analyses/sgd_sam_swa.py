"""SGD vs SAM vs SWA on digits: does SAM lower λ_max, and are SWA solutions wider?

    python analyses/sgd_sam_swa.py [--out DIR] [--quick] [--no-figures]

Published findings: SAM (Foret et al. 2021, "Sharpness-aware minimization") finds solutions
with a smaller Hessian λ_max than SGD; SWA (Izmailov et al. 2018, "Averaging weights leads to
wider optima") finds solutions that are wider along random directions.

Here: the zoo's digits CNN with BatchNorm (two 3×3 conv + BN + ReLU blocks, 8/16 channels),
trained from the same initialization and data order per seed, with the same epoch budget:
  * SGD: momentum 0.9, weight decay 5e-4, batch 32, cosine learning rate η₀ → 0;
  * SAM: the same, but each step uses ∇L(θ + ε̂) with ε̂ = ρ·g/‖g‖ (ρ = 0.05, g the
    mini-batch gradient at θ; the perturbed pass leaves BatchNorm running statistics alone):
    landscape.training.SAM around torch.optim.SGD;
  * SWA: the SGD schedule for the first half of the epochs, then the learning rate held at
    its value there, η₀/2 (torch.optim.swa_utils.SWALR), while averaging the weights after every epoch,
    then the BatchNorm statistics recomputed for the average (landscape.training.SWA: swa_utils'
    AveragedModel and update_bn);
  * SWA last iterate: the SGD iterate at the end of the SWA run (the last one averaged).
Each solution is measured with the landscape library: test accuracy, Hessian λ_max
(Lanczos), tr(H) (Hutch++) and the width of the basin along random filter-normalized rays
(the α-distance between the two points where the training loss has risen by 0.1).
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
from torch import Tensor, nn  # noqa: E402
from torch.optim.swa_utils import SWALR  # noqa: E402

from common import (  # noqa: E402
    Digits,
    add_run_options,
    export,
    format_table,
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
from landscape.training import SAM, SWA  # noqa: E402

STUDY = "sgd_sam_swa"
METHODS = ("SGD", "SAM", "SWA", "SWA last iterate")
TRAINED = ("SGD", "SAM", "SWA")  # "SWA last iterate" comes out of the SWA run


def make_model(kind: str) -> nn.Module:
    return zoo.digits_cnn() if kind == "cnn" else zoo.digits_mlp()


def batches(data: Digits, batch_size: int, generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
    perm = torch.randperm(len(data.y_train), generator=generator)
    return [(data.x_train[perm[i:i + batch_size]], data.y_train[perm[i:i + batch_size]])
            for i in range(0, len(perm), batch_size)]


def step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    """One optimizer step on the batch; SAM evaluates the closure twice (at θ and at θ + ε̂)."""
    def closure() -> Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    if isinstance(opt, SAM):
        opt.step(closure)
    else:
        opt.zero_grad(set_to_none=True)
        closure()
        opt.step()


def cosine(lr0: float, epochs: int) -> list[float]:
    """Learning rate of each epoch: η₀·(1 + cos(π e/E))/2."""
    return [lr0 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]


def train(method: str, data: Digits, *, model_kind: str, seed: int, epochs: int, batch_size: int, lr: float,
          momentum: float, weight_decay: float, rho: float, swa_start: int, swa_lr: float
          ) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """The trained model(s) by method name: SWA also returns the last SGD iterate it averaged."""
    torch.manual_seed(seed)
    model = make_model(model_kind)
    model.train()
    sgd = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
    opt = SAM(model, torch.optim.SGD, rho=rho, **sgd) if method == "SAM" else torch.optim.SGD(model.parameters(), **sgd)
    order = torch.Generator().manual_seed(seed + 10_000)
    schedule = cosine(lr, epochs)
    swa = SWA(model) if method == "SWA" else None
    swa_scheduler = SWALR(opt, swa_lr=swa_lr, anneal_epochs=1, anneal_strategy="cos") if swa else None
    start, steps, averaged_epochs = time.perf_counter(), 0, 0
    for epoch in range(epochs):
        in_swa_phase = swa is not None and epoch >= swa_start
        if not in_swa_phase:
            for group in opt.param_groups:
                group["lr"] = schedule[epoch]
        for x, y in batches(data, batch_size, order):
            step(model, opt, x, y)
            steps += 1
        if in_swa_phase:
            swa.update()
            averaged_epochs += 1
            swa_scheduler.step()
    models = {method: model}
    if swa is not None:
        bn_loader = [(x, y) for x, y in batches(data, 256, torch.Generator().manual_seed(seed))]
        # a copy of the average, its BatchNorm statistics recomputed on bn_loader (unused without BN)
        models = {"SWA": swa.averaged(bn_loader), "SWA last iterate": model}
    for m in models.values():
        m.eval()
    return models, {"epochs": epochs, "steps": steps, "averaged_epochs": averaged_epochs,
                   "train_seconds": time.perf_counter() - start}


COLORS = {"SGD": "#1f77b4", "SAM": "#2ca02c", "SWA": "#d62728", "SWA last iterate": "#ff7f0e"}
DASHES = {"SGD": "solid", "SAM": "solid", "SWA": "dash", "SWA last iterate": "dot"}


def figures(runs: list[dict], rise: float) -> dict[str, object]:
    import plotly.graph_objects as go

    curves = go.Figure()
    for run in runs:
        rays = run["measurement"]["rays"]
        alpha = np.asarray(rays[0]["alpha"])
        rise_curve = np.mean([np.asarray(r["train_loss"]) - run["measurement"]["train_loss"] for r in rays], axis=0)
        line = dict(color=COLORS[run["method"]], width=1.5, dash=DASHES[run["method"]])
        curves.add_trace(go.Scatter(x=alpha, y=rise_curve, mode="lines", line=line,
                                    name=run["method"], legendgroup=run["method"],
                                    showlegend=run["seed"] == runs[0]["seed"]))
    curves.add_hline(y=rise, line=dict(color="gray", dash="dot", width=1))
    curves.update_xaxes(title_text="α (filter-normalized random direction)")
    curves.update_yaxes(title_text="train loss − train loss at θ*", range=[-0.02, 0.6])
    curves.update_layout(title=f"Train loss rise along random rays (mean over rays, one line per seed); "
                               f"grey: ΔL = {rise}")

    keys = (("lambda_max", "Hessian λ_max"), ("trace", "tr(H) (Hutch++)"), ("width_mean", f"width at ΔL={rise}"),
            ("test_accuracy", "test accuracy"))
    summary = per_seed_boxes(runs, "method", {m: (m, COLORS[m]) for m in METHODS}, keys,
                             "Sharpness, width and generalization per seed")
    return {"rise_curves": curves, "summary": summary}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / STUDY)
    p.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--rho", type=float, default=0.05)
    p.add_argument("--swa-fraction", type=float, default=0.5, help="last fraction of epochs averaged")
    p.add_argument("--swa-lr", type=float, default=0.025,
                   help="constant LR while averaging (the cosine's value at the switch)")
    p.add_argument("--rays", type=int, default=8, help="random directions per model")
    p.add_argument("--rise", type=float, default=0.1, help="train-loss rise that defines the width")
    add_run_options(p, "tiny budget for the smoke test (1 seed, 4 epochs)")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.out, lambda payload: figures(payload["runs"], payload["measure_settings"]["width_rise"]))
    if args.quick:
        args.seeds, args.epochs, args.rays = args.seeds[:1], 4, 1
    torch.set_num_threads(args.threads)
    swa_start = args.epochs - max(1, round(args.swa_fraction * args.epochs))

    data = load_digits(images=args.model == "cnn")
    settings = dict(rays=args.rays, alpha_max=0.6, points=49 if not args.quick else 11, width_rise=args.rise,
                    trace_probes=30 if not args.quick else 9, direction_seed=0, curvature_seed=0)
    runs = []
    for seed in args.seeds:
        flat: dict[str, Tensor] = {}
        for trained in TRAINED:
            models, info = train(trained, data, model_kind=args.model, seed=seed, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay, rho=args.rho, swa_start=swa_start, swa_lr=args.swa_lr)
            for method, model in models.items():
                m = measure(model, data, **settings)
                flat[method] = torch.cat([p.detach().double().flatten() for p in model.parameters()])
                distance = float((flat[method] - flat["SGD"]).norm() / flat["SGD"].norm())
                runs.append({"seed": seed, "method": method, "training": info, "relative_distance_to_sgd": distance,
                             "measurement": m.__dict__ | {"rays": [r.__dict__ for r in m.rays]}})
                print(f"seed {seed} {method}: train {info['train_seconds']:.1f}s, measure {m.seconds:.1f}s, "
                      f"λ_max={m.lambda_max:.3g}, tr={m.trace:.3g}, width={m.width_mean:.3f}, "
                      f"test acc={m.test_accuracy:.3f}", flush=True)

    header = ["method", "train loss", "test acc", "λ_max", "tr(H)", f"width (ΔL={args.rise})", "‖W‖",
              "‖θ−θ_SGD‖/‖θ_SGD‖", "censored rays"]
    rows = []
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        get = lambda key, mine=mine: [r["measurement"][key] for r in mine]  # noqa: E731
        censored = sum(ray["censored"] for r in mine for ray in r["measurement"]["rays"])
        total = sum(len(r["measurement"]["rays"]) for r in mine)
        rows.append([method, pm(get("train_loss"), "{:.4f}"), pm(get("test_accuracy"), "{:.3f}"),
                     pm(get("lambda_max"), "{:.2f}"), pm(get("trace"), "{:.1f}"), pm(get("width_mean"), "{:.3f}"),
                     pm(get("weight_norm"), "{:.2f}"), pm([r["relative_distance_to_sgd"] for r in mine], "{:.3f}"),
                     f"{censored}/{total}"])
    table = format_table(header, rows)
    paired = paired_ratios(runs, "method", "SGD", ("lambda_max", "trace", "width_mean", "test_accuracy"))
    table += "\n\n" + ratio_table(paired, "SGD")
    payload = {"study": STUDY, "seeds": args.seeds, "direction_seed": settings["direction_seed"],
               "curvature_seed": settings["curvature_seed"],
               "model": "landscape.zoo.digits_cnn (8/16 channels, BatchNorm)" if args.model == "cnn"
               else "landscape.zoo.digits_mlp (hidden 32, tanh)",
               "training": {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay",
                                                           "rho", "swa_lr")} | {"swa_start_epoch": swa_start},
               "measure_settings": settings, "quick": args.quick, "machine": machine(), "table": table,
               "paired_ratios": paired, "runs": runs}
    write_json(args.out / "results.json", payload)
    print(f"\nseeds {args.seeds} (mean ± std over seeds)\n{table}")
    if not args.no_figures:
        for path in export(figures(runs, args.rise), args.out):
            print("wrote", path)
    return payload


if __name__ == "__main__":
    main()
