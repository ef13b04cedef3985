"""The noise analysis as a scan step writing the HDF5 group ``noise``."""

from __future__ import annotations

from typing import Any

from ..errors import LandscapeError
from ..memory import require_fits
from ..per_example import select_examples
from ..problem import Problem
from ..scan import ScanStep
from ..store import ResultsWriter
from .analysis import GROUP, gradient_noise
from .covariance import minibatch_scales

DEFAULT_EXAMPLES = 1024


def resolve_examples(problem: Problem, examples: int | None, split: str) -> int | None:
    """``None`` means min(1024, size of the split); anything else is checked by the analysis."""
    if examples is None:
        return min(DEFAULT_EXAMPLES, problem.num_examples(split))
    return examples


def check_noise(problem: Problem, examples: int | None, batch_size: int, *, split: str = "train",
                seed: int = 0, two_batch_sizes: tuple[int, int] | None = None) -> None:
    """The analysis's own checks of its sizes, run before any results file exists, plus the
    memory of the per-example gradient matrix."""
    num_examples = int(select_examples(problem, resolve_examples(problem, examples, split), split, seed).numel())
    minibatch_scales(batch_size, problem.num_examples(split))
    if two_batch_sizes is not None and not 1 <= two_batch_sizes[0] < two_batch_sizes[1]:
        raise LandscapeError(f"--two-batch-sizes {two_batch_sizes[0]} {two_batch_sizes[1]}: give SMALL < BIG")
    dim = sum(p.numel() for p in problem.params.values())
    require_fits(num_examples * dim * problem.params[next(iter(problem.params))].element_size(),
                 f"gradient noise ({num_examples} per-example gradients of {dim} parameters)",
                 "use fewer --examples")


def noise_step(examples: int | None, batch_size: int, *, k: int = 10, split: str = "train",
               seed: int = 0, hessian: bool = True, **options: Any) -> ScanStep:
    """Compute :func:`gradient_noise` into group ``noise`` unless a finished one is there."""
    def check(problem: Problem) -> None:
        check_noise(problem, examples, batch_size, split=split, seed=seed,
                    two_batch_sizes=options.get("two_batch_sizes"))

    def run(problem: Problem, writer: ResultsWriter) -> None:
        num_examples = resolve_examples(problem, examples, split)
        if writer.has_group(GROUP, {"num_examples": num_examples, "batch_size": batch_size, "split": split,
                                    "seed": seed, "hessian_computed": hessian}):
            return
        result = gradient_noise(problem, examples=num_examples,
                                batch_size=batch_size, k=k, split=split, seed=seed, hessian=hessian,
                                **options)
        attrs, arrays = result.to_group()
        writer.write_group(GROUP, attrs, arrays)
    return ScanStep(GROUP, run, check)
