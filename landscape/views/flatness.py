"""Reading sharpness measures and connecting lines back from a results file.

A ``compare`` file holds several models (``models/c0, c1, ...``); a ``scan --sharpness`` file
holds one (``sharpness/c0``). Both read into one :class:`Comparison`. ``compare --ensemble``
adds the group ``ensemble`` (:func:`read_ensemble`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from ..sharpness.config import MEASURE_NAMES
from ..sharpness.ensembles import SplitComparison
from ..sharpness.result import SharpnessResult
from ..store import open_results
from .reading import attrs_of, text_list


@dataclass
class ModelMeasures:
    """One model's label, its summary attributes (``models/<key>``) and its measures by name."""

    key: str
    label: str
    summary: dict[str, Any] = field(default_factory=dict)
    measures: dict[str, SharpnessResult] = field(default_factory=dict)


@dataclass
class Barrier:
    """The loss barrier of the line from one model to another, per split."""

    name: str
    first_label: str
    second_label: str
    values: dict[str, float]
    peak_at: dict[str, float]


@dataclass
class Comparison:
    """Every model's measures and every line's barrier found in a file."""

    models: list[ModelMeasures]
    barriers: list[Barrier]

    def measure_names(self) -> list[str]:
        """Measures any model has, in the package's order (unknown names last)."""
        found = {name for model in self.models for name in model.measures}
        return [n for n in MEASURE_NAMES if n in found] + sorted(found - set(MEASURE_NAMES))


def _complete(node: Any) -> bool:
    return isinstance(node, h5py.Group) and bool(node.attrs.get("complete", False))


def _read_model(h5: h5py.File, key: str, group: h5py.Group) -> ModelMeasures:
    summary = attrs_of(h5[f"models/{key}"]) if _complete(h5.get(f"models/{key}")) else {}
    measures = {}
    for name, node in group.items():
        if _complete(node):
            arrays = {k: v[()] for k, v in node.items() if isinstance(v, h5py.Dataset)}
            measures[name] = SharpnessResult.from_group(attrs_of(node), arrays)
    label = str(summary.get("label") or next((str(m) for n in group.values() if (m := n.attrs.get("model_label"))),
                                             "") or Path(str(h5.attrs.get("checkpoint_path", key))).stem)
    return ModelMeasures(key, label, summary, measures)


def read_comparison(source: str | Path | h5py.File) -> Comparison:
    """The models and barriers of a results file (path or open file)."""
    if not isinstance(source, h5py.File):
        with open_results(source) as h5:
            return read_comparison(h5)
    sharpness = source.get("sharpness")
    groups = sorted(sharpness.items(), key=lambda kv: (len(kv[0]), kv[0])) if isinstance(sharpness, h5py.Group) else []
    models = [_read_model(source, key, group) for key, group in groups if isinstance(group, h5py.Group)]
    barriers = []
    for name, node in (source["barriers"].items() if "barriers" in source else []):
        if _complete(node):
            attrs = attrs_of(node)
            splits = [k.removesuffix("_barrier") for k in attrs if k.endswith("_barrier")]
            barriers.append(Barrier(name, str(attrs["first_label"]), str(attrs["second_label"]),
                                    {s: float(attrs[f"{s}_barrier"]) for s in splits},
                                    {s: float(attrs[f"{s}_peak_at"]) for s in splits}))
    return Comparison(models, barriers)


@dataclass
class Ensemble:
    """The ``ensemble`` group: averaged weights (SWA) against averaged predictions (FGE) of the
    checkpoints ``labels``, per split, with mean_i ‖Δ_i‖² (``mean_sq_distance``)."""

    labels: list[str]
    num_checkpoints: int
    num_parameters: int
    mean_sq_distance: float
    prediction: str
    bn_rule: str
    splits: dict[str, SplitComparison]


def read_ensemble(source: str | Path | h5py.File) -> Ensemble | None:
    """The finished ``ensemble`` group of a results file, or None when there is none (a
    missing score raises KeyError)."""
    if not isinstance(source, h5py.File):
        with open_results(source) as h5:
            return read_ensemble(h5)
    node = source.get("ensemble")
    if not _complete(node):
        return None
    attrs = attrs_of(node)
    splits = text_list(attrs.get("splits")) or [k.removesuffix("_swa_loss") for k in attrs if k.endswith("_swa_loss")]
    names = [f.name for f in dataclasses.fields(SplitComparison)]
    return Ensemble(text_list(attrs.get("checkpoint_labels")), int(attrs["num_checkpoints"]),
                    int(attrs["num_parameters"]), float(attrs["mean_sq_distance"]), str(attrs["prediction"]),
                    str(attrs.get("bn_rule", "")),
                    {s: SplitComparison(**{n: float(attrs[f"{s}_{n}"]) for n in names}) for s in splits})
