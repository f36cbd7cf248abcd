"""`opgraph plan`: the ranked parallel layouts, and what was dropped and why."""

from __future__ import annotations

from opgraph.analysis.plan import Candidate, PlanSearch
from opgraph.analysis.serving_plan import SPLITS, ServingCandidate, ServingPlan
from opgraph.render import renderer
from opgraph.render.report import time_model_line
from opgraph.errors import counted, noun
from opgraph.render.text import gb, header, heading, lines, seconds, sig, table, to_csv, to_json

COLUMNS = ["layout", "batch per replica", "sequences", "TTFT", "TPOT", "tokens/s per GPU", "memory per GPU",
           "bound by (share of a decode step's roofline)"]


def _row(c: Candidate) -> list:
    return [c.layout.describe() + (" (crosses nodes)" if c.crosses_nodes else ""), c.batch, c.sequences,
            seconds(c.ttft_s), "-" if c.tpot_s is None else seconds(c.tpot_s), sig(c.tokens_per_s_per_gpu),
            f"{gb(c.memory_bytes, 1)} ({c.memory_bytes / c.capacity_bytes:.0%})",
            f"{c.bound_by} ({c.bound_share:.0%})"]


def _limits(s: PlanSearch | ServingPlan) -> str:
    mean = "mean " if isinstance(s, ServingPlan) else ""
    given = [f"{what} <= {seconds(s.limits[key])}" for key, what in (
        ("max_tpot_s", f"{mean}TPOT"), ("max_ttft_s", f"{mean}TTFT"), ("max_tpot_p90_s", "p90 TPOT"),
        ("max_ttft_p90_s", "p90 TTFT")) if key in s.limits]
    return " and ".join(given) or "no latency limit"


@renderer(PlanSearch, "table", "markdown")
def as_text(s: PlanSearch, fmt: str) -> str:
    hw = s.hardware
    out = header(f"opgraph plan: {s.model} on {s.gpus} x {hw.display_name} ({hw.name})", fmt, [
        f"prompt {s.prompt:,} tokens, {s.output:,} output tokens per sequence; {_limits(s)}; ranked by output "
        f"tokens/s per GPU (replicas x batch x output tokens over TTFT + every decode step, over "
        f"{counted(s.gpus, 'GPU')})",
        f"{counted(s.evaluated, 'candidate')} costed in {s.seconds:.2f} s; "
        f"{_fit(len(s.ranked), s.too_big, s.too_slow, 'in memory', 'latency limit')}",
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


def _named(c: ServingCandidate) -> str:
    """The candidate's layout, and its speculative decoding when it drafts."""
    return c.layout.describe() + (" + draft" if c.speculative else "")


SERVING_COLUMNS = ["layout", "concurrency per replica", "TTFT", "TPOT", "tokens/s per GPU", "tokens/s per user",
                   "Pareto", "within limits"]


def _p90(s: ServingPlan) -> bool:
    """Whether p90 columns are shown: p90 limits asked for, or open loops (each an event run, which gives them)."""
    return s.open_loop or "max_tpot_p90_s" in s.limits or "max_ttft_p90_s" in s.limits


def _load_name(s: ServingPlan) -> str:
    return "requests/s in all" if s.open_loop else "concurrency per replica"


def _load(c: ServingCandidate) -> str:
    """A candidate's load: its rate in all (an open loop) or its concurrency per replica."""
    return f"{c.rate:g}" if c.rate is not None else f"{c.concurrency:,}"


def _fit(ranked: int, too_big: int, too_slow: int, where: str, limit: str) -> str:
    """What became of a static plan's candidates, each count with its verb: '1 fits and meets the limits, ...'."""
    return (f"{counted(ranked, 'fits and meets', 'fit and meet')} the limits, "
            f"{counted(too_big, 'does not fit', 'do not fit')}{' ' + where if where else ''}, "
            f"{counted(too_slow, 'misses', 'miss')} the {limit}")


def _at(c: ServingCandidate) -> str:
    return (f"{_load(c)} {noun(c.rate, 'request')} a second in all" if c.rate is not None else
            f"{counted(c.concurrency, 'request')} per replica")


def _serving_row(c: ServingCandidate, best: ServingCandidate | None, budgets: bool, p90: bool) -> list:
    percentiles = [("-" if v is None else seconds(v)) for v in (c.p90_ttft_s, c.p90_tpot_s)] if p90 else []
    return [_named(c) + (" (best)" if c is best else ""), *([f"{c.max_batched_tokens:,}"] if budgets else []),
            _load(c), *percentiles, seconds(c.steady.ttft_s) + ("*" if c.steady.queued else ""),
            seconds(c.steady.tpot_s), sig(c.tokens_per_s_per_gpu), sig(c.tokens_per_s_per_user),
            "front" if c.on_front else "", "yes" if c.meets_limits else "no"]


@renderer(ServingPlan, "table", "markdown")
def serving_text(s: ServingPlan, fmt: str) -> str:
    hw = s.hardware
    loops = (f"open loops of requests of {s.prompt:,} prompt and {s.output:,} output tokens arriving at each rate "
             f"in all (Poisson), a layout's replicas sharing them, each as 'opgraph serve --rate' serves it (its event "
             f"run)" if s.open_loop else
             f"closed loops of requests of {s.prompt:,} prompt and {s.output:,} output tokens, each layout at each "
             f"concurrency per replica, in their steady state (opgraph.analysis.capacity)")
    beyond = ("(layout, rate) pairs a layout cannot keep up with or hold" if s.open_loop else
              "(layout, concurrency) pairs beyond what the KV cache or the engine holds")
    out = header(f"opgraph plan: serving {s.model} on {s.gpus} x {hw.display_name} ({hw.name}), engine {s.engine}, "
                 f"fusion {s.plan}", fmt, [
        loops + _splits_said(s) + f"; {_limits(s)}",
        f"{counted(len(s.candidates), 'candidate')} costed in {s.seconds:.2f} s; "
        f"{sum(c.on_front for c in s.candidates):,} on the Pareto front of tokens/s per GPU against tokens/s per user; "
        f"{s.too_big:,} {beyond}"])
    if s.best is not None:
        b = s.best
        out += ["", f"best within the limits: {_named(b)} at {_at(b)}"
                    + (f", {b.max_batched_tokens:,} tokens an iteration" if s.budgets_searched else "") + ": "
                    f"{sig(b.tokens_per_s_per_gpu)} tokens/s per GPU, {sig(b.tokens_per_s_per_user)} tokens/s per "
                    f"user, TTFT {seconds(b.steady.ttft_s)}, TPOT {seconds(b.steady.tpot_s)}"]
    else:
        lower = "rates" if s.open_loop else "concurrencies"
        out += ["", f"no candidate is within the limits: give more GPUs, lower {lower} or looser limits"]
    shown = [c for c in s.candidates if c.on_front][:s.top]
    if shown:
        out += ["", heading(f"the Pareto front ({len(shown)} shown, most tokens/s per GPU first)", fmt), "",
                table([_serving_row(c, s.best, s.budgets_searched, _p90(s)) for c in shown],
                      SERVING_COLUMNS[:1] + ["token budget an iteration"] * s.budgets_searched + [_load_name(s)]
                      + ["p90 TTFT", "p90 TPOT"] * _p90(s) + SERVING_COLUMNS[2:], fmt)]
    if s.dropped:
        out += ["", heading("layouts not served", fmt), "",
                table([[d.layout.describe(), d.reason] for d in s.dropped], ["layout", "why"], fmt)]
    out += ["", f"Times are expected ({time_model_line(hw)}); tokens/s are output tokens, per GPU over "
                f"{'all ' if s.gpus > 1 else ''}{counted(s.gpus, 'GPU')} and per user 1 / TPOT."
                + (" Every aggregated candidate is an event run (means and p90s); a split's figures are its closed "
                   "form's means ('-': no p90)." if s.open_loop else
                   f" p90s: {counted(s.event_runs, 'candidate')} within the mean limits "
                   f"{noun(s.event_runs, 'runs', 'run')} event by event (opgraph serve), "
                   f"most tokens/s per GPU first, until one was within the p90 limits ('-': not run)." if _p90(s) else
                   "")
                + (" TTFT*: prompts arriving together queue for an iteration's room; the closed form takes the "
                   "wait from a first-come-first-served queue of evenly spread arrivals (rough where prompts run "
                   "only whole, or, prompts first, more arrive in a decode step than one prefill iteration takes), "
                   "and a TTFT limit is checked by 'opgraph serve' too."
                   if any(c.steady.queued for c in shown) else ""), *(f"note: {n}" for n in s.notes + _drafted(s))]
    return lines(out)


def _drafted(s: ServingPlan) -> tuple[str, ...]:
    """What speculative decoding assumes, said: its acceptance is the user's figure, not a measurement of ours."""
    if s.draft is None:
        return ()
    d = s.draft
    return (f"+ draft: speculative decoding with {d.name}, {d.tokens} tokens proposed a step, each accepted with the "
            f"chance {', '.join(f'{a:g}' for a in d.acceptance)} (assumed, as given), tried beside plain decoding on "
            f"every aggregated layout without pipeline stages"
            + (" and every split without them" if s.disaggregated else "")
            + "; the draft's weights and KV cache share the GPU",)


def _splits_said(s: ServingPlan) -> str:
    return ("; and every split into X prefill and Y decode workers (XpYd: each pool's worker layout in brackets), at "
            + ("each rate" if s.open_loop else "each concurrency per decode replica")
            + " (opgraph.analysis.disaggregated)" if s.disaggregated else "")


def _pools(c: ServingCandidate, hardware: str) -> dict:
    """The layout's sizes, flat (a CSV column each): an aggregated layout's tp, pp, dp and ep, or a split's workers,
    each pool's worker layout and the decode workers' GPU (`hardware`, the plan's, unless the split's own); the other
    kind's keys null."""
    split = c.disaggregated
    whole = {k: None if split else getattr(c.layout, k) for k in ("tp", "pp", "dp", "ep")}
    pools = {f"{pool}_{k}": getattr(getattr(c.layout, pool), k) if split else None
             for pool in ("prefill", "decode") for k in ("tp", "pp", "dp", "ep")}
    workers = {f"{pool}_workers": getattr(c.layout, f"{pool}_workers") if split else None
               for pool in ("prefill", "decode")}
    gpu = {"decode_hardware": (c.layout.decode_gpu or hardware) if split else None}
    return {"disaggregated": split, **whole, **workers, **pools, **gpu}


def _serving_dict(c: ServingCandidate, best: ServingCandidate | None, hardware: str) -> dict:
    return {**_pools(c, hardware), "layout": c.layout.describe(), "speculative": c.speculative,
            "concurrency_per_replica": None if c.rate is not None else c.concurrency, "rate_per_s": c.rate,
            "max_batch_tokens": c.max_batched_tokens,
            "expected_ttft_s": c.steady.ttft_s, "prompts_queue": c.steady.queued, "event_ttft_s": c.event_ttft_s,
            "p90_ttft_s": c.p90_ttft_s, "p90_tpot_s": c.p90_tpot_s,
            "expected_tpot_s": c.steady.tpot_s, "expected_tokens_per_s_per_gpu": c.tokens_per_s_per_gpu,
            "expected_tokens_per_s_per_user": c.tokens_per_s_per_user, "on_pareto_front": c.on_front,
            "within_limits": c.meets_limits, "best": c is best}


@renderer(ServingPlan, "json")
def serving_json(s: ServingPlan, fmt: str) -> str:
    return to_json({
        "model": s.model, "hardware": s.hardware.name, "engine": s.engine, "fusion": s.plan, "gpus": s.gpus,
        "prompt_tokens": s.prompt, "output_tokens": s.output, "limits": s.limits,
        "units": {"*_s": "s", "*_per_gpu": "output tokens/s per GPU", "*_per_user": "output tokens/s per user"},
        "search_s": s.seconds, "too_big": s.too_big, "disaggregated_searched": s.disaggregated, "notes": list(s.notes),
        "open_loop": s.open_loop,
        "event_runs": s.event_runs, "request_latency_s": s.request_latency_s,
        "draft": None if s.draft is None else {"model": s.draft.name, "tokens_a_step": s.draft.tokens,
                                               "acceptance": list(s.draft.acceptance), "assumed": True},
        "best": None if s.best is None else _serving_dict(s.best, s.best, s.hardware.name),
        "candidates": [_serving_dict(c, s.best, s.hardware.name) for c in s.candidates],
        "dropped": [{"tp": d.layout.tp, "dp": d.layout.dp, "ep": d.layout.ep, "pp": d.layout.pp, "reason": d.reason}
                    for d in s.dropped]})


@renderer(ServingPlan, "csv")
def serving_csv(s: ServingPlan, fmt: str) -> str:
    rows = [_serving_dict(c, s.best, s.hardware.name) for c in s.candidates]
    keys = list(rows[0]) if rows else ["layout"]
    return to_csv(keys, [[r[k] for k in keys] for r in rows])


@renderer(ServingPlan, "html")
def serving_html(s: ServingPlan, fmt: str) -> str:
    """Every candidate, the Pareto front and the best within the limits, as one page; its data is the JSON."""
    import json

    from opgraph.render.html import chart, esc, filters, legend, page, palette, table

    data = serving_json(s, "json")
    d = json.loads(data)
    def group(c: dict) -> str:  # splits share a colour; a layout with its draft has its own
        return SPLITS if c["disaggregated"] else c["layout"] + (" + draft" if c["speculative"] else "")

    colour = palette(sorted({group(c) for c in d["candidates"]}))

    def at(c: dict) -> str:  # its load: a rate in all (open loops) or a concurrency per replica
        return (f"{c['rate_per_s']:g} requests/s in all" if c["rate_per_s"] is not None else
                f"{counted(c['concurrency_per_replica'], 'request')} per replica")
    points = [(c["expected_tokens_per_s_per_user"], c["expected_tokens_per_s_per_gpu"], colour[group(c)],
               f"{group(c) if not c['disaggregated'] else c['layout']} at {at(c)}, {c['max_batch_tokens']:,} tokens an "
               f"iteration: {c['expected_tokens_per_s_per_gpu']:,.0f} "
               f"tokens/s per GPU, {c['expected_tokens_per_s_per_user']:,.1f} per user, TTFT "
               f"{seconds(c['expected_ttft_s'])}, TPOT {seconds(c['expected_tpot_s'])}"
               + ("; the best within the limits" if c["best"] else "")
               + ("" if c["within_limits"] else "; outside the limits"), c["within_limits"], 8 if c["best"] else 4)
              for c in d["candidates"]]
    front = sorted((c for c in d["candidates"] if c["on_pareto_front"]),
                   key=lambda c: c["expected_tokens_per_s_per_user"])
    lines_ = [([(c["expected_tokens_per_s_per_user"], c["expected_tokens_per_s_per_gpu"]) for c in front], "#222",
               "Pareto front")] if len(front) > 1 else []
    if "max_tpot_s" in s.limits and points:  # the SLA's edge: tokens/s per user of at least 1 / the TPOT limit
        edge, ys = 1 / s.limits["max_tpot_s"], [p[1] for p in points]
        lines_.append(([(edge, min(ys)), (edge, max(ys))], "#EE6677",
                       f"TPOT {seconds(s.limits['max_tpot_s'])}: within to the right", True))
    drawn = chart(points, lines_, "output tokens/s per user (1 / TPOT)", "output tokens/s per GPU")
    rows = [([(c["layout"], c["layout"]), ("yes" if c["speculative"] else "", int(c["speculative"])),
              (f"{c['max_batch_tokens']:,}", c["max_batch_tokens"]),
              ((f"{c['rate_per_s']:g}", c["rate_per_s"]) if s.open_loop else
               (f"{c['concurrency_per_replica']:,}", c["concurrency_per_replica"])),
              (seconds(c["expected_ttft_s"]), c["expected_ttft_s"]), (seconds(c["expected_tpot_s"]), c["expected_tpot_s"]),
              (sig(c["expected_tokens_per_s_per_gpu"]), c["expected_tokens_per_s_per_gpu"]),
              (sig(c["expected_tokens_per_s_per_user"]), c["expected_tokens_per_s_per_user"]),
              ("front" if c["on_pareto_front"] else "", int(c["on_pareto_front"])),
              ("yes" if c["within_limits"] else "no", int(c["within_limits"])), ("best" if c["best"] else "", int(c["best"]))],
             {"data-bound": "on the front" if c["on_pareto_front"] else "off the front",
              "data-op": f"{c['layout']}@{c['rate_per_s'] if s.open_loop else c['concurrency_per_replica']}/"
                         f"{c['max_batch_tokens']}"
                         + ("+draft" if c["speculative"] else "")})
            for c in d["candidates"]]
    best = d["best"]
    said = (f"best within the limits: {best['layout']} at {at(best)}, "
            f"{best['expected_tokens_per_s_per_gpu']:,.0f} tokens/s per GPU, {best['expected_tokens_per_s_per_user']:,.1f} "
            f"per user" if best else "no candidate is within the limits")
    hw = s.hardware
    title = f"opgraph plan: serving {s.model} on {s.gpus} x {hw.display_name} ({hw.name}), engine {s.engine}"
    note = (f"{s.prompt:,} prompt and {s.output:,} output tokens a request, each layout "
            + ("at each rate in all, as 'opgraph serve --rate' serves it" if s.open_loop else
               "at each concurrency per replica in its steady state")
            + f"{esc(_splits_said(s))}; {esc(_limits(s))}. Filled: within the limits; hollow: outside; large: the "
            f"best; a TPOT limit is drawn dashed, the candidates within it to its right.")
    body = (f"<p><strong>{esc(said)}</strong></p>{legend(colour)}{drawn}"
            f"<h2>candidates</h2>{filters('candidates', ['on the front', 'off the front'], 'Pareto', 'layout')}"
            + table("candidates", ["layout", "draft", "token budget an iteration", _load_name(s), "TTFT",
                                   "TPOT",
                                   "tokens/s per GPU",
                                   "tokens/s per user", "Pareto", "within limits", "best"], rows))
    return page(title, note, body, data, s.notes + _drafted(s))


@renderer(PlanSearch, "html")
def as_html(s: PlanSearch, fmt: str) -> str:
    """Every candidate layout and batch that fits and meets the limits, by tokens/s per user (1 / TPOT) and per GPU,
    one colour a layout, the best large; every candidate in a table that sorts and filters; the layouts that cannot
    be built and why. The page's data is the JSON."""
    import json

    from opgraph.render.html import chart, esc, filters, legend, page, palette, table

    data = as_json(s, "json")
    d = json.loads(data)
    ranked = d["ranked"]
    colour = palette(sorted({c["layout"] for c in ranked}))
    drawable = [c for c in ranked if c["expected_tpot_s"]]
    points = [(1 / c["expected_tpot_s"], c["expected_tokens_per_s_per_gpu"], colour[c["layout"]],
               f"{c['layout']} at batch {c['batch_per_replica']:,} a replica: {c['expected_tokens_per_s_per_gpu']:,.0f} "
               f"tokens/s per GPU, TTFT {seconds(c['expected_ttft_s'])}, TPOT {seconds(c['expected_tpot_s'])}, "
               f"{c['memory_bytes'] / 1e9:,.1f} GB a GPU" + ("; the best" if i == 0 else ""), True, 8 if i == 0 else 4)
              for i, c in enumerate(drawable)]
    picture = chart(points, [], "output tokens/s per sequence (1 / TPOT)", "output tokens/s per GPU")
    rows = [([(f"{i:,}", i), (c["layout"] + (" (crosses nodes)" if c["crosses_nodes"] else ""), c["layout"]),
              (f"{c['batch_per_replica']:,}", c["batch_per_replica"]), (f"{c['sequences']:,}", c["sequences"]),
              (seconds(c["expected_ttft_s"]), c["expected_ttft_s"]),
              ("-" if c["expected_tpot_s"] is None else seconds(c["expected_tpot_s"]), c["expected_tpot_s"] or 0.0),
              (sig(c["expected_tokens_per_s_per_gpu"]), c["expected_tokens_per_s_per_gpu"]),
              (f"{c['memory_bytes'] / 1e9:,.1f} ({c['memory_bytes'] / c['capacity_bytes']:.0%})", c["memory_bytes"]),
              (f"{c['bound_by']} ({c['bound_share']:.0%})", c["bound_by"])],
             {"data-bound": c["layout"], "data-op": f"{c['layout']}@{c['batch_per_replica']}"})
            for i, c in enumerate(ranked, 1)]
    dropped = "".join(f"<tr><td class=text>tp {x['tp']}, dp {x['dp']}, ep {x['ep']}</td><td class=text>"
                      f"{esc(x['reason'])}</td></tr>" for x in d["dropped"])
    hw = s.hardware
    best = ranked[0] if ranked else None
    said = (f"best: {best['layout']} at batch {best['batch_per_replica']:,} a replica, "
            f"{best['expected_tokens_per_s_per_gpu']:,.0f} output tokens/s per GPU" if best else
            "no candidate fits and meets the limits")
    title = f"opgraph plan: {s.model} on {s.gpus} x {hw.display_name} ({hw.name})"
    note = (f"A static batch: prompt {s.prompt:,} tokens, {s.output:,} output tokens per sequence; {esc(_limits(s))}; "
            f"ranked by output tokens/s per GPU over {'all ' if s.gpus > 1 else ''}{counted(s.gpus, 'GPU')}. "
            f"{counted(d['evaluated'], 'candidate')} costed: "
            f"{_fit(len(ranked), d['too_big'], d['too_slow'], '', 'limits')}. "
            f"Times are expected ({esc(time_model_line(hw))}); memory is one GPU's, GB = 10^9 bytes.")
    body = (f"<p><strong>{esc(said)}</strong></p>{legend(colour)}<p class=\"note\">{len(drawable):,} candidates drawn"
              f"{'' if len(drawable) == len(ranked) else ' (those with decode steps)'}; large: the best.</p>{picture}"
              f"<h2>candidates</h2>{filters('ranked', list(colour), 'layout', 'layout or op')}"
            + table("ranked", ["rank", "layout", "batch per replica", "sequences (all replicas)", "TTFT", "TPOT",
                               "output tokens/s per GPU", "memory per GPU (GB, of capacity)",
                               "bound by (share of a decode step's roofline)"], rows)
            + (f"<h2>layouts that cannot be built</h2><table><thead><tr><th>layout</th><th>why</th></tr></thead>"
               f"<tbody>{dropped}</tbody></table>" if dropped else ""))
    return page(title, note, body, data, d["notes"])
