"""The noise analysis as a scan step writing the HDF5 group ``noise``."""

from __future__ import annotations

from typing import Any

from ..problem import Problem
from ..scan import ScanStep
from ..store import ResultsWriter
from .analysis import GROUP, gradient_noise

DEFAULT_EXAMPLES = 1024


def resolve_examples(problem: Problem, examples: int | None, split: str) -> int | None:
    """``None`` means min(1024, size of the split); anything else is checked by the analysis."""
    if examples is None:
        return min(DEFAULT_EXAMPLES, problem.num_examples(split))
    return examples


def noise_step(examples: int | None, batch_size: int, *, k: int = 10, split: str = "train",
               seed: int = 0, hessian: bool = True, **options: Any) -> ScanStep:
    """Compute :func:`gradient_noise` into group ``noise`` unless a finished one is there."""
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
    return ScanStep(GROUP, run)
