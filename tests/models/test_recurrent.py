"""Mamba-2 and Gated DeltaNet mixers (models/recurrent.py): parameter counts against the checkpoints' tensors, FLOPs
and bytes derived by hand on small shapes in prefill and decode, a cache that does not grow with the context, and
one GPU's share under tensor parallelism."""

import re

import pytest

from opgraph import Phase, hardware, strategy
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.pricing.cost import block_cost
from opgraph.core.fusion import apply
from opgraph.core.graph import GraphBuilder
from opgraph.core.tensor import BF16, FP32, Precision, Role
from opgraph.errors import OpgraphError
from opgraph.models.parallel import Parallel
from opgraph.models.recurrent import gated_deltanet, mamba2_mixer

H100 = hardware.load("h100-sxm")
# nvidia/Nemotron-H-8B-Base-8K config.json (models/configs/nemotron-h-8b.json, source in SOURCES.json): hidden_size
# 4096, mamba_num_heads 128, mamba_head_dim 64, ssm_state_size 128, n_groups 8, conv_kernel 4, chunk_size 128,
# use_conv_bias true, use_bias false.
NEMOTRON_H_8B = dict(n_heads=128, head_dim=64, d_state=128, n_groups=8, d_conv=4, chunk_size=128)
# Qwen/Qwen3-Next-80B-A3B config.json (models/configs/qwen3-next-80b-a3b.json): hidden_size 2048,
# linear_num_key_heads 16, linear_num_value_heads 32, linear_key_head_dim 128, linear_value_head_dim 128,
# linear_conv_kernel_dim 4.
QWEN3_NEXT = dict(num_k_heads=16, num_v_heads=32, head_k_dim=128, head_v_dim=128, d_conv=4)


def build(part, phase, d, par=Parallel.SINGLE, precision=BF16, **kw):
    b = GraphBuilder(precision)
    x = b.input("x", (phase.batch, phase.new_tokens, d))
    with b.scope("layer."):
        y = part(b, x, phase, par, **kw)
    return b.build(outputs=[y])


def checkpoint_names(g):
    """Weight names with the row-block suffix dropped: the checkpoint's tensors."""
    return {re.sub(r"\[.*\]$", "", w.name) for w in g.weights()}


def flops(g, name):
    return g.ops[f"layer.{name}"].flops


# -- parameter counts -------------------------------------------------------------------------------------

def test_nemotron_h_8b_mixer_parameters_equal_the_checkpoint():
    g = build(mamba2_mixer, Phase.decode(1, 8), 4096, **NEMOTRON_H_8B)
    d_inner, conv_dim = 128 * 64, 128 * 64 + 2 * 8 * 128
    tensors = {  # backbone.layers.N.mixer.* in the checkpoint
        "mixer.in_proj.weight": (2 * d_inner + 2 * 8 * 128 + 128) * 4096,  # [18560, 4096]
        "mixer.conv1d.weight": conv_dim * 1 * 4,  # [10240, 1, 4]
        "mixer.conv1d.bias": conv_dim,
        "mixer.A_log": 128, "mixer.D": 128, "mixer.dt_bias": 128,
        "mixer.norm.weight": d_inner,
        "mixer.out_proj.weight": 4096 * d_inner,
    }
    assert g.params() == sum(tensors.values()) == 109_635_968
    assert checkpoint_names(g) == {f"layer.{n}" for n in tensors}


def test_qwen3_next_gated_deltanet_parameters_equal_the_checkpoint():
    g = build(gated_deltanet, Phase.decode(1, 8), 2048, **QWEN3_NEXT)
    key_dim, value_dim = 16 * 128, 32 * 128
    tensors = {  # model.layers.N.linear_attn.* in the checkpoint
        "linear_attn.in_proj_qkvz.weight": (2 * key_dim + 2 * value_dim) * 2048,  # [12288, 2048]
        "linear_attn.in_proj_ba.weight": 2 * 32 * 2048,  # [64, 2048]
        "linear_attn.conv1d.weight": (2 * key_dim + value_dim) * 1 * 4,  # [8192, 1, 4]
        "linear_attn.dt_bias": 32, "linear_attn.A_log": 32,
        "linear_attn.norm.weight": 128,
        "linear_attn.out_proj.weight": 2048 * value_dim,
    }
    assert g.params() == sum(tensors.values()) == 33_718_464
    assert checkpoint_names(g) == {f"layer.{n}" for n in tensors}


# -- Mamba-2: FLOPs and bytes by hand -----------------------------------------------------------------------

D, H, P, N, G, K, Q = 16, 4, 2, 3, 2, 4, 4  # small: d_inner 8, conv_dim 8 + 2*2*3 = 20, in_proj 8 + 20 + 4 = 32
SMALL = dict(n_heads=H, head_dim=P, d_state=N, n_groups=G, d_conv=K, chunk_size=Q)
D_INNER, CONV = H * P, H * P + 2 * G * N


def ssd_prefill(bsz, s):
    """Dao & Gu 2024 section 6 as mamba_chunk_scan_combined runs it, per chunk of q positions."""
    total = 0
    for start in range(0, s, Q):
        q = min(Q, s - start)
        pairs = q * (q + 1) // 2
        total += bsz * H * (q * (10 + N + 4 * N * P + 3 * P) + pairs * (4 + 2 * P) + 2 * N * P + 1)
        total += bsz * G * 2 * q * q * N
    return total + 2 * H


def test_mamba2_prefill_flops_by_hand():
    bsz, s = 2, 6  # chunks of 4 and 2
    g = build(mamba2_mixer, Phase.prefill(bsz, s), D, **SMALL)
    m = bsz * s
    assert flops(g, "in_proj") == 2 * m * D * (2 * D_INNER + 2 * G * N + H)
    assert flops(g, "conv1d") == m * CONV * (2 * K + 1)
    assert flops(g, "conv_act") == 4 * m * CONV
    assert flops(g, "ssd") == ssd_prefill(bsz, s)
    assert flops(g, "gated_norm") == (4 + 1 + 4) * m * D_INNER + 3 * m * G
    assert flops(g, "out_proj") == 2 * m * D_INNER * D
    assert {op.part for op in g.ops.values()} == {"attention"}
    assert kv_cache_bytes(g) == 2 * bsz * ((K - 1) * CONV + H * P * N)  # the states the prompt leaves, bf16


def test_mamba2_decode_flops_and_bytes_by_hand():
    bsz = 2
    g = build(mamba2_mixer, Phase.decode(bsz, 10), D, **SMALL)
    m = bsz
    assert flops(g, "conv1d") == m * CONV * (2 * K + 1)
    assert flops(g, "ssd") == bsz * H * (5 * P * N + N + 2 * P + 6) + 2 * H  # selective_state_update
    assert g.ops["layer.ssd"].kind == "elementwise"
    conv_state, ssm_state = bsz * (K - 1) * CONV * 2, bsz * H * P * N * 2
    # unfused: every op reads its inputs and writes its outputs (bf16, 2 bytes an element)
    expected = 2 * (
        m * D + 32 * D + m * (D_INNER + CONV + H)  # in_proj: x, W, z | xBC | dt
        + m * CONV + CONV * K + CONV + m * CONV  # conv1d: xBC, weight, bias, out
        + 2 * m * CONV  # SiLU
        + m * CONV + m * H + 3 * H + m * D_INNER  # ssd: xBC, dt, A_log / D / dt_bias, y
        + 3 * m * D_INNER + D_INNER  # gated norm: y, z, weight, out
        + m * D_INNER + D * D_INNER + m * D  # out_proj
    ) + 2 * (conv_state + ssm_state)  # each state read and written
    cost = block_cost("mixer", 1, g, apply(strategy("unfused"), g), H100)
    assert cost.totals.traffic.bytes == expected
    assert cost.totals.traffic.kv_cache_bytes == 2 * (conv_state + ssm_state)
    assert kv_cache_bytes(g) == conv_state + ssm_state


# -- Gated DeltaNet: FLOPs by hand --------------------------------------------------------------------------

HK, HV, DK, DV = 2, 4, 8, 6
SMALL_GDN = dict(num_k_heads=HK, num_v_heads=HV, head_k_dim=DK, head_v_dim=DV, d_conv=K, chunk_size=4)
GDN_CONV = 2 * HK * DK + HV * DV  # 32 + 24 = 56


def test_gated_deltanet_prefill_flops_by_hand():
    bsz, s = 2, 6  # chunks of 4 and 2
    g = build(gated_deltanet, Phase.prefill(bsz, s), D, **SMALL_GDN)
    m = bsz * s
    assert flops(g, "in_proj_qkvz") == 2 * m * D * (GDN_CONV + HV * DV)
    assert flops(g, "in_proj_ba") == 2 * m * D * 2 * HV
    assert flops(g, "conv1d") == m * GDN_CONV * 2 * K  # no bias
    delta = 0
    for q in (4, 2):  # per value head and chunk (fla's chunk kernels; see tests/core/test_state.py)
        delta += (q * (6 * DK * DV + 3 * DK + 7 * DV + 5) + q * q * (6 * DK + 4 * DV + 6) + (q ** 3 - q) // 3
                  + DK * DV + 1)
    delta = bsz * (HV * (delta + s * 11) + HK * s * 2 * (3 * DK + 2))
    assert flops(g, "delta_rule") == delta
    assert flops(g, "gated_norm") == 9 * m * HV * DV + 3 * m * HV  # per value head
    assert flops(g, "out_proj") == 2 * m * HV * DV * D
    assert kv_cache_bytes(g) == 2 * bsz * ((K - 1) * GDN_CONV + HV * DK * DV)


def test_gated_deltanet_decode_flops_and_state_bytes_by_hand():
    bsz = 3
    g = build(gated_deltanet, Phase.decode(bsz, 10), D, **SMALL_GDN)
    assert flops(g, "delta_rule") == bsz * HV * (7 * DK * DV + 7 * DK + 2 * DV + 5 + 11)
    state = bsz * ((K - 1) * GDN_CONV + HV * DK * DV) * 2
    cost = block_cost("mixer", 1, g, apply(strategy("fused"), g), H100)
    assert cost.totals.traffic.kv_cache_bytes == 2 * state  # read and written, whatever the plan
    assert kv_cache_bytes(g) == state


# -- the cache does not grow with the context ------------------------------------------------------------

@pytest.mark.parametrize("part, d, kw, conv, recurrent", [
    (mamba2_mixer, 4096, NEMOTRON_H_8B, 3 * 10240, 128 * 64 * 128),
    (gated_deltanet, 2048, QWEN3_NEXT, 3 * 8192, 32 * 128 * 128),
])
def test_state_is_independent_of_the_context(part, d, kw, conv, recurrent):
    short, long = (build(part, Phase.decode(4, c), d, **kw) for c in (10, 10_000))
    assert kv_cache_bytes(short) == kv_cache_bytes(long) == 4 * (conv + recurrent) * 2
    assert sum(o.flops for o in short.ops.values()) == sum(o.flops for o in long.ops.values())
    # an fp32 state dtype is the recurrent state's; vLLM keeps the conv window at the model's dtype whatever
    # mamba_ssm_cache_dtype says (MambaStateDtypeCalculator._mamba_state_dtype: conv follows mamba_cache_dtype)
    fp32 = build(part, Phase.decode(4, 10), d, precision=Precision(BF16, BF16, BF16, state=FP32), **kw)
    assert kv_cache_bytes(fp32) == 4 * (conv * 2 + recurrent * 4) and fp32.weight_bytes() == short.weight_bytes()
    assert {fp32.tensors[n].dtype for n in ("layer.conv_state", "layer.conv_state_new")} == {BF16}


# -- tensor parallelism --------------------------------------------------------------------------------------

def test_tp2_splits_the_mamba_heads_groups_and_state():
    whole = build(mamba2_mixer, Phase.decode(2, 10), 4096, **NEMOTRON_H_8B)
    half = build(mamba2_mixer, Phase.decode(2, 10), 4096, Parallel(2), **NEMOTRON_H_8B)
    assert half.tensors["layer.ssm_state_new"].shape == (2, 64, 64, 128)
    assert half.tensors["layer.conv_state_new"].shape == (2, 3, 64 * 64 + 2 * 4 * 128)  # 4 of the 8 groups
    assert 2 * kv_cache_bytes(half) == kv_cache_bytes(whole)
    assert 2 * half.params() == whole.params()  # every weight splits (the groups too: none replicated)
    ar = half.ops["layer.out_allreduce"]
    assert ar.fn == "all_reduce" and ar.group == 2 and ar.part == "attention"


def test_tp_replicates_a_single_group():
    g = build(mamba2_mixer, Phase.decode(1, 10), D, Parallel(2), **dict(SMALL, n_groups=1))
    assert g.tensors["layer.conv_state_new"].shape == (1, K - 1, H // 2 * P + 2 * N)  # B and C whole on each GPU
    with pytest.raises(OpgraphError, match="SSM groups"):
        build(mamba2_mixer, Phase.decode(1, 10), 96, Parallel(2), n_heads=6, head_dim=2, d_state=3, n_groups=3)


def test_tp2_splits_the_deltanet_heads_and_state():
    whole = build(gated_deltanet, Phase.decode(2, 10), 2048, **QWEN3_NEXT)
    half = build(gated_deltanet, Phase.decode(2, 10), 2048, Parallel(2), **QWEN3_NEXT)
    assert half.tensors["layer.recurrent_state_new"].shape == (2, 16, 128, 128)
    assert 2 * kv_cache_bytes(half) == kv_cache_bytes(whole)
    assert half.params() == (whole.params() - 128) // 2 + 128  # the [head_v_dim] norm weight is on every GPU
    assert half.ops["layer.out_allreduce"].group == 2


def test_sequence_parallel_ends_in_a_reduce_scatter():
    g = build(gated_deltanet, Phase.prefill(1, 8), D, Parallel(2, 1, 1), **SMALL_GDN)
    rs = g.ops["layer.out_reducescatter"]
    assert rs.fn == "reduce_scatter" and rs.outputs[0].shape == (1, 4, D)


def test_states_are_state_role():
    g = build(mamba2_mixer, Phase.decode(1, 10), D, **SMALL)
    assert {n for n, t in g.tensors.items() if t.role is Role.STATE} == {
        "layer.conv_state", "layer.conv_state_new", "layer.ssm_state", "layer.ssm_state_new"}
    p = build(mamba2_mixer, Phase.prefill(1, 10), D, **SMALL)
    assert {n for n, t in p.tensors.items() if t.role is Role.STATE} == {"layer.conv_state_new", "layer.ssm_state_new"}
