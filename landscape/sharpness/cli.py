"""``landscape scan --sharpness``: the sharpness measures as options prefixed ``--sharpness-``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_config_arguments, config_from_args
from ..scan import ScanStep
from .config import SharpnessConfig
from .step import sharpness_step


def add_sharpness_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sharpness`` and :class:`SharpnessConfig`'s options, prefixed ``--sharpness-``."""
    group = parser.add_argument_group("sharpness measures (scan --sharpness)")
    group.add_argument("--sharpness", action="store_true", help="add the sharpness measures (groups 'sharpness/c0/*')")
    add_config_arguments(group, SharpnessConfig, "sharpness-")


def sharpness_steps_from_args(args: argparse.Namespace) -> list[ScanStep]:
    """The scan step ``scan --sharpness`` adds (none without the flag)."""
    if not args.sharpness:
        return []
    config = config_from_args(SharpnessConfig, args, "sharpness-", seed=args.seed)
    config.selected()  # an unknown measure name is refused before anything is loaded
    return [sharpness_step(config, label=Path(args.checkpoint).stem)]
