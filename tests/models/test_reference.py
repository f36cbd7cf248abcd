"""Acceptance tests: Llama-3-8B on an H100 SXM against the hand analysis in
shared/reference/roofline-prefill-decode.md.

Every expected value below is derived in the test from the model dimensions (written out here from the
checkpoint's config.json) or copied from the reference document; none is program output.
Where the reference is wrong (480 MB of weights per layer, ~300 FLOP/byte at batch 1) the test says so.
"""

import pytest

from opgraph import hardware
from opgraph import models
from opgraph import Phase, analyze, strategy

# Llama-3-8B, from huggingface.co/meta-llama/Meta-Llama-3-8B config.json (also the reference's list).
D = 4096  # d_model
H = 32  # query heads
KV = 8  # KV heads
HD = 128  # head_dim
FFN = 14336  # d_ffn
LAYERS = 32
VOCAB = 128256
BYTES = 2  # bf16

# H100 SXM: the reference table's dense bf16 rate and bandwidth.
H100_FLOPS = 989e12
H100_BW = 3350e9
H100_RIDGE = H100_FLOPS / H100_BW  # ~295 FLOP/byte

PLANS = ("unfused", "flash", "fused")

# Each projection as (N = output features, K = input features): y[M, N] = x[M, K] @ W^T.
PROJECTIONS = {
    "q_proj": (H * HD, D),
    "k_proj": (KV * HD, D),
    "v_proj": (KV * HD, D),
    "o_proj": (D, H * HD),
    "gate_proj": (FFN, D),
    "up_proj": (FFN, D),
    "down_proj": (D, FFN),
}
BIG_PROJECTIONS = ("q_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# Hand figures for one layer.
PROJ_WEIGHT_BYTES = BYTES * (D * D * 2 + D * (KV * HD) * 2 + 3 * D * FFN)
NORM_WEIGHT_BYTES = 2 * D * BYTES  # input_layernorm and post_attention_layernorm scales
LAYER_WEIGHT_BYTES = PROJ_WEIGHT_BYTES + NORM_WEIGHT_BYTES


def phase_of(kind, batch, n):
    return Phase.prefill(batch, n) if kind == "prefill" else Phase.decode(batch, n)


def run(kind, batch, n, plan="fused", hw="h100-sxm"):
    return analyze(models.get("llama-3-8b").build(phase_of(kind, batch, n)), strategy(plan), hardware.load(hw))


def block(res, name):
    [b] = [b for b in res.blocks if b.name == name]
    return b


def op(blk, name):
    [o] = [o for o in blk.ops if o.name == name]
    return o


def shape(kind, batch, n):
    """(tokens M of every projection, query positions Sq, key positions Sk) per sequence."""
    if kind == "prefill":
        return batch * n, n, n
    return batch * 1, 1, n + 1  # decode: one new token attends to the n cached keys and itself


def hand_matmul_flops(kind, batch, n):
    """2*M*N*K per projection, 2*B*H*Sq*Sk*head_dim for qk and for av (full Sq x Sk, no causal skip)."""
    m, sq, sk = shape(kind, batch, n)
    f = {name: 2 * m * nn * k for name, (nn, k) in PROJECTIONS.items()}
    f["qk"] = 2 * batch * H * sq * sk * HD
    f["av"] = 2 * batch * H * sq * sk * HD
    return f


# -- weights -----------------------------------------------------------------------------------------

def test_projection_weight_bytes_hand_figure():
    # The seven projection matrices of a layer are 436,207,616 bytes in bf16 (the reference's "436 MB").
    assert PROJ_WEIGHT_BYTES == 436_207_616


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("kind,batch,n", [("prefill", 32, 1024), ("prefill", 1, 1024), ("decode", 32, 1024),
                                           ("decode", 1, 1)])
def test_layer_weight_bytes_are_projections_plus_norms(plan, kind, batch, n):
    # Every plan reads each of the layer's weights exactly once: 7 projections + 2 RMSNorm scales.
    layer = block(run(kind, batch, n, plan), "layer")
    assert layer.totals.traffic.weight_bytes == 436_207_616 + 2 * 4096 * 2 == LAYER_WEIGHT_BYTES


@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_per_projection_weight_bytes(kind):
    # Each projection op reads its own N x K bf16 matrix once (the fused plan charges it to that op).
    layer = block(run(kind, 32, 1024), "layer")
    for name, (nn, k) in PROJECTIONS.items():
        assert op(layer, name).cost.traffic.weight_bytes == nn * k * BYTES, name


def test_reference_480mb_per_layer_is_not_what_we_report():
    # The reference rounds each FFN matrix to 128 MB and sums to 480 MB; an FFN matrix is 117.4 MB exactly.
    ffn_matrix = 4096 * 14336 * 2
    assert ffn_matrix == 117_440_512
    layer = block(run("prefill", 32, 1024), "layer")
    assert op(layer, "gate_proj").cost.traffic.weight_bytes == ffn_matrix != 128 * 2**20
    reported = layer.totals.traffic.weight_bytes
    assert reported not in (480 * 10**6, 480 * 2**20)
    assert reported < 450 * 10**6


# -- FLOPs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, issue_figure", [
    # Prefill b=32 s=1024: projections 2*M*N*K with M=32768 plus qk and av over 1024 keys = 14.84 TFLOP.
    ("prefill", 14_843_406_974_976),
    # Decode b=32 context=1024: projections with M=32, attention over 1025 keys (cache + the new token).
    ("decode", 14_496_038_912),
])
def test_layer_matmul_flops(kind, issue_figure):
    hand = sum(hand_matmul_flops(kind, 32, 1024).values())
    assert hand == issue_figure
    layer = block(run(kind, 32, 1024), "layer")
    got = sum(o.cost.flops for o in layer.ops if o.kind == "matmul")
    assert got == hand


@pytest.mark.parametrize("kind,batch,n", [("prefill", 32, 1024), ("prefill", 1, 1024), ("prefill", 3, 17),
                                           ("decode", 32, 1024), ("decode", 1, 1), ("decode", 5, 77)])
def test_per_op_matmul_flops(kind, batch, n):
    # Each projection is 2*M*N*K and qk/av are 2*B*H*Sq*Sk*head_dim, op by op.
    layer = block(run(kind, batch, n), "layer")
    hand = hand_matmul_flops(kind, batch, n)
    for name, flops in hand.items():
        assert op(layer, name).cost.flops == flops, name
        assert op(layer, name).kind == "matmul", name
    # ... and those nine are exactly the matmuls of the layer.
    assert {o.name for o in layer.ops if o.kind == "matmul"} == set(hand)


@pytest.mark.parametrize("plan", PLANS)
def test_flops_do_not_depend_on_the_plan(plan):
    # Fusion moves bytes, never arithmetic: the matmul total is the hand figure under every plan.
    layer = block(run("prefill", 32, 1024, plan), "layer")
    assert sum(o.cost.flops for o in layer.ops if o.kind == "matmul") == 14_843_406_974_976


# -- verdicts ----------------------------------------------------------------------------------------

def test_prefill_is_compute_bound():
    # b=32 s=1024 prefill: ~10^4 FLOP/byte >> H100 ridge 295, so the layer and the model are compute-bound.
    res = run("prefill", 32, 1024)
    assert block(res, "layer").totals.bound == "compute"
    assert res.totals.bound == "compute"


def test_decode_is_memory_bound():
    # b=32 decode: ~24 FLOP/byte << 295, so the layer and the model are memory-bound.
    res = run("decode", 32, 1024)
    assert block(res, "layer").totals.bound == "memory"
    assert res.totals.bound == "memory"


@pytest.mark.parametrize("plan", PLANS)
def test_big_projection_verdicts(plan):
    # A projection's bytes are at most 2*(MK + NK + MN) (read x and W, write y): at M=32768 its intensity is
    # far above the ridge under any plan; in decode its bytes are at least the weight NK*2, so intensity <= M=32.
    pre = block(run("prefill", 32, 1024, plan), "layer")
    dec = block(run("decode", 32, 1024, plan), "layer")
    m = 32 * 1024
    for name in BIG_PROJECTIONS:
        nn, k = PROJECTIONS[name]
        worst_intensity = 2 * m * nn * k / (BYTES * (m * k + nn * k + m * nn))
        assert worst_intensity > H100_RIDGE
        assert op(pre, name).cost.bound == "compute", name
        assert op(pre, name).cost.intensity >= worst_intensity * (1 - 1e-12), name
        assert op(dec, name).cost.bound == "memory", name
        assert op(dec, name).cost.intensity <= 32, name


def test_times_follow_the_h100_roofline():
    # compute_s = FLOPs / 989e12 for matmuls and memory_s = bytes / 3350e9, time = the larger.
    layer = block(run("prefill", 32, 1024), "layer")
    q = op(layer, "q_proj").cost
    assert q.compute_s == pytest.approx(2 * 32 * 1024 * 4096 * 4096 / H100_FLOPS, rel=1e-12)
    assert q.memory_s == pytest.approx(q.traffic.bytes / H100_BW, rel=1e-12)
    assert q.time_s == max(q.compute_s, q.memory_s)


# -- fused traffic -----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch,seq", [(32, 1024), (1, 1024), (2, 7)])
def test_fused_prefill_layer_traffic(batch, seq):
    # Fused: x read once; K and V written; h written by the attention kernel and read by the FFN kernel;
    # the layer output written. Nothing else (q, scores, probs, FFN intermediates) reaches memory.
    layer = block(run("prefill", batch, seq), "layer")
    t = layer.totals.traffic
    act = batch * seq * D * BYTES  # one [B, S, d] bf16 tensor
    kv_one = batch * seq * KV * HD * BYTES  # K or V of the new tokens
    assert t.activation_bytes == 4 * act
    assert t.kv_cache_bytes == 2 * kv_one == 2 * batch * seq * 1024 * 2
    assert t.weight_bytes == LAYER_WEIGHT_BYTES
    assert t.bytes_read == LAYER_WEIGHT_BYTES + 2 * act  # weights, x, h
    assert t.bytes_written == 2 * act + 2 * kv_one  # h, out, k, v


def test_fused_prefill_b32_activation_figures():
    # b=32 s=1024: 4 x 268,435,456 bytes of activations and 2 x 67,108,864 bytes of new K/V per layer.
    t = block(run("prefill", 32, 1024), "layer").totals.traffic
    assert 32 * 1024 * 4096 * 2 == 268_435_456
    assert t.activation_bytes == 4 * 268_435_456
    assert t.kv_cache_bytes == 2 * 67_108_864


@pytest.mark.parametrize("batch,context", [(32, 1024), (1, 1), (3, 100)])
def test_fused_decode_layer_traffic(batch, context):
    # Fused decode: read the whole KV cache, write one new K and V per sequence; 4 [B, 1, d] activations.
    t = block(run("decode", batch, context), "layer").totals.traffic
    cache_read = batch * context * KV * HD * BYTES * 2
    new_write = batch * 1 * KV * HD * BYTES * 2
    act = batch * 1 * D * BYTES
    assert t.kv_cache_bytes == cache_read + new_write
    assert t.activation_bytes == 4 * act
    assert t.bytes_read == LAYER_WEIGHT_BYTES + 2 * act + cache_read
    assert t.bytes_written == 2 * act + new_write


def test_fused_decode_kv_figures_match_reference():
    # The reference's literal decode figures: KV read 134,217,728, KV write 131,072, [B,1,d] 262,144 bytes.
    t = block(run("decode", 32, 1024), "layer").totals.traffic
    assert 32 * 1024 * 8 * 128 * 2 * 2 == 134_217_728
    assert 32 * 1 * 8 * 128 * 2 * 2 == 131_072
    assert t.kv_cache_bytes == 134_217_728 + 131_072
    assert t.activation_bytes == 4 * 262_144


# -- arithmetic intensity ----------------------------------------------------------------------------

def test_batch1_prefill_intensity_is_about_980_not_300():
    # b=1 s=1024: matmul FLOPs ~4.64e11 over ~4.74e8 bytes (weights dominate) = ~980 FLOP/byte; the reference's
    # "10,000 / 32 = 300" wrongly scales intensity linearly with batch although the weight bytes do not scale.
    hand_flops = sum(hand_matmul_flops("prefill", 1, 1024).values())
    hand_bytes = LAYER_WEIGHT_BYTES + 4 * 1024 * D * BYTES + 2 * 1024 * KV * HD * BYTES
    assert 975 < hand_flops / hand_bytes < 985
    t = block(run("prefill", 1, 1024), "layer").totals
    intensity = t.flops / t.traffic.bytes
    assert 975 <= intensity <= 985
    assert t.intensity == pytest.approx(intensity)
    assert not 250 <= intensity <= 350  # the reference's ~300
    assert intensity > H100_RIDGE


def test_batch32_prefill_intensity_in_the_thousands():
    # b=32 s=1024: 14.8 TFLOP over ~1.64 GB (weights + 4 activations + new KV) = ~9,000 FLOP/byte.
    t = block(run("prefill", 32, 1024), "layer").totals
    assert t.flops / t.traffic.bytes > 5000


def test_batch32_decode_intensity_about_25():
    # b=32 decode: 14.5 GFLOP over ~572 MB (weights + 134 MB of cache) = ~25 FLOP/byte, below the ridge.
    t = block(run("decode", 32, 1024), "layer").totals
    intensity = t.flops / t.traffic.bytes
    assert 20 < intensity < 30
    assert intensity < H100_RIDGE


# -- embedding and lm_head ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,batch,n", [("prefill", 32, 1024), ("prefill", 1, 1024), ("prefill", 4, 3),
                                           ("decode", 32, 1024), ("decode", 1, 7)])
def test_lm_head_flops(kind, batch, n):
    # Prefill takes only the last position of each sequence to the lm_head; decode has one token anyway.
    head = op(block(run(kind, batch, n), "embed_head"), "lm_head")
    assert head.kind == "matmul"
    assert head.cost.flops == 2 * batch * 1 * 4096 * 128256


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("kind,batch,n", [("prefill", 32, 1024), ("prefill", 1, 1024), ("prefill", 256, 1024),
                                           ("decode", 32, 1024), ("decode", 1, 5)])
def test_embedding_reads_only_used_rows(plan, kind, batch, n):
    # A lookup reads one row per token, never more than the whole table (b=256 s=1024 > vocab rows).
    tokens = batch * (n if kind == "prefill" else 1)
    emb = op(block(run(kind, batch, n, plan), "embed_head"), "embedding")
    assert emb.cost.traffic.weight_bytes == min(tokens, 128256) * 4096 * 2
    assert emb.cost.flops == 0


def test_lm_head_reads_its_whole_matrix():
    # The untied lm_head reads all vocab x d weights whatever the batch.
    head = op(block(run("decode", 1, 1), "embed_head"), "lm_head")
    assert head.cost.traffic.weight_bytes == 128256 * 4096 * 2


# -- model totals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,batch,n", [("prefill", 32, 1024), ("decode", 32, 1024)])
def test_model_totals_are_layers_times_32_plus_embed_head(kind, batch, n):
    # The model is 32 identical layers plus one embedding/head block.
    res = run(kind, batch, n)
    layer, eh = block(res, "layer"), block(res, "embed_head")
    assert layer.count == LAYERS and eh.count == 1
    assert len(res.blocks) == 2
    assert res.totals.flops == 32 * layer.totals.flops + eh.totals.flops
    assert res.totals.traffic.bytes == 32 * layer.totals.traffic.bytes + eh.totals.traffic.bytes
    assert res.totals.time_s == pytest.approx(32 * layer.totals.time_s + eh.totals.time_s, rel=1e-12)


def test_model_params_and_weight_bytes():
    # 8,030,261,248 parameters (Meta-Llama-3-8B safetensors total); 2 bytes each in bf16.
    res = run("decode", 32, 1024)
    hand = VOCAB * D * 2 + LAYERS * (LAYER_WEIGHT_BYTES // BYTES) + D
    assert hand == 8_030_261_248
    assert res.params == 8_030_261_248
    assert res.weight_bytes == 8_030_261_248 * 2
