"""`opgraph serve --disaggregate`: prefill and decode workers apart, in their steady state."""

from __future__ import annotations

from opgraph.analysis.disaggregated import Disaggregated
from opgraph.pricing.hardware import Hardware
from opgraph.render import renderer
from opgraph.render.report import time_model_line
from opgraph.errors import counted, noun
from opgraph.render.text import flat, header, lines, seconds, sig, table, to_csv, to_json


def _gpu(d: Disaggregated, pool) -> Hardware:
    return pool.hardware or d.hardware


def _pools(d: Disaggregated) -> list[list]:
    return [[p.name, p.workers, p.layout, _gpu(d, p).name, p.total_gpus, p.workers * p.replicas,
             f"{p.utilization:.0%}"] for p in (d.prefill, d.decode)]


def _mixed(d: Disaggregated) -> bool:
    return _gpu(d, d.prefill).name != _gpu(d, d.decode).name


def _on(d: Disaggregated) -> str:
    """Which GPUs: one kind for both pools, or each pool's."""
    if not _mixed(d):
        hw = _gpu(d, d.prefill)
        return f"{d.gpus} x {hw.display_name} ({hw.name})"
    return " + ".join(f"{p.total_gpus} x {_gpu(d, p).display_name} ({_gpu(d, p).name}, {p.name})"
                      for p in (d.prefill, d.decode))


def _time_models(d: Disaggregated) -> str:
    if not _mixed(d):
        return time_model_line(_gpu(d, d.prefill))
    return "; ".join(f"{p.name}: {time_model_line(_gpu(d, p))}" for p in (d.prefill, d.decode))


def _load(d: Disaggregated) -> str:
    if d.concurrency is None:
        return (f"an open loop: {d.requests_per_s:g} {noun(d.requests_per_s, 'request')} arriving a second in all "
                f"(Poisson)")
    return f"a closed loop: {counted(d.concurrency, 'request')} per decode replica"


def _bounds(d: Disaggregated) -> str:
    return f"the {d.bound} pool bounds the rate" if d.bound else "the rate is below both pools' capacity"


def _waiting(d: Disaggregated) -> str:
    """What a request waits for before its prompt runs."""
    return "waiting for a decode slot, then a prompt slot" if d.queued else "waiting for a prompt slot"


def _held(d: Disaggregated) -> str:
    return f"{d.decoding:,.1f}" + ("" if d.concurrency is None else f" of {d.concurrency}")


@renderer(Disaggregated, "table", "markdown")
def as_text(d: Disaggregated, fmt: str) -> str:
    out = header(f"opgraph serve: {d.model} on {_on(d)}, disaggregated "
                 f"{d.prefill.workers}p{d.decode.workers}d", fmt, [
                     f"{_load(d)}; each {d.prompt:,} prompt {noun(d.prompt, 'token')}"
                     + (f" (the first {d.prefix:,} shared and cached)" if d.prefix else "")
                     + f" -> {d.output:,} output tokens; {_bounds(d)}",
                     *(f"note: {n}" for n in d.notes)])
    rows = [["time to first token (mean)", seconds(d.ttft_s)],
            ["  " + _waiting(d), seconds(d.waiting_s)],
            ["  the prompt's prefill iteration", seconds(d.prefill_s)],
            [f"  KV-cache transfer ({d.kv_bytes_per_gpu / 1e6:,.1f} MB a GPU over {d.link})", seconds(d.transfer_s)],
            *([["  outside the engines (--request-latency-ms)", seconds(d.request_latency_s)]]
              if d.request_latency_s else []),
            ["time per output token (mean)", seconds(d.tpot_s)],
            ["requests a second, all", sig(d.requests_per_s)],
            ["output tokens/s, all GPUs", sig(d.tokens_per_s)],
            ["output tokens/s per GPU", sig(d.tokens_per_s_per_gpu)],
            ["output tokens/s per user (1 / TPOT)", sig(d.tokens_per_s_per_user)],
            ["requests decoding per decode replica", _held(d)]]
    out += ["", table(rows, ["steady state (closed form)", "value"], fmt, colalign=("left", "right")),
            "", table(_pools(d), ["pool", "workers", "layout (each)", "GPU", "GPUs", "replicas", "busy"], fmt)]
    if d.events is not None:
        e = d.events
        out += ["", f"Request by request (the event run, {e.measured:,} requests measured): output tokens/s, all GPUs "
                    f"{sig(e.tokens_per_s)}; prefill replicas busy {e.prefill_busy:.0%}, decode replicas "
                    f"{e.decode_busy:.0%} of the time", "",
                table([[what, *(seconds(getattr(stats, q)) for q in QUANTILES)] for what, stats in _stats(e)],
                      ["per request", *QUANTILES], fmt, colalign=("left",) + ("right",) * len(QUANTILES))]
    return lines(out, "", f"Times are expected ({_time_models(d)}).")


QUANTILES = ("mean", "p50", "p90", "p99")


def _stats(e) -> list:
    return [("time to first token", e.ttft), ("time per output token", e.tpot), ("inter-token latency", e.itl),
            ("end-to-end latency", e.e2e)]


def _record(d: Disaggregated) -> dict:
    return {"model": d.model, "hardware": d.hardware.name, "units": {"*_s": "s", "*_tokens_per_s*": "output tokens/s"},
            "pools": [{"name": p.name, "workers": p.workers, "layout": p.layout,
                       "hardware": _gpu(d, p).name, "gpus": p.total_gpus,
                       "replicas": p.workers * p.replicas, "utilization": p.utilization} for p in (d.prefill, d.decode)],
            "concurrency_per_decode_replica": d.concurrency, "decoding_per_decode_replica": d.decoding,
            "rate_per_s": d.requests_per_s if d.concurrency is None else None,
            "prompt_tokens": d.prompt, "output_tokens": d.output, "shared_prefix_tokens": d.prefix, "queued": d.queued,
            "ttft_s": d.ttft_s, "tpot_s": d.tpot_s, "waiting_s": d.waiting_s, "prefill_s": d.prefill_s,
            "transfer_s": d.transfer_s,
            "request_latency_s": d.request_latency_s,
            "kv_bytes_per_gpu": d.kv_bytes_per_gpu, "link": d.link, "requests_per_s": d.requests_per_s,
            "expected_tokens_per_s": d.tokens_per_s, "expected_tokens_per_s_per_gpu": d.tokens_per_s_per_gpu,
            "expected_tokens_per_s_per_user": d.tokens_per_s_per_user, "bound": d.bound or None, "gpus": d.gpus,
            "event_run": None if d.events is None else {
                **{f"{key}_s_stats": {q: getattr(getattr(d.events, key), q) for q in QUANTILES}
                   for key in ("ttft", "tpot", "itl", "e2e")},
                "expected_tokens_per_s": d.events.tokens_per_s, "requests_measured": d.events.measured,
                "prefill_busy": d.events.prefill_busy, "decode_busy": d.events.decode_busy},
            "notes": list(d.notes)}


@renderer(Disaggregated, "json")
def as_json(d: Disaggregated, fmt: str) -> str:
    return to_json(_record(d))


@renderer(Disaggregated, "csv")
def as_csv(d: Disaggregated, fmt: str) -> str:
    r = flat({k: v for k, v in _record(d).items() if k not in ("notes", "units")})
    return to_csv(list(r), [list(r.values())])


@renderer(Disaggregated, "html")
def as_html(d: Disaggregated, fmt: str) -> str:
    """The steady state's TTFT (drawn in its parts), TPOT and throughput, and the two pools; the page's data is the
    JSON."""
    from opgraph.render.html import BRIGHT, bars, esc, facts, page, table

    data = as_json(d, "json")
    parts = bars([(_waiting(d), d.waiting_s * 1e3, BRIGHT[3], f"{seconds(d.waiting_s)} waiting"),
                  ("the prompt's prefill iteration", d.prefill_s * 1e3, BRIGHT[0], f"{seconds(d.prefill_s)} prefill"),
                  (f"KV-cache transfer over {d.link}", d.transfer_s * 1e3, BRIGHT[2],
                   f"{seconds(d.transfer_s)}: {d.kv_bytes_per_gpu / 1e6:,.1f} MB a GPU"),
                  *([("outside the engines", d.request_latency_s * 1e3, BRIGHT[1],
                      f"{seconds(d.request_latency_s)} outside the engines")] if d.request_latency_s else [])], "ms")
    figures = facts([("time to first token (mean)", seconds(d.ttft_s)),
                     ("time per output token (mean)", seconds(d.tpot_s)),
                     ("requests a second, all", sig(d.requests_per_s)),
                     (f"output tokens/s, all {d.gpus} GPUs", sig(d.tokens_per_s)),
                     ("output tokens/s per GPU", sig(d.tokens_per_s_per_gpu)),
                     ("output tokens/s per user (1 / TPOT)", sig(d.tokens_per_s_per_user)),
                     ("requests decoding per decode replica", _held(d))])
    pools = table("pools", ["pool", "workers", "layout (each)", "GPU", "GPUs", "replicas", "busy"],
                  [([(p.name, p.name), (str(p.workers), p.workers), (p.layout, p.layout),
                     (_gpu(d, p).name, _gpu(d, p).name), (str(p.total_gpus), p.total_gpus),
                     (str(p.workers * p.replicas), p.workers * p.replicas), (f"{p.utilization:.0%}", p.utilization)],
                    {"data-op": p.name}) for p in (d.prefill, d.decode)])
    title = f"opgraph serve: {d.model} on {_on(d)}, disaggregated {d.prefill.workers}p{d.decode.workers}d"
    note = (f"{_load(d).capitalize()}, each {d.prompt:,} prompt {noun(d.prompt, 'token')} -> "
            f"{d.output:,} output tokens, in its steady state; {esc(_bounds(d))}. Times are "
            f"expected ({esc(_time_models(d))}).")
    events = "" if d.events is None else (
        f"<h2>request by request (the event run, {d.events.measured:,} requests measured)</h2>"
        + table("percentiles", ["per request", *QUANTILES],
                [([(what, what), *((seconds(getattr(st, q)), getattr(st, q)) for q in QUANTILES)], {"data-op": what})
                 for what, st in _stats(d.events)]))
    body = (f"<h2>steady state (closed form)</h2>{figures}<h2>time to first token, in its parts (ms)</h2>{parts}"
            f"{events}<h2>pools</h2>{pools}")
    return page(title, note, body, data, d.notes)
