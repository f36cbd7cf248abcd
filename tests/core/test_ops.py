"""Exact FLOP counts of single ops on tiny shapes, each against its hand formula."""

import pytest

from opgraph.core import ops
from opgraph.errors import OpgraphError
from opgraph.core.tensor import BF16, INT4, INT32, Role, Tensor


def act(name, *shape):
    return Tensor(name, shape, BF16, Role.INPUT)


def weight(name, *shape):
    return Tensor(name, shape, BF16, Role.WEIGHT)


def test_linear_is_2mnk():
    # [2, 4, 8] @ [8 -> 16]: M = 2*4 rows, each output element one 8-long dot product of 8 multiply-adds.
    op = ops.linear("p", act("x", 2, 4, 8), weight("w", 16, 8))
    assert op.flops == 2 * (2 * 4) * 16 * 8
    assert op.kind == "matmul"
    assert op.outputs[0].shape == (2, 4, 16)


def test_linear_bias_adds_one_flop_per_output():
    op = ops.linear("p", act("x", 3, 8), weight("w", 5, 8), bias=weight("b", 5))
    assert op.flops == 2 * 3 * 5 * 8 + 3 * 5


def test_linear_rejects_mismatched_inner_dim():
    with pytest.raises(OpgraphError, match="'p'.*last dim 7"):
        ops.linear("p", act("x", 3, 7), weight("w", 5, 8))


def test_qk_counts_every_query_head_over_all_keys():
    # GQA: 4 query heads share 2 KV heads, but each query head still does Sq x Sk dot products of length hd.
    q = act("q", 2, 3, 4 * 8)
    cache, new = Tensor("kc", (2, 5, 2 * 8), BF16, Role.KV_CACHE), act("k", 2, 3, 2 * 8)
    op = ops.attention_scores("qk", q, (cache, new), heads=4, kv_heads=2, head_dim=8)
    assert op.outputs[0].shape == (2, 4, 3, 8)
    assert op.flops == 2 * 2 * 4 * 3 * (5 + 3) * 8
    assert op.kind == "matmul"


def test_av_matches_qk_shape_and_cost():
    p = act("p", 2, 4, 3, 8)
    v = act("v", 2, 8, 2 * 8)
    op = ops.attention_values("av", p, (v,), heads=4, kv_heads=2, head_dim=8)
    assert op.outputs[0].shape == (2, 3, 4 * 8)
    assert op.flops == 2 * 2 * 4 * 3 * 8 * 8


def test_attention_rejects_uneven_gqa_groups():
    with pytest.raises(OpgraphError, match="kv_heads \\(3\\) must .*divide heads \\(4\\)"):
        ops.attention_scores("qk", act("q", 1, 1, 32), (act("k", 1, 1, 24),), heads=4, kv_heads=3, head_dim=8)


def test_av_rejects_values_that_do_not_cover_the_keys():
    with pytest.raises(OpgraphError, match="values cover 5 positions"):
        ops.attention_values("av", act("p", 1, 2, 1, 6), (act("v", 1, 5, 16),), heads=2, kv_heads=2, head_dim=8)


def test_softmax_five_flops_per_score():
    assert ops.softmax("s", act("x", 2, 4, 3, 7)).flops == 5 * 2 * 4 * 3 * 7


def test_rmsnorm_and_layernorm_counts():
    x = act("x", 6, 10)
    # RMSNorm: 4 per element (square, sum, scale, gamma) + 3 per row (divide, eps, rsqrt).
    assert ops.norm("n", x, weight("g", 10)).flops == 4 * 60 + 3 * 6
    # LayerNorm with bias: 7 per element + 4 per row.
    assert ops.norm("n", x, weight("g", 10), bias=weight("b", 10), fn="layernorm").flops == 7 * 60 + 4 * 6


def test_elementwise_counts():
    x, y = act("x", 3, 5), act("y", 3, 5)
    assert ops.elementwise("a", "add", x, y).flops == 15
    assert ops.elementwise("m", "mul", x, y).flops == 15
    assert ops.elementwise("s", "silu", x).flops == 4 * 15
    assert ops.elementwise("g", "gelu", x).flops == 8 * 15
    r = ops.elementwise("r", "relu2", x)  # max(x, 0) then its square: 2 per element, no exponential
    assert (r.flops, r.transcendentals) == (2 * 15, 0)
    r = ops.elementwise("r", "relu", x)  # max(x, 0): one compare per element (OPT's MLP)
    assert (r.flops, r.transcendentals) == (15, 0)
    with pytest.raises(OpgraphError, match="valid: add, mul, silu, gelu, relu, relu2"):
        ops.elementwise("t", "erf", x)
    with pytest.raises(OpgraphError, match="shape mismatch"):
        ops.elementwise("a", "add", x, act("z", 5, 3))


def test_rope_three_flops_per_rotated_element():
    x = act("q", 2, 3, 4 * 16)
    assert ops.rope("r", x, head_dim=16).flops == 3 * 2 * 3 * 64
    # Partial rotary (e.g. rotary_dim 8 of 16): only half of each head rotates.
    assert ops.rope("r", x, head_dim=16, rotary_dim=8).flops == 3 * 2 * 3 * 4 * 8


def test_embedding_reads_only_used_rows():
    ids = Tensor("ids", (2, 3), INT32, Role.INPUT)
    op = ops.embedding("e", ids, weight("table", 100, 8))
    assert op.flops == 0
    assert op.read_elems(1) == 6 * 8  # 6 looked-up rows of 8, not the 100-row table
    small = ops.embedding("e", Tensor("ids", (50, 3), INT32, Role.INPUT), weight("table", 100, 8))
    assert small.read_elems(1) == 100 * 8  # 150 lookups can touch at most all 100 rows


def test_take_last_reads_one_row_per_sequence():
    op = ops.take_last("t", act("h", 4, 9, 16))
    assert op.outputs[0].shape == (4, 1, 16)
    assert op.read_elems(0) == 4 * 16


def test_sub_byte_tensors_pack():
    # int4: two values per byte; an odd count rounds up to a whole byte.
    assert Tensor("w", (3, 5), INT4, Role.WEIGHT).nbytes == 8
    assert Tensor("w", (4, 4), INT4, Role.WEIGHT).nbytes == 8


def test_bad_shapes_are_rejected():
    with pytest.raises(OpgraphError, match="positive int"):
        Tensor("x", (2, 0), BF16)


def test_causal_skip_counts_only_unmasked_pairs():
    # 4 new queries over 3 cached + 4 new keys: query i sees 3 + (i + 1) keys -> 3*4 + (1+2+3+4) = 22 pairs.
    assert ops.causal_pairs(4, 7) == 22
    # Prefill on an empty cache: the lower triangle with its diagonal, S(S+1)/2.
    assert ops.causal_pairs(1024, 1024) == 1024 * 1025 // 2
    q, k = act("q", 2, 4, 2 * 8), act("k", 2, 7, 2 * 8)
    full = ops.attention_scores("qk", q, (k,), heads=2, kv_heads=2, head_dim=8)
    causal = ops.attention_scores("qk", q, (k,), heads=2, kv_heads=2, head_dim=8, causal=True)
    assert full.flops == 2 * 2 * 2 * (4 * 7) * 8
    assert causal.flops == 2 * 2 * 2 * 22 * 8
    # Decode (one query attending to everything before it) loses nothing.
    q1 = act("q1", 2, 1, 16)
    assert ops.causal_pairs(1, 7) == 7
    assert ops.attention_scores("qk", q1, (k,), heads=2, kv_heads=2, head_dim=8, causal=True).flops == \
        2 * 2 * 2 * 7 * 8
