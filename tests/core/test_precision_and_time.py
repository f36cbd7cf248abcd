"""Precision per tensor role, group-quantization overhead, and the time-model knobs."""

import attrs
import pytest

from opgraph import hardware
from opgraph import models
from opgraph.models import BuildOptions
from opgraph import BF16, FP8, INT4, INT8, Phase, Precision, analyze, strategy
from opgraph import choices
from opgraph.errors import OpgraphError
from opgraph.pricing.timing import ROOFLINE
from opgraph.core.tensor import Tensor, nbytes

LLAMA = models.get("llama-3-8b")
H100 = hardware.load("h100-sxm")
DECODE = Phase.decode(32, 1024)


def layer(precision, phase=DECODE, hw=H100, plan="fused"):
    return analyze(LLAMA.build(phase, BuildOptions(precision)), strategy(plan), hw).blocks[0]


def test_int4_group_scales_by_hand():
    # A [4096, 4096] int4 matrix: 4 bits per value, plus one fp16 scale per 128 values of each row.
    w = Tensor("w", (4096, 4096), INT4.grouped(128))
    assert w.nbytes == 4096 * 4096 // 2 + 4096 * (4096 // 128) * 2
    # A row not divisible by the group: the short last group still has its scale (ceil).
    assert nbytes(3 * 200, INT8.grouped(128), 200) == 3 * 200 + 3 * 2 * 2


def test_int4_weights_shrink_only_the_matrices():
    p = Precision(weight=INT4.grouped(128), act=BF16, kv=BF16)
    d, kv, ffn = 4096, 1024, 14336
    matrices = [(d, d), (kv, d), (kv, d), (d, d), (ffn, d), (ffn, d), (d, ffn)]  # [out, in] per projection
    packed = sum(n * k // 2 + n * (k // 128) * 2 for n, k in matrices)
    norms = 2 * d * 2  # the two RMSNorm scales stay bf16
    assert layer(p).totals.traffic.weight_bytes == packed + norms
    # The activations and the cache are untouched.
    base = layer(Precision.uniform(BF16))
    assert layer(p).totals.traffic.kv_cache_bytes == base.totals.traffic.kv_cache_bytes


def test_weight_only_quantization_computes_at_the_activation_precision():
    q = {o.name: o for o in layer(Precision(weight=INT4.grouped(128), act=BF16, kv=BF16)).ops}["q_proj"]
    assert q.cost.compute_s == pytest.approx(q.cost.flops / 989e12)


def test_fp8_activations_use_the_fp8_tensor_cores():
    q = {o.name: o for o in layer(Precision(weight=FP8, act=FP8, kv=FP8), Phase.prefill(8, 512)).ops}["q_proj"]
    assert q.cost.compute_s == pytest.approx(q.cost.flops / 1979e12)


def test_int8_activations_use_the_int8_path():
    q = {o.name: o for o in layer(Precision(weight=INT8.grouped(128), act=INT8, kv=BF16)).ops}["q_proj"]
    assert q.cost.compute_s == pytest.approx(q.cost.flops / 1979e12)


def test_a_precision_the_chip_lacks_is_a_clear_error():
    with pytest.raises(OpgraphError, match="hardware 'a100-sxm' has no matrix rate for fp8"):
        layer(Precision(weight=FP8, act=FP8, kv=FP8), hw=hardware.load("a100-sxm"))


def test_launch_overhead_is_per_kernel_and_only_in_the_expected_time():
    """--launch-us sets every class's fixed cost: each kernel's expected time grows by it, the roofline (the ideal)
    not at all. The unfused plan runs Llama's 18 ops as 18 kernels, the fused one as 2."""
    bare = attrs.evolve(H100, timing=ROOFLINE)
    for plan, kernels in (("unfused", 18), ("fused", 2)):
        for hw in (bare, H100):  # without a calibration and with the shipped one
            slow = hw.timing.overridden("--launch-us 5", latency_s=5e-6)
            zero = hw.timing.overridden("--launch-us 0", latency_s=0.0)
            a = layer(Precision.uniform(BF16), hw=attrs.evolve(hw, timing=slow), plan=plan)
            b = layer(Precision.uniform(BF16), hw=attrs.evolve(hw, timing=zero), plan=plan)
            base = layer(Precision.uniform(BF16), hw=hw, plan=plan)
            assert a.totals.expected_s == pytest.approx(b.totals.expected_s + kernels * 5e-6, rel=1e-12)
            assert a.totals.time_s == b.totals.time_s == base.totals.time_s
    # without a calibration and with no launch cost, every unfused op's expected time is its roofline
    unfused = layer(Precision.uniform(BF16), hw=attrs.evolve(bare, timing=ROOFLINE.overridden("x", latency_s=0.0)),
                    plan="unfused")
    assert unfused.totals.expected_s == pytest.approx(unfused.totals.time_s, rel=1e-12)


def test_overlap_zero_adds_compute_and_memory_in_the_expected_time():
    bare = attrs.evolve(H100, timing=ROOFLINE.overridden("--overlap 0", overlap=0.0))
    summed = layer(Precision.uniform(BF16), hw=bare, plan="unfused")
    for o in summed.ops:
        assert o.cost.expected_s == pytest.approx(o.cost.compute_s + o.cost.memory_s, rel=1e-12)
        assert o.cost.time_s == max(o.cost.compute_s, o.cost.memory_s)  # the roofline stays the ideal
    with pytest.raises(OpgraphError, match="overlap"):
        choices.gpu("h100-sxm", overlap=1.5)


def test_causal_skip_halves_prefill_attention_roughly():
    s = 1024
    full = {o.name: o for o in layer(None, Phase.prefill(2, s)).ops}
    causal_model = LLAMA.build(Phase.prefill(2, s), BuildOptions(causal_skip=True))
    causal = {o.name: o for o in analyze(causal_model, strategy("fused"), H100).blocks[0].ops}
    assert full["qk"].cost.flops == 2 * 2 * 32 * s * s * 128
    assert causal["qk"].cost.flops == 2 * 2 * 32 * (s * (s + 1) // 2) * 128
    assert causal["av"].cost.flops == causal["qk"].cost.flops
    # the softmax runs on the unmasked scores only: 5 FLOPs each (it once counted the masked half too)
    assert causal["softmax"].cost.flops == 5 * 2 * 32 * (s * (s + 1) // 2)
    assert causal["q_proj"].cost.flops == full["q_proj"].cost.flops
