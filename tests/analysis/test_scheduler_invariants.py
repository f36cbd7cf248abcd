"""The event run's scheduler (opgraph.analysis.engine_run) over many random settings of each engine: what must hold of
any schedule, whatever the mix. Every prompt is prefilled in order, chunk after chunk, from its cached tokens to its
last (again from the start where it was preempted), and samples its first token in the iteration of its last chunk,
never before; an iteration carries its decodes and its chunks and never more than the token budget; an engine
without chunked prefill takes a prompt whole, and TensorRT-LLM's chunks but a prompt's last are whole multiples of its
chunk unit; the KV cache never holds more blocks than it has. Found so (December 2026): `--chunk` with prompts of
different lengths gave a prompt its first token while it was still prefilling, and a prompt's last chunk did not take
the block of the first token it samples, which could put the cache a block over."""

import itertools
import random

import attrs
import pytest

from opgraph import hardware
from opgraph.analysis import engine_run
from opgraph.analysis.serve import ENGINES, with_chunking

H100 = hardware.load("h100-sxm")


def setting(seed: int):
    """An engine (its chunking, budget, running limit, chunk cap), a cache size, lengths and a load, drawn."""
    rng = random.Random(seed)
    name = rng.choice(sorted(ENGINES))
    engine = ENGINES[name](H100)
    if name != "sglang" and rng.random() < 0.5:
        engine = with_chunking(engine, not engine.chunked)
    budget = rng.choice([256, 1000, 2048, 8192])
    longest = rng.choice([200, 900, 3000]) if engine.chunked else min(budget // 2, 900)
    # at most as many running as the budget takes decoding (4 tokens a step with 3 draft tokens), as vLLM requires
    engine = attrs.evolve(engine, max_batched_tokens=budget, max_seqs=min(rng.choice([4, 16, 1024]), budget // 4),
                          chunk=rng.choice([0, 0, 64, 300]) if name == "vllm" and engine.chunked else 0)
    bt = engine.block_tokens
    outputs = rng.choice([(1, 4), (2, 40), (16, 16)])
    # a cache that holds a few whole requests (preemption where the engine preempts), or plenty
    blocks = rng.choice([3, 8, 10_000]) * -(-(longest + outputs[1]) // bt)
    hit = rng.choice([0.0, 0.5])

    def cached(p: int) -> int:  # whole blocks of its first hit x P tokens, its last token always computed
        return min(int(hit * p) // bt * bt, (p - 1) // bt * bt)

    def draw() -> tuple[int, int]:
        return rng.randint(1, longest), rng.randint(*outputs)

    return engine, blocks, cached, draw, rng.choice([1, 3, 8, 40])


def check(run, engine, blocks: int, k: int = 0) -> None:
    per_decode, unit = 1 + k, engine.chunk_unit
    assert run.peak_blocks <= blocks  # the KV cache never holds more than it has
    for r in run.finished:  # a request ends no earlier than its first token
        assert run.first[r] < 0 or run.done[r] >= run.first[r]
    by_iteration = [0] * len(run.tokens)
    for at, n in zip(run.chunk_at, run.chunk_tokens):
        by_iteration[at] += n
    for i, tokens in enumerate(run.tokens):
        assert tokens == run.decoding[i] * per_decode + by_iteration[i] <= engine.max_batched_tokens
        assert run.decoding[i] <= engine.max_seqs
    chunks: dict[int, list] = {}
    for at, n, past, r in zip(run.chunk_at, run.chunk_tokens, run.chunk_past, run.chunk_of):
        chunks.setdefault(r, []).append((at, n, past))
    for r, mine in chunks.items():
        prompt, cached = run.prompt[r], run.cached[r]
        ends = [at for at, n, past in mine if past + n == prompt]
        for (at, n, past), before in zip(mine, [None, *mine]):
            assert n > 0 and past + n <= prompt
            # in order: from the cached tokens (again where it was preempted), or on from the chunk before
            assert past == cached or (before is not None and past == before[1] + before[2] and at > before[0])
            if not engine.chunked:
                assert (past, n) == (cached, prompt - cached)
            elif past + n < prompt:
                assert n % unit == 0 and (not engine.chunk or n <= engine.chunk)
        if run.first[r] >= 0:  # its first token in the iteration of its last chunk, and no chunk after it
            assert ends and run.first[r] == ends[-1] and all(at <= run.first[r] for at, _, _ in mine)
        else:
            assert not ends or ends[-1] >= len(run.tokens) - 1


def drafted(k: int, rng: random.Random):
    """Speculative decoding's steps_of: each step makes 1 to k + 1 tokens, drawn, until `tokens` are made (k = 0:
    None, one a step)."""
    def steps_of(tokens: int):
        if not k:
            return None
        made = []
        while tokens > 0:
            made.append(min(rng.randint(1, k + 1), tokens))
            tokens -= made[-1]
        return made
    return steps_of


@pytest.mark.parametrize("seed", range(120))
def test_every_schedule_prefills_each_prompt_in_order_within_the_budget(seed):
    engine, blocks, cached, draw, concurrency = setting(seed)
    k = (0, 0, 3)[seed % 3]  # draft tokens a step: every third with speculative decoding, k + 1 tokens a decode
    if concurrency * (1 + k) > engine.max_batched_tokens:
        k = 0
    run = engine_run.schedule(engine, k, blocks, 0, cached, draw, drafted(k, random.Random(seed)),
                              concurrency=concurrency, requests=None if seed % 2 else 4 * concurrency,
                              warmup=concurrency, measure=3 * concurrency)
    check(run, engine, blocks, k)


@pytest.mark.parametrize("seed", range(40))
def test_every_open_loop_schedule_holds_the_same(seed):
    engine, blocks, cached, draw, concurrency = setting(1000 + seed)
    rng = random.Random(seed)
    clock = itertools.accumulate(rng.expovariate(200.0) for _ in itertools.count())
    run = engine_run.schedule(engine, 0, blocks, 0, cached, draw, lambda tokens: None, concurrency=None,
                              requests=None, warmup=5, measure=30, arrivals=clock, rate=200.0,
                              price_one=lambda run, i, decoding: 0.002)
    check(run, engine, blocks)
