"""`opgraph compare`: fusion plans side by side."""

from __future__ import annotations

from opgraph.analysis.compare import Comparison, Comparisons
from opgraph.render import renderer
from opgraph.render.activations import label
from opgraph.render.text import heading, lines, seconds, sig, sizes, table, to_json


def _comparison_dict(c: Comparison) -> dict:
    base = c.costs[0].totals
    plans = []
    for cost, fp in zip(c.costs, c.memory):
        t = cost.totals
        plans.append({"fusion": cost.plan.name, "kernels_per_block": {b.name: len(b.kernels) for b in cost.blocks},
                      "bytes": t.bytes, "roofline_s": t.time_s, "expected_s": t.expected_s, "intensity": t.intensity,
                      "bound": t.bound, "bytes_saved": base.bytes - t.bytes, "roofline_saved_s": base.time_s - t.time_s,
                      "expected_saved_s": base.expected_s - t.expected_s, "memory_bytes": fp.total, "fits": fp.fits})
    names = [cost.plan.name for cost in c.costs]
    return {**c.phase.describe(), "plans": plans,
            "verdict_flips": [{"block": b, "op": op, "bound": dict(zip(names, v))} for b, op, v in c.flips],
            "fate_changes": [{"block": b, "tensor": t, "fate": dict(zip(names, map(label, v)))}
                             for b, t, v in c.fate_changes]}


@renderer(Comparisons, "json")
def as_json(r: Comparisons, fmt: str) -> str:
    return to_json({"model": r.model, "hardware": r.hardware.name, "fusions": [p.name for p in r.plans],
                    "phases": {c.phase.name: _comparison_dict(c) for c in r.phases}})


@renderer(Comparisons, "table", "markdown")
def as_text(r: Comparisons, fmt: str) -> str:
    out = [heading(f"opgraph compare: {r.model} on {r.hardware.name}", fmt, 1)]
    names = [p.name for p in r.plans]
    for c in r.phases:
        base = c.costs[0].totals
        out += ["", heading(f"{c.phase.name.upper()}: {sizes(c.phase.describe())} (model totals; savings against "
                            f"{names[0]})", fmt), ""]
        rows = []
        for cost, fp in zip(c.costs, c.memory):
            t = cost.totals
            kernels = ", ".join(f"{len(b.kernels)} per {b.name}" for b in cost.blocks)
            rows.append([cost.plan.name, kernels, f"{t.bytes / 1e9:,.3f}", seconds(t.time_s), seconds(t.expected_s),
                         sig(t.intensity), t.bound, f"{(base.bytes - t.bytes) / 1e9:,.3f}",
                         seconds(base.time_s - t.time_s), seconds(base.expected_s - t.expected_s),
                         sig(fp.total / 1e9) + ("" if fp.fits else " DOES NOT FIT")])
        out.append(table(rows, ["fusion", "kernels", "GB moved", "roofline", "expected", "FLOP/B", "bound", "GB saved",
                                "roofline saved", "expected saved", "memory GB"], fmt))
        out += ["", "ops whose verdict flips:"]
        out.append(table([[b, op, *v] for b, op, v in c.flips], ["block", "op", *names], fmt) if c.flips else "  none")
        out += ["", "tensors whose fate changes:"]
        out.append(table([[b, t, *map(label, v)] for b, t, v in c.fate_changes], ["block", "tensor", *names], fmt)
                   if c.fate_changes else "  none")
    return lines(out)
