"""Per-layer curvature: the top eigenvalue and the trace of each diagonal block of the
curvature matrix, one block per group of parameters.

Groups come from a rule (``landscape hessian --per-layer [module|GROUPS]``):

- ``module``: one group per module that owns trainable parameters directly, named by the
  module (``features.0`` holds ``features.0.weight`` and ``features.0.bias``; parameters of
  the model itself form the group ``(model)``);
- ``name=pattern,pattern,name=pattern``: explicit groups of ``fnmatch`` patterns (a comma-
  separated item without ``=`` adds a pattern to the group before it).

Either way only parameters selected by ``--params`` take part. Each block is the operator
restricted to its group's parameters (H_gg, plus λI with weight decay): the top eigenvalue
by the same restarted Lanczos as ``curvature/hessian_top`` (k = 1, with its residual and
convergence flag), the trace exact for blocks of at most :data:`EXACT_TRACE_MAX_DIM`
parameters (one product per parameter) and by the ``hessian`` command's estimator otherwise.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
from torch import Tensor

from ..errors import LandscapeError
from ..linalg.trace import EXACT_TRACE_MAX_DIM
from ..problem import Problem
from ..progress import counting_products, progress
from .config import CurvatureConfig
from .operators import make_operator, select_parameters

PATH = "curvature/per_layer"
MODULE_RULE = "module"
ROOT_GROUP = "(model)"


@dataclass(frozen=True)
class LayerGroup:
    """A block: its name, the patterns that chose it and the parameter names, in model order."""

    name: str
    patterns: tuple[str, ...]
    parameters: tuple[str, ...]


# ---------------------------------------------------------------------------- groups
def literal_pattern(name: str) -> str:
    """An ``fnmatch`` pattern matching exactly ``name`` (``*``, ``?``, ``[`` escaped)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def module_groups(names: list[str]) -> list[LayerGroup]:
    """One group per module owning parameters directly, in the order the parameters come."""
    owners: dict[str, list[str]] = {}
    for name in names:
        owners.setdefault(name.rpartition(".")[0] or ROOT_GROUP, []).append(name)
    return [LayerGroup(module, tuple(literal_pattern(n) for n in members), tuple(members))
            for module, members in owners.items()]


def parse_group_spec(spec: str) -> list[tuple[str, tuple[str, ...]]]:
    """``'conv=features.*,head=classifier.*,fc.*'`` → ``[('conv', ('features.*',)),
    ('head', ('classifier.*', 'fc.*'))]``; one :class:`LandscapeError` for a malformed spec."""
    groups: list[tuple[str, list[str]]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, pattern = item.partition("=")
        if sep:
            name, pattern = name.strip(), pattern.strip()
            if not name or not pattern:
                raise LandscapeError(f"--per-layer: '{item}' needs a group name and a pattern, e.g. "
                                     "'conv=features.*'")
            if any(name == other for other, _ in groups):
                raise LandscapeError(f"--per-layer: group '{name}' is named twice; give each group one "
                                     "name=pattern item and add patterns after it with commas")
            groups.append((name, [pattern]))
        elif groups:
            groups[-1][1].append(item)
        else:
            raise LandscapeError(f"--per-layer: '{item}' comes before any group name; write "
                                 f"'module' or groups such as 'conv=features.*,head=classifier.*'")
    if not groups:
        raise LandscapeError("--per-layer: no groups given; write 'module' or 'name=pattern,...'")
    return [(name, tuple(patterns)) for name, patterns in groups]


def group_spec(groups: str | Mapping[str, Sequence[str]] | None) -> str:
    """The ``--per-layer`` text of the Python API's ``groups``: None → ``'module'``, a spec
    as it is, ``{name: patterns}`` joined as ``name=p1,p2,...``."""
    if groups is None:
        return MODULE_RULE
    if isinstance(groups, str):
        return groups
    items = []
    for name, patterns in groups.items():
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if not name or any(c in name for c in ",=") or not patterns or any("," in p for p in patterns):
            raise LandscapeError(f"per-layer groups: group {name!r} → {patterns!r}: names need no ',' or '=', "
                                 "and each group one or more fnmatch patterns without ','")
        items.append(f"{name}={','.join(patterns)}")
    return ",".join(items)


def resolve_groups(params: Mapping[str, Tensor], rule: str,
                   selection: tuple[str, ...] = ()) -> list[LayerGroup]:
    """The groups ``rule`` makes among the parameters ``selection`` selects (all when empty)."""
    names = select_parameters(params, selection or None)
    if rule == MODULE_RULE:
        return module_groups(names)
    groups = []
    for name, patterns in parse_group_spec(rule):
        chosen = tuple(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))
        if not chosen:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise LandscapeError(f"--per-layer: group '{name}' ({','.join(patterns)}) matches no selected "
                                 f"parameter (names: {shown}); use fnmatch patterns such as 'features.*'")
        groups.append(LayerGroup(name, patterns, chosen))
    return groups


# ---------------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class PerLayerResult:
    """Per group (in order): size, top eigenvalue (residual, converged) and trace (± stderr)
    of its diagonal block; ``settings`` are how it was computed (the group's attributes)."""

    groups: tuple[LayerGroup, ...]
    num_parameters: np.ndarray  # int64 [g]
    top_eigenvalue: np.ndarray  # float64 [g]
    residual: np.ndarray  # float64 [g], relative Ritz residual ‖Hv − λv‖/|λ|
    converged: np.ndarray  # bool [g]
    trace: np.ndarray  # float64 [g]
    trace_stderr: np.ndarray  # float64 [g], 0 where exact
    trace_exact: np.ndarray  # bool [g]
    num_matvecs: int
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The groups' names."""
        return tuple(g.name for g in self.groups)

    def to_group(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Attributes and datasets of ``curvature/per_layer``."""
        attrs = {**self.settings, "num_groups": len(self.groups), "num_matvecs": self.num_matvecs}
        text = h5py.string_dtype()
        arrays = {"names": np.array(self.names, dtype=text),
                  "patterns": np.array([",".join(g.patterns) for g in self.groups], dtype=text),
                  "num_parameters": self.num_parameters, "top_eigenvalue": self.top_eigenvalue,
                  "residual": self.residual, "converged": self.converged, "trace": self.trace,
                  "trace_stderr": self.trace_stderr, "trace_exact": self.trace_exact}
        return attrs, arrays

    def table(self) -> list[str]:
        """The printed table: one aligned row per group."""
        header = ["group", "parameters", "top eigenvalue", "residual", "trace", ""]
        rows = [[g.name, str(int(n)), f"{lam:.6g}", f"{res:.1e}" + ("" if ok else " NOT converged"),
                 f"{tr:.6g}", "exact" if exact else f"± {err:.2g}"]
                for g, n, lam, res, ok, tr, err, exact in zip(
                    self.groups, self.num_parameters, self.top_eigenvalue, self.residual, self.converged,
                    self.trace, self.trace_stderr, self.trace_exact, strict=True)]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        right = {1, 2, 4}  # numbers are right-aligned

        def line(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        return [line(header), *map(line, rows)]


# ---------------------------------------------------------------------------- computing
def per_layer_curvature(problem: Problem, config: CurvatureConfig, *, show_progress: bool = True) -> PerLayerResult:
    """The top eigenvalue and trace of each group's block (``config.per_layer`` is the rule;
    ``config.operator``, split, weight decay, tolerances, trace estimator and seed apply)."""
    from .step import compute_eigen, compute_trace  # the hessian command's own solvers

    rule = config.per_layer or MODULE_RULE
    groups = resolve_groups(problem.params, rule, config.param_patterns)
    rows = []
    matvecs = 0
    hvp_mode = ""
    with progress(None, f"per-layer curvature ({config.operator})", "HVP", enabled=show_progress) as bar:
        for group in groups:
            bar.set_postfix_str(group.name)
            op = make_operator(problem, config.operator, split=config.split, param_patterns=group.patterns,
                               hvp_mode=config.hvp_mode, weight_decay=config.weight_decay)
            hvp_mode = hvp_mode or str(op.describe().get("hvp_mode", "n/a"))
            with counting_products(op, bar):
                eig = compute_eigen(op, 1, "LA", config)
                exact = op.size <= EXACT_TRACE_MAX_DIM
                trace = compute_trace(op, config, method="exact" if exact else None)
            matvecs += eig.num_matvecs + trace.num_matvecs
            rows.append((op.size, float(eig.eigenvalues[0]), float(eig.residuals[0]), bool(eig.converged[0]),
                         trace.estimate, trace.stderr, trace.exact))
    columns = list(zip(*rows, strict=True))
    settings = {"rule": "module" if rule == MODULE_RULE else "groups", "groups_spec": rule,
                "operator": config.operator, "split": config.split, "param_patterns": list(config.param_patterns),
                "weight_decay": config.weight_decay, "hvp_mode": hvp_mode,
                "tol": config.tol if config.tol else "default",
                "seed": config.seed, "trace_method": config.trace_method, "trace_probes": config.trace_probes,
                "trace_rule": f"exact when a group has ≤ {EXACT_TRACE_MAX_DIM} parameters, else "
                              f"{config.trace_method} with {config.trace_probes} products"}
    return PerLayerResult(groups=tuple(groups), num_parameters=np.array(columns[0], dtype=np.int64),
                          top_eigenvalue=np.array(columns[1], dtype=np.float64),
                          residual=np.array(columns[2], dtype=np.float64),
                          converged=np.array(columns[3], dtype=bool),
                          trace=np.array(columns[4], dtype=np.float64),
                          trace_stderr=np.array(columns[5], dtype=np.float64),
                          trace_exact=np.array(columns[6], dtype=bool), num_matvecs=matvecs, settings=settings)


def resume_settings(config: CurvatureConfig) -> dict[str, Any]:
    """What a finished ``curvature/per_layer`` must have been computed with to be kept (weight
    decay is compared by the step, with 0 for files older than the option)."""
    return {"groups_spec": config.per_layer or MODULE_RULE, "operator": config.operator, "split": config.split,
            "param_patterns": list(config.param_patterns)}
