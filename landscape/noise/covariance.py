"""The gradient covariance Σ and the statistics built from it.

With per-example gradients g_1..g_n (rows of G) and their mean ḡ,

    Σ = (1/n) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ = G_cᵀ G_c / n,   G_c = G − 1ḡᵀ,

normalized by n (not n − 1): with all N examples of a split it is exactly the covariance
of the gradient of one example drawn uniformly from the dataset. Nothing here builds the
d×d matrix: the spectrum comes from the n×n Gram matrix G_c G_cᵀ/n (same nonzero
eigenvalues) when n is small, and from Lanczos on v ↦ G_cᵀ(G_c v)/n when it is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import LandscapeError
from ..linalg.lanczos import EigenResult, lanczos, relative_residuals
from ..linalg.operators import LinearOperator

GRAM_MAX_EXAMPLES = 2048


class CovarianceOperator(LinearOperator):
    """Σ = G_cᵀG_c/n as a :class:`~landscape.linalg.LinearOperator`: ``matvec``/``matmat``
    without forming d×d."""

    name = "gradient_covariance"

    def __init__(self, centered: Tensor, mean: Tensor) -> None:
        super().__init__(int(centered.shape[1]), centered.dtype, centered.device)
        self.centered = centered  # G_c [n, d]
        self.mean = mean  # ḡ [d]

    @classmethod
    def from_gradients(cls, matrix: Tensor) -> CovarianceOperator:
        """Σ of the per-example gradients in the rows of ``matrix`` [n ≥ 2, d]."""
        if matrix.ndim != 2 or matrix.shape[0] < 2:
            raise LandscapeError(f"need at least 2 per-example gradients as rows, got shape {tuple(matrix.shape)}")
        mean = matrix.mean(0)
        return cls(matrix - mean, mean)

    @property
    def num_examples(self) -> int:
        """n, the examples Σ is taken over."""
        return int(self.centered.shape[0])

    @property
    def dim(self) -> int:
        """d, the number of parameters (``size``)."""
        return self.size

    def _matmat(self, vectors: Tensor) -> Tensor:
        return self.centered.T @ (self.centered @ vectors) / self.num_examples

    def trace(self) -> Tensor:
        """Tr Σ = mean_i ‖g_i − ḡ‖² (float64 scalar on the device)."""
        return self.centered.to(torch.float64).pow(2).sum() / self.num_examples

    def trace_stderr(self) -> Tensor:
        """Standard error of tr Σ as a sample mean of ‖g_i − ḡ‖² (sampling error only)."""
        sq = self.centered.to(torch.float64).pow(2).sum(1)
        return sq.std() / math.sqrt(self.num_examples)

    def gram(self) -> Tensor:
        """G_c G_cᵀ / n in float64, n×n."""
        c = self.centered.to(torch.float64)
        return c @ c.T / self.num_examples


def covariance_spectrum(op: CovarianceOperator, k: int, *, method: str = "auto",
                        tol: float = 1e-8, seed: int = 0) -> EigenResult:
    """Top-k eigenpairs of Σ ("gram": exact via n×n eigh; "lanczos": the linear-algebra
    core's Lanczos on ``op``; "auto" picks by n), with eigenvectors.

    k is capped at n − 1, the rank of Σ after centering, and at d; the Gram method also
    stops at the numerical rank (eigenvalues above n·1e-13·λ_max).
    """
    k = max(1, min(k, op.num_examples - 1, op.dim))
    if method == "auto":
        method = "gram" if op.num_examples <= GRAM_MAX_EXAMPLES else "lanczos"
    if method == "lanczos":
        return lanczos(op, k, "LA", tol=tol, seed=seed, return_eigenvectors=True)
    if method != "gram":
        raise LandscapeError(f"spectrum method must be 'auto', 'gram' or 'lanczos', got {method!r}")
    values, vectors = torch.linalg.eigh(op.gram())
    # eigenvalues at round-off level belong to the null space (e.g. logit-gradient sums fixed
    # by softmax): their vectors are noise, so k stops at the numerical rank
    floor = float(values.max()) * op.num_examples * 1e-13
    rank = max(1, int((values > floor).sum()))
    order = torch.argsort(values, descending=True)[:min(k, rank)]
    values, vectors = values[order].clamp_min(0.0), vectors[:, order]
    # Σ v = λ v with v = G_cᵀu / √(nλ): the eigenvectors in parameter space, unit norm
    eigvecs = op.centered.to(torch.float64).T @ vectors
    eigvecs = eigvecs / eigvecs.norm(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    applied = op.centered.to(torch.float64).T @ (op.centered.to(torch.float64) @ eigvecs) / op.num_examples
    norms = (applied - eigvecs * values).norm(dim=0).cpu()
    values = values.cpu()
    return EigenResult(eigenvalues=values, residuals=relative_residuals(norms, values), residual_norms=norms,
                       converged=torch.ones(values.numel(), dtype=torch.bool), eigenvectors=eigvecs,
                       num_matvecs=0, num_data_passes=0, num_restarts=0, which="LA", tol=0.0,
                       block_size=0, basis_size=op.num_examples, seed=seed, method="gram")


# ---------------------------------------------------------------------------- mini-batches
def minibatch_scales(batch_size: int, dataset_size: int) -> tuple[float, float]:
    """Cov of a mini-batch mean gradient is scale·Σ: (with replacement, without replacement).

    With replacement: 1/B. Without replacement from N examples: (N − B) / (B (N − 1)),
    the finite-population correction (zero for B = N: full-batch GD has no noise).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LandscapeError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if batch_size > dataset_size:
        raise LandscapeError(f"--batch-size {batch_size} is larger than the dataset ({dataset_size} "
                             f"examples); use at most {dataset_size}")
    with_replacement = 1.0 / batch_size
    without = (dataset_size - batch_size) / (batch_size * (dataset_size - 1)) if dataset_size > 1 else 0.0
    return with_replacement, without


# ---------------------------------------------------------------------------- McCandlish et al.
@dataclass
class TwoBatchEstimate:
    """The unbiased two-batch-size estimates of |G|² and tr Σ (McCandlish et al. 2018, App. A).

    E|G_B|² = |G|² + tr Σ / B for a batch of B examples drawn with replacement, so from
    batches of sizes b_small < b_big

        |G|²  ≈ (b_big |G_big|² − b_small |G_small|²) / (b_big − b_small)
        tr Σ ≈ (|G_small|² − |G_big|²) / (1/b_small − 1/b_big)

    each unbiased; ``b_simple`` = tr Σ / |G|² is their ratio after averaging over
    ``num_pairs`` batch pairs (a ratio of unbiased estimates, so itself only consistent).
    """

    grad_norm_sq: float
    grad_norm_sq_stderr: float
    trace_sigma: float
    trace_sigma_stderr: float
    b_simple: float
    b_small: int
    b_big: int
    num_pairs: int


def batch_mean_norms_sq(matrix: Tensor, batch_size: int, num_batches: int,
                        generator: torch.Generator) -> Tensor:
    """|mean of a batch of rows|² for ``num_batches`` batches drawn with replacement."""
    n = matrix.shape[0]
    picks = torch.randint(n, (num_batches, batch_size), generator=generator)
    counts = torch.zeros(num_batches, n, dtype=torch.float64)
    counts.scatter_add_(1, picks, torch.ones(num_batches, batch_size, dtype=torch.float64))
    means = counts.to(matrix.device) @ matrix.to(torch.float64) / batch_size
    return means.pow(2).sum(1).cpu()


def two_batch_noise_scale(matrix: Tensor, b_small: int, b_big: int, *, num_pairs: int = 64,
                          generator: torch.Generator | None = None) -> TwoBatchEstimate:
    """McCandlish et al.'s estimator from batch gradients formed out of per-example rows."""
    if not 1 <= b_small < b_big:
        raise LandscapeError(f"the two batch sizes must satisfy 1 ≤ b_small < b_big, got {b_small}, {b_big}")
    if num_pairs < 2:
        raise LandscapeError(f"num_pairs must be ≥ 2 for a standard error, got {num_pairs}")
    generator = generator or torch.Generator().manual_seed(0)
    small = batch_mean_norms_sq(matrix, b_small, num_pairs, generator)
    big = batch_mean_norms_sq(matrix, b_big, num_pairs, generator)
    g2 = (b_big * big - b_small * small) / (b_big - b_small)
    s = (small - big) / (1.0 / b_small - 1.0 / b_big)
    root = math.sqrt(num_pairs)
    g2_mean, s_mean = float(g2.mean()), float(s.mean())
    return TwoBatchEstimate(g2_mean, float(g2.std()) / root, s_mean, float(s.std()) / root,
                            s_mean / g2_mean if g2_mean > 0 else math.nan, b_small, b_big, num_pairs)


# ---------------------------------------------------------------------------- tail index
def alpha_stable_tail_index(samples: Tensor, block: int | None = None) -> float:
    """Tail index α of iid symmetric α-stable samples (Mohammadi et al. 2015, Cor. 2.4).

    With K = K1·K2 samples X and block sums Y_i = Σ_{j ≤ K1} X_{(i−1)K1 + j},

        1/α̂ = (1/log K1) · ( mean_i log|Y_i| − mean_k log|X_k| ),

    the estimator Simsekli et al. (2019) applied to SGD noise. Exact zeros are dropped;
    K1 defaults to ⌊√K⌋. The result is clipped to (0, 2]. Returns NaN under 16 samples.
    """
    x = samples.reshape(-1).to(torch.float64)
    x = x[x != 0]
    total = x.numel()
    if total < 16:
        return math.nan
    k1 = block or int(math.isqrt(total))
    if not 2 <= k1 <= total // 2:
        raise LandscapeError(f"tail-index block size must be in [2, {total // 2}], got {k1}")
    k2 = total // k1
    x = x[: k1 * k2]
    y = x.view(k2, k1).sum(1)
    y = y[y != 0]
    inv_alpha = (y.abs().log().mean() - x.abs().log().mean()) / math.log(k1)
    inv = float(inv_alpha)
    return 2.0 if inv <= 0.5 else 1.0 / inv


def minibatch_noise_samples(matrix: Tensor, batch_size: int, generator: torch.Generator) -> Tensor:
    """Mini-batch gradient noise vectors (batch mean − ḡ) over disjoint random batches of the
    rows (one shuffled epoch, ⌊n/B⌋ batches), shape [⌊n/B⌋, d]."""
    n = matrix.shape[0]
    count = n // batch_size
    if count < 1:
        return matrix.new_zeros(0, matrix.shape[1])
    order = torch.randperm(n, generator=generator)[: count * batch_size].to(matrix.device)
    batches = matrix[order].view(count, batch_size, -1).mean(1)
    return batches - matrix.mean(0)


def noise_tail_index(matrix: Tensor, batch_size: int, *, generator: torch.Generator | None = None,
                     block: int | None = None) -> float:
    """Simsekli et al.'s α̂ on every component of the mini-batch noise vectors, pooled.

    The components are shuffled before blocking so a block does not sit inside one layer.
    NaN when fewer than one batch of noise (B ≥ n) or too few nonzero components.
    """
    generator = generator or torch.Generator().manual_seed(0)
    noise = minibatch_noise_samples(matrix, batch_size, generator)
    if noise.numel() == 0:
        return math.nan
    flat = noise.reshape(-1).cpu()
    flat = flat[torch.randperm(flat.numel(), generator=generator)]
    return alpha_stable_tail_index(flat, block)
