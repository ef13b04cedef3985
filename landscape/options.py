"""Command-line pieces every command shares: the parser, typed options, the options that turn a
checkpoint into a Problem, and the guards on output paths.

The analysis CLIs (``curvature/cli.py``, ``noise/cli.py``, ``views/cli.py``) import this
module; it imports none of them, so ``landscape/cli.py`` can wire them all without a cycle.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import distributed
from .errors import LandscapeError
from .problem.problem import DTYPES

if TYPE_CHECKING:
    from .scan import TimeBudget



# ---------------------------------------------------------------------------- parser
class Parser(argparse.ArgumentParser):
    """argparse with one error line (``landscape: error: ...``) and exit status 2."""

    def error(self, message: str) -> Any:  # argparse's default prints the usage too
        """Exit with status 2 after one ``landscape: error:`` line naming the command."""
        self.exit(2, f"landscape: error: {self.prog}: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` once, and only where the help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.nargs == 0  # a switch
                or action.default in (None, argparse.SUPPRESS, [])):
            return text
        return f"{text} (default: %(default)s)"


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ≥ ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        return value
    parse.__name__ = f"integer ≥ {minimum}"
    return parse


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text}")
    return value + 0.0  # -0.0 → 0.0


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh])")


def duration(text: str) -> float:
    """An argparse type: a duration > 0 as a number and a unit, ``90s``, ``10m``, ``1.5h``; in seconds."""
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 10m or 1.5h, got {text!r}")
    seconds = float(match[1]) * DURATION_UNITS[match[2]]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0, got {text!r}")
    return seconds


def add_time_budget_argument(parser: argparse.ArgumentParser) -> None:
    """``--time-budget DURATION`` of the commands that compute surfaces."""
    parser.add_argument("--time-budget", type=duration, metavar="DURATION", help="wall time for the whole "
                        "command (90s, 10m, 1.5h): once spent, stop after the chunk of surface points in "
                        "flight (surfaces are evaluated coarse to fine) or the step in flight, keep "
                        "OUT.partial and its report, exit 0; --resume continues")


# ---------------------------------------------------------------------------- problem options
def add_problem_arguments(parser: argparse.ArgumentParser, *, output_name: str) -> None:
    """Options that say how to turn a checkpoint into a Problem, and where results go
    (``<checkpoint name>.<output_name>.h5`` by default)."""
    g = parser.add_argument_group("model, data and loss (default: what the checkpoint's metadata names)")
    g.add_argument("--model", metavar="SPEC", help="model factory: package.module:callable, "
                   "path/to/file.py:callable or a built-in (digits_mlp, digits_cnn, resnet18_cifar, tiny_gpt)")
    g.add_argument("--data", metavar="SPEC", help="data: .pt/.npz file of x,y (or x_train,y_train,"
                   "x_test,y_test) arrays, or a factory spec returning batches or {'train','test'}")
    g.add_argument("--loss", metavar="NAME", help="cross_entropy, token_cross_entropy, mse, nll, "
                   "bce_with_logits or module:callable")
    g.add_argument("--metric", action="append", default=[], metavar="NAME=SPEC",
                   help="extra metric f(output, target) -> scalar mean, as name=module:callable "
                   "(repeatable); evaluated wherever the loss is")
    g.add_argument("--trust", action="store_true", help="allow pickled Python objects in the checkpoint "
                   "and callables named in its metadata (runs code from the file: only for files you trust)")
    g.add_argument("--eval-batch-size", type=integer(1), metavar="B", help="batch size of the data passes "
                   "(default: the data's own)")
    g.add_argument("--max-examples", type=integer(1), metavar="N", help="use at most N examples of each split")
    g.add_argument("--max-batches", type=integer(1), metavar="N", help="use at most N batches of each split")
    r = parser.add_argument_group("computation")
    r.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available; under torchrun "
                   "cuda:LOCAL_RANK)")
    r.add_argument("--dtype", choices=sorted(DTYPES), help="compute dtype (default: the model's)")
    r.add_argument("--autocast", choices=["bfloat16", "float16"], help="run every forward (and HVP) under "
                   "torch.autocast to this dtype, as a model trained with mixed precision was (float32 "
                   "parameters)")
    r.add_argument("--bn", choices=["eval", "recompute"], default="eval",
                   help="BatchNorm: keep running stats (eval) or re-estimate them at every point")
    r.add_argument("--eval-mode", choices=["auto", "vmap", "loop"], default="auto",
                   help="evaluate many points per forward pass with vmap, or one point per pass over "
                   "merged batches (auto: vmap on CUDA, loop elsewhere)")
    r.add_argument("--data-mode", choices=["auto", "cache", "stream"], default="auto",
                   help="keep every batch on the device (cache) or read the data again on every pass "
                   "(stream; for data over the memory budget; the data must yield the same batches each "
                   "time); auto: cache the splits while they fit the memory budget, stream the rest")
    r.add_argument("--seed", type=integer(0), default=0, help="seed for random directions and probes")
    o = parser.add_argument_group("output")
    o.add_argument("-o", "--output", type=Path, metavar="FILE.h5", help="results file "
                   f"(default: <checkpoint name>.{output_name}.h5 in the current folder)")
    o.add_argument("--resume", action="store_true", help="continue an interrupted run into the same "
                   "file keeping every finished point, or add missing analyses to a finished file")
    o.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    o.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    add_plotlyjs_argument(o)
    o.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(output_name=output_name, command_line=None)  # main() sets the command line


def problem_from_args(args: argparse.Namespace, checkpoint: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Load the Problem named by the shared options; returns (problem, provenance attrs)."""
    from .loading import load_problem

    device = args.device or str(distributed.local_device() or ("cuda" if torch.cuda.is_available() else "cpu"))
    problem, provenance = load_problem(
        checkpoint or args.checkpoint, model=args.model, data=args.data, loss=args.loss,
        trust=args.trust, device=device, dtype=args.dtype, autocast=args.autocast,
        bn_policy=args.bn, batch_size=args.eval_batch_size, max_batches=args.max_batches,
        max_examples=args.max_examples, metrics=metrics_from_args(args), eval_mode=args.eval_mode,
        data_mode=args.data_mode)
    return problem, provenance.as_attrs()


def metrics_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--metric NAME=SPEC`` options as ``{name: callable}``."""
    from .loading import resolve_callable

    metrics = {}
    for item in args.metric:
        name, sep, spec = item.partition("=")
        if not sep or not name.isidentifier() or name in ("loss", "accuracy"):
            raise LandscapeError(f"--metric takes NAME=module:callable with a new identifier NAME, got {item!r}")
        metrics[name] = resolve_callable(spec, f"metric '{name}'")
    return metrics


# ---------------------------------------------------------------------------- outputs
def output_path(args: argparse.Namespace, checkpoint: str) -> Path:
    """``-o``, or ``<checkpoint stem>.<command's output name>.h5`` in the current folder."""
    return args.output or Path(f"{Path(checkpoint).stem}.{args.output_name}.h5")


def spec_files(specs: Iterable[str | None]) -> list[Path]:
    """The files named by specs: ``file.py`` of ``file.py:callable``, or a data file path."""
    files = []
    for spec in specs:
        if not spec:
            continue
        target = spec.rpartition(":")[0] if ":" in spec else spec
        if target.endswith(".py") or Path(target).is_file():
            files.append(Path(target))
    return files


def input_files(args: argparse.Namespace, checkpoints: Sequence[str],
                provenance: dict[str, Any]) -> list[Path]:
    """Every file a command reads: checkpoints, data files and spec files (given or recorded)."""
    specs = [args.model, args.data, args.loss, *(m.partition("=")[2] for m in args.metric),
             provenance.get("model_spec"), provenance.get("data_spec"), provenance.get("loss_spec")]
    return [Path(c) for c in checkpoints] + spec_files(specs)


def guard_outputs(outputs: Sequence[Path], inputs: Iterable[Path]) -> None:
    """Refuse, before anything is written, an output that is a folder, whose name the file
    system cannot hold, or that is (or links to) one of the inputs."""
    protected = {_identity(p) for p in inputs if p.exists()}
    for out in outputs:
        limit = _name_max(out.parent)
        if len(os.fsencode(out.name)) > limit:  # checked first: stat() of such a name fails
            raise LandscapeError(f"output file name '{out.name[:40]}...' is {len(os.fsencode(out.name))} "
                                 f"bytes long; this file system allows {limit}: choose a shorter -o")
        if out.is_dir():
            raise LandscapeError(f"output '{out}' is a folder; give a file name, e.g. -o {out / 'results.h5'}")
        if out.exists() and _identity(out) in protected:
            raise LandscapeError(f"output '{out}' is one of this command's inputs; it is never "
                                 "overwritten: choose another -o")


def add_plotlyjs_argument(parser: Any) -> None:
    """``--plotlyjs directory|inline|cdn``: how a report gets plotly.js."""
    from .views.report import PLOTLYJS_MODES

    parser.add_argument("--plotlyjs", choices=list(PLOTLYJS_MODES), default=PLOTLYJS_MODES[0],
                        help="how the report loads plotly.js: directory: one plotly.min.js beside it, shared by "
                        "the reports of that folder (offline); inline: inside the report, one standalone file; "
                        "cdn: from the plotly CDN (needs the network)")


def results_outputs(path: Path, with_report: bool, plotlyjs: str = "directory") -> list[Path]:
    """The files a command writes for results file ``path``: the file, its ``.partial`` and
    ``.lock`` while it runs, the report and the plotly.js it loads."""
    from .store import lock_path, partial_path
    from .views.report import default_report_path, plotlyjs_outputs

    outputs = [path, partial_path(path), lock_path(path)]
    html = default_report_path(path)
    return outputs + [html, *plotlyjs_outputs(html, plotlyjs)] if with_report else outputs


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()  # follows links: a link to the checkpoint is the checkpoint
    return stat.st_dev, stat.st_ino


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder if str(folder) else ".", "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def run_into_file(args: argparse.Namespace, problem: Any, provenance: dict[str, Any], steps: list,
                  settings: dict[str, Any], checkpoints: list[str], budget: TimeBudget | None = None) -> Path:
    """Check the outputs against the inputs, run ``steps`` into the results file, return it
    (``OUT.partial`` when ``budget``, a :class:`landscape.scan.TimeBudget`, ran out first).

    The root attribute ``command`` is ``args.command_line`` (set by ``landscape.cli.main``).
    """
    from .scan import PYTHON_API, base_settings, run_scan

    out = output_path(args, checkpoints[0])
    guard_outputs(results_outputs(out, not args.no_report, args.plotlyjs), input_files(args, checkpoints, provenance))
    settings = base_settings(problem, provenance, command=args.command_line or PYTHON_API, **settings)
    path = run_scan(problem, out, steps, settings, resume=args.resume, overwrite=args.overwrite, budget=budget)
    if not distributed.is_writer():
        raise distributed.ShareDone  # rank 0 reads the file back and reports
    return path


def write_report_next_to(path: Path, args: argparse.Namespace) -> None:
    """Write the HTML report beside the results file unless ``--no-report``; for
    ``OUT.partial`` (a run the time budget stopped) where OUT's report goes."""
    from .views import default_report_path, write_report

    if args.no_report:
        return
    html = default_report_path(str(path).removesuffix(".partial"))
    write_report(path, html, plotlyjs=args.plotlyjs)
    print(f"report: {html}")


# ---------------------------------------------------------------------------- options from configs
def option(default: Any, help: str, *, minimum: int | None = None, metavar: str | tuple[str, ...] | None = None,
           negative_flag: str | None = None, flag: str | None = None) -> Any:
    """A config field that is also a command-line option: the default and the help live here
    once; :func:`add_config_arguments` turns it into an argparse option. ``minimum`` for
    integers; ``negative_flag`` names the ``--no-...`` switch of a field that defaults to True;
    ``flag`` names the option when it is not the field's name (``--eigenvectors`` for
    ``store_eigenvectors``)."""
    return dataclasses.field(default=default, metadata={"help": help, "minimum": minimum, "metavar": metavar,
                                                        "negative_flag": negative_flag, "flag": flag})


def add_config_arguments(group: Any, config: type, prefix: str = "", *, skip: Sequence[str] = (),
                         defaults: Mapping[str, Any] | None = None) -> None:
    """An option ``--<prefix><field-name>`` (or ``--<prefix><flag>``) for every field of the
    dataclass ``config`` made with :func:`option` (ints ≥ ``minimum``, Literals as choices,
    bools as switches, int pairs as two values, ``tuple[str, ...]`` as a repeatable option
    collecting its values). ``defaults`` replaces the config's default of some fields for this
    command (a bool defaulting to False there becomes a plain ``--flag`` switch)."""
    hints = typing.get_type_hints(config)
    for spec in dataclasses.fields(config):
        if "help" not in spec.metadata or spec.name in skip:
            continue
        meta, kind = spec.metadata, hints[spec.name]
        default = (defaults or {}).get(spec.name, spec.default)
        flag = f"--{prefix}{(meta.get('flag') or spec.name).replace('_', '-')}"
        kwargs: dict[str, Any] = {"help": meta["help"], "dest": f"{prefix}{spec.name}".replace("-", "_")}
        if kind is bool:
            if default and not meta["negative_flag"]:
                raise TypeError(f"{config.__name__}.{spec.name} defaults to True: give it a negative_flag")
            flag = f"--{prefix}{meta['negative_flag']}" if default else flag
            kwargs["action"] = "store_false" if default else "store_true"
            kwargs["default"] = default
            group.add_argument(flag, **kwargs)
            continue
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        base = args[0] if typing.get_origin(kind) in (typing.Union, types.UnionType) else kind
        if typing.get_origin(base) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif typing.get_origin(base) is tuple and typing.get_args(base)[-1] is Ellipsis:
            kwargs["action"] = "append"  # repeatable; the values collected after the default's
            default = list(default)
        elif typing.get_origin(base) is tuple:
            kwargs.update(nargs=len(typing.get_args(base)), type=integer(meta["minimum"] or 1))
        elif base is int:
            kwargs["type"] = integer(meta["minimum"] if meta["minimum"] is not None else 0)
        elif base is float:
            kwargs["type"] = nonnegative_float if meta["minimum"] == 0 else positive_float
        kwargs.update(default=default, metavar=meta["metavar"])
        group.add_argument(flag, **kwargs)


def config_from_args(config: type, args: argparse.Namespace, prefix: str = "", **given: Any) -> Any:
    """The dataclass ``config`` filled from the options :func:`add_config_arguments` made
    (``given`` overrides, e.g. values resolved elsewhere)."""
    values = {}
    for spec in dataclasses.fields(config):
        dest = f"{prefix}{spec.name}".replace("-", "_")
        if "help" in spec.metadata and hasattr(args, dest):
            value = getattr(args, dest)
            values[spec.name] = tuple(value) if isinstance(value, list) else value  # nargs gives a list
    return config(**{**values, **given})
