"""`opgraph report --format html`: the report as one self-contained page (issue 19), rendered from the very JSON
the json format writes (embedded whole): a summary, then per phase the roofline chart of every op, the memory
against the GPU's capacity, and each block's ops in a table that sorts by any column and filters by text and
verdict; phases are tabs."""

from __future__ import annotations

import json

from opgraph.render import renderer
from opgraph.render.draw import to_svg
from opgraph.render.html import COLOURS, chart as draw_chart, esc, filters, page, table, tabs
from opgraph.render.memory import stack_html
from opgraph.render.report import Report, as_json
from opgraph.render.text import gb, seconds, sig


def _share(x: float) -> str:
    return f"{x:.1%}"


def _summary(name: str, p: dict, gpus: int) -> str:
    m, mem = p["model"], p["memory"]
    rows = [("expected step time", seconds(m["expected_s"])), ("roofline (the ideal)", seconds(m["roofline_s"])),
            ("new tokens/s per GPU, expected", sig(m["expected_tokens_per_s_per_gpu"]))]
    if gpus > 1:
        rows.append((f"new tokens/s, the group of {gpus} GPUs", sig(m["expected_tokens_per_s"])))
    rows += [("verdict", m["bound"]),
             ("memory per GPU", f"{gb(mem['total_bytes'], 1)} of {gb(mem['capacity_bytes'], 0)}: "
                                f"{'fits' if mem['fits'] else 'does not fit'}")]
    cells = "".join(f"<tr><td class=text>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    top = table(f"{name}-top", ["block", "kernel", "class", "share of the step, expected", "verdict"],
                [([(k["block"], k["block"]), (k["kernel"], k["kernel"]), (k["class"], k["class"]),
                   (_share(k["expected_share"]), k["expected_share"]), (k["bound"], k["bound"])],
                  {"data-bound": k["bound"]}) for k in p["top_kernels"]])
    return f"<table><tbody>{cells}</tbody></table><h3>kernels that take most of the step</h3>{top}"


def _roofline(p: dict, spec: dict, dtype: str) -> tuple[str, int, int]:
    """The chart, the ops drawn and the ops not drawn (no FLOPs, or no bytes of their own: no place on log axes)."""
    peak = spec["matrix_flops_per_s"].get(dtype) or max(spec["matrix_flops_per_s"].values())
    bw, vector = spec["bandwidth_bytes_per_s"], spec["vector_flops_per_s"]
    points, skipped = [], 0
    for b in p["blocks"]:
        for o in b["ops"]:
            if o["flops"] > 0 and o["bytes"] > 0 and o["expected_s"] > 0 and o["intensity"] is not None:
                rate = o["flops"] / o["expected_s"]
                points.append((o["intensity"], rate, COLOURS.get(o["bound"], "#000"),
                               f"{b['name']}.{o['name']} ({o['kind']}, kernel {o['kernel']}): "
                               f"{o['intensity']:,.1f} FLOP/B, {rate / 1e12:,.2f} TFLOP/s at its expected time, "
                               f"{o['bound']}"))
            else:
                skipped += 1
    xs = [x for x, *_ in points] or [1.0]
    lo, hi = min(min(xs), 0.1), max(max(xs), 10 * peak / bw)
    ridge = peak / bw
    roofs = [([(lo, lo * bw), (ridge, peak), (hi, peak)], "#222", f"{dtype} matrix roof {peak / 1e12:,.0f} TFLOP/s"),
             ([(lo, min(lo * bw, vector)), (vector / bw, vector), (hi, vector)], "#888",
              f"vector roof {vector / 1e12:,.0f} TFLOP/s")]
    chart = draw_chart(points, roofs, "arithmetic intensity (FLOP/byte)", "achieved FLOP/s at the expected time")
    return chart, len(points), skipped


def _ops(name: str, b: dict) -> str:
    tid = f"{name}-{b['name']}-ops"
    rows = [([(o["name"], o["name"]), (o["kind"], o["kind"]), (o["kernel"], o["kernel"]),
              (f"{o['flops']:,}", o["flops"]), (f"{o['bytes']:,}", o["bytes"]),
              ("∞" if o["intensity"] is None else f"{o['intensity']:,.1f}",
               1e300 if o["intensity"] is None else o["intensity"]),
              (seconds(o["roofline_s"]), o["roofline_s"]), (seconds(o["expected_s"]), o["expected_s"]),
              (_share(o["expected_share"]), o["expected_share"]), (o["bound"], o["bound"])],
             {"data-bound": o["bound"], "data-op": o["name"]}) for o in b["ops"]]
    verdicts = sorted({o["bound"] for o in b["ops"]})
    headers = ["op", "kind", "kernel", "FLOPs", "bytes", "FLOP/B", "roofline", "expected", "% block, expected",
               "verdict"]
    return (f"<h3>block {esc(b['name'])} x {b['count']} (one instance; expected {seconds(b['totals']['expected_s'])}, "
            f"roofline {seconds(b['totals']['roofline_s'])})</h3>{filters(tid, verdicts)}{table(tid, headers, rows)}")


def _graph(phase: str, b) -> str:
    """A block's graph (what `opgraph graph` writes as DOT or Mermaid), drawn: its kernels as bands, each tensor's
    hand-off solid where it is materialized, dashed where it stays on chip, its fate on hover."""
    picture = to_svg(b.graph, b.partition, f"{phase}-{b.name}")
    return (f"<details open><summary>the graph of block {esc(b.name)}: {len(b.kernels)} kernels, one instance"
            f"</summary><p class=\"note\">Boxes are ops (with their weights' MB), bands their kernels; a solid edge is a "
            f"tensor written to memory and read back (its MB beside the first read into a kernel), a dashed one stays "
            f"on chip; hover an edge for its tensor's fate.</p><div class=\"wide\">{picture}</div></details>")


@renderer(Report, "html")
def as_html(r: Report, fmt: str) -> str:
    data = as_json(r, "json")
    d = json.loads(data)
    spec, dtype = d["hardware_spec"], d["precision"].get("activations", "bf16").split("/")[0]
    costs = {c.phase.name: c for c in r.costs}
    panels = []
    for name, p in d["phases"].items():
        chart, drawn, skipped = _roofline(p, spec, dtype)
        graphs = {b.name: _graph(name, b) for b in costs[name].blocks}
        sizes = ", ".join(f"{k} {p[k]:,}" for k in ("batch", "seq_len", "context") if k in p)
        content = (f"<h2>{esc(name)}: {esc(sizes)}</h2>{_summary(name, p, p.get('gpus', 1))}"
                   f"<h3>roofline</h3><p class=\"note\">{drawn} ops at their intensity and their FLOPs over their "
                   f"expected time; {skipped} without FLOPs or bytes of their own are not drawn. Colour: verdict "
                   f"(compute blue, memory red, communication green, latency yellow).</p>{chart}"
                   f"<h3>memory, one GPU</h3>{stack_html(p['memory'])}" + "".join(_ops(name, b) + graphs[b["name"]] for b in p["blocks"]))
        panels.append((f"phase-{name}", name, content))
    title = f"opgraph report: {d['model']} on {spec['display_name']} ({d['hardware']}), fusion {d['fusion']}"
    note = (f"Times are expected (the GPU's time model, {esc(d['time_model']['name'])}) beside the roofline (FLOPs at "
            f"the peak, bytes at the bandwidth); precision "
            f"{esc(', '.join(f'{k} {v}' for k, v in d['precision'].items()))}; figures are one GPU's.")
    return page(title, note, tabs(panels), data)
