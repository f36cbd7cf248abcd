"""Multimodal checkpoints whose language model is a text family opgraph builds: InternVL3.5 (internvl_chat, its
llm_config; internvl, its text_config), GLM-4.1V (glm4v) and GLM-4.5V (glm4v_moe), MiniMax-VL-01 (minimax_vl_01).
Each must cost exactly as its language model does alone (the vision tower is noted, not costed): the transformers
code builds the text model of each from the nested config (modular_internvl.py: LlavaModel's text model;
modular_glm4v.py / modular_glm4v_moe.py: GLM-4-0414's and GLM-4.5-Air's layers with a 3-D rope over the same dims;
vLLM's minimax_vl_01.py: MiniMaxText01ForCausalLM); Qwen2-VL and Qwen2.5-VL (qwen2_vl, qwen2_5_vl: the language
model's fields at the top level as Qwen published them, or in text_config as transformers re-saves them) and
Kimi-VL (kimi_vl: DeepSeek-V3's layer in its text_config) and Qwen3-Omni (qwen3_omni_moe: its thinker's text_config,
Qwen3-MoE's layer; vLLM serves the thinker alone for text out)."""

import json

import pytest

from opgraph import Phase, models

# OpenGVLab/InternVL3_5-8B's config.json (its llm_config whole; the vision side is the wrapper's own and not costed)
INTERNVL_LLM = {
    "_name_or_path": "/root/codespace/checkpoints/Qwen3-8B", "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643, "debug": False, "eos_token_id": 151645,
    "ep_size": 1, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36, "micro_forward": False,
    "model_type": "qwen3", "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000, "skip_checkpoint": False,
    "sliding_window": None, "torch_dtype": "bfloat16", "use_cache": False, "use_deepep": False,
    "use_sliding_window": False, "vocab_size": 151936}
INTERNVL_CHAT = {"architectures": ["InternVLChatModel"], "downsample_ratio": 0.5, "dynamic_image_size": True,
                 "force_image_size": 448, "llm_config": INTERNVL_LLM, "max_dynamic_patch": 12, "min_dynamic_patch": 1,
                 "model_type": "internvl_chat", "pad2square": False, "ps_version": "v2", "select_layer": -1,
                 "template": "internvl2_5", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                 "use_backbone_lora": 0, "use_llm_lora": 0, "use_thumbnail": True, "vision_config": {"image_size": 448}}
# OpenGVLab/InternVL3_5-8B-HF: the same language model in transformers' own format
INTERNVL_HF = {"architectures": ["InternVLForConditionalGeneration"], "downsample_ratio": 0.5,
               "image_seq_length": 256, "image_token_id": 151671, "model_type": "internvl",
               "projector_hidden_act": "gelu", "text_config": {**INTERNVL_LLM, "use_cache": True},
               "torch_dtype": "bfloat16", "vision_config": {"image_size": [448, 448]},
               "vision_feature_layer": -1, "vision_feature_select_strategy": "default"}
# GLM-4.1V-9B-Thinking's text_config (the fields its copies give) and GLM-4.5V's
GLM41V_TEXT = {"model_type": "glm4v_text", "attention_bias": True, "hidden_act": "silu", "hidden_size": 4096,
               "intermediate_size": 13696, "max_position_embeddings": 65536, "num_attention_heads": 32,
               "num_hidden_layers": 40, "num_key_value_heads": 2, "rms_norm_eps": 1e-05, "vocab_size": 151552,
               "partial_rotary_factor": 0.5, "rope_theta": 10000,
               "rope_scaling": {"rope_type": "default", "mrope_section": [8, 12, 12]}}
GLM45V_TEXT = {"model_type": "glm4v_moe_text", "attention_bias": True, "first_k_dense_replace": 1, "head_dim": 128,
               "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 10944,
               "max_position_embeddings": 65536, "moe_intermediate_size": 1408, "n_group": 1, "n_routed_experts": 128,
               "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 96, "num_experts_per_tok": 8,
               "num_hidden_layers": 46, "num_key_value_heads": 8, "partial_rotary_factor": 0.5,
               "rms_norm_eps": 1e-05, "routed_scaling_factor": 1.0, "topk_group": 1, "use_qk_norm": False,
               "vocab_size": 151552, "tie_word_embeddings": False,
               "rope_parameters": {"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 10000.0}}


def load(tmp_path, config: dict):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return models.get(str(path))


def params(cfg) -> int:
    return cfg.build(Phase.decode(1, 1)).params()


@pytest.mark.parametrize("config, key", [(INTERNVL_CHAT, "llm_config"), (INTERNVL_HF, "text_config")])
def test_internvl_3_5_costs_its_qwen3_8b(tmp_path, config, key):
    cfg = load(tmp_path, config)
    assert params(cfg) == params(models.get("qwen3-8b")) == 8_190_735_360  # Qwen3-8B's "8.2B"
    assert any(f"language model ({key}) is costed" in n for n in cfg.notes)
    assert not [n for n in cfg.notes if "not read" in n]


def test_glm_4_1v_costs_glm_4_9b_0414(tmp_path):
    text = {k: v for k, v in GLM41V_TEXT.items() if k not in ("model_type", "rope_scaling", "max_position_embeddings")}
    alone = load(tmp_path, {**text, "model_type": "glm4"})
    cfg = load(tmp_path, {"model_type": "glm4v", "architectures": ["Glm4vForConditionalGeneration"],
                          "text_config": GLM41V_TEXT, "vision_config": {"depth": 24}})
    assert params(cfg) == params(alone)
    assert not [n for n in cfg.notes if "not read" in n]


@pytest.mark.parametrize("name", ["glm4v_moe_text", "Glm4vMoe_text"])
def test_glm_4_5v_costs_glm_4_5_air(tmp_path, name):
    cfg = load(tmp_path, {"model_type": "glm4v_moe", "architectures": ["Glm4vMoeForConditionalGeneration"],
                          "text_config": {**GLM45V_TEXT, "model_type": name}, "vision_config": {"depth": 24}})
    assert params(cfg) == params(models.get("glm-4.5-air"))  # the same 46 layers; Air's MTP layer is not counted
    assert not [n for n in cfg.notes if "not read" in n]


def test_minimax_vl_01_costs_its_text_model(tmp_path):
    text = json.loads((models.presets.CONFIG_DIR / "minimax-m1.json").read_text())
    cfg = load(tmp_path, {"model_type": "minimax_vl_01", "architectures": ["MiniMaxVL01ForConditionalGeneration"],
                          "text_config": text, "vision_config": {"image_size": 336}})
    assert params(cfg) == params(models.get("minimax-m1"))


# Qwen/Qwen2.5-VL-7B-Instruct's config.json (Apache-2.0): Qwen2's fields at the top level, beside vision_config
QWEN25_VL_7B = {'architectures': ['Qwen2_5_VLForConditionalGeneration'],
    'attention_dropout': 0.0,
    'bos_token_id': 151643,
    'eos_token_id': 151645,
    'vision_start_token_id': 151652,
    'vision_end_token_id': 151653,
    'vision_token_id': 151654,
    'image_token_id': 151655,
    'video_token_id': 151656,
    'hidden_act': 'silu',
    'hidden_size': 3584,
    'initializer_range': 0.02,
    'intermediate_size': 18944,
    'max_position_embeddings': 128000,
    'max_window_layers': 28,
    'model_type': 'qwen2_5_vl',
    'num_attention_heads': 28,
    'num_hidden_layers': 28,
    'num_key_value_heads': 4,
    'rms_norm_eps': 1e-06,
    'rope_theta': 1000000.0,
    'sliding_window': 32768,
    'tie_word_embeddings': False,
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.41.2',
    'use_cache': True,
    'use_sliding_window': False,
    'vision_config': {'depth': 32,
                      'hidden_act': 'silu',
                      'hidden_size': 1280,
                      'intermediate_size': 3420,
                      'num_heads': 16,
                      'in_chans': 3,
                      'out_hidden_size': 3584,
                      'patch_size': 14,
                      'spatial_merge_size': 2,
                      'spatial_patch_size': 14,
                      'window_size': 112,
                      'fullatt_block_indexes': [7, 15, 23, 31],
                      'tokens_per_second': 2,
                      'temporal_patch_size': 2},
    'rope_scaling': {'type': 'mrope', 'mrope_section': [16, 24, 24]},
    'vocab_size': 152064}


def test_qwen2_5_vl_costs_its_top_level_fields_as_qwen2(tmp_path):
    d, layers, v = 3584, 28, 152064
    attention = 2 * d * 28 * 128 + 2 * d * 4 * 128 + (28 + 2 * 4) * 128  # q, o; k, v; the q/k/v biases
    total = 2 * v * d + d + layers * (attention + 3 * d * 18944 + 2 * d)
    assert round(total / 1e9, 3) == 7.616  # its language model's published 7.616B
    flat = load(tmp_path, QWEN25_VL_7B)
    assert params(flat) == total and "vision tower" in flat.notes[0]
    text = {k: v for k, v in QWEN25_VL_7B.items() if k not in ("vision_config", "model_type", "architectures")}
    resaved = {**QWEN25_VL_7B, "text_config": {**text, "model_type": "qwen2_5_vl_text"}}  # transformers >= 4.53
    assert params(load(tmp_path, resaved)) == total
    qwen2 = {**text, "model_type": "qwen2"}
    assert params(load(tmp_path, qwen2)) == total
    assert params(load(tmp_path, {**QWEN25_VL_7B, "model_type": "qwen2_vl"})) == total  # Qwen2-VL's layout


def test_a_resaved_top_level_that_disagrees_is_refused(tmp_path):
    text = {k: v for k, v in QWEN25_VL_7B.items() if k not in ("vision_config", "model_type", "architectures")}
    resaved = {**QWEN25_VL_7B, "intermediate_size": 9999, "text_config": {**text, "model_type": "qwen2_5_vl_text"}}
    with pytest.raises(Exception, match="'intermediate_size'"):
        load(tmp_path, resaved)


def test_kimi_vl_costs_its_deepseek_v3_text_config(tmp_path):
    text = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128,
            "num_hidden_layers": 2, "vocab_size": 100, "kv_lora_rank": 16, "q_lora_rank": None,
            "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8,
            "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 16, "first_k_dense_replace": 1}
    wrapped = load(tmp_path, {"model_type": "kimi_vl", "architectures": ["KimiVLForConditionalGeneration"],
                              "text_config": text, "vision_config": {"hidden_size": 32}})
    alone = load(tmp_path, {**text, "model_type": "deepseek_v3"})
    assert params(wrapped) == params(alone)


# Qwen/Qwen3-Omni-30B-A3B-Instruct's thinker_config.text_config, as transformers re-saves it from the checkpoint
QWEN3_OMNI_TEXT = {"attention_bias": False, "attention_dropout": 0.0, "decoder_sparse_step": 1, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 768, "max_position_embeddings": 65536, "mlp_only_layers": [], "model_type": "qwen3_omni_moe_text", "moe_intermediate_size": 768, "norm_topk_prob": True, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_parameters": {"interleaved": True, "mrope_interleaved": True, "mrope_section": [24, 20, 20], "rope_theta": 1000000, "rope_type": "default", "type": "default"}, "router_aux_loss_coef": 0.001, "shared_expert_intermediate_size": 0, "sliding_window": None, "tie_word_embeddings": False, "use_cache": True, "use_qk_norm": True, "use_sliding_window": False, "vocab_size": 152064}


def test_qwen3_omni_costs_its_thinkers_language_model(tmp_path):
    d, e, layers, v = 2048, 128, 48, 152064
    attention = 2 * d * 32 * 128 + 2 * d * 4 * 128 + 2 * 128  # q, o; k, v; per-head q and k scales
    total = 2 * v * d + d + layers * (attention + e * d + e * 3 * d * 768 + 2 * d)
    assert round(total / 1e9, 1) == 30.5  # "30B-A3B": the thinker's language model
    omni = {"model_type": "qwen3_omni_moe", "architectures": ["Qwen3OmniMoeForConditionalGeneration"],
            "thinker_config": {"model_type": "qwen3_omni_moe_thinker", "text_config": QWEN3_OMNI_TEXT,
                               "audio_config": {"d_model": 1280}, "vision_config": {"hidden_size": 1152}},
            "talker_config": {"text_config": {"hidden_size": 1024}}, "enable_audio_output": True,
            "torch_dtype": "bfloat16"}
    cfg = load(tmp_path, omni)
    assert params(cfg) == total and "thinker_config.text_config" in cfg.notes[0]
    assert params(load(tmp_path, {**QWEN3_OMNI_TEXT, "model_type": "qwen3_moe"})) == total
