"""Curvature benchmark: top-k Hessian eigenvalues of the bundled digits MLP, side by side.

In one process on the same operator (the float64 Hessian of the empirical risk over the
1,437 training examples):
  * ours: thick-restart Lanczos (block sizes 1, 2, 4) to relative Ritz residual 1e-6;
  * scipy ``eigsh`` (ARPACK) on the same operator (``op.to_scipy()``), tol 1e-6
    (ARPACK's criterion is the same: ‖r‖ ≤ tol·|θ|);
  * PyHessian-style power iteration (written here): deflated power iteration per
    eigenvalue, stop when the eigenvalue changes by < 1e-3 relative, at most 100 steps.
Reference eigenvalues: ARPACK at tol 1e-13. Then HVP time ÷ gradient time for the bundled
MLP and CNN in their own dtype (float32), reverse-over-reverse and forward-over-reverse.

Run: PYTHONPATH=. python benchmarks/bench_curvature.py
"""

from __future__ import annotations

import platform
import time

import numpy as np
import scipy.sparse.linalg as sla
import torch

from landscape.curvature import HessianOperator
from landscape.linalg import lanczos
from landscape.loading import load_problem
from landscape.problem import Problem


def arpack(op: HessianOperator, k: int, tol: float, ncv: int | None = None) -> tuple[np.ndarray, int, int, float]:
    op.reset_counters()
    start = time.perf_counter()
    values = sla.eigsh(op.to_scipy(), k=k, which="LA", tol=tol, return_eigenvectors=False, ncv=ncv,
                       v0=np.random.default_rng(0).standard_normal(op.size))
    return np.sort(values)[::-1], op.num_matvecs, op.num_data_passes, time.perf_counter() - start


def power_iteration(op: HessianOperator, k: int, tol: float = 1e-3, max_iter: int = 100
                    ) -> tuple[np.ndarray, int, float]:
    """PyHessian's recipe: for each eigenvalue, power iteration deflated against the
    eigenvectors found so far; stop when |Δλ| < tol·|λ|."""
    gen = torch.Generator().manual_seed(0)
    op.reset_counters()
    start = time.perf_counter()
    found: list[torch.Tensor] = []
    values = []
    for _ in range(k):
        v = torch.randn(op.size, generator=gen, dtype=torch.float64)
        value = None
        for _ in range(max_iter):
            for u in found:
                v = v - (u @ v) * u
            v = v / v.norm()
            hv = op.matvec(v)
            new = float(v @ hv)
            v = hv
            if value is not None and abs(new - value) < tol * abs(value) + 1e-12:
                value = new
                break
            value = new
        found.append(v / v.norm())
        values.append(value)
    return np.array(values), op.num_matvecs, time.perf_counter() - start


def rel_err(values: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(values - reference[: len(values)]) / np.abs(reference[: len(values)])))


def eigen_table(problem: Problem) -> list[str]:
    op = HessianOperator(problem, hvp_mode="autograd", cache_graphs=False)  # one HVP implementation for all
    rows = ["| k | method | HVPs | data passes | wall s | max rel. error | converged |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    reference, *_ = arpack(op, 12, 1e-13)
    for k in (5, 10):
        values, hvps, passes, seconds = arpack(op, k, 1e-6)
        rows.append(f"| {k} | scipy eigsh (ARPACK, default ncv={max(2 * k + 1, 20)}) | {hvps} | {passes} | "
                    f"{seconds:.2f} | {rel_err(values, reference):.1e} | yes |")
        basis = max(3 * k, 20) + 1  # our default basis for block 1
        values, hvps, passes, seconds = arpack(op, k, 1e-6, ncv=basis)
        rows.append(f"| {k} | scipy eigsh (ARPACK, ncv={basis} = our basis) | {hvps} | {passes} | "
                    f"{seconds:.2f} | {rel_err(values, reference):.1e} | yes |")
        for block in (1, 2, 4):
            op.reset_counters()
            start = time.perf_counter()
            result = lanczos(op, k, "LA", tol=1e-6, block_size=block)
            seconds = time.perf_counter() - start
            rows.append(f"| {k} | ours, block {block} | {result.num_matvecs} | {result.num_data_passes} | "
                        f"{seconds:.2f} | {rel_err(result.eigenvalues.numpy(), reference):.1e} | "
                        f"{'yes' if result.all_converged else 'NO'} (max res. {float(result.residuals.max()):.1e}) |")
        values, hvps, seconds = power_iteration(op, k)
        errors = np.abs(values - reference[:k]) / np.abs(reference[:k])
        rows.append(f"| {k} | power iteration (tol 1e-3) | {hvps} | {hvps} | {seconds:.2f} | "
                    f"{errors.max():.1e} (λ2–λ5: {errors[1:5].max():.1e}) | n/a |")
    return rows


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hvp_ratio_rows(name: str, problem: Problem, rounds: int = 15) -> list[str]:
    """Gradient and every HVP mode timed in interleaved rounds; the fastest round of each
    is kept (other jobs on a shared machine only ever add time, and interleaving exposes
    every candidate to the same conditions)."""
    ops = {mode: HessianOperator(problem, hvp_mode=mode, cache_graphs=False)
           for mode in ("reverse", "forward", "autograd")}
    ops["autograd, graph cached"] = HessianOperator(problem, hvp_mode="autograd", cache_graphs=True)
    ops["auto"] = HessianOperator(problem, hvp_mode="auto")
    size = ops["reverse"].size
    v = torch.randn(size, dtype=problem.dtype, generator=torch.Generator().manual_seed(0))
    block = torch.randn(size, 10, dtype=problem.dtype, generator=torch.Generator().manual_seed(1))
    tasks = {"gradient": lambda: problem.gradient()}
    for mode, op in ops.items():
        tasks[f"{mode}/1"] = lambda op=op: op.matvec(v)
        tasks[f"{mode}/10"] = lambda op=op: op.matmat(block)
    best = {key: min(seconds(task) for _ in range(1)) for key, task in tasks.items()}  # warm-up
    for _ in range(rounds):
        for key, task in tasks.items():
            best[key] = min(best[key], seconds(task))
    gradient = best["gradient"]
    rows = []
    for mode, op in ops.items():
        label = mode if mode != "auto" else f"auto → {op.hvp_mode}"
        single, batched = best[f"{mode}/1"], best[f"{mode}/10"] / 10
        rows.append(f"| {name} ({size:,} params, {problem.dtype}) | {label} | {gradient * 1e3:.1f} | "
                    f"{single * 1e3:.1f} | {single / gradient:.2f} | {batched / gradient:.2f} |")
    return rows


def main(tables: str = "all") -> None:
    # one thread: on a shared 2-core machine two intra-op threads contend with other jobs and
    # wall times swing by 10×; one thread gives stable ratios
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    mlp64, _ = load_problem("data/digits_mlp.pt", dtype=torch.float64, device="cpu")
    print(f"digits MLP: {sum(p.numel() for p in mlp64.params.values()):,} parameters, "
          f"{mlp64.num_examples('train')} training examples, float64, relative residual 1e-6")
    if tables in ("all", "eigen"):
        print("\n".join(eigen_table(mlp64)))
    if tables == "eigen":
        return
    print()
    print("| model | HVP mode | gradient ms | HVP ms | HVP ÷ gradient "
          "| batched HVP (10 per pass) ÷ gradient, per vector |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("digits_mlp", "digits_cnn"):
        problem, _ = load_problem(f"data/{name}.pt", device="cpu")
        print("\n".join(hvp_ratio_rows(name, problem)))


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else "all")
