"""Sweeps: the traced evaluator gives exactly what a fresh report gives, and axes parse as documented."""

import random

import pytest

from opgraph import hardware
from opgraph import models
from opgraph import Phase, analyze, strategy
from opgraph.errors import OpgraphError
from opgraph.analysis.sweep import Sweeper, parse_values

H100 = hardware.load("h100-sxm")


CASES = [("llama-3-8b", "fused"), ("llama-3-8b", "unfused"), ("mistral-7b", "flash"), ("mixtral-8x7b", "fused"),
         ("deepseek-v2-lite", "fused"), ("gpt2", "megakernel")]


@pytest.mark.parametrize("preset, plan", CASES)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_sweep_points_equal_fresh_reports(preset, plan, phase):
    cfg = models.get(preset)
    sweeper = Sweeper(cfg.build, strategy(plan), H100, phase)
    rng = random.Random(f"{preset}-{plan}-{phase}")
    make = Phase.prefill if phase == "prefill" else Phase.decode
    for _ in range(12):
        batch, length = rng.randint(1, 96), rng.randint(1, 6000)
        p = sweeper.point(batch, length)
        r = analyze(cfg.build(make(batch, length)), strategy(plan), H100)
        assert (p.model_flops, p.model_bytes) == (r.totals.flops, r.totals.bytes)
        assert p.model_time_s == r.totals.time_s
        assert p.bound == r.totals.bound
        assert p.block_expected_s == {b.name: b.totals.expected_s for b in r.blocks}
        top = max(((b.name, o.name, b.count * o.cost.expected_s) for b in r.blocks for o in b.ops), key=lambda x: x[2])
        assert p.dominant_op == f"{top[0]}.{top[1]}"


@pytest.mark.parametrize("preset, plan", CASES)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_every_point_of_a_grid_equals_a_fresh_report(preset, plan, phase):
    """The numpy replay, over points that meet several regimes, checked point by point against direct evaluation."""
    cfg = models.get(preset)
    rng = random.Random(f"grid-{preset}-{plan}-{phase}")
    points = [(rng.randint(1, 300), rng.choice([1, 2, 3, rng.randint(1, 20_000)])) for _ in range(24)]
    grid = Sweeper(cfg.build, strategy(plan), H100, phase).grid([b for b, _ in points], [n for _, n in points])
    for p, (batch, length) in zip(grid.points(), points):
        r = analyze(cfg.build(Phase.of(phase, batch, length)), strategy(plan), H100)
        assert (p.batch, p.length, p.model_flops, p.model_bytes) == (batch, length, r.totals.flops, r.totals.bytes)
        assert p.model_time_s == r.totals.time_s and p.bound == r.totals.bound
        assert p.block_expected_s == {b.name: b.totals.expected_s for b in r.blocks}


def test_sweep_does_not_rebuild_per_point():
    sweeper = Sweeper(models.get("llama-3-8b").build, strategy("fused"), H100, "decode")
    for batch in range(1, 65):
        sweeper.point(batch, 1024)
    assert sweeper.regimes <= 3  # 64 points, a handful of traces


def test_decode_crosses_to_compute_bound_at_large_batch():
    # Decode matmuls do 2 FLOPs per weight element per sequence; bf16 weights are 2 bytes, so the batch
    # must pass about the ridge (295 FLOP/B) before the model can be compute-bound (the KV cache adds bytes).
    sweeper = Sweeper(models.get("llama-3-8b").build, strategy("fused"), H100, "decode")
    assert sweeper.point(32, 128).bound == "memory"
    assert sweeper.point(295 // 2, 128).bound == "memory"
    assert sweeper.point(4096, 128).bound == "compute"


@pytest.mark.parametrize("text, values", [
    ("1,2,4", [1, 2, 4]),
    ("1,2,4,...,512", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]),
    ("1,2,...,6", [1, 2, 3, 4, 5, 6]),  # ratio 2 overshoots 6, so arithmetic
    ("1:5", [1, 2, 3, 4, 5]),
    ("128:1024:128", [128, 256, 384, 512, 640, 768, 896, 1024]),
    ("3,1:2", [3, 1, 2]),
])
def test_parse_values(text, values):
    assert parse_values(text, "--batch") == values


@pytest.mark.parametrize("text, message", [
    ("1,x", "--batch: 'x' is not an integer"),
    ("0,1", "--batch: values must be integers from 1 to 1,000,000,000, got 0"),
    ("1:10000000000", "--batch: values must be integers from 1 to 1,000,000,000, got 10,000,000,000"),
    ("1:100000000", "--batch: '1:100000000' gives more than 1,000,000 values"),
    ("1,2,...," + "1" * 31, "got a number of 31 digits"),
    ("²", "is not an integer"),
    ("1,...,8", "'...' needs two values before it"),
    ("3,5,...,10", "neither a geometric nor an arithmetic progression"),
    ("9:3", "range '9:3' ends before it starts"),
    ("", "no values"),
])
def test_parse_values_errors(text, message):
    with pytest.raises(OpgraphError, match=message.replace("(", "\\(").replace(".", "\\.")):
        parse_values(text, "--batch")


def test_every_point_says_whether_it_fits():
    """A sweep's memory at each point is what `opgraph memory` measures for that step, and 'fits' compares it
    with the GPU's capacity: Llama-3-8B at context 4096 fits at batch 64 (about 50 GB) but not at 256."""
    from opgraph import Phase, hardware, models, strategy
    from opgraph.analysis.memory import footprint_of
    from opgraph.analysis.sweep import Sweeper
    cfg, hw, plan = models.get("llama-3-8b"), hardware.load("h100-sxm"), strategy("fused")
    grid = Sweeper(cfg.build, plan, hw, "decode").grid([1, 64, 256], [4096] * 3)
    for point in grid.points():
        direct = footprint_of(cfg.build(Phase.decode(point.batch, 4096)), plan, hw).total
        assert point.footprint_bytes == direct
        assert point.fits == (direct <= 80e9)
    assert [p.fits for p in grid.points()] == [True, True, False]
