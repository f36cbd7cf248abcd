"""Engine plans (issue 17 §1): the kernels vLLM launches, expressed as a fusion plan with side-by-side (sibling)
fusion. Expected kernels are read off vLLM's model code (vllm/model_executor/models/llama.py: qkv_proj, rotary_emb,
attn, o_proj, post_attention_layernorm with the residual, gate_up_proj, act_fn, down_proj); expected sizes and bytes
are hand counts from the model's shapes."""

import pytest

from opgraph import FuseRule, FusionPlan, Phase, analyze, apply, hardware, models, strategy
from opgraph.errors import OpgraphError
from opgraph.files import planfile
from opgraph.pricing.cost import kernel_work

H100 = hardware.load("h100-sxm")
VLLM = strategy("vllm")


def kernels(name: str, block: int = 0, phase=Phase.decode(4, 100)):
    graph = models.get(name).build(phase).blocks[block].graph
    return graph, [k.ops for k in apply(VLLM, graph).kernels]


def test_a_llama_layer_runs_vllms_ten_kernels():
    _, ks = kernels("llama-3-8b")
    assert ks == [("input_layernorm",), ("q_proj", "k_proj", "v_proj"), ("rope_q", "rope_k"), ("qk", "softmax", "av"),
                  ("o_proj",), ("attn_residual", "post_attention_layernorm"), ("gate_proj", "up_proj"),
                  ("act", "mul"), ("down_proj",), ("mlp_residual",)]


def test_a_packed_gemm_is_one_gemm_over_all_its_columns():
    """QKV of Llama-3-8B: n = (32 + 2 x 8) heads x 128 = 6,144 columns over k = 4,096, for T = 4 tokens; gate_up:
    2 x 14,336 columns."""
    graph, _ = kernels("llama-3-8b")
    cost = analyze(models.get("llama-3-8b").build(Phase.decode(4, 100)), VLLM, H100).blocks[0]
    rooflines = {o.name: o.cost for o in cost.ops}
    for ops, n in ((("q_proj", "k_proj", "v_proj"), 6144), (("gate_proj", "up_proj"), 2 * 14336)):
        kind, works = kernel_work([graph.ops[o] for o in ops], rooflines, H100)
        assert kind == "gemm" and len(works) == 1
        assert (works[0].gemm_rows, works[0].gemm_depth, works[0].gemm_cols) == (4, 4096, n)


def test_a_packed_gemm_reads_its_input_once():
    """Three GEMMs read x_norm three times, one QKV GEMM once; two read h_norm twice, one gate_up GEMM once: 2 + 1
    reads of T x d bf16 values fewer (T = 4, d = 4,096)."""
    build = models.get("llama-3-8b").build(Phase.decode(4, 100))
    apart = FusionPlan("apart", [r for r in VLLM.rules if not r.siblings or r.consumer != {"linear"}])
    packed = analyze(build, VLLM, H100).blocks[0].totals.bytes
    assert analyze(build, apart, H100).blocks[0].totals.bytes - packed == (2 + 1) * 4 * 4096 * 2


def test_moe_runs_the_routed_experts_as_one_call_packs_the_shared_experts_w13_and_leaves_the_router_alone():
    _, ks = kernels("deepseek-v3", block=1)
    assert ("experts.gate_proj", "experts.up_proj", "experts.act", "experts.mul", "experts.down_proj", "combine") in ks
    assert ("shared.gate_proj", "shared.up_proj") in ks and ("shared.down_proj",) in ks
    assert ("router",) in ks and ("q_a_proj", "kv_a_proj_with_mqa") in ks  # vLLM's fused_qkv_a_proj
    _, ks = kernels("qwen3-next-80b-a3b", block=0)
    assert ("router",) in ks and ("shared.gate",) in ks  # mlp.gate and mlp.shared_expert_gate: not packed in vLLM
    assert ("in_proj_qkvz",) in ks and ("in_proj_ba",) in ks


def test_q_and_k_rotate_in_one_kernel_even_after_their_own_norms():
    _, ks = kernels("qwen3-8b")
    assert ("rope_q", "rope_k") in ks and ("q_norm",) in ks and ("k_norm",) in ks


def test_siblings_never_merge_ops_that_depend_on_each_other():
    """Every linear of a layer as siblings without packed lists: q, k, v (one module, one input) merge, but o_proj
    reads attention's result and stays apart, as do the MLP's (another module)."""
    plan = FusionPlan("all linears", [FuseRule("siblings", consumer={"linear"}, siblings=True)])
    got = [k.ops for k in apply(plan, models.get("llama-3-8b").build(Phase.decode(4, 100)).blocks[0].graph).kernels]
    assert ("q_proj", "k_proj", "v_proj") in got and ("o_proj",) in got and ("gate_proj", "up_proj") in got


@pytest.mark.parametrize("rule, says", [
    ('siblings = true\nnever = true', "never cannot be combined"),
    ('siblings = true\nproducer = ["norm"]', "producer cannot be combined"),
    ('packed = [["q_proj", "k_proj"]]', "needs siblings"),
    ('siblings = true\npacked = ["q_proj"]', "packed must be a list of lists"),
    ('siblings = true\npacked = [["q_proj"]]', "at least two weight names"),
])
def test_bad_sibling_rules_are_refused_with_the_rule_named(tmp_path, rule, says):
    f = tmp_path / "p.toml"
    f.write_text(f'name = "p"\n[[rule]]\nname = "mine"\nconsumer = ["linear"]\n{rule}\n')
    with pytest.raises(OpgraphError, match=f"rule 1 \\('mine'\\).*{says}"):
        planfile.load(str(f))


@pytest.mark.parametrize("plan", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize("name", models.names())
def test_every_preset_builds_and_serves_under_every_engine_plan(name, plan):
    """Every shipped model: the plan applies (no cycle, no group error) and keeps attention in kernels of its own."""
    from opgraph.analysis.iteration import IterationPricer
    IterationPricer(models.get(name).build, strategy(plan), H100)


def test_tensorrt_llm_fuses_qwen3s_qk_norms_into_rope_and_runs_the_routed_experts_as_one_call():
    graph = models.get("qwen3-30b-a3b").build(Phase.decode(4, 100)).blocks[0].graph
    ks = [k.ops for k in apply(strategy("trtllm"), graph).kernels]
    assert ("q_norm", "k_norm", "rope_q", "rope_k") in ks  # fused_qk_norm_rope
    # its MoE op: FC1 (w13), the activation, FC2 with the finalize (the weighted sum)
    assert ("experts.gate_proj", "experts.up_proj", "experts.act", "experts.mul", "experts.down_proj", "combine") in ks
