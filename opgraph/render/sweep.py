"""`opgraph sweep`: one row per point."""

from __future__ import annotations

from opgraph.analysis.sweep import SweepReport
from opgraph.render import renderer
from opgraph.render.text import lines, seconds, sig, table, to_csv, to_json


@renderer(SweepReport, "json")
def as_json(r: SweepReport, fmt: str) -> str:
    return to_json({"model": r.model, "fusion": r.plan.name, "notes": list(r.notes),
                    "units": {"*_s": "s (one GPU's step)", "block_expected_s": "s, one instance of each block",
                              "memory_bytes": "byte, one GPU"}, "points": [
        {"hardware": p.hardware, "phase": p.phase, "batch": p.batch, p.length_name: p.length,
         "roofline_s": p.model_time_s, "expected_s": p.expected_s, "block_expected_s": p.block_expected_s,
         "flops": p.model_flops,
         "bytes": p.model_bytes, "intensity": p.intensity, "bound": p.bound, "dominant_op": p.dominant_op,
         "dominant_expected_share": p.dominant_share, "memory_bytes": p.footprint_bytes, "fits": p.fits}
        for g in r.grids for p in g.points()]})


@renderer(SweepReport, "csv")
def as_csv(r: SweepReport, fmt: str) -> str:
    return to_csv(["hardware", "phase", "batch", "seq_len_or_context", "roofline_s", "expected_s", "flops", "bytes",
                   "intensity", "bound", "dominant_op", "dominant_expected_share", "memory_bytes", "fits"],
                  ([p.hardware, p.phase, p.batch, p.length, p.model_time_s, p.expected_s, p.model_flops, p.model_bytes,
                    p.intensity, p.bound, p.dominant_op, p.dominant_share, p.footprint_bytes, p.fits]
                   for g in r.grids for p in g.points()))


@renderer(SweepReport, "table", "markdown")
def as_text(r: SweepReport, fmt: str) -> str:
    header = ["hardware", "phase", "batch", "seq_len/context", f"{r.main_block} µs, expected", "roofline ms",
              "expected ms", "FLOP/B", "bound", "dominant op (% of expected)", "memory GB"]
    rows = [[p.hardware, p.phase, p.batch, p.length, sig(p.block_expected_s[r.main_block] * 1e6),
             sig(p.model_time_s * 1e3), sig(p.expected_s * 1e3), sig(p.intensity), p.bound,
             f"{p.dominant_op} ({p.dominant_share * 100:.0f}%)",
             sig(p.footprint_bytes / 1e9) + ("" if p.fits else " DOES NOT FIT")] for g in r.grids for p in g.points()]
    note = ("Times are one GPU's step (every GPU of a group steps together). memory GB: one GPU's weights, KV cache and peak activations for the step (opgraph memory); a point marked "
            "DOES NOT FIT exceeds the GPU's capacity, and its times are as if it fitted")
    return lines(table(rows, header, fmt), "", note, *(f"note: {n}" for n in r.notes))


MOST_MARKS = 2000  # marks a chart at most
MOST_CURVES = 7  # curves a chart at most (the bright scheme's colours)
MOST_ROWS = 500  # table rows at most; the embedded data holds every point


def _tokens(p: dict) -> float:
    """Tokens of the step's batch over its expected time: new tokens in decode, prompt tokens in prefill."""
    return p["batch"] * p.get("seq_len", 1) / p["expected_s"]


def _grid_panel(hw: str, phase: str, pts: list[dict]) -> tuple[str, int]:
    """Expected time (the roofline dashed), throughput and intensity against the axis with more values, one curve
    for each value of the other (at most MOST_CURVES of them, spread), each with a ring at its first point where the
    model is compute-bound; the panel and its marks a chart (points and rings)."""
    from opgraph.render.html import chart, decades, esc, first_compute, legend, palette, ring, spread

    length = "seq_len" if phase == "prefill" else "context"
    values = {k: sorted({p[k] for p in pts}) for k in ("batch", length)}
    x, s = ("batch", length) if len(values["batch"]) >= len(values[length]) else (length, "batch")
    curves = spread(values[s], MOST_CURVES)
    xs = spread(values[x], max(1, MOST_MARKS // len(curves)))
    at = {(p[x], p[s]): p for p in pts}
    turns = {}  # curve: its first point (of all, drawn or not) where the model is compute-bound, and the one before
    for v in curves:
        row = [at[(u, v)] for u in values[x] if (u, v) in at]
        i = first_compute([p["bound"] for p in row])
        if i is not None:
            turns[v] = (row[i], row[i - 1] if i else None)
    colour = palette(f"{s} {v:,}" for v in curves)
    new = "prompt" if phase == "prefill" else "new"
    measures = [  # heading, y axis (unit), the value at a point, unit of hover text, the dashed reference
        ("expected step time, one GPU", "step time (ms)", lambda p: p["expected_s"] * 1e3, "ms", "roofline_s"),
        (f"throughput: {new} tokens/s of the batch (a replica's GPUs together)", f"{new} tokens/s", _tokens,
         "tokens/s", None),
        ("arithmetic intensity, the whole model", "FLOP/byte", lambda p: p["intensity"], "FLOP/byte", None)]
    out = []
    for heading, axis, value, unit, reference in measures:
        points, lines_, rings = [], [], []  # rings drawn last, over every curve's points
        for v in curves:
            c = colour[f"{s} {v:,}"]
            row = [at[(u, v)] for u in xs if (u, v) in at and (value(at[(u, v)]) or 0) > 0]
            points += [(p[x], value(p), c, f"batch {p['batch']:,}, {length} {p[length]:,}: {value(p):,.4g} {unit}",
                        True, 4 if len(xs) <= 30 else 2) for p in row]
            lines_.append(([(p[x], value(p)) for p in row], c, ""))
            if reference:
                lines_.append(([(p[x], p[reference] * 1e3) for p in row], c, "", True))
            if v in turns and (value(turns[v][0]) or 0) > 0:
                p, before = turns[v]
                was = f" ({before['bound']}-bound at {x} {before[x]:,})" if before else " (from the first point)"
                rings.append(ring(p[x], value(p), f"{s} {v:,}: compute-bound from {x} {p[x]:,}{was}: "
                                                  f"{value(p):,.4g} {unit}"))
        ys = [y for ln in lines_ for _, y in ln[0]]
        out.append(f"<div><h3>{esc(heading)}</h3>" + chart(
            points + rings, lines_, f"{x} ({'sequences' if x == 'batch' else 'tokens'})", axis,
            x_log=decades(values[x]), y_log=decades(ys), width=480, height=340) + "</div>")
    shown = (f"{len(curves)} of the {len(values[s]):,} values of {s} drawn as curves, at {len(xs):,} of the "
             f"{len(values[x]):,} values of {x}; the table and the embedded data hold every point")
    dashed = ("dashed: the roofline (the ideal) of the same colour's curve; a ring: where that curve turns "
              "compute-bound (its first compute-bound point)")
    return (f"<h2>{esc(hw)}, {esc(phase)}: {len(pts):,} points</h2><p class=\"note\">{esc(shown)}.</p>"
            f"{legend(colour, '; ' + dashed)}<div class=\"charts\">{''.join(out)}</div>",
            len(curves) * len(xs) + len(turns))


@renderer(SweepReport, "html")
def as_html(r: SweepReport, fmt: str) -> str:
    """Per GPU and phase (tabs) the curves against the swept axis; a table of the points that sorts and filters.
    The page's data is the JSON."""
    import json

    from opgraph.render.html import esc, every, filters, page, table, tabs

    data = as_json(r, "json")
    d = json.loads(data)
    grids: dict[tuple[str, str], list[dict]] = {}
    for p in d["points"]:
        grids.setdefault((p["hardware"], p["phase"]), []).append(p)
    panels = [(f"grid-{hw}-{phase}", f"{hw} {phase}", _grid_panel(hw, phase, pts)[0])
              for (hw, phase), pts in grids.items()]
    listed, step = every(d["points"], MOST_ROWS)
    rows = [([(p["hardware"], p["hardware"]), (p["phase"], p["phase"]), (f"{p['batch']:,}", p["batch"]),
              (f"{p.get('seq_len', p.get('context')):,}", p.get("seq_len", p.get("context"))),
              (seconds(p["expected_s"]), p["expected_s"]), (seconds(p["roofline_s"]), p["roofline_s"]),
              (sig(_tokens(p)), _tokens(p)), (sig(p["intensity"]), p["intensity"]), (p["bound"], p["bound"]),
              (f"{p['dominant_op']} ({p['dominant_expected_share']:.0%})", p["dominant_op"]),
              (sig(p["memory_bytes"] / 1e9), p["memory_bytes"]), ("yes" if p["fits"] else "NO", int(p["fits"]))],
             {"data-bound": p["bound"], "data-op": f"{p['hardware']}:{p['phase']}:{p['batch']}:"
                                                   f"{p.get('seq_len', p.get('context'))}"}) for p in listed]
    headers = ["GPU", "phase", "batch (sequences)", "seq_len / context (tokens)", "expected step, one GPU",
               "roofline step, one GPU", "tokens/s of the batch (prefill: prompt, decode: new)", "FLOP/byte",
               "verdict", "dominant op (% of expected)", "memory per GPU (GB)", "fits"]
    title = f"opgraph sweep: {r.model}, fusion {r.plan.name}"
    listed_note = (f"{len(listed):,} of the {len(d['points']):,} points listed (every {step}th)" if step > 1 else
                   f"all {len(d['points']):,} points")
    note = ("Times are one GPU's step (every GPU of a group steps together); tokens/s are the step's batch over its "
            "expected time; memory is one GPU's weights, KV cache and peak activations.")
    body = (f"{tabs(panels)}"
            f"<h2>points</h2><p class=\"note\">{esc(listed_note)}; --format csv gives them all.</p>"
            f"{filters('points', sorted({p['bound'] for p in d['points']}), hint='GPU, phase or op')}"
            f"{table('points', headers, rows)}")
    return page(title, note, body, data, r.notes)
