"""`opgraph crossover`: where each op turns compute-bound."""

from __future__ import annotations

from opgraph.analysis.crossover import CrossoverReport
from opgraph.analysis.sweep import SweepCurve
from opgraph.render import renderer
from opgraph.render.text import heading, lines, table, to_json


@renderer(CrossoverReport, "json")
def as_json(r: CrossoverReport, fmt: str) -> str:
    phases = {}
    for p in r.phases:
        phases[p.phase] = {"variable": p.variable, "fixed": p.fixed,
                           "crossovers": [{"op": x.label, "at": x.at, "method": x.method} for x in p.crossovers]}
        if p.phase == "decode":
            phases[p.phase]["attention_overtakes_ffn_at_context"] = p.attention_overtakes_ffn
            phases[p.phase]["attention_overtakes_ffn_at_context_expected"] = p.attention_overtakes_ffn_expected
            if p.not_compared:
                phases[p.phase]["attention_overtakes_ffn_not_compared"] = p.not_compared
        if p.curves is not None:
            phases[p.phase]["curves"] = _curves(p.curves)
    return to_json({"model": r.model, "hardware": r.hardware.name, "fusion": r.plan.name, "limit": r.limit,
                    "phases": phases})


def _curves(c: SweepCurve) -> dict:
    """A phase's curves along its varied size, one list entry per size (named as in the sweep's JSON)."""
    tokens = "new tokens" if c.phase == "decode" else "prompt tokens"
    return {"units": {c.variable: "sequences" if c.variable == "batch" else "tokens a prompt",
                      "*_s": "s (one GPU's step; every GPU of a group steps together)",
                      "block_total_expected_s": "s, all of the block's repeats", "op_total_expected_s":
                      "s, all of the op's repeats (its block's count)", "tokens_per_s":
                      f"{tokens} of the batch a second (the step's batch over its expected time: a replica's GPUs "
                      f"together)", "intensity": "FLOP/byte, the whole model's step"},
            c.variable: list(c.xs), "roofline_s": list(c.roofline_s), "expected_s": list(c.model_s),
            "tokens_per_s": list(c.tokens_per_s), "intensity": list(c.intensity), "bound": list(c.bound),
            "block_total_expected_s": {name: list(t) for name, t in c.blocks},
            "op_total_expected_s": {label: list(t) for label, t in c.ops}}


@renderer(CrossoverReport, "table", "markdown")
def as_text(r: CrossoverReport, fmt: str) -> str:
    out = [heading(f"opgraph crossover: {r.model} on {r.hardware.name}, fusion {r.plan.name}: the smallest value at "
                   f"which each op is compute-bound", fmt, 1)]
    for p in r.phases:
        fixed = ", ".join(f"{k} {v:,}" for k, v in p.fixed.items())
        out += ["", heading(f"{p.phase.upper()}: varying {p.variable} at {fixed}", fmt), ""]
        rows = [[x.label, "never" if x.at is None else f"{x.at:,}", x.method] for x in p.crossovers]
        out.append(table(rows, ["op", f"compute-bound from {p.variable}", "how"], fmt))
        if p.phase == "decode" and p.not_compared:
            out += ["", f"attention is not set against the FFN: {p.not_compared}"]
        elif p.phase == "decode":
            at, expected = (("never (up to 2^20)" if x is None else f"{x:,}")
                            for x in (p.attention_overtakes_ffn, p.attention_overtakes_ffn_expected))
            out += ["", f"attention takes more decode time than the FFN from context {at} (batch "
                        f"{p.attention_batch}); by expected times, from context {expected}"]
    return lines(out, "", f"'never' means not up to {r.limit:,}.")


def _charts(p: dict) -> str:
    """A phase's curves against its varied size: the step's time (the model, its roofline dashed, each block over all
    its repeats), throughput and intensity, each curve a point a computed size (hover: its value). Rings: each op's
    and block's crossover on its block's time curve, and on the model's throughput and intensity curves (one ring a
    size, naming every op and block that turns compute-bound there), and the first size at which the whole model is
    compute-bound. Ops' own curves are in the data, not drawn: tens of them would bury the blocks'."""
    from opgraph.render.html import chart, decades, esc, first_compute, legend, palette, ring

    c, var = p["curves"], p["variable"]
    sizes, bounds = c[var], c["bound"]
    held = ", ".join(f"{k} {v:,}" for k, v in p["fixed"].items())
    x_label = f"{var} ({'sequences' if var == 'batch' else 'prompt tokens'}; {held} held)"
    blocks = c["block_total_expected_s"]
    colour = palette(["model", *blocks])
    index = {x: i for i, x in enumerate(sizes)}  # every finite crossover is one of the sizes (curve_sizes)

    def block_of(label: str) -> str:  # an op's block: the longest block name it starts with (ops' names hold dots)
        return max((b for b in blocks if label == b or label.startswith(b + ".")), key=len)

    at_size: dict[int, list[str]] = {}  # size: the ops and blocks turning compute-bound there
    on_block: dict[tuple[str, int], list[str]] = {}
    for x in p["crossovers"]:
        if x["at"] is not None:
            at_size.setdefault(x["at"], []).append(x["op"])
            on_block.setdefault((block_of(x["op"]), x["at"]), []).append(x["op"])
    turns = first_compute(bounds)
    model_turns = []
    if turns is not None:
        before = f"; {bounds[turns - 1]}-bound at {sizes[turns - 1]:,}, the size computed before" if turns else ""
        model_turns = [(sizes[turns], f"the whole model is compute-bound from {var} {sizes[turns]:,} of the sizes "
                                      f"computed{before}")]

    def crossed(x: int, names: list[str]) -> str:
        return f"{var} {x:,}: compute-bound from here: {', '.join(names)}"

    on_model: dict[int, list[str]] = {x: [crossed(x, names)] for x, names in at_size.items()}
    for x, text in model_turns:
        on_model.setdefault(x, []).append(text)
    model_rings = [("model", x, "; ".join(texts)) for x, texts in on_model.items()]
    new = "new" if var == "batch" else "prompt"
    # title, y axis, unit, curves (name, values, scale; the model's last, drawn over the blocks' it sits near), the
    # dashed reference, rings (curve, size, text)
    measures = [
        ("expected step time, one GPU: the model and each block (all its repeats)", "step time (ms)", "ms",
         [*((b, t, 1e3) for b, t in blocks.items()), ("model", c["expected_s"], 1e3)], c["roofline_s"],
         [(b, x, crossed(x, names)) for (b, x), names in on_block.items()]
         + [("model", x, text) for x, text in model_turns]),
        (f"throughput: {new} tokens/s of the batch (a replica's GPUs together)", f"{new} tokens/s",
         "tokens/s", [("model", c["tokens_per_s"], 1)], None, model_rings),
        ("arithmetic intensity, the whole model's step", "FLOP/byte", "FLOP/byte",
         [("model", c["intensity"], 1)], None, model_rings)]
    out = []
    for title, axis, unit, curves, reference, rings in measures:
        points, lines_, drawn = [], [], {}
        for name, values, scale in curves:
            drawn[name] = [v * scale for v in values]
            row = [(x, y) for x, y in zip(sizes, drawn[name]) if y > 0]
            shown = "the model" if name == "model" else f"{name} (all its repeats)"
            points += [(x, y, colour[name], f"{shown} at {var} {x:,}: {y:,.4g} {unit}"
                        + (f", {bounds[index[x]]}-bound" if name == "model" else ""), True, 3) for x, y in row]
            lines_.append((row, colour[name], ""))
        if reference:
            lines_.append(([(x, v * 1e3) for x, v in zip(sizes, reference)], colour["model"], "", True))
        points += [ring(x, drawn[name][index[x]], f"{text} ({drawn[name][index[x]]:,.4g} {unit})")
                   for name, x, text in rings]
        ys = [y for ln in lines_ for _, y in ln[0]]
        out.append(f"<div><h3>{esc(title)}</h3>" + chart(points, lines_, x_label, axis, x_log=decades(sizes),
                                                           y_log=decades(ys), width=480, height=340) + "</div>")
    names = {("the model, one GPU" if n == "model" else f"{n}, all its repeats"): v for n, v in colour.items()}
    key = ("; dashed: the model's roofline (the ideal); rings: where ops and blocks turn compute-bound, and the whole "
           "model (hover names them)")
    return f"{legend(names, key)}<div class=\"charts\">{''.join(out)}</div>"


@renderer(CrossoverReport, "html")
def as_html(r: CrossoverReport, fmt: str) -> str:
    """Per phase (tabs), each op's and block's crossover marked on the varied size's log axis (ops never
    compute-bound said so), and a table of them that sorts and filters. The page's data is the JSON."""
    import json

    from opgraph.render.html import COLOURS, dot_rows, esc, filters, page, table, tabs

    data = as_json(r, "json")
    d = json.loads(data)
    colour = {"already": COLOURS["compute"], "linear solve": COLOURS["memory"], "search": COLOURS["communication"]}
    panels = []
    for phase, p in d["phases"].items():
        fixed = ", ".join(f"{k} {v:,}" for k, v in p["fixed"].items())
        xs = sorted(p["crossovers"], key=lambda x: (x["at"] is None, x["at"] or 0, x["op"]))
        never = f"never (up to {d['limit']:,})"
        marks = [(x["op"], x["at"], colour.get(x["method"], "#000"),
                  f"{x['op']}: compute-bound from {p['variable']} {x['at']:,} ({x['method']})" if x["at"] else
                  f"{x['op']}: memory- or communication-bound up to {p['variable']} {d['limit']:,}") for x in xs]
        tid = f"{phase}-crossovers"
        rows = [([(x["op"], x["op"]), ("never" if x["at"] is None else f"{x['at']:,}",
                                        d["limit"] + 1 if x["at"] is None else x["at"]), (x["method"], x["method"])],
                 {"data-bound": "never" if x["at"] is None else "compute-bound in range", "data-op": x["op"]})
                for x in p["crossovers"]]
        over = ""
        if "attention_overtakes_ffn_at_context" in p:
            at, expected = (("never (up to 2^20)" if v is None else f"{v:,}") for v in (
                p["attention_overtakes_ffn_at_context"], p["attention_overtakes_ffn_at_context_expected"]))
            over = (f"<p>attention takes more decode time than the FFN from context {esc(at)} by the roofline, "
                    f"{esc(expected)} by expected times (at the batch held).</p>")
        if "attention_overtakes_ffn_not_compared" in p:
            over = f"<p>attention is not set against the FFN: {esc(p['attention_overtakes_ffn_not_compared'])}</p>"
        drawn = sum(x["at"] is not None for x in xs)
        content = (f"<h2>{esc(phase)}: the smallest {esc(p['variable'])} at which each op is compute-bound, at "
                   f"{esc(fixed)}</h2><p class=\"note\">{drawn} of {len(xs)} marked; the rest are never compute-bound up "
                   f"to {d['limit']:,}. Colour: how it was found (already at 1 blue, linear solve red, search "
                   f"green).</p>{over}"
                   + (_charts(p) if "curves" in p else "")
                   + "<h3>each op's and block's crossover</h3>"
                   + dot_rows(marks, f"{p['variable']} ({'sequences' if p['variable'] == 'batch' else 'tokens'})",
                              never)
                   + filters(tid, ["compute-bound in range", "never"], "crossover", "op or block")
                   + table(tid, ["op (block.op) or block", f"compute-bound from {p['variable']}", "how found"], rows))
        panels.append((f"phase-{phase}", phase, content))
    title = f"opgraph crossover: {d['model']} on {r.hardware.display_name} ({d['hardware']}), fusion {d['fusion']}"
    note = ("Compute-bound: the op's compute time on one GPU exceeds its memory time and its time on the links (the "
            "roofline's verdict). Ops fused into a larger kernel have no verdict of their own and are not listed.")
    return page(title, note, tabs(panels), data)
