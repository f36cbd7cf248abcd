"""The fusion pass and its byte accounting, on graphs small enough to count by hand."""

import pytest

from opgraph import hardware
from opgraph import models
from opgraph import FuseRule, FusionPlan, GraphBuilder, Phase, analyze, apply, strategy
from opgraph.pricing.cost import block_cost
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FusionError

H100 = hardware.load("h100-sxm")


def chain():
    """x[2,4,8] -> rmsnorm -> linear(8->16) -> silu -> z, all bf16 (2 bytes)."""
    b = GraphBuilder(name="chain")
    x = b.input("x", (2, 4, 8))
    h = b.norm("norm", x, b.weight("norm.weight", (8,)), out="h")
    y = b.linear("proj", h, b.weight("proj.weight", (16, 8)), out="y")
    return b.build(outputs=[b.elementwise("act", "silu", y, out="z")])


def traffic(graph, plan):
    return block_cost("b", 1, graph, apply(plan, graph), H100).totals.traffic


def test_unfused_chain_bytes_by_hand():
    t = traffic(chain(), strategy("unfused"))
    x, w_norm, h, w_proj, y, z = 2 * 4 * 8 * 2, 8 * 2, 2 * 4 * 8 * 2, 16 * 8 * 2, 2 * 4 * 16 * 2, 2 * 4 * 16 * 2
    assert t.bytes_read == (x + w_norm) + (h + w_proj) + y  # each kernel reads its inputs
    assert t.bytes_written == h + y + z  # every result crosses a kernel boundary or is the output
    assert t.weight_bytes == w_norm + w_proj


def test_fused_chain_touches_only_input_weights_and_output():
    t = traffic(chain(), strategy("fused"))
    assert t.bytes_read == 2 * 4 * 8 * 2 + 8 * 2 + 16 * 8 * 2
    assert t.bytes_written == 2 * 4 * 16 * 2


def test_flops_do_not_depend_on_fusion():
    g = chain()
    flops = {p: block_cost("b", 1, g, apply(strategy(p), g), H100).totals.flops for p in ("unfused", "flash", "fused")}
    assert len(set(flops.values())) == 1


def test_a_weight_is_read_once_per_kernel_that_uses_it():
    b = GraphBuilder(name="shared")
    x = b.input("x", (4, 8))
    w = b.weight("w", (8, 8))
    y = b.linear("first", x, w, out="y")
    g = b.build(outputs=[b.linear("second", y, w, out="z")])
    w_bytes = 8 * 8 * 2
    assert traffic(g, strategy("unfused")).weight_bytes == 2 * w_bytes
    assert traffic(g, FusionPlan("both", groups=[("first", "second")])).weight_bytes == w_bytes


def test_op_rows_add_up_to_the_block_totals():
    cost = block_cost("b", 1, chain(), apply(strategy("fused"), chain()), H100)
    assert sum(o.cost.traffic.bytes for o in cost.ops) == cost.totals.bytes
    assert sum(o.cost.flops for o in cost.ops) == cost.totals.flops
    assert sum(o.share for o in cost.ops) == pytest.approx(1.0)


LLAMA = models.get("llama-3-8b")


@pytest.mark.parametrize("phase", [Phase.prefill(2, 16), Phase.decode(2, 16)], ids=["prefill", "decode"])
def test_llama_materialized_sets_per_strategy(phase):
    layer = LLAMA.layer(phase)
    produced = set(layer.producer)
    # unfused: every result is written, the QK^T scores and softmax output included.
    assert apply(strategy("unfused"), layer).materialized == produced
    assert len(apply(strategy("unfused"), layer).kernels) == len(layer.ops)
    # flash: only the attention core's internals stay on chip.
    assert apply(strategy("flash"), layer).materialized == produced - {"scores", "probs"}
    # fused: K and V (the cache), the attention block's output h, and the layer output.
    fused = apply(strategy("fused"), layer)
    assert fused.materialized == {"k_rope", "v", "h", "out"}
    assert [k.name for k in fused.kernels] == ["input_layernorm", "post_attention_layernorm"]


def test_decode_reads_the_whole_cache_and_writes_only_the_new_entry():
    b, ctx = 4, 100
    cost = analyze(LLAMA.build(Phase.decode(b, ctx)), strategy("fused"), H100).blocks[0]
    kv_width = LLAMA.n_kv_heads * LLAMA.head_dim
    cache_read = 2 * b * ctx * kv_width * 2  # K and V, bf16
    new_write = 2 * b * 1 * kv_width * 2
    assert cost.totals.traffic.kv_cache_bytes == cache_read + new_write
    qk = next(o for o in cost.ops if o.name == "qk")
    assert qk.cost.flops == 2 * b * LLAMA.n_heads * 1 * (ctx + 1) * LLAMA.head_dim


def test_user_plan_with_groups_and_rules():
    layer = LLAMA.layer(Phase.prefill(1, 8))
    plan = FusionPlan("qkv+flash", rules=strategy("flash").rules, groups=[("q_proj", "k_proj", "v_proj")])
    part = apply(plan, layer)
    kernel = part.kernel_of["q_proj"]
    assert part.kernel_of["k_proj"] == part.kernel_of["v_proj"] == kernel
    # Fusing the three projections means x_norm is read once instead of three times.
    x_norm = 1 * 8 * 4096 * 2
    saved = traffic(layer, strategy("flash")).bytes - traffic(layer, plan).bytes
    assert saved == 2 * x_norm


def test_rule_kinds_match_op_functions_too():
    layer = LLAMA.layer(Phase.prefill(1, 8))
    plan = FusionPlan("act-into-gate", rules=[FuseRule("silu into gate", producer={"linear"}, consumer={"silu"})])
    part = apply(plan, layer)
    assert part.kernel_of["act"] == part.kernel_of["gate_proj"] != part.kernel_of["up_proj"]


def test_a_group_that_makes_kernels_cyclic_is_rejected():
    layer = LLAMA.layer(Phase.prefill(1, 8))
    # Both read the layer input x (so the group is connected), but the residual add needs o_proj's result,
    # which needs the norm's: with the ops in between in other kernels, the kernels would wait on each other.
    plan = FusionPlan("bad", groups=[("input_layernorm", "attn_residual")])
    with pytest.raises(FusionError, match="fusion plan 'bad' makes the kernel graph cyclic"):
        apply(plan, layer)


def test_a_group_that_is_not_connected_is_rejected():
    layer = LLAMA.layer(Phase.prefill(1, 8))
    plan = FusionPlan("apart", groups=[("input_layernorm", "o_proj")])  # no edge and no shared input
    with pytest.raises(FusionError, match=r"group \['input_layernorm', 'o_proj'\] is not connected"):
        apply(plan, layer)


def test_never_rule_keeps_kv_writes_out_of_the_attention_kernel():
    layer = LLAMA.layer(Phase.decode(2, 16))
    fused = strategy("fused")
    plan = FusionPlan("fused-kv-split", (FuseRule("never across a KV-cache write", tensor={"kv_cache"}, never=True),
                                         *fused.rules))
    part = apply(plan, layer)
    # The K/V producers (rope_k, v_proj) and their consumers (qk, av) end up in different kernels, even though
    # the single-consumer rule would have joined them through q.
    assert part.kernel_of["rope_k"] != part.kernel_of["qk"]
    assert part.kernel_of["v_proj"] != part.kernel_of["av"]
    # So q now crosses a kernel boundary too.
    assert "q_rope" in part.materialized and "q_rope" not in apply(fused, layer).materialized


def test_a_group_naming_a_missing_op_is_rejected():
    layer = LLAMA.layer(Phase.prefill(1, 8))
    with pytest.raises(FusionError, match="names op \\['qkv_proj'\\] that is not in block"):
        apply(FusionPlan("typo", groups=[("q_proj", "qkv_proj")]), layer)


def test_a_group_matching_nothing_in_the_model_is_not_silently_ignored():
    with pytest.raises(FusionError, match="group \\[\\['foo', 'bar'\\]\\] matches no op of model 'llama-3-8b'"):
        analyze(LLAMA.build(Phase.decode(1, 8)), FusionPlan("nothing", groups=[("foo", "bar")]), H100)


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(OpgraphError, match="valid: unfused, flash, fused, megakernel"):
        strategy("flash2")


def test_single_consumer_is_judged_per_result():
    # A split op with two outputs, each read by one op: both readers may fuse with it. A result read by two ops
    # stays in memory.
    from opgraph.core import ops
    from opgraph.core.graph import Graph
    from opgraph.core.tensor import BF16, Role, Tensor
    x = Tensor("x", (2, 8), BF16, Role.INPUT)
    a, b = Tensor("a", (2, 8), BF16), Tensor("b", (2, 8), BF16)
    split = ops.Op("split", "elementwise", "silu", (x,), (a, b), 16)
    use_a = ops.elementwise("use_a", "silu", a, out="ya")
    use_b = ops.elementwise("use_b", "gelu", b, out="yb")
    twice = ops.elementwise("twice", "add", b, b, out="yb2")
    g = Graph([split, use_a, use_b])
    part = apply(FusionPlan("chains", [FuseRule("only reader", single_consumer=True)]), g)
    assert len(part.kernels) == 1 and part.materialized == {"ya", "yb"}
    g2 = Graph([split, use_a, use_b, twice])
    part2 = apply(FusionPlan("chains", [FuseRule("only reader", single_consumer=True)]), g2)
    assert part2.kernel_of["use_a"] == part2.kernel_of["split"] != part2.kernel_of["use_b"]
    assert "b" in part2.materialized and "a" not in part2.materialized
