"""HVP modes: per-product seconds per mode and model family, and top-5 eigenvalues of a
ResNet-18 with the default rule (`hvp_mode="auto"`) against each explicit mode, in one run.

Part 1, seconds per Hessian-vector product over the whole train split (fastest of
`ROUNDS` interleaved rounds; other jobs on a shared machine only ever add time), for one
column and per column of a block of 4, for:
  * autograd — double backward, gradient graph kept per batch (the rule's choice);
  * reverse — torch.func vjp∘grad, pullback kept per batch, one column without vmap;
  * reverse, as before — the path before this change: a fresh vjp∘grad (forward and first
    backward) for every product and vmap even over a single column;
  * forward — torch.func jvp∘grad (nothing can be kept: v enters the forward pass).
Models: the bundled digits MLP and CNN (float32), the ResNet-18 of landscape.zoo (width 8,
256 CIFAR-shaped examples, float32), and the small LSTM and transformer of tests/models.py.

Part 2, top-5 eigenvalues (block 1, relative residual 1e-4, float32) of that ResNet:
operator construction + Lanczos wall time, HVPs and the largest relative error against a
tight-tolerance reference (autograd, float32, tol 1e-6) — for auto and every explicit mode.
Then the peers (benchmarks/peers.py: PyHessian, hessian-eigenthings, curvlinops + eigsh) on
the same model, batches, loss and dtype, against the same reference, ours (auto) first.

Run: PYTHONPATH=. python benchmarks/bench_hvp.py [--top5] [model-name prefixes]   (one torch thread;
--top5: part 2 and the peers only)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import grad, vjp, vmap

from benchmarks import peers
from benchmarks.machine import cpu_model
from landscape import zoo
from landscape.curvature import HessianOperator
from landscape.curvature.operators import differentiable_attention
from landscape.linalg import EigenResult, lanczos
from landscape.loading import load_problem
from landscape.params import unflatten_columns
from landscape.problem import Problem
from tests import models

ROUNDS = 3
PEER_HVP_CAP = 100  # eigsh at its default tol 0 (float64 machine precision) on a float32 operator
WIDTH, EXAMPLES = 8, 256


def resnet(dtype: torch.dtype = torch.float32) -> Problem:
    torch.manual_seed(0)
    return Problem.create(zoo.resnet18_cifar(width=WIDTH), F.cross_entropy,
                          zoo.cifar_shaped(examples=EXAMPLES), dtype=dtype)


def problems() -> dict[str, Problem]:
    return {
        "digits MLP": load_problem("data/digits_mlp.pt", device="cpu")[0],
        "digits CNN (BatchNorm)": load_problem("data/digits_cnn.pt", device="cpu")[0],
        f"ResNet-18 w{WIDTH} ({EXAMPLES} ex.)": resnet(),
        "LSTM (tests/models.py)": Problem.create(models.lstm(), F.cross_entropy, models.sequence_data()),
        "transformer (tests/models.py)": Problem.create(models.transformer(), F.cross_entropy,
                                                        models.token_data()),
    }


def reverse_as_before(problem: Problem, vectors: torch.Tensor) -> torch.Tensor:
    """The torch.func reverse path before this change: setup per product, always vmapped."""
    total = torch.zeros_like(vectors)
    n = problem.num_examples()
    for batch in problem.batches():
        pullback = vjp(grad(lambda p, batch=batch: problem.batch_loss(p, batch)), problem.params)[1]
        block = unflatten_columns(vectors, problem.params)
        out = vmap(lambda v, pullback=pullback: pullback(v)[0])(block)
        total += (batch.size / n) * torch.cat([out[k].reshape(vectors.shape[1], -1) for k in problem.params], 1).T
    return total


def seconds(task: Callable[[], object]) -> float:
    start = time.perf_counter()
    task()
    return time.perf_counter() - start


def per_hvp_rows(name: str, problem: Problem) -> list[str]:
    with differentiable_attention():
        return timed_rows(name, problem)


def timed_rows(name: str, problem: Problem) -> list[str]:
    ops = {"autograd": HessianOperator(problem, hvp_mode="autograd"),
           "reverse": HessianOperator(problem, hvp_mode="reverse"),
           "forward": HessianOperator(problem, hvp_mode="forward")}
    size = ops["autograd"].size
    gen = torch.Generator().manual_seed(0)
    one = torch.randn(size, 1, generator=gen).to(problem.dtype)
    four = torch.randn(size, 4, generator=gen).to(problem.dtype)
    tasks: dict[str, Callable[[], object]] = {"gradient": problem.gradient}
    for mode, op in ops.items():
        tasks[f"{mode}/1"] = lambda op=op: op.matmat(one)
        tasks[f"{mode}/4"] = lambda op=op: op.matmat(four)
    tasks["before/1"] = lambda: reverse_as_before(problem, one)
    tasks["before/4"] = lambda: reverse_as_before(problem, four)
    best = {key: seconds(task) for key, task in tasks.items()}  # warm-up, graphs built
    for _ in range(ROUNDS):
        for key, task in tasks.items():
            best[key] = min(best[key], seconds(task))
    rows = []
    for mode, label in (("autograd", "autograd (rule)"), ("reverse", "reverse"),
                        ("before", "reverse, as before"), ("forward", "forward")):
        if mode in ops and ops[mode].hvp_mode != mode:
            rows.append(f"| {name} | {label} | n/a ({ops[mode].mode_note[:60]}) | | | |")
            continue
        single, block = best[f"{mode}/1"], best[f"{mode}/4"] / 4
        rows.append(f"| {name} ({size:,} params) | {label} | {single * 1e3:.1f} | {block * 1e3:.1f} | "
                    f"{single / best['gradient']:.2f} | {single / best['autograd/1']:.2f} |")
    return rows


def top5_rows(reference: EigenResult) -> list[str]:
    problem = resnet()
    rows = []
    for mode in ("auto", "autograd", "reverse", "forward"):
        start = time.perf_counter()
        op = HessianOperator(problem, hvp_mode=mode)  # type: ignore[arg-type]
        built = time.perf_counter() - start
        result = lanczos(op, 5, "LA", tol=1e-4)
        total = time.perf_counter() - start
        error = float(((result.eigenvalues.double() - reference.eigenvalues) / reference.eigenvalues).abs().max())
        rows.append(f"| {mode} → {op.hvp_mode} | {built:.1f} | {total:.1f} | {result.num_matvecs} | "
                    f"{total / result.num_matvecs:.2f} | {error:.1e} |")
    rows.append(f"| reference (float32, autograd, tol 1e-6) | | | {reference.num_matvecs} | | 0 |")
    return rows


def peer_rows(reference: EigenResult) -> list[str]:
    """The peers on the same seeded ResNet, the same 256 examples in batches of 128, cross
    entropy, float32; ours (auto, default tolerance 1e-4) first, timed like them."""
    torch.manual_seed(0)
    model = zoo.resnet18_cifar(width=WIDTH)
    batches = zoo.cifar_shaped(examples=EXAMPLES)["train"]
    loss = torch.nn.CrossEntropyLoss()  # = F.cross_entropy; curvlinops needs a module
    start = time.perf_counter()
    ours = lanczos(HessianOperator(resnet(), hvp_mode="auto"), 5, "LA", tol=1e-4)
    runs = [peers.PeerRun("landscape (ours)", "hvp_mode auto, block Lanczos, tol 1e-4",
                          np.sort(ours.eigenvalues.numpy())[::-1], time.perf_counter() - start, ours.num_matvecs,
                          "eval (ours)"),
            peers.pyhessian(model, loss, batches),
            peers.eigenthings(model, loss, batches),
            peers.eigenthings(model, loss, batches, max_iter=30),
            peers.eigenthings(model, loss, batches, train=True),
            peers.curvlinops(model, loss, batches, tol=1e-4),
            peers.curvlinops(model, loss, batches, max_hvps=PEER_HVP_CAP)]
    return peers.rows(runs, reference.eigenvalues.numpy())


def main() -> None:
    torch.set_num_threads(1)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread, load {os.getloadavg()[0]:.1f}")
    print("| model | mode | ms per HVP (1 column) | ms per HVP (block of 4, per column) "
          "| 1 column ÷ gradient | 1 column ÷ autograd |")
    print("| --- | --- | --- | --- | --- | --- |")
    arguments = sys.argv[1:]
    top5_only = "--top5" in arguments
    chosen = [a for a in arguments if a != "--top5"] or list(problems())
    for name, problem in problems().items():
        if top5_only or not any(name.startswith(c) for c in chosen):
            continue
        print("\n".join(per_hvp_rows(name, problem)), flush=True)
    print(f"\nload {os.getloadavg()[0]:.1f}")
    reference = lanczos(HessianOperator(resnet(), hvp_mode="autograd"), 5, "LA", tol=1e-6)
    print("reference eigenvalues: " + ", ".join(f"{v:.6g}" for v in reference.eigenvalues.tolist()))
    print("| hvp_mode | construction s | construction + Lanczos s | HVPs | s per HVP | max rel. error |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(top5_rows(reference)), flush=True)
    print(f"load {os.getloadavg()[0]:.1f}")
    print("| library | method, settings | BatchNorm | s | HVPs | s per HVP | max rel. error | eigenvalues |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(peer_rows(reference)))
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
