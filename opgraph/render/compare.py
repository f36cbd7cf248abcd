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


def _saved(s: float) -> str:
    """A time saved; a difference of sums that agree to rounding is none."""
    return "0" if abs(s) < 1e-12 else seconds(s)


def kernel_savings(c: Comparison) -> list[tuple[str, str, str, int, float, float]]:
    """For each plan after the first, each of its kernels: (plan, block, kernel, ops, the first plan's time of the
    same ops, this kernel's time), both over all the block's repeats, expected."""
    base = {(b.name, o.name): o.cost.expected_s * b.count for b in c.costs[0].blocks for o in b.ops}
    out = []
    for cost in c.costs[1:]:
        for b in cost.blocks:
            for k in b.kernels:
                out.append((cost.plan.name, b.name, k.label, len(k.ops), sum(base[(b.name, op)] for op in k.ops),
                            b.kernel_s[k.name] * b.count))
    return out


@renderer(Comparisons, "html")
def as_html(r: Comparisons, fmt: str) -> str:
    """Per phase (tabs): the plans side by side (a bar each and a table), the time each kernel of the later plans
    saves against the first plan's same ops, the verdict flips and the fate changes. The page's data is the JSON."""
    import json

    from opgraph.render.html import bars, esc, filters, page, palette, table, tabs

    data = as_json(r, "json")
    d = json.loads(data)
    names = d["fusions"]
    colour = palette(names)
    panels = []
    for c, (phase, p) in zip(r.phases, d["phases"].items()):
        plans = [([(x["fusion"], x["fusion"]), (", ".join(f"{n} per {b}" for b, n in x["kernels_per_block"].items()),
                                                 sum(x["kernels_per_block"].values())),
                   (f"{x['bytes'] / 1e9:,.3f}", x["bytes"]), (seconds(x["roofline_s"]), x["roofline_s"]),
                   (seconds(x["expected_s"]), x["expected_s"]), (sig(x["intensity"]), x["intensity"]),
                   (x["bound"], x["bound"]), (f"{x['bytes_saved'] / 1e9:,.3f}", x["bytes_saved"]),
                   (seconds(x["expected_saved_s"]), x["expected_saved_s"]),
                   (sig(x["memory_bytes"] / 1e9) + ("" if x["fits"] else " DOES NOT FIT"), x["memory_bytes"])],
                  {"data-op": x["fusion"]}) for x in p["plans"]]
        drawn = bars([(x["fusion"], x["expected_s"] * 1e3, colour[x["fusion"]],
                       f"{x['fusion']}: {seconds(x['expected_s'])} expected, {seconds(x['roofline_s'])} roofline")
                      for x in p["plans"]], "ms")
        saved = [([(plan, plan), (block, block), (kernel, kernel), (f"{n:,}", n), (seconds(before), before),
                   (seconds(after), after), (_saved(before - after), before - after)],
                  {"data-bound": plan, "data-op": f"{plan}:{block}:{kernel}"})
                 for plan, block, kernel, n, before, after in kernel_savings(c)]
        flips = [([(f["block"], f["block"]), (f["op"], f["op"]), *((f["bound"][n], f["bound"][n]) for n in names)],
                  {"data-op": f"{f['block']}.{f['op']}"}) for f in p["verdict_flips"]]
        fates = [([(f["block"], f["block"]), (f["tensor"], f["tensor"]), *((f["fate"][n], f["fate"][n]) for n in names)],
                  {"data-op": f"{f['block']}.{f['tensor']}"}) for f in p["fate_changes"]]
        sizes_ = ", ".join(f"{k} {v:,}" for k, v in p.items() if isinstance(v, int))
        content = (f"<h2>{esc(phase)}: {esc(sizes_)} (model totals, one GPU; savings against {esc(names[0])})</h2>"
                   f"<h3>expected step time, one GPU</h3>{drawn}"
                   + table(f"{phase}-plans", ["fusion", "kernels", "GB moved", "roofline step", "expected step",
                                              "FLOP/byte", "verdict", "GB saved", "expected saved",
                                              "memory per GPU (GB)"], plans)
                   + f"<h3>time saved per kernel, against {esc(names[0])}'s same ops (expected, all repeats of the "
                     f"block)</h3>" + filters(f"{phase}-saved", names[1:], "fusion", "block or kernel")
                   + table(f"{phase}-saved", ["fusion", "block", "kernel", "ops", f"{names[0]}, same ops",
                                              "this kernel", "saved"], saved)
                   + f"<h3>ops whose verdict flips ({len(flips)})</h3>"
                   + (table(f"{phase}-flips", ["block", "op", *names], flips) if flips else "<p>none</p>")
                   + f"<h3>tensors whose fate changes ({len(fates)})</h3>"
                   + (table(f"{phase}-fates", ["block", "tensor", *names], fates) if fates else "<p>none</p>"))
        panels.append((f"phase-{phase}", phase, content))
    title = f"opgraph compare: {d['model']} on {r.hardware.display_name} ({d['hardware']}): {', '.join(names)}"
    note = ("Times are one GPU's step, expected (the GPU's time model) beside the roofline; GB = 10^9 bytes. The time "
            "saved per kernel is computed from the same run.")
    return page(title, note, tabs(panels), data)
