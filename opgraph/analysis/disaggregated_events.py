"""A disaggregated deployment run request by request (`serve --disaggregate`): the percentiles that the closed form
(opgraph.analysis.disaggregated) does not give, and a check of its means.

A closed loop of C requests per decode replica, of fixed lengths, through:
- the prefill replicas, one shared queue first come first served: a replica idle takes as many whole prompts as its
  token budget holds (at least one; a longer prompt in chunks of the budget), priced as the closed form prices them
  (IterationPricer.prompt_chunks);
- the KV cache's move to a decode GPU, the closed form's transfer time after the prompt's iteration; the first token
  counts from when it lands (as the closed form's TTFT does);
- the decode replicas: a request joins the one holding the fewest (at its next iteration), each iteration a decode
  token for every request it holds, at its own context (IterationPricer.price), up to what its KV cache holds.
A worker with pipeline stages runs each of its batches in flight (one a stage) as a replica of its own, a lane, priced
through every stage as the closed form prices it; a decode lane holds its share of the replica's requests and KV cache.
A finished request is replaced at once by a new one at the prefill queue. The run starts desynchronized (each decode
replica's requests part of the way through their output, as `serve` starts, and the replicas out of step with each
other) and measures after a warm-up.
"""

from __future__ import annotations

import heapq
import random
from collections import deque

import attrs

from opgraph.analysis.engine_run import OVERLOADED
from opgraph.analysis.serve import Stats, accepted, length_range
from opgraph.core import checks
from opgraph.errors import OpgraphError


@attrs.frozen
class DisaggregatedRun:
    """The measured part of an event run: per-request figures, and the deployment's output rate."""

    ttft: Stats  # seconds: arrival at the prefill queue to the KV cache landing on a decode GPU
    tpot: Stats  # per request: (last token - first) / (output - 1)
    itl: Stats  # every gap between two tokens of a request
    e2e: Stats
    tokens_per_s: float  # output tokens a second, all GPUs, over the measured time
    measured: int  # requests measured (after the warm-up)
    prefill_busy: float  # the share of the measured time the prefill replicas ran, on average
    decode_busy: float


class _Request:
    __slots__ = ("arrival", "prompt", "output", "generated", "first", "last", "gaps", "replica")

    def __init__(self, arrival: float, prompt: int, output: int, generated: int = 0):
        self.arrival, self.prompt, self.output, self.generated = arrival, prompt, output, generated
        self.first = self.last = arrival
        self.gaps: list[float] = []
        self.replica = -1  # the decode replica whose slot it holds (a queued loop's), from before its prefill


def run(prefill, decode, *, concurrency: int | None = None, rate: float | None = None, prompt, output,
        transfer_s: float, holds: int, decoding: float | None = None, seed: int = 0, warmup: int | None = None,
        measure: int | None = None, requests: int | None = None, queue: bool = False) -> DisaggregatedRun:
    """`prefill` and `decode`: the pools (opgraph.analysis.disaggregated.Side); `holds`: requests a decode replica's
    KV cache holds at once; `transfer_s`: one request's KV-cache move; `decoding`: requests a decode replica holds in
    the steady state, from the closed form, to start near it (where prefill bounds, the rest start queued for it;
    the queue would otherwise take many requests' time to build). With `rate` instead of `concurrency`: an open loop,
    requests arriving at that rate a second in all (Poisson, seeded by `seed`), from an empty deployment; a request
    that lands on full decode replicas waits for a slot. `prompt` and `output`: a length, or a range (low, high) each
    request draws from uniformly (seeded by `seed`); `transfer_s` is then a request of the mean prompt's, scaled by
    its own prompt's tokens moved (less a shared prefix the decode worker holds: Side.cached). `requests`: a closed
    loop run as a benchmark client runs it (as `serve --requests`): that many requests in all, the first C per decode
    replica sent at once to the prefill queue, a new one as each finishes while any are left, every one counted (no
    warm-up; the first wave and the drain included). `queue`: a closed loop of more requests than a decode replica
    holds; a request waits for a slot on one (first come first served) before its prompt goes to the prefill pool, as
    NVIDIA Dynamo's decode worker reserved the KV cache a remote prefill fills (its design docs up to 0.7), and its
    TTFT includes the wait (else such a concurrency is refused)."""
    prompts, outputs = length_range("--prompt", prompt), length_range("--output", output, minimum=2)
    c = 0 if concurrency is None else checks.integer("--concurrency", concurrency)
    if c > holds and not queue:
        raise OpgraphError(f"--concurrency {c}: a decode replica holds {holds:,} requests of "
                           f"{prompts[1] + outputs[1]:,} tokens at once (its KV cache, and the engine's running "
                           f"limit); give at most {holds:,}, or --queue to let the others wait for a slot")
    lanes = decode.lanes  # a pipeline's batches in flight, each run as a replica of its own with its share
    c, holds = decode.lane_share(c), holds // lanes
    decoding = None if decoding is None else decoding / lanes
    rng = random.Random(seed)
    budget = prefill.engine.max_batched_tokens
    mean_prompt = (prompts[0] + prompts[1]) / 2
    moved_mean = mean_prompt - decode.cached(int(mean_prompt))  # the tokens whose KV cache `transfer_s` moves

    def new(r: _Request) -> int:  # a prompt's tokens computed (its cached prefix is not)
        return r.prompt - prefill.cached(r.prompt)
    prefill_time: dict[tuple, float] = {}

    def draw(t: float, generated_share: float = 0.0) -> _Request:
        p, g = rng.randint(*prompts), rng.randint(*outputs)
        return _Request(t, p, g, int(generated_share * g))

    def take(queue: deque) -> list[_Request]:
        """Whole prompts first come first served while the budget and the running limit hold them (at least one: a
        longer one in chunks of the budget)."""
        batch = [queue.popleft()]
        tokens = new(batch[0])
        while queue and tokens + new(queue[0]) <= budget and len(batch) < prefill.engine.max_seqs:
            tokens += new(queue[0])
            batch.append(queue.popleft())
        return batch

    def prefill_s(batch: list[_Request]) -> float:
        key = tuple(sorted(r.prompt for r in batch))
        if key not in prefill_time:
            if len(set(key)) == 1:  # prompts of one length: the closed form's pricing (exactly, for fixed lengths)
                prefill_time[key] = prefill.prompt_s(key[0], len(key))
            else:
                pricers = (prefill.pricer, *((prefill.drafting.pricer,) if prefill.drafting else ()))
                prefill_time[key] = prefill.engine.wall(sum(  # one iteration, and the engine's own time for it
                    pricer.price_mix(sum(q - prefill.cached(q) for q in key), len(key),
                                     [(1, (q - prefill.cached(q), prefill.cached(q))) for q in key]).expected_s
                    for pricer in pricers), sum(p.launches for p in pricers), len(key))
        return prefill_time[key]

    spec = decode.drafting.speculation if decode.drafting else None
    drafts = spec.tokens if spec else 0

    n_prefill = prefill.workers * prefill.replicas * prefill.lanes
    n_decode = decode.workers * decode.replicas * lanes
    total = c * n_decode
    if requests is not None:
        if rate is not None:
            raise OpgraphError("--requests runs a closed loop as a benchmark client does: give --concurrency, not "
                               "--rate")
        requests = checks.integer("--requests", requests, maximum=10**6)
        if requests < total:
            raise OpgraphError(f"--requests {requests}: a benchmark of {total:,} in flight ({c * lanes:,} per decode "
                               f"replica) sends at least that many; give at least {total:,}")
        warmup, measure = 0, requests
    elif rate is None:
        warmup = total if warmup is None else warmup  # every request of the start's desynchronized loop replaced
        measure = max(total, 64) if measure is None else measure
    else:
        warmup = 100 if warmup is None else warmup
        measure = 400 if measure is None else measure
    events: list = []  # (time, order, kind, replica or request, payload)
    order = 0

    def push(t: float, kind: str, who, payload=None) -> None:
        nonlocal order
        heapq.heappush(events, (t, order, kind, who, payload))
        order += 1

    gated = c > holds  # more in the loop than the decode replicas hold: a slot is taken before the prompt runs
    outside: deque = deque()  # waiting for a decode slot, not yet sent to the prefill pool
    slots = [0] * n_decode  # requests holding a slot on each decode replica (prefilling, moving or decoding)
    queue: deque = deque()  # prompts waiting for a prefill replica
    prefill_idle = list(range(n_prefill))
    running = [[] for _ in range(n_decode)]  # each decode replica's requests
    joining = [[] for _ in range(n_decode)]  # landed, joining at its next iteration
    decode_idle = set(range(n_decode))
    landed: deque = deque()  # waiting for a decode slot (an open loop's decode replicas may all be full)
    busy = {"prefill": 0.0, "decode": 0.0}
    done: list[_Request] = []
    start = 0.0 if warmup == 0 else None  # when the measured part begins (a benchmark: from the start)

    def start_prefill(t: float) -> None:
        while queue and prefill_idle:
            i = prefill_idle.pop()
            batch = take(queue)
            took = prefill_s(batch)
            busy["prefill"] += took if start is not None else 0.0
            push(t + took, "prefilled", i, batch)

    def start_decode(j: int, t: float) -> None:
        running[j] += joining[j]
        joining[j] = []
        if not running[j]:
            decode_idle.add(j)
            return
        decode_idle.discard(j)
        contexts = [r.prompt + r.generated - 1 for r in running[j]]
        if spec is None:
            took = decode.pricer.price(contexts, sampling=len(contexts)).expected_s
        else:  # a speculative step, as `serve --draft` prices it: the draft's K iterations, then the verify
            took = sum(decode.drafting.pricer.price([x + i for x in contexts], sampling=len(contexts)).expected_s
                       for i in range(drafts))
            took += decode.pricer.price([], [(drafts + 1, x) for x in contexts],
                                        sampling=len(contexts) * (drafts + 1)).expected_s
        took = decode.engine.wall(took, requests=len(contexts))  # the engine's own time for the step
        busy["decode"] += took if start is not None else 0.0
        push(t + took, "decoded", j)

    held = c if decoding is None or rate is not None else min(max(int(round(decoding)), 1), c)
    if requests is not None:  # a benchmark: every request of the first wave sent at once to the prefill queue
        held = 0
    held = min(held, holds)

    def admit() -> None:  # those waiting for a decode slot take the free ones, on the replica holding the fewest
        while outside:
            j = min(range(n_decode), key=lambda j: (slots[j], j))
            if slots[j] >= holds:
                return
            r = outside.popleft()
            r.replica, slots[j] = j, slots[j] + 1
            queue.append(r)

    for j in range(n_decode):  # desynchronized across the replicas too: the n-th of the requests decoding n/(all of
        for i in range(held):  # them) of the way through its output (replicas in step would send prompts in bursts)
            r = draw(0.0, (i * n_decode + j) / (held * n_decode))
            if gated:
                r.replica, slots[j] = j, slots[j] + 1
            (running[j] if r.generated else queue).append(r)
    # the rest wait for a prompt slot, or in a queued loop for a decode slot first
    (outside if gated else queue).extend(draw(0.0) for _ in range((c - held) * n_decode))
    admit()
    sent = total  # requests sent so far (a benchmark stops at `requests`)
    if rate is not None:
        push(rng.expovariate(rate), "arrived", None)
    start_prefill(0.0)
    for j in range(n_decode):
        start_decode(j, 0.0)
    now = 0.0

    def seat(r: _Request, t: float) -> None:  # to the decode replica holding the fewest, if one has room
        j = min(range(n_decode), key=lambda j: (len(running[j]) + len(joining[j]), j))
        if len(running[j]) + len(joining[j]) >= holds:
            landed.append(r)
            return
        joining[j].append(r)
        if j in decode_idle:
            start_decode(j, t)
    while len(done) < warmup + measure:
        now, _, kind, who, batch = heapq.heappop(events)
        if kind == "arrived":  # an open loop's next request
            queue.append(draw(now))
            if len(queue) > OVERLOADED:
                raise OpgraphError(f"--rate {rate:g}: requests arrive faster than the prefill pool takes them "
                                   f"({len(queue):,} waiting after {now:,.1f} s); give a lower rate")
            push(now + rng.expovariate(rate), "arrived", None)
            start_prefill(now)
        elif kind == "prefilled":
            for r in batch:
                push(now + transfer_s * (r.prompt - decode.cached(r.prompt)) / moved_mean, "landed", r)
            prefill_idle.append(who)
            start_prefill(now)
        elif kind == "landed":
            who.generated, who.first, who.last = 1, now, now
            if gated:  # to the replica whose slot it holds
                joining[who.replica].append(who)
                if who.replica in decode_idle:
                    start_decode(who.replica, now)
            else:
                seat(who, now)
        else:  # a decode iteration ended: a token each; the finished replaced at once at the prefill queue
            kept = []
            for r in running[who]:
                made = min(accepted(rng, spec.acceptance), r.output - r.generated) if spec else 1
                r.generated += made
                r.gaps.extend([(now - r.last) / made] * made)  # a step's tokens arrive together: its gap, shared
                r.last = now
                if r.generated >= r.output:
                    done.append(r)
                    slots[who] -= gated
                    if rate is None and (requests is None or sent < requests):
                        (outside if gated else queue).append(draw(now))
                        sent += 1
                    if len(done) == warmup:
                        start = now
                else:
                    kept.append(r)
            running[who] = kept
            admit()
            while landed and len(running[who]) + len(joining[who]) < holds:  # freed slots to those waiting
                joining[who].append(landed.popleft())
            start_prefill(now)
            start_decode(who, now)
    measured = done[warmup:]
    span = now - start
    return DisaggregatedRun(Stats.of([r.first - r.arrival for r in measured]),
                            Stats.of([(r.last - r.first) / (r.output - 1) for r in measured]),
                            Stats.of([x for r in measured for x in r.gaps]),
                            Stats.of([r.last - r.arrival for r in measured]),
                            sum(r.output for r in measured) / span, len(measured), busy["prefill"] / (span * n_prefill),
                            busy["decode"] / (span * n_decode))
