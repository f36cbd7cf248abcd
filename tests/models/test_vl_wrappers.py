"""Multimodal checkpoints whose language model is a text family opgraph builds: InternVL3.5 (internvl_chat, its
llm_config; internvl, its text_config), GLM-4.1V (glm4v) and GLM-4.5V (glm4v_moe), MiniMax-VL-01 (minimax_vl_01).
Each must cost exactly as its language model does alone (the vision tower is noted, not costed): the transformers
code builds the text model of each from the nested config (modular_internvl.py: LlavaModel's text model;
modular_glm4v.py / modular_glm4v_moe.py: GLM-4-0414's and GLM-4.5-Air's layers with a 3-D rope over the same dims;
vLLM's minimax_vl_01.py: MiniMaxText01ForCausalLM)."""

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
