"""LLaVA and its kin (llava, llava_next, llava_next_video, video_llava, vipllava, llava_onevision, paligemma,
aya_vision, cohere2_vision, lfm2_vl, idefics2, idefics3, smolvlm): their language model is costed from text_config,
which transformers saves with only what differs from its text class's defaults (to_diff_dict), so every key it
omits takes transformers 4.57.1's class default (configuration_llama.py, configuration_mistral.py, ...), as
transformers and vLLM build the model. Each config is a published file's (llava-hf/llava-1.5-7b-hf as first
published; mistral-community/pixtral-12b as its copies give it; the llava-onevision-qwen2-7b-ov-hf commit diff;
google/paligemma-3b-pt-224 and paligemma2-3b-pt-224 as re-saved copies give them; CohereForAI/aya-vision-8b's mlx
conversion; LiquidAI/LFM2-VL-1.6B with LFM2-1.2B's text fields). The counts are by hand from the shapes:
llava-1.5-7b 32 layers of 4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096, two tables of 32,064 x 4,096 and a norm; the others
alike (the vision tower and projector are not counted)."""

import pytest
from config_files import load, params

from opgraph import Phase

CLIP = {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768, "vocab_size": 32000}
CONFIGS = {  # name: (config.json, the language model counted by hand in the docstring's sources)
 "llava-1.5-7b": ({"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000, "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
   "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05, "torch_dtype": "float16", "vocab_size": 32064},
   "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0", "vision_config": CLIP, "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064}, 6738939904),
 "pixtral-12b": ({"_commit_hash": None, "_name_or_path": "../pixtral", "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_seq_length": 1, "image_token_index": 10, "model_type": "llava", "projector_hidden_act": "gelu",
   "text_config": {"hidden_size": 5120, "head_dim": 128, "intermediate_size": 14336, "is_composition": True, "max_position_embeddings": 1024000, "model_type": "mistral", "num_hidden_layers": 40, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000000.0, "sliding_window": None, "vocab_size": 131072},
   "torch_dtype": "bfloat16", "transformers_version": None, "vision_config": {"head_dim": 64, "hidden_act": "silu", "image_size": 1024, "is_composition": True, "model_type": "pixtral", "patch_size": 16, "rope_theta": 10000.0, "tie_word_embeddings": False}, "vision_feature_layer": -1, "vision_feature_select_strategy": "full"}, 12247782400),
 "onevision-7b": ({"image_token_index": 151646, "model_type": "llava_onevision", "projector_hidden_act": "gelu",
   "text_config": {"_name_or_path": "Qwen/Qwen2-7B-Instruct", "architectures": ["Qwen2ForCausalLM"], "eos_token_id": 151645, "hidden_size": 3584, "intermediate_size": 18944, "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rope_theta": 1000000.0, "torch_dtype": "bfloat16", "vocab_size": 152128},
   "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.45.0.dev0", "use_image_newline_parameter": True, "vision_aspect_ratio": "anyres_max_9", "vision_config": {"hidden_size": 1152, "image_size": 384, "intermediate_size": 4304, "model_type": "siglip_vision_model"}}, 7616075264),
 "paligemma-3b": ({"architectures": ["PaliGemmaForConditionalGeneration"], "bos_token_id": 2, "eos_token_id": 1, "hidden_size": 2048, "ignore_index": -100, "image_token_index": 257152, "model_type": "paligemma", "pad_token_id": 0, "projection_dim": 2048,
   "text_config": {"hidden_size": 2048, "intermediate_size": 16384, "model_type": "gemma", "num_attention_heads": 8, "num_hidden_layers": 18, "num_image_tokens": 256, "num_key_value_heads": 1, "torch_dtype": "float32", "vocab_size": 257216},
   "torch_dtype": "float32", "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}, "vocab_size": 257216}, 2508662784),
 "paligemma2-3b": ({"_vocab_size": 257152, "architectures": ["PaliGemmaForConditionalGeneration"], "bos_token_id": 2, "eos_token_id": 1, "hidden_size": 2048, "image_token_index": 257152, "model_type": "paligemma", "num_hidden_layers": 26, "pad_token_id": 0, "projection_dim": 2304,
   "text_config": {"architectures": ["Gemma2ForCausalLM"], "attn_logit_softcapping": 50.0, "cache_implementation": "hybrid", "eos_token_id": [1, 107], "final_logit_softcapping": 30.0, "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "intermediate_size": 9216, "model_type": "gemma2", "num_hidden_layers": 26, "num_image_tokens": 256, "num_key_value_heads": 4, "query_pre_attn_scalar": 256, "sliding_window": 4096, "torch_dtype": "bfloat16", "vocab_size": 257216},
   "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}}, 2617143552),
 "aya-vision-8b": ({"adapter_layer_norm_eps": 1e-06, "alignment_activation_fn": "swiglu", "alignment_intermediate_size": 28672, "architectures": ["AyaVisionForConditionalGeneration"], "downsample_factor": 2, "image_token_index": 255036, "max_splits_per_img": 12, "model_type": "aya_vision", "projector_hidden_act": "gelu",
   "text_config": {"hidden_size": 4096, "intermediate_size": 14336, "logit_scale": 0.25, "model_type": "cohere2", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rope_theta": 50000, "torch_dtype": "float16", "use_qk_norm": False},
   "torch_dtype": "float16", "transformers_version": "4.50.0.dev0", "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}, "vision_feature_layer": -1, "vision_feature_select_strategy": "full"}, 8028033024),
 "lfm2-vl-1.6b": ({"model_type": "lfm2-vl", "architectures": ["Lfm2VlForConditionalGeneration"], "downsample_factor": 2, "projector_hidden_act": "gelu", "image_token_index": 396,
   "text_config": {"model_type": "lfm2", "block_auto_adjust_ff_dim": True, "block_ff_dim": 12288, "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256, "conv_L_cache": 3, "conv_bias": False, "hidden_size": 2048, "full_attn_idxs": [2,5,8,10,12,14], "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 16, "norm_eps": 1e-05, "rope_theta": 1000000.0, "max_position_embeddings": 128000, "vocab_size": 65536},
   "vision_config": {"model_type": "siglip2_vision_model"}}, 1170340608),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_language_model_counts(tmp_path, name):
    config, total = CONFIGS[name]
    assert params(tmp_path, config) == total


def test_omitted_keys_are_named_as_the_class_defaults(tmp_path):
    notes = load(tmp_path, CONFIGS["llava-1.5-7b"][0]).notes
    assert any("taken from transformers' llama config defaults: hidden_size 4096, intermediate_size 11008, "
               "num_hidden_layers 32, num_attention_heads 32" in n for n in notes)


def test_an_explicit_null_stays_null(tmp_path):
    cfg = load(tmp_path, CONFIGS["pixtral-12b"][0])  # "sliding_window": null: no window, not Mistral's 4,096
    assert cfg.sliding_window is None
    assert cfg.head_dim == 128  # its own head_dim, not 5,120 / 32


def test_the_language_model_ties_as_its_own_config_says(tmp_path):
    # llava_next writes tie_word_embeddings false at its top level whatever its language model does; a Gemma language
    # model that omits it is tied (GemmaConfig's default), as transformers and vLLM tie it
    paligemma = CONFIGS["paligemma-3b"][0]
    wrapped = {"model_type": "llava_next", "tie_word_embeddings": False, "text_config": paligemma["text_config"]}
    assert load(tmp_path, wrapped).tie_embeddings
    assert params(tmp_path, wrapped) == CONFIGS["paligemma-3b"][1]


def test_no_text_config_is_the_wrappers_default(tmp_path):
    # PaliGemmaConfig builds GemmaConfig(hidden 2048, 18 layers, MLP 16,384, 8 heads, 1 KV head, vocab 257,152)
    cfg = load(tmp_path, {"model_type": "paligemma"})
    layer = 2048 * 8 * 256 + 2 * 2048 * 256 + 8 * 256 * 2048 + 3 * 2048 * 16384 + 2 * 2048
    assert cfg.build(Phase.decode(1, 1)).params() == 18 * layer + 257152 * 2048 + 2048
    assert any("paligemma's default text config (the file has none)" in n for n in cfg.notes)


@pytest.mark.parametrize("spelling", ["lfm2-vl", "lfm2_vl"])
def test_lfm2_vl_loads_under_both_spellings(tmp_path, spelling):
    config, total = CONFIGS["lfm2-vl-1.6b"]
    assert params(tmp_path, {**config, "model_type": spelling}) == total
