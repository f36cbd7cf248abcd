"""Render cost records. Nothing here computes a cost: it only formats what `cost` produced.

JSON and CSV carry exact integers in base units (FLOP, byte, second); tables use human units
(GFLOP, MB = 1e6 bytes, µs) stated in their headers.
"""

from __future__ import annotations

import csv
import io
import json
import math

from tabulate import tabulate

from opgraph.core.cost import BlockCost, PhaseCost, Roofline

FORMATS = ("table", "json", "csv", "markdown")
UNITS = {"flops": "FLOP", "bytes": "byte", "time_s": "s", "intensity": "FLOP/byte", "share": "fraction of block time"}


# -- numbers for people ------------------------------------------------------------------------------
def sig(value: float, digits: int = 3) -> str:
    """`digits` significant figures without scientific notation, thousands separated: 0.000524, 14.3, 1,234."""
    if value == 0:
        return "0"
    if math.isinf(value):
        return "∞"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{min(decimals, 9)}f}"


def scaled(value: float, unit: str, *, base: int = 1000) -> str:
    """A value with an SI prefix chosen to fit: 16.1 GB, 8.03 B params, 475 TFLOP."""
    prefixes = ["", "k", "M", "G", "T", "P", "E"]
    i = 0
    while abs(value) >= base and i < len(prefixes) - 1:
        value /= base
        i += 1
    return f"{sig(value)} {prefixes[i]}{unit}"


def seconds(s: float) -> str:
    if s >= 1:
        return f"{sig(s)} s"
    if s >= 1e-3:
        return f"{sig(s * 1e3)} ms"
    return f"{sig(s * 1e6)} µs"


# -- JSON --------------------------------------------------------------------------------------------
def _intensity(r: Roofline) -> float | None:
    return None if math.isinf(r.intensity) else r.intensity


def _roofline_dict(r: Roofline) -> dict:
    t = r.traffic
    return {
        "flops": r.flops, "bytes": r.bytes, "bytes_read": t.bytes_read, "bytes_written": t.bytes_written,
        "weight_bytes": t.weight_bytes, "activation_bytes": t.activation_bytes, "kv_cache_bytes": t.kv_cache_bytes,
        "intensity": _intensity(r), "bound": r.bound, "compute_s": r.compute_s, "memory_s": r.memory_s,
        "time_s": r.time_s,
    }


def _block_dict(b: BlockCost) -> dict:
    ops = []
    for o in b.ops:
        rec = {"name": o.name, "kind": o.kind, "fn": o.fn, "kernel": o.kernel}
        rec.update(_roofline_dict(o.cost))
        rec["share"] = o.share
        ops.append(rec)
    totals = _roofline_dict(b.totals)
    totals["kernels"] = len(b.kernels)
    return {"name": b.name, "count": b.count, "ops": ops, "totals": totals,
            "kernels": [{"name": k.name, "ops": list(k.ops)} for k in b.kernels],
            "materialized": sorted(b.materialized)}


def _phase_dict(p: PhaseCost) -> dict:
    model = {"params": p.params, "weight_bytes": p.weight_bytes}
    model.update({k: v for k, v in _roofline_dict(p.totals).items()
                  if k in ("flops", "bytes", "intensity", "bound", "time_s")})
    model["tokens_per_s"] = p.phase.tokens / p.totals.time_s
    return {**p.phase.describe(), "notes": list(p.notes), "blocks": [_block_dict(b) for b in p.blocks],
            "model": model}


def to_dict(results: list[PhaseCost]) -> dict:
    first = results[0]
    hw = first.hardware
    return {
        "model": first.model,
        "hardware": hw.name,
        "fusion": first.plan.name,
        "hardware_spec": {"display_name": hw.display_name, "matrix_flops_per_s": hw.matrix_flops,
                          "vector_flops_per_s": hw.vector_flops, "bandwidth_bytes_per_s": hw.bandwidth,
                          "capacity_bytes": hw.capacity, "source": hw.source},
        "units": UNITS,
        "precision": first.precision,
        "time_model": {"kernel_launch_s": hw.kernel_launch_s, "overlap": hw.overlap},
        "phases": {p.phase.name: _phase_dict(p) for p in results},
    }


# -- tables ------------------------------------------------------------------------------------------
OP_HEADERS = ["op", "kind", "GFLOP", "read MB", "written MB", "FLOP/B", "bound", "time µs", "% block"]


def _row(label: str, kind: str, r: Roofline, share: float | None) -> list[str]:
    t = r.traffic
    return [label, kind, sig(r.flops / 1e9), sig(t.bytes_read / 1e6), sig(t.bytes_written / 1e6),
            sig(r.intensity), r.bound, sig(r.time_s * 1e6), "" if share is None else f"{share * 100:.1f}"]


def _block_table(b: BlockCost, tablefmt: str) -> str:
    rows = [_row(o.name, o.kind, o.cost, o.share) for o in b.ops]
    rows.append(_row(f"{b.name} total", f"{len(b.kernels)} kernels", b.totals, 1.0))
    return tabulate(rows, OP_HEADERS, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left", "left", *["right"] * 5, "left", "right", "right"))


def _kernel_line(b: BlockCost) -> str:
    if len(b.kernels) == len(b.ops):
        return f"{len(b.kernels)} kernels: every op is its own kernel"
    fused = [f"{k.ops[0]}..{k.ops[-1]} ({len(k.ops)} ops)" if len(k.ops) > 1 else k.ops[0] for k in b.kernels]
    return f"{len(b.kernels)} kernels: " + ", ".join(fused)


def _phase_title(p: PhaseCost) -> str:
    ph = p.phase
    if ph.name == "prefill":
        return f"PREFILL: batch {ph.batch} x seq_len {ph.new_tokens} ({ph.tokens:,} tokens)"
    return f"DECODE: batch {ph.batch}, context {ph.past} (one new token per sequence, attending over up to {ph.keys} keys)"


def _model_line(p: PhaseCost) -> str:
    t = p.totals
    step = "prompt tokens/s" if p.phase.name == "prefill" else "new tokens/s at this context"
    return (f"model: {p.params:,} params, {scaled(p.weight_bytes, 'B')} of weights; "
            f"{scaled(t.flops, 'FLOP')}, {scaled(t.bytes, 'B')} moved, {sig(t.intensity)} FLOP/B, "
            f"{t.bound}-bound, {seconds(t.time_s)} ({sig(p.phase.tokens / t.time_s)} {step})")


def _header(p: PhaseCost) -> list[str]:
    hw, plan = p.hardware, p.plan
    rates = ", ".join(f"{dt} {sig(r / 1e12)}" for dt, r in hw.matrix_flops.items())
    lines = [
        f"opgraph report: {p.model} on {hw.display_name} ({hw.name})",
        f"hardware: matrix TFLOP/s {rates}; vector {sig(hw.vector_flops / 1e12)} TFLOP/s; "
        f"{sig(hw.bandwidth / 1e9)} GB/s",
        f"fusion: {plan.name}" + (f" ({plan.description})" if plan.description else ""),
        "precision: " + "; ".join(f"{role.replace('_', ' ')} {dt}" for role, dt in p.precision.items()),
    ]
    if hw.kernel_launch_s or hw.overlap != 1.0:
        lines.append(f"time model: {sig(hw.kernel_launch_s * 1e6)} µs launch per kernel, overlap {hw.overlap} "
                     f"(1.0 = max(compute, memory), 0.0 = sum)")
    return lines


def render_text(results: list[PhaseCost], markdown: bool = False) -> str:
    tablefmt = "github" if markdown else "simple"
    h = "## " if markdown else ""
    lines = _header(results[0])
    if markdown:
        lines = [f"# {lines[0]}", "", *(f"- {x}" for x in lines[1:])]
    for p in results:
        lines += ["", f"{h}{_phase_title(p)}", *(f"note: {n}" for n in p.notes)]
        for b in p.blocks:
            lines += ["", f"{h}# {b.name} x{b.count}" if markdown else f"{b.name} x{b.count}", "",
                      _block_table(b, tablefmt), _kernel_line(b)]
        lines += ["", _model_line(p)]
    lines += ["", "Times are per-op rooflines: max(FLOPs / peak, bytes / bandwidth) unless a time model is "
                  "shown above; a block's time is their sum. MB = 10^6 bytes."]
    return "\n".join(lines) + "\n"


def render_csv(results: list[PhaseCost]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["phase", "block", "count", "op", "kind", "fn", "kernel", "flops", "bytes_read", "bytes_written",
                "weight_bytes", "activation_bytes", "kv_cache_bytes", "intensity", "bound", "compute_s",
                "memory_s", "time_s", "share"])
    for p in results:
        for b in p.blocks:
            for o in b.ops:
                r, t = o.cost, o.cost.traffic
                w.writerow([p.phase.name, b.name, b.count, o.name, o.kind, o.fn, o.kernel, r.flops, t.bytes_read,
                            t.bytes_written, t.weight_bytes, t.activation_bytes, t.kv_cache_bytes,
                            "" if math.isinf(r.intensity) else repr(r.intensity), r.bound, repr(r.compute_s),
                            repr(r.memory_s), repr(r.time_s), repr(o.share)])
    return out.getvalue()


def render(results: list[PhaseCost], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(results), indent=2) + "\n"
    if fmt == "csv":
        return render_csv(results)
    return render_text(results, markdown=(fmt == "markdown"))
