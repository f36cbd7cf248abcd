"""Serving in flight (issue 17, first part): an iteration priced from its mix, and vLLM's scheduler in a closed loop.
Expected values come from the report's own uniform steps (an iteration of n decodes at one context is that decode
step), from `generate` (one request alone is a static batch of one), from hand counts of chunks, and from Little's
law."""

import json
import re

import attrs
import pytest

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.analysis.generate import estimate
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.serve import ENGINES, serve, vllm
from opgraph.errors import OpgraphError
from opgraph.core.tensor import Role
from opgraph.models import BuildOptions
from userland import NEUTRAL, opgraph

H100 = hardware.load("h100-sxm")
FLASH = strategy("flash")
LLAMA = models.get("llama-3-8b")
# flash runs Llama-3-8B in 16 kernels a layer (norm, q, k, v, two ropes, attention, o_proj, residual, norm, gate, up,
# act, mul, down, residual) and 3 more (embedding, final norm, lm_head): an iteration that carries prompt tokens is
# launched kernel by kernel, at least that many launches of the host's time (Engine.host_launch_s)
FLASH_KERNELS = 32 * 16 + 3


def least(engine) -> float:
    """The least time of an iteration of Llama-3-8B under flash that carries prompt tokens: its launches."""
    return FLASH_KERNELS * engine.host_launch_s


def bare(engine):
    """The engine without the host's time (its launches of a prompt's iteration, its own time per iteration and per
    request): the GPU's schedule alone."""
    return attrs.evolve(engine, host_launch_s=0.0, overhead_s=0.0, overhead_per_request_s=0.0)


@pytest.mark.parametrize("name, options, plan", [("llama-3-8b", {}, "flash"), ("llama-3-8b", {}, "unfused"),
                                                 ("llama-3-8b", {"tp": 2}, "flash"), ("mistral-7b", {}, "flash"),
                                                 ("mixtral-8x7b", {}, "flash")])
@pytest.mark.parametrize("batch, context", [(1, 5), (32, 1024), (7, 6000)])
def test_an_iteration_of_decodes_at_one_context_is_the_reports_decode_step(name, options, plan, batch, context):
    build = lambda ph: models.get(name).build(ph, BuildOptions(**options))  # noqa: E731
    pricer = IterationPricer(build, strategy(plan), H100)
    it = pricer.price([context] * batch)
    step = analyze(build(Phase.decode(batch, context)), strategy(plan), H100).totals
    assert it.expected_s == pytest.approx(step.expected_s, rel=1e-12)
    assert it.roofline_s == pytest.approx(step.time_s, rel=1e-12)
    assert it.tokens == batch
    assert sum(it.by_class.values()) == pytest.approx(it.expected_s, rel=1e-9)


def test_sequences_at_different_contexts_share_one_attention_kernel_a_layer():
    """Two decodes at contexts 1,000 and 3,000 read the keys of both (one varlen kernel a layer, one fixed cost):
    the same bytes as two sequences at 2,000 each, so the same time on a full-attention model."""
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    mixed, even = pricer.price([1000, 3000]), pricer.price([2000, 2000])
    assert mixed.expected_s == pytest.approx(even.expected_s, rel=1e-12)
    alone = pricer.price([1000]).by_class["decode_attention"] + pricer.price([3000]).by_class["decode_attention"]
    latency = H100.timing.of("decode_attention").latency_s
    assert mixed.by_class["decode_attention"] == pytest.approx(alone - 32 * latency, rel=1e-9)  # 32 layers, one each


@pytest.mark.parametrize("name, options, gpu, queries", [
    ("llama-3-8b", {}, "h100-sxm", 1), ("llama-3-8b", {}, "h100-sxm", 4), ("llama-3-8b", {}, "mi300x", 1),
    ("deepseek-v3", {"tp": 8}, "h100-sxm", 1), ("gemma-3-27b", {}, "h100-sxm", 1),
    ("llama-3-8b", {"pp": 2}, "h100-sxm", 1), ("nemotron-h-8b", {}, "h200", 1)])
def test_many_iterations_priced_at_once_are_each_priced_as_alone(name, options, gpu, queries):
    """The event run prices its iterations in arrays (price_columns): each one's expected and roofline seconds and its
    seconds by kernel class equal price()'s for the same mix, on a fresh pricer each (calibrated and not; dense, MLA
    with experts, sliding windows, pipeline stages, state-space layers; decodes, verify steps of 4 queries, chunks)."""
    import random

    import numpy as np
    build = lambda ph: models.get(name).build(ph, BuildOptions(**options))  # noqa: E731
    hw = hardware.load(gpu)
    rng = random.Random(7)
    mixes = []
    for _ in range(24):
        pasts = [rng.randint(1, 5000) for _ in range(rng.randint(0, 12))]
        chunks = [(rng.randint(1, 900), rng.randint(0, 3000)) for _ in range(rng.randint(0 if pasts else 1, 2))]
        mixes.append((pasts, chunks))
    alone = IterationPricer(build, strategy("vllm"), hw)
    each = [alone.price([], [(queries, c) for c in pasts] + chunks, sampling=len(pasts) * queries + len(chunks))
            for pasts, chunks in mixes]
    many = IterationPricer(build, strategy("vllm"), hw)
    expected, roofline, by_class = many.price_columns(
        [len(p) * queries + sum(n for n, _ in c) for p, c in mixes], [len(p) * queries + len(c) for p, c in mixes],
        ([i for i, (p, _) in enumerate(mixes) for _ in p], [x for p, _ in mixes for x in p]), queries,
        ([i for i, (_, c) in enumerate(mixes) for _ in c], [n for _, c in mixes for n, _ in c],
         [x for _, c in mixes for _, x in c]))
    assert expected == pytest.approx([it.expected_s for it in each], rel=1e-12)
    assert roofline == pytest.approx([it.roofline_s for it in each], rel=1e-12)
    for i, it in enumerate(each):
        assert {k: v[i] for k, v in by_class.items() if v[i]} == pytest.approx(
            {k: v for k, v in it.by_class.items() if v}, rel=1e-12)
    assert np.all(expected > 0)


@pytest.mark.parametrize("engine, drafts", [("vllm", 0), ("sglang", 0), ("vllm", 3)])
def test_an_iteration_priced_alone_is_priced_as_among_all(engine, drafts):
    """An open loop prices each iteration as it is scheduled (engine_run.price_one, through price()); a closed loop
    prices all of them at once (engine_run.price, through price_columns). On one run, with prompt chunks, drawn
    lengths and speculative steps, the two agree on every iteration's seconds and on its seconds by kernel class."""
    from opgraph.analysis import engine_run
    from opgraph.analysis.serve import ENGINES, Speculation
    eng = ENGINES[engine](H100)
    spec = Speculation(LLAMA.build, "llama-3-8b", drafts, (0.7,) * drafts) if drafts else None
    seen, real = {}, engine_run.schedule

    def keep(*args, **kwargs):
        seen["run"] = real(*args, **kwargs)
        return seen["run"]
    engine_run.schedule = keep
    try:
        serve(LLAMA.build, FLASH, H100, engine=eng, concurrency=12, prompt=(300, 3000), output=(20, 80),
              speculation=spec, measure=24)
    finally:
        engine_run.schedule = real
    run = seen["run"]
    pricer = IterationPricer.of(LLAMA.build, FLASH, H100)
    draft = IterationPricer.of(LLAMA.build, FLASH, H100) if drafts else None
    every = range(len(run.prompt))
    many, classes = engine_run.price(run, 0, len(run.tokens), every, pricer, draft, drafts)
    for i in range(len(run.tokens)):
        alone, by_class = engine_run.price_one(run, i, every, pricer, draft, drafts)
        assert alone == pytest.approx(float(many[i]), rel=1e-12)
        assert {k: float(v[i]) for k, v in classes.items() if v[i]} == pytest.approx(
            {k: v for k, v in by_class.items() if v}, rel=1e-12)


def test_stats_of_counted_values_are_those_of_the_values_repeated():
    """The event run counts inter-token gaps by value instead of listing them: its percentiles and mean are numpy's
    over the repeated list."""
    import numpy as np
    from opgraph.analysis.serve import Stats
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 300):
        values, counts = rng.random(size), rng.integers(1, 9, size)
        got, want = Stats.weighted(values, counts), Stats.of(np.repeat(values, counts))
        assert (got.p50, got.p90, got.p99) == (want.p50, want.p90, want.p99)
        assert got.mean == pytest.approx(want.mean, rel=1e-12)


def test_a_plan_that_fuses_attention_with_other_work_is_refused():
    with pytest.raises(OpgraphError, match="fuses attention with other work.*flash, unfused"):
        IterationPricer(LLAMA.build, strategy("fused"), H100)


def test_one_request_alone_is_a_static_batch_of_one():
    """Concurrency 1, a prompt within the budget, the GPU's time alone: its TTFT is the prefill of its prompt and its
    TPOT the mean of the decode steps at contexts P..P+G-2, as `generate` gives them for a batch of one (the
    iteration's head skips only the gather of the last position, a few kilobytes)."""
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=700, output=40, warmup=2, measure=3,
              engine=bare(vllm(H100)))
    g = estimate(LLAMA.build, FLASH, H100, batch=1, prompt=700, output=40)
    assert s.ttft.mean == pytest.approx(g.ttft_s, rel=1e-3)
    assert s.tpot.mean == pytest.approx(g.tpot_s, rel=1e-9)
    assert s.e2e.mean == pytest.approx(g.total_s, rel=1e-3)
    assert s.tokens_per_s == pytest.approx(40 / s.e2e.mean, rel=1e-3)


def test_a_prompts_iteration_takes_at_least_its_kernels_launch_time():
    """The same request under vLLM with 75 µs a kernel (its fitted figure is a constant of its own): its prompt's
    iteration is launched kernel by kernel, 515 launches, 38.6 ms, longer than the 700 tokens' prefill on an H100, so
    that is its TTFT; its decode steps replay a CUDA graph and keep the GPU's time."""
    fitted = vllm(H100)
    assert fitted.host_launch_s > 0 and "B200 and GB200" in fitted.host_launch_source
    engine = attrs.evolve(fitted, host_launch_s=75e-6)
    assert IterationPricer(LLAMA.build, FLASH, H100).launches == FLASH_KERNELS == 515
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=700, output=40, warmup=2, measure=3, engine=engine)
    g = estimate(LLAMA.build, FLASH, H100, batch=1, prompt=700, output=40)
    assert g.ttft_s < 515 * 75e-6
    assert s.ttft.mean == pytest.approx(515 * 75e-6, rel=1e-12)
    assert s.tpot.mean == pytest.approx(g.tpot_s, rel=1e-9)
    # tensor parallelism adds two all-reduces a layer, the embedding's all-reduce and the logits' all-gather
    tp8 = IterationPricer(lambda ph: LLAMA.build(ph, BuildOptions(tp=8)), FLASH, H100)
    assert tp8.launches == 32 * 18 + 5
    assert any("at least its kernels x 75 µs" in n for n in s.notes)
    given = opgraph("serve", "--concurrency", "1", "--prompt", "700", "--output", "4", "--fusion", "flash",
                    "--host-launch-us", "200", "--format", "json")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["ttft_s"] == pytest.approx(515 * 200e-6, rel=1e-12)
    refused = opgraph("serve", "--concurrency", "1", "--prompt", "700", "--output", "4", "--host-launch-us", "-1")
    assert refused.returncode != 0 and "--host-launch-us must be" in refused.stderr


def test_the_launch_time_meets_the_engines_own_time_as_it_schedules():
    """A prompt's iteration of 1 ms on the GPU and 1,000 launches of 2 µs: 2 ms; with 3 ms of the engine's own time an
    iteration, async scheduling hides the shorter (3 ms), sync adds it (5 ms); a decode-only iteration (no launches)
    keeps its 1 ms, or 4 ms sync."""
    engine = attrs.evolve(bare(vllm(H100)), host_launch_s=2e-6)
    assert engine.wall(1e-3, 1000) == pytest.approx(2e-3)
    assert engine.wall(1e-3, 0) == 1e-3
    hosted = attrs.evolve(engine, overhead_s=3e-3)
    assert hosted.wall(1e-3, 1000) == pytest.approx(3e-3)
    sync = attrs.evolve(hosted, scheduling="sync")
    assert sync.wall(1e-3, 1000) == pytest.approx(5e-3) and sync.wall(1e-3) == pytest.approx(4e-3)
    import numpy as np
    assert list(engine.wall(np.array([1e-3, 1e-3, 3e-3]), np.array([1000, 0, 1000]))) == pytest.approx(
        [2e-3, 1e-3, 3e-3])


def test_a_long_prompt_is_prefilled_in_chunks_of_the_token_budget():
    """5,000 tokens under a 2,048-token budget: three iterations, chunks 2,048 + 2,048 + 904 over 0, 2,048 and
    4,096 cached tokens; the last samples the first token."""
    engine = vllm(H100)
    import attrs
    small = attrs.evolve(engine, max_batched_tokens=2048)
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=5000, output=2, engine=small, warmup=1, measure=2)
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    ttft = sum(max(pricer.price([], [chunk], sampling=int(last)).expected_s, least(small))
               for chunk, last in (((2048, 0), False), ((2048, 2048), False), ((904, 4096), True)))
    assert s.ttft.mean == pytest.approx(ttft, rel=1e-12)


def test_a_closed_loop_of_fixed_lengths_runs_desynchronized():
    """C = 8 requests of 1,024 + 256 tokens start spread over their outputs (request i has made i x 256 / 8 tokens),
    as a benchmark's loop drifts apart: every iteration advances each running request one token, so the newcomers
    stay 32 iterations apart, and each is prefilled alone, beside the 7 others' decodes. It is sent when the request
    it replaces has finished, after vLLM has built the next iteration (the client's turnaround) and, scheduling
    async, the one after it too: it waits those two, the 7 others decoding alone, and is prefilled in the third. Its
    TTFT is those three iterations, priced between the decodes at the shortest and the longest contexts; were they
    synchronized, all 8 prompts would share one iteration and take over 3 times as long."""
    from opgraph.analysis.engine_run import TURNAROUND
    waited = TURNAROUND + vllm(H100).admission_lag
    assert waited == 2
    s = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=1024, output=256)
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    low, high = (waited * pricer.price([c] * 7).expected_s
                 + max(pricer.price([c] * 7, [(1024, 0)], sampling=8).expected_s, least(vllm(H100)))
                 for c in (1024, 1024 + 254))
    assert low <= s.ttft.p50 and s.ttft.p99 <= high
    assert s.tokens_per_iteration.p50 == 8 and s.tokens_per_iteration.p99 == 1024 + 7
    together = pricer.price([], [(1024, 0)] * 8).expected_s
    assert s.ttft.mean < together / 3


def test_throughput_obeys_littles_law():
    """In a closed loop of C requests, each G tokens long over E seconds, the steady state emits C x G / E tokens
    a second."""
    c, g = 24, 64
    s = serve(LLAMA.build, FLASH, H100, concurrency=c, prompt=512, output=g, measure=96)
    assert s.tokens_per_s == pytest.approx(c * g / s.e2e.mean, rel=0.05)
    assert s.tokens_per_s_per_gpu == s.tokens_per_s and s.tokens_per_s_per_user == pytest.approx(1 / s.tpot.mean)


def test_a_concurrency_the_kv_cache_cannot_hold_says_how_many_it_can():
    with pytest.raises(OpgraphError) as e:
        serve(LLAMA.build, FLASH, H100, concurrency=1000, prompt=32000, output=1000)
    message = str(e.value)
    held = int(message.split("so at most ")[1].split(" requests")[0].replace(",", ""))
    assert 0 < held < 1000 and "blocks of 16 tokens" in message
    serve(LLAMA.build, FLASH, H100, concurrency=held, prompt=32000, output=2, warmup=0, measure=1)  # that many fit


def test_a_model_whose_weights_leave_no_room_for_the_kv_cache_says_what_fills_the_gpu():
    """Llama-3-70B on one L40S: its 70,553,706,496 parameters (the model card) in bf16 are 141.1 GB, more than the
    0.9 x 48 GiB vLLM may use; at --tp 2 each GPU holds half, still too much; the error says so and names the flags."""
    r = opgraph("serve", "llama-3-70b", "--hardware", "l40s", "--concurrency", "8", "--prompt", "1024",
                "--output", "64")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"the weights ({70_553_706_496 * 2 / 1e9:.1f} GB a GPU)" in r.stderr
    assert f"0.9 x 48 GiB ({0.9 * 48 * 2**30 / 1e9:.1f} GB)" in r.stderr and "(--tp, --pp, --ep)" in r.stderr
    half = opgraph("serve", "llama-3-70b", "--hardware", "l40s", "--tp", "2", "--concurrency", "8", "--prompt", "1024",
                   "--output", "64")
    weights = float(half.stderr.split("the weights (")[1].split(" GB a GPU")[0])
    assert half.returncode == 2 and weights == pytest.approx(70_553_706_496 * 2 / 2 / 1e9, rel=0.02)


def test_a_float32_checkpoint_is_served_in_16_bits_as_engines_load_it():
    """Gemma-2-9B's config says float32; vLLM's dtype auto serves such a model in 16 bits. On one L40S (vLLM keeps
    0.9 x 48 GiB) its 9,241,705,984 parameters take 18.5 GB in bf16, and a token's KV cache 42 layers x K and V x 8
    heads x 256 x 2 bytes = 344,064 bytes (16 to a block): about 5,000 blocks, less the largest iteration's
    activations (at most a GB). Served as stored (fp32, --dtype fp32) the weights take 37.0 GB and a block twice the
    bytes: under 860 blocks."""
    args = ("serve", "gemma-2-9b", "--hardware", "l40s", "--concurrency", "8", "--prompt", "1024", "--output", "64",
            "--format", "json")
    budget, block = 0.9 * 48 * 2**30, 16 * 42 * 2 * 8 * 256 * 2
    served = json.loads(opgraph(*args).stdout)
    high = (budget - 9_241_705_984 * 2) / block
    assert high - 1e9 / block <= served["kv_cache_blocks_per_gpu"] <= high
    assert any("checkpoint is float32; served in bf16" in n for n in served["notes"])
    stored = json.loads(opgraph(*args, "--dtype", "fp32").stdout)
    assert stored["kv_cache_blocks_per_gpu"] <= (budget - 9_241_705_984 * 4) / (2 * block)
    assert not any("float32" in n for n in stored["notes"])
    bf16 = json.loads(opgraph(*args, "--dtype", "bf16").stdout)
    assert bf16["kv_cache_blocks_per_gpu"] == served["kv_cache_blocks_per_gpu"] and bf16["tpot_s"] == served["tpot_s"]
    assert not any("float32" in n for n in json.loads(opgraph(args[0], "llama-3-8b", *args[2:]).stdout)["notes"])


def test_requests_beyond_what_runs_at_once_wait_for_room_when_queued():
    """C = 16 requests with room for K = 8 (--max-seqs): the 8 slots stay full, so the loop serves what 8 in flight
    serve, and by Little's law each request's end-to-end latency is C x G / tokens a second, the half beyond the
    running limit spent waiting (its TTFT takes in about one whole service time of a request at 8). The GPU's time
    alone, so that the iterations a slot stands empty are as long as the others."""
    eight = attrs.evolve(bare(vllm(H100)), max_seqs=8)
    alone = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=512, output=64, engine=eight, measure=200)
    queued = serve(LLAMA.build, FLASH, H100, concurrency=16, prompt=512, output=64, engine=eight, measure=200,
                   queue=True)
    # the 8 alone leave a slot empty while a replacement is on its way (2 iterations in a cycle of 63 decode steps
    # and its prompt's); queued, a waiting request takes it at once
    assert queued.tokens_per_s == pytest.approx(alone.tokens_per_s * (63 + 1 + 2) / (63 + 1), rel=0.01)
    assert queued.e2e.mean == pytest.approx(16 * 64 / queued.tokens_per_s, rel=0.03)
    # queued, a request waits about one slot's cycle: the 8 alone's end-to-end time less the 2 iterations (about a
    # TPOT each) their replacements wait, then its prompt's iteration: the 8 alone's TTFT less those 2 again
    assert queued.ttft.mean == pytest.approx(alone.ttft.mean + alone.e2e.mean - 4 * alone.tpot.mean, rel=0.05)
    assert queued.tpot.mean == pytest.approx(alone.tpot.mean, rel=0.02)
    assert any(n.startswith("queued: at most 8 of the 16 requests run at once (the running limit") for n in queued.notes)
    with pytest.raises(OpgraphError, match="give --max-seqs 16 or a lower concurrency, or --queue"):
        serve(LLAMA.build, FLASH, H100, concurrency=16, prompt=512, output=64, engine=eight)


def test_the_command_line_queues_what_the_kv_cache_cannot_hold():
    args = ("serve", "--concurrency", "400", "--prompt", "16000", "--output", "200")
    refused = opgraph(*args)
    assert refused.returncode == 2 and "requests at once; give --queue to let the others wait" in refused.stderr
    served = opgraph(*args, "--queue", "--format", "json")
    assert served.returncode == 0, served.stderr
    out = json.loads(served.stdout)
    assert any(n.startswith("queued: the KV cache holds ") for n in out["notes"]) and out["ttft_s"] > 10 * out["tpot_s"]
    assert out["preemptions"] > 0 and json.loads(opgraph(*args[:2], "8", *args[3:], "--format", "json").stdout)[
        "preemptions"] == 0


def test_an_engine_that_preempts_runs_more_than_fit_whole_and_recomputes_what_it_preempts():
    """Llama-3-70B on one H100 under vLLM, 48 requests of 1,024 -> 4,096 tokens: the KV cache holds fewer whole, but
    vLLM takes blocks as tokens come, so more run, and when the cache runs out it preempts the request admitted last,
    whose prompt and tokens so far are prefilled again when it returns. Checked: the cache is never over-full; a
    continuation's prompt is its request's prompt plus the tokens it had made, and the tokens of a request's
    segments add up to its output; more run at once than under whole-length reservation (TensorRT-LLM's: as many as
    the note says the cache holds whole), so more tokens a second and far less waiting; and Little's law holds over
    the whole loop."""
    import attrs

    from opgraph.analysis import engine_run
    build = lambda ph: models.get("llama-3-70b").build(ph, BuildOptions(tp=4))  # noqa: E731
    preempting = vllm(H100)
    reserving = attrs.evolve(preempting, preempts=False)
    load = dict(concurrency=160, prompt=1024, output=4096, measure=1600, queue=True)
    s = serve(build, FLASH, H100, engine=preempting, **load)
    whole = serve(build, FLASH, H100, engine=reserving, **load)
    assert any(n.startswith("queued: the KV cache holds ") and "times in the run" in n for n in s.notes)
    assert s.kv_used <= 1 and whole.kv_used <= 1
    held = int(next(n for n in s.notes if n.startswith("queued:")).split("holds ")[1].split(" of")[0])
    assert whole.tokens_per_iteration.p50 == held and s.tokens_per_iteration.p50 > 1.5 * held
    assert s.tokens_per_s > whole.tokens_per_s and s.ttft.mean < whole.ttft.mean / 2
    assert s.e2e.mean == pytest.approx(160 * 4096 / s.tokens_per_s, rel=0.01)
    assert whole.e2e.mean == pytest.approx(160 * 4096 / whole.tokens_per_s, rel=0.01)

    seen = {}
    real = engine_run.schedule

    def keep(*args, **kwargs):
        run = seen["run"] = real(*args, **kwargs)
        return run
    engine_run.schedule = keep
    try:
        serve(build, FLASH, H100, engine=preempting, **load)
    finally:
        engine_run.schedule = real
    run = seen["run"]
    assert run.preemptions > 0 and run.resumed
    for r in range(len(run.prompt)):
        o = run.origin[r]
        if o != r:  # a continuation: what its request had when preempted, prefilled again
            before = [x for x in range(r) if run.origin[x] == o][-1]
            made = run.prompt[r] - run.prompt[before]
            assert made >= 1 and run.output[r] == run.output[before] - made
    for o in run.finished:
        segments = [r for r in range(len(run.prompt)) if run.origin[r] == o]
        made = [run.begin[r] + run.steps[r] if run.steps[r] > 0 else 1 for r in segments]
        assert run.prompt[segments[-1]] - run.prompt[o] + made[-1] == run.output[o]


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_prompts_that_find_the_cache_full_wait_for_the_decodes_to_free_it(engine):
    """SGLang runs a waiting prompt first, but when the KV cache has no room for it the iteration decodes instead
    (and preempts), rather than doing nothing: 120 requests of Llama-3-8B of 1,024 + 8,192 tokens on one H100, where
    fewer fit whole, finish, the cache never over-full, and Little's law holds."""
    from opgraph.analysis.serve import ENGINES
    eng = ENGINES[engine](H100)
    s = serve(LLAMA.build, strategy(eng.plan), H100, engine=eng, concurrency=120, prompt=1024, output=8192,
              queue=True, measure=240)
    assert s.kv_used <= 1 and any("times in the run" in n for n in s.notes)
    assert s.e2e.mean == pytest.approx(120 * 8192 / s.tokens_per_s, rel=0.03)


def test_the_command_line(tmp_path):
    r = opgraph("serve", "--concurrency", "8", "--prompt", "512", "--output", "32", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ttft_s"] == d["ttft_s_stats"]["mean"] > 0 and d["tpot_s"] == d["tpot_s_stats"]["mean"] > 0
    assert d["fusion"] == "vllm" and d["engine"]["max_batched_tokens"] == 8192  # the engine's own kernels
    assert d["expected_tokens_per_s_per_gpu"] == d["expected_tokens_per_s"]
    text = opgraph("serve", "--concurrency", "8", "--prompt", "512", "--output", "32").stdout
    assert "time to first token" in text and "output tokens/s per GPU" in text and "EngineArgs" in text
    for args, says in ((["--engine", "tgi"], "unknown --engine 'tgi'; valid: vllm, sglang, trtllm"), (["--concurrency", "0"], "--concurrency"),
                       (["--fusion", "fused"], "fuses attention with other work"),
                       (["--concurrency", "2000"], "at most 1,024 requests at once")):
        argv = ["serve", "--concurrency", "8", "--prompt", "512", "--output", "32", *args]
        bad = opgraph(*argv)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_an_open_loop_serves_what_arrives():
    """At 2 requests a second, each a 10 ms prefill and 50 decode steps, the GPU idles most of the time: the
    deployment emits rate x output tokens a second (what arrives leaves), and a request's TTFT is close to its
    prefill alone."""
    s = serve(LLAMA.build, FLASH, H100, rate=2.0, prompt=256, output=50, measure=150)
    assert s.tokens_per_s == pytest.approx(2.0 * 50, rel=0.15)
    alone = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=256, output=50, warmup=1, measure=2)
    # at least the prefill alone (equal when nothing was waiting: the same sum, added in another order)
    assert alone.ttft.mean * (1 - 1e-12) <= s.ttft.p50 < 1.5 * alone.ttft.mean
    assert s.concurrency is None and s.rate == 2.0


def test_an_open_loop_beyond_what_the_gpu_can_serve_is_refused_with_its_rate():
    with pytest.raises(OpgraphError, match=r"--rate 500: requests arrive faster than the engine finishes them "
                                           r"\(about [\d.,]+ a second"):
        serve(LLAMA.build, FLASH, H100, rate=500, prompt=2048, output=64)


@pytest.mark.parametrize("engine, kw", [("vllm", dict(rate=2, prompt=1024, output=128)),
                                        ("vllm", dict(rate=12, prompt=(256, 2048), output=(16, 200), seed=5)),
                                        ("sglang", dict(rate=6, prompt=1024, output=64)),
                                        ("trtllm", dict(rate=6, prompt=1024, output=64))])
def test_an_open_loops_stretches_of_decodes_are_priced_as_one_iteration_after_another(engine, kw, monkeypatch):
    """An open loop prices its iterations as it schedules them (the next arrival's time depends on them); a stretch
    of decodes alone is priced at once and cut where the next arrival comes. The same run priced one iteration at a
    time (price_many withheld) gives the same requests, iterations and times (to float rounding)."""
    from opgraph.analysis import engine_run
    eng = ENGINES[engine](H100)
    fast = serve(LLAMA.build, strategy(eng.plan), H100, engine=eng, **kw)
    schedule = engine_run.schedule
    monkeypatch.setattr(engine_run, "schedule", lambda *a, price_many=None, **k: schedule(*a, **k))
    slow = serve(LLAMA.build, strategy(eng.plan), H100, engine=eng, **kw)
    assert (fast.iterations, fast.measured) == (slow.iterations, slow.measured)
    for name in ("ttft", "tpot", "itl", "e2e", "iteration"):
        for stat in ("mean", "p50", "p90", "p99"):
            assert getattr(getattr(fast, name), stat) == pytest.approx(getattr(getattr(slow, name), stat), rel=1e-9)


def test_lengths_drawn_from_a_range_are_seeded():
    a = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=(256, 1024), output=(16, 64), seed=3)
    b = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=(256, 1024), output=(16, 64), seed=3)
    c = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=(256, 1024), output=(16, 64), seed=4)
    assert a == b and a.ttft != c.ttft
    assert a.prompt == (256, 1024) and a.output == (16, 64)


@pytest.mark.parametrize("args, says", [(["--concurrency", "4", "--rate", "2"], "not allowed with argument"),
                                        (["--rate", "2", "--prompt", "10:5"], "the range 10:5 ends before it starts"),
                                        (["--rate", "2", "--prompt", "lots"], "neither a number of tokens nor a range"),
                                        (["--rate", "-1"], "--rate"),
                                        (["--rate", "2", "--queue"],
                                         "an open loop's arrivals (--rate) wait for room already"),
                                        (["--rate", "2", "--queue", "--disaggregate", "1p1d"],
                                         "an open loop's arrivals (--rate) wait for room already"),
                                        (["--concurrency", "64", "--max-batch-tokens", "32"],
                                         "64 requests decoding take 64 tokens an iteration, more than the engine's "
                                         "budget of 32")])
def test_bad_loads_and_lengths(args, says):
    r = opgraph("serve", "--prompt", "128", "--output", "8", *args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_cached_prefix_is_not_prefilled_again():
    """A 1,024-token prompt whose first 520 tokens are cached: whole blocks of 16 hold 512 of them, so the request
    prefills 512 tokens over 512 cached ones; its blocks are held once, whatever the concurrency. The GPU's time
    alone (a prompt's iteration launched kernel by kernel takes at least its launches, whatever its tokens)."""
    engine = bare(vllm(H100))
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=1024, output=8, prefix=520, warmup=1, measure=2,
              engine=engine)
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    assert s.ttft.mean == pytest.approx(pricer.price([], [(512, 512)], sampling=1).expected_s, rel=1e-12)
    assert s.prefix == 520
    whole = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=1024, output=8, warmup=1, measure=2, engine=engine)
    assert whole.ttft.mean > s.ttft.mean
    # a prefix as long as the prompt: whole blocks short of its last token (96 of 100) are cached, 4 tokens computed
    every = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=100, output=2, prefix=100, warmup=1, measure=1,
                  engine=engine)
    assert every.ttft.mean == pytest.approx(pricer.price([], [(4, 96)], sampling=1).expected_s, rel=1e-12)
    # one longer than the shortest prompt cannot be shared by every prompt
    for prompt in (100, (100, 200)):
        with pytest.raises(OpgraphError, match=r"--prefix 101: longer than the shortest prompt \(100 tokens\)"):
            serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=prompt, output=2, prefix=101, warmup=1, measure=1)


def test_the_header_says_how_much_of_the_prefix_is_cached():
    """--prefix 1,000 with 1,000-token prompts under vLLM (blocks of 16): 992 tokens cached, 62 whole blocks, the last
    token's block recomputed; under SGLang (pages of one token) 999."""
    for engine, cached in (("vllm", "992"), ("sglang", "999")):
        r = opgraph("serve", "llama-3-8b", "--engine", engine, "--concurrency", "2", "--prompt", "1000", "--output",
                    "8", "--prefix", "1000")
        assert r.returncode == 0, r.stderr
        assert f"the first 1,000 prompt tokens shared (prefix caching), {cached} of them cached" in r.stdout
        r = opgraph("serve", "llama-3-8b", "--engine", engine, "--concurrency", "2", "--prompt", "1000", "--output",
                    "8", "--prefix", "1000", "--format", "json")
        out = json.loads(r.stdout)
        assert (out["shared_prefix_tokens"], out["cached_prefix_tokens"]) == (1000, int(cached))


def test_a_chunk_cap_splits_a_prompt_below_the_budget():
    """--chunk 512 (vLLM's long_prefill_token_threshold): a 2,048-token prompt alone runs as 4 chunks of 512 over the
    tokens before each, though the 8,192-token budget would take it whole; only the last samples. Beside decodes, a
    long prompt's chunks then stall a decode less (the longest gap between two tokens falls) and its own first token
    comes later (the GPU's time alone: each prompt's iteration also takes at least its launches, which more chunks
    pay more often)."""
    import attrs
    engine = bare(vllm(H100))
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=2048, output=8, warmup=1, measure=2,
              engine=attrs.evolve(engine, chunk=512))
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    assert s.ttft.mean == pytest.approx(sum(pricer.price([], [(512, 512 * j)], sampling=int(j == 3)).expected_s
                                            for j in range(4)), rel=1e-12)
    capped, whole = (serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=6000, output=64, engine=e)
                     for e in (attrs.evolve(engine, chunk=1024), engine))
    assert capped.itl.p99 < whole.itl.p99 and capped.ttft.mean > whole.ttft.mean


def test_chunk_errors_and_what_is_said():
    for args, says in ((["--engine", "sglang"], "give --max-batch-tokens"),
                       (["--engine", "trtllm"], "caps no prompt's chunk"),
                       (["--max-batch-tokens", "1000"], "more than the token budget"),
                       (["--disaggregate", "1p1d"], "--chunk with --disaggregate")):
        r = opgraph("serve", "--concurrency", "4", "--prompt", "600", "--output", "8", "--chunk", "2048", *args)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = opgraph("serve", "--concurrency", "4", "--prompt", "6000", "--output", "8", "--chunk", "1024")
    assert r.returncode == 0 and "8,192 tokens (a prompt's at most 1,024)" in r.stdout, r.stderr
    r = opgraph("serve", "--concurrency", "4", "--prompt", "6000", "--output", "8", "--chunk", "1024", "--format",
                "json")
    assert json.loads(r.stdout)["engine"]["chunk_tokens"] == 1024


def test_a_prefix_hit_rate_caches_each_prompts_own_blocks():
    """--prefix-hit 0.3 of a 1,000-token prompt: whole blocks of 16 of its first 300 tokens, 288, are not prefilled
    again, as a 288-token cached prefix is not; but a request's cached tokens are its own, held with it, so the KV
    cache holds no more requests than without caching, where a shared prefix is held once and lets more fit."""
    engine = bare(vllm(H100))
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=1000, output=8, prefix_hit=0.3, warmup=1, measure=2,
              engine=engine)
    assert s.ttft.mean == pytest.approx(pricer.price([], [(1000 - 288, 288)], sampling=1).expected_s, rel=1e-12)
    # every prompt cached: all whole blocks short of its last token (992 of 1,000)
    every = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=1000, output=2, prefix_hit=1, warmup=1, measure=1,
                  engine=engine)
    assert every.ttft.mean == pytest.approx(pricer.price([], [(8, 992)], sampling=1).expected_s, rel=1e-12)

    def most(**cached) -> int:  # the concurrency the KV cache holds, from the refusal of one too many
        with pytest.raises(OpgraphError, match=r"so at most ([\d,]+) requests") as e:
            serve(LLAMA.build, FLASH, H100, concurrency=1_000, prompt=30_000, output=2_000, engine=vllm(H100),
                  **cached)
        return int(re.search(r"so at most ([\d,]+) requests", str(e.value))[1].replace(",", ""))
    assert most(prefix_hit=0.5) == most() < most(prefix=15_000)


def test_prefix_hit_errors():
    for args, says in ((["--prefix-hit", "1.5"], "--prefix-hit must be"),
                       (["--prefix-hit", "0.5", "--prefix", "10"], "give one"),
                       (["--prefix-hit", "0.5", "--disaggregate", "1p1d"], "--prefix-hit with --disaggregate")):
        r = opgraph("serve", "--concurrency", "4", "--prompt", "100", "--output", "8", *args)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = opgraph("serve", "--concurrency", "2", "--prompt", "1000", "--output", "8", "--prefix-hit", "0.3", "--format",
                "json")
    assert r.returncode == 0 and (json.loads(r.stdout)["prefix_hit"], json.loads(r.stdout)["hit_tokens"]) == (0.3, 288)
    for fmt in ("table", "html"):  # the page says what caching was assumed, as the text does
        r = opgraph("serve", "--concurrency", "2", "--prompt", "1000", "--output", "8", "--prefix-hit", "0.3",
                    "--format", fmt)
        assert "prefix caching: 30% of each prompt&#x27;s tokens found cached" in r.stdout.replace("'", "&#x27;")


def test_speculative_steps_with_every_draft_accepted():
    """One request, 3 drafts a step all accepted: each step is 3 draft decode iterations at contexts c, c+1, c+2 and
    one target pass of 4 queries over c cached tokens, and yields 4 tokens; 13 output tokens are the prompt's one
    and three steps, at c = P, P + 4, P + 8."""
    from opgraph.analysis.serve import Speculation
    small = models.get("qwen3-8b").build
    spec = Speculation(small, "qwen3-8b", 3, (1.0, 1.0, 1.0))
    assert spec.expected_tokens == 4
    p = 600
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=p, output=13, speculation=spec, warmup=1, measure=2)
    target, draft = IterationPricer(LLAMA.build, FLASH, H100), IterationPricer(small, FLASH, H100)
    steps = [sum(draft.price([c + j], sampling=1).expected_s for j in range(3))
             + target.price([], [(4, c)], sampling=4).expected_s for c in (p, p + 4, p + 8)]
    assert s.tpot.mean == pytest.approx(sum(steps) / 12, rel=1e-12)


def test_speculative_steps_yield_the_expected_run_of_accepted_drafts():
    from opgraph.analysis.serve import Speculation
    spec = Speculation(models.get("qwen3-8b").build, "qwen3-8b", 3, (0.8, 0.6, 0.5))
    assert spec.expected_tokens == pytest.approx(1 + 0.8 + 0.8 * 0.6 + 0.8 * 0.6 * 0.5)
    s = serve(LLAMA.build, FLASH, H100, concurrency=16, prompt=256, output=200, speculation=spec)
    # tokens a second x seconds an iteration = tokens an iteration (each is one speculative step); nearly all 16
    # requests decode in each, the rest of the time goes to prefills of 256 tokens
    assert s.tokens_per_s * s.iteration.mean / 16 == pytest.approx(spec.expected_tokens, rel=0.1)


@pytest.mark.parametrize("args, says", [(["--draft", "qwen3-8b"], "--draft needs --acceptance"),
                                        (["--acceptance", "0.5"], "give --draft MODEL too"),
                                        (["--draft", "llama-3-8b", "--acceptance", "0.5,0.4"], "2 figures for 3 draft tokens"),
                                        (["--draft", "llama-3-8b", "--acceptance", "1.5"], "--acceptance"),
                                        (["--draft", "qwen3-8b", "--acceptance", "most"], "--acceptance"),
                                        # Qwen3's 151,936 tokens are not Llama-3's 128,256: vLLM refuses the pair
                                        (["--draft", "qwen3-8b", "--acceptance", "0.7"],
                                         "its vocabulary (151,936 tokens) is not llama-3-8b's (128,256)")])
def test_bad_speculation(args, says):
    r = opgraph("serve", "--concurrency", "2", "--prompt", "128", "--output", "8", *args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("name, args", [("deepseek-v2-lite", []), ("nemotron-h-8b", []), ("gpt-oss-20b", []),
                                        ("gemma-3-12b", []), ("mixtral-8x7b", ["--ep", "8", "--dp", "8"])])
def test_every_kind_of_layer_serves(name, args):
    """MLA, Mamba-2 with attention, sinks and MoE, sliding and global layers, expert parallelism."""
    r = opgraph("serve", name, *args, "--concurrency", "4", "--prompt", "256", "--output", "16", "--hardware", "h200",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["tpot_s"] > 0 and d["ttft_s"] > 0 and d["expected_tokens_per_s"] > 0


@pytest.mark.parametrize("layers", [None, (20, 12)])
@pytest.mark.parametrize("batch, context", [(8, 1000), (64, 3000)])
def test_a_pipelines_step_is_its_pass_through_every_stage_or_p_times_its_slowest(layers, batch, context):
    """With --pp 2 the engine keeps 2 batches in flight, one a stage: a batch's step takes the sum of the stages'
    times, or 2 x the slowest stage's if that is longer. The stages' times are the report's, at one micro-batch of
    the whole batch (each stage's layers, the first's embedding and send, the last's head)."""
    build = lambda ph: LLAMA.build(ph, BuildOptions(pp=2, micro_batches=1, pp_layers=layers))  # noqa: E731
    stages = analyze(build(Phase.decode(batch, context)), FLASH, H100).stages
    times = [s.totals.expected_s for s in stages]
    it = IterationPricer(lambda ph: LLAMA.build(ph, BuildOptions(pp=2, pp_layers=layers)), FLASH, H100).price(
        [context] * batch)
    assert it.expected_s == pytest.approx(max(sum(times), 2 * max(times)), rel=1e-12)
    if layers:  # 20 layers against 12: the first stage sets the pace
        assert it.expected_s == pytest.approx(2 * times[0], rel=1e-12)


def test_pipeline_serving_runs_one_lane_a_stage_and_obeys_littles_law():
    """--pp 2 at concurrency 16: 2 lanes of 8 requests each, every GPU holding half the layers; the whole emits
    C x G / E tokens a second (Little's law over all 16), over 2 GPUs."""
    c, g = 16, 64
    build = lambda ph: LLAMA.build(ph, BuildOptions(pp=2))  # noqa: E731
    s = serve(build, FLASH, H100, concurrency=c, prompt=512, output=g, measure=96)
    assert s.concurrency == c and s.gpus == 2
    assert s.tokens_per_s == pytest.approx(c * g / s.e2e.mean, rel=0.05)
    assert s.tokens_per_s_per_gpu == pytest.approx(s.tokens_per_s / 2)
    assert any("2 batches in flight" in n and "each of 8 requests" in n for n in s.notes)


@pytest.mark.parametrize("args, message", [
    (("--concurrency", "5"), "give a multiple of 2"),
    (("--concurrency", "4", "--requests", "9"), "--requests 9: with --pp 2, give a multiple of 2"),
    (("--concurrency", "4", "--micro-batches", "4"), "--micro-batches does not apply to serving"),
    (("--concurrency", "4", "--disaggregate", "1p1d", "--micro-batches", "4"), "--micro-batches does not apply"),
    (("--concurrency", "4", "--draft", "llama-3-8b", "--acceptance", "0.5"), "speculative decoding with pipeline"),
    (("--concurrency", "4", "--draft", "mtp", "--acceptance", "0.5"), "speculative decoding with pipeline")])
def test_pipeline_serving_refuses_what_it_does_not_model(args, message):
    r = opgraph("serve", "--pp", "2", "--prompt", "256", "--output", "16", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_sglang_runs_prompts_first_in_batches_of_their_own():
    """SGLang (prefill-first, enable_mixed_chunk False): a newcomer's prompt runs in an iteration without the others'
    decodes, so its TTFT is that prompt alone after the two decode iterations of the other 3 it waits for (the one
    built when it was sent, and the one SGLang's overlap scheduler built ahead), and the decodes wait for it: their
    longest gap is the prompt's iteration plus their own decode step."""
    from opgraph.analysis.serve import sglang
    engine = sglang(H100)
    s = serve(LLAMA.build, FLASH, H100, concurrency=4, prompt=1000, output=64, engine=engine)
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    alone = max(pricer.price([], [(1000, 0)]).expected_s, least(engine))  # launched kernel by kernel
    low, high = (alone + 2 * pricer.price([c] * 3).expected_s for c in (1000, 1000 + 62))
    assert low <= s.ttft.p50 and s.ttft.p99 <= high * (1 + 1e-12)
    high = pricer.price([1000 + 62] * 4).expected_s  # then all four decode, the newcomer among them
    assert alone < s.itl.p99 <= (alone + high) * (1 + 1e-12)
    assert s.tokens_per_iteration.p99 == 1000  # never a prompt and a decode together


def test_tensorrt_llm_takes_prompts_whole():
    """TensorRT-LLM without chunked prefill: a prompt runs in one iteration or waits; one longer than the token
    budget is refused, naming the flag; the KV cache is 0.9 of what the weights and activations leave."""
    from opgraph.analysis.serve import kv_blocks, trtllm, vllm
    import attrs
    engine = trtllm(H100)
    with pytest.raises(OpgraphError, match="runs a prompt whole.*--max-batch-tokens 9000"):
        serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=9000, output=4, engine=engine)
    # two prompts of 5,000 at once under 8,192 tokens: vLLM chunks 3,192 of the second into the first's iteration,
    # TensorRT-LLM runs them one after the other
    s = serve(LLAMA.build, FLASH, H100, concurrency=2, prompt=5000, output=1, engine=engine, requests=2)
    v = serve(LLAMA.build, FLASH, H100, concurrency=2, prompt=5000, output=1, engine=vllm(H100), requests=2)
    assert s.tokens_per_iteration.p99 == 5000 and s.tokens_per_iteration.mean == 5000
    assert v.tokens_per_iteration.mean == (8192 + 1808) / 2 and v.tokens_per_iteration.p50 == (8192 + 1808) / 2
    as_vllm, _ = kv_blocks(LLAMA.build, FLASH, H100, attrs.evolve(engine, kv_share=1.0), 1000)
    blocks, _ = kv_blocks(LLAMA.build, FLASH, H100, engine, 1000)
    assert blocks == int(as_vllm * 0.9) or abs(blocks - as_vllm * 0.9) < 1


def test_the_memory_fraction_is_each_engines_own_setting():
    """--memory-fraction F sets vLLM's gpu_memory_utilization (F of the GPU's memory holds weights, activations and
    KV cache) but TensorRT-LLM's free_gpu_memory_fraction (F of what the weights and activations leave is KV cache):
    hand-derived from kv_blocks's two shares, with the weights and activations taken from the engine at share 1."""
    from opgraph.analysis.serve import kv_blocks, trtllm, vllm, with_limits
    import attrs
    whole = attrs.evolve(trtllm(H100), kv_share=1.0)
    all_free, _ = kv_blocks(LLAMA.build, FLASH, H100, whole, 1000)  # every byte the weights and activations leave
    trt = with_limits(trtllm(H100), memory_fraction=0.8)
    assert (trt.memory_fraction, trt.kv_share) == (1.0, 0.8) and "memory fraction 0.8 given" in trt.source
    blocks, _ = kv_blocks(LLAMA.build, FLASH, H100, trt, 1000)
    assert abs(blocks - all_free * 0.8) < 1
    v = with_limits(vllm(H100), memory_fraction=0.8)
    assert (v.memory_fraction, v.kv_share) == (0.8, 1.0)
    # vLLM's share takes from the whole GPU: 0.1 of its memory less than at 0.9, in blocks of its own 16 tokens
    at_09, _ = kv_blocks(LLAMA.build, FLASH, H100, vllm(H100), 1000)
    at_08, _ = kv_blocks(LLAMA.build, FLASH, H100, v, 1000)
    per_block = 16 * 2 * 32 * 8 * 128 * 2  # Llama-3-8B bf16: K and V, 32 layers, 8 KV heads of 128
    assert abs((at_09 - at_08) - 0.1 * H100.capacity / per_block) < 2


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_each_engine_serves_with_its_own_kernels_by_default(engine):
    r = opgraph("serve", "--engine", engine, "--concurrency", "4", "--prompt", "300", "--output", "8", "--format",
                "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["fusion"] == engine and d["engine"]["name"] == engine


def test_the_engines_time_per_iteration_adds_to_every_gap_under_sync_scheduling():
    """vLLM scheduling synchronously, a closed loop: every gap between two tokens of a request is one iteration, so an
    overhead o per iteration adds exactly o to TPOT; the schedule, which follows from counts alone, is unchanged. A
    figure given replaces the engine's own."""
    engine = attrs.evolve(vllm(H100), scheduling="sync", overhead_per_request_s=0.0)
    base = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=700, output=50, engine=engine, overhead_s=0.0)
    more = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=700, output=50, engine=engine, overhead_s=2e-3)
    assert more.tpot.mean == pytest.approx(base.tpot.mean + 2e-3, rel=1e-9)
    assert more.tokens_per_iteration == base.tokens_per_iteration
    assert "2,000 µs, given (--overhead-us), added to each iteration (sync scheduling" in more.notes[0]
    own = serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=700, output=50, engine=engine)
    assert own.overhead_s == engine.overhead_s > 0 and engine.overhead_source in own.notes[0]


def test_the_engines_time_for_each_request_it_runs_comes_on_top_of_its_time_per_iteration():
    """A lone request (concurrency 1): every iteration runs one request, so 20 ms an iteration and 1 ms a request
    make 21 ms of the host's. Sync, each gap is its decode step plus 21 ms; async, the host's 21 ms outlast the GPU's
    decode step, so each gap takes them; its prompt's iteration is launched kernel by kernel (515 x 75 µs, given:
    longer still). The command line gives the same, and the JSON carries the figure."""
    gpu = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=700, output=40, warmup=2, measure=3)
    host = {"overhead_s": 20e-3, "overhead_per_request_s": 1e-3}
    sync = attrs.evolve(vllm(H100), scheduling="sync", **host)
    s = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=700, output=40, warmup=2, measure=3, engine=sync)
    assert s.tpot.mean == pytest.approx(gpu.tpot.mean + 21e-3, rel=1e-9)
    assert "20,000 µs, given" not in s.notes[0] and "; and 1,000.0 µs for each request it runs" in s.notes[0]
    a = serve(LLAMA.build, FLASH, H100, concurrency=1, prompt=700, output=40, warmup=2, measure=3,
              engine=attrs.evolve(vllm(H100), host_launch_s=75e-6, **host))
    assert gpu.tpot.mean < 21e-3 and a.tpot.mean == pytest.approx(21e-3, rel=1e-12)
    assert a.ttft.mean == pytest.approx(515 * 75e-6, rel=1e-12)
    r = opgraph("serve", "--concurrency", "1", "--prompt", "700", "--output", "40", "--fusion", "flash",
                "--overhead-us", "20000", "--overhead-per-request-us", "1000", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["tpot_s"] == pytest.approx(21e-3, rel=1e-9) and d["overhead_s_per_request"] == 1e-3
    bad = opgraph("serve", "--concurrency", "1", "--prompt", "700", "--output", "4", "--overhead-per-request-us", "x")
    assert bad.returncode == 2 and "--overhead-per-request-us" in bad.stderr


@pytest.mark.parametrize("engine, host_s", [("vllm", 3e-3 + 50e-6), ("trtllm", 2e-3 + 50e-6), ("sglang", 0.0)])
def test_each_engine_serves_with_its_own_fitted_time_per_iteration_by_default(engine, host_s):
    """The engines' own time per iteration by default (fitted on B200 rows: vLLM 3 ms + 50 µs a request it runs,
    TensorRT-LLM 2 ms + 50 µs, SGLang none): a lone request of Llama-3-8B at TP 8 on B200s decodes in steps whose
    kernels take under 2 ms, so under async scheduling each gap between its tokens takes the host's 3.05 ms
    (vLLM), 2.05 ms (TensorRT-LLM), or the GPU's own time (SGLang: the same as with both figures 0)."""
    args = ("serve", "llama-3-8b", "--engine", engine, "--hardware", "b200", "--tp", "8", "--concurrency", "1",
            "--prompt", "500", "--output", "100", "--format", "json")
    d = json.loads(opgraph(*args).stdout)
    gpu = json.loads(opgraph(*args, "--overhead-us", "0", "--overhead-per-request-us", "0").stdout)
    assert gpu["tpot_s"] < 2e-3  # the premise
    assert d["tpot_s"] == pytest.approx(host_s or gpu["tpot_s"], rel=1e-9)
    assert d["overhead_s_per_iteration"] + d["overhead_s_per_request"] == pytest.approx(host_s, abs=1e-15)


def test_async_scheduling_hides_the_engines_time_behind_the_gpus_where_shorter():
    """Every engine's default, async scheduling: the host prepares the next iteration while the GPU runs this one, so
    an iteration takes the longer of the two. 2 ms is less than the smallest iteration here (one decode of Llama-3-8B
    reads its 16 GB of weights: more than 2 ms at 3.35 TB/s), so nothing changes; 1 s is more than the largest, so
    every iteration takes 1 s: a closed loop's every gap is one iteration (TPOT 1 s) and a 700-token prompt's first
    token comes at the end of the third iteration after it was sent (TTFT 3 s): the one built as it was sent and the
    one built ahead of that pass without it."""
    assert vllm(H100).scheduling == "async"
    assert IterationPricer(LLAMA.build, FLASH, H100).price([1]).expected_s > 2e-3  # the premise, priced
    engine = attrs.evolve(vllm(H100), overhead_per_request_s=0.0)  # the figure per iteration alone
    base, hidden, bound = (serve(LLAMA.build, FLASH, H100, concurrency=8, prompt=700, output=50, overhead_s=o,
                                 engine=engine) for o in (0.0, 2e-3, 1.0))
    assert hidden.tpot == base.tpot and hidden.ttft == base.ttft and hidden.iteration == base.iteration
    assert "hidden behind each iteration's GPU time where shorter (async scheduling" in hidden.notes[0]
    assert bound.tpot.mean == pytest.approx(1.0, rel=1e-12) and bound.ttft.mean == pytest.approx(3.0, rel=1e-12)
    assert bound.iteration.p99 == pytest.approx(1.0, rel=1e-12) and bound.iteration.mean == pytest.approx(1.0)
    assert bound.tokens_per_iteration == base.tokens_per_iteration  # the schedule follows from counts alone


def test_a_benchmark_counts_every_request_from_the_first_wave():
    """--requests N as vLLM's bench serve runs it: the first C requests at once. Four prompts of 1,000 tokens fit one
    8,192-token iteration, so each of the first wave's TTFT is that iteration; all N are counted, and the output
    rate is N x G over the whole run (its iterations' time)."""
    pricer = IterationPricer(LLAMA.build, FLASH, H100)
    wave = pricer.price([], [(1000, 0)] * 4).expected_s
    s = serve(LLAMA.build, FLASH, H100, concurrency=4, requests=4, prompt=1000, output=16)
    assert s.measured == 4 and s.ttft.mean == pytest.approx(wave, rel=1e-12) and s.ttft.p99 == s.ttft.p50
    s = serve(LLAMA.build, FLASH, H100, concurrency=4, requests=12, prompt=1000, output=16)
    assert s.measured == 12 and s.requests == 12
    assert s.tokens_per_s * s.iteration.mean * s.iterations == pytest.approx(12 * 16, rel=1e-9)
    assert serve(LLAMA.build, FLASH, H100, concurrency=8, requests=3, prompt=100, output=4).measured == 3
    with pytest.raises(OpgraphError, match="--requests runs a closed loop.*--concurrency"):
        serve(LLAMA.build, FLASH, H100, rate=1.0, requests=5, prompt=100, output=4)


def test_the_command_line_runs_a_benchmark():
    r = opgraph("serve", "--concurrency", "4", "--requests", "8", "--prompt", "300", "--output", "8", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["benchmark_requests_per_replica"] == 8 and d["requests_measured"] == 8
    text = opgraph("serve", "--concurrency", "4", "--requests", "8", "--prompt", "300", "--output", "8").stdout
    assert "benchmark: 8 requests per replica, 4 in flight" in text
    assert "measured: 8 requests over" in text and "every one from the start (no warm-up)" in text
    steady = opgraph("serve", "--concurrency", "4", "--prompt", "300", "--output", "8").stdout
    assert "after the warm-up" in steady and "no warm-up" not in steady


def test_draft_heads_made_of_the_target():
    """--draft mtp | eagle: one more layer of the target's kind, with its embedding and head. Llama-3-8B's EAGLE head
    counted by hand as vLLM's llama_eagle.py builds it: fc joining the embedding and the hidden state (2d x d, no
    bias), one decoder layer without its input norm (q, k, v, o; gate, up, down; the post-attention norm), the
    embedding and the head, no final norm. DeepSeek-V3's MTP module is 11.5B parameters besides the shared 0.9B
    embedding and 0.9B head (its README_WEIGHTS.md): eh_proj (2d x d) and its two norms included."""
    d = 4096
    layer = d * (d * 2 + 1024 * 2) + 3 * d * 14336 + d
    assert LLAMA.draft_head("eagle").build(Phase.decode(1, 1)).params() == 2 * d * d + layer + 2 * 128256 * d
    v3 = models.get("deepseek-v3")
    mtp = v3.draft_head("mtp").build(Phase.decode(1, 1)).params()
    assert mtp == pytest.approx(11.5e9 + 2 * 129280 * 7168, rel=0.01)
    # exactly: the target's MoE layer, eh_proj [d, 2d], enorm and hnorm, the embedding, the head and its norm
    moe_layer = next(b for b in v3.build(Phase.decode(1, 1)).blocks if b.name == "moe_layer").graph.params()
    assert mtp == moe_layer + 2 * 7168 ** 2 + 2 * 7168 + 2 * 129280 * 7168 + 7168
    r = opgraph("serve", "--concurrency", "4", "--prompt", "300", "--output", "32", "--draft", "eagle",
                "--acceptance", "0.7")
    assert r.returncode == 0 and "speculative decoding: draft eagle proposes 3 tokens" in r.stdout, r.stderr


def test_a_draft_heads_join_counted_by_hand():
    """The join a draft head runs first, for T tokens of width d (DeepSeek-V3 section 2.2; vLLM deepseek_mtp.py and
    llama_eagle.py): MTP's enorm and hnorm (a d-wide scale each), then the [2d -> d] projection, 2 x T x 2d x d
    FLOPs, its bf16 weight 2d x d x 2 bytes on every GPU (a replicated nn.Linear, unquantized beside DeepSeek's fp8
    layers, as its checkpoint keeps it); EAGLE's fc the same projection without the norms."""
    d, t = 7168, 8
    for tp in (1, 8):
        head = models.get("deepseek-v3").draft_head("mtp").build(Phase.decode(t, 1), BuildOptions(tp=tp))
        join = next(b.graph for b in head.blocks if b.name == "draft_join")
        proj = join.ops["eh_proj"]
        assert proj.flops == 2 * t * 2 * d * d
        assert join.weight_bytes() == 2 * d * d * 2 + 2 * d * 2
        assert [op.name for op in join.ops.values()] == ["enorm", "hnorm", "join", "eh_proj"]
    eagle = next(b.graph for b in LLAMA.draft_head("eagle").build(Phase.decode(t, 1)).blocks if b.name == "draft_join")
    assert [op.name for op in eagle.ops.values()] == ["join", "fc"] and eagle.ops["fc"].flops == 2 * t * 2 * 4096 ** 2


def test_an_mtp_head_the_checkpoint_lacks_is_said():
    """The multi-token-prediction layers a checkpoint ships come from its config (num_nextn_predict_layers;
    Qwen3-Next's config names none though its checkpoint has one, which vLLM and SGLang take as 1), and `--draft
    mtp` on a model without them says that the head it prices is one the model would need trained."""
    shipped = {name: models.get(name).mtp_layers for name in ("deepseek-v3", "glm-4.5", "qwen3-next-80b-a3b",
                                                              "deepseek-v2-lite", "llama-3-8b")}
    assert shipped == {"deepseek-v3": 1, "glm-4.5": 1, "qwen3-next-80b-a3b": 1, "deepseek-v2-lite": 0,
                       "llama-3-8b": 0}
    load = ("--concurrency", "4", "--prompt", "300", "--output", "16", "--acceptance", "0.7")
    said = "ships no multi-token-prediction module"

    def notes(*argv):
        r = opgraph("serve", *argv, *load, "--format", "json")
        assert r.returncode == 0, r.stderr
        return [n for n in json.loads(r.stdout)["notes"] if said in n]

    assert notes("llama-3-8b", "--draft", "mtp")
    assert not notes("qwen3-next-80b-a3b", "--tp", "4", "--draft", "mtp")
    assert not notes("llama-3-8b", "--draft", "eagle")
    planned = opgraph("plan", "llama-3-8b", "--gpus", "1", "--draft", "mtp", *load)
    assert planned.returncode == 0 and said in planned.stdout, planned.stderr


def test_a_draft_head_without_attention():
    """Nemotron-H's last layer is an MLP alone, so its `mtp` head attends to nothing and keeps no cache: its steps
    have no attention work to look up by context (the traced lookup once generated `return (,)`)."""
    head = models.get("nemotron-h-8b").draft_head("mtp").build(Phase.decode(1, 1))
    assert [op.name for op in head.blocks[0].graph.ops.values()] == ["norm", "up_proj", "act", "down_proj",
                                                                     "mixer_residual"]
    assert not {Role.KV_CACHE, Role.STATE} & {t.role for b in head.blocks for t in b.graph.tensors.values()}
    r = opgraph("serve", "nemotron-h-8b", "--concurrency", "4", "--prompt", "300", "--output", "32", "--draft", "mtp",
                "--acceptance", "0.7", "--hardware", "h200")
    assert r.returncode == 0 and "speculative decoding: draft mtp proposes 3 tokens" in r.stdout, r.stderr


def test_a_whole_prompt_that_cannot_fit_beside_the_decodes_is_said():
    from opgraph.analysis.serve import trtllm
    s = serve(LLAMA.build, FLASH, H100, concurrency=2, prompt=8192, output=4, engine=trtllm(H100), warmup=0,
              measure=2)
    assert any("--max-batch-tokens 8193 or more" in n for n in s.notes)


def test_a_kernels_latency_verdict_and_a_pipelines_note_split_no_trace():
    """Whether a kernel is latency-bound, and whether a batch splits evenly among micro-batches, change the words a
    report shows, not a time: pricing mixes from 2 to 4,097 tokens traces the token-wise work and the head once each
    (a serving plan traced them again wherever a verdict flipped), and every replay equals a fresh pricing."""
    build = lambda ph: LLAMA.build(ph, BuildOptions(pp=2))  # noqa: E731
    pricer = IterationPricer(build, FLASH, H100)
    sizes = (2, 3, 5, 17, 100, 1001, 4097)
    replayed = [pricer.price_mix(n, n, [(n, (1, 512))]).expected_s for n in sizes]
    assert len(pricer._tokens.traced.regimes) == 1 and len(pricer._head.traced.regimes) == 1
    fresh = [IterationPricer(build, FLASH, H100).price_mix(n, n, [(n, (1, 512))]).expected_s for n in sizes]
    assert replayed == pytest.approx(fresh, rel=1e-12)


def _joins(engine, concurrency=4):
    """Iterations from each measured replacement's arrival (the end of the iteration its predecessor finished in) to
    the iteration that prefills it (1: the next one), in a closed loop of 100 + 400 tokens."""
    from opgraph.analysis import engine_run
    run = engine_run.schedule(engine, 0, 10**6, 0, lambda p: 0, lambda: (100, 400), lambda tokens: None,
                              concurrency=concurrency, requests=None, warmup=concurrency, measure=12)
    return {run.first[r] - run.arrival[r] for r in range(len(run.prompt)) if run.arrival[r] >= 0 <= run.first[r]}


def test_a_replacement_misses_the_iterations_built_before_it_arrives():
    """The client sends a replacement once its predecessor's response is back, after the engine has built the next
    iteration: it joins the one after (TURNAROUND). vLLM's and SGLang's async scheduling build one more ahead (k + 1
    while k runs), so it joins the third; TensorRT-LLM's overlap scheduler admits from fresh arrivals (no lookahead),
    and sync scheduling builds nothing ahead: the second. An engine with nothing running takes it at once."""
    import attrs
    from opgraph.analysis.engine_run import TURNAROUND
    from opgraph.analysis.serve import sglang, trtllm
    assert TURNAROUND == 1
    assert _joins(vllm(H100)) == {3} and vllm(H100).admission_lag == 1
    assert _joins(attrs.evolve(sglang(H100), max_batched_tokens=8192)) == {3}
    assert _joins(trtllm(H100)) == {2} and _joins(attrs.evolve(vllm(H100), scheduling="sync")) == {2}
    assert _joins(vllm(H100), concurrency=1) == {1}


def test_an_open_loops_arrival_misses_the_iteration_built_ahead_under_async_scheduling():
    """Iterations of 1 s each; a request arrives at 0.5 s to an idle engine and is prefilled at once (TTFT 1 s), then
    decodes for 400 iterations; the next arrives at 11 s, during the iteration 10.5-11.5 s. Scheduling sync, the
    engine builds the iteration 11.5-12.5 s after that one ends, with it: TTFT 1.5 s. vLLM's async scheduling built
    that iteration while 10.5-11.5 s ran, before it came: it joins 12.5-13.5 s, TTFT 2.5 s."""
    import attrs
    from opgraph.analysis import engine_run

    def ttfts(engine):
        times = iter([0.5, 11.0, 1e9])
        run = engine_run.schedule(engine, 0, 10**6, 0, lambda p: 0, lambda: (100, 400), lambda tokens: None,
                                  concurrency=None, requests=None, warmup=0, measure=2,
                                  arrivals=times, price_one=lambda run, i, decoding: 1.0)
        return [run.end_time[run.first[r]] - run.arrival[r] for r in (0, 1)]

    assert ttfts(attrs.evolve(vllm(H100), scheduling="sync")) == [1.0, 1.5]
    assert ttfts(vllm(H100)) == [1.0, 2.5]


def test_figures_given_replace_the_engines_own_each_with_its_source():
    """Engine.given, the one place host figures replace an engine's own (the command line's flags, a fit's grid, a
    measured row's scheduling column): each figure given and its source set, the rest kept; nothing given, the same
    engine back."""
    own = vllm(H100)
    assert own.given(lambda name: "x", overhead_s=None, scheduling=None) is own
    got = own.given(lambda name: f"given for {name}", overhead_s=0.004, scheduling="sync")
    assert (got.overhead_s, got.overhead_source) == (0.004, "given for overhead_s")
    assert (got.scheduling, got.scheduling_source) == ("sync", "given for scheduling")
    assert (got.host_launch_s, got.host_launch_source) == (own.host_launch_s, own.host_launch_source)
    assert (got.overhead_per_request_s, got.overhead_per_request_source) == (own.overhead_per_request_s,
                                                                             own.overhead_per_request_source)


def test_csv_is_one_row_of_the_json_figures():
    """`--format csv` gives scripts what JSON does, as one row that stacks with other runs': each nested figure under
    its joined name (ttft_s_stats_p90, engine_name, share_of_iteration_time_by_class_gemm), a length range as 'low;high',
    floats exact (they read back equal to JSON's), and no prose (notes). Disaggregated serving names each pool's
    figures by its role (pools_prefill_layout)."""
    import csv
    import io

    args = ("serve", "--concurrency", "8", "--prompt", "512:1024", "--output", "32", "--seed", "3")
    d = json.loads(opgraph(*args, "--format", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(opgraph(*args, "--format", "csv").stdout)))
    assert len(rows) == 1
    row = rows[0]
    for name, want in (("ttft_s", d["ttft_s"]), ("tpot_s", d["tpot_s"]), ("ttft_s_stats_p90", d["ttft_s_stats"]["p90"]),
                       ("e2e_s_stats_p99", d["e2e_s_stats"]["p99"]),
                       ("expected_tokens_per_s_per_gpu", d["expected_tokens_per_s_per_gpu"]),
                       ("expected_tokens_per_s_per_user", d["expected_tokens_per_s_per_user"]),
                       ("kv_cache_peak_use", d["kv_cache_peak_use"]),
                       ("share_of_iteration_time_by_class_gemm", d["share_of_iteration_time_by_class"]["gemm"])):
        assert float(row[name]) == want, name
    assert row["engine_name"] == "vllm" and int(row["engine_max_batched_tokens"]) == 8192
    assert row["prompt_tokens"] == "512;1024" and int(row["requests_measured"]) == d["requests_measured"]
    assert "notes" not in row and "units_*_s" not in row
    split = ("serve", "--disaggregate", "1p1d", "--concurrency", "8", "--prompt", "512", "--output", "32")
    d = json.loads(opgraph(*split, "--format", "json").stdout)
    row = next(csv.DictReader(io.StringIO(opgraph(*split, "--format", "csv").stdout)))
    assert row["pools_prefill_layout"] == d["pools"][0]["layout"] and row["pools_decode_layout"] == d["pools"][1]["layout"]
    assert float(row["pools_decode_utilization"]) == d["pools"][1]["utilization"] and float(row["ttft_s"]) == d["ttft_s"]


def test_an_open_loops_json_is_the_same_in_every_process():
    """The host's share of the iterations' time is what the kernel classes leave: summed exactly (fsum), it does not
    follow the classes' order, which follows string hashing (these two hash seeds once gave it two last digits)."""
    import os
    import subprocess
    import sys

    outs = []
    for seed in ("1", "3"):
        r = subprocess.run([sys.executable, "-m", "opgraph", "serve", "gpt-oss-20b", "--rate", "2", "--prompt", "1024",
                            "--output", "256", "--format", "json"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": seed}, cwd=NEUTRAL)  # the installed package
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert json.loads(outs[0])["share_of_iteration_time_by_class"]["host"] > 0
    assert outs[0] == outs[1]
