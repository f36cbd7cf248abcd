"""`opgraph crossover`: where each op turns compute-bound."""

from __future__ import annotations

from opgraph.analysis.crossover import CrossoverReport
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
    return to_json({"model": r.model, "hardware": r.hardware.name, "fusion": r.plan.name, "limit": r.limit,
                    "phases": phases})


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
