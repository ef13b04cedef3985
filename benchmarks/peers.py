"""Top-5 Hessian eigenvalues by the peer libraries, each on its own copy of one model and the
same batches, loss and dtype, with its Hessian-vector products counted.

Every peer gets a deep copy in eval mode (BatchNorm running statistics, as `Problem` uses),
unless a row asks for train mode; PyHessian sets eval mode itself (on the model it is given).
Benchmark-only dependencies (`pip install .[bench]`): a peer that does not import or run
returns a `PeerRun` holding the error instead of eigenvalues.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

Batches = Sequence[tuple[Tensor, Tensor]]
Loss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class PeerRun:
    name: str
    settings: str
    eigenvalues: np.ndarray | None  # descending; None when the peer failed
    seconds: float
    hvps: int | None
    bn_mode: str  # "eval" or "train": which Hessian the peer's products are of
    error: str = ""


def copy_in_mode(model: nn.Module, train: bool) -> nn.Module:
    return copy.deepcopy(model).train(train)


def timed(name: str, settings: str, bn_mode: str, task: Callable[[], tuple[np.ndarray, int | None]]) -> PeerRun:
    """Run a peer once; an import or runtime failure becomes a row, not a crash."""
    torch.manual_seed(0)  # the peers draw their start vectors from the global generator
    start = time.perf_counter()
    try:
        values, hvps = task()
    except Exception as error:  # noqa: BLE001 - any failure of a peer is reported as its row
        return PeerRun(name, settings, None, time.perf_counter() - start, None, bn_mode,
                       f"{type(error).__name__}: {str(error).splitlines()[0][:80]}")
    return PeerRun(name, settings, np.sort(values)[::-1], time.perf_counter() - start, hvps, bn_mode)


def pyhessian(model: nn.Module, loss: Loss, batches: Batches) -> PeerRun:
    """PyHessian's `hessian(...).eigenvalues(top_n=5)`: deflated power iteration, defaults
    tol 1e-3 (relative change of the Rayleigh quotient) and maxIter 100 per eigenvalue; each
    product is a double backward over the whole dataloader, graph rebuilt every time."""
    def task() -> tuple[np.ndarray, int | None]:
        from pyhessian import hessian

        engine = hessian(copy_in_mode(model, train=False), loss, dataloader=batches, cuda=False)
        calls = [0]
        product = engine.dataloader_hv_product

        def counted(v: list[Tensor]) -> tuple[float, list[Tensor]]:
            calls[0] += 1
            return product(v)

        engine.dataloader_hv_product = counted
        values, _ = engine.eigenvalues(top_n=5)
        return np.array(values), calls[0]

    return timed("PyHessian 0.1", "power iteration, tol 1e-3, maxIter 100 (defaults)", "eval (sets it)", task)


def eigenthings(model: nn.Module, loss: Loss, batches: Batches, train: bool = False,
                max_iter: int | None = None) -> PeerRun:
    """hessian-eigenthings' `HessianOperator` + `lanczos(k=5, which="LA")`: one Lanczos run of
    `max_iter` steps (default 2k = 10), full reorthogonalization, no restart; each product a
    double backward per batch, graph rebuilt every time, batches averaged unweighted."""
    def task() -> tuple[np.ndarray, int | None]:
        from hessian_eigenthings import HessianOperator, lanczos, supervised_loss

        op = HessianOperator(copy_in_mode(model, train), list(batches), supervised_loss(loss))
        calls = [0]
        product = op.matvec

        def counted(v: Tensor) -> Tensor:
            calls[0] += 1
            return product(v)

        op.matvec = counted  # type: ignore[method-assign]
        result = lanczos(op, k=5, which="LA", seed=0, max_iter=max_iter)
        return result.eigenvalues.double().numpy(), calls[0]

    steps = f"max_iter {max_iter}" if max_iter else "max_iter 2k = 10 (default)"
    mode = "train (model as built)" if train else "eval (ours)"
    return timed("hessian-eigenthings 1.0.0a5", f"Lanczos, {steps}", mode, task)


def curvlinops(model: nn.Module, loss: nn.Module, batches: Batches, tol: float = 0.0,
               max_hvps: int | None = None) -> PeerRun:
    """curvlinops' `HessianLinearOperator(...).to_scipy()` + `scipy.sparse.linalg.eigsh(k=5,
    which="LA", tol)`: products are torch.func jvp∘jacrev, vmapped over columns, per batch;
    the construction's determinism check (two passes) is included and counted. eigsh's
    default tol 0 means float64 machine precision, which a float32 operator cannot reach:
    `max_hvps` stops the run there (reported as not converged). The loss must be a module
    (curvlinops reads its `reduction`)."""
    def task() -> tuple[np.ndarray, int | None]:
        from curvlinops import HessianLinearOperator
        from scipy.sparse.linalg import LinearOperator, eigsh

        class Counted(HessianLinearOperator):  # type: ignore[misc]
            columns = 0

            def _matmat(self, M: list[Tensor]) -> list[Tensor]:
                Counted.columns += M[0].shape[-1]
                if max_hvps is not None and Counted.columns > max_hvps:
                    raise RuntimeError(f"not converged within {max_hvps} HVPs (cap of this benchmark)")
                return super()._matmat(M)

        copied = copy_in_mode(model, train=False)
        params = [p for p in copied.parameters() if p.requires_grad]
        scipy_op = Counted(copied, loss, params, list(batches)).to_scipy()
        counted = LinearOperator(scipy_op.shape, matvec=scipy_op.matvec, dtype=np.float64)
        values = eigsh(counted, k=5, which="LA", tol=tol, return_eigenvectors=False)
        return values, Counted.columns

    settings = f"eigsh, tol {tol:g}" + (" (default: machine precision)" if tol == 0 else "")
    return timed("curvlinops 3.0.1", settings, "eval (ours)", task)


def rows(runs: Sequence[PeerRun], reference: np.ndarray) -> list[str]:
    """Markdown rows: peer, settings, BN mode, s, HVPs, s per HVP, max rel. error, eigenvalues."""
    reference = np.sort(reference)[::-1]
    lines = []
    for run in runs:
        if run.eigenvalues is None:
            lines.append(f"| {run.name} | {run.settings} | {run.bn_mode} | {run.seconds:.1f} | "
                         f"{run.hvps if run.hvps is not None else ''} | | failed: {run.error} | |")
            continue
        error = float(np.max(np.abs(run.eigenvalues - reference) / np.abs(reference)))
        per = f"{run.seconds / run.hvps:.2f}" if run.hvps else ""
        values = ", ".join(f"{v:.4g}" for v in run.eigenvalues)
        lines.append(f"| {run.name} | {run.settings} | {run.bn_mode} | {run.seconds:.1f} | "
                     f"{run.hvps if run.hvps is not None else 'n/a'} | {per} | {error:.1e} | {values} |")
    return lines
