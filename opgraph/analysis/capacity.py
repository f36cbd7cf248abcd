"""A closed loop's steady state in closed form: what `opgraph plan --concurrency` ranks layouts by.

`opgraph serve` runs requests iteration by iteration; a search over thousands of configurations needs the same
answer from a few priced iterations. C requests in flight, each P prompt tokens and G output tokens, under an
engine's scheduler (opgraph.analysis.serve.Engine), reach a steady state that Little's law and the scheduler's rules
give directly (a fluid model: the mean iteration, with fractional requests):

- Mixed batches (vLLM, TensorRT-LLM): a newcomer's prompt runs in the chunks the token budget B leaves beside the
  others' decodes, k = ceil(P / (B - (C - 1))) iterations; it then decodes for G - 1 iterations. So each request
  spends G - 1 + k iterations, lambda = C / (G - 1 + k) requests finish an iteration, and an iteration holds
  D = C - lambda x k decodes (at the mean context, P + (G - 2) / 2) and lambda x k prompt chunks on average: whole
  chunks, as many iterations with the next whole number above as make that mean (an iteration's time is not linear
  in its tokens: a decode-only iteration reads the weights as one with a prompt does). TPOT is the mean of a request's
  G - 1 gaps, each one iteration, which carry the other C - 1 requests' chunks but those that fall in its own
  prompt's iterations or in the iterations it waited for (below), ((C - 1) x k - those) / (G - 1) a gap;
  TTFT is the k iterations that carry the newcomer's own prompt beside D decodes.
- Prompts first, apart (SGLang): a newcomer's prompt runs alone, ceil(P / B) prompt iterations; the C requests
  decode together, and between a request's G - 1 decode iterations the other C - 1 requests' prompts run, one
  each. TPOT is a decode iteration plus (C - 1) / (G - 1) prompts' time; TTFT is one prompt's.

A replacement waits w iterations before its prompt can be scheduled: the one built as it was sent, and one more where
the engine builds ahead (engine_run.TURNAROUND, Engine.admission_lag). Its request slot is empty meanwhile (a cycle is
G - 1 + k + w iterations), and what those iterations carry follows from how fixed lengths space the requests out
(_before): the prompts of those that finished just before it, else decodes alone.

Output tokens a second (one replica) are C x G over a request's end-to-end time, TTFT + (G - 1) x TPOT. A pipeline
of S stages runs S lanes of C / S requests each (one batch in flight a stage), its steps priced through every stage. Each
figure is priced by the iteration pricer `serve` uses (opgraph.analysis.iteration), so the same kernels and time
model, and an iteration's wall time by the engine's rules as `serve` takes it (Engine.wall: one that carries prompt
chunks takes at least its kernels' launches); tests check it against `serve`'s event run.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from opgraph.analysis.engine_run import TURNAROUND
from opgraph.analysis.iteration import IterationPricer
from opgraph.errors import OpgraphError


@attrs.frozen
class Steady:
    """One replica's steady state: seconds and output tokens a second."""

    ttft_s: float
    tpot_s: float
    tokens_per_s: float  # output tokens a second, one replica
    iteration_s: float  # the mean iteration (a decode iteration for prompts-first engines)
    prompt_iterations: int  # iterations a newcomer's prompt spans
    # prompts arriving together need more than an iteration's room (or, prompts first, more arrive in a decode
    # step than one prefill iteration takes): they queue. Chunking engines' TTFT then comes from a deterministic queue
    # (_queued_ttft, within a few % of `serve`'s event run); the others' figures are rougher, and `serve` gives them
    queued: bool = False


@attrs.frozen
class Drafting:
    """Speculative decoding for the closed form: the draft model's iteration pricer and the speculation's figures
    (opgraph.analysis.serve.Speculation: draft tokens a step and their acceptance)."""

    pricer: IterationPricer
    speculation: object


def iteration_s(pricer: IterationPricer, drafting: Drafting | None, ctx: int, rows: int, decodes: float,
                chunks: list[tuple[float, tuple[int, int]]], sampling: int) -> float:
    """Expected seconds of one iteration of `decodes` requests at context `ctx` (`rows` of them, whole) beside prompt
    `chunks` (weight, (tokens, past)), the target sampling `sampling` rows; with `drafting`, a speculative step: the
    draft's K iterations, one token each (the first prefilling the chunks too), then the target's verify of K + 1
    tokens a request (as `serve --draft` runs it)."""
    drafts = drafting.speculation.tokens if drafting else 0
    queued = sum(w * q for w, (q, _) in chunks)
    t = pricer.price_mix(int(round(rows * (1 + drafts) + queued)), sampling,
                         [(decodes, (1 + drafts, ctx)), *chunks]).expected_s
    for j in range(drafts if rows else 1 if chunks and drafts else 0):
        t += drafting.pricer.price_mix(int(round(rows + (queued if j == 0 else 0))), rows,
                                       [(decodes, (1, ctx + j)), *(chunks if j == 0 else [])]).expected_s
    return t


def prompts_alone(pricer: IterationPricer, drafting: Drafting | None, engine, prompt: int, count: int = 1,
                  cached: int = 0) -> float:
    """Seconds of `count` prompts of `prompt` tokens, the first `cached` of them in the KV cache already, in iterations
    of their own under `engine`'s token budget (one iteration, or one a chunk of a longer prompt:
    IterationPricer.prompt_chunks), the draft prefilling beside the target where there is one; each iteration's
    kernels, and the engine's own time as it schedules (Engine.wall)."""
    budget = engine.max_batched_tokens
    unit = engine.chunk_unit
    chunks = pricer.prompt_chunks(prompt, budget, count, cached, unit)
    if drafting:
        chunks = [a + b for a, b in zip(chunks, drafting.pricer.prompt_chunks(prompt, budget, count, cached, unit))]
    return float(sum(engine.wall(t, launches(pricer, drafting), count) for t in chunks))


def launches(pricer: IterationPricer, drafting: Drafting | None) -> int:
    """Kernels the host launches one by one in an iteration that carries prompt tokens (Engine.wall): the target's,
    and the draft's that prefills beside it."""
    return pricer.launches + (drafting.pricer.launches if drafting else 0)


def _batched(rate: float, cost, most: int | None = None) -> tuple[float, float]:
    """Prompts arriving `rate` an iteration, spread out evenly (fixed lengths): an iteration holds the whole number
    below or above the rate, at most `most` of them run together. Returns (a prompt's `cost(n)` of the batch of n it
    is in, counted per prompt: a prompt is in a batch of n in proportion to n; the batches' cost an iteration)."""
    low, above = math.floor(rate), rate - math.floor(rate)
    sizes = [(w, n if most is None else min(n, most)) for w, n in ((1 - above, low), (above, low + 1)) if w and n]
    prompts = sum(w * n for w, n in sizes)
    return (sum(w * n * cost(n) for w, n in sizes) / prompts,
            sum(w * cost(n) for w, n in sizes) * rate / prompts)


def _before(x: int, spacing: float) -> float:
    """Expected count of the other requests that finished within `x` iterations before a given one (0: in the same
    iteration), where requests finish spread out evenly, one every `spacing` iterations on average (fixed lengths): m
    finishes back lies floor or ceil of m x spacing iterations back, in the proportions that make that mean."""
    count, m = 0.0, 1
    while m * spacing < x + 1:
        back = m * spacing
        low, high = math.floor(back), math.ceil(back)
        count += 1.0 if high <= x else high - back if low <= x else 0.0
        m += 1
    return count


def _queued_ttft(c: int, steps: float, prompt: int, room: int, iteration, engine, horizon: int = 400,
                 warmup: int = 80) -> float:
    """Mean TTFT where prompts queue for an iteration's room. Prompts arrive spread out evenly (fixed lengths), the
    whole number below or above the rate each iteration, and take the room first come first served (as `engine` cuts
    chunks, Engine.stride, or only whole where it has no chunked prefill), so a prompt spans the iterations from its
    arrival to the one that takes its last token. The rate is the closed loop's at that span (C / (steps + span));
    where the prompts would need more than the room even without waiting, the room bounds the rate (P tokens each),
    every iteration is full, and Little's law gives the span: C / rate - steps. `iteration(tokens)`: an iteration's
    seconds carrying that many prompt tokens. A deterministic queue, cheap enough for a search; `serve`'s event run
    checks it (tests)."""
    def run(rate: float) -> tuple[float, list[int], list[tuple[int, int]]]:
        queue: deque = deque()
        taken, spans = [], []
        for i in range(horizon):
            for _ in range(math.floor((i + 1) * rate) - math.floor(i * rate)):
                queue.append([prompt, i])
            left = room
            while queue and left > 0:
                bite = queue[0][0] if queue[0][0] <= left else engine.stride(left) if engine.chunked else 0
                if not bite:
                    break
                queue[0][0] -= bite
                left -= bite
                if not queue[0][0]:
                    spans.append((queue.popleft()[1], i))
            taken.append(room - left)
        spans = [(a, b) for a, b in spans if a >= warmup] or spans
        return sum(b - a + 1 for a, b in spans) / len(spans), taken, spans

    unhindered, most = c / (steps + engine.chunks(prompt, room)), room / prompt  # prompts an iteration
    if engine.chunked and unhindered >= most:  # prefill-bound: the queue holds the rest of the loop
        return (c / most - steps) * iteration(room)
    # waiting lengthens the loop, so fewer arrive: the rate r with r x (steps + span(r)) = C, by bisection (the left
    # side grows with r)
    low, high = 0.0, min(unhindered, most)
    for _ in range(16):
        middle = (low + high) / 2
        low, high = (middle, high) if middle * (steps + run(middle)[0]) < c else (low, middle)
    _, taken, spans = run(low)
    return sum(sum(iteration(taken[i]) for i in range(a, b + 1)) for a, b in spans) / len(spans)


def steady(pricer: IterationPricer, engine, concurrency: int, prompt: int, output: int,
           drafting: Drafting | None = None) -> Steady:
    """The steady state of `concurrency` requests of `prompt` + `output` tokens under `engine`'s rules; with pipeline
    stages, of each of the lanes (one batch in flight a stage, as `serve` runs them), each with its share. With
    `drafting`, each decode is a speculative step, as `serve --draft` runs it: the draft proposes K tokens, an iteration
    each (its first also prefilling the prompt chunks), and the target verifies K + 1 tokens a request; a step yields
    E tokens on average (the speculation's expected tokens), so a request decodes in (G - 1) / E steps."""
    lanes = pricer.lanes
    if engine.chunk:
        raise OpgraphError("a prompt's chunk capped below the budget (--chunk) is served by the event run only "
                           "(opgraph serve); the closed form chunks by the budget")
    if concurrency % lanes:
        raise OpgraphError(f"concurrency {concurrency}: with {lanes} pipeline stages, each of the {lanes} batches in "
                           f"flight holds its share; give a multiple of {lanes}")
    c, p, g, budget = concurrency // lanes, prompt, output, engine.max_batched_tokens
    context = p + max(g - 2, 0) / 2  # decodes run at contexts P .. P + G - 2
    ctx = int(round(context))
    drafts = drafting.speculation.tokens if drafting else 0
    per_token = drafting.speculation.expected_tokens if drafting else 1.0  # tokens a decode step yields
    steps = (g - 1) / per_token  # decode steps after the first token (a fluid: a step's yield is its mean)

    kernels = {}  # an iteration's GPU time by its mix: the host's time for other running counts reuses it

    def step(rows: int, decodes: float, chunks: list[tuple[float, tuple[int, int]]], sampling: int,
             running: float | None = None) -> float:
        """An iteration's wall time; `running`: the decodes the host tends, where they differ from the mean `decodes`
        (while a given request waits, its slot is empty; while it decodes, full)."""
        mix = (rows, decodes, tuple(chunks), sampling)
        if mix not in kernels:
            kernels[mix] = iteration_s(pricer, drafting, ctx, rows, decodes, chunks, sampling)
        eager = launches(pricer, drafting) if any(n for n, _ in chunks) else 0  # a prompt's iteration: no CUDA graph
        return engine.wall(kernels[mix], eager, (decodes if running is None else running) + sum(n for n, _ in chunks))

    # a replacement is sent once its predecessor's response is back, too late for the iteration built next (and, where
    # the engine builds ahead, the one after): it waits that many iterations before its prompt can be scheduled
    w = TURNAROUND + engine.admission_lag

    if engine.mixed:
        room = engine.room(c, per_decode=1 + drafts)
        if room <= 0:
            raise OpgraphError(f"concurrency {c}: its decodes alone fill the {budget:,}-token budget of an iteration")
        if not engine.chunked and p > room:
            raise OpgraphError(f"prompt {p:,}: {engine.name} runs a prompt whole, and beside {c - 1} decodes an "
                               f"iteration has room for {room:,} tokens")
        k = engine.chunks(p, room)
        stride = engine.stride(room)  # a chunk's tokens but the last's
        finish = c / (steps + k + w)  # requests finishing an iteration, and prompts arriving to replace them
        decodes = c - finish * (k + w)
        chunk, past = -(-p // k), (k - 1) * stride // 2  # a prompt's mean chunk and the tokens before it
        # the iterations a newcomer waits for carry the chunks of those that finished just before it (a prompt runs
        # w + 1 iterations after its predecessor finished, k iterations long), as fixed lengths space them; a
        # request's decode steps and its own prompt's iterations carry the rest of the other C - 1 requests' chunks,
        # k each: whole numbers of chunks an iteration, mixed to that mean
        back = lambda x: _before(x, 1 / finish)  # noqa: E731
        waited = [back(w + k - j) - back(w - j) for j in range(1, w + 1)]
        chunks = ((c - 1) * k - sum(waited)) / (steps + k)

        rows, priced = int(round(decodes)), {}
        # the decodes running while a given request decodes (its slot full) and while it waits (empty), the others'
        # slots empty in the mean share
        mine, vacant = decodes + finish * (k + w) / c, decodes - 1 + finish * (k + w) / c

        def with_chunks(n: int, running: float | None = None) -> float:  # beside the decodes, n chunks; a chunk that
            if (n, running) not in priced:  # ends its prompt samples
                priced[n, running] = step(rows, decodes, [(n, (chunk, past))],
                                          max(rows * (1 + drafts) + (n if k == 1 else 0), 1), running)
            return priced[n, running]

        def carrying(n: float, running: float | None = None) -> float:  # the mean iteration of n chunks: whole
            low = math.floor(n)  # numbers of them, mixed to that mean
            if n == low:
                return with_chunks(low, running)
            return (1 - (n - low)) * with_chunks(low, running) + (n - low) * with_chunks(low + 1, running)

        mean = carrying(chunks)
        queued = math.ceil(finish) * p > room if k == 1 else finish * k > 1
        # a request's G - 1 gaps carry those chunks but the ones that ride in its own prompt's iteration (a whole
        # prompt's, beside the prompts arriving with it; a chunked prompt's iterations have room for its chunks only)
        own = _batched(finish, lambda n: n - 1)[0] if k == 1 and not queued else 0.0
        gaps = mean if queued or not steps else carrying(max((c - 1) * k - sum(waited) - own, 0.0) / steps, mine)
        if queued:  # prompts arriving together need more than the room: they queue for it, first come first served
            ttft = _queued_ttft(c, steps + w, p, room, lambda tokens: carrying(tokens / chunk), engine)
        elif k == 1:  # the newcomer's own prompt, whole, beside the others' decodes and the prompts arriving with it
            ttft = _batched(finish, lambda n: with_chunks(n, vacant))[0]  # its own slot holds a chunk, no decode
        else:  # its chunks, one an iteration
            ttft = sum(step(rows, decodes, [(1, (stride if j < k - 1 else p - j * stride, j * stride))],
                            rows * (1 + drafts) + (j == k - 1), vacant) for j in range(k))
        if queued:  # every iteration it waited for is full of prompts
            ttft += w * mean
        else:
            ttft += sum(carrying(n, vacant) for n in waited)
        iteration = mean
        tpot = gaps / per_token  # a step's tokens arrive together: each gap a share of it
    else:
        k = engine.chunks(p, budget)

        def prompts_s(n: int) -> float:  # n whole prompts in one prefill iteration (a longer one: in chunks)
            return prompts_alone(pricer, drafting, engine, p, n)

        # requests finish at the ends of decode steps, C / (steps + w) of them a step, spread out evenly, and their
        # replacements wait w steps; then the prompts run together in the prefill iteration that comes first (as many
        # as the budget takes): a prompt's TTFT is the w steps and the batch it is in, counted per prompt; each
        # decode step is followed by its batch
        live = c * steps / (steps + w) if steps else c  # requests decoding, the others waiting
        iteration = step(int(round(live)), live, [], int(round(live)) * (1 + drafts))
        # the host's: while a given request decodes its slot is full, while it waits empty
        share = steps / (steps + w) if steps else 1.0
        gap_step, wait_step = (step(int(round(live)), live, [], int(round(live)) * (1 + drafts), running)
                               for running in (1 + (c - 1) * share, (c - 1) * share))
        arriving = c / max(steps + w, 1)
        ttft, batches = _batched(arriving, prompts_s, max(budget // p, 1))
        # the w iterations it waits: prefill iterations of those that finished just before it, one after a decode
        # step where one comes every step (b of them a step), the rest decode steps; a request's gaps carry the
        # other C - 1 requests' batches but those that ran while it waited
        b = min(arriving, 1.0)
        held = _before(w, (1 + b) / b)  # prefill iterations among them, spaced (1 + b) / b iterations apart
        ttft += (w - held) * wait_step + held * batches / b
        others = (c - 1) - held * arriving / b  # the other requests' prompts whose batches fall in its gaps
        tpot = (gap_step + others * batches / arriving / max(steps, 1)) / per_token
        queued = arriving > 1 and arriving * p > budget  # more arrive a step than one prefill iteration takes
    tokens_per_s = lanes * c * g / (ttft + (g - 1) * tpot)
    return Steady(ttft, tpot, tokens_per_s, iteration, k, queued)
