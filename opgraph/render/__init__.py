"""Rendering: every record an analysis returns becomes text here, and only here. Nothing in this package
computes a cost; it formats what `opgraph.analysis` produced.

`render(record, fmt)` picks the renderer registered for the record's type and format; `formats(type)` lists
the formats a record type has (the command line offers exactly those). Pictures (`opgraph.render.plot`,
`opgraph.render.draw`) are renderers too.
"""

from __future__ import annotations

from collections.abc import Callable

from opgraph.core import checks

_RENDERERS: dict[type, dict[str, Callable]] = {}


def renderer(record_type: type, *fmts: str):
    """Register `fn(record, fmt) -> str` as the renderer of `record_type` in the formats `fmts`."""
    def register(fn: Callable) -> Callable:
        for fmt in fmts:
            _RENDERERS.setdefault(record_type, {})[fmt] = fn
        return fn
    return register


ORDER = ("table", "markdown", "json", "csv", "html", "dot", "mermaid")


def formats(record_type: type) -> tuple[str, ...]:
    """The formats a record type renders to, in the order: table, markdown, json, csv, dot, mermaid."""
    _load()
    return tuple(sorted(_RENDERERS.get(record_type, {}), key=ORDER.index))


def render(record, fmt: str) -> str:
    """The record as text in `fmt` (table, markdown, json, csv, dot, mermaid: whichever its type has)."""
    _load()
    checks.choice("--format", fmt, formats(type(record)))
    return _RENDERERS[type(record)][fmt](record, fmt)


def _load() -> None:
    """Import the renderer modules, which register themselves (matplotlib's plot module is not one)."""
    from opgraph.render import (activations, catalog, compare, crossover, draw, generate, memory,  # noqa: F401
                                report, serve, serving_validate, sweep, validate, calibrate, bench, plan,
                                disaggregated, report_html)
