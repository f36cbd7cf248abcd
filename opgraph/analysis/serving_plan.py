"""Choosing how to serve: `opgraph plan MODEL --gpus N --concurrency LIST` or `--rate LIST` (issue 17 §6).

Every layout of N GPUs (tensor parallelism x pipeline stages x data-parallel replicas, and for MoE models the experts
spread over them or over groups of the tensor-parallel GPUs, as opgraph.analysis.plan enumerates; a layout the engine
cannot run is listed with its reason, Engine.check_layout; a pipeline's concurrency shared by its lanes, one batch in
flight a stage, as `serve` runs them) is tried at every concurrency per replica in the list, each a closed loop of
requests of P prompt and G output tokens under the engine's scheduler (opgraph.analysis.serve.ENGINES), at each token
budget an iteration asked for, with and without speculative decoding when a draft is given, priced in closed form
(opgraph.analysis.capacity: the steady state, within about 1-2% of `serve`'s event run where prompts do not queue):
- it fits when the KV cache (the engine's share of each GPU's memory, less the weights and the largest
  iteration's activations) holds C requests of P + G tokens, and C is within the engine's running limit;
- TTFT and TPOT are the steady state's means; tokens/s per GPU are the replicas' output over all N GPUs, and
  tokens/s per user 1 / TPOT.
With `disaggregated`, every split of the N GPUs into prefill and decode workers (xPyD: X workers of one layout run
prompts, Y of another decode; each worker within a node, or for a MoE model whole nodes of data-parallel attention
and experts over them all; without pipeline stages) is tried too, at every concurrency per
decode replica, in closed form (opgraph.analysis.disaggregated: rate matching between the pools, the KV cache's move
over NVLink when all N GPUs share a node, else the network).
The candidates' Pareto front (no other is better in both tokens/s per GPU and tokens/s per user) is marked, and the
best candidate is the one with the most tokens/s per GPU among those within the limits (--max-ttft, --max-tpot: the
means; --max-ttft-p90, --max-tpot-p90: the 90th percentiles of `serve`'s event run, which the closed form does not
give, run for the candidates within the mean limits, best first, until one is within them). Where prompts queue for
an iteration's room (Steady.queued) the closed form's figures are rougher, so under a TTFT limit such a candidate is
run event by event too before it is chosen.
With `--rate LIST` the loops are open instead: requests arriving R a second in all (Poisson), a layout's replicas
sharing them; each (layout, rate) is `serve --rate`'s event run itself (means and p90s; a rate it cannot keep up
with is no candidate), its tokens/s per GPU R x G over its GPUs; a split's is its closed form at that rate.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence

import attrs

from opgraph.analysis.capacity import Drafting, Steady, steady
from opgraph.analysis.disaggregated import disaggregated as disaggregated_state, one_node, side
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.plan import Arrange, Dropped, Layout, layouts
from opgraph.analysis.serve import (ENGINES, Engine, Speculation, check_speculation, kv_blocks, latency_note,
                                    replica_holds, serve, with_limits)
from opgraph.core import checks
from opgraph.core.fusion import FusionPlan
from opgraph.errors import OpgraphError
from opgraph.files import planfile
from opgraph.pricing.hardware import Hardware

DEFAULT_CONCURRENCY = tuple(2**i for i in range(10))  # 1 .. 512 per replica
MOST_EVENT_RUNS = 40  # candidates run event by event, best first, to find one within p90 limits
SPLITS = "disaggregated (xPyD splits)"  # how charts name the splits, drawn in one colour (there are many)


@attrs.frozen
class Split:
    """A disaggregated deployment: `prefill_workers` engine instances laid out as `prefill` run the prompts and
    `decode_workers` laid out as `decode` run the decodes."""

    prefill: Layout
    prefill_workers: int
    decode: Layout
    decode_workers: int
    decode_gpu: str = ""  # the decode workers' GPU where it is not the plan's

    @property
    def gpus(self) -> int:
        return self.prefill_workers * self.prefill.gpus + self.decode_workers * self.decode.gpus

    def describe(self) -> str:
        on = f" on {self.decode_gpu}" if self.decode_gpu else ""
        return (f"{self.prefill_workers}p ({self.prefill.describe()}) + "
                f"{self.decode_workers}d ({self.decode.describe()}{on})")


def splits(gpus: int, moe: bool, per_node: int) -> list[Split]:
    """Every way to fill `gpus` GPUs with X >= 1 prefill and Y >= 1 decode workers, each worker one layout of a
    divisor of `gpus` GPUs within a node (`per_node`), pipeline stages included. A dense model's data-parallel
    replicas inside a worker are the same as more workers, so its workers are tensor-parallel (and pipelined) only; a
    MoE model's may also spread experts over replicas (data-parallel attention, as DeepSeek's deployments do). A
    worker may also span whole nodes (2, 3, ... nodes): a pipeline stage a node, tensor parallel within it, its
    hand-offs over the network; and for a MoE model attention data-parallel with the experts over every GPU (wide
    expert parallelism, its all-to-all over the network)."""
    sizes = [g for g in range(1, min(gpus - 1, per_node) + 1) if gpus % g == 0]
    workers = {g: [w for w in layouts(g, moe) if w.dp == 1 or w.ep > 1] for g in sizes}
    wide = list(range(2 * per_node, gpus, per_node))  # workers of whole nodes
    workers.update({g: [Layout(per_node, 1, 1, g // per_node)] + [Layout(1, g, g)] * moe for g in wide})
    sizes += wide
    out = []
    for gp in sizes:
        for x in range(1, gpus // gp + 1):
            rest = gpus - x * gp
            for gd in sizes:
                if rest > 0 and rest % gd == 0:
                    out += [Split(p, x, d, rest // gd) for p in workers[gp] for d in workers[gd]]
    return out


@attrs.frozen
class Draft:
    """Speculative decoding to try beside plain decoding: the draft model laid out as the target is (`arrange`), the
    tokens it proposes a step and the chance each is accepted."""

    arrange: Arrange
    name: str
    tokens: int
    acceptance: tuple[float, ...]

    def __attrs_post_init__(self) -> None:  # refused before any layout is tried, not layout by layout
        check_speculation(self.tokens, self.acceptance)

    def at(self, layout: Layout, fusion: FusionPlan, group_hw: Hardware) -> Drafting:
        """The draft laid out as the target is at `layout`, priced by the target's fusion plan and GPUs."""
        build, _ = self.arrange(layout)
        return Drafting(IterationPricer.of(build, fusion, group_hw),  # the one `serve` takes for it too
                        Speculation(build, self.name, self.tokens, self.acceptance))


@attrs.frozen
class ServingCandidate:
    layout: Layout | Split
    concurrency: int  # requests in flight per replica (a split: per decode replica)
    steady: Steady
    tokens_per_s_per_gpu: float
    meets_limits: bool
    on_front: bool = False
    max_batched_tokens: int = 0  # the engine's token budget an iteration (a split: its prefill workers')
    speculative: bool = False  # decoding with the plan's draft model
    # from `serve`'s event run, for the candidates checked by one: against p90 limits, or against a TTFT limit where
    # prompts queue (Steady.queued: the closed form's figures are rougher there)
    p90_ttft_s: float | None = None
    p90_tpot_s: float | None = None
    event_ttft_s: float | None = None  # the event run's mean
    rate: float | None = None  # an open loop: requests arriving a second in all, over the candidate's GPUs

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1 / self.steady.tpot_s

    @property
    def disaggregated(self) -> bool:
        return isinstance(self.layout, Split)


@attrs.frozen
class ServingPlan:
    """`opgraph plan --concurrency`: every candidate that fits, the Pareto front, and the best under the limits."""

    model: str
    hardware: Hardware  # as the engine prices it (Engine.timed): its time model names the tables it used
    engine: str
    plan: str  # the fusion plan the kernels come from
    gpus: int
    prompt: int
    output: int
    candidates: tuple[ServingCandidate, ...]  # by tokens/s per GPU, highest first
    best: ServingCandidate | None
    too_big: int  # (layout, concurrency) pairs the KV cache, the running limit or a pipeline's lanes cannot hold
    dropped: tuple[Dropped, ...]
    limits: dict[str, float]
    seconds: float
    top: int = 10
    disaggregated: bool = False  # splits into prefill and decode workers were searched too
    notes: tuple[str, ...] = ()  # what the splits assume (the KV cache's link)
    budgets_searched: bool = False  # several token budgets an iteration were tried
    draft: Draft | None = None  # speculative decoding tried beside plain decoding
    event_runs: int = 0  # candidates run event by event for their p90s (p90 limits given)
    request_latency_s: float = 0.0  # each request's time outside the engine, in every candidate's TTFT
    open_loop: bool = False  # candidates at request rates (--rate), not concurrencies

    @property
    def front(self) -> tuple[ServingCandidate, ...]:
        return tuple(c for c in self.candidates if c.on_front)


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which points no other point beats in both coordinates (higher is better), ties kept.

    >>> pareto([(1, 5), (2, 4), (1, 4), (3, 1), (2, 4), (0.5, 5)])
    [True, True, False, True, True, False]
    """
    by_x: dict[float, list[int]] = {}
    for i, (x, _) in enumerate(points):
        by_x.setdefault(x, []).append(i)
    out, above = [False] * len(points), float("-inf")  # the best y among points of larger x
    for x in sorted(by_x, reverse=True):
        top = max(points[i][1] for i in by_x[x])
        if top > above:
            for i in by_x[x]:
                out[i] = points[i][1] == top
            above = top
    return out


def search_serving(arrange: Arrange, hw: Hardware, *, gpus: int, moe: bool, name: str, prompt: int, output: int,
                   engine: str = "vllm", plan: FusionPlan | None = None,
                   concurrencies: Sequence[int] = DEFAULT_CONCURRENCY, max_ttft_s: float | None = None,
                   max_tpot_s: float | None = None, among: Sequence[Layout] | None = None,
                   disaggregated: bool = False, batch_tokens: Sequence[int] = (),
                   draft: Draft | None = None, max_ttft_p90_s: float | None = None,
                   max_tpot_p90_s: float | None = None, request_latency_s: float = 0.0,
                   decode: tuple[Arrange, Hardware, Draft | None] | None = None,
                   configure: Callable[[Engine], Engine] | None = None, rates: Sequence[float] = ()) -> ServingPlan:
    """Every serving layout of `gpus` GPUs (or those of them in `among`) at every concurrency per replica that fits,
    for `engine`'s scheduler and kernels (or `plan`'s), under each of the token budgets an iteration in `batch_tokens`
    (default: the engine's own); with `disaggregated`, every split into prefill and decode workers as well (at the
    engine's own budget; `decode`: the decode workers' arranger, GPU and draft where they are not `hw`). The engine's running limit is not searched: in a closed loop it only caps the concurrency,
    which is searched itself. With `draft`, each aggregated layout without pipeline stages is also served with
    speculative decoding (its KV cache then holds the draft's weights and cache too). With p90 limits, the candidates
    within the mean limits are run event by event (`serve`), most tokens/s per GPU first, until one is within the p90
    limits too (at most MOST_EVENT_RUNS): the closed form gives means only. `request_latency_s`: each request's time
    outside the engine (`serve`'s), in every candidate's TTFT before the limits judge it. `configure`: the engine as
    given beyond its defaults (its host's time per iteration and scheduling), for every layout and worker.
    `rates`: open loops instead of closed ones: requests arriving R a second in all (Poisson, as `serve --rate` runs
    them, seeded alike), shared evenly by a layout's data-parallel replicas; each (layout, rate) is `serve`'s event run
    itself, means and p90s (a rate a layout cannot keep up with has no steady state and is not a candidate), its
    tokens/s per GPU R x G / the layout's GPUs; a split's from its closed form (opgraph.analysis.disaggregated)."""
    start = time.perf_counter()
    checks.integer("--gpus", gpus, maximum=1024)
    checks.integer("--prompt", prompt)
    checks.integer("--output", output, minimum=2, maximum=100_001)
    checks.choice("--engine", engine, ENGINES)
    configure = configure or (lambda e: e)
    limits = {}
    for limit, value in (("max_tpot_s", max_tpot_s), ("max_ttft_s", max_ttft_s), ("max_tpot_p90_s", max_tpot_p90_s),
                         ("max_ttft_p90_s", max_ttft_p90_s)):
        if value is not None:
            limits[limit] = checks.number(f"--{limit[:-2].replace('_', '-')}", value, above=0, maximum=1e6)
    latency = checks.number("request_latency_s", request_latency_s, minimum=0, maximum=60)
    found, dropped, too_big, notes = [], [], 0, ()
    runs = {}  # (layout, concurrency, budget, speculative) -> how `serve` runs it, for p90 limits
    rates = sorted({checks.number("--rate", r, above=0, maximum=1e6) for r in rates})
    concurrencies = [] if rates else sorted(set(concurrencies))
    budgets = sorted({checks.integer("--max-batch-tokens", b, maximum=10**7) for b in batch_tokens}) or [None]
    whole = configure(ENGINES[engine](hw))
    if not whole.chunked:  # a prompt runs whole: the largest budget searched must take it
        largest = max(b or whole.max_batched_tokens for b in budgets)
        with_limits(whole, max_batched_tokens=largest).check_prompt(prompt, prompt)

    def within(s: Steady) -> bool:
        return (s.tpot_s <= limits.get("max_tpot_s", float("inf"))
                and s.ttft_s <= limits.get("max_ttft_s", float("inf")))

    for layout in layouts(gpus, moe):
        if among is not None and layout not in among:
            continue
        try:
            build, group_hw = arrange(layout)
            own = configure(ENGINES[engine](group_hw))
            own.check_layout(layout.tp, layout.ep)
            fusion = plan or planfile.load(own.plan)
            # the pricer `serve` keeps for this layout (IterationPricer.of): its event runs (p90s, --rate) reuse it
            pricer = IterationPricer.of(build, fusion, own.timed(group_hw))
            engines = [with_limits(own, max_batched_tokens=b) for b in budgets]
            held = {(eng, None): kv_blocks(build, fusion, group_hw, eng, prompt + output) for eng in engines}
        except OpgraphError as e:
            dropped.append(Dropped(layout, str(e)))
            continue
        if draft is not None and layout.pp == 1:  # speculative too (not with pipeline stages), where it fits: the
            try:  # draft's weights and cache share the GPU, and a layout may hold the target alone
                way = draft.at(layout, fusion, own.timed(group_hw))
                held.update({(eng, way): kv_blocks(build, fusion, group_hw, eng, prompt + output,
                                                   way.speculation.build) for eng in engines})
            except OpgraphError as e:
                dropped.append(Dropped(layout, f"with the draft {draft.name}: {e}"))
        for (eng, way), (blocks, per_request) in held.items():
            for r in rates:  # open loops: each one `serve`'s event run
                try:
                    served = serve(build, fusion, group_hw, engine=eng, rate=r / layout.dp, prompt=prompt,
                                   output=output, speculation=way.speculation if way else None,
                                   request_latency_s=latency)
                except OpgraphError:  # it cannot keep up with the rate (or one request does not fit)
                    too_big += 1
                    continue
                s = Steady(served.ttft.mean, served.tpot.mean, r / layout.dp * output, served.iteration.mean,
                           math.ceil(prompt / eng.max_batched_tokens))
                meets = within(s) and served.ttft.p90 <= limits.get("max_ttft_p90_s", float("inf")) and \
                    served.tpot.p90 <= limits.get("max_tpot_p90_s", float("inf"))
                found.append(ServingCandidate(layout, 0, s, r * output / layout.gpus, meets,
                                              max_batched_tokens=eng.max_batched_tokens, speculative=way is not None,
                                              p90_ttft_s=served.ttft.p90, p90_tpot_s=served.tpot.p90,
                                              event_ttft_s=served.ttft.mean, rate=r))
            most = replica_holds(blocks, per_request, eng, pricer.lanes)
            for c in concurrencies:
                if c > most or c % pricer.lanes:  # or a pipeline's lanes cannot share it evenly
                    too_big += 1
                    continue
                try:
                    s = outside(steady(pricer, eng, c, prompt, output, drafting=way), latency)
                except OpgraphError:  # the decodes alone fill the budget, or a whole prompt cannot fit
                    too_big += 1
                    continue
                found.append(ServingCandidate(layout, c, s, layout.dp * s.tokens_per_s / layout.gpus, within(s),
                                              max_batched_tokens=eng.max_batched_tokens, speculative=way is not None))
                runs[(layout, c, eng.max_batched_tokens, way is not None)] = functools.partial(
                    serve, build, fusion, group_hw, engine=eng, concurrency=c, prompt=prompt, output=output,
                    speculation=way.speculation if way else None, request_latency_s=latency)
    if disaggregated:
        more, big, notes = _split_candidates(arrange, hw, gpus, moe, prompt, output, engine, plan, concurrencies,
                                             dropped, draft, latency, decode, configure, rates)
        found += [ServingCandidate(split, 0 if rates else c, s, per_gpu, within(s), max_batched_tokens=b,
                                   speculative=drafted, rate=c if rates else None)
                  for split, c, s, per_gpu, b, drafted in more]
        too_big += big
    front = pareto([(c.tokens_per_s_per_gpu, c.tokens_per_s_per_user) for c in found])
    found = [attrs.evolve(c, on_front=f) for c, f in zip(found, front)]
    found.sort(key=lambda c: (-c.tokens_per_s_per_gpu, -c.tokens_per_s_per_user, c.layout.gpus, c.layout.describe(),
                              c.concurrency, c.max_batched_tokens, c.speculative))
    best, event_runs = None, 0
    p90 = "max_tpot_p90_s" in limits or "max_ttft_p90_s" in limits
    for i, c in enumerate(found):
        if not c.meets_limits:
            continue
        if c.p90_tpot_s is None and (p90 or (c.steady.queued and "max_ttft_s" in limits)):  # run it
            run = runs.get((c.layout, c.concurrency, c.max_batched_tokens, c.speculative))
            if run is None or event_runs == MOST_EVENT_RUNS:  # a split has no event run: its percentiles are unknown
                continue
            served, event_runs = run(), event_runs + 1
            c = found[i] = attrs.evolve(c, p90_ttft_s=served.ttft.p90, p90_tpot_s=served.tpot.p90,
                                        event_ttft_s=served.ttft.mean)
        if c.p90_tpot_s is not None:  # from an event run: judged by it
            if c.p90_tpot_s > limits.get("max_tpot_p90_s", float("inf")) or \
                    c.p90_ttft_s > limits.get("max_ttft_p90_s", float("inf")) or \
                    c.event_ttft_s > limits.get("max_ttft_s", float("inf")):
                found[i] = attrs.evolve(c, meets_limits=False)  # the event run says it is not
                continue
        best = c
        break
    shown = configure(ENGINES[engine](hw))
    fusion_name = plan.name if plan is not None else shown.plan
    if shown.hosted:
        notes += (shown.host_words,)
    notes += (shown.launch_words,)
    if latency:
        notes += (latency_note(latency, "given (--request-latency-ms)"),)
    return ServingPlan(name, shown.timed(hw), engine, fusion_name, gpus, prompt, output, tuple(found), best, too_big,
                       tuple(dropped), limits, time.perf_counter() - start, disaggregated=disaggregated,
                       notes=notes, budgets_searched=len(budgets) > 1, draft=draft, event_runs=event_runs,
                       request_latency_s=latency, open_loop=bool(rates))


def outside(state: Steady, latency: float) -> Steady:
    """A steady state as a client sees it: `latency` seconds outside the engine in its TTFT (nothing else changes)."""
    return attrs.evolve(state, ttft_s=state.ttft_s + latency) if latency else state


def _split_candidates(arrange: Arrange, hw: Hardware, gpus: int, moe: bool, prompt: int, output: int, engine: str,
                      plan: FusionPlan | None, concurrencies: Sequence[int], dropped: list, draft: Draft | None,
                      latency: float = 0.0, decode_pool: tuple[Arrange, Hardware, Draft | None] | None = None,
                      configure: Callable[[Engine], Engine] = lambda e: e, rates: Sequence[float] = ()):
    """(split, concurrency per decode replica, steady state, tokens/s per GPU, the prefill workers' token budget,
    speculative or not) of every split that fits (with `draft`, each with and without it), how many (split,
    concurrency) pairs did not fit, and what the splits assume (notes); a worker layout that cannot be built is
    added to `dropped`, once. `latency`: each request's time outside the engine, in the TTFT. `configure`: the engine
    as given beyond its defaults (search_serving's). `decode_pool`: the
    decode workers' arranger, GPU and draft (laid out on that GPU), where they are not `hw` (the KV cache then
    crosses the network). `rates`: open loops at these rates in all instead (the concurrency's place then holds the
    rate); a rate whose decode replicas would hold more than their KV cache does not fit."""
    on = {"prefill": (arrange, hw, draft), "decode": decode_pool or (arrange, hw, draft)}  # each pool's own
    for _, gpu, _ in on.values():
        if gpu.interconnect is None:
            raise OpgraphError(f"hardware {gpu.name!r} has no [interconnect] table: a disaggregated deployment's "
                               f"KV-cache move cannot be priced; plan without --disaggregated")
    mixed = on["decode"][1].name != hw.name
    workers: dict[tuple, tuple | None] = {}  # (layout, drafted, pool GPU): (its side, requests a replica holds)

    def worker(layout: Layout, drafted: bool, pool: str = "prefill"):
        pool_arrange, pool_hw, pool_draft = on[pool]
        if (layout, drafted, pool_hw.name) not in workers:
            try:
                build, group_hw = pool_arrange(layout)
                eng = configure(ENGINES[engine](group_hw))
                eng.check_layout(layout.tp, layout.ep)
                if pool == "prefill" and not eng.chunked and prompt > eng.max_batched_tokens:
                    raise OpgraphError(f"{eng.name} without chunked prefill runs a prompt whole, and a prefill "
                                       f"worker's budget, the engine's own {eng.max_batched_tokens:,} tokens (splits "
                                       f"are not searched over --max-batch-tokens), cannot take {prompt:,}; give "
                                       f"--chunked-prefill")
                fusion = plan or planfile.load(eng.plan)
                drafting = pool_draft.at(layout, fusion, eng.timed(group_hw)) if drafted else None
                blocks, per_request = kv_blocks(build, fusion, group_hw, eng, prompt + output,
                                                drafting.speculation.build if drafting else None)
                one = side(build, fusion, group_hw, eng, layout, 1, prompt, pool_hw, drafting=drafting)
                workers[layout, drafted, pool_hw.name] = one, replica_holds(blocks, per_request, eng, one.lanes)
            except OpgraphError as e:
                who = f"{pool} worker on {pool_hw.name}" if mixed else "worker"
                dropped.append(Dropped(layout, f"as a disaggregated {who}{' with the draft' if drafted else ''}: {e}"))
                workers[layout, drafted, pool_hw.name] = None
        return workers[layout, drafted, pool_hw.name]

    out, too_big, notes = [], 0, ()
    for split in splits(gpus, moe, hw.interconnect.gpus_per_node):
        staged = split.prefill.pp > 1 or split.decode.pp > 1  # speculation is not run with pipeline stages
        for drafted in (False, True) if draft is not None and not staged else (False,):
            pre, dec = worker(split.prefill, drafted), worker(split.decode, drafted, "decode")
            if pre is None or dec is None:
                too_big += len(rates or concurrencies)
                continue
            prefill, decode = (attrs.evolve(w[0], workers=n) for w, n in ((pre, split.prefill_workers),
                                                                          (dec, split.decode_workers)))
            for c in rates or concurrencies:
                if not rates and (c > dec[1] or c % decode.lanes):  # or a pipeline's batches cannot share it evenly
                    too_big += 1
                    continue
                try:
                    d = disaggregated_state(prefill.pricer.model, hw, prefill, decode,
                                            **{"rate" if rates else "concurrency": c}, prompt=prompt, output=output,
                                            same_node=not mixed and one_node(hw, gpus))
                except OpgraphError:
                    if not rates:
                        raise
                    too_big += 1  # a rate the pools cannot serve
                    continue
                if rates and d.decoding > dec[1]:  # the decode replicas would hold more than their KV cache does
                    too_big += 1
                    continue
                state = outside(Steady(d.ttft_s, d.tpot_s, d.tokens_per_s, d.tpot_s,
                                       math.ceil(prompt / prefill.engine.max_batched_tokens)), latency)
                out.append((attrs.evolve(split, decode_gpu=on["decode"][1].name) if mixed else split, c, state,
                            d.tokens_per_s_per_gpu, prefill.engine.max_batched_tokens, drafted))
                if not drafted and (not staged or not notes):  # the same link and assumptions for every split
                    notes = d.notes  # of these GPUs (a split without pipeline stages: their note is theirs only)
    if mixed:
        gpu = on["decode"][1]
        notes += (f"the splits' decode workers run on {gpu.name} ({gpu.timing.name}), their prefill workers and the "
                  f"aggregated layouts on {hw.name}; a split's tokens/s per GPU are over the GPUs of both kinds",)
    return out, too_big, notes
