"""`opgraph serve`'s event run: the engine's scheduler, iteration by iteration, recorded as columns and priced in
arrays.

The scheduler's decisions (which requests decode, which prompt chunks ride along, who is admitted, who finishes)
depend on time only through an open loop's arrivals. So a closed loop is scheduled first, in integers, and every
iteration is priced afterwards in one pass (IterationPricer.price_columns: the token work at each distinct token
count, one sequence's attention at each past, gathered and summed), the way a sweep replays a traced graph; an open
loop prices each iteration as it is scheduled, to know what has arrived by its end.

The bookkeeping follows events, not requests: running requests are in admission order, those decoding before those
still prefilling (a request's chunks come before any admitted after it, though a shorter prompt behind one cut by the
budget, a chunk unit or --chunk may end first), and every decoding request advances together, on the iterations that
decode. So a decoding request is a range of a decode clock (the count of iterations that decoded), its context a
function of the clock, and its end an event on it; an iteration costs the scheduler its chunks, admissions and
completions, not a step per running request.

The KV cache: TensorRT-LLM reserves a request's whole length when it admits it (GUARANTEED_NO_EVICT), so what runs
never outgrows the cache. vLLM and SGLang take blocks as tokens come (Engine.preempts): before an iteration's decodes
take their next blocks, the request admitted last is preempted while they would not fit, and comes back first in
line as a continuation (a request of its own whose prompt is its request's prompt and tokens so far, recomputed;
Run.origin links it), as vLLM's _preempt_request does.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque

import numpy as np

from opgraph.errors import OpgraphError

OVERLOADED = 100_000  # requests waiting at once: an open loop whose queue only grows has no steady state
# A closed loop's client sends a request's replacement once the response is back, some time after the engine has
# built the iteration that follows the last one (the engine does not wait for it): the replacement misses that
# iteration too (aiconfigurator's docs/design/queueing_model.md, the closed-loop admission boundary: any client
# turnaround above zero costs about one more pass)
TURNAROUND = 1


class Run:
    """The requests (a column each, by id in order of arrival, which is also the order of admission) and the
    iterations (a column each) of one run."""

    def __init__(self) -> None:
        self.prompt, self.output, self.prefilled, self.cached = [], [], [], []
        self.arrival: list[float] = []  # an open loop's arrival time; a closed loop's: the iteration it followed
        self.ready: list[int] = []  # the first iteration that can schedule it (while others run: Engine.admission_lag)
        self.first, self.done = [], []  # iteration of the first token, of the last (-1: before the run)
        self.start, self.begin, self.steps = [], [], []  # decode clock of its first step, tokens then, its steps
        self.made: dict[int, list[int]] = {}  # speculative decoding: tokens each step made
        self.decoding, self.clock, self.tokens, self.rows, self.ends = [], [], [], [], []  # by iteration
        self.chunk_at, self.chunk_tokens, self.chunk_past = [], [], []  # by chunk
        self.chunk_of: list[int] = []  # by chunk: the request whose prompt it prefills
        self.finished: list[int] = []  # request ids, in order of completion
        self.origin: list[int] = []  # the request a request continues (itself, unless a preempted one's recompute)
        self.resumed: dict[int, int] = {}  # a continuation: the iteration of its request's token before it
        self.preemptions = 0
        self.began = -1  # the measurement starts after this iteration (-1: with the run)
        self.queued = 0  # requests waiting when it started
        self.peak_blocks = 0
        self.end_time: list[float] = []  # an open loop's: when each iteration ended
        self.waiting_left = 0  # requests waiting at the end

    def decode_steps(self, ids, low: int, high: int) -> tuple[np.ndarray, ...]:
        """The decode steps of requests `ids` whose clock is in [low, high), as columns: (clock, context, tokens
        made, request): a step's context is the tokens its request has cached (prompt and tokens made, less the
        last one, which the step feeds)."""
        ids = np.asarray(ids, dtype=np.int64)
        start, steps = np.asarray(self.start)[ids], np.asarray(self.steps)[ids]
        first, stop = np.maximum(start, low), np.minimum(start + steps, high)
        keep = (stop > first) & (steps > 0)
        ids, start, first, stop = ids[keep], start[keep], first[keep], stop[keep]
        lengths = stop - first
        along = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths - first, lengths)  # = the clock
        step = along - np.repeat(start, lengths)
        request = np.repeat(ids, lengths)
        if self.made:  # drawn: the tokens made before each step, and at it
            plans = [self.made[r] for r in ids.tolist()]
            made = np.concatenate([p[a - s:b - s] for p, a, b, s in zip(plans, first.tolist(), stop.tolist(),
                                                                         start.tolist())] or [np.zeros(0)])
            before = np.concatenate([np.cumsum([0] + p[:b - s - 1])[a - s:] for p, a, b, s in
                                     zip(plans, first.tolist(), stop.tolist(), start.tolist())] or [np.zeros(0)])
            made, before = made.astype(np.int64), before.astype(np.int64)
            context = (np.asarray(self.prompt)[request] + np.asarray(self.begin)[request]) + before - 1
        else:  # one token a step: the context grows with the clock
            made = np.ones(len(step), dtype=np.int64)
            context = along + np.repeat(np.asarray(self.prompt)[ids] + np.asarray(self.begin)[ids] - start - 1, lengths)
        return along, context, made, request


def schedule(engine, k: int, blocks: int, shared: int, cached, draw, steps_of, *, concurrency: int | None,
             requests: int | None, warmup: int, measure: int, arrivals=None, price_one=None,
             rate: float | None = None, price_many=None) -> Run:
    """Run the engine's scheduler until `warmup + measure` requests have finished. `draw()`: a new request's
    (prompt, output); `cached(prompt)`: its tokens already cached; `steps_of(tokens)`: the tokens each decode step
    makes until `tokens` are made (speculative decoding: drawn; None: one a step). A closed loop of `concurrency`
    (a benchmark of `requests` in all when given); else an open loop: `arrivals` yields arrival times and
    `price_one(run, i, decoding)` gives iteration i's seconds (`decoding`: ids among which its decoding requests
    are), and `price_many(run, low, high, decoding)` those of iterations [low, high) at once, for a stretch of decodes
    alone: (their seconds, commit), commit(m) keeping the first m (those that ran before the next arrival came)."""
    run, bt, budget_full, per_decode = Run(), engine.block_tokens, engine.max_batched_tokens, 1 + k
    cap = engine.chunk or 1 << 62  # one prompt's tokens an iteration at most, before the budget cuts them
    unit, chunks_prompts = engine.chunk_unit, engine.chunked  # a cut chunk's tokens: whole multiples of the unit
    prompt, output, prefilled, first_at = run.prompt, run.output, run.prefilled, run.first
    chunk_at, chunk_tokens, chunk_past = run.chunk_at.append, run.chunk_tokens.append, run.chunk_past.append
    chunk_of = run.chunk_of.append
    waiting: deque[int] = deque()
    prefilling: deque[int] = deque()
    ends: list[tuple[int, int]] = []  # (decode clock at which it finishes, id): a heap
    # decoding requests: their KV blocks at clock t are ceil((base + t) / bt), base = prompt + made - start; kept as
    # base + bt - 1 = q bt + r, so that every one's blocks sum to sum(q) + n (t // bt) + #{r >= bt - t % bt}
    # (n: those counted so, one token a step; `counted`)
    bases: dict[int, tuple[int, int]] = {}
    residues, quotients, counted, bases_cached = [0] * bt, 0, 0, 0  # bases_cached: their cached blocks, held once

    def need(r: int) -> int:  # KV blocks for its whole length, reserved at admission: none is evicted
        return -(-(prompt[r] + output[r]) // bt) - run.cached[r] // bt

    def room(r: int, used: int) -> int:
        """Tokens of r's prompt the free KV blocks take (an engine that preempts; else all that are left): all of
        them only with a slot to spare for the first token, which the iteration that ends the prompt samples."""
        left = prompt[r] - prefilled[r]
        if not preempts:
            return left
        slots = (-(-prefilled[r] // bt) + blocks - used) * bt - prefilled[r]
        return left if slots > left else min(slots, left - 1)

    def more(r: int, n: int) -> int:
        """Blocks r takes on admission with a chunk of n tokens (an engine that preempts: those the chunk fills, and
        the first token's where the chunk ends the prompt, as a token holds its block from the iteration that samples
        it; else its whole length, reserved)."""
        if not preempts:
            return need(r)
        return -(-(prefilled[r] + n + (prefilled[r] + n == prompt[r])) // bt) - -(-prefilled[r] // bt)

    def add(p: int, g: int, arrival: float, origin: int | None = None, ready: int = 0) -> int:
        """A request of p prompt tokens and g output tokens, waiting to be admitted from iteration `ready` on: its
        id."""
        r, hit = len(prompt), cached(p)
        prompt.append(p), output.append(g), run.cached.append(hit)
        prefilled.append(hit), run.arrival.append(arrival), run.ready.append(ready)
        first_at.append(-1), run.done.append(-1), run.start.append(-1), run.begin.append(-1), run.steps.append(-1)
        run.origin.append(r if origin is None else origin)
        return r

    def new(arrival: float, ready: int = 0) -> int:
        return add(*draw(), arrival, ready=ready)

    def decode(r: int, clock: int, made: int) -> None:  # r decodes from `clock`, `made` tokens made so far
        nonlocal quotients, counted, bases_cached
        left = output[r] - made
        plan = steps_of(left)
        steps = left if plan is None else len(plan)
        if plan is not None:
            run.made[r] = plan
        run.start[r], run.begin[r], run.steps[r] = clock, made, steps
        q, rest = bases[r] = divmod(prompt[r] + made - clock + bt - 1, bt)
        if plan is None:
            quotients, residues[rest], counted = quotients + q, residues[rest] + 1, counted + 1
        bases_cached += run.cached[r] // bt
        heapq.heappush(ends, (clock + steps, r))

    def leave(r: int) -> None:  # r stops decoding: decode()'s bookkeeping undone
        nonlocal quotients, counted, bases_cached
        q, rest = bases.pop(r)
        if r not in run.made:
            quotients, residues[rest], counted = quotients - q, residues[rest] - 1, counted - 1
        bases_cached -= run.cached[r] // bt

    def live(clock: int, r: int) -> bool:  # an entry of `ends` still due (else r was preempted since)
        return r in bases and run.start[r] + run.steps[r] == clock

    def in_use(t: int) -> int:
        """KV blocks the running requests hold with the decoding ones' tokens as of decode clock t."""
        whole, part = divmod(t, bt)
        u = shared + quotients + whole * counted + (sum(residues[bt - part:]) if part else 0) - bases_cached
        if run.made:
            u += sum(-(-(prompt[r] + run.begin[r] + sum(run.made[r][:t - run.start[r]])) // bt)
                     for r in bases if r in run.made)
        if prefilling:
            u += sum(-(-prefilled[r] // bt) - run.cached[r] // bt for r in prefilling)
        return u

    def preempt() -> None:
        """The request admitted last gives back its blocks (vLLM's recompute preemption: running.pop()); one that
        has made tokens comes back as a continuation, its prompt and tokens so far prefilled again, first in line."""
        r = max(list(bases) + list(prefilling), key=admitted.__getitem__)
        admitted.pop(r)
        run.preemptions += 1
        if r in prefilling:
            prefilling.remove(r)
            prefilled[r] = run.cached[r]
            waiting.appendleft(r)
            return
        leave(r)
        done_steps = tau - run.start[r]
        made = run.begin[r] + (sum(run.made[r][:done_steps]) if r in run.made else done_steps)
        if r in run.made:
            run.made[r] = run.made[r][:done_steps]
        run.steps[r] = done_steps
        again = add(prompt[r] + made, output[r] - made, run.arrival[r], run.origin[r])
        run.resumed[again] = clocked[tau - 1] if done_steps else first_at[r]
        waiting.appendleft(again)

    def finish(i: int, finishing=()) -> None:  # iteration i ends: the requests done leave, the closed loop refills
        nonlocal held, created
        if not finishing and not (ends and ends[0][0] <= tau):  # most iterations: nothing ends
            return
        finishing = list(finishing)
        while ends and ends[0][0] <= tau:
            clock, r = heapq.heappop(ends)
            if not run.preemptions or live(clock, r):  # else preempted: its continuation ends it
                finishing.append(r)
        if not finishing:
            return
        # the KV cache in use is largest just before requests leave (it only grows in between); a request whose only
        # token was its first holds its prompt's blocks and that token's
        first_only = [r for r in finishing if r not in bases]
        run.peak_blocks = max(run.peak_blocks, in_use(tau) + (sum(
            -(-(prompt[r] + 1) // bt) - run.cached[r] // bt for r in first_only) if first_only else 0))
        if len(finishing) > 1:
            finishing.sort(key=admitted.__getitem__)  # in order of admission
        for r in finishing:
            admitted.pop(r)
            if r in bases:
                leave(r)
            if not preempts:
                held -= need(r)
            r = run.origin[r]
            run.done[r] = i
            run.finished.append(r)
            if concurrency is not None and (requests is None or created < requests):
                # the closed loop: a new request in its place, sent at once, too late for the iteration built next
                waiting.append(new(i, i + 1 + TURNAROUND + lag))
                created += 1
            if len(run.finished) == warmup:
                run.began, run.queued = i, len(waiting)

    held, tau, created, most, preempts, lag = 0, 0, 0, engine.max_seqs, engine.preempts, engine.admission_lag
    (wait_ratio, wait_iters), waited = engine.batch_wait, 0
    admitted: dict[int, int] = {}  # running requests: their place in the order of admission
    order = itertools.count()
    clocked: list[int] = []  # the iteration of each decode clock
    if concurrency is not None:
        created = min(concurrency, requests) if requests is not None else concurrency
        for i in range(created):
            r = new(-1)
            made = 0 if requests is not None else i * output[r] // concurrency
            if made and len(bases) < most and held + need(r) <= blocks:
                # desynchronized from the start: request i i/C of the way through its output (those that fit)
                prefilled[r] = prompt[r]
                decode(r, 0, made)
                held += need(r)
                admitted[r] = next(order)
            else:
                waiting.append(r)
    now, goal, mixed = 0.0, warmup + measure, engine.mixed
    next_arrival = next(arrivals) if arrivals is not None else math.inf
    i = 0
    while len(run.finished) < goal:
        while next_arrival <= now:  # the open loop's arrivals so far: during the last iteration, after this one was
            waiting.append(new(next_arrival, i + lag))  # built where the engine builds ahead
            next_arrival = next(arrivals)
        if len(waiting) > OVERLOADED:
            raise OpgraphError(f"--rate {rate:g}: requests arrive faster than the engine finishes them "
                               f"({len(run.finished):,} done in {now:,.1f} s, {len(waiting):,} waiting); give a lower "
                               f"rate")
        running, decoding = len(bases) + len(prefilling), len(bases)
        if not running and not waiting:  # idle until the next request
            now = next_arrival
            continue
        # the waiting requests this iteration can take (all, where nothing runs: the engine idles until they come)
        seen = (i if running else math.inf) if waiting else -1
        while run.preemptions and ends and not live(*ends[0]):  # (only a preemption leaves an end not due)
            heapq.heappop(ends)  # a preempted request's end: its continuation has its own
        visible = bool(waiting) and run.ready[waiting[0]] <= seen
        # the blocks in use (a closed loop's decode steps alone, below, check their own instead)
        used = in_use(tau) if preempts and (visible or prefilling or price_one is not None) else held
        admissible = visible and running < most and used + more(
            waiting[0], min(prompt[waiting[0]] - prefilled[waiting[0]], budget_full, cap)) <= blocks
        if not mixed and ((prefilling and room(prefilling[0], used)) or admissible):
            decoding = 0  # SGLang runs prompts first, in a batch of their own, when one can run
        elif not visible and not prefilling and (price_one is None or price_many is not None):
            # decode steps alone, alike but for their clock, until the next request finishes or the first waiting
            # one can be taken: taken at once (up to where the KV cache would run out, for an engine that preempts);
            # an open loop's also until the next arrival comes, which its iterations' seconds say (priced together)
            steps = ends[0][0] - tau
            if waiting:
                steps = min(steps, run.ready[waiting[0]] - i)
            if preempts and in_use(tau + steps) > blocks:
                low, high = 0, steps  # in_use(tau + low) fits, in_use(tau + high) does not
                while high - low > 1:
                    mid = (low + high) // 2
                    low, high = (mid, high) if in_use(tau + mid) <= blocks else (low, mid)
                steps = low
            if steps:
                run.decoding.extend([decoding] * steps), run.clock.extend(range(tau, tau + steps))
                run.ends.extend([0] * steps), run.tokens.extend([decoding * per_decode] * steps)
                run.rows.extend([decoding * per_decode] * steps)
                clocked.extend(range(i, i + steps))
                if price_many is not None:  # an iteration built once the next arrival came is not one of these
                    walls, commit = price_many(run, i, i + steps, list(bases))
                    ends_at = np.cumsum(np.concatenate([[now], walls]))[1:]  # as one iteration after another adds
                    kept = min(steps, 1 + int(np.searchsorted(ends_at[:steps - 1], next_arrival)))
                    for column in (run.decoding, run.clock, run.ends, run.tokens, run.rows):
                        del column[i + kept:]
                    del clocked[len(clocked) - (steps - kept):]
                    commit(kept)
                    run.end_time.extend(ends_at[:kept].tolist())
                    now, steps = float(ends_at[kept - 1]), kept
                i, tau = i + steps - 1, tau + steps
                finish(i)
                i += 1
                continue
        if preempts and decoding:  # each decode's next token needs its block: the newest give theirs back
            used = in_use(tau + 1)
            while used > blocks and running > 1:
                preempt()
                running -= 1
                used = in_use(tau + 1)
            decoding = len(bases)
        budget = budget_full - decoding * per_decode
        if budget < 0:
            raise OpgraphError(f"{decoding:,} requests decode at once, {decoding * per_decode:,} tokens an iteration, "
                               f"more than the engine's token budget ({budget_full:,}, --max-batch-tokens) holds; "
                               f"give a larger budget or " + ("a lower concurrency" if concurrency is not None else
                                                              f"--max-seqs {budget_full // per_decode:,} or fewer "
                                                              f"(requests run at once)"))
        chunked, ended = 0, 0
        for r in prefilling:  # running requests' prompts, in order of admission, while the budget (and cache) lasts
            if budget == 0:
                break
            n = min(prompt[r] - prefilled[r], cap)
            if n > budget:  # the budget cuts it, down to a whole chunk unit: none where less is left (the next may fit)
                n = budget // unit * unit
                if not n:
                    continue
            if preempts:  # as much of it as the free blocks take
                n = min(n, room(r, used))
                if n <= 0:
                    break
                used += more(r, n)
            chunk_at(i), chunk_tokens(n), chunk_past(prefilled[r]), chunk_of(r)
            prefilled[r] += n
            budget, chunked = budget - n, chunked + n
            ended += prefilled[r] == prompt[r]
        # then newcomers, first come first served, while the budget, the running limit and the KV cache allow; an
        # engine without chunked prefill takes a prompt only whole (TensorRT-LLM's scheduler, cutting chunks in units,
        # could give a later newcomer's whole prompt the few tokens left below a unit: too rare to model)
        taken, room_left, seats, free = [], budget, running, blocks - used
        for r in waiting:
            left = prompt[r] - prefilled[r]
            n = min(left, cap)
            if n > room_left:
                n = room_left // unit * unit
            if n <= 0 or (n < left and not chunks_prompts) or seats >= most or run.ready[r] > seen:
                break
            extra = more(r, n)
            if extra > free:
                break
            taken.append((r, n, extra))
            room_left, seats, free = room_left - n, seats + 1, free - extra
        if taken and decoding and wait_iters:
            # TensorRT-LLM's batch waiting (PyExecutor._waiting_requests): while requests decode, new prompts are held
            # until the iteration's tokens come to wait_ratio of the budget or wait_iters iterations have held them
            if waited < wait_iters and decoding * per_decode + chunked + budget - room_left < wait_ratio * budget_full:
                taken, waited = [], waited + 1
            else:
                waited = 0
        for r, n, extra in taken:
            waiting.popleft()
            used, running = used + extra, running + 1
            if not preempts:
                held = used
            admitted[r] = next(order)
            chunk_at(i), chunk_tokens(n), chunk_past(prefilled[r]), chunk_of(r)
            prefilled[r] += n
            prefilling.append(r)
            budget, chunked = budget - n, chunked + n
            ended += prefilled[r] == prompt[r]
        if not decoding and not chunked:  # nothing can run: the cache is full of prompts begun; the last gives way
            if not running:  # pragma: no cover - a request alone always fits (serve refuses one that does not)
                raise AssertionError("the scheduler found nothing to run")
            preempt()
            continue
        if decoding:
            clocked.append(i)
        run.decoding.append(decoding), run.clock.append(tau), run.ends.append(ended)
        run.tokens.append(decoding * per_decode + chunked)
        run.rows.append(decoding * per_decode + ended)
        tau += decoding > 0
        finishing, done = [], ()
        if ended:  # the prompts ended, each to sample its first token: not always the first prefilling, as a prompt
            # cut by --chunk or to a chunk unit may be passed by a shorter one behind it
            done = [r for r in prefilling if prefilled[r] == prompt[r]]
            kept = [r for r in prefilling if prefilled[r] < prompt[r]]
            prefilling.clear(), prefilling.extend(kept)
        for r in done:
            first_at[r] = i
            if output[r] == 1:
                finishing.append(r)
            else:
                decode(r, tau, 1)
        if price_one is not None:
            now += price_one(run, i, list(bases))
            run.end_time.append(now)
        finish(i, finishing)
        i += 1
    if warmup == 0:
        run.began = -1
    run.waiting_left = len(waiting)
    return run


def price(run: Run, low: int, high: int, ids, pricer, draft=None, k: int = 0, steps=None) -> tuple[np.ndarray, dict]:
    """Iterations [low, high) of `run`, whose decoding requests are among `ids`: each one's expected seconds (with
    speculative decoding, the draft's k proposal iterations and the target's verify), and its seconds by kernel
    class, an array each. `steps`: the decode steps of those iterations (Run.decode_steps), if already found."""
    n = high - low
    decoding, tokens = np.asarray(run.decoding[low:high]), np.asarray(run.tokens[low:high])
    rows, clocks = np.asarray(run.rows[low:high]), np.asarray(run.clock[low:high])
    at = np.flatnonzero(decoding)  # the iterations that decode, one a clock value from clocks[at[0]] on
    where, context = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(at):
        clock, context, _, _ = steps or run.decode_steps(ids, int(clocks[at[0]]), int(clocks[at[-1]]) + 1)
        where = at[clock - clocks[at[0]]]
    a, b = bisect.bisect_left(run.chunk_at, low), bisect.bisect_left(run.chunk_at, high)
    chunks = tuple(np.asarray(c[a:b], dtype=np.int64) for c in (run.chunk_at, run.chunk_tokens, run.chunk_past))
    chunks = (chunks[0] - low,) + chunks[1:]
    expected, _, by_class = pricer.price_columns(tokens, rows, (where, context), 1 + k, chunks)
    if draft is None:
        return expected, by_class
    # the draft: k decode iterations over the decoding requests (at their contexts + j), its prompts with the first
    first = decoding + tokens - decoding * (1 + k)  # the first's tokens: a draft token each, and the chunks
    sub_tokens = np.repeat(decoding, k)
    sub_tokens[::k] = first
    real = np.flatnonzero(sub_tokens > 0)  # without decodes, only the first runs (to prefill the draft's cache)
    compact = np.full(n * k, -1)
    compact[real] = np.arange(len(real))
    pairs = (np.concatenate([compact[where * k + j] for j in range(k)]),
             np.concatenate([context + j for j in range(k)]))
    e, _, classes = draft.price_columns(sub_tokens[real], np.repeat(decoding, k)[real], pairs, 1,
                                        (compact[chunks[0] * k], chunks[1], chunks[2]))
    into = real // k
    expected = expected + np.bincount(into, weights=e, minlength=n)
    for kind, v in classes.items():
        by_class[kind] = by_class.get(kind, 0.0) + np.bincount(into, weights=v, minlength=n)
    return expected, by_class


def host_counts(run: Run, low: int, high: int, pricer, draft=None) -> tuple[np.ndarray, np.ndarray]:
    """For each of iterations [low, high) of `run`, what the host's time depends on (Engine.wall): the kernels it
    launches one by one (every kernel of an iteration that carries prompt chunks, the draft's too, which prefills
    beside the target; none of a decode-only one, which replays a captured CUDA graph) and the requests it runs (its
    decodes and its prompt chunks, a request each)."""
    a, b = bisect.bisect_left(run.chunk_at, low), bisect.bisect_left(run.chunk_at, high)
    chunks = np.bincount(np.asarray(run.chunk_at[a:b], dtype=np.int64) - low, minlength=high - low)
    kernels = pricer.launches + (draft.launches if draft is not None else 0)
    return (chunks > 0) * kernels, np.asarray(run.decoding[low:high], dtype=np.int64) + chunks


def price_one(run: Run, i: int, ids, pricer, draft=None, k: int = 0) -> tuple[float, dict]:
    """Iteration i of `run` alone, whose decoding requests are among `ids`, through IterationPricer.price: what
    price() gives it among many (an open loop prices each iteration as it is scheduled, and one at a time this is
    the cheaper path): its expected seconds and its seconds by kernel class."""
    contexts = []
    if run.decoding[i]:
        contexts = run.decode_steps(ids, run.clock[i], run.clock[i] + 1)[1].tolist()
    a, b = bisect.bisect_left(run.chunk_at, i), bisect.bisect_left(run.chunk_at, i + 1)
    chunks = list(zip(run.chunk_tokens[a:b], run.chunk_past[a:b]))
    if draft is None:
        steps = [pricer.price(contexts, chunks, sampling=len(contexts) + run.ends[i])]
    else:  # the draft's k proposals (its prompts with the first), then the target's verify
        steps = [draft.price([c + j for c in contexts], chunks if j == 0 else (), sampling=len(contexts))
                 for j in range(k) if contexts or j == 0]
        steps.append(pricer.price([], [(k + 1, c) for c in contexts] + chunks,
                                  sampling=len(contexts) * (k + 1) + run.ends[i]))
    by_class: dict = {}
    for it in steps:
        for kind, v in it.by_class.items():
            by_class[kind] = by_class.get(kind, 0.0) + v
    return sum(it.expected_s for it in steps), by_class
