"""Disaggregated serving (issue 17 §4): prefill and decode workers apart, the KV cache moved between them. Expected
values: the iterations priced directly, the KV cache counted by hand from the model's shapes, the links' bandwidths
from the spec, and Little's law."""

import json

import pytest

from opgraph import hardware, models, strategy
from opgraph.analysis.disaggregated import Side, disaggregated
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.serve import vllm
from opgraph.errors import OpgraphError
from userland import opgraph

H100 = hardware.load("h100-sxm")
LLAMA = models.get("llama-3-8b")
PLAN = strategy("vllm")
KV_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # K and V, 32 layers, 8 KV heads of 128, bf16: one GPU holds it all at TP 1
# the vllm plan runs Llama-3-8B in 10 kernels a layer and 3 more (embedding, final norm, lm_head); a prompt's
# iteration is launched kernel by kernel, so it takes at least that many of the host's launches (vLLM's figure)
LAUNCHES = 32 * 10 + 3


def prompt_s(pricer, launches: int = LAUNCHES) -> float:
    """One 1,000-token prompt's iteration alone: its kernels' time, or its launches' if longer."""
    return max(pricer.price_mix(1000, 1, [(1, (1000, 0))]).expected_s, launches * vllm(H100).host_launch_s)


def side(workers: int) -> Side:
    return Side(IterationPricer(LLAMA.build, PLAN, H100), vllm(H100), workers, "1 GPU", 1, 1, KV_PER_TOKEN)


def test_decode_bound_deployment_is_its_decode_iteration_plus_a_prompt_and_its_transfer():
    """2 prefill and 2 decode GPUs in one node, 16 requests per decode GPU of 1,000 + 200 tokens: TPOT is a
    decode-only iteration of 16 at the mean context 1,099; TTFT one prompt alone plus its KV cache over NVLink."""
    d = disaggregated("llama-3-8b", H100, side(2), side(2), concurrency=16, prompt=1000, output=200, same_node=True)
    pricer = IterationPricer(LLAMA.build, PLAN, H100)
    tpot = pricer.price_mix(16, 16, [(16, (1, 1099))]).expected_s
    assert pricer.launches == LAUNCHES
    prompt = prompt_s(pricer)
    transfer = 1000 * KV_PER_TOKEN / H100.interconnect.link_bandwidth
    assert d.bound == "decode" and d.decoding == 16 and d.waiting_s == 0
    assert d.tpot_s == tpot and d.kv_bytes_per_gpu == 1000 * KV_PER_TOKEN
    assert d.ttft_s == pytest.approx(prompt + transfer, rel=1e-12) and d.link == "NVLink"
    assert d.requests_per_s == pytest.approx(32 / (prompt + transfer + 199 * tpot), rel=1e-12)  # Little's law
    assert d.tokens_per_s_per_gpu == pytest.approx(d.requests_per_s * 200 / 4, rel=1e-12)


def test_a_prefill_pool_too_small_bounds_the_rate_and_requests_wait_for_it():
    """One prefill GPU for 8 decode GPUs of 64 requests each, 4,000-token prompts: the prefill GPU runs two prompts
    an iteration (8,192 // 4,000) and its rate bounds; the decode GPUs hold fewer requests, and the rest wait, as
    Little's law on the whole loop says."""
    d = disaggregated("llama-3-8b", H100, side(1), side(8), concurrency=64, prompt=4000, output=100, same_node=False)
    pricer = IterationPricer(LLAMA.build, PLAN, H100)
    capacity = 2 / pricer.price_mix(8000, 2, [(2, (4000, 0))]).expected_s
    assert d.bound == "prefill" and d.requests_per_s == pytest.approx(capacity, rel=1e-12)
    assert d.decoding < 64 and d.waiting_s > 0 and d.link == "network"
    assert 8 * 64 == pytest.approx(d.requests_per_s * (d.ttft_s + 99 * d.tpot_s), rel=1e-9)
    assert d.prefill.utilization == pytest.approx(1.0) and d.decode.utilization < 1


def test_pools_of_different_gpus_price_each_on_its_own_and_move_the_cache_over_the_slower_network():
    """Prompts on H100s, decoding on H200s: each pool's iterations are its own GPU's (the H200 reads at 4.8 TB/s, so
    its decode iteration differs from the H100's), and the KV cache crosses the network at the slower end's rate
    (they cannot share a node's NVLink)."""
    h200 = hardware.load("h200")
    decode = Side(IterationPricer(LLAMA.build, PLAN, h200), vllm(h200), 1, "1 GPU", 1, 1, KV_PER_TOKEN, h200)
    d = disaggregated("llama-3-8b", H100, side(1), decode, concurrency=16, prompt=1000, output=200, same_node=False)
    on_h200 = IterationPricer(LLAMA.build, PLAN, h200).price_mix(16, 16, [(16, (1, 1099))]).expected_s
    on_h100 = IterationPricer(LLAMA.build, PLAN, H100).price_mix(16, 16, [(16, (1, 1099))]).expected_s
    assert d.tpot_s == on_h200 != on_h100
    slower = min(H100.interconnect.network_bandwidth, h200.interconnect.network_bandwidth)
    assert d.transfer_s == pytest.approx(1000 * KV_PER_TOKEN / slower, rel=1e-12) and d.link == "network"
    assert (d.prefill.hardware, d.decode.hardware) == (H100, h200)
    with pytest.raises(Exception, match="cannot share a node's NVLink"):
        disaggregated("llama-3-8b", H100, side(1), decode, concurrency=16, prompt=1000, output=200, same_node=True)
    r = opgraph("serve", "--disaggregate", "1p1d", "--decode", "tp=1,gpu=h200", "--concurrency", "8", "--prompt",
                "500", "--output", "50", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert [p["hardware"] for p in json.loads(r.stdout)["pools"]] == ["h100-sxm", "h200"]
    bad = opgraph("serve", "--disaggregate", "1p1d", "--decode", "gpu=nope", "--concurrency", "8", "--prompt", "500",
                  "--output", "50")
    assert bad.returncode == 2 and "--decode gpu=nope: unknown hardware 'nope'" in bad.stderr


def test_the_command_line_serves_disaggregated():
    r = opgraph("serve", "--disaggregate", "1p2d", "--concurrency", "8", "--prompt", "500", "--output", "50",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [p["workers"] for p in d["pools"]] == [1, 2] and d["gpus"] == 3 and d["link"] == "NVLink"
    assert d["ttft_s"] == pytest.approx(d["waiting_s"] + d["prefill_s"] + d["transfer_s"], rel=1e-12)
    events = d["event_run"]  # the same load request by request: percentiles, its means near the closed form's
    assert set(events["ttft_s_stats"]) == {"mean", "p50", "p90", "p99"} and events["requests_measured"] >= 64
    assert events["tpot_s_stats"]["mean"] == pytest.approx(d["tpot_s"], rel=0.02)
    text = opgraph("serve", "deepseek-v2-lite", "--disaggregate", "1p1d", "--prefill", "tp=2", "--decode",
                   "dp=2,ep=2", "--concurrency", "8", "--prompt", "500", "--output", "50").stdout
    assert "disaggregated 1p1d" in text and "dp 2 x ep 2" in text and "KV-cache transfer" in text
    assert "Request by request (the event run" in text and "p99" in text
    big = opgraph("serve", "llama-3-70b", "--disaggregate", "1p1d", "--prefill", "tp=4", "--decode", "tp=4",
                  "--concurrency", "5000", "--prompt", "4000", "--output", "4000")
    assert big.returncode == 2 and "a decode replica holds" in big.stderr and "give at most" in big.stderr
    for args, says in ((["--disaggregate", "2x1"], "is not XpYd"),
                       (["--disaggregate", "1p1d", "--prefill", "tp8"], "is not a layout"),
                       (["--disaggregate", "1p1d", "--requests", "4"], "give at least 8"),
                       (["--disaggregate", "1p1d", "--batch-wait", "0.5,4"], "--batch-wait does not apply"),
                       (["--disaggregate", "1p1d", "--max-seqs", "4"], "a decode replica holds 4 requests"),
                       (["--disaggregate", "1p1d", "--max-batch-tokens", "4"], "more tokens than the engine's budget"),
                       (["--prefill", "tp=2"], "give --disaggregate XpYd"),
                       (["--disaggregate", "1p1d", "--prompt", "200:100"], "ends before it starts"),
                       (["--disaggregate", "1p1d", "--output", "1:1"], "--output")):
        argv = ["serve", "--concurrency", "8", "--prompt", "500", "--output", "50", *args]
        bad = opgraph(*argv)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_a_one_token_prompt_moves_one_tokens_cache():
    """Llama-3-8B's KV cache holds 32 layers x 8 KV heads x 128 x (key, value) x 2 bytes = 131,072 bytes a token; a
    one-token prompt (once refused: its cache size was read from a decode over no context) moves that much."""
    r = opgraph("serve", "--disaggregate", "1p1d", "--concurrency", "8", "--prompt", "1", "--output", "64",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kv_bytes_per_gpu"] == 32 * 8 * 128 * 2 * 2


@pytest.mark.parametrize("prefill, decode, c, p, g", [(2, 2, 16, 1000, 200), (1, 1, 64, 4000, 100),
                                                      (2, 1, 64, 2000, 300)])
def test_the_event_run_agrees_with_the_closed_form_and_littles_law(prefill, decode, c, p, g):
    """Request by request (each prompt through the prefill queue, its KV cache moved, each decode replica's
    iterations at their own contexts) the means come out as the closed form's, decode-bound (2p2d, 2p1d) or
    prefill-bound (1p1d with 4,000-token prompts: requests wait for a prompt slot), within 2%; and the deployment's
    output equals Little's law over the requests in flight, N x G / the mean end-to-end latency, within 3% (the
    run's first and last requests straddle its measured window)."""
    from opgraph.analysis.disaggregated_events import run
    d = disaggregated("llama-3-8b", H100, side(prefill), side(decode), concurrency=c, prompt=p, output=g,
                      same_node=True)
    e = run(side(prefill), side(decode), concurrency=c, prompt=p, output=g, transfer_s=d.transfer_s, holds=c,
            decoding=d.decoding)
    assert e.ttft.mean == pytest.approx(d.ttft_s, rel=0.02)
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02)
    assert e.tokens_per_s == pytest.approx(d.tokens_per_s, rel=0.02)
    assert e.tokens_per_s == pytest.approx(c * decode * g / e.e2e.mean, rel=0.03)
    assert e.ttft.p50 <= e.ttft.p90 <= e.ttft.p99 and e.measured >= 64


def test_pipelined_pools_keep_a_batch_a_stage_each_priced_through_every_stage():
    """Llama-3-8B with 2 pipeline stages in each pool (pp=2, 2 GPUs a worker), 16 requests per decode replica of
    1,000 + 200 tokens: a decode replica keeps 2 batches in flight, so TPOT is the pipelined step of a batch of 8 at
    the mean context 1,099 (not of 16); TTFT one prompt's pipelined iteration plus its transfer; Little's law over the
    16 requests. With one prefill worker for 6 decode workers the prefill pool bounds, at 2 batches of prompts in
    flight (8,192 // 4,000 = 2 prompts each), twice what one batch at a time would serve. The event run agrees."""
    from opgraph import choices
    from opgraph.analysis.disaggregated_events import run
    from opgraph.core.model import BuildOptions
    staged = IterationPricer(choices.builder(LLAMA, BuildOptions(pp=2)), PLAN, H100)
    assert staged.lanes == 2

    def pool(workers: int) -> Side:  # the KV cache a GPU holds: the 16 layers of its stage
        return Side(staged, vllm(H100), workers, "pp 2", 2, 1, KV_PER_TOKEN // 2)

    d = disaggregated("llama-3-8b", H100, pool(1), pool(1), concurrency=16, prompt=1000, output=200, same_node=True)
    tpot = staged.price_mix(8, 8, [(8, (1, 1099))]).expected_s
    prompt = prompt_s(staged, LAUNCHES + 1)  # and the batch's hand-over between the stages
    transfer = 1000 * KV_PER_TOKEN / 2 / H100.interconnect.link_bandwidth
    assert d.bound == "decode" and d.tpot_s == tpot != staged.price_mix(16, 16, [(16, (1, 1099))]).expected_s
    assert d.ttft_s == pytest.approx(prompt + transfer, rel=1e-12)
    assert d.requests_per_s == pytest.approx(16 / (prompt + transfer + 199 * tpot), rel=1e-12)
    assert any("2 batches in flight, one a stage" in n for n in d.notes)
    e = run(pool(1), pool(1), concurrency=16, prompt=1000, output=200, transfer_s=d.transfer_s, holds=16,
            decoding=d.decoding)
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02) and e.ttft.mean == pytest.approx(d.ttft_s, rel=0.02)
    assert e.tokens_per_s == pytest.approx(d.tokens_per_s, rel=0.02)
    bound = disaggregated("llama-3-8b", H100, pool(1), pool(6), concurrency=64, prompt=4000, output=100,
                          same_node=False)
    assert bound.bound == "prefill"
    assert bound.requests_per_s == pytest.approx(2 * 2 / staged.price_mix(8000, 2, [(2, (4000, 0))]).expected_s,
                                                 rel=1e-12)
    with pytest.raises(Exception, match="give a multiple of 2"):
        disaggregated("llama-3-8b", H100, pool(1), pool(1), concurrency=15, prompt=1000, output=200, same_node=True)


def test_the_command_line_lays_pools_out_with_pipeline_stages():
    r = opgraph("serve", "--disaggregate", "1p1d", "--prefill", "tp=2,pp=2", "--decode", "pp=2", "--concurrency",
                "8", "--prompt", "500", "--output", "50", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [(p["layout"], p["gpus"]) for p in d["pools"]] == [("tp 2 x pp 2", 4), ("pp 2", 2)] and d["gpus"] == 6
    assert d["event_run"]["tpot_s_stats"]["mean"] == pytest.approx(d["tpot_s"], rel=0.02)
    for args, says in ((["--decode", "pp=2", "--concurrency", "7"], "give a multiple of 2"),
                       (["--decode", "pp=2", "--concurrency", "8", "--draft", "llama-3-8b", "--acceptance", "0.7"],
                        "speculative decoding with pipeline stages"),
                       (["--prefill", "pp=2", "--concurrency", "8", "--draft", "mtp", "--acceptance", "0.7"],
                        "speculative decoding with pipeline stages"),  # a head, once refused by its builder
                       (["--decode", "pp=x", "--concurrency", "8"], "tp=4,pp=2")):
        bad = opgraph("serve", "--disaggregate", "1p1d", "--prompt", "500", "--output", "50", *args)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_the_engines_limits_apply_to_both_pools():
    """--max-seqs 1 on a prefill-bound split (one prefill GPU for eight decode GPUs, 2,000-token prompts): the
    prefill engine runs one prompt an iteration, where its 8,192-token budget would take four, so the rate is
    1 / (one prompt alone); a token budget of 4,000 takes two. On the command line the three limits are taken for
    both pools, and each changes what it must."""
    from opgraph.analysis.serve import with_limits
    pricer = IterationPricer(LLAMA.build, PLAN, H100)

    def limited(workers: int, **limits) -> Side:
        return Side(pricer, with_limits(vllm(H100), **limits), workers, "1 GPU", 1, 1, KV_PER_TOKEN)

    for limits, n in (({"max_seqs": 1}, 1), ({"max_batched_tokens": 4000}, 2), ({}, 4)):
        d = disaggregated("llama-3-8b", H100, limited(1, **limits), limited(8), concurrency=64, prompt=2000,
                          output=100, same_node=False)
        one = pricer.price_mix(2000 * n, n, [(n, (2000, 0))]).expected_s
        assert d.bound == "prefill" and d.requests_per_s == pytest.approx(n / one, rel=1e-12), limits
    base = ["serve", "--disaggregate", "1p1d", "--concurrency", "8", "--prompt", "1000", "--output", "50", "--format",
            "json"]
    plain = json.loads(opgraph(*base).stdout)
    smaller = json.loads(opgraph(*base, "--memory-fraction", "0.5").stdout)
    assert smaller["ttft_s"] == plain["ttft_s"] and smaller["tpot_s"] == plain["tpot_s"]  # 8 fit either way
    long = ["serve", "--disaggregate", "1p1d", "--concurrency", "8", "--prompt", "8000", "--output", "8000"]
    assert opgraph(*long).returncode == 0  # 0.9 of the memory holds 8 such requests; 0.3 of it does not
    bad = opgraph(*long, "--memory-fraction", "0.3")
    assert bad.returncode == 2 and "a decode replica holds" in bad.stderr, bad.stderr


def _timed(workers: int, overhead: float, scheduling: str) -> Side:
    import attrs
    engine = attrs.evolve(vllm(H100), overhead_s=overhead, overhead_source="given (--overhead-us)",
                          overhead_per_request_s=0.0, scheduling=scheduling)
    return Side(IterationPricer(LLAMA.build, PLAN, H100), engine, workers, "1 GPU", 1, 1, KV_PER_TOKEN)


def test_the_engines_own_time_per_iteration_adds_to_each_pools_iterations_under_sync_scheduling():
    """--overhead-us 1000 --scheduling sync on both pools: a decode step takes 1 ms more (TPOT + 1 ms), a prompt's
    prefill iteration 1 ms more, and a 20,000-token prompt, three chunks of the 8,192-token budget, 3 ms more; the
    event run agrees; the output says the figure was given."""
    from opgraph.analysis.disaggregated_events import run

    for prompt, iterations in ((1000, 1), (20000, 3)):
        plain, more = (disaggregated("llama-3-8b", H100, _timed(2, o, "sync"), _timed(2, o, "sync"), concurrency=8,
                                     prompt=prompt, output=100, same_node=True) for o in (0.0, 1e-3))
        assert more.tpot_s == pytest.approx(plain.tpot_s + 1e-3, rel=1e-12)
        assert more.prefill_s == pytest.approx(plain.prefill_s + iterations * 1e-3, rel=1e-12)
        assert any(n.startswith("decode workers: ") and "1,000 µs, given (--overhead-us), added to each iteration "
                   "(sync scheduling" in n for n in more.notes), more.notes
        assert not any("own time per iteration" in n for n in plain.notes)
    d = disaggregated("llama-3-8b", H100, _timed(2, 1e-3, "sync"), _timed(2, 1e-3, "sync"), concurrency=8,
                      prompt=1000, output=100, same_node=True)
    e = run(_timed(2, 1e-3, "sync"), _timed(2, 1e-3, "sync"), concurrency=8, prompt=1000, output=100,
            transfer_s=d.transfer_s, holds=8, decoding=8)
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02) and e.ttft.mean == pytest.approx(d.ttft_s, rel=0.02)


def test_async_scheduling_hides_each_pools_own_time_where_the_gpus_is_longer():
    """Async scheduling (the default): an iteration takes the longer of the host's time and the GPU's. 1 ms is less
    than any iteration of Llama-3-8B on an H100 (one decode reads 16 GB of weights), so nothing moves; 1 s is more
    than any, so a decode step takes 1 s (TPOT), a 1,000-token prompt's iteration 1 s and a 20,000-token prompt's
    three chunks 3 s; the event run agrees."""
    from opgraph.analysis.disaggregated_events import run
    assert IterationPricer(LLAMA.build, PLAN, H100).price([1]).expected_s > 1e-3  # the premise, priced

    for prompt, iterations in ((1000, 1), (20000, 3)):
        plain, hidden, bound = (disaggregated("llama-3-8b", H100, _timed(2, o, "async"), _timed(2, o, "async"),
                                              concurrency=8, prompt=prompt, output=100, same_node=True)
                                for o in (0.0, 1e-3, 1.0))
        assert (hidden.tpot_s, hidden.prefill_s) == (plain.tpot_s, plain.prefill_s)
        assert bound.tpot_s == pytest.approx(1.0, rel=1e-12)
        assert bound.prefill_s == pytest.approx(iterations * 1.0, rel=1e-12)
        assert any("hidden behind each iteration's GPU time where shorter (async scheduling" in n
                   for n in hidden.notes), hidden.notes
    d = disaggregated("llama-3-8b", H100, _timed(2, 0.05, "async"), _timed(2, 0.05, "async"), concurrency=8,
                      prompt=1000, output=100, same_node=True)
    e = run(_timed(2, 0.05, "async"), _timed(2, 0.05, "async"), concurrency=8, prompt=1000, output=100,
            transfer_s=d.transfer_s, holds=8, decoding=8)
    assert d.tpot_s == pytest.approx(0.05, rel=1e-12)  # 50 ms is longer than any step of 8 decodes
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02) and e.ttft.mean == pytest.approx(d.ttft_s, rel=0.02)


def test_a_benchmark_of_n_requests_sends_the_first_wave_at_once_and_counts_every_one():
    """--requests N with --disaggregate: the event run counts exactly N requests; its first wave (C per decode replica)
    reaches the prefill queue at once, so with one prefill GPU taking 8,192 // 1,000 = 8 prompts an iteration the
    first 8 get their first token after one iteration of 8 prompts and their transfer: the longest TTFT, its p90 and
    p99 alike; the mean lies above one prompt alone (the endless loop's steady state); TPOT is the decode pool's
    either way."""
    from opgraph.analysis.disaggregated_events import run
    d = disaggregated("llama-3-8b", H100, side(1), side(1), concurrency=8, prompt=1000, output=100, same_node=True)
    e = run(side(1), side(1), concurrency=8, prompt=1000, output=100, transfer_s=d.transfer_s, holds=8, requests=16)
    wave = IterationPricer(LLAMA.build, PLAN, H100).price_mix(8000, 8, [(8, (1000, 0))]).expected_s
    assert e.measured == 16 and e.ttft.p99 == pytest.approx(wave + d.transfer_s, rel=1e-9)
    assert e.ttft.p90 == e.ttft.p99 and d.ttft_s < e.ttft.mean < e.ttft.p99
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02)
    r = opgraph("serve", "--disaggregate", "1p1d", "--concurrency", "8", "--prompt", "1000", "--output", "100",
                "--requests", "16", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["event_run"]["requests_measured"] == 16 and any("benchmark of 16 requests" in n for n in out["notes"])


def test_an_open_loop_serves_what_arrives_and_waits_only_for_a_prefill_slot():
    """Requests arriving at 20 a second (Poisson) on 1 prefill and 2 decode GPUs, about 40% of the prefill pool's
    capacity: the output is the arrivals' (20 x 200 tokens a second) within 3%; the decode replicas hold what Little's
    law gives, so TPOT is the closed form's within 2%; the median TTFT is a prompt alone plus its transfer (most
    arrive to an idle prefill replica), and the mean is above it (some wait)."""
    from opgraph.analysis.disaggregated_events import run
    d = disaggregated("llama-3-8b", H100, side(1), side(2), rate=20, prompt=1000, output=200, same_node=True)
    assert d.concurrency is None and d.requests_per_s == 20 and d.bound == ""
    assert d.decoding == pytest.approx(20 * 199 * d.tpot_s / 2, rel=1e-9)  # Little's law on the decode replicas
    e = run(side(1), side(2), rate=20, prompt=1000, output=200, transfer_s=d.transfer_s, holds=1000)
    assert e.tokens_per_s == pytest.approx(20 * 200, rel=0.03)
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02)
    assert e.ttft.p50 == pytest.approx(d.prefill_s + d.transfer_s, rel=0.02) and e.ttft.mean > e.ttft.p50


def test_an_open_loop_beyond_a_pool_is_refused_with_what_it_serves():
    for args, says in ((["1p2d", "--rate", "200", "--output", "200"],
                        "the prefill pool serves at most 48.43 requests a second (1 replica, 8 prompts an iteration)"),
                       (["4p1d", "--rate", "60", "--output", "2000"], "the decode pool cannot keep up")):
        bad = opgraph("serve", "--disaggregate", args[0], *args[1:3], "--prompt", "1000", *args[3:])
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_speculative_decoding_on_the_decode_pool_agrees_with_its_event_run(capsys):
    """--draft llama-3-8b --acceptance 0.8 with Llama-3-70B, 1p1d of tp 4: the closed form's decode step is the draft's
    3 iterations and the target's verify of 4 tokens a request, over E = 1 + 0.8 + 0.64 + 0.512 tokens; the event run
    (acceptance drawn) gives the same TPOT and output within 3%; the prefill step includes the draft's prefill, and the
    moved KV cache is both models' (Llama-3-8B's 32 layers x 8 KV heads beside the 70B's 80 x 8, at tp 4)."""
    from opgraph.cli import main
    args = ["serve", "llama-3-70b", "--disaggregate", "1p1d", "--prefill", "tp=4", "--decode", "tp=4",
            "--concurrency", "16", "--prompt", "1024", "--output", "256", "--format", "json"]
    assert main([*args, "--draft", "llama-3-8b", "--acceptance", "0.8"]) == 0
    drafted = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    events = drafted["event_run"]
    assert events["tpot_s_stats"]["mean"] == pytest.approx(drafted["tpot_s"], rel=0.03)
    assert events["expected_tokens_per_s"] == pytest.approx(drafted["expected_tokens_per_s"], rel=0.03)
    assert drafted["tpot_s"] < plain["tpot_s"] and drafted["prefill_s"] > plain["prefill_s"]
    per_layer_token = 2 * 8 * 128 * 2 // 4  # K and V of 8 KV heads of 128 in bf16, split over tp 4
    assert drafted["kv_bytes_per_gpu"] - plain["kv_bytes_per_gpu"] == 32 * per_layer_token * 1024
    assert any("speculative decoding with llama-3-8b" in n for n in drafted["notes"])


def test_lengths_drawn_from_ranges_spread_the_latencies_around_the_mean_lengths_closed_form(capsys):
    """Prompts of 500-1,500 and outputs of 100-300 tokens: the event run draws each request's (seeded: two runs agree
    exactly), its TPOT stays within 3% of the closed form at the mean lengths (a decode step's cost is nearly linear
    in the contexts), while the end-to-end latency spreads with the outputs (p90 well above p50)."""
    from opgraph.cli import main
    args = ["serve", "--disaggregate", "1p2d", "--concurrency", "16", "--prompt", "500:1500", "--output", "100:300",
            "--format", "json"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["event_run"] == d["event_run"]
    e = d["event_run"]
    assert (d["prompt_tokens"], d["output_tokens"]) == (1000, 200)
    assert e["tpot_s_stats"]["mean"] == pytest.approx(d["tpot_s"], rel=0.03)
    assert e["e2e_s_stats"]["p90"] > 1.2 * e["e2e_s_stats"]["p50"]


def _prefixed(workers: int, prefix: int) -> Side:
    import attrs
    return attrs.evolve(side(workers), prefix=prefix)


def test_a_shared_prefix_is_prefilled_once_and_not_moved():
    """Prompts of 4,000 tokens whose first 3,000 are shared and cached (vLLM's blocks of 16: 2,992 cached, 187 whole
    blocks): a prompt's iteration computes its other 1,008 tokens over the 2,992 cached ones, a prefill iteration takes
    8,192 // 1,008 = 8 of them, and only those 1,008 tokens' KV cache move (the decode worker holds the prefix once);
    TPOT is unchanged (the context is still the whole prompt). The event run agrees."""
    from opgraph.analysis.disaggregated_events import run
    pricer = IterationPricer(LLAMA.build, PLAN, H100)
    d = disaggregated("llama-3-8b", H100, _prefixed(1, 3000), _prefixed(1, 3000), concurrency=16, prompt=4000,
                      output=200, same_node=True)
    plain = disaggregated("llama-3-8b", H100, side(1), side(1), concurrency=16, prompt=4000, output=200,
                          same_node=True)
    assert d.prefill_s == pricer.price_mix(1008, 1, [(1, (1008, 2992))]).expected_s
    assert d.kv_bytes_per_gpu == 1008 * KV_PER_TOKEN and d.prefix == 3000
    assert d.transfer_s == pytest.approx(1008 * KV_PER_TOKEN / H100.interconnect.link_bandwidth, rel=1e-12)
    assert d.tpot_s == plain.tpot_s and d.ttft_s < plain.ttft_s
    eight = pricer.price_mix(8 * 1008, 8, [(8, (1008, 2992))]).expected_s
    assert d.prefill.utilization == pytest.approx(d.requests_per_s / (8 / eight), rel=1e-12)
    assert any("prefix caching: the first 3,000 tokens" in n and "1,008 tokens' KV cache move" in n for n in d.notes)
    e = run(_prefixed(1, 3000), _prefixed(1, 3000), concurrency=16, prompt=4000, output=200, transfer_s=d.transfer_s,
            holds=16, decoding=16)
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02) and e.ttft.mean == pytest.approx(d.ttft_s, rel=0.02)


def test_the_command_line_serves_a_shared_prefix_disaggregated():
    """serve --disaggregate --prefix N: the decode worker holds the prefix once, so more 30,000-token requests fit its
    KV cache. In blocks of 16: a request of 30,200 tokens takes 1,888 without a prefix; with 29,000 shared, the prefix
    takes 1,813 once and a request 1,888 - 28,992 / 16 = 76 of its own. So if the cache holds n requests without it
    (n x 1,888 <= blocks < (n + 1) x 1,888), with it it holds (blocks - 1,813) // 76, within the bounds that gives.
    The JSON says the prefix; one longer than the shortest prompt is refused."""
    import re
    base = ["serve", "llama-3-8b", "--disaggregate", "1p1d", "--prompt", "30000", "--output", "200"]
    refused = opgraph(*base, "--concurrency", "32")
    assert refused.returncode == 2 and "a decode replica holds" in refused.stderr, refused.stderr
    n = int(re.search(r"holds (\d+) requests", refused.stderr)[1])
    more = opgraph(*base, "--concurrency", "1000", "--prefix", "29000")
    assert more.returncode == 2, more.stderr
    held = int(re.search(r"holds (\d+) requests", more.stderr)[1])
    assert (n * 1888 - 1813) // 76 <= held <= ((n + 1) * 1888 - 1 - 1813) // 76 and held > 20 * n
    ok = opgraph(*base, "--concurrency", "32", "--prefix", "29000", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    d = json.loads(ok.stdout)
    assert d["shared_prefix_tokens"] == 29000 and d["kv_bytes_per_gpu"] == (30000 - 29000 // 16 * 16) * KV_PER_TOKEN
    long = opgraph(*base, "--concurrency", "32", "--prefix", "30001")
    assert long.returncode == 2 and "--prefix 30,001: longer than the shortest prompt" in long.stderr, long.stderr


def test_a_queued_loop_holds_what_the_decode_replica_holds_and_the_rest_wait_for_a_slot():
    """--queue: 64 requests in the loop, a decode replica holding 16 at once. The 16 cycle through their prompt (one of
    1,000 tokens alone), its transfer and 199 decode steps of 16 at the mean context 1,099, so 16 / that cycle finish a
    second; by Little's law on the whole loop the other 48 wait 64 / rate - cycle before their prompt runs, and TTFT
    includes it. The event run, which reserves a decode slot before a prompt goes to the prefill pool, agrees."""
    from opgraph.analysis.disaggregated_events import run
    pricer = IterationPricer(LLAMA.build, PLAN, H100)
    d = disaggregated("llama-3-8b", H100, side(1), side(1), concurrency=64, prompt=1000, output=200, same_node=True,
                      queued_beyond=16)
    step = pricer.price_mix(16, 16, [(16, (1, 1099))]).expected_s
    prompt = prompt_s(pricer)
    transfer = 1000 * KV_PER_TOKEN / H100.interconnect.link_bandwidth
    cycle = prompt + transfer + 199 * step
    rate = 16 / cycle
    assert d.queued and d.decoding == 16 and d.tpot_s == step and d.bound == "decode"
    assert d.requests_per_s == pytest.approx(rate, rel=1e-12)
    assert d.waiting_s == pytest.approx(64 / rate - cycle, rel=1e-9)
    assert d.ttft_s == pytest.approx(64 / rate - 199 * step, rel=1e-9)
    assert d.decode.utilization == 1.0
    assert any(n.startswith("queued: a decode replica holds 16 of its 64") for n in d.notes)
    e = run(side(1), side(1), concurrency=64, prompt=1000, output=200, transfer_s=d.transfer_s, holds=16,
            decoding=d.decoding, queue=True)
    assert e.tpot.mean == pytest.approx(d.tpot_s, rel=0.02) and e.ttft.mean == pytest.approx(d.ttft_s, rel=0.02)
    assert e.tokens_per_s == pytest.approx(d.tokens_per_s, rel=0.02)
    with pytest.raises(OpgraphError, match="a decode replica holds 16 requests"):
        run(side(1), side(1), concurrency=64, prompt=1000, output=200, transfer_s=d.transfer_s, holds=16)


def test_the_command_line_queues_a_disaggregated_loop_beyond_the_kv_cache():
    base = ["serve", "llama-3-70b", "--disaggregate", "1p1d", "--prefill", "tp=4", "--decode", "tp=4", "--concurrency",
            "300", "--prompt", "2000", "--output", "4000"]
    refused = opgraph(*base)
    assert refused.returncode == 2 and "a decode replica holds" in refused.stderr
    ok = opgraph(*base, "--queue", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    d = json.loads(ok.stdout)
    assert d["queued"] is True and d["waiting_s"] > 0 and d["decoding_per_decode_replica"] < 300
    assert d["event_run"]["ttft_s_stats"]["mean"] == pytest.approx(d["ttft_s"], rel=0.02)
    bad = opgraph("serve", "llama-3-8b", "--disaggregate", "1p1d", "--rate", "2", "--prompt", "200", "--output", "20",
                  "--queue")
    assert bad.returncode == 2 and "an open loop's arrivals (--rate) wait for room already" in bad.stderr
