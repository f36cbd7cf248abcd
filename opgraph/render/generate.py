"""`opgraph generate`: time to first token, every decode step, total time, throughput and memory."""

from __future__ import annotations

from opgraph.analysis.generate import CONVENTION, Generation
from opgraph.render import renderer
from opgraph.render.memory import footprint_dict, verdict
from opgraph.render.report import time_model_dict, time_model_line
from opgraph.errors import counted
from opgraph.render.text import gb, precision_line, seconds, sig, table, to_json


@renderer(Generation, "json")
def as_json(g: Generation, fmt: str) -> str:
    """Times in seconds, rates in tokens per second, memory in bytes."""
    steps = g.steps
    return to_json({
        "model": g.prefill.model, "hardware": g.prefill.hardware.name, "fusion": g.prefill.plan.name,
        "precision": g.prefill.precision,
        "time_model": time_model_dict(g.prefill.hardware),
        "times": "expected_* under the time model, roofline_* the ideal; tokens/s: *_per_gpu one GPU's, the rest the group's",
        "batch": g.batch, "prompt_tokens": g.prompt, "output_tokens": g.output, "convention": CONVENTION,
        "units": {"*_s": "s", "*_per_s": "tokens/s", "*_bytes": "byte"},
        "expected_ttft_s": g.ttft_s, "roofline_ttft_s": g.roofline_ttft_s,
        "expected_total_s": g.total_s, "roofline_total_s": g.roofline_total_s,
        "decode": {"steps": len(steps), "first_context": steps[0].context if steps else None,
                   "last_context": steps[-1].context if steps else None, "expected_total_s": g.decode_s,
                   "expected_mean_s": g.tpot_s, "expected_first_s": steps[0].time_s if steps else None,
                   "expected_last_s": steps[-1].time_s if steps else None,
                   "expected_step_s": [s.time_s for s in steps], "roofline_step_s": [s.roofline_s for s in steps]},
        "expected_tpot_s": g.tpot_s, "gpus": g.prefill.gpus,
        "expected_tokens_per_s": g.group_tokens_per_s, "expected_tokens_per_s_per_gpu": g.tokens_per_s_per_gpu,
        "expected_tokens_per_s_per_replica": g.tokens_per_s,
        "expected_tokens_per_s_per_sequence": g.tokens_per_s_per_sequence,
        "roofline_tokens_per_s": g.group_tokens_per_s * g.total_s / g.roofline_total_s,
        "fits": g.fits, "memory": [{"phase": f.phase.name, **footprint_dict(f)} for f in g.memory],
        "notes": list(g.notes),
    })


@renderer(Generation, "table")
def as_text(g: Generation, fmt: str) -> str:
    p, hw, steps = g.prefill, g.prefill.hardware, g.steps
    ends = [f"during prefill (K, V of {g.prompt:,} tokens)"] + (
        [f"at the last step (context {steps[-1].context:,})"] if steps else [])
    out = [
        f"opgraph generate: {p.model} on {hw.display_name} ({hw.name}), fusion {p.plan.name}",
        precision_line(p.precision),
        f"batch {g.batch} x prompt {g.prompt:,} tokens -> {g.output:,} output token{'s' * (g.output > 1)} per sequence",
        "a static batch: every prompt prefilled at once, then all decoded together (serving engines batch in flight, "
        "mixing other requests' prompt chunks into the decode steps, so a served TPOT is longer and a TTFT shorter: "
        "'opgraph serve' models that)",
        *(f"note: {n}" for n in g.notes), "",
    ]
    if steps:
        a, z = steps[0], steps[-1]
        decode = [
            ["decode steps", counted(len(steps), "step"),
             f"contexts {a.context:,}..{z.context:,} (tokens already cached; each step attends over context+1 keys), "
             f"{seconds(g.decode_s)} in all"],
            ["time per output token", seconds(g.tpot_s), f"mean of the {len(steps):,} decode steps; first "
                                                         f"{seconds(a.time_s)} (context {a.context:,}), last "
                                                         f"{seconds(z.time_s)} (context {z.context:,})"],
        ]
    else:
        decode = [["decode steps", "0 steps", "one output token: prefill alone produces it"]]
    fit_note = "" if g.fits else "; DOES NOT FIT in GPU memory (below)"
    rows = [
        ["time to first token", seconds(g.ttft_s), f"roofline {seconds(g.roofline_ttft_s)}; prefill of {g.batch} x "
                                                   f"{g.prompt:,} tokens, lm_head on the "
                                                   f"last position only{fit_note}"],
        *decode,
        ["total time", seconds(g.total_s), f"roofline {seconds(g.roofline_total_s)}; TTFT + {len(steps):,} decode "
                                           f"steps{fit_note}"],
        ["throughput, one replica", f"{sig(g.tokens_per_s)} tokens/s", f"output tokens of the batch ({g.batch} x {g.output:,}) "
                                                          f"per second of total time; {sig(g.tokens_per_s_per_sequence)} "
                                                          f"tokens/s per sequence"],
        *([["group throughput", f"{sig(g.group_tokens_per_s)} tokens/s",
            f"{p.parallel}: {counted(p.replicas, 'batch', 'batches')} of {g.batch} at once on {p.gpus} GPUs; "
            f"{sig(g.tokens_per_s_per_gpu)} tokens/s per GPU"]] if p.gpus > 1 else []),
        *([f"memory per GPU {end}", gb(f.total), verdict(f)] for end, f in zip(ends, g.memory)),
    ]
    out.append(table(rows, ["quantity", "value", "detail"], fmt, colalign=("left", "right")))
    out += ["", f"Times are expected ({time_model_line(hw)}). Convention: {CONVENTION}. Memory = weights + KV "
                f"cache + peak activations of one step ('opgraph memory' itemizes it); GB = 10^9 bytes."]
    return "\n".join(out) + "\n"


MOST_STEPS = 2000  # decode steps drawn at most


@renderer(Generation, "html")
def as_html(g: Generation, fmt: str) -> str:
    """The answer (TTFT, TPOT, total, throughput), every decode step's time against its context (at most MOST_STEPS
    drawn), memory at both ends against the capacity. The page's data is the JSON."""
    import json

    from opgraph.render.html import BRIGHT, chart, decades, esc, facts, legend, page, spread
    from opgraph.render.memory import stack_html

    data = as_json(g, "json")
    d = json.loads(data)
    rows = [("time to first token, expected", seconds(d["expected_ttft_s"])),
            ("time to first token, roofline", seconds(d["roofline_ttft_s"])),
            ("time per output token (mean of the decode steps)", "-" if d["expected_tpot_s"] is None else
             seconds(d["expected_tpot_s"])),
            ("total time, expected", seconds(d["expected_total_s"])), ("total time, roofline", seconds(d["roofline_total_s"])),
            ("output tokens/s, one replica's batch", sig(d["expected_tokens_per_s_per_replica"])),
            ("output tokens/s per sequence", sig(d["expected_tokens_per_s_per_sequence"])),
            ("output tokens/s per GPU", sig(d["expected_tokens_per_s_per_gpu"]))]
    if d["gpus"] > 1:
        rows.append((f"output tokens/s, the group of {d['gpus']} GPUs", sig(d["expected_tokens_per_s"])))
    rows.append(("fits in one GPU's memory", "yes" if d["fits"] else "NO"))
    dec = d["decode"]
    steps = list(range(dec["steps"]))
    shown = spread(steps, MOST_STEPS)
    contexts = [dec["first_context"] + i for i in shown] if steps else []
    expected = [dec["expected_step_s"][i] * 1e3 for i in shown]
    roof = [dec["roofline_step_s"][i] * 1e3 for i in shown]
    points = [(x, y, BRIGHT[0], f"step at context {x:,}: {y:,.4g} ms expected, {r:,.4g} ms roofline", True,
               4 if len(shown) <= 30 else 2) for x, y, r in zip(contexts, expected, roof)]
    picture = (chart(points, [(list(zip(contexts, expected)), BRIGHT[0], ""), (list(zip(contexts, roof)), BRIGHT[0], "",
                                                                                True)],
                     "context (tokens already cached)", "decode step time, one GPU (ms)", x_log=decades(contexts),
                     y_log=decades(expected + roof))
               if steps else "<p>one output token: prefill alone produces it; no decode step</p>")
    ends = [f"during prefill (K, V of {g.prompt:,} tokens)"] + ([f"at the last step (context "
                                                                  f"{dec['last_context']:,})"] if steps else [])
    memory = "".join(f"<h3>memory {esc(end)}</h3>{stack_html(m)}" for end, m in zip(ends, d["memory"]))
    hw = g.prefill.hardware
    title = f"opgraph generate: {d['model']} on {hw.display_name} ({hw.name}), fusion {d['fusion']}"
    note = (f"batch {g.batch} x prompt {g.prompt:,} tokens -> {g.output:,} output tokens per sequence, a static batch "
            f"({esc(CONVENTION)}); {esc(precision_line(d['precision']))}; times are expected "
            f"({esc(time_model_line(hw))}).")
    body = (f"{facts(rows)}<h2>every decode step</h2><p class=\"note\">{len(shown):,} of {len(steps):,} steps drawn."
            f"</p>{legend({'expected': BRIGHT[0]}, '; dashed: the roofline')}{picture}{memory}")
    return page(title, note, body, data, d["notes"])
