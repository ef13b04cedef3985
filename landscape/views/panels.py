"""Panels: one small function per kind of result, registered in one place.

A panel is ``fn(h5: h5py.File) -> list[Item] | None`` decorated with ``@panel(order, name,
reads=(...))`` (with ``styled=True`` it is ``fn(h5, style)`` and gets the report's
:class:`~landscape.views.style.SurfaceStyle`, ``landscape view --levels/--vmin/--vmax/--zmax/--log``):
it returns named figures and tables for what it finds, ``None`` when the file holds nothing
for it, and :class:`Skipped` items for parts it could not read.
``reads`` lists the HDF5 paths it covers, so groups that no panel covers are still shown
(as raw attribute tables) instead of silently dropped. A panel that raises is reported as
skipped with the reason; it never breaks the report.

This module is the registry (the item types, :func:`panel`, :func:`run_panels`, the helpers
panels share) and the catch-all "Other results" panel. The panels themselves live in
:mod:`.surface_panels` (surfaces and 1-D curves), :mod:`.basin_panels` (basin statistics of
2-D surfaces), :mod:`.flatness_panels` (sharpness measures, lines between checkpoints) and
:mod:`.analysis_panels` (curvature, noise, settings, directions); ``landscape/views/__init__.py``
imports each of them once, and that import is what registers their panels. This module never imports them (no cycle).

To add a view for a new analysis, write one function in one of those modules (or a new
module that ``landscape/views/__init__.py`` imports) and decorate it::

    @panel(order=45, name="Weight norms", reads=("norms",))
    def norms_panel(h5):
        if "norms" not in h5:
            return None
        return [TableItem("norms/table", "Weight norms", ["layer", "norm"], rows)]
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import h5py
import plotly.graph_objects as go

from ..store import SCHEMA_NAME, SCHEMA_VERSION
from ..tracking.file import SCHEMA as TRACKER_SCHEMA
from ..tracking.file import SCHEMA_VERSION as TRACKER_VERSION
from .reading import Unreadable, attribute_rows, attrs_of, describe_dataset
from .style import DEFAULT_STYLE, SurfaceStyle
from .text import plot_safe_figure


@dataclass(frozen=True)
class FigureItem:
    """A named figure of a panel, with an optional caption."""

    key: str  # stable id, also the export file name: "surfaces/2d/contour"
    title: str
    figure: go.Figure
    caption: str = ""


@dataclass(frozen=True)
class TableItem:
    """A named table of a panel: header and rows of text, with an optional caption."""

    key: str
    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Skipped:
    """A part of the file a panel could not show, and why."""

    what: str  # HDF5 path or part that was not shown
    reason: str


Item = FigureItem | TableItem | Skipped
VIEWABLE_SCHEMAS = {SCHEMA_NAME: SCHEMA_VERSION, TRACKER_SCHEMA: TRACKER_VERSION}  # root schema → version read
PanelFn = Callable[..., "list[Item] | None"]  # (h5) or, for styled panels, (h5, style)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Panel:
    """A registered panel: its place in the report, name, builder and the HDF5 paths it reads."""

    order: float
    name: str
    build: PanelFn
    reads: tuple[str, ...] = ()
    styled: bool = False  # build(h5, style)


@dataclass
class PanelResult:
    """What one panel produced for one file."""

    panel: Panel
    items: list[Item] = field(default_factory=list)
    applies: bool = True  # False: the file holds nothing for this panel

    @property
    def shown(self) -> list[FigureItem | TableItem]:
        """The figures and tables, in order."""
        return [i for i in self.items if not isinstance(i, Skipped)]

    @property
    def skipped(self) -> list[Skipped]:
        """The parts that could not be shown."""
        return [i for i in self.items if isinstance(i, Skipped)]


_REGISTRY: dict[str, Panel] = {}


def panel(order: float, name: str, reads: Sequence[str] = (), styled: bool = False) -> Callable[[F], F]:
    """Register ``fn`` as the panel ``name``; panels render in increasing ``order``; a
    ``styled`` panel is called with the report's surface style too."""
    def register(fn: F) -> F:
        if name in _REGISTRY and _REGISTRY[name].build is not fn:
            raise ValueError(f"a panel named {name!r} is already registered")
        _REGISTRY[name] = Panel(order, name, fn, tuple(reads), styled)
        return fn
    return register


def registered_panels() -> list[Panel]:
    """Every registered panel, in report order."""
    return sorted(_REGISTRY.values(), key=lambda p: (p.order, p.name))


def run_panels(h5: h5py.File, panels: Sequence[Panel] | None = None,
               style: SurfaceStyle = DEFAULT_STYLE) -> list[PanelResult]:
    """Every panel on ``h5`` (styled ones drawn with ``style``); failures become
    :class:`Skipped` items, figures are escaped."""
    results = []
    for p in panels if panels is not None else registered_panels():
        try:
            items = p.build(h5, style) if p.styled else p.build(h5)
            safe = None if items is None else [
                replace(i, figure=plot_safe_figure(i.figure)) if isinstance(i, FigureItem) else i for i in items]
        except Exception as exc:  # a broken group must not break the report
            where = traceback.extract_tb(exc.__traceback__)[-1]
            reason = f"{type(exc).__name__}: {exc} (in {where.name}, line {where.lineno})"
            results.append(PanelResult(p, [Skipped(p.name, reason)]))
            continue
        results.append(PanelResult(p, [], applies=False) if safe is None else PanelResult(p, safe))
    return results


# ============================================================================ helpers for panels
def try_part(what: str, build: Callable[[], list[Item]]) -> list[Item]:
    """Run one part of a panel; an unreadable or malformed part becomes a Skipped item."""
    try:
        return build()
    except Unreadable as exc:
        return [Skipped(what, str(exc))]
    except (KeyError, ValueError, TypeError, IndexError, OSError) as exc:
        return [Skipped(what, f"{type(exc).__name__}: {exc}")]


def group_at(h5: h5py.File | h5py.Group, path: str) -> h5py.Group | None:
    """The group at ``path``, or None when it is missing or not a group."""
    node = h5.get(path)
    return node if isinstance(node, h5py.Group) else None


def child_groups(h5: h5py.File, path: str) -> list[tuple[str, h5py.Group]]:
    """``(name, group)`` of every subgroup of the group at ``path`` (none when it is missing)."""
    group = group_at(h5, path)
    if group is None:
        return []
    return [(name, node) for name, node in group.items() if isinstance(node, h5py.Group)]


# ============================================================================ anything else
def _covered(path: str, reads: set[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in reads)


def _partly_covered(path: str, reads: set[str]) -> bool:
    return any(r.startswith(path + "/") for r in reads)


def uncovered_groups(h5: h5py.File, reads: set[str]) -> list[str]:
    """Groups that hold results no panel reads (walking into partly covered groups)."""
    out: list[str] = []

    def walk(group: h5py.Group, prefix: str) -> None:
        for name, node in group.items():
            path = f"{prefix}{name}"
            if not isinstance(node, h5py.Group) or _covered(path, reads):
                continue
            if _partly_covered(path, reads):
                walk(node, path + "/")
            else:
                out.append(path)
    walk(h5, "")
    return out


@panel(order=800, name="Other results", reads=())
def other_groups_panel(h5: h5py.File) -> list[Item] | None:
    """Raw attribute and dataset tables of every group no other panel reads."""
    reads = {r for p in registered_panels() for r in p.reads}
    paths = uncovered_groups(h5, reads)
    if not paths:
        return None
    items: list[Item] = []
    for path in paths:
        group = h5[path]
        rows = attribute_rows(attrs_of(group))

        def visit(name: str, node: h5py.HLObject, rows: list[list[str]] = rows) -> None:
            if isinstance(node, h5py.Dataset):
                rows.append([name, describe_dataset(node)])
            else:
                rows.extend([f"{name} · {key}", value] for key, value in attribute_rows(attrs_of(node)))
        group.visititems(visit)
        items.append(TableItem(f"other/{path}", path, ["attribute or dataset", "value"], rows,
                               "no dedicated view for this group yet: its raw contents"))
    return items


def schema_notes(h5: h5py.File) -> list[str]:
    """One line each for what the reader should know before trusting the report."""
    notes = []
    attrs = attrs_of(h5)
    version = attrs.get("schema_version")
    known = VIEWABLE_SCHEMAS.get(str(attrs.get("schema")))
    current = SCHEMA_VERSION if known is None else known
    if known is None:
        notes.append(f"schema attribute is {attrs.get('schema')!r}, not {SCHEMA_NAME!r}")
    if version is None:
        notes.append("no schema_version attribute: read as an old file, showing what is readable")
    elif int(version) < current:
        notes.append(f"written with schema version {version} (this viewer reads version {current}): "
                     "showing what is readable")
    elif int(version) > current:
        notes.append(f"written with schema version {version}, newer than this viewer's {current}: "
                     "upgrade landscape to see everything")
    if attrs.get("complete") is False:
        notes.append("the scan did not finish: missing results were not computed yet")
    return notes
