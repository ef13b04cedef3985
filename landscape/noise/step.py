"""The noise analysis as a scan step writing the HDF5 group ``noise``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import LandscapeError
from ..memory import require_fits
from ..options import option
from ..per_example import select_examples
from ..problem import Problem
from ..scan import ScanStep
from ..store import ResultsWriter
from .analysis import GROUP, gradient_noise
from .covariance import minibatch_scales

DEFAULT_EXAMPLES = 1024


@dataclass(frozen=True)
class NoiseConfig:
    """What :func:`gradient_noise` measures; each field is also the CLI option of the same
    name (``landscape noise --k 5``, ``landscape scan --noise --noise-k 5``)."""

    examples: int | None = option(None, "examples whose per-example gradients form Σ "
                                  f"(default: min({DEFAULT_EXAMPLES}, split size))", minimum=2, metavar="N")
    batch_size: int | None = option(None, "SGD mini-batch size B the noise is reported for (Σ/B, tail "
                                    "index) (default: the training batch size the checkpoint records)",
                                    minimum=1, metavar="B")
    k: int = option(10, "top eigenvalues of Σ (and of H) to compute", minimum=1, metavar="K")
    split: str = option("train", "data split the noise is measured on")
    hessian: bool = option(True, "skip tr(HΣ), B_noise and the Σ/H eigenspace overlap (they need HVPs "
                           "over the split)", negative_flag="no-hessian")
    two_batch_sizes: tuple[int, int] | None = option(None, "batch sizes of McCandlish's two-batch estimator "
                                                     "(default: B and 4B)", minimum=1, metavar=("SMALL", "BIG"))
    gradient_method: Literal["auto", "vmap", "loop"] = option(
        "auto", "per-example gradients: vmap, a loop of single examples, or auto (vmap, falling back to the "
        "loop where the model has no batching rule)")
    seed: int = 0


def resolve_examples(problem: Problem, examples: int | None, split: str) -> int:
    """``None`` means min(1024, size of the split); anything else is checked by the analysis."""
    if examples is None:
        return min(DEFAULT_EXAMPLES, problem.num_examples(split))
    return examples


def check_noise(problem: Problem, config: NoiseConfig) -> None:
    """The analysis's own checks of its sizes, run before any results file exists, plus the
    memory of the per-example gradient matrix."""
    split = config.split
    if config.batch_size is None:
        raise LandscapeError("noise: pass --batch-size B (the SGD mini-batch size the noise is for); "
                             "the checkpoint records no training batch size")
    examples = resolve_examples(problem, config.examples, split)
    num_examples = int(select_examples(problem, examples, split, config.seed).numel())
    minibatch_scales(config.batch_size, problem.num_examples(split))
    pair = config.two_batch_sizes
    if pair is not None and not 1 <= pair[0] < pair[1]:
        raise LandscapeError(f"--two-batch-sizes {pair[0]} {pair[1]}: give SMALL < BIG")
    dim = sum(p.numel() for p in problem.params.values())
    require_fits(num_examples * dim * next(iter(problem.params.values())).element_size(),
                 f"gradient noise ({num_examples} per-example gradients of {dim} parameters)",
                 "use fewer --examples")


def noise_step(config: NoiseConfig) -> ScanStep:
    """Compute :func:`gradient_noise` into group ``noise`` unless a finished one is there."""
    def run(problem: Problem, writer: ResultsWriter) -> None:
        assert config.batch_size is not None  # check_noise ran first
        num_examples = resolve_examples(problem, config.examples, config.split)
        if writer.has_group(GROUP, {"num_examples": num_examples, "batch_size": config.batch_size,
                                    "split": config.split, "seed": config.seed,
                                    "hessian_computed": config.hessian}):
            return
        result = gradient_noise(problem, examples=num_examples, batch_size=config.batch_size, k=config.k,
                                split=config.split, seed=config.seed, hessian=config.hessian,
                                two_batch_sizes=config.two_batch_sizes, gradient_method=config.gradient_method)
        attrs, arrays = result.to_group()
        writer.write_group(GROUP, attrs, arrays)
    return ScanStep(GROUP, run, lambda problem: check_noise(problem, config))
