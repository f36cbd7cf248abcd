"""`opgraph report`: per-op tables, JSON and CSV of the cost records. Nothing here computes a cost.

JSON and CSV carry exact integers in base units (FLOP, byte, second); tables use human units
(GFLOP, MB = 1e6 bytes, µs) stated in their headers.
"""

from __future__ import annotations

import math

from opgraph.analysis.report import Report
from opgraph.pricing.cost import BlockCost, PhaseCost, Roofline
from opgraph.pricing.kinds import REGISTRY, unclassed
from opgraph.render import renderer
from opgraph.render.memory import footprint_dict, verdict
from opgraph.errors import counted, noun
from opgraph.render.text import capacity, gb, heading, lines, precision_line, scaled, seconds, sig, table, to_csv, to_json

UNITS = {"flops": "FLOP", "bytes": "byte", "*_s": "s", "intensity": "FLOP/byte", "*_tokens_per_s": "tokens/s",
         "expected_share": "fraction of the block's expected time",
         "scope": "op, kernel and block figures are one GPU's (one instance of the block); model figures are one "
                  "GPU's step; group figures are all its GPUs'"}


# -- JSON --------------------------------------------------------------------------------------------
def _intensity(r: Roofline) -> float | None:
    return None if math.isinf(r.intensity) else r.intensity


def _roofline_dict(r: Roofline) -> dict:
    t = r.traffic
    return {
        "flops": r.flops, "bytes": r.bytes, "bytes_read": t.bytes_read, "bytes_written": t.bytes_written,
        "weight_bytes": t.weight_bytes, "activation_bytes": t.activation_bytes, "kv_cache_bytes": t.kv_cache_bytes,
        "intensity": _intensity(r), "bound": r.bound, "compute_s": r.compute_s, "memory_s": r.memory_s,
        "roofline_s": r.time_s, "expected_s": r.expected_s, "comm_s": r.comm_s, "wire_bytes": r.wire_bytes,
    }


def _block_dict(b: BlockCost) -> dict:
    ops = []
    for o in b.ops:
        rec = {"name": o.name, "kind": o.kind, "fn": o.fn, "kernel": o.kernel}
        rec.update(_roofline_dict(o.cost))
        rec["bound"] = o.bound
        rec["expected_share"] = o.share
        ops.append(rec)
    totals = _roofline_dict(b.totals)
    totals["kernels"] = len(b.kernels)
    kernels = [{"name": k.name, "ops": list(k.ops), "class": k.kind, **_roofline_dict(k.cost), "bound": k.bound}
               for k in b.kernel_costs()]
    return {"name": b.name, "count": b.count, "ops": ops, "totals": totals, "kernels": kernels,
            "materialized": sorted(b.materialized)}


def _phase_dict(p: PhaseCost) -> dict:
    model = {"params": p.params, "weight_bytes": p.weight_bytes}
    model.update({k: v for k, v in _roofline_dict(p.totals).items()
                  if k in ("flops", "bytes", "intensity", "bound", "roofline_s", "expected_s")})
    model.update(throughput(p))
    out = {**p.phase.describe(), "gpus": p.gpus, "notes": list(p.notes + pricing_notes(p)),
           "blocks": [_block_dict(b) for b in p.blocks],
           "top_kernels": [{"block": b.name, "count": b.count, "kernel": k.name, "ops": list(k.ops), "class": k.kind,
                            "bound": k.bound, "expected_s": b.count * k.cost.expected_s,
                            "expected_share": b.count * k.cost.expected_s / p.totals.expected_s}
                           for b, k in top_kernels(p)],
           "model": model}
    if p.gpus > 1:  # the whole group, in lockstep: the step takes every GPU's time
        n, g = p.gpus, p.group
        out["group"] = {"gpus": n, "plan": p.parallel, "flops": g.flops, "bytes": g.bytes, "weight_bytes": group_weights(p),
                        "wire_bytes": g.wire_bytes,
                        **{k: v for k, v in throughput(p).items() if not k.endswith("_per_gpu")}}
        if p.whole_weight_bytes is not None:
            out["group"]["model_weight_bytes"] = p.whole_weight_bytes
            out["group"]["copied_weight_bytes"] = group_weights(p) - p.whole_weight_bytes
    if p.stages:
        out["pipeline"] = {"micro_batches": p.built.micro_batches, "micro_batch": p.built.micro.phase.batch,
                           "stages": [{"name": s.stage.name, "first_layer": s.stage.first_layer, "layers": s.stage.layers,
                                       "blocks": dict(s.stage.counts), "weight_bytes": s.weight_bytes, "params": s.params,
                                       "micro_batch_flops": s.totals.flops, "micro_batch_roofline_s": s.totals.time_s,
                                       "micro_batch_expected_s": s.totals.expected_s} for s in p.stages]}
    return out


def throughput(p: PhaseCost) -> dict:
    """Tokens a second by each time: the group's (every replica's tokens in one step) and one GPU's share of it."""
    out = {}
    for name, t in (("roofline", p.totals.time_s), ("expected", p.totals.expected_s)):
        group = p.replicas * p.phase.tokens / t if t else None
        out[f"{name}_tokens_per_s"] = group
        out[f"{name}_tokens_per_s_per_gpu"] = group / p.gpus if group is not None else None
    return out


def top_kernels(p: PhaseCost, n: int = 5) -> list:
    """The n kernels that take the most of the step's expected time across the whole model: (block, kernel)."""
    ranked = [(b, k) for b in p.blocks for k in b.kernel_costs()]
    ranked.sort(key=lambda bk: -bk[0].count * bk[1].cost.expected_s)
    return ranked[:n]


def _with_memory(phase: dict, fp) -> dict:
    if "group" in phase and fp.group_kv_cache_bytes is not None:
        phase["group"]["kv_cache_bytes"] = fp.group_kv_cache_bytes
    return {**phase, "memory": footprint_dict(fp)}


def group_weights(p: PhaseCost) -> int:
    """Weight bytes the whole group stores: every stage's on each of its GPUs."""
    if p.stages:
        return sum(s.weight_bytes for s in p.stages) * (p.gpus // len(p.stages))
    return p.gpus * p.weight_bytes


def hardware_dict(hw) -> dict:
    return {"display_name": hw.display_name, "matrix_flops_per_s": hw.matrix_flops,
            "vector_flops_per_s": hw.vector_flops, "bandwidth_bytes_per_s": hw.bandwidth,
            "capacity_bytes": int(hw.capacity), "source": hw.source,
            "interconnect": None if hw.interconnect is None else {
                "name": hw.interconnect.name, "link_bytes_per_s": hw.interconnect.link_bandwidth,
                "gpus_per_node": hw.interconnect.gpus_per_node,
                "network_bytes_per_s": hw.interconnect.network_bandwidth,
                "step_latency_s": hw.interconnect.step_latency_s, "source": hw.interconnect.source}}


@renderer(Report, "json")
def as_json(r: Report, fmt: str) -> str:
    first = r.costs[0]
    hw = first.hardware
    return to_json({
        "model": first.model,
        "hardware": hw.name,
        "fusion": first.plan.name,
        "hardware_spec": hardware_dict(hw),
        "units": UNITS,
        "precision": first.precision,
        "time_model": time_model_dict(hw),
        "phases": {p.phase.name: _with_memory(_phase_dict(p), fp) for p, fp in zip(r.costs, r.memory)},
    })


# -- tables ------------------------------------------------------------------------------------------
OP_HEADERS = ["op", "kind", "GFLOP", "read MB", "written MB", "FLOP/B", "bound", "roofline µs", "expected µs",
              "% block, expected"]


def _row(label: str, kind: str, r: Roofline, bound: str, share: float | None) -> list[str]:
    t = r.traffic
    return [label, kind, sig(r.flops / 1e9), sig(t.bytes_read / 1e6), sig(t.bytes_written / 1e6),
            sig(r.intensity), bound, sig(r.time_s * 1e6), sig(r.expected_s * 1e6),
            "" if share is None else f"{share * 100:.1f}"]


def _block_table(b: BlockCost, fmt: str) -> str:
    rows = [_row(o.name, o.kind, o.cost, o.bound, o.share) for o in b.ops]
    rows.append(_row(f"{b.name} total", f"{len(b.kernels)} kernels", b.totals, b.totals.bound, 1.0))
    return table(rows, OP_HEADERS, fmt, colalign=("left", "left", *["right"] * 5, "left", "right", "right", "right"))


def _kernel_line(b: BlockCost) -> str:
    if len(b.kernels) == len(b.ops):
        return f"{len(b.kernels)} kernels: every op is its own kernel"
    fused = [f"{k.ops[0]}..{k.ops[-1]} ({len(k.ops)} ops)" if len(k.ops) > 1 else k.ops[0] for k in b.kernels]
    return f"{len(b.kernels)} kernels: " + ", ".join(fused)


def phase_title(p: PhaseCost) -> str:
    ph = p.phase
    if ph.name == "prefill":
        return f"PREFILL: batch {ph.batch} x seq_len {ph.new_tokens} ({ph.tokens:,} tokens)"
    return f"DECODE: batch {ph.batch}, context {ph.past} (one new token per sequence, attending over up to {ph.keys} keys)"


def _model_line(p: PhaseCost, fp=None) -> str:
    """The model's totals, each stage of a pipeline, and the group: every line says if the step cannot fit."""
    t = p.totals
    step = "prompt tokens/s" if p.phase.name == "prefill" else "new tokens/s at this context"
    who = f"one GPU of {p.gpus} ({p.parallel}): " if p.gpus > 1 else ""
    tp = throughput(p)
    rate = (f"{sig(tp['expected_tokens_per_s_per_gpu'])} {step} per GPU, {sig(tp['expected_tokens_per_s'])} for the "
            f"group" if p.gpus > 1 else f"{sig(tp['expected_tokens_per_s'])} {step}")
    unfit = (f" (DOES NOT FIT in {capacity(fp.capacity)}, see memory; as if it did)"
             if fp is not None and not fp.fits else "")
    line = (f"model{unfit}: {who}{p.params:,} params, {scaled(p.weight_bytes, 'B')} of weights; "
            f"{scaled(t.flops, 'FLOP')}, {scaled(t.bytes, 'B')} moved, {sig(t.intensity)} FLOP/B, "
            f"{t.bound}-bound; expected {seconds(t.expected_s)} ({rate}), "
            f"roofline {seconds(t.time_s)}")
    if p.stages:
        m = p.built.micro_batches
        line += (f"\npipeline{unfit}: {counted(m, 'micro-batch', 'micro-batches')} of {p.built.micro.phase.batch}; "
                 "per micro-batch " + "; ".join(
            f"{s.stage.name} (layers {s.stage.first_layer}-{s.stage.first_layer + s.stage.layers - 1}) "
            f"{seconds(s.totals.expected_s)} expected, {scaled(s.weight_bytes, 'B')} of weights" for s in p.stages)
            + f"; the step {seconds(t.expected_s)}")
    if p.gpus > 1:
        n, g = p.gpus, p.group
        alike = ("the busiest stage's GPU above; totals over every stage" if p.stages else
                 "the busiest GPU's figures above; totals at the mean load" if p.group.flops != n * t.flops else
                 "each the same share, in lockstep")
        line += (f"\ngroup of {n} GPUs ({alike}){unfit}: {scaled(g.flops, 'FLOP')}, "
                 f"{scaled(g.bytes, 'B')} moved, {scaled(g.wire_bytes, 'B')} over the links, "
                 f"{scaled(group_weights(p), 'B')} of weights stored ({_beyond(p)}), "
                 + (f"{scaled(fp.group_kv_cache_bytes, 'B')} of KV cache; " if fp and fp.group_kv_cache_bytes else "")
                 + f"{sig(p.replicas * p.phase.tokens / t.expected_s / n)} {step} per GPU")
    return line


def _beyond(p: PhaseCost) -> str:
    """What the group stores beyond the model: weights every GPU keeps whole, KV-head copies, vocabulary padding."""
    if p.whole_weight_bytes is None:
        return "unsplit weights on every GPU"
    extra = group_weights(p) - p.whole_weight_bytes
    return (f"the model's {scaled(p.whole_weight_bytes, 'B')} plus {scaled(extra, 'B')} of copies and padding: "
            f"weights kept whole on several GPUs, replicated KV heads, vocabulary rows padded to split")


def setup_lines(p: PhaseCost) -> list[str]:
    """What the numbers were computed on: hardware, fusion plan, precision and time model."""
    hw, plan = p.hardware, p.plan
    rates = ", ".join(f"{dt} {sig(r / 1e12)}" for dt, r in hw.matrix_flops.items())
    out = [
        f"hardware: matrix TFLOP/s {rates}; vector {sig(hw.vector_flops / 1e12)} TFLOP/s; "
        f"{sig(hw.bandwidth / 1e9)} GB/s",
        f"fusion: {plan.name}" + (f" ({plan.description})" if plan.description else ""),
        precision_line(p.precision),
    ]
    if p.link_group > 1 and hw.interconnect is not None:
        out.append(links_line(hw.interconnect, p.link_group))
    if hw.comm_overlap:
        out.append(f"communication overlap: {hw.comm_overlap:g} of each block's collective time (or of its other "
                   f"kernels' time, if less) is hidden in its totals (--comm-overlap); the op rows show each "
                   f"op's own time")
    out.append(time_model_line(hw))
    return out


def links_line(link, group: int) -> str:
    """Which links a group's collectives run over: its slowest hop's."""
    where = (f"the group of {group} spans {-(-group // link.gpus_per_node)} nodes, so its collectives cross the "
             f"network's {sig(link.network_bandwidth / 1e9)} GB/s (a ring runs at that slowest hop; an all-to-all "
             f"sends only its other nodes' shares there)" if group > link.gpus_per_node else
             f"the group of {group} is inside one node")
    return (f"links: {link.name}, {sig(link.link_bandwidth / 1e9)} GB/s per GPU each way within a node of "
            f"{link.gpus_per_node}, {sig(link.network_bandwidth / 1e9)} GB/s between nodes; {where}; "
            f"{sig(link.step_latency_s * 1e6)} µs per collective step")


def time_model_line(hw) -> str:
    """What the expected times come from, in one line: the time model, where each class's table came from when
    several files gave them, and the classes priced at the roofline (the fit's held-out error: JSON, docs)."""
    tm = hw.timing
    if not tm.calibrated:
        return f"expected times: no calibration for {hw.name}, so they are the roofline's (collectives: plus the spec's latency per step)"
    by_origin: dict[str, list[str]] = {}
    for kind in tm.classes:
        by_origin.setdefault(tm.origins.get(kind, ""), []).append(kind)
    tables = "; ".join(f"{', '.join(kinds)}" + (f" from {origin}" if origin else "") for origin, kinds in by_origin.items())
    uncovered = [c.name for c in REGISTRY if tm.table(c.name) is None]
    others = f"; {', '.join(uncovered)} kernels: the roofline" if uncovered else ""
    return f"expected times: {tm.name} ({tables}){others}"


def time_model_dict(hw) -> dict:
    tm = hw.timing
    return {"name": tm.name if tm.calibrated else None, "source": tm.source, "fit": tm.fit,
            "classes": {kind: tm.origins.get(kind, tm.source) for kind in tm.classes},
            "roofline_classes": [c.name for c in REGISTRY if tm.table(c.name) is None]}


def summary(r: Report, fmt: str) -> list[str]:
    """The answer first: each phase's step time (expected and roofline), tokens/s (per GPU and for the group), whether
    it fits, its verdict; then the kernels that take most of each step across the whole model."""
    first = r.costs[0]
    group = f"group of {first.gpus}" if first.gpus > 1 else "1 GPU"
    rows = []
    for p, fp in zip(r.costs, r.memory):
        tp = throughput(p)
        unit = "prompt" if p.phase.name == "prefill" else "new"
        rows.append([_phase_words(p), seconds(p.totals.expected_s), seconds(p.totals.time_s),
                     f"{sig(tp['expected_tokens_per_s_per_gpu'])} {unit}",
                     *([f"{sig(tp['expected_tokens_per_s'])} {unit}"] if p.gpus > 1 else []),
                     ("yes" if fp.fits else "NO") + f", {gb(fp.total)} of {capacity(fp.capacity)}",
                     p.totals.bound])
    heads = ["phase", "step, expected", "roofline", "tokens/s per GPU", *([f"tokens/s, {group}"] if first.gpus > 1 else []),
             "fits one GPU", "bound"]
    out = [table(rows, heads, fmt)]
    for p in r.costs:
        top = [[p.phase.name, f"{b.name} x{b.count}", k.label, k.kind,
                f"{b.count * k.cost.expected_s / p.totals.expected_s:.1%}", k.bound] for b, k in top_kernels(p)]
        out += ["", table(top, ["phase", "block", "kernel (all its repeats)", "class", "share of step, expected",
                                "bound"], fmt)]
    return out


def pricing_notes(p: PhaseCost) -> tuple[str, ...]:
    """What a reader must know of how the kernels were priced: op kinds no class names (a kind a user registered),
    input-quantizing GEMMs the GPU runs weight-only, and kernels that hold a collective beside other work (the
    megakernel plan under --tp)."""
    ops = [op for b in p.blocks for op in b.graph.ops.values()]
    notes = tuple(f"op kind {kind!r} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}) has no kernel class "
                  f"of its own: its expected time is priced as elementwise (a class is one file in "
                  f"opgraph/pricing/kinds)" for kind, names in unclassed(ops).items())
    dequantized = sorted({n for b in p.blocks for n in b.weight_only})
    if dequantized:
        notes += (f"{p.hardware.name} has no {'/'.join(dequantized)} matrix rate: the {'/'.join(dequantized)} GEMMs, "
                  f"which quantize their input to the weights' type on a GPU that has one (W8A8, W4A4), run "
                  f"weight-only here, dequantized to the activations' type, as engines fall back (vLLM's Marlin "
                  f"kernels)",)
    mixed = [k.label for b in p.blocks for k in b.kernel_costs()
             if k.kind in ("collective", "all_to_all") and len(k.ops) > 1]
    if not mixed:
        return notes
    return notes + (f"{counted(len(mixed), 'kernel')} {noun(len(mixed), 'holds', 'hold')} a collective beside "
                    f"other work ({', '.join(mixed[:3])}{', ...' if len(mixed) > 3 else ''}): each part is priced "
                    f"at its own class's efficiencies, the links at the collective's, with one fixed cost, the "
                    f"collective's; the collective overlaps none of the kernel's other work (unless --comm-overlap)",)


def _phase_words(p: PhaseCost) -> str:
    ph = p.phase
    if ph.name == "prefill":
        return f"prefill {ph.batch} x {ph.new_tokens:,}"
    return f"decode {ph.batch} at {ph.past:,}"


@renderer(Report, "table", "markdown")
def as_text(r: Report, fmt: str) -> str:
    first = r.costs[0]
    scope = (f"{first.gpus} GPUs ({first.parallel}); op, kernel and block figures are one GPU's"
             if first.gpus > 1 else "one GPU")
    out = [heading(f"opgraph report: {first.model} on {first.hardware.display_name} ({first.hardware.name}), "
                   f"{first.plan.name} plan, {scope}", fmt, 1)]
    out += ["", *summary(r, fmt), "", *(f"- {line}" if fmt == "markdown" else line for line in setup_lines(first))]
    for p, fp in zip(r.costs, r.memory):
        out += ["", heading(phase_title(p), fmt), *(f"note: {n}" for n in p.notes + pricing_notes(p))]
        for b in p.blocks:
            out += ["", heading(f"{b.name} x{b.count}", fmt, 3), "", _block_table(b, fmt), _kernel_line(b)]
        out += ["", _model_line(p, fp), f"memory: {verdict(fp)}"]
    return lines(out, "", "Roofline: the ideal, each op's longest of FLOPs / peak, bytes / bandwidth and wire bytes / "
                          "link speed, summed; the verdict's basis. Expected: each kernel's time under the time model "
                          "(fixed latency, achieved fractions of the peaks), shared among its ops by roofline time; "
                          "bound 'latency' where a kernel's fixed cost exceeds its compute and memory times, 'fused' "
                          "where an op moves nothing of its own inside a larger kernel (its kernel's verdict counts). "
                          "% block: of the block's expected time. MB = 10^6 bytes.")


@renderer(Report, "csv")
def as_csv(r: Report, fmt: str) -> str:
    head = ["phase", "block", "count", "op", "kind", "fn", "kernel", "flops", "bytes_read", "bytes_written",
            "weight_bytes", "activation_bytes", "kv_cache_bytes", "intensity", "bound", "compute_s", "memory_s",
            "roofline_s", "expected_s", "expected_share"]
    rows = ([p.phase.name, b.name, b.count, o.name, o.kind, o.fn, o.kernel, o.cost.flops, o.cost.traffic.bytes_read,
             o.cost.traffic.bytes_written, o.cost.traffic.weight_bytes, o.cost.traffic.activation_bytes,
             o.cost.traffic.kv_cache_bytes, o.cost.intensity, o.bound, o.cost.compute_s, o.cost.memory_s,
             o.cost.time_s, o.cost.expected_s, o.share] for p in r.costs for b in p.blocks for o in b.ops)
    return to_csv(head, rows)
