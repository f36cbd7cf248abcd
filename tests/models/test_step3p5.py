"""StepFun's Step-3.5-Flash (model_type step3p5; Step-3.7's text_config), against hand counts.

The config's fields are those published for Step-3.5-Flash as two independent ports of its config.json give them
(a copy they call a deep copy of the file, and constants verified against it); the expected values follow its
modeling_step3p5.py and vLLM's and SGLang's step3p5.py, derived here from the widths, never from the program:
full-attention layers of 64 query heads over 8 KV heads (rope on half of each 128-wide head), sliding layers of 96
over 8 (a 512-key window, full rope), per-head q/k norms, a sigmoid gate a head from g_proj [heads, d]; layers 0-2
dense (11,264), 3-44 MoE (288 experts of 1,280, top-8, sigmoid with a selection bias, renormalized, times 3.0, a
shared expert of 1,280); SwiGLU clamped where swiglu_limits (routed) and swiglu_limits_shared give a limit.
"""

import pytest

from opgraph import OpgraphError, Phase
from opgraph.core.model import BuildOptions
from opgraph.models.hf_config import from_dict

N, MTP, D, V, HD, KV = 45, 3, 4096, 128896, 128, 8
FULL_HEADS, SLIDING_HEADS, DENSE, E, K, DE = 64, 96, 11264, 288, 8, 1280
TYPES = ["full_attention" if i % 4 == 0 else "sliding_attention" for i in range(N + MTP)]
STEP = {
    "model_type": "step3p5", "architectures": ["Step3p5ForCausalLM"], "hidden_size": D, "intermediate_size": DENSE,
    "num_hidden_layers": N, "vocab_size": V, "torch_dtype": "bfloat16", "use_qk_norm": True,
    "moe_layers_enum": ",".join(str(i) for i in range(3, N)), "num_attention_heads": FULL_HEADS,
    "num_attention_groups": KV, "head_dim": HD, "use_moe": True, "moe_num_experts": E, "moe_top_k": K,
    "moe_intermediate_size": DE, "share_expert_dim": DE, "moe_layer_offset": 0, "moe_every_n_layer": 1,
    "norm_expert_weight": True, "moe_router_activation": "sigmoid", "moe_router_scaling_factor": 3.0,
    "att_impl_type": "GQA", "tie_word_embeddings": False, "use_head_wise_attn_gate": True, "sliding_window": 512,
    "use_moe_router_bias": True, "need_fp32_gate": True, "sink": False, "layer_types": TYPES,
    "rope_theta": [5e6 if t == "full_attention" else 1e4 for t in TYPES], "use_rope_layers": [],
    "num_nextn_predict_layers": MTP, "partial_rotary_factors": [0.5 if t == "full_attention" else 1.0 for t in TYPES],
    "attention_other_setting": {"attention_type": "sliding_attention", "num_attention_heads": SLIDING_HEADS,
                                "num_attention_groups": KV, "head_dim": HD, "true_head_dim": HD},
    "swiglu_limits": [7.0 if i in (43, 44) else 0.0 for i in range(N + MTP)],
    "swiglu_limits_shared": [16.0 if i == 44 else 0.0 for i in range(N + MTP)],
    "zero_centered": True, "max_position_embeddings": 262144, "rms_norm_eps": 1e-05, "yarn_only_types": ["full_attention"],
    "rope_scaling": {"rope_type": "llama3", "factor": 2.0, "original_max_position_embeddings": 131072,
                     "low_freq_factor": 1.0, "high_freq_factor": 32.0}}


def load(data=STEP, **changes):
    return from_dict({**data, **changes}, name="step", source="test")


def attention_params(heads: int) -> int:
    return D * heads * HD + 2 * D * KV * HD + heads * HD * D + D * heads + 2 * HD  # q, k, v, o, g_proj; q/k norms


def test_parameters_by_hand():
    moe = E * 3 * D * DE + 3 * D * DE + D * E + E  # experts, shared expert, router and its bias
    total = (12 * attention_params(FULL_HEADS) + 33 * attention_params(SLIDING_HEADS) + N * 2 * D
             + 3 * 3 * D * DENSE + 42 * moe + 2 * V * D + D)
    assert total == 196_956_130_368  # "196B backbone" (model card)
    model = load().build(Phase.decode(1, 10))
    assert model.params() == total
    active = total - 42 * (E - K) * 3 * D * DE - V * D
    assert round(active / 1e9) == 11  # "11B active"


def layer_graph(model, pred):
    return next(b.graph for b in model.blocks if pred(b.name))


def test_each_attention_kind_and_its_gate_a_head():
    model = load().build(Phase.decode(2, 4000), BuildOptions(tp=8))
    full = layer_graph(model, lambda n: n.startswith("moe_full")).ops
    sliding = layer_graph(model, lambda n: n.startswith("moe_sliding")).ops
    for ops, heads in ((full, FULL_HEADS // 8), (sliding, SLIDING_HEADS // 8)):
        assert ops["g_proj"].flops == 2 * 2 * D * heads  # column-parallel over the heads
        assert ops["gate_sigmoid"].flops == 4 * 2 * heads and ops["gate_mul"].flops == 2 * heads * HD
    assert full["rope_q"].flops == 3 * 2 * (FULL_HEADS // 8) * HD // 2  # rope on half of each head
    assert sliding["rope_q"].flops == 3 * 2 * (SLIDING_HEADS // 8) * HD
    assert sliding["qk"].flops == 2 * 2 * (SLIDING_HEADS // 8) * HD * 512  # the window's 512 keys
    assert full["qk"].flops == 2 * 2 * (FULL_HEADS // 8) * HD * 4001


def test_swiglu_is_clamped_only_where_the_lists_say():
    model = load().build(Phase.decode(1, 10))
    graphs = [b.graph.ops for b in model.blocks if b.name.startswith("moe")]
    clamped = [ops for ops in graphs if ops["experts.act"].fn == "limit_swiglu"]
    plain = [ops for ops in graphs if ops["experts.act"].fn == "silu"]
    assert len(clamped) == 2 and plain  # layer 43 (routed only) and 44 (routed and shared)
    assert sorted(ops["shared.act"].fn for ops in clamped) == ["limit_swiglu", "silu"]
    assert all(ops["experts.act"].flops == 8 * K * DE for ops in clamped)  # silu 4, clamp 1 + 2, multiply 1


def test_router_scores_and_mtp_head():
    model = load().build(Phase.decode(1, 10))
    ops = layer_graph(model, lambda n: n.startswith("moe")).ops
    assert ops["router_sigmoid"].flops == 4 * E
    draft = load().draft_head("mtp")
    assert draft.n_layers == 1 and draft.layers.at(0).words()["keys"] == "sliding"
    assert load().mtp_layers == MTP


def test_step37_wraps_it():
    wrapped = from_dict({"model_type": "step3p7", "text_config": STEP, "vision_config": {"width": 1536}},
                        name="s37", source="test")
    assert wrapped.build(Phase.decode(1, 10)).params() == load().build(Phase.decode(1, 10)).params()


@pytest.mark.parametrize("changes, field", [
    (dict(layer_types=TYPES[:10]), "layer_types"),
    (dict(use_rope_layers=[3]), "use_rope_layers"),
    (dict(sink=True), "sink"),
    (dict(moe_layers_enum="3,99"), "moe_layers_enum"),
    (dict(swiglu_limits=[-1.0] * (N + MTP)), "swiglu_limits"),
    (dict(moe_layers_enum=None), "moe_layers_enum"),
    (dict(moe_every_n_layer=2), "moe_layer_offset"),
])
def test_what_is_not_modelled_is_refused_by_name(changes, field):
    with pytest.raises(OpgraphError, match=f"'{field}'"):
        load(**changes)


def test_the_dense_mtp_head_runs_beside_experts_spread_over_the_group():
    # the draft has no experts: with the target's over --ep 8 of its --tp 8 group, it runs as with --tp 8 alone
    draft = load().draft_head("mtp")
    spread = draft.build(Phase.decode(2, 100), BuildOptions(tp=8, ep=8))
    assert spread.params() == draft.build(Phase.decode(2, 100), BuildOptions(tp=8)).params()
