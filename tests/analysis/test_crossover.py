"""Crossover points against hand formulas, and the sweep/crossover commands."""

import json
import subprocess
import sys
import math
from fractions import Fraction

import pytest

from opgraph import hardware
from opgraph import models
from opgraph import Phase, analyze, strategy
from opgraph.analysis import crossover
from opgraph.analysis.crossover import (LIMIT, Crossover, attention_overtakes_ffn, crossover_report, crossovers,
                                        curve_sizes)
from opgraph.analysis.sweep import SweepCurve
from userland import NEUTRAL, opgraph

H100 = hardware.load("h100-sxm")
PEAK, BW = Fraction(989 * 10**12), Fraction(3350 * 10**9)
LLAMA = models.get("llama-3-8b")


@pytest.fixture(scope="module")
def decode_crossovers():
    return {x.label: x for x in crossovers(LLAMA.build, strategy("fused"), H100, "decode", 1024)}


def first_int_above(x: Fraction) -> int:
    return math.floor(x) + 1


def test_weight_only_projection_crosses_at_the_ridge(decode_crossovers):
    # Under `fused`, q_proj reads only its weights (its input stays on chip): 2*B*N*K FLOPs over 2*N*K bytes,
    # an intensity of B FLOP/byte. Compute-bound once B > 989e12 / 3350e9 = 295.2.
    assert decode_crossovers["layer.q_proj"].at == first_int_above(PEAK / BW) == 296
    assert decode_crossovers["layer.q_proj"].method == "linear solve"


def test_v_proj_also_writes_the_cache(decode_crossovers):
    # v_proj: 2*B*1024*4096 FLOPs; bytes 1024*4096*2 (weights) + B*1024*2 (the new V entries).
    # Compute-bound when 8,388,608*B/peak > (8,388,608 + 2048*B)/bw.
    b = (Fraction(8_388_608) / BW) / (Fraction(8_388_608) / PEAK - Fraction(2048) / BW)
    assert decode_crossovers["layer.v_proj"].at == first_int_above(b) == 319


def test_a_decode_layer_never_turns_compute_bound_at_fixed_context(decode_crossovers):
    # The KV cache read grows with the batch as fast as attention's FLOPs: qk/av stay at about
    # 2*H/(2*kv*2) = 4 FLOP/byte (GQA 32/8, bf16) for any batch, far below the ridge.
    assert decode_crossovers["layer.qk"].at is None
    assert decode_crossovers["layer"].at is None
    # Ops fused away entirely touch no memory: no verdict of their own (their kernel's counts), so no crossover.
    assert "layer.softmax" not in decode_crossovers and "layer.qk" in decode_crossovers


def test_crossover_is_the_first_compute_bound_value_in_fresh_reports(decode_crossovers):
    n = decode_crossovers["embed_head.lm_head"].at
    def bound(batch):
        r = analyze(LLAMA.build(Phase.decode(batch, 1024)), strategy("fused"), H100)
        return next(o for o in r.blocks[1].ops if o.name == "lm_head").cost.bound
    assert (bound(n - 1), bound(n)) == ("memory", "compute")


def test_prefill_layer_crossover_at_batch_1():
    xs = {x.label: x for x in crossovers(LLAMA.build, strategy("fused"), H100, "prefill", 1)}
    n = xs["layer"].at
    layer = lambda s: analyze(LLAMA.build(Phase.prefill(1, s)), strategy("fused"), H100).blocks[0].totals  # noqa
    assert layer(n).bound == "compute" and layer(n - 1).bound == "memory"
    # Weights (436 MB) dominate at short prompts: per token the layer does ~2*218e6 FLOPs, so about
    # ridge/2 = 148 tokens are needed before compute time catches up; activations push it a little higher.
    assert 148 < n < 400


def test_attention_overtakes_ffn_in_decode():
    n = attention_overtakes_ffn(LLAMA.build, strategy("fused"), H100, 32)
    # Hand estimate, all memory-bound: the FFN reads 3*4096*14336*2 bytes of weights; attention reads
    # (2*4096*4096 + 2*4096*1024)*2 bytes of weights plus 2*32*ctx*1024*2 bytes of cache per layer.
    ffn, attn_w, per_ctx = 3 * 4096 * 14336 * 2, (2 * 4096 * 4096 + 2 * 4096 * 1024) * 2, 2 * 32 * 1024 * 2
    estimate = (ffn - attn_w) / per_ctx
    assert abs(n - estimate) / estimate < 0.02
    def halves(ctx):
        r = analyze(LLAMA.build(Phase.decode(32, ctx)), strategy("fused"), H100).blocks[0]
        ops = [o.name for o in r.ops]
        split = ops.index("attn_residual") + 1
        return sum(o.cost.time_s for o in r.ops[:split]), sum(o.cost.time_s for o in r.ops[split:])
    a, f = halves(n)
    a0, f0 = halves(n - 1)
    assert a > f and a0 <= f0


@pytest.fixture(scope="module")
def decode_curves():
    """The report's decode phase, and how many times crossovers() ran while it was made (the curves reuse its
    answers: once)."""
    calls = []
    def counted(*args, **kwargs):
        calls.append(args)
        return found(*args, **kwargs)
    found = crossover.crossovers
    with pytest.MonkeyPatch.context() as m:
        m.setattr(crossover, "crossovers", counted)
        r = crossover_report(LLAMA.build, strategy("fused"), H100, ["decode"], batch=32, context=1024)
    return r.phases[0], len(calls)


def powers_of_two_to(end):
    out = [1]
    while out[-1] < end:
        out.append(out[-1] * 2)
    return out


@pytest.mark.parametrize("ats, end", [((), 1024), ((None, 3), 1024), ((512,), 1024), ((513,), 2048),
                                      ((1000, 7), 2048), ((600_000,), LIMIT), ((LIMIT,), LIMIT)])
def test_curve_sizes_are_powers_of_two_to_twice_the_last_crossover_and_the_crossovers(ats, end):
    found = [Crossover(f"op{i}", at, "search") for i, at in enumerate(ats)]
    assert curve_sizes(found) == sorted(set(powers_of_two_to(end)) | {a for a in ats if a is not None})


def test_the_report_curves_are_the_report_at_each_size(decode_curves, decode_crossovers):
    phase, calls = decode_curves
    c = phase.curves
    assert calls == 1  # the curves' block marks come from the crossovers found, not a second search
    finite = {x.at for x in decode_crossovers.values() if x.at is not None}
    end = 1024
    while end < 2 * max(finite):
        end *= 2
    assert c.xs == tuple(sorted(set(powers_of_two_to(end)) | finite))
    assert (c.variable, c.fixed) == ("batch", {"context": 1024})
    assert c.crossovers == tuple((label, x.at) for label, x in decode_crossovers.items()
                                 if "." not in label and x.at is not None)
    for batch in (1, max(finite), end):
        i = c.xs.index(batch)
        r = analyze(LLAMA.build(Phase.decode(batch, 1024)), strategy("fused"), H100)
        assert (c.model_s[i], c.roofline_s[i]) == (r.totals.expected_s, r.totals.time_s)
        assert (c.intensity[i], c.bound[i]) == (r.totals.flops / r.totals.bytes, r.totals.bound)
        assert c.tokens_per_s[i] == batch / r.totals.expected_s  # one new token a sequence
        assert {name: ts[i] for name, ts in c.blocks} == {b.name: b.count * b.totals.expected_s for b in r.blocks}
        assert dict((label, ts[i]) for label, ts in c.ops) == {f"{b.name}.{o.name}": b.count * o.cost.expected_s
                                                               for b in r.blocks for o in b.ops}


def test_prefill_throughput_counts_every_prompt_token_of_the_batch():
    c = SweepCurve("prefill", "seq_len", {"batch": 4}, (1, 8), (2.0, 4.0), (), ())
    assert c.tokens_per_s == (4 * 1 / 2.0, 4 * 8 / 4.0)


def test_sweep_command_grid_and_agreement_with_report():
    r = opgraph("sweep", "--phase", "decode", "--batch", "1,4,...,64", "--context", "512,4096",
                "--hardware", "h100-sxm,l40s", "--format", "json")
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)["points"]
    assert len(points) == 2 * 4 * 2  # GPUs x batches (1, 4, 16, 64) x contexts
    p = next(p for p in points if (p["hardware"], p["batch"], p["context"]) == ("l40s", 16, 4096))
    rep = json.loads(opgraph("report", "--hardware", "l40s", "--phase", "decode", "--batch", "16", "--context",
                             "4096", "--format", "json").stdout)["phases"]["decode"]["model"]
    assert (p["flops"], p["bytes"], p["bound"]) == (rep["flops"], rep["bytes"], rep["bound"])
    assert p["roofline_s"] == rep["roofline_s"]


def test_crossover_command_json():
    r = opgraph("crossover", "--phase", "decode", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["phases"]["decode"]
    ops = {c["op"]: c["at"] for c in d["crossovers"]}
    assert ops["layer.q_proj"] == 296 and ops["layer"] is None
    assert d["variable"] == "batch" and d["fixed"] == {"context": 1024}
    assert isinstance(d["attention_overtakes_ffn_at_context"], int)
    c = d["curves"]  # one entry a size (the powers of two and each crossover), each series' unit named
    assert c["batch"] == curve_sizes([Crossover(x["op"], x["at"], x["method"]) for x in d["crossovers"]])
    series = ["roofline_s", "expected_s", "tokens_per_s", "intensity", "bound"]
    assert {len(c[k]) for k in series} | {len(t) for k in ("block_total_expected_s", "op_total_expected_s")
                                          for t in c[k].values()} == {len(c["batch"])}
    assert set(c["units"]) == {"batch", "*_s", "tokens_per_s", "intensity", "block_total_expected_s",
                               "op_total_expected_s"}
    assert c["tokens_per_s"] == [b / t for b, t in zip(c["batch"], c["expected_s"])]
    assert set(c["op_total_expected_s"]) > {x["op"] for x in d["crossovers"] if "." in x["op"]}  # fused ops too


@pytest.mark.parametrize("args, message", [
    (["sweep", "--batch", "2,x"], "--batch: 'x' is not an integer"),
    (["sweep", "--phase", "decode", "--seq-len", "64"], "--seq-len applies to prefill"),
    (["sweep", "--hardware", "h100-sxm,tpu"], "unknown hardware 'tpu'"),
    (["crossover", "--seq-len", "64"], "opgraph crossover: unrecognized arguments: --seq-len"),
])
def test_sweep_and_crossover_errors(args, message):
    r = opgraph(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr, r.stderr


@pytest.mark.parametrize("threshold", [1, 2, 3, 7, 8, 9, 1000, 1 << 20])
def test_first_true_finds_the_threshold(threshold):
    from opgraph.analysis.search import first_true
    probes = []
    def holds(n):
        probes.append(n)
        return n >= threshold
    assert first_true(holds, 1, 1 << 20) == threshold
    assert len(probes) <= 2 * 21 + 2  # doubling then bisection, never a scan
    assert first_true(lambda n: n >= threshold, 1, threshold - 1 or 1) == (None if threshold > 1 else 1)
    if threshold > 2:
        assert first_true(lambda n: n >= threshold, 2, 1 << 20) == threshold


@pytest.mark.parametrize("preset", models.names())
def test_crossover_of_every_preset_finishes_in_seconds(preset):
    """Default options, both phases (deepseek-v3 once ran for minutes: a replayed MoE regime computed a power with a
    33-million-token exponent before checking its guards)."""
    r = subprocess.run([sys.executable, "-m", "opgraph", "crossover", preset, "--format", "json"], capture_output=True,
                       text=True, timeout=60, cwd=NEUTRAL)
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["phases"]) == {"prefill", "decode"}
