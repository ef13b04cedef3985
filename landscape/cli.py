"""The ``landscape`` command line: wiring only (loading, analyses and storage live elsewhere).

Each subcommand is one entry of ``COMMANDS``: ``(name, help, add_arguments, run)``.
Bad input ends with one ``landscape: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch

from . import __version__, distributed, progress
from .compare import cli as compare_cli
from .curvature import cli as curvature_cli
from .errors import LandscapeError
from .noise import cli as noise_cli
from .options import HelpFormatter, Parser
from .surfaces import cli as surfaces_cli
from .trajectory import cli as trajectory_cli
from .views import cli as view_cli

EXAMPLES = """\
examples:
  landscape scan data/digits_mlp.pt                 # 1-D + 2-D surfaces (+ report) of a bundled checkpoint
  landscape scan model.ckpt --model mypkg.nets:resnet20 --data mypkg.data:cifar_test --loss cross_entropy
  landscape surface ckpt.pt --dims 1 --points 101 --range -0.5 0.5 --splits test
  landscape interpolate a.pt b.pt                  # loss along the line from a to b
  landscape interpolate a.pt b.pt c.pt             # the plane through three checkpoints
  landscape compare sgd.pt sam.pt swa.pt --labels SGD,SAM,SWA   # sharpness measures side by side
  landscape trajectory runs/                        # the training path on its PCA plane's loss surface
  landscape trajectory runs/                        # the training path on its PCA plane's loss surface
  landscape info scan.h5                            # what a results file holds
"""


# ---------------------------------------------------------------------------- info
def _add_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="results file (.h5)")


def _run_info(args: argparse.Namespace) -> int:
    from .info import describe_file
    from .store import open_results

    with open_results(args.file) as handle:
        print("\n".join(describe_file(handle, args.file)))
    return 0


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

COMMANDS: list[Command] = [
    ("scan", surfaces_cli.SCAN_HELP, surfaces_cli.add_scan_arguments, surfaces_cli.run_scan_command),
    ("surface", surfaces_cli.SURFACE_HELP, surfaces_cli.add_surface_arguments, surfaces_cli.run_surface_command),
    ("interpolate", surfaces_cli.INTERPOLATE_HELP, surfaces_cli.add_interpolate_arguments,
     surfaces_cli.run_interpolate_command),
    ("hessian", curvature_cli.HELP, curvature_cli.add_arguments, curvature_cli.run),
    ("noise", noise_cli.HELP, noise_cli.add_noise_arguments, noise_cli.run_noise),
    ("compare", compare_cli.HELP, compare_cli.add_compare_arguments, compare_cli.run_compare),
    ("trajectory", trajectory_cli.HELP, trajectory_cli.add_trajectory_arguments, trajectory_cli.run_trajectory),
    ("view", view_cli.VIEW_HELP, view_cli.add_view_arguments, view_cli.run_view),
    ("info", "print what a results file holds", _add_info, _run_info),
]


def build_parser() -> argparse.ArgumentParser:
    """The ``landscape`` parser: one subcommand per entry of ``COMMANDS``."""
    parser = Parser(
        prog="landscape", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Loss-landscape and sharpness analysis of PyTorch checkpoints. Results go to one "
                    "HDF5 file (readable with h5py) and an HTML report.")
    parser.add_argument("--version", action="version",
                        version=f"landscape {__version__} (torch {torch.__version__})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command (``argv`` defaults to ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad options (one line already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    args.command_line = shlex.join(["landscape", *argv])  # recorded as the root attribute `command`
    try:
        with progress.quiet(getattr(args, "quiet", False)), _ranks(args):
            return args.run(args)
        return 0  # a rank other than 0 finished its share (distributed.ShareDone)
    except LandscapeError as exc:
        print(f"landscape: error{_rank_tag()}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        return 0
    except KeyboardInterrupt:
        print("landscape: interrupted; finished points are kept, continue with --resume", file=sys.stderr)
        return 130
    except OSError as exc:  # the file system said no (full disk, permissions, name too long)
        where = f": '{exc.filename}'" if exc.filename else ""
        print(f"landscape: error: {exc.strerror or _one_line(exc)}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: one line unless asked for the traceback
        if os.environ.get("LANDSCAPE_DEBUG"):
            traceback.print_exc()
        print(f"landscape: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set LANDSCAPE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _ranks(args: argparse.Namespace) -> Iterator[None]:
    """Under ``torchrun``: one data-parallel run over every rank (:mod:`landscape.distributed`).
    Rank 0 prints, draws progress and writes the file and report; the others stop once their
    share is computed (:class:`~landscape.distributed.ShareDone`) and only say why they failed.
    SIGTERM (torchrun stopping the ranks once one failed) ends the run like an error, so the
    results file is closed with what was finished."""
    if not distributed.launched():
        yield
        return
    shard = distributed.start()
    previous = signal.signal(signal.SIGTERM, _stopped_by_signal)
    try:
        if shard.rank == 0:
            yield
        else:
            with contextlib.redirect_stdout(io.StringIO()), progress.quiet(True):
                yield
    except distributed.ShareDone:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.stop()


def _stopped_by_signal(signum: int, frame: Any) -> None:
    raise LandscapeError("stopped by SIGTERM (torchrun stops every rank once one fails: see its message); the "
                         "results file keeps what was finished: rerun with --resume")


def _rank_tag() -> str:
    if not distributed.launched():
        return ""
    return f" (rank {os.environ.get('RANK', '?')} of {os.environ.get('WORLD_SIZE', '?')})"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
