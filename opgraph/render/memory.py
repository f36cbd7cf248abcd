"""`opgraph memory` (and the memory lines of `report` and `generate`): footprints against GPU capacity."""

from __future__ import annotations

from opgraph.analysis.memory import Footprint, MaxBatch, MemoryReport
from opgraph.render import renderer
from opgraph.errors import noun
from opgraph.render.text import capacity, gb, header, heading, lines, precision_line, sizes, table, to_json


def verdict(fp: Footprint) -> str:
    """Plain words: 'fits: 20.4 GB of 80 GB (25%), 59.6 GB free' or 'DOES NOT FIT: needs ...'."""
    cap = fp.capacity
    if fp.fits:
        return f"fits: {gb(fp.total)} of {capacity(cap)} ({fp.total / cap:.0%}), {gb(cap - fp.total)} free"
    return f"DOES NOT FIT: needs {gb(fp.total)}, the GPU has {capacity(cap)} ({gb(fp.total - cap)} over)"


def footprint_dict(fp: Footprint) -> dict:
    """Exact byte counts for scripts."""
    peak = fp.peak_block
    return {**fp.phase.describe(), "weight_bytes": fp.weight_bytes, "kv_cache_bytes": fp.kv_cache_bytes,
            "activation_bytes": fp.activation_bytes, "total_bytes": fp.total, "capacity_bytes": int(fp.capacity),
            "fits": fp.fits, "peak": {"block": peak.name, "kernel": peak.peak.kernel, "alive": list(peak.peak.alive)},
            "blocks": [{"name": b.name, "count": b.count, "kv_cache_bytes": b.kv_cache_bytes,
                        "peak_activation_bytes": b.peak.bytes, "peak_kernel": b.peak.kernel,
                        "peak_alive": list(b.peak.alive)} for b in fp.blocks]}


def _rows(fp: Footprint) -> list[list[str]]:
    """Table rows (item, GB, detail) for one footprint; the total row carries the verdict."""
    kv = ", ".join(f"{b.name} {b.count} x {b.kv_cache_bytes / 1e6:,.1f} MB" for b in fp.blocks if b.kv_cache_bytes)
    peak = fp.peak_block
    others = ", ".join(f"{b.name} {b.peak.bytes / 1e6:,.2f} MB" for b in fp.blocks if b is not peak)
    return [
        ["weights", f"{fp.weight_bytes / 1e9:,.3f}", "all weights as stored"],
        ["KV cache", f"{fp.kv_cache_bytes / 1e9:,.3f}", kv or "no KV cache"],
        ["peak activations", f"{fp.activation_bytes / 1e9:,.3f}",
         f"{peak.name}, while kernel {peak.peak.kernel or '-'} runs: {', '.join(peak.peak.alive) or '-'}"
         + (f" (other blocks: {others})" if others else "")],
        ["total", f"{fp.total / 1e9:,.3f}", verdict(fp)],
    ]


def _cache_line(fp: Footprint) -> str:
    ph = fp.phase
    if ph.name == "prefill":
        return (f"the step writes K and V for all {ph.new_tokens:,} positions of each sequence (a sliding-window "
                f"layer included), and a recurrent layer its state")
    return (f"after the step the KV cache holds context+1 = {ph.keys:,} tokens per sequence (at most the window "
            f"in a sliding-window layer, the current chunk in a chunked one; a recurrent layer's state whatever "
            f"the context)")


def _max_batch_line(fp: Footprint, mb: MaxBatch) -> str:
    length = sizes({k: v for k, v in fp.phase.describe().items() if k != "batch"})
    over = f"batch {mb.batch + 1:,} needs {gb(mb.over.total)}: does not fit"
    if mb.batch == 0:
        return f"largest batch that fits at {length}: none; {over}"
    how = ("solved exactly (memory = weights + batch x per-sequence bytes), checked at both batches"
           if mb.method == "linear" else "found by search, checked at both batches")
    return f"largest batch that fits at {length}: {mb.batch:,} ({gb(mb.fits.total)}); {over}; {how}"


@renderer(MemoryReport, "json")
def as_json(r: MemoryReport, fmt: str) -> str:
    first = r.phases[0].footprint
    return to_json({
        "model": r.model, "hardware": r.hardware.name, "fusion": r.plan.name, "capacity_bytes": int(r.hardware.capacity),
        "gpus": r.gpus, "replicas": r.replicas, "parallel": r.parallel,
        "precision": first.precision, "units": {"*_bytes": "byte"},
        "phases": {p.footprint.phase.name: {**footprint_dict(p.footprint), "max_batch": {
            "batch": p.max_batch.batch, "group_sequences": r.replicas * p.max_batch.batch, "method": p.max_batch.method,
            "total_bytes": p.max_batch.fits.total if p.max_batch.fits else None,
            "next_batch_total_bytes": p.max_batch.over.total}, "notes": list(p.notes)} for p in r.phases}})


@renderer(MemoryReport, "table", "markdown")
def as_text(r: MemoryReport, fmt: str) -> str:
    hw, first = r.hardware, r.phases[0].footprint
    group = ([f"per GPU of a group of {r.gpus} ({r.parallel}): every figure is one GPU's; the batch is each "
              f"replica's, and the group serves {r.replicas} such {noun(r.replicas, 'batch', 'batches')} at once"]
             if r.gpus > 1 else [])
    out = header(f"opgraph memory: {r.model} on {hw.display_name} ({hw.name}), {capacity(hw.capacity)} of memory; "
                 f"fusion {r.plan.name}", fmt, [precision_line(first.precision), *group])
    for p in r.phases:
        fp = p.footprint
        whole = (f"; the group of {r.gpus}: {r.replicas * p.max_batch.batch:,} sequences"
                 if r.gpus > 1 and p.max_batch.batch else "")
        out += ["", heading(f"{fp.phase.name.upper()}: {sizes(fp.phase.describe())}: {_cache_line(fp)}", fmt), "",
                table(_rows(fp), ["item", "GB", "detail"], fmt, colalign=("left", "right")),
                _max_batch_line(fp, p.max_batch) + whole, *(f"note: {n}" for n in p.notes)]
    return lines(out, "", "Peak activations: the most materialized tensors alive at once while a block's kernels run "
                          "in order (on-chip intermediates cost nothing); layers run one after another, so one block's "
                          "peak is the model's. GB = 10^9 bytes, MB = 10^6.")


def stack_html(fp: dict, scope: str = "one GPU") -> str:
    """A footprint's record (footprint_dict) drawn: weights, KV cache and peak activations against the capacity, with
    the figures in a table."""
    from opgraph.render.html import BRIGHT, esc, stack

    parts = [("weights", fp["weight_bytes"], BRIGHT[0]), ("KV cache", fp["kv_cache_bytes"], BRIGHT[1]),
             ("activations at their peak", fp["activation_bytes"], BRIGHT[3])]
    rows = parts + [("total", fp["total_bytes"], ""), ("capacity", fp["capacity_bytes"], "")]
    cells = "".join(f"<tr><td class=text>{esc(k)}</td><td>{v / 1e9:,.3f}</td><td>{v / fp['capacity_bytes']:.1%}</td>"
                    f"</tr>" for k, v, _ in rows)
    return (stack(parts, fp["capacity_bytes"], scope) + f"<table><thead><tr><th>{esc(scope)}</th><th>GB</th>"
            f"<th>of capacity</th></tr></thead><tbody>{cells}</tbody></table>")


@renderer(MemoryReport, "html")
def as_html(r: MemoryReport, fmt: str) -> str:
    """Per phase (tabs): the stack against the capacity, where the KV cache and the activations' peak come from, and
    the largest batch that fits. The page's data is the JSON."""
    import json

    from opgraph.render.html import esc, page, table, tabs

    data = as_json(r, "json")
    d = json.loads(data)
    panels = []
    for p, (name, fp) in zip(r.phases, d["phases"].items()):
        blocks = table(f"{name}-blocks", ["block", "repeats", "KV cache, one instance (MB)", "peak activations (MB)",
                                          "at the peak: kernel: tensors alive"],
                       [([(b["name"], b["name"]), (f"{b['count']:,}", b["count"]),
                          (f"{b['kv_cache_bytes'] / 1e6:,.2f}", b["kv_cache_bytes"]),
                          (f"{b['peak_activation_bytes'] / 1e6:,.3f}", b["peak_activation_bytes"]),
                          (f"{b['peak_kernel'] or '-'}: {', '.join(b['peak_alive']) or '-'}", b["peak_kernel"] or "")],
                         {"data-op": b["name"]}) for b in fp["blocks"]])
        whole = (f"; the group of {d['gpus']}: {fp['max_batch']['group_sequences']:,} sequences"
                 if d["gpus"] > 1 and fp["max_batch"]["batch"] else "")
        content = (f"<h2>{esc(name)}: {esc(sizes(p.footprint.phase.describe()))}</h2><p class=\"note\">"
                   f"{esc(_cache_line(p.footprint))}.</p>{stack_html(fp)}<h3>by block (one GPU; one instance of each)"
                   f"</h3>{blocks}<p>{esc(_max_batch_line(p.footprint, p.max_batch))}{esc(whole)}</p>"
                   + "".join(f"<p class=\"note\">note: {esc(n)}</p>" for n in p.notes))
        panels.append((f"phase-{name}", name, content))
    hw = r.hardware
    title = f"opgraph memory: {d['model']} on {hw.display_name} ({hw.name}), fusion {d['fusion']}"
    group = (f" Per GPU of a group of {d['gpus']} ({d['parallel']}): every figure is one GPU's; the batch is each "
             f"replica's." if d["gpus"] > 1 else "")
    note = (f"{esc(precision_line(d['precision']))}; GB = 10^9 bytes.{esc(group)} Peak activations: the most "
            f"materialized tensors alive at once while a block's kernels run in order.")
    return page(title, note, tabs(panels), data)
