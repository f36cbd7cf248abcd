"""Serving as an engine runs it: `opgraph serve`. Requests batched in flight, iteration by iteration, with chunked
prefill, at a fixed concurrency (a closed loop: a finished request is replaced at once, as serving benchmarks run).

Each iteration the scheduler (vLLM V1's, vllm/v1/core/sched/scheduler.py) first gives every running request its next
tokens: one for a request that is decoding, the next chunk of its prompt (up to the token budget left) for one that
is not done prefilling; then admits waiting requests, first come first served, while the budget (max_num_batched_tokens)
and the running limit (max_num_seqs) allow, each with a chunk of its prompt. The iteration is priced from that mix
(opgraph.analysis.iteration: every decode at its own context, every chunk over the keys it attends to), plus the
engine's own time per iteration if one is given; a request samples its first token in the iteration that ends its
prompt, and one token each iteration after. The run continues until the steady state has been measured: the first
`warmup` completed requests are not counted.

The KV cache holds what the GPU has left: its capacity times the engine's memory fraction, less the weights and the
activations of the largest iteration (as vLLM profiles one at start-up), in blocks of `block_tokens` tokens. A
concurrency whose requests cannot all hold their full length at once is refused with the largest one that can
(preemption is not modelled).
"""

from __future__ import annotations

import math
from collections import deque

import attrs
import numpy as np

from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.memory import footprint_of
from opgraph.core import checks
from opgraph.core.fusion import FusionPlan
from opgraph.core.phase import Phase
from opgraph.errors import OpgraphError
from opgraph.pricing.hardware import Hardware


@attrs.frozen
class Engine:
    """A serving engine's scheduling limits, each with where it comes from."""

    name: str
    max_batched_tokens: int  # tokens one iteration may process (the chunked-prefill budget)
    max_seqs: int  # requests running at once
    memory_fraction: float  # of the GPU's memory the engine takes (weights, activations, KV cache)
    block_tokens: int  # tokens per KV-cache block
    source: str


def vllm(hw: Hardware) -> Engine:
    """vLLM's defaults for its OpenAI-compatible server: EngineArgs.get_batch_defaults in vllm/engine/arg_utils.py
    (vLLM 0.10-0.11) gives 8,192 batched tokens and 1,024 sequences on GPUs of at least 70 GiB other than the A100,
    else 2,048 and 256; CacheConfig's gpu_memory_utilization 0.9 and block_size 16."""
    large = hw.capacity >= 70 * 2**30 and "a100" not in hw.name
    return Engine("vllm", 8192 if large else 2048, 1024 if large else 256, 0.9, 16,
                  "vLLM's server defaults (vllm/engine/arg_utils.py EngineArgs.get_batch_defaults: "
                  + ("8,192 tokens and 1,024 sequences on a GPU of 70 GiB or more, not an A100" if large else
                     "2,048 tokens and 256 sequences below 70 GiB and on the A100")
                  + "; vllm/config/cache.py gpu_memory_utilization 0.9, block_size 16)")


ENGINES = {"vllm": vllm}


@attrs.frozen
class Stats:
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values) -> "Stats":
        a = np.asarray(values, dtype=np.float64)
        return cls(float(a.mean()), *(float(np.quantile(a, q)) for q in (0.5, 0.9, 0.99)))


@attrs.frozen
class Serving:
    """`opgraph serve`: the steady state of a closed loop, per request and per GPU."""

    model: str
    hardware: Hardware
    plan: FusionPlan
    engine: Engine
    concurrency: int  # requests in flight, per replica
    prompt: int
    output: int
    gpus: int  # GPUs of the deployment (every replica's)
    replicas: int
    ttft: Stats  # seconds
    tpot: Stats  # per request: (end-to-end - TTFT) / (output - 1)
    itl: Stats  # every gap between two tokens of a request
    e2e: Stats
    tokens_per_s: float  # output tokens a second, the whole deployment (every replica), over the measured iterations
    iteration: Stats  # seconds an iteration takes
    tokens_per_iteration: Stats  # new tokens an iteration processes (decodes plus chunk tokens)
    by_class: dict[str, float]  # share of the measured iterations' time by kernel class
    kv_blocks: int  # the KV cache's blocks, one GPU
    kv_used: float  # the largest share of them in use at once
    measured: int  # requests measured (after the warm-up)
    iterations: int
    overhead_s: float  # the engine's own time per iteration, added (given, not modelled)
    notes: tuple[str, ...] = ()

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def tokens_per_s_per_user(self) -> float:
        """One request's output rate while it decodes: 1 / its TPOT, averaged over requests."""
        return 1 / self.tpot.mean if self.tpot.mean else float("inf")


class _Request:
    __slots__ = ("arrival", "prefilled", "generated", "first", "last", "gaps")

    def __init__(self, arrival: float):
        self.arrival, self.prefilled, self.generated = arrival, 0, 0
        self.first = self.last = 0.0
        self.gaps: list[float] = []


def serve(build, plan: FusionPlan, hw: Hardware, *, concurrency: int, prompt: int, output: int,
          engine: Engine | None = None, overhead_s: float = 0.0, warmup: int | None = None,
          measure: int | None = None) -> Serving:
    """The closed-loop steady state of `concurrency` requests of `prompt` tokens generating `output` tokens each.
    `warmup` completions are not counted (default: twice the concurrency), then `measure` are (default: twice the
    concurrency, at least 64)."""
    concurrency = checks.integer("--concurrency", concurrency)
    prompt, output = checks.integer("--prompt", prompt), checks.integer("--output", output)
    engine = engine or vllm(hw)
    checks.number("--overhead-us", overhead_s, minimum=0, maximum=1)
    if concurrency > engine.max_seqs:
        raise OpgraphError(f"--concurrency {concurrency}: the engine runs at most {engine.max_seqs:,} requests at once "
                           f"(--max-seqs); give --max-seqs {concurrency} or a lower concurrency")
    pricer = IterationPricer(build, plan, hw)
    blocks, per_request = _kv_blocks(build, plan, hw, engine, prompt + output)
    if concurrency * per_request > blocks:
        fits = blocks // per_request
        raise OpgraphError(f"--concurrency {concurrency}: the KV cache holds {blocks:,} blocks of "
                           f"{engine.block_tokens} tokens on each GPU, {per_request:,} for each request of "
                           f"{prompt + output:,} tokens, so at most {fits:,} requests at once"
                           + ("" if fits else "; not even one: use more GPUs (--tp) or a shorter request"))
    warmup = 2 * concurrency if warmup is None else warmup
    measure = max(2 * concurrency, 64) if measure is None else measure
    running: list[_Request] = []
    waiting = deque(_Request(0.0) for _ in range(concurrency))
    done: list[_Request] = []
    now, iterations, peak_blocks = 0.0, [], 0
    by_class: dict[str, float] = {}
    start = 0.0 if warmup == 0 else None  # when the measured part begins
    while len(done) < warmup + measure:
        budget, decodes, chunks, sampled = engine.max_batched_tokens, [], [], []
        for r in running:  # running requests first: a decode token each, or their prompt's next chunk
            if budget == 0:
                break
            if r.prefilled < prompt:
                n = min(prompt - r.prefilled, budget)
                chunks.append((r, n))
            else:
                n = 1
                decodes.append(r)
            budget -= n
        while waiting and budget > 0 and len(running) < engine.max_seqs:  # then newcomers, first come first served
            r = waiting.popleft()
            n = min(prompt, budget)
            running.append(r)
            chunks.append((r, n))
            budget -= n
        it = pricer.price([prompt + r.generated - 1 for r in decodes], [(n, r.prefilled) for r, n in chunks],
                          sampling=len(decodes) + sum(r.prefilled + n == prompt for r, n in chunks))
        now += it.expected_s + overhead_s
        if start is not None:
            emitted = len(decodes) + sum(r.prefilled + n == prompt for r, n in chunks)
            iterations.append((it.expected_s + overhead_s, it.tokens, emitted))
            for k, v in it.by_class.items():
                by_class[k] = by_class.get(k, 0.0) + v
        for r, n in chunks:
            r.prefilled += n
            if r.prefilled == prompt:  # the prompt's last chunk samples the first token
                r.generated, r.first = 1, now
                r.last = now
        for r in decodes:
            r.generated += 1
            r.gaps.append(now - r.last)
            r.last = now
        finished = [r for r in running if r.generated >= output]
        for r in finished:
            running.remove(r)
            done.append(r)
            waiting.append(_Request(now))  # the closed loop: a new request in its place at once
            if len(done) == warmup:
                start = now
        peak_blocks = max(peak_blocks, sum(-(-(r.prefilled + r.generated) // engine.block_tokens) for r in running))
    measured = done[warmup:]
    if start is None or not iterations:
        raise OpgraphError("the run ended before the steady state was measured; give a larger --measure")
    probe = build(Phase.decode(1, 1))
    gpus, replicas = pricer.gpus, pricer.replicas
    total_time = sum(t for t, _, _ in iterations)
    notes = ((f"the engine's time per iteration (scheduling, sampling) is not modelled: {overhead_s * 1e6:g} µs "
              f"added to each (--overhead-us)"),
             "preemption is not modelled: every request's KV cache is held whole (checked against the cache)")
    return Serving(probe.name, hw, plan, engine, concurrency, prompt, output, gpus, replicas,
                   Stats.of([r.first - r.arrival for r in measured]),
                   Stats.of([(r.last - r.first) / (output - 1) for r in measured] if output > 1 else [0.0]),
                   Stats.of([g for r in measured for g in r.gaps] or [0.0]),
                   Stats.of([r.last - r.arrival for r in measured]),
                   replicas * sum(e for _, _, e in iterations) / total_time,
                   Stats.of([t for t, _, _ in iterations]), Stats.of([n for _, n, _ in iterations]),
                   {k: v / total_time for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])},
                   blocks, peak_blocks / blocks, len(measured), len(iterations), overhead_s, notes)


def _kv_blocks(build, plan: FusionPlan, hw: Hardware, engine: Engine, length: int) -> tuple[int, int]:
    """(KV-cache blocks on one GPU, blocks one request of `length` tokens holds at its end)."""
    one = footprint_of(build(Phase.decode(1, length - 1)), plan, hw)  # one sequence holding `length` tokens
    largest = footprint_of(build(Phase.prefill(1, engine.max_batched_tokens)), plan, hw)
    free = hw.capacity * engine.memory_fraction - one.weight_bytes - largest.activation_bytes
    # bytes a block of tokens takes, all layers (a model with only recurrent state holds a fixed state per request)
    per_block = max(one.kv_cache_bytes / length * engine.block_tokens, 1.0)
    if free <= 0:
        raise OpgraphError(f"the weights ({one.weight_bytes / 1e9:,.1f} GB a GPU) and the largest iteration's "
                           f"activations leave nothing of {engine.memory_fraction:g} x {hw.capacity / 1e9:,.0f} GB "
                           f"for the KV cache: use more GPUs (--tp)")
    return int(free // per_block), math.ceil(length / engine.block_tokens)
