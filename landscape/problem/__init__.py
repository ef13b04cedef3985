"""The Problem and its parts (see :mod:`landscape.problem.problem`).

| module          | owns                                                              |
| --------------- | ----------------------------------------------------------------- |
| ``problem``     | :class:`Problem`: the record (model, θ*, buffers, loss, splits,   |
|                 | device, dtype, policies), ``create`` and thin methods              |
| ``data``        | :class:`Batch`, ``make_batch``, reading / moving / merging batches |
| ``splits``      | a split's batches cached on the device or streamed; ``data_mode``  |
| ``evaluate``    | :class:`Evaluator`: metrics at many points, chunking, vmap / loop  |
| ``batchnorm``   | BatchNorm detection, running statistics at other parameters        |
| ``torchscript`` | ScriptModule → FX graph conversion                                 |

The names other modules import from ``landscape.problem`` stay importable from here.
"""

from ..params import Params, flatten, unflatten
from .data import TARGET_KEYS, Batch, make_batch
from .data import merge_batches as _merge  # noqa: F401  (kept for tests/test_surface.py)
from .evaluate import EVAL_MODES, MERGED_BATCH_BYTES, EvalMode, Evaluator
from .problem import BNPolicy, LossFn, MetricFn, Problem
from .splits import DATA_MODES, Batches, DataMode

__all__ = [
    "BNPolicy", "Batch", "Batches", "DATA_MODES", "DataMode", "EVAL_MODES", "EvalMode", "Evaluator", "LossFn",
    "MERGED_BATCH_BYTES",
    "MetricFn", "Params", "Problem", "TARGET_KEYS", "flatten", "make_batch", "unflatten",
]
