"""`opgraph calibrate`: the fitted parameters per kernel class and their held-out error."""

from __future__ import annotations

import attrs

from opgraph.analysis.calibrate import Calibration
from opgraph.render import renderer
from opgraph.render.text import header, heading, lines, table, to_json


@renderer(Calibration, "table", "markdown")
def as_text(c: Calibration, fmt: str) -> str:
    hw, tm = c.hardware, c.model
    out = header(f"opgraph calibrate: {c.source} on {hw.display_name} ({hw.name})", fmt,
                 [f"held out: {c.holdout:.0%} of the rows (seed {c.seed}), never seen by the fit; error = (predicted - "
                  f"measured) / measured", "exponentials: " + (f"{tm.exp_rate:.3g} per second, counted apart from "
                                                               f"FLOPs" if tm.exp_rate else "not counted apart")])
    rows = [[label, f"{f.train:,}" if i == 0 else "", f"{p.latency_s * 1e6:.2f}", f"{p.compute_efficiency:.3f}",
             f"{p.memory_efficiency:.3f}", f"{p.overlap:.2f}", _tile(p),
             f"{p.per_row_s * 1e9:.2f}" if p.per_row_s else "-",
             f"{p.per_input_s * 1e12:.3f}" if p.per_input_s else "-",
             _depth(p),
             f"{p.link_efficiency:.3f}" if p.per_step_s is not None else "-",
             f"{p.per_step_s * 1e6:.3f}" if p.per_step_s is not None else "-",
             _cache(p, hw.bandwidth),
             f"{p.per_tile_s * 1e9:.3f}" if p.per_tile_s else "-"] for f in c.classes
            for i, (label, p) in enumerate(_tables(f))]
    out += ["", heading("fitted parameters", fmt), "",
            table(rows, ["class", "fitted on", "latency µs", "compute eff.", "memory eff.", "overlap",
                         "tile m x n / wave", "ns/row", "ps/input", "ns/k (to k)", "link eff.",
                         "µs/step", "L2 MB at pace", "ns/tile"], fmt, colalign=("left", *["right"] * 13))]
    rows = [[f.kind, f"{f.after.count:,}", f"{f.before.median:.1%}", f"{f.before.p90:.1%}", f"{f.after.median:.1%}",
             f"{f.after.p90:.1%}", f"{f.after.bias:+.1%}"] for f in c.classes]
    out += ["", heading("held-out error", fmt), "",
            table(rows, ["class", "held out", "roofline median", "roofline p90", "fitted median", "fitted p90",
                         "fitted bias"], fmt, colalign=("left", *["right"] * 6))]
    return lines(out)


def _tables(f) -> list:
    """(label, parameters) of a class's tables: its own, or with tables by rows one a range of rows (m)."""
    if not f.params.by_rows:
        return [(f.kind, f.params)]
    return [(f"{f.kind}, m {lo + 1}-{hi}" if hi is not None else f"{f.kind}, m > {lo}", t)
            for lo, hi, t in f.params.ranges()]


def _cache(p, bandwidth: float) -> str:
    """A vector class's L2 stretch as the table shows it: its bytes (cache_s at the datasheet bandwidth) and the share
    of that bandwidth it runs at (15.6 at 1.89x)."""
    return f"{p.cache_s * bandwidth / 1e6:,.1f} at {p.cache_efficiency:.2f}x" if p.cache_s else "-"


def _depth(p) -> str:
    """A GEMM's serial k-loop as the table shows it: ns per unit of k, and the k where it is split (1.37 (2,812))."""
    if not p.per_depth_s:
        return "-"
    return f"{p.per_depth_s * 1e9:.3f}" + (f" ({p.split_depth:,.0f})" if p.split_depth else "")


def _tile(p) -> str:
    """A GEMM tiling as the table shows it: 64 (rows padded to 64), 64x64 (output tiles) or 64x64 / 132 (in
    waves of 132 tiles)."""
    tile = f"{p.tile_m}x{p.tile_n}" if p.tile_n > 1 else str(p.tile_m)
    return f"{tile} / {p.tiles_per_wave}" if p.tiles_per_wave else tile


@renderer(Calibration, "json")
def as_json(c: Calibration, fmt: str) -> str:
    def stats(s):
        return {"count": s.count, "median_abs_error": s.median, "p90_abs_error": s.p90, "median_error": s.bias}
    return to_json({"source": c.source, "hardware": c.hardware.name, "holdout": c.holdout, "seed": c.seed,
                    "exp_rate_per_s": c.model.exp_rate, "units": {"*_s": "s"},
                    "classes": {f.kind: {"fitted_on": f.train, **attrs.asdict(f.params),
                                         "held_out_roofline": stats(f.before), "held_out_fitted": stats(f.after)}
                                for f in c.classes}})
