"""Seven 2024-25 families, each checked by hand against its published size and the structure its reference code
builds (transformers' modeling_<family>.py): SmolLM3 (smollm3), EXAONE-4.0 (exaone4), GLM-4-0414 (glm4), dots.llm1
(dots1), Hunyuan dense (hunyuan_v1_dense), OLMoE (olmoe) and Qwen1.5/2-MoE (qwen2_moe). Each CONFIG holds the fields
of a published config.json (the sources are named by each); SmolLM3-3B's is the shipped preset's, byte for byte."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def blocks(cfg, phase):
    return {b.name: (b.count, b.graph) for b in cfg.build(phase).blocks}


def attention_params(d, heads, kv, hd, *, qkv_bias=False, o_bias=False, qk_norm=0):
    return (d * heads * hd + 2 * d * kv * hd + heads * hd * d + (heads + 2 * kv) * hd * qkv_bias + d * o_bias
            + qk_norm)


# -- SmolLM3 -----------------------------------------------------------------------------------------------------

def test_smollm3_3b_is_its_index_count_tied_with_nope_every_fourth_layer():
    cfg = models.get("smollm3-3b")
    v, d, layers, i = 128256, 2048, 36, 11008
    total = v * d + d + layers * (attention_params(d, 16, 4, 128) + 3 * d * i + 2 * d)  # tied: one table
    assert total == 3_075_098_624  # model.safetensors.index.json total_parameters (HuggingFaceTB/SmolLM3-3B)
    model = cfg.build(Phase.decode(1, 1))
    assert model.params() == total and model.weight_bytes() == 6_150_197_248  # ibid., total_size (bf16)
    b = blocks(cfg, Phase.decode(1, 9))
    assert {n: c for n, (c, _) in b.items()} == {"rope_layer": 27, "nope_layer": 9, "embed_head": 1}
    assert not [op for op in b["nope_layer"][1].ops.values() if op.fn == "rope"]
    assert not cfg.notes


def test_smollm3_without_tie_word_embeddings_is_tied(tmp_path):
    base = {"model_type": "smollm3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100}
    tied = load(tmp_path, base).build(Phase.decode(1, 1)).params()
    untied = load(tmp_path, base, tie_word_embeddings=False).build(Phase.decode(1, 1)).params()
    assert untied - tied == 100 * 64  # SmolLM3Config's default is tied; the config.json does not say


# -- EXAONE-4.0 --------------------------------------------------------------------------------------------------

# EXAONE-4.0-32B's fields (TensorRT-LLM's tests/unittest/_torch/modeling/test_modeling_exaone4.py fixture, its layers
# and window set back to the checkpoint's 64 and 4,096, as LGAI-EXAONE/EXAONE-4.0-32B's card gives them)
EXAONE_32B = {"architectures": ["Exaone4ForCausalLM"], "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
              "intermediate_size": 27392, "model_type": "exaone4", "num_attention_heads": 40,
              "num_hidden_layers": 64, "num_key_value_heads": 8, "rope_theta": 1000000, "sliding_window": 4096,
              "sliding_window_pattern": 4, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "vocab_size": 102400}


def test_exaone4_32b_by_hand(tmp_path):
    d, layers, v = 5120, 64, 102400
    layer = attention_params(d, 40, 8, 128, qk_norm=2 * 128) + 3 * d * 27392 + 2 * d  # two post-norms
    total = 2 * v * d + d + layers * layer
    assert round(total / 1e9, 1) == 32.0  # "32.0B" (LG AI Research's EXAONE-4.0 README)
    cfg = load(tmp_path, EXAONE_32B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    b = blocks(cfg, Phase.decode(1, 9999))
    assert {n: c for n, (c, _) in b.items()} == {"sliding_rope_layer": 48, "full_nope_layer": 16, "embed_head": 1}
    full, sliding = b["full_nope_layer"][1], b["sliding_rope_layer"][1]
    assert not [op for op in full.ops.values() if op.fn == "rope"] and "input_layernorm" not in full.ops
    assert kv_cache_bytes(full) == 10000 * 2 * 8 * 128 * 2
    assert kv_cache_bytes(sliding) < kv_cache_bytes(full) / 2  # a window of 4,096 of the 10,000 keys


def test_exaone4_without_a_window_is_all_full_with_rope(tmp_path):
    cfg = load(tmp_path, EXAONE_32B, sliding_window=None, sliding_window_pattern=None)
    (name, (count, g)), *_ = blocks(cfg, Phase.decode(1, 9)).items()
    assert count == 64 and [op.fn for op in g.ops.values()].count("rope") == 2


# -- GLM-4-0414 --------------------------------------------------------------------------------------------------

# GLM-4-9B-0414's fields, as copies of its config.json give them (Glm4ForCausalLM, zai-org/GLM-4-9B-0414)
GLM4_9B = {"architectures": ["Glm4ForCausalLM"], "attention_bias": True, "head_dim": 128, "hidden_act": "silu",
           "hidden_size": 4096, "intermediate_size": 13696, "model_type": "glm4", "num_attention_heads": 32,
           "num_hidden_layers": 40, "num_key_value_heads": 2, "partial_rotary_factor": 0.5, "rope_theta": 10000.0,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 151552}


def test_glm4_9b_by_hand_has_four_norms_and_half_rope(tmp_path):
    d, layers, v = 4096, 40, 151552
    layer = attention_params(d, 32, 2, 128, qkv_bias=True) + 3 * d * 13696 + 4 * d
    total = 2 * v * d + d + layers * layer
    assert round(total / 1e9) == 9  # "GLM-4-9B-0414"
    cfg = load(tmp_path, GLM4_9B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (_, g), _ = blocks(cfg, Phase.decode(1, 9)).values()
    assert [op.fn for op in g.ops.values()].count("rmsnorm") == 4
    assert [op.flops for op in g.ops.values() if op.fn == "rope"] == [3 * 32 * 64, 3 * 2 * 64]  # 64 of 128 dims


# -- dots.llm1 ---------------------------------------------------------------------------------------------------

# rednote-hilab/dots.llm1.base's config.json (refs/pr/4), as the Hub shows it: the preset dots-llm1's file
DOTS1 = json.loads((models.presets.CONFIG_DIR / "dots-llm1.json").read_text())


def test_dots1_by_hand_is_the_published_142b_14b_active(tmp_path):
    d, v, e, de = 4096, 152064, 128, 1408
    attention = attention_params(d, 32, 32, 128, qk_norm=2 * 128)
    moe = e * 3 * d * de + 2 * 3 * d * de + e * d + e  # routed, 2 shared, router, selection bias
    total = 2 * v * d + d + 62 * (attention + 2 * d) + 3 * d * 10944 + 61 * moe
    active = total - 61 * (e - 6) * 3 * d * de
    # "142B total, 14B activated" (the card): 142.77B and 14.02B, printed cut
    assert (total // 10**9, active // 10**9) == (142, 14)
    cfg = load(tmp_path, DOTS1)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    b = blocks(cfg, Phase.decode(1, 99))
    assert kv_cache_bytes(b["moe_layer"][1]) == 100 * 2 * 32 * 128 * 2  # MHA: K and V of all 32 heads


# -- Hunyuan dense -----------------------------------------------------------------------------------------------

# tencent/Hunyuan-7B-Instruct's config.json (refs/pr/10) as the Hub shows it, its vocab_size as org_vocab_size gives it
HUNYUAN_7B = {"architectures": ["HunYuanDenseV1ForCausalLM"], "attention_bias": False, "attention_head_dim": 128,
              "cla_share_factor": 2, "eod_token_id": 127967, "head_dim": 128, "hidden_act": "silu",
              "hidden_size": 4096, "intermediate_size": 14336, "mlp_bias": False, "model_type": "hunyuan_v1_dense",
              "norm_type": "rms", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
              "org_vocab_size": 128167, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cla": False,
              "use_qk_norm": True, "vocab_size": 128167}


def test_hunyuan_dense_7b_by_hand(tmp_path):
    d = 4096
    total = 128167 * d + d + 32 * (attention_params(d, 32, 8, 128, qk_norm=2 * 128) + 3 * d * 14336 + 2 * d)
    assert round(total / 1e9, 1) == 7.5
    cfg = load(tmp_path, HUNYUAN_7B)
    assert cfg.build(Phase.decode(1, 1)).params() == total and not cfg.notes


# -- OLMoE -------------------------------------------------------------------------------------------------------

# allenai/OLMoE-1B-7B-0125's config.json (the Hub's commit dd1839e)
OLMOE = {"architectures": ["OlmoeForCausalLM"], "attention_bias": False, "clip_qkv": None, "hidden_act": "silu",
         "hidden_size": 2048, "intermediate_size": 1024, "model_type": "olmoe", "norm_topk_prob": False,
         "num_attention_heads": 16, "num_experts": 64, "num_experts_per_tok": 8, "num_hidden_layers": 16,
         "num_key_value_heads": 16, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float32",
         "vocab_size": 50304}


def test_olmoe_by_hand_is_the_published_6_9b_1_3b_active(tmp_path):
    d, e = 2048, 64
    attention = attention_params(d, 16, 16, 128, qk_norm=2 * d)  # q and k normed over the whole projection
    total = 2 * 50304 * d + d + 16 * (attention + e * d + e * 3 * d * 1024 + 2 * d)
    active = total - 16 * (e - 8) * 3 * d * 1024
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (6.9, 1.3)  # "OLMoE-1B-7B": 6.9B, 1.3B active
    cfg = load(tmp_path, OLMOE)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    assert any("clip_qkv 8" in n for n in load(tmp_path, OLMOE, clip_qkv=8).notes)


# -- Qwen2-MoE ---------------------------------------------------------------------------------------------------

# Qwen/Qwen1.5-MoE-A2.7B's config.json fields
QWEN15_MOE = {"architectures": ["Qwen2MoeForCausalLM"], "decoder_sparse_step": 1, "hidden_act": "silu",
              "hidden_size": 2048, "intermediate_size": 5632, "max_window_layers": 21, "model_type": "qwen2_moe",
              "moe_intermediate_size": 1408, "norm_topk_prob": False, "num_attention_heads": 16, "num_experts": 60,
              "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 16,
              "shared_expert_intermediate_size": 5632, "sliding_window": 32768, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16", "use_sliding_window": False, "vocab_size": 151936}


def test_qwen15_moe_by_hand_is_the_published_14_3b_a2_7b(tmp_path):
    d, e = 2048, 60
    moe = e * d + e * 3 * d * 1408 + 3 * d * 5632 + d  # router, experts, shared expert, its sigmoid gate
    total = 2 * 151936 * d + d + 24 * (attention_params(d, 16, 16, 128, qkv_bias=True) + moe + 2 * d)
    active = total - 24 * (e - 4) * 3 * d * 1408
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (14.3, 2.7)  # "Qwen1.5-MoE-A2.7B", 14.3B in all
    cfg = load(tmp_path, QWEN15_MOE)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (_, g), _ = blocks(cfg, Phase.decode(1, 9)).values()
    assert g.ops["shared.sigmoid"].inputs[0].shape == (1, 1, 1)  # one gate a token
    dense = load(tmp_path, QWEN15_MOE, mlp_only_layers=[0]).build(Phase.decode(1, 1)).params()
    assert total - dense == moe - 3 * d * 5632  # layer 0 a dense MLP of intermediate_size


@pytest.mark.parametrize("config, change, field", [
    (EXAONE_32B, {"sliding_window_pattern": "LLLG"}, "sliding_window_pattern"),
    (HUNYUAN_7B, {"use_cla": True}, "use_cla"),
    (HUNYUAN_7B, {"attention_head_dim": 64}, "attention_head_dim"),
    (HUNYUAN_7B, {"norm_type": "layer"}, "norm_type"),
    (HUNYUAN_7B, {"mlp_bias": True}, "mlp_bias"),
    (DOTS1, {"scoring_func": "softmax"}, "scoring_func"),
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
