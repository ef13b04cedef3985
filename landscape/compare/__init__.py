"""``landscape compare``: sharpness measures, shared random rays and connecting lines of several
checkpoints of one architecture, in one results file."""

from .steps import Checkpoint, check_same_architecture, compare_steps, line_axis, loss_barrier

__all__ = ["Checkpoint", "check_same_architecture", "compare_steps", "line_axis", "loss_barrier"]
