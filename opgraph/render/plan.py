"""`opgraph plan`: the ranked parallel layouts, and what was dropped and why."""

from __future__ import annotations

from opgraph.analysis.plan import Candidate, PlanSearch
from opgraph.render import renderer
from opgraph.render.report import time_model_line
from opgraph.render.text import gb, header, heading, lines, seconds, sig, table, to_csv, to_json

COLUMNS = ["layout", "batch per replica", "sequences", "TTFT", "TPOT", "tokens/s per GPU", "memory per GPU",
           "bound by (share of a decode step's roofline)"]


def _row(c: Candidate) -> list:
    return [c.layout.describe() + (" (crosses nodes)" if c.crosses_nodes else ""), c.batch, c.sequences,
            seconds(c.ttft_s), "-" if c.tpot_s is None else seconds(c.tpot_s), sig(c.tokens_per_s_per_gpu),
            f"{gb(c.memory_bytes, 1)} ({c.memory_bytes / c.capacity_bytes:.0%})",
            f"{c.bound_by} ({c.bound_share:.0%})"]


def _limits(s: PlanSearch) -> str:
    given = [f"TPOT <= {seconds(s.limits['max_tpot_s'])}" if "max_tpot_s" in s.limits else "",
             f"TTFT <= {seconds(s.limits['max_ttft_s'])}" if "max_ttft_s" in s.limits else ""]
    return " and ".join(g for g in given if g) or "no latency limit"


@renderer(PlanSearch, "table", "markdown")
def as_text(s: PlanSearch, fmt: str) -> str:
    hw = s.hardware
    out = header(f"opgraph plan: {s.model} on {s.gpus} x {hw.display_name} ({hw.name})", fmt, [
        f"prompt {s.prompt:,} tokens, {s.output:,} output tokens per sequence; {_limits(s)}; ranked by output "
        f"tokens/s per GPU (replicas x batch x output tokens over TTFT + every decode step, over {s.gpus} GPUs)",
        f"{s.evaluated:,} candidates costed in {s.seconds:.2f} s; {len(s.ranked):,} fit and meet the limits, "
        f"{s.too_big:,} do not fit in memory, {s.too_slow:,} miss the latency limit",
        *(f"note: {n}" for n in s.notes)])
    if s.ranked:
        shown = s.ranked[:s.top]
        out += ["", heading(f"best {len(shown)} of {len(s.ranked):,}", fmt), "",
                table([[i, *_row(c)] for i, c in enumerate(shown, 1)], ["rank", *COLUMNS], fmt)]
    else:
        out += ["", "no candidate fits and meets the limits: give more GPUs, a smaller --batch, a shorter --prompt "
                    "or --output, narrower --weight-dtype / --kv-dtype, or a looser limit"]
    if s.dropped:
        out += ["", heading("layouts that cannot be built", fmt), "",
                table([[d.layout.describe(), d.reason] for d in s.dropped], ["layout", "why"], fmt)]
    out += ["", f"Times are expected ({time_model_line(hw)}). TPOT is the mean of the decode steps, each at its own "
                f"context; memory is one GPU's weights, KV cache and peak activations at the larger of after the "
                f"prefill and after the last step; GB = 10^9 bytes."]
    return lines(out)


def _candidate_dict(c: Candidate) -> dict:
    return {"tp": c.layout.tp, "dp": c.layout.dp, "ep": c.layout.ep, "layout": c.layout.describe(),
            "batch_per_replica": c.batch, "sequences": c.sequences, "expected_ttft_s": c.ttft_s,
            "expected_tpot_s": c.tpot_s, "expected_total_s": c.total_s,
            "expected_tokens_per_s_per_gpu": c.tokens_per_s_per_gpu, "memory_bytes": c.memory_bytes,
            "capacity_bytes": c.capacity_bytes, "bound_by": c.bound_by, "bound_share": c.bound_share,
            "crosses_nodes": c.crosses_nodes}


@renderer(PlanSearch, "json")
def as_json(s: PlanSearch, fmt: str) -> str:
    return to_json({
        "model": s.model, "hardware": s.hardware.name, "gpus": s.gpus, "prompt_tokens": s.prompt,
        "output_tokens": s.output, "limits": s.limits,
        "units": {"*_s": "s", "*_per_gpu": "output tokens/s per GPU", "*_bytes": "byte"},
        "evaluated": s.evaluated, "search_s": s.seconds, "too_big": s.too_big, "too_slow": s.too_slow,
        "ranked": [_candidate_dict(c) for c in s.ranked],
        "dropped": [{"tp": d.layout.tp, "dp": d.layout.dp, "ep": d.layout.ep, "reason": d.reason} for d in s.dropped],
        "notes": list(s.notes)})


@renderer(PlanSearch, "csv")
def as_csv(s: PlanSearch, fmt: str) -> str:
    rows = [_candidate_dict(c) for c in s.ranked]
    keys = list(_candidate_dict.__annotations__) if not rows else list(rows[0])
    return to_csv(keys, [[r[k] for k in keys] for r in rows])
