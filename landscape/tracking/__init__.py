"""Sharpness during training: :class:`SharpnessTracker` (λ_max, tr H, gradient noise scale
every k optimizer steps into a tracker file), :class:`TrackerCallback` for Lightning-style
trainers, and the tracker file's reader (:func:`read_tracker`, :func:`read_parameters`)."""

from .file import SCHEMA, SCHEMA_VERSION, SERIES, Record, TrackerRun, TrackerSettings, read_parameters, read_tracker
from .tracker import SharpnessTracker, TrackerCallback

__all__ = ["SCHEMA", "SCHEMA_VERSION", "SERIES", "Record", "SharpnessTracker", "TrackerCallback", "TrackerRun",
           "TrackerSettings", "read_parameters", "read_tracker"]
