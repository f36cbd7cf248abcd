"""`opgraph serve`: the steady state of requests served in flight."""

from __future__ import annotations

from opgraph.analysis.serve import HOST, Serving, Stats, blocks_of, cached_tokens, hit_tokens
from opgraph.errors import counted, noun
from opgraph.render import renderer
from opgraph.render.report import time_model_dict, time_model_line
from opgraph.render.text import flat, lines, seconds, sig, table, to_csv, to_json

METRICS = ("ttft", "tpot", "itl", "e2e")
WORDS = {"ttft": "time to first token", "tpot": "time per output token (a request's)",
         "itl": "inter-token latency", "e2e": "end-to-end latency"}


def _stats(s: Stats) -> dict:
    return {"mean": s.mean, "p50": s.p50, "p90": s.p90, "p99": s.p99}


def _span(lengths: tuple[int, int]) -> str:
    low, high = lengths
    return f"{low:,}" if low == high else f"{low:,} to {high:,} (uniform)"


def _record(s: Serving) -> dict:
    return {
        "model": s.model, "hardware": s.hardware.name, "fusion": s.plan.name, "time_model": time_model_dict(s.hardware),
        "engine": {"name": s.engine.name, "max_batched_tokens": s.engine.max_batched_tokens,
                   "chunk_tokens": s.engine.chunk or None,  # one prompt's tokens an iteration at most (--chunk)
                   "max_seqs": s.engine.max_seqs, "memory_fraction": s.engine.memory_fraction,
                   "block_tokens": s.engine.block_tokens, "kv_share": s.engine.kv_share,
                   "chunked_prefill": s.engine.chunked, "mixed_batches": s.engine.mixed,
                   # a prompt's chunks but its last are whole multiples of this (TensorRT-LLM's KV block)
                   "chunk_unit_tokens": s.engine.chunk_unit,
                   # TensorRT-LLM's batch waiting: null when off
                   "batch_wait": dict(zip(("max_tokens_ratio", "timeout_iters"), s.engine.batch_wait))
                   if s.engine.batch_wait[1] else None,
                   # async: the host's time per iteration hidden behind the GPU's where shorter; sync: added
                   "scheduling": s.engine.scheduling, "source": s.engine.source},
        "units": {"*_s": "s, expected (the time model's)", "*_tokens_per_s*": "output tokens/s"},
        "concurrency_per_replica": s.concurrency, "rate_per_s_per_replica": s.rate, "seed": s.seed,
        "benchmark_requests_per_replica": s.requests,
        "prompt_tokens": list(s.prompt), "output_tokens": list(s.output), "shared_prefix_tokens": s.prefix,
        # of the shortest prompt: whole blocks, never its last token
        "cached_prefix_tokens": cached_tokens(s.prefix, s.prompt[0], s.engine.block_tokens),
        # the share of each prompt found cached, its own (--prefix-hit), and what that is of the shortest prompt
        "prefix_hit": s.prefix_hit, "hit_tokens": hit_tokens(s.prefix_hit, s.prompt[0], s.engine.block_tokens),
        "speculation": None if s.speculation is None else {
            "draft": s.speculation.name, "draft_tokens": s.speculation.tokens,
            "acceptance": list(s.speculation.acceptance), "expected_tokens_per_step": s.speculation.expected_tokens},
        "gpus": s.gpus, "replicas": s.replicas,
        "ttft_s": s.ttft.mean, "tpot_s": s.tpot.mean,
        **{f"{m}_s_stats": _stats(getattr(s, m)) for m in METRICS},
        "expected_tokens_per_s": s.tokens_per_s, "expected_tokens_per_s_per_gpu": s.tokens_per_s_per_gpu,
        "expected_tokens_per_s_per_user": s.tokens_per_s_per_user,
        "iteration_s_stats": _stats(s.iteration), "tokens_per_iteration_stats": _stats(s.tokens_per_iteration),
        "share_of_iteration_time_by_class": s.by_class, "kv_cache_blocks_per_gpu": s.kv_blocks,
        "kv_cache_peak_use": s.kv_used, "requests_measured": s.measured, "iterations_measured": s.iterations,
        "preemptions": s.preemptions,
        "overhead_s_per_iteration": s.overhead_s, "overhead_s_per_request": s.engine.overhead_per_request_s,
        "host_launch_s_per_kernel": s.engine.host_launch_s,
        "request_latency_s": s.request_latency_s, "notes": list(s.notes),
    }


@renderer(Serving, "json")
def as_json(s: Serving, fmt: str) -> str:
    return to_json(_record(s))


@renderer(Serving, "csv")
def as_csv(s: Serving, fmt: str) -> str:
    """One row: the JSON's figures, nested names joined by '_' (ttft_s_stats_p90, engine_name), without its prose (the
    notes, the time model's description, the units' legend), so that many runs' rows stack into one table."""
    r = flat({k: v for k, v in _record(s).items() if k not in ("notes", "time_model", "units")})
    return to_csv(list(r), [list(r.values())])


@renderer(Serving, "table", "markdown")
def as_text(s: Serving, fmt: str) -> str:
    hw = s.hardware
    scope = f"{s.gpus} GPUs, {counted(s.replicas, 'replica')}" if s.gpus > 1 else "one GPU"
    rows = [[WORDS[m], *(seconds(v) for v in _stats(getattr(s, m)).values())] for m in METRICS]
    rates = [["output tokens/s, all GPUs", sig(s.tokens_per_s)],
             ["output tokens/s per GPU", sig(s.tokens_per_s_per_gpu)],
             ["output tokens/s per user (1 / TPOT)", sig(s.tokens_per_s_per_user)]]
    shares = ", ".join(f"{'the GPU waiting on the host' if k == HOST else k} {v:.0%}" for k, v in s.by_class.items()
                       if v >= 0.005)
    e = s.engine
    return lines(
        f"opgraph serve: {s.model} on {hw.display_name} ({hw.name}), {scope}, fusion {s.plan.name}, engine {e.name}",
        (f"benchmark: {counted(s.requests, 'request')} per replica, {s.concurrency} in flight (the first "
         f"{s.concurrency} sent at once, a finished one replaced while any are left), every one counted"
         if s.requests else
         f"closed loop: {counted(s.concurrency, 'request')} in flight per replica (a finished one replaced at once)"
         if s.concurrency is not None else
         f"open loop: {s.rate:g} {noun(s.rate, 'request')} a second per replica (Poisson, seed {s.seed})")
        + f"; each {_span(s.prompt)} prompt {noun(s.prompt[1], 'token')} -> {_span(s.output)} output tokens"
        + _cached_said(s),
        *([f"speculative decoding: draft {s.speculation.name} proposes {s.speculation.tokens} tokens a step, "
           f"accepted with {', '.join(f'{a:g}' for a in s.speculation.acceptance)} (assumed): "
           f"{s.speculation.expected_tokens:.2f} tokens a step on average"] if s.speculation else []),
        f"scheduler: {e.rules}, {e.max_batched_tokens:,} tokens{_chunk_said(e.chunk)} and {e.max_seqs:,} requests "
        f"an iteration, KV "
        f"cache {blocks_of(s.kv_blocks, e.block_tokens)} a GPU ("
        f"{f'{e.memory_fraction:g} of its memory' if e.kv_share == 1 else f'{e.kv_share:g} of what the weights and activations leave'}), "
        f"{s.kv_used:.0%} in use at the peak",
        "", table(rows, ["latency, per request", "mean", "p50", "p90", "p99"], fmt,
                  colalign=("left", "right", "right", "right", "right")),
        "", table(rates, ["throughput", "value"], fmt, colalign=("left", "right")),
        "", f"iterations: {seconds(s.iteration.mean)} on average (p90 {seconds(s.iteration.p90)}), "
            f"{sig(s.tokens_per_iteration.mean)} tokens each; time by kernel class: {shares}",
        f"measured: {counted(s.measured, 'request')} over {counted(s.iterations, 'iteration')}"
        + (", every one from the start (no warm-up)" if s.requests else " after the warm-up"),
        *(f"note: {n}" for n in s.notes),
        "", f"Times are expected ({time_model_line(hw)}). Engine limits: {e.source}.")


def _chunk_said(chunk: int | None) -> str:
    """A cap on one prompt's tokens an iteration (--chunk), in words after the budget ("" for none)."""
    return f" (a prompt's at most {chunk:,})" if chunk else ""


def _cached_said(s: Serving) -> str:
    """What prefix caching the run assumed, in words ("" for none): a shared prefix, or a hit rate."""
    bt = s.engine.block_tokens
    if s.prefix:
        return (f"; the first {s.prefix:,} prompt tokens shared (prefix caching), "
                f"{cached_tokens(s.prefix, s.prompt[0], bt):,} of them cached (whole blocks of {bt}, never a prompt's "
                f"last token)")
    if s.prefix_hit:
        return (f"; prefix caching: {s.prefix_hit:.0%} of each prompt's tokens found cached, its own (held with the "
                f"request, not shared): {hit_tokens(s.prefix_hit, s.prompt[0], bt):,} of {s.prompt[0]:,} (whole blocks "
                f"of {bt}, never a prompt's last token)")
    return ""


@renderer(Serving, "html")
def as_html(s: Serving, fmt: str) -> str:
    """The latency percentiles, the throughput, the iterations and the time by kernel class. The page's data is the
    JSON."""
    import json

    from opgraph.render.html import bars, esc, facts, page, palette, table

    data = as_json(s, "json")
    d = json.loads(data)
    scope = f"{d['gpus']} GPUs, {counted(d['replicas'], 'replica')}" if d["gpus"] > 1 else "one GPU"
    latency = table("latency", ["latency, per request", "mean", "p50", "p90", "p99"],
                    [([(WORDS[m], WORDS[m]), *((seconds(v), v) for v in d[f"{m}_s_stats"].values())], {"data-op": m})
                     for m in METRICS])
    rates = facts([(f"output tokens/s, all {d['gpus']} GPUs" if d["gpus"] > 1 else "output tokens/s, all GPUs",
                    sig(d["expected_tokens_per_s"])),
                   ("output tokens/s per GPU", sig(d["expected_tokens_per_s_per_gpu"])),
                   ("output tokens/s per user (1 / TPOT)", sig(d["expected_tokens_per_s_per_user"])),
                   ("iteration time, mean (p90)", f"{seconds(d['iteration_s_stats']['mean'])} "
                                                  f"({seconds(d['iteration_s_stats']['p90'])})"),
                   ("tokens an iteration, mean", sig(d["tokens_per_iteration_stats"]["mean"])),
                   ("KV cache a GPU: blocks, peak use", f"{d['kv_cache_blocks_per_gpu']:,}, {d['kv_cache_peak_use']:.0%}"),
                   ("measured", f"{counted(d['requests_measured'], 'request')} over "
                                f"{counted(d['iterations_measured'], 'iteration')}")])
    classes = d["share_of_iteration_time_by_class"]
    colour = palette(classes)
    by_class = bars([(k, v * 100, colour[k], f"{k}: {v:.1%} of the iterations' time") for k, v in classes.items()],
                    "%")
    e = d["engine"]
    load = (f"benchmark: {counted(d['benchmark_requests_per_replica'], 'request')} per replica, "
            f"{d['concurrency_per_replica']} in flight" if d["benchmark_requests_per_replica"] else
            f"closed loop: {counted(d['concurrency_per_replica'], 'request')} in flight per replica"
            if d["concurrency_per_replica"] is not None else
            f"open loop: {d['rate_per_s_per_replica']:g} {noun(d['rate_per_s_per_replica'], 'request')} a second per "
            f"replica (Poisson, seed {d['seed']})")
    hw = s.hardware
    title = f"opgraph serve: {d['model']} on {hw.display_name} ({hw.name}), {scope}, engine {e['name']}"
    note = (f"{esc(load)}; prompts {esc(_span(s.prompt))} tokens, outputs {esc(_span(s.output))} tokens"
            f"{esc(_cached_said(s))}; fusion "
            f"{esc(d['fusion'])}; scheduler: {esc(s.engine.rules)}, {e['max_batched_tokens']:,} tokens"
            + _chunk_said(e["chunk_tokens"])
            + f" and {e['max_seqs']:,} requests an iteration at most. Times are expected "
              f"({esc(time_model_line(hw))}); engine limits: {esc(e['source'])}.")
    body = (f"<h2>latency</h2>{latency}<h2>throughput</h2>{rates}<h2>time by kernel class (share of the iterations' "
            f"time)</h2>{by_class}")
    return page(title, note, body, data, d["notes"])
