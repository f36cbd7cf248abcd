"""The families of late 2025 and 2026 from their config.json files: MiniMax-M2 (model_type minimax_m2), GLM-5
(glm_moe_dsa), the multimodal wrappers of Qwen3-VL and Kimi-K2.5, Qwen3-Coder's use_qk_norm and the dense Qwen3.5.

Expected values come from the dimensions and the reference code, never from the program's output:
MiniMax's modeling_minimax_m2.py (q_norm over num_heads x head_dim, k_norm over num_kv_heads x head_dim, rope over the
first rotary_dim dims, sigmoid scores plus e_score_correction_bias for the choice, the chosen scores renormalized) and
vLLM's MiniMaxText01RMSNormTP (under tensor parallelism each GPU sums its columns' squares, the sums are
all-reduced, each GPU scales its own columns); GLM-5 is DeepSeek-V3.2's model with its own field values (vLLM's
glm_moe_dsa.py and mlx-lm's glm_moe_dsa.py subclass it).
"""

import copy
import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.models import hf_config
from opgraph.core.model import BuildOptions

D, HEADS, KV, HEAD_DIM, ROTARY, EXPERT, LAYERS, VOCAB, E, K = 64, 4, 2, 16, 8, 16, 2, 100, 8, 2
MINIMAX = {"model_type": "minimax_m2", "hidden_size": D, "num_attention_heads": HEADS, "num_key_value_heads": KV,
           "head_dim": HEAD_DIM, "rotary_dim": ROTARY, "intermediate_size": EXPERT, "num_hidden_layers": LAYERS,
           "vocab_size": VOCAB, "num_local_experts": E, "num_experts_per_tok": K, "scoring_func": "sigmoid",
           "use_routing_bias": True, "use_qk_norm": True, "qk_norm_type": "per_layer", "attn_type_list": [1, 1],
           "shared_intermediate_size": 0, "use_mtp": True, "num_mtp_modules": 3, "mtp_transformer_layers": 1,
           "tie_word_embeddings": False}


def load(data: dict, **changes):
    data = {**copy.deepcopy(data), **changes}
    return hf_config.from_dict({k: v for k, v in data.items() if v is not None}, name="tiny", source="test")


def layer_ops(cfg, phase, tp=1):
    model = cfg.build(phase, BuildOptions(tp=tp))
    return next(b for b in model.blocks if b.name != "embed_head").graph.ops


def test_minimax_parameters_by_hand():
    # attention q, k, v, o; the two full-width norms; 8 experts of three matrices; the router and its selection
    # bias; two norms a layer; untied embedding and head; the final norm.
    attention = D * HEADS * HEAD_DIM + 2 * D * KV * HEAD_DIM + HEADS * HEAD_DIM * D + HEADS * HEAD_DIM + KV * HEAD_DIM
    moe = E * 3 * D * EXPERT + D * E + E
    expected = LAYERS * (attention + moe + 2 * D) + 2 * VOCAB * D + D
    assert load(MINIMAX).build(Phase.decode(1, 1)).params() == expected


def test_minimax_m25_preset_parameters_by_hand():
    d, heads, kv, hd, expert, layers, vocab, experts = 3072, 48, 8, 128, 1536, 62, 200064, 256
    attention = d * heads * hd + 2 * d * kv * hd + heads * hd * d + heads * hd + kv * hd
    moe = experts * 3 * d * expert + d * experts + experts
    expected = layers * (attention + moe + 2 * d) + 2 * vocab * d + d
    cfg = models.get("minimax-m2.5")
    assert cfg.build(Phase.decode(1, 1)).params() == expected == 228_689_764_864
    assert cfg.mtp_layers == 3


def test_minimax_qk_norm_over_the_whole_projection_on_one_gpu():
    t = 5
    ops = layer_ops(load(MINIMAX), Phase.prefill(1, t))
    q, k = ops["q_norm"], ops["k_norm"]
    # RMSNorm over T rows of the whole width: 4 FLOPs an element (square, add, x rsqrt, x scale), 3 a row.
    assert q.flops == 4 * t * HEADS * HEAD_DIM + 3 * t
    assert k.flops == 4 * t * KV * HEAD_DIM + 3 * t
    assert "q_norm_allreduce" not in ops


def test_minimax_qk_norm_under_tensor_parallelism_all_reduces_one_sum_a_token():
    t, tp = 5, 2
    ops = layer_ops(load(MINIMAX), Phase.prefill(1, t), tp=tp)
    local_q = HEADS * HEAD_DIM // tp
    assert ops["q_norm_stats"].flops == 2 * t * local_q  # square and accumulate this GPU's columns
    assert ops["q_norm"].flops == 2 * t * local_q + 3 * t  # scale its columns; mean, eps, rsqrt a row
    ar = ops["q_norm_allreduce"]
    assert ar.inputs[0].shape == (1, t, 1) and ar.inputs[0].dtype.bits == 32
    assert ar.wire_bytes == 2 * (tp - 1) * t * 4 // tp  # a ring all-reduce of T fp32 sums
    # Over the group, the halves are RMSNorm's FLOPs of the whole projection, plus the row terms each GPU repeats.
    whole = tp * (ops["q_norm_stats"].flops + ops["q_norm"].flops)
    assert whole == 4 * t * HEADS * HEAD_DIM + 3 * t * tp


def test_minimax_rope_turns_rotary_dim_of_each_head():
    t = 3
    with_part = layer_ops(load(MINIMAX), Phase.prefill(1, t))["rope_q"].flops
    whole = layer_ops(load(MINIMAX, rotary_dim=HEAD_DIM), Phase.prefill(1, t))["rope_q"].flops
    assert with_part * HEAD_DIM == whole * ROTARY


def test_minimax_router_scores_by_sigmoid_with_a_selection_bias_and_renormalizes():
    moe = next(p for layer in load(MINIMAX).layer_kinds() for p in layer.parts() if hasattr(p, "experts"))
    assert (moe.scores, moe.router_bias, moe.renormalize, moe.scaled, moe.shared_width) == \
        ("sigmoid", "selection", True, False, 0)


@pytest.mark.parametrize("changes, field", [
    (dict(attn_type_list=[1, 0]), "attn_type_list"),
    (dict(qk_norm_type="per_head"), "qk_norm_type"),
    (dict(rotary_dim=2 * HEAD_DIM), "rotary_dim"),
    (dict(rotary_dim=4, partial_rotary_factor=0.75), "rotary_dim"),
    (dict(shared_intermediate_size=32), "shared_intermediate_size"),
    (dict(attn_window_size=128), "attn_window_size"),
])
def test_minimax_refuses_what_it_does_not_model_naming_the_field(changes, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(MINIMAX, **changes)


def test_minimax_tensor_parallelism_that_replicates_kv_heads_is_refused():
    with pytest.raises(OpgraphError, match="replicates the KV heads"):
        load(MINIMAX).build(Phase.decode(1, 8), BuildOptions(tp=4))


def test_minimax_mtp_modules_are_counted_apart():
    assert load(MINIMAX).mtp_layers == 3
    assert load(MINIMAX, use_mtp=False).mtp_layers == 0


GLM5 = json.loads((models.presets.CONFIG_DIR / "glm-5.json").read_text())


def assert_costs_as(config: dict, other: dict) -> None:
    """`config` builds the same weights and the same ops, FLOP for FLOP, as `other` in prefill and decode."""
    for phase in (Phase.prefill(1, 64), Phase.decode(2, 300)):
        a_model, b_model = load(config).build(phase), load(other).build(phase)
        assert a_model.params() == b_model.params()
        for a, b in zip(a_model.blocks, b_model.blocks):
            assert [(o.name, o.flops) for o in a.graph.ops.values()] == [(o.name, o.flops) for o in b.graph.ops.values()]


def test_glm5_is_deepseek_v32_with_its_own_values():
    as_v32 = {k: v for k, v in GLM5.items() if k not in ("qk_head_dim", "head_dim")} | {"model_type": "deepseek_v32"}
    assert_costs_as(GLM5, as_v32)


def test_glm5_preset_is_744b_with_an_mtp_layer_apart():
    cfg = models.get("glm-5")
    assert (cfg.n_layers, cfg.mtp_layers, cfg.mla.qk_nope_head_dim, cfg.mla.v_head_dim) == (78, 1, 192, 256)


def test_glm5_qk_head_dim_must_be_nope_plus_rope():
    with pytest.raises(OpgraphError, match="'qk_head_dim'"):
        load(GLM5, qk_head_dim=200)


def test_glm51_lists_of_each_layers_kind_that_say_what_the_family_builds_change_nothing():
    # GLM-5.1's configs list every layer: each runs its own indexer ("full"), and the first 3
    # (first_k_dense_replace) are dense, the other 75 MoE ("sparse")
    listed = load(GLM5, indexer_types=["full"] * 78, mlp_layer_types=["dense"] * 3 + ["sparse"] * 75)
    phase = Phase.decode(2, 300)
    assert listed.build(phase).params() == load(GLM5).build(phase).params()


@pytest.mark.parametrize("changes, field, says", [
    # GLM-5 gives no index_topk_freq: every layer runs its own indexer, so a list that shares one disagrees
    (dict(indexer_types=["full"] * 3 + ["shared"] + ["full"] * 74), "indexer_types", "'shared' for layer 3.*agree"),
    (dict(mlp_layer_types=["dense"] * 4 + ["sparse"] * 74), "mlp_layer_types", "'dense' for layer 3"),
    (dict(mlp_layer_types=["sparse"] * 3), "mlp_layer_types", "each of the 78 layers"),
])
def test_glm5_lists_that_disagree_with_the_config_are_refused_by_name(changes, field, says):
    with pytest.raises(OpgraphError, match=f"'{field}'.*{says}"):
        load(GLM5, **changes)


GLM47_FLASH = json.loads((models.presets.CONFIG_DIR / "glm-4.7-flash.json").read_text())


def test_glm47_flash_is_deepseek_v3s_layer_with_its_own_values():
    # transformers' Glm4MoeLiteAttention is DeepseekV3Attention, its MoE GLM-4.5's (DeepSeek-V3's routing)
    assert_costs_as(GLM47_FLASH, GLM47_FLASH | {"model_type": "deepseek_v3"})


def test_glm47_flash_parameters_by_hand():
    d, heads, ql, r, nope, rope, v, vocab = 2048, 20, 768, 512, 192, 64, 256, 154880
    attention = d * ql + ql + ql * heads * (nope + rope) + d * (r + rope) + r + r * heads * (nope + v) + heads * v * d
    dense, moe = 3 * d * 10240, 65 * 3 * d * 1536 + 64 * d + 64  # 64 routed + 1 shared, router and its bias
    total = 47 * (attention + 2 * d) + dense + 46 * moe + 2 * vocab * d + d
    assert total == 29_943_393_920
    assert models.get("glm-4.7-flash").build(Phase.decode(1, 10)).params() == total


def test_glm47_flash_keeps_one_dense_layer_where_the_config_names_none():
    # transformers' Glm4MoeLiteConfig: mlp_layer_types defaults to one "dense" and then "sparse"
    bare = {k: v for k, v in GLM47_FLASH.items() if k != "first_k_dense_replace"}
    assert load(bare).build(Phase.decode(1, 10)).params() == load(GLM47_FLASH).build(Phase.decode(1, 10)).params()
    with pytest.raises(OpgraphError, match="'mlp_layer_types'.*'sparse' for layer 0"):
        load(bare, mlp_layer_types=["sparse"] * 47)


SEED_OSS = json.loads((models.presets.CONFIG_DIR / "seed-oss-36b.json").read_text())
OLMO3 = json.loads((models.presets.CONFIG_DIR / "olmo-3-7b.json").read_text())


def test_seed_oss_biases_q_k_and_v_but_not_o_by_hand():
    # transformers' SeedOssAttention: q/k/v_proj bias=attention_bias, o_proj bias=attention_out_bias
    d, heads, kv, hd, ffn, vocab = 5120, 80, 8, 128, 27648, 155136
    layer = d * heads * hd + 2 * d * kv * hd + heads * hd * d + (heads + 2 * kv) * hd + 3 * d * ffn + 2 * d
    assert 64 * layer + 2 * vocab * d + d == 36_151_104_512  # the checkpoint's own count
    model = models.get("seed-oss-36b").build(Phase.decode(1, 10))
    assert model.params() == 36_151_104_512
    ops = next(b for b in model.blocks if b.name == "layer").graph.ops
    assert ops["q_proj"].flops == 2 * d * heads * hd + heads * hd and ops["o_proj"].flops == 2 * heads * hd * d
    assert load(SEED_OSS, attention_out_bias=True).build(Phase.decode(1, 10)).params() == 36_151_104_512 + 64 * d


def test_olmo3_is_olmo2_with_a_window_on_three_layers_of_four():
    model = models.get("olmo-3-7b").build(Phase.decode(2, 10_000))
    assert {b.name: b.count for b in model.blocks if b.name != "embed_head"} == {"sliding_layer": 24, "full_layer": 8}
    d, ffn, vocab = 4096, 11008, 100278
    assert model.params() == 32 * (4 * d * d + 2 * d + 3 * d * ffn + 2 * d) + 2 * vocab * d + d  # q/k norms, 2 norms
    # a sliding layer caches and attends over its last 4,096 keys; a full layer over all 10,001
    graphs = {b.name: b.graph for b in model.blocks}
    assert graphs["sliding_layer"].ops["qk"].flops * 10_001 == graphs["full_layer"].ops["qk"].flops * 4096
    as_olmo2 = {k: v for k, v in OLMO3.items() if k not in ("layer_types", "sliding_window")} | {"model_type": "olmo2"}
    assert model.params() == load(as_olmo2).build(Phase.decode(2, 10_000)).params()
    # layer_types absent: transformers' default, every 4th layer full
    assert load(OLMO3, layer_types=None).build(Phase.decode(1, 10)).params() == model.params()


# Ministral-3 8B's text_config fields as a copy of the file gives them (an NVIDIA model said to be structurally
# identical to Ministral3-8B; the 8B's card: "8.4B Language Model"); its wrapper is mistral3.
MINISTRAL3_8B = {"model_type": "ministral3", "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
                 "intermediate_size": 14336, "max_position_embeddings": 262144, "num_attention_heads": 32,
                 "num_hidden_layers": 34, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "sliding_window": None,
                 "rope_parameters": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 16.0, "llama_4_scaling_beta": 0.1,
                                     "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 16384,
                                     "rope_theta": 1000000.0, "rope_type": "yarn"},
                 "tie_word_embeddings": False, "vocab_size": 131072}


def test_ministral3_is_mistral_with_its_query_scaled_by_position():
    model = load({"model_type": "mistral3", "text_config": MINISTRAL3_8B, "vision_config": {}}).build(Phase.decode(2, 100))
    d, kv, ffn, vocab = 4096, 8 * 128, 14336, 131072
    assert model.params() == 34 * (2 * d * d + 2 * d * kv + 3 * d * ffn + 2 * d) + 2 * vocab * d + d  # 8.49B: "8.4B"
    ops = next(b.graph for b in model.blocks if b.name == "layer").ops
    # transformers' _get_llama_4_attn_scale: q times 1 + beta log(1 + floor(p / 16384)) after rope, at every position
    assert ops["q_temperature"].flops == 2 * 32 * 128
    plain = {k: v for k, v in MINISTRAL3_8B.items() if k != "rope_parameters"} | {"model_type": "mistral"}
    assert load(plain).build(Phase.decode(2, 100)).params() == model.params()


def test_a_query_scale_by_position_is_refused_where_the_family_does_not_model_it():
    as_mistral = MINISTRAL3_8B | {"model_type": "mistral"}
    with pytest.raises(OpgraphError, match="'rope_parameters'.*llama_4_scaling_beta"):
        load(as_mistral)


# IBM Granite-4.0-H-Small's fields as a copy of its config.json gives them (a subset: the layers' order and the Mamba
# heads are not in it; taken here as H-Tiny's attention layers 5, 15, 25, 35 and 128 heads of 64, transformers'
# default count); its card: "32B total, 9B active".
GRANITE_H_SMALL = {"model_type": "granitemoehybrid", "hidden_size": 4096, "num_hidden_layers": 40,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "num_local_experts": 72,
                   "num_experts_per_tok": 10, "shared_intermediate_size": 1536, "intermediate_size": 768,
                   "mamba_d_state": 128, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_n_heads": 128,
                   "tie_word_embeddings": True, "vocab_size": 100352, "torch_dtype": "bfloat16",
                   "layer_types": ["attention" if i in (5, 15, 25, 35) else "mamba" for i in range(40)],
                   "embedding_multiplier": 12.0, "residual_multiplier": 0.22, "logits_scaling": 8.0}


def test_granite4_parameters_by_hand():
    d, kv, e, k, de, shared, vocab = 4096, 8 * 128, 72, 10, 768, 1536, 100352
    width, heads, state = 2 * d, 128, 128
    mamba = (d * (2 * width + 2 * state + heads)  # in_proj: z, x, B, C (one group), dt
             + (width + 2 * state) * 5  # the conv's weight (4 taps) and bias over x, B, C
             + 3 * heads + width + width * d)  # A, D, dt_bias; the gated norm; out_proj
    attention = 2 * d * d + 2 * d * kv
    ffn = d * e + e * 3 * d * de + 3 * d * shared + 2 * d  # router, experts, shared MLP; the two norms
    total = 36 * mamba + 4 * attention + 40 * ffn + vocab * d + d  # tied embedding, final norm
    assert total == 32_207_337_984  # 32B
    model = load(GRANITE_H_SMALL).build(Phase.decode(2, 100))
    assert model.params() == total
    assert round((total - 40 * (e - k) * 3 * d * de) / 1e9) == 9  # "9B active"


def test_granite4_multipliers_and_layers():
    model = load(GRANITE_H_SMALL).build(Phase.decode(2, 100))
    graphs = {b.name: b.graph for b in model.blocks}
    d, tokens = 4096, 2
    attention = graphs["attention_layer"].ops
    assert not [n for n in attention if "rope" in n]  # no positions
    # residual_multiplier: each branch's output times it, one multiply an element, before its add
    for g in graphs.values():
        if "attn_residual" in g.ops:
            assert g.ops["attn_branch_scale"].flops == g.ops["mlp_branch_scale"].flops == tokens * d
    assert graphs["embed_head"].ops["embed_scale"].flops == tokens * d  # embedding_multiplier
    assert "logit_scale" in graphs["embed_head"].ops  # logits_scaling 8
    router = graphs["mamba_layer"].ops["router"]
    assert router.flops == 2 * tokens * d * 72 and len(router.inputs) == 2  # no bias
    assert load(GRANITE_H_SMALL, logits_scaling=1.0).build(Phase.decode(1, 10)).params() == model.params()


def test_granite4_without_experts_is_a_dense_model_of_its_shared_mlp():
    dense = load(GRANITE_H_SMALL, num_local_experts=0, layer_types=["attention"] * 40)
    graph = dense.build(Phase.decode(1, 10)).blocks[0].graph
    assert not [n for n in graph.ops if "router" in n] and graph.ops["gate_proj"].flops == 2 * 4096 * 1536


def test_granite4_refuses_an_unknown_position_embedding():
    with pytest.raises(OpgraphError, match="'position_embedding_type'.*'alibi'"):
        load(GRANITE_H_SMALL, position_embedding_type="alibi")


# MiMo-V2.6-Pro's fields as a third-party test writes them (two of its 70 layers: one full with a dense MLP, one
# sliding with 384 experts), beside its vision and audio towers' configs
MIMO_V26_PRO = {"model_type": "mimo_v2", "vocab_size": 152576, "hidden_size": 6144, "num_hidden_layers": 2,
                "num_attention_heads": 128, "num_key_value_heads": 8, "head_dim": 192, "v_head_dim": 128,
                "swa_num_attention_heads": 128, "swa_num_key_value_heads": 8, "swa_head_dim": 192,
                "swa_v_head_dim": 128, "partial_rotary_factor": 0.334, "sliding_window": 128,
                "hybrid_layer_pattern": [0, 1], "moe_layer_freq": [0, 1], "add_swa_attention_sink_bias": True,
                "add_full_attention_sink_bias": False, "intermediate_size": 16384, "n_routed_experts": 384,
                "num_experts_per_tok": 8, "moe_intermediate_size": 2048, "scoring_func": "sigmoid",
                "topk_method": "noaux_tc", "n_group": 1, "norm_topk_prob": True, "attention_value_scale": 0.612,
                "vision_config": {"model_type": "mimo_v2_vision"}, "audio_config": {"model_type": "mimo_v2_audio"}}


def test_mimo_v2_is_mimo_v2_flash_beside_towers_it_does_not_cost():
    v2 = load(MIMO_V26_PRO)
    flash = {k: v for k, v in MIMO_V26_PRO.items() if not k.endswith("_config")} | {"model_type": "mimo_v2_flash"}
    assert_costs_as(MIMO_V26_PRO, flash)
    assert any("vision_config, audio_config" in n and "not" in n for n in v2.notes)


# inclusionAI's Ling-mini-2.0, its architecture fields as a test fixture transcribes them from its config.json
# (its README: 16.26B total, 1.43B activated, 789M without the embeddings)
LING_MINI_2 = {"model_type": "bailing_moe", "architectures": ["BailingMoeV2ForCausalLM"], "num_hidden_layers": 20,
               "hidden_size": 2048, "intermediate_size": 5120, "first_k_dense_replace": 1,
               "moe_intermediate_size": 512, "moe_shared_expert_intermediate_size": 512, "num_shared_experts": 1,
               "num_experts": 256, "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "norm_topk_prob": True,
               "routed_scaling_factor": 2.5, "score_function": "sigmoid", "moe_router_enable_expert_bias": True,
               "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 128, "use_qk_norm": True,
               "partial_rotary_factor": 0.5, "rope_theta": 600000, "hidden_act": "silu", "rms_norm_eps": 1e-06,
               "tie_word_embeddings": False, "vocab_size": 157184, "max_position_embeddings": 32768}
# Baidu's ERNIE-4.5-21B-A3B, its fields as transformers' Ernie4_5_MoeConfig defaults and two fixtures give them
ERNIE_21B = {"model_type": "ernie4_5_moe", "architectures": ["Ernie4_5_MoeForCausalLM"], "hidden_size": 2560,
             "intermediate_size": 12288, "max_position_embeddings": 131072, "num_attention_heads": 20,
             "num_key_value_heads": 4, "head_dim": 128, "num_hidden_layers": 28, "rms_norm_eps": 1e-05,
             "vocab_size": 103424, "rope_theta": 500000, "use_bias": False, "tie_word_embeddings": True,
             "moe_num_experts": 64, "moe_layer_start_index": 1, "moe_layer_end_index": 27,
             "moe_intermediate_size": 1536, "moe_k": 6, "moe_layer_interval": 1, "moe_num_shared_experts": 2,
             "hidden_act": "silu"}


def test_ling2_by_hand():
    d, heads, kv, hd, e, k, de, vocab = 2048, 16, 4, 128, 256, 8, 512, 157184
    attention = d * (heads + 2 * kv) * hd + heads * hd * d + 2 * hd + 2 * d  # fused qkv, dense, q/k norms, 2 norms
    expert = 3 * d * de
    moe = attention + e * expert + expert + e * d + e  # routed, one shared, the router and its selection bias
    total = attention + 3 * d * 5120 + 19 * moe + 2 * vocab * d + d
    active = total - 19 * (e - k) * expert
    model = load(LING_MINI_2).build(Phase.decode(1, 10))
    assert model.params() == total and round(total / 1e9, 2) == 16.26
    assert round(active / 1e9, 2) == 1.43 and round((active - 2 * vocab * d) / 1e6) == 789
    ops = next(b.graph for b in model.blocks if b.name == "moe_layer").ops
    assert ops["router_sigmoid"].flops == 4 * e and "q_norm" in ops


def test_ling_v1_is_refused_by_name():
    v1 = {k: v for k, v in LING_MINI_2.items() if k != "score_function"} | {"architectures": ["BailingMoeForCausalLM"]}
    with pytest.raises(OpgraphError, match="'architectures'.*Ling v1"):
        load(v1)


def test_ernie45_moe_layers_from_start_end_and_interval_by_hand():
    d, heads, kv, hd, e, k, de, shared, vocab = 2560, 20, 4, 128, 64, 6, 1536, 2, 103424
    attention = 2 * d * heads * hd + 2 * d * kv * hd + 2 * d
    moe = attention + e * 3 * d * de + 3 * d * shared * de + e * d + e  # the router and moe_statics' bias
    total = attention + 3 * d * 12288 + 27 * moe + vocab * d + d  # layer 0 dense; tied embeddings
    model = load(ERNIE_21B).build(Phase.decode(1, 10))
    assert model.params() == total and round(total / 1e9) == 22  # "21B": 21.8B
    assert round((total - 27 * (e - k) * 3 * d * de - vocab * d) / 1e9) == 3  # "A3B"
    assert {b.name: b.count for b in model.blocks} == {"dense_layer": 1, "moe_layer": 27, "embed_head": 1}
    every_other = load(ERNIE_21B, moe_layer_interval=2).build(Phase.decode(1, 10))
    assert {b.name: b.count for b in every_other.blocks}["moe_layer"] == 14  # layers 1, 3, ..., 27


# Tencent's Hunyuan-A13B, its fields as a test fixture transcribes its config.json (per-layer lists), with the model
# card's sizes (32 layers, 1 shared + 64 routed experts, top-8, GQA 32/8); its card: 80B total, 13B active
HUNYUAN_A13B = {"model_type": "hunyuan_v1_moe", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 3072, "vocab_size": 128167,
                "num_experts": 64, "moe_intermediate_size": [3072] * 32, "moe_topk": [8] * 32,
                "num_shared_expert": [1] * 32, "use_qk_norm": True, "tie_word_embeddings": False}


def test_hunyuan_a13b_by_hand():
    d, heads, kv, hd, e, k, de, vocab = 4096, 32, 8, 128, 64, 8, 3072, 128167
    attention = 2 * d * heads * hd + 2 * d * kv * hd + 2 * hd + 2 * d  # q, o; k, v; q/k norms; two norms
    layer = attention + 3 * d * 3072 + e * 3 * d * de + d * e  # the shared MLP, the experts, the fp32 router
    total = 32 * layer + 2 * vocab * d + d
    model = load(HUNYUAN_A13B).build(Phase.decode(1, 10))
    assert model.params() == total and int(total / 1e9) == 80  # "80B", cut as cards print it: 80.9B (80.4B tied)
    assert round((total - 32 * (e - k) * 3 * d * de) / 1e9) == 13  # "13B active"
    ops = next(b.graph for b in model.blocks if b.name == "layer").ops
    assert ops["router_softmax"].flops == 5 * e and ops["router"].inputs[1].dtype.name == "fp32"


def test_hunyuan_per_layer_lists_and_cla_refusal():
    varied = load(HUNYUAN_A13B, moe_topk=[8] * 31 + [2]).build(Phase.decode(1, 10))
    assert sorted(b.count for b in varied.blocks if b.name != "embed_head") == [1, 31]
    with pytest.raises(OpgraphError, match="'use_cla'"):
        load(HUNYUAN_A13B, use_cla=True, cla_share_factor=2)
    with pytest.raises(OpgraphError, match="'moe_topk'.*each of the 32"):
        load(HUNYUAN_A13B, moe_topk=[8] * 31)


def _nvfp4(exclude: list[str]) -> dict:
    """NVIDIA's ModelOpt NVFP4 quantization_config, as its GLM-5.1-NVFP4 config writes it."""
    return {"quant_method": "modelopt", "quant_algo": "NVFP4", "ignore": exclude, "config_groups": {"group_0": {
        "weights": {"num_bits": 4, "type": "float", "group_size": 16, "dynamic": False},
        "input_activations": {"num_bits": 4, "type": "float", "group_size": 16, "dynamic": False},
        "targets": ["Linear"]}}}


def test_a_checkpoint_that_keeps_whole_layers_unquantized_keeps_only_those():
    # NVIDIA's GLM-5.1-NVFP4 keeps its dense layers 0-2 whole ("model.layers.0*") and every layer's attention in
    # bf16; its MoE layers store the routed experts in NVFP4. Each block is resolved over its own layers.
    exclude = ["lm_head", "model.layers.0*", "model.layers.1.*", "model.layers.2.*", "model.layers.*.self_attn*",
               "model.layers.*.mlp.shared_experts*"]
    model = load(GLM5, quantization_config=_nvfp4(exclude)).build(Phase.decode(1, 100))
    dense, moe = (next(b for b in model.blocks if b.name == name) for name in ("dense_layer", "moe_layer"))
    stored = lambda block: {t.name.split("[")[0]: t.dtype.name for t in block.graph.weights()}  # noqa: E731
    assert set(stored(dense).values()) == {"bf16"}
    assert {n: d for n, d in stored(moe).items() if d != "bf16"} == {
        f"mlp.experts.{w}_proj.weight": "fp4" for w in ("gate", "up", "down")}
    # the experts' bytes: 256 experts x 3 matrices of 2,048 x 6,144, 4 bits each, an 8-bit scale a group of 16 and
    # one fp32 scale a matrix (ModelOpt's weight_scale and weight_scale_2)
    experts = 256 * 3 * 2048 * 6144
    assert sum(t.nbytes for t in moe.graph.weights() if t.name.startswith("mlp.experts.")) == \
        experts // 2 + experts // 16 + 256 * 3 * 4


def test_layers_of_one_kind_stored_differently_are_blocks_of_their_own():
    exclude = ["model.layers.5.mlp.experts*"]  # one MoE layer's experts in bf16, the other 74 in NVFP4
    model = load(GLM5, quantization_config=_nvfp4(exclude)).build(Phase.decode(1, 100))
    experts = 256 * 3 * 2048 * 6144
    moe = {(b.name, b.count): sum(t.nbytes for t in b.graph.weights() if t.name.startswith("mlp.experts."))
           for b in model.blocks if b.name.startswith("moe")}
    assert moe == {("moe_bf16_layer", 1): 2 * experts,
                   ("moe_fp4_layer", 74): experts // 2 + experts // 16 + 256 * 3 * 4}


# Wrappers and variants of families opgraph already has: each costs exactly what its language model costs.
QWEN3 = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
         "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "tie_word_embeddings": False}


@pytest.mark.parametrize("outer, inner, same_as", [
    ("qwen3_vl", dict(QWEN3, model_type="qwen3_vl_text"), dict(QWEN3, model_type="qwen3")),
    ("qwen3_vl_moe", dict(QWEN3, model_type="qwen3_vl_moe_text", num_experts=8, num_experts_per_tok=2,
                          moe_intermediate_size=16), dict(QWEN3, model_type="qwen3_moe", num_experts=8,
                                                          num_experts_per_tok=2, moe_intermediate_size=16)),
    ("kimi_k25", {"model_type": "kimi_k2", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
      "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8, "n_shared_experts": 1,
      "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": 24, "kv_lora_rank": 32,
      "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "vocab_size": 100, "num_beams": 4,
      "top_k": 50, "temperature": 0.7},
     {"model_type": "kimi_k2", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
      "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8, "n_shared_experts": 1,
      "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": 24, "kv_lora_rank": 32,
      "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "vocab_size": 100}),
])
def test_multimodal_wrappers_cost_their_language_model(outer, inner, same_as):
    wrapped = load({"model_type": outer, "vision_config": {"depth": 27}, "text_config": inner})
    alone = load(same_as or inner)
    phase = Phase.decode(2, 100)
    assert wrapped.build(phase).params() == alone.build(phase).params()
    assert any("vision tower" in n for n in wrapped.notes)
    assert not any("not read" in n for n in wrapped.notes)  # transformers' generation defaults are no cost


def test_qwen3_refuses_a_switched_off_qk_norm_and_reads_qwen3_coders_switched_on():
    assert load(dict(QWEN3, model_type="qwen3_moe", num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16,
                     use_qk_norm=True))
    with pytest.raises(OpgraphError, match="'use_qk_norm'"):
        load(dict(QWEN3, model_type="qwen3", use_qk_norm=False))


QWEN35_DENSE = {"model_type": "qwen3_5_text", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 16, "intermediate_size": 64, "num_hidden_layers": 4, "vocab_size": 100,
                "full_attention_interval": 4, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                "linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4,
                "attn_output_gate": True}


def test_qwen35_without_experts_has_a_dense_mlp_of_intermediate_size():
    # Qwen3.5-27B names no num_experts: every layer's MLP is gate, up and down of intermediate_size (no router).
    narrow, wide = load(QWEN35_DENSE), load(QWEN35_DENSE, intermediate_size=128)
    phase = Phase.decode(1, 8)
    assert wide.build(phase).params() - narrow.build(phase).params() == 4 * 3 * 64 * 64
    ops = layer_ops(narrow, phase)
    assert "router" not in ops and ops["down_proj"].flops == 2 * 64 * 64


def test_a_wrappers_own_quantization_config_stores_its_language_model():
    # NVIDIA's NVFP4 Kimi-K2.5 and Qwen3.5 write quantization_config beside text_config, not in it: the language
    # model is stored as it says (its vision tower, which the patterns also name, is not costed)
    text = {"model_type": "kimi_k2", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
            "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8, "n_shared_experts": 1,
            "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": 24, "kv_lora_rank": 32,
            "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "vocab_size": 100}
    q = _nvfp4(["lm_head", "vision_tower*", "mm_projector*", "language_model.model.layers.*.self_attn*"])
    wrapped = load({"model_type": "kimi_k25", "vision_config": {"depth": 2}, "text_config": text,
                    "quantization_config": q})
    alone = load(dict(text, quantization_config=q))
    phase = Phase.decode(1, 50)
    assert wrapped.build(phase).weight_bytes() == alone.build(phase).weight_bytes() < load(text).build(phase).weight_bytes()
    assert wrapped.weight_dtype.name == "fp4"
