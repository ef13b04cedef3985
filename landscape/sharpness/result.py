"""What every sharpness measure returns: one frozen record, stored as one HDF5 group."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SharpnessResult:
    """One sharpness measure of one model.

    ``value`` is the measure (its definition is in ``description``), ``stderr`` its standard
    error where it is an average over random draws (NaN otherwise). ``samples`` are the
    per-draw, per-restart, per-batch or per-ray values behind it. ``parameters`` are the
    settings it was computed with (radius, steps, seed, split ...). Cost is counted in full
    passes over the data: ``gradient_evaluations`` (loss and gradient) and
    ``loss_evaluations`` (loss only). ``rescaling_invariant`` says whether the measure is
    unchanged when one ReLU layer is scaled by α and the next by 1/α. ``converged`` is False
    when the optimizer behind a worst case stopped short (see ``notes``).
    """

    name: str
    value: float
    baseline_loss: float
    description: str
    parameters: Mapping[str, Any]
    rescaling_invariant: bool
    gradient_evaluations: int
    loss_evaluations: int = 0
    seconds: float = 0.0
    stderr: float = float("nan")
    converged: bool = True
    notes: str = ""
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curves: Mapping[str, np.ndarray] = field(default_factory=dict)

    def value_text(self) -> str:
        """``value ± stderr`` (4 and 2 significant digits; no ± where there is no standard error)."""
        return f"{self.value:.4g}" + (f" ± {self.stderr:.2g}" if math.isfinite(self.stderr) else "")

    def attrs(self) -> dict[str, Any]:
        """Scalars as HDF5 attributes (parameters prefixed ``param_``)."""
        return {"name": self.name, "value": self.value, "stderr": self.stderr,
                "baseline_loss": self.baseline_loss, "description": self.description,
                "rescaling_invariant": self.rescaling_invariant, "converged": self.converged,
                "gradient_evaluations": self.gradient_evaluations,
                "loss_evaluations": self.loss_evaluations, "seconds": self.seconds, "notes": self.notes,
                **{f"param_{k}": v for k, v in self.parameters.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        """``samples`` and any curves (e.g. the loss along each ray) as datasets."""
        return {"samples": np.asarray(self.samples, dtype=np.float64),
                **{k: np.asarray(v, dtype=np.float64) for k, v in self.curves.items()}}

    @classmethod
    def from_group(cls, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> SharpnessResult:
        """Inverse of :meth:`attrs`/:meth:`arrays` (as read back from the file)."""
        params = {k.removeprefix("param_"): v for k, v in attrs.items() if k.startswith("param_")}
        curves = {k: np.asarray(v) for k, v in arrays.items() if k != "samples"}
        return cls(name=str(attrs["name"]), value=float(attrs["value"]), stderr=float(attrs["stderr"]),
                   baseline_loss=float(attrs["baseline_loss"]), description=str(attrs["description"]),
                   parameters=params, rescaling_invariant=bool(attrs["rescaling_invariant"]),
                   converged=bool(attrs["converged"]), gradient_evaluations=int(attrs["gradient_evaluations"]),
                   loss_evaluations=int(attrs["loss_evaluations"]), seconds=float(attrs["seconds"]),
                   notes=str(attrs.get("notes", "")), samples=np.asarray(arrays.get("samples", np.zeros(0))),
                   curves=curves)
