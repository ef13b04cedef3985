"""What the sharpness tracker costs per record, against one training step, with and without
the Lanczos warm start; and what building each record's Problem costs, refreshed
(``dataclasses.replace`` of one Problem made at the start) against ``Problem.create``.

The bundled checkpoints (data/digits_mlp.pt, data/digits_cnn.pt) continue training with SGD
(lr 0.05, momentum 0.9, batch 64, seeded order); a SharpnessTracker (λ_max only, no saved
parameters) records every ``--every`` steps on a fixed measurement set of 512 training
examples. The same trajectory runs with the warm start and without it (same seed, so the same
weights at every record), ``--repeats`` times each, interleaved; per record the best of the
repeats is kept. Ratios are taken within one run.

    PYTHONPATH=. python benchmarks/bench_tracker.py [--records 10] [--every 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from machine import cpu_model

import landscape as ls
from landscape import zoo
from landscape.tracking.tracker import current_problem

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The bundled trained model and its training split as whole tensors."""
    images = name == "cnn"
    model = zoo.digits_cnn() if images else zoo.digits_mlp()
    model.load_state_dict(ls.load_checkpoint(DATA / f"digits_{name}.pt").state_dict)
    (x, y), = (zoo.digits_images if images else zoo.digits)(batch_size=10_000)["train"]
    return model, x, y


def trajectory(name: str, warm: bool, records: int, every: int, folder: Path) -> dict[str, np.ndarray]:
    """Train ``records·every`` steps from the checkpoint; per-record tracker seconds and
    products, and each training step's seconds."""
    model, x, y = load(name)
    model.train()
    measure_on = [(x[:512], y[:512])]
    path = folder / f"{name}_{warm}.h5"
    path.unlink(missing_ok=True)
    tracker = ls.SharpnessTracker(model, F.cross_entropy, measure_on, path, every=every, save_parameters=False,
                                  warm_start=warm)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(0)
    step_seconds = []
    for step in range(1, records * every + 1):
        idx = torch.randint(0, len(y), (64,), generator=order)
        tick = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        step_seconds.append(time.perf_counter() - tick)
        tracker.step(step)
    run = ls.read_tracker(path)
    return {"seconds": run.series["seconds"], "matvecs": run.series["lambda_max_matvecs"],
            "lambda_max": run.series["lambda_max"], "step_seconds": np.asarray(step_seconds)}


def problem_costs(name: str, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of one record's Problem: refreshed vs made anew."""
    model, x, y = load(name)
    measure_on = [(x[:512], y[:512])]
    base = ls.Problem.create(model, F.cross_entropy, measure_on)
    refresh, create = [], []
    for _ in range(repeats):
        for _ in range(5):
            tick = time.perf_counter()
            current_problem(base, model)
            refresh.append(time.perf_counter() - tick)
            tick = time.perf_counter()
            ls.Problem.create(model, F.cross_entropy, measure_on)
            create.append(time.perf_counter() - tick)
    return min(refresh), min(create)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=10)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}, "
          f"load before {os.getloadavg()[0]:.1f}")
    print("| model | training step (ms) | record, warm (ms) | record, cold (ms) | warm ÷ step | cold ÷ step "
          "| products warm | products cold | cold ÷ warm (s) | max rel. Δλ warm vs cold "
          "| Problem: refresh (ms) | Problem.create (ms) |")
    print("|" + " --- |" * 12)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mlp", "cnn"):
            runs: dict[bool, list[dict[str, np.ndarray]]] = {True: [], False: []}
            for _ in range(args.repeats):
                for warm in (True, False):
                    runs[warm].append(trajectory(name, warm, args.records, args.every, Path(tmp)))
            # per record (and per step), the best of the repeats; the first record has no warm start
            best = {w: np.min([r["seconds"] for r in rs], axis=0)[1:] for w, rs in runs.items()}
            products = {w: rs[0]["matvecs"][1:].mean() for w, rs in runs.items()}
            step = min(float(np.median(r["step_seconds"])) for rs in runs.values() for r in rs)
            lam = {w: rs[0]["lambda_max"] for w, rs in runs.items()}
            delta = float(np.max(np.abs(lam[True] - lam[False]) / np.abs(lam[False])))
            refresh, create = problem_costs(name, args.repeats)
            warm_s, cold_s = best[True].mean(), best[False].mean()
            print(f"| digits {name.upper()} | {step * 1e3:.2f} | {warm_s * 1e3:.1f} | {cold_s * 1e3:.1f} "
                  f"| {warm_s / step:.1f}× | {cold_s / step:.1f}× | {products[True]:.1f} | {products[False]:.1f} "
                  f"| {cold_s / warm_s:.2f}× | {delta:.1e} | {refresh * 1e3:.2f} | {create * 1e3:.2f} |",
                  flush=True)
    print(f"load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
