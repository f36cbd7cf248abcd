"""Disaggregated serving (xPyD): prompts on prefill workers, decoding on decode workers, the KV cache moved between
them (issue 17 §4), as DistServe (Zhong et al., OSDI 2024), Splitwise and NVIDIA Dynamo run it. In closed form, a
closed loop's steady state, priced by the same iterations as `serve` (opgraph.analysis.iteration):

- a prefill replica runs prompts alone, as many whole prompts an iteration as its token budget takes (n = B // P,
  at least one, at most the engine's running limit; a longer prompt in chunks): it serves n / t_p(n) requests a
  second, so the pool x replicas of that;
- the KV cache of a prompt (each GPU's shard) then crosses to a decode GPU: its bytes over the link between them,
  NVLink inside a node, else the network (each GPU sends its own shard, all at once): the transfer adds to TTFT;
- a decode replica runs only decodes: C requests in flight, one iteration t_d(C) at the mean context P + (G - 2) / 2
  for each token, so TPOT = t_d(C), never slowed by a prompt;
- a worker with pipeline stages (pp=S) keeps S batches in flight, one a stage, as `serve --pp` runs them: each of its
  S lanes a replica of its own, a batch's iteration its pass through every stage or S x its slowest stage if longer
  (opgraph.analysis.iteration), a decode lane holding C / S of the replica's C requests;
- N = C x decode replicas requests cycle through prefill, transfer and G - 1 decode iterations. Their rate is
  N / (t_p + transfer + (G - 1) x TPOT) (Little's law) while the prefill pool keeps up; when it cannot, the rate is the
  pool's, the decode replicas hold fewer requests than C (found by iterating), and the rest wait for a prompt slot,
  which TTFT includes (rate matching: the ratio of prefill to decode workers decides which pool bounds the rate).

Output tokens a second are the rate x G, over all GPUs of both pools; tokens/s per user 1 / TPOT.
"""

from __future__ import annotations

import attrs

from opgraph.analysis.capacity import Drafting, iteration_s, prompts_alone
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.memory import footprint_of
from opgraph.analysis.serve import (cached_tokens, check_drafting, kv_blocks, latency_note, replica_holds,
                                    with_prefix)
from opgraph.core import checks
from opgraph.core.phase import Phase
from opgraph.errors import OpgraphError, counted
from opgraph.pricing.hardware import Hardware


@attrs.frozen
class Pool:
    """One side of the deployment: `workers` engine instances, each of `gpus` GPUs in `replicas` replicas."""

    name: str  # prefill or decode
    workers: int
    layout: str  # in words: tp 8, dp 16 x ep 16, ...
    gpus: int  # per worker
    replicas: int  # per worker
    utilization: float  # of its capacity in the steady state (decode: requests held of the closed loop's, or of
    # the engine's running limit in an open loop)
    hardware: Hardware | None = None  # its GPU (the pools may differ), as its engine prices it (Engine.timed)

    @property
    def total_gpus(self) -> int:
        return self.workers * self.gpus


@attrs.frozen
class Disaggregated:
    """The steady state of a disaggregated deployment."""

    model: str
    hardware: Hardware
    prefill: Pool
    decode: Pool
    concurrency: int | None  # requests per decode replica, as asked (a closed loop); None: an open loop at the rate
    decoding: float  # requests per decode replica in the steady state (below `concurrency` when prefill bounds)
    prompt: int
    output: int
    ttft_s: float  # mean: waiting for a slot (decode, queued; prompt) + the prompt's iteration + the KV transfer
    tpot_s: float
    prefill_s: float  # the prefill iteration that carries a prompt (alone)
    transfer_s: float
    waiting_s: float
    kv_bytes_per_gpu: int  # one request's KV cache moved (less a prefix the decode worker holds), a prefill GPU's shard
    link: str  # which link the KV cache crosses
    requests_per_s: float
    bound: str  # the pool that bounds the rate ("" in an open loop: the rate is given)
    notes: tuple[str, ...] = ()
    events: object = None  # opgraph.analysis.disaggregated_events.DisaggregatedRun: the same load request by request
    request_latency_s: float = 0.0  # each request's time outside the engines, in its TTFT and end-to-end latency
    prefix: int = 0  # tokens at the start of every prompt shared and cached on every worker (prefix caching)
    queued: bool = False  # a closed loop of more than a decode replica holds: the others wait for a decode slot

    @property
    def gpus(self) -> int:
        return self.prefill.total_gpus + self.decode.total_gpus

    @property
    def tokens_per_s(self) -> float:
        return self.requests_per_s * self.output

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1 / self.tpot_s


@attrs.frozen
class Side:
    """What the model needs of one pool: its iteration pricer, engine, workers and words for its layout."""

    pricer: IterationPricer
    engine: object  # opgraph.analysis.serve.Engine
    workers: int
    layout: str
    gpus: int  # per worker
    replicas: int  # per worker: data-parallel replicas, each running its own requests
    kv_bytes_per_token: float  # one GPU's KV cache per token of a sequence (a draft's too, where there is one)
    hw: Hardware | None = None  # its GPU; None: the deployment's
    drafting: Drafting | None = None  # speculative decoding: the draft prefills beside the target, and decodes
    prefix: int = 0  # tokens at the start of every prompt shared and cached on every worker (prefix caching)

    def cached(self, prompt: int) -> int:
        """Tokens of a prompt this pool's engine finds cached (opgraph.analysis.serve.cached_tokens)."""
        return cached_tokens(self.prefix, prompt, self.engine.block_tokens)

    @property
    def lanes(self) -> int:
        """Batches in flight in a replica: one a pipeline stage (1 without stages)."""
        return self.pricer.lanes

    def lane_share(self, concurrency: int) -> int:
        """A batch in flight's share of a replica's `concurrency` requests (all of them without pipeline stages), or a
        one-line error where they do not split evenly."""
        if concurrency % self.lanes:
            raise OpgraphError(f"--concurrency {concurrency}: a decode worker of {self.lanes} pipeline stages keeps "
                               f"{self.lanes} batches in flight, each with its share of the requests; give a multiple "
                               f"of {self.lanes}")
        return concurrency // self.lanes

    def prompt_s(self, prompt: int, count: int = 1) -> float:
        """Prompts alone (their cached prefix not computed again), the draft's prefill too, and the engine's own time
        for each iteration they take (one, or one a chunk of a longer prompt): capacity.prompts_alone."""
        return prompts_alone(self.pricer, self.drafting, self.engine, prompt, count, self.cached(prompt))


def one_node(hw: Hardware, gpus: int) -> bool:
    """Whether `gpus` GPUs of `hw` fit in one node, so that the KV cache crosses NVLink (else the network)."""
    return hw.interconnect is not None and gpus <= hw.interconnect.gpus_per_node


def side(build, fusion, group_hw: Hardware, engine, layout, workers: int, prompt: int, hw: Hardware | None = None,
         pricer: IterationPricer | None = None, drafting: Drafting | None = None, prefix: int = 0) -> Side:
    """One pool of `workers` engine instances of `layout` (tp, dp, ep; its model builder `build` and the hardware its
    collectives run on, `group_hw`): its KV cache per token is one GPU's, from the memory model at one request of
    `prompt` tokens (the draft's added, where there is one). `pricer`: one already made for this layout (a search
    shares it between pools and worker counts)."""
    if drafting is not None:
        check_drafting(layout.pp, pool=True)
    kv = sum(footprint_of(make(Phase.holding(1, prompt)), fusion, group_hw).kv_cache_bytes
             for make in (build, *((drafting.speculation.build,) if drafting else ()))) / prompt
    return Side(pricer or IterationPricer(build, fusion, engine.timed(group_hw)), engine,
                checks.integer("workers", workers),
                layout.describe(), layout.gpus, layout.dp, kv, hw, drafting, prefix)


def disaggregated(name: str, hw: Hardware, prefill: Side, decode: Side, *, concurrency: int | None = None,
                  rate: float | None = None, prompt: int, output: int, same_node: bool,
                  queued_beyond: int | None = None) -> Disaggregated:
    """The steady state of `prefill.workers` prefill and `decode.workers` decode workers at `concurrency` requests
    per decode replica (a closed loop), or with requests arriving at `rate` a second in all (an open loop: the
    decode replicas then hold what Little's law gives, and a prompt's wait for a prefill slot is left to the event
    run), each request `prompt` + `output` tokens; `same_node`: the pools share a node (NVLink). `queued_beyond`: a
    closed loop's decode replica holds at most that many requests (its KV cache and running limit); the others wait
    for a slot, first come first served, before their prompt runs (`serve --queue`), and TTFT includes the wait."""
    if (concurrency is None) == (rate is None):
        raise OpgraphError("give a closed loop's --concurrency or an open loop's --rate, not both or neither")
    c = None if concurrency is None else checks.integer("--concurrency", concurrency)
    p, g = checks.integer("--prompt", prompt), checks.integer("--output", output, minimum=2)
    for side in (prefill, decode):
        checks.integer("workers", side.workers, maximum=4096)
    gpus = [side.hw or hw for side in (prefill, decode)]
    for gpu in gpus + [hw]:
        if gpu.interconnect is None:
            raise OpgraphError(f"hardware {gpu.name!r} has no [interconnect] table: the KV cache's move between the "
                               f"pools cannot be priced")
    mixed = gpus[0].name != gpus[1].name
    if mixed and same_node:
        raise OpgraphError("pools of different GPUs cannot share a node's NVLink: the KV cache crosses the network")
    lanes = decode.lanes
    budget = prefill.engine.max_batched_tokens
    n = max(min(budget // (p - prefill.cached(p)), prefill.engine.max_seqs), 1)  # whole prompts an iteration takes
    if c is not None and decode.lane_share(c) > decode.engine.max_batched_tokens:
        raise OpgraphError(f"--concurrency {c}: a decode iteration of {c // lanes:,} requests is more tokens than the "
                           f"engine's budget of {decode.engine.max_batched_tokens:,} (--max-batch-tokens); give a "
                           f"larger budget or a lower concurrency")

    t_p = prefill.prompt_s(p)
    capacity = prefill.workers * prefill.replicas * prefill.lanes * n / prefill.prompt_s(p, n)  # the pool's
    # the decode worker holds the shared prefix already (after the first request brought it) and takes only the
    # prompt's other tokens' KV (vLLM's connectors ask for the tokens beyond those it computed itself:
    # get_num_new_matched_tokens in vllm/distributed/kv_transfer/kv_connector/v1)
    kv = int(round(prefill.kv_bytes_per_token * (p - decode.cached(p))))
    # NVLink inside a node; between nodes the slower end's network (each GPU sends its shard on its own NIC)
    bandwidth = (hw.interconnect.link_bandwidth if same_node
                 else min(gpu.interconnect.network_bandwidth for gpu in gpus))
    transfer = kv / bandwidth
    ctx = int(round(p + max(g - 2, 0) / 2))
    replicas = decode.workers * decode.replicas

    yields = decode.drafting.speculation.expected_tokens if decode.drafting else 1.0  # tokens a decode step

    def tpot(holding: float) -> float:  # a decode-only step of a lane's share of `holding` requests (rounded, at
        rows = max(int(round(holding / lanes)), 1)  # least one), a token's
        drafts = decode.drafting.speculation.tokens if decode.drafting else 0
        return decode.engine.wall(iteration_s(decode.pricer, decode.drafting, ctx, rows, rows, [],
                                              rows * (1 + drafts)), requests=rows) / yields

    held = c  # requests a decode replica holds at once, of a closed loop's
    if c is None:  # an open loop: the rate is given; the decode replicas hold what Little's law says
        rate = checks.number("--rate", rate, above=0, maximum=1e6)
        if rate >= capacity:
            raise OpgraphError(f"--rate {rate:g}: the prefill pool serves at most {capacity:,.2f} requests a second "
                               f"({counted(prefill.workers * prefill.replicas, 'replica')}, "
                               f"{counted(n, 'prompt')} an iteration); give a lower rate or more prefill workers")
        holding, t_d = 1.0, tpot(1)
        for _ in range(60):  # Little's law on the decode pool, and the iteration time at what it holds
            holding = rate * (g - 1) * t_d / replicas
            if holding > decode.engine.max_seqs * lanes:
                raise OpgraphError(f"--rate {rate:g}: the decode pool cannot keep up (each replica would hold more "
                                   f"than {decode.engine.max_seqs * lanes:,} requests); give a lower rate or more "
                                   f"decode workers")
            t_d = tpot(holding)
        bound, waiting = "", 0.0  # neither: the rate is given, below both pools' capacity
    else:
        total = c * replicas  # requests in flight in all
        held = c if queued_beyond is None else min(c, checks.integer("queued_beyond", queued_beyond))
        t_d = tpot(held)
        rate = held * replicas / (t_p + transfer + (g - 1) * t_d)
        bound, holding = "decode", float(held)
        if rate > capacity:  # the prefill pool cannot keep up: its rate bounds, the decode replicas hold fewer
            bound, rate = "prefill", capacity
            for _ in range(20):  # Little's law on the decode pool, and the iteration time at what it holds
                holding = min(float(held), rate * (g - 1) * t_d / replicas)
                t_d = tpot(holding)
        # Little's law on the whole loop: what its cycle leaves is waiting (for a prompt slot, or a decode slot)
        waiting = max(total / rate - (t_p + transfer + (g - 1) * t_d), 0.0) if bound == "prefill" or held < c \
            else 0.0
    notes = (f"the KV cache crosses {'NVLink inside a node' if same_node else 'the network between nodes'} at "
             f"{bandwidth / 1e9:,.0f} GB/s per GPU (the spec's"
             + (", the slower end's" if mixed and gpus[0].interconnect.network_bandwidth !=
                gpus[1].interconnect.network_bandwidth else "")
             + "), every prefill GPU sending its own shard at once; its latency and any resharding between "
             "different layouts are not modelled",
             "the steady state in closed form (opgraph.analysis.disaggregated) gives means; the event run, request by "
             "request, gives percentiles"
             + ("" if c is not None else "; in an open loop a prompt's wait for a prefill slot is in the event run's "
                "TTFT only (the closed form takes none)"))
    staged = [(name, side.lanes) for name, side in (("prefill", prefill), ("decode", decode)) if side.lanes > 1]
    if staged:
        notes += ("pipeline stages: " + ", ".join(f"each {name} replica keeps {n} batches in flight, one a stage"
                                                  for name, n in staged)
                  + (f" (a decode batch holds 1/{lanes} of a replica's requests)" if lanes > 1 else "")
                  + "; a batch's iteration takes its pass through every stage, or the stages x its slowest stage if "
                  "longer, the batches in flight taken to be alike",)
    if any(side.engine.hosted for side in (prefill, decode)):
        notes += tuple(f"{name} workers: {side.engine.host_words}" for name, side in
                       (("prefill", prefill), ("decode", decode)))
    notes += (f"prefill workers: {prefill.engine.launch_words}",)
    if prefill.prefix or decode.prefix:
        if prefill.prefix != decode.prefix:
            raise OpgraphError("the pools' shared prefixes differ: give the deployment one --prefix")
        notes += (f"prefix caching: the first {prefill.prefix:,} tokens of every prompt shared and cached on every "
                  f"worker ({prefill.cached(p):,} of them in whole blocks, never a prompt's last token): a prompt "
                  f"prefills its other {p - prefill.cached(p):,} over them, a decode worker holds the prefix once, and "
                  f"{p - decode.cached(p):,} tokens' KV cache move",)
    if c is not None and held < c:
        notes += (f"queued: a decode replica holds {held:,} of its {c:,} requests at once (its KV cache and the "
                  f"engine's running limit); the others wait for a slot, first come first served, before their prompt "
                  f"is prefilled (the decode worker reserves the KV cache a remote prefill fills), and TTFT includes "
                  f"the wait",)
    if decode.drafting:
        spec = decode.drafting.speculation
        notes += (f"speculative decoding with {spec.name}, {spec.tokens} tokens proposed a step, each accepted with "
                  f"the chance {', '.join(f'{x:g}' for x in spec.acceptance)} (assumed, as given): a step yields "
                  f"{spec.expected_tokens:.2f} tokens on average; the draft prefills beside the target on the prefill "
                  f"workers, and its KV cache moves too",)
    return Disaggregated(
        name, hw,
        Pool("prefill", prefill.workers, prefill.layout, prefill.gpus, prefill.replicas, rate / capacity,
             prefill.engine.timed(gpus[0])),
        Pool("decode", decode.workers, decode.layout, decode.gpus, decode.replicas,
             holding / (held if c else decode.engine.max_seqs * lanes), decode.engine.timed(gpus[1])),
        c, holding, p, g, waiting + t_p + transfer, t_d, t_p, transfer, waiting, kv,
        "NVLink" if same_node else "network", rate, bound, notes, prefix=prefill.prefix,
        queued=c is not None and held < c)


def decode_holds(decode: Side, build, fusion, gpu: Hardware, longest: int, shortest_prompt: int,
                 draft_build=None) -> int:
    """Requests one decode replica's KV cache holds at once: serve.kv_blocks at a request of `longest` tokens (a
    draft's beside it, `draft_build`), the pool's shared prefix held once (serve.with_prefix, the shortest prompt's
    cached tokens), over its lanes."""
    engine = decode.engine
    blocks, per_request, _ = with_prefix(*kv_blocks(build, fusion, gpu, engine, longest, draft_build), decode.prefix,
                                         shortest_prompt, engine.block_tokens)
    return replica_holds(blocks, per_request, engine, decode.lanes)


def served(name: str, hw: Hardware, prefill: Side, decode: Side, *, prompts: tuple[int, int],
           outputs: tuple[int, int], holds: int, same_node: bool, concurrency: int | None = None,
           rate: float | None = None, queue: bool = False, requests: int | None = None, seed: int = 0,
           events: bool = True) -> Disaggregated:
    """A disaggregated deployment served as `serve --disaggregate` serves it and `opgraph validate` a measured one:
    the closed form at the mean lengths (`queue`: a closed loop's requests beyond the `holds` a decode replica holds
    wait for a slot), then, with `events`, the event run (opgraph.analysis.disaggregated_events) drawing each
    request's lengths from `prompts` and `outputs`, `requests` in all where a benchmark client's count is given."""
    from opgraph.analysis import disaggregated_events

    prompt, output = (prompts[0] + prompts[1]) // 2, (outputs[0] + outputs[1]) // 2
    d = disaggregated(name, hw, prefill, decode, concurrency=concurrency, rate=rate, prompt=prompt, output=output,
                      same_node=same_node, queued_beyond=holds if queue else None)
    if rate is not None and d.decoding > holds:  # a closed loop's concurrency is checked against it by the run
        raise OpgraphError(f"--rate {rate:g}: each decode replica would hold {d.decoding:,.0f} requests, more than "
                           f"its KV cache holds ({holds:,}); give a lower rate or more decode workers")
    if not events:
        return d
    return attrs.evolve(d, events=disaggregated_events.run(
        prefill, decode, concurrency=concurrency, rate=rate, prompt=prompts, output=outputs, transfer_s=d.transfer_s,
        holds=holds, decoding=d.decoding, seed=seed, requests=requests, queue=queue))


def with_request_latency(d: Disaggregated, latency: float) -> Disaggregated:
    """`d` as a client sees it: each request's `latency` seconds outside the engines (HTTP handling, tokenization,
    streaming) in its TTFT and end-to-end latency, closed form and event run alike; nothing else changes."""
    if not latency:
        return d
    events = d.events if d.events is None else attrs.evolve(d.events, ttft=d.events.ttft.shifted(latency),
                                                            e2e=d.events.e2e.shifted(latency))
    # a closed loop is refilled at once, as serve's is: say what share of a request's time that is
    idle = latency / events.e2e.mean if d.concurrency is not None and events is not None else None
    return attrs.evolve(d, ttft_s=d.ttft_s + latency, events=events, request_latency_s=latency,
                        notes=d.notes + (latency_note(latency, "given (--request-latency-ms)", idle),))
