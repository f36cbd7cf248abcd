"""`opgraph activations`: each produced tensor with its shape, bytes and fate."""

from __future__ import annotations

import attrs

from opgraph.analysis.activations import AVOIDED, MATERIALIZED, Activations, Fate
from opgraph.render import renderer
from opgraph.render.text import heading, lines, sizes, table, to_json


def label(f: Fate) -> str:
    """WRITE, read Nx / WRITE (KV cache) / WRITE (state) / WRITE (block output) / FUSED in <kernel> / AVOIDED."""
    if f.fate == MATERIALIZED:
        if f.reads:
            return f"WRITE, read {f.reads}x"
        return {"kv_cache": "WRITE (KV cache)", "state": "WRITE (state)"}.get(f.role, "WRITE (block output)")
    return "AVOIDED" if f.fate == AVOIDED else f"FUSED in {f.kernel}"


def fate_dict(f: Fate) -> dict:
    return {**attrs.asdict(f), "shape": list(f.shape), "consumer_kernels": list(f.consumer_kernels)}


def fate_table(records, fmt: str) -> str:
    rows = [[f.tensor, "[" + ", ".join(map(str, f.shape)) + "]", f.dtype, f"{f.nbytes / 1e6:,.3f}", label(f),
             f.producer, ", ".join(f.consumer_kernels) or "-"] for f in records]
    return table(rows, ["tensor", "shape", "dtype", "MB", "fate", "produced by", "read by kernels"], fmt,
                 colalign=("left", "left", "left", "right"))


@renderer(Activations, "json")
def as_json(a: Activations, fmt: str) -> str:
    return to_json({"model": a.model, "fusion": a.plan.name, "phases": {
        p.phase.name: {**p.phase.describe(), "blocks": [{"name": b.name, "count": b.count,
                                                         "tensors": [fate_dict(f) for f in b.fates]}
                                                        for b in p.blocks]} for p in a.phases}})


@renderer(Activations, "table", "markdown")
def as_text(a: Activations, fmt: str) -> str:
    out = [heading(f"opgraph activations: {a.model}, fusion {a.plan.name}", fmt, 1)]
    for p in a.phases:
        out += ["", heading(f"{p.phase.name.upper()}: {sizes(p.phase.describe())}", fmt)]
        for b in p.blocks:
            out += ["", heading(f"{b.name} x{b.count}", fmt, 3), "", fate_table(b.fates, fmt)]
    return lines(out)
