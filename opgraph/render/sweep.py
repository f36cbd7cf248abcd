"""`opgraph sweep`: one row per point."""

from __future__ import annotations

from opgraph.analysis.sweep import SweepReport
from opgraph.render import renderer
from opgraph.render.text import lines, sig, table, to_csv, to_json


@renderer(SweepReport, "json")
def as_json(r: SweepReport, fmt: str) -> str:
    return to_json({"model": r.model, "fusion": r.plan.name,
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
    return lines(table(rows, header, fmt), "", note)
