"""Multimodal checkpoints' language models.

LLaVA and its kin (llava, llava_next, llava_next_video, video_llava, vipllava, llava_onevision, paligemma,
aya_vision, cohere2_vision, lfm2_vl, idefics2, idefics3, smolvlm): their language model is costed from text_config,
which transformers saves with only what differs from its text class's defaults (to_diff_dict), so every key it
omits takes transformers 4.57.1's class default (configuration_llama.py, configuration_mistral.py, ...), as
transformers and vLLM build the model. Each config is a published file's (llava-hf/llava-1.5-7b-hf as first
published; mistral-community/pixtral-12b as its copies give it; the llava-onevision-qwen2-7b-ov-hf commit diff;
google/paligemma-3b-pt-224 and paligemma2-3b-pt-224 as re-saved copies give them; CohereForAI/aya-vision-8b's mlx
conversion; LiquidAI/LFM2-VL-1.6B with LFM2-1.2B's text fields). The counts are by hand from the shapes:
llava-1.5-7b 32 layers of 4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096, two tables of 32,064 x 4,096 and a norm; the others
alike (the vision tower and projector are not counted).

Multimodal checkpoints whose language model sits elsewhere than a plain text_config: Qwen2.5-Omni's thinker
(thinker_config.text_config; its talker and token2wav, which vLLM does not serve, not costed), MiniCPM-V and
MiniCPM-o (the top level's fields, the language model its `version` names, as vLLM's minicpmv.py picks it) and
Phi-4-multimodal (the top level's Phi-4-mini fields; its vision and speech LoRA adapters run only for image and audio
requests). The configs are the published files' fields: openbmb/MiniCPM-V-2_6's config.json (a copy of it);
microsoft/Phi-4-multimodal-instruct's (TensorRT-LLM's test copy, its sizes as published; the LoRA blocks as mlx-vlm
reads them); Qwen/Qwen2.5-Omni-7B's thinker text fields (transformers' Qwen2_5OmniTextConfig defaults, which are
the 7B's). Each count is by hand: a Qwen2 layer of 3,584 (q, k, v biased; 28 heads of 128 over 4 KV heads; a SwiGLU of
18,944) and untied tables for Qwen2.5-Omni-7B and MiniCPM-V-2.6; Phi-4-mini's 32 layers of 3,072 (24 heads of 128
over 8; a SwiGLU of 8,192) and a tied table of 200,064."""

import pytest
from config_files import load, params

from opgraph import OpgraphError, Phase

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


LONG = [1.0] * 48
OTHERS = {  # name: (config.json, its language model counted by hand)
 "qwen2.5-omni-7b": ({"architectures": ["Qwen2_5OmniModel"], "enable_audio_output": True, "enable_talker": True, "model_type": "qwen2_5_omni", "pad_token_id": 151643,
   "thinker_config": {"model_type": "qwen2_5_omni_thinker", "audio_config": {"model_type": "qwen2_5_omni_audio_encoder"}, "vision_config": {"model_type": "qwen2_5_omni_vision_encoder"},
     "text_config": {"model_type": "qwen2_5_omni_text", "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "hidden_act": "silu", "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "max_position_embeddings": 32768, "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}, "use_sliding_window": False, "sliding_window": 32768, "tie_word_embeddings": False}},
   "talker_config": {"model_type": "qwen2_5_omni_talker", "hidden_size": 896, "num_hidden_layers": 24}, "token2wav_config": {"model_type": "qwen2_5_omni_token2wav"}}, 7615616512),
 "minicpm-v-2_6": ({"_name_or_path": "openbmb/MiniCPM-V-2_6", "version": 2.6, "architectures": ["MiniCPMV"], "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMVConfig"},
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
    "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.0", "use_cache": True, "use_sliding_window": False, "vocab_size": 151666, "batch_vision_input": True, "drop_vision_last_layer": False, "image_size": 448, "model_type": "minicpmv",
    "patch_size": 14, "query_num": 64, "slice_config": {"max_slice_nums": 9, "patch_size": 14, "model_type": "minicpmv"}, "slice_mode": True,
    "vision_config": {"hidden_size": 1152, "image_size": 980, "intermediate_size": 4304, "model_type": "siglip", "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14}}, 7612763648),
 "phi-4-multimodal": ({"architectures": ["Phi4MMForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "audio_processor": {"config": {"attention_dim": 1024}, "name": "cascades"},
    "auto_map": {"AutoConfig": "configuration_phi4mm.Phi4MMConfig"}, "bos_token_id": 199999, "embd_layer": {"embedding_cls": "image_audio"}, "embd_pdrop": 0.0, "eos_token_id": 199999, "full_attn_mod": 1,
    "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192, "interpolate_factor": 1, "lm_head_bias": False, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "phi4mm", "num_attention_heads": 24, "num_hidden_layers": 32, "num_key_value_heads": 8, "original_max_position_embeddings": 4096, "pad_token_id": 199999, "partial_rotary_factor": 0.75,
    "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": {"long_factor": LONG, "short_factor": LONG, "type": "longrope"}, "rope_theta": 10000.0, "sliding_window": 262144,
    "speech_lora": {"dp": 0.01, "layer": "((layers.*self_attn\\.(qkv|o)_proj)|(layers.*mlp\\.(gate_up|down)_proj))", "lora_alpha": 640, "r": 320},
    "vision_lora": {"dp": 0.0, "layer": "layers.*((self_attn\\.(qkv_proj|o_proj))|(mlp\\.(gate_up|down)_proj))", "lora_alpha": 512, "r": 256},
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.46.1", "use_cache": True, "vocab_size": 200064}, 3836021760),
}
CONFIGS.update(OTHERS)

# deepseek-ai/deepseek-vl2-tiny's and deepseek-vl2's config.json (a duplicate of the first, the second as its
# repository shows it; their language_config's tail as DeepSeek-OCR's and rtp-llm's copies give it)
RES = [[384,384],[384,768]]
AUTO = {"AutoConfig": "configuration_deepseek.DeepseekV2Config", "AutoModel": "modeling_deepseek.DeepseekV2Model", "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM"}
VL2_TINY = {"candidate_resolutions": RES, "global_view_pos": "head",
  "language_config": {"architectures": ["DeepseekV2ForCausalLM"], "auto_map": AUTO, "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 1, "hidden_size": 1280, "intermediate_size": 6848,
    "kv_lora_rank": None, "lm_head": True, "max_position_embeddings": 4096, "model_type": "deepseek_v2", "moe_intermediate_size": 896, "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2,
    "num_attention_heads": 10, "num_experts_per_tok": 6, "num_hidden_layers": 12, "num_key_value_heads": 10, "q_lora_rank": None, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0,
    "rm_head": False, "topk_group": 1, "topk_method": "greedy", "torch_dtype": "bfloat16", "use_mla": False, "v_head_dim": 0, "vocab_size": 129280},
  "model_type": "deepseek_vl_v2", "projector_config": {"model_type": "mlp_projector"}, "tile_tag": "2D", "vision_config": {"model_type": "vision"}}
VL2 = {**VL2_TINY, "language_config": {"architectures": ["DeepseekV2ForCausalLM"], "auto_map": AUTO, "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 1, "hidden_size": 2560, "intermediate_size": 12288,
    "lm_head": False, "max_position_embeddings": 4096, "model_type": "deepseek_v2", "moe_intermediate_size": 1536, "n_group": 1, "n_routed_experts": 72, "n_shared_experts": 2, "norm_topk_prob": True, "num_experts_per_tok": 6,
    "q_lora_rank": None, "rm_head": False, "routed_scaling_factor": 2.0, "scoring_func": "sigmoid", "topk_group": 1, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "vocab_size": 129280}}
CONFIGS.update({"deepseek-vl2-tiny": (VL2_TINY, 2934734080), "deepseek-vl2": (VL2, 27033548328)})


@pytest.mark.parametrize("name", CONFIGS)
def test_language_model_counts(tmp_path, name):
    config, total = CONFIGS[name]
    assert params(tmp_path, config) == total


def test_omitted_keys_are_named_as_the_class_defaults(tmp_path):
    notes = load(tmp_path, CONFIGS["llava-1.5-7b"][0]).notes
    assert any("taken from its llama config class's defaults: hidden_size 4096, intermediate_size 11008, "
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


def qwen2_7b(vocab):
    layer = (3584 * 3584 + 3584) + 2 * (3584 * 512 + 512) + 3584 * 3584 + 3 * 3584 * 18944 + 2 * 3584
    return 28 * layer + 2 * vocab * 3584 + 3584


def test_hand_counts():
    assert CONFIGS["qwen2.5-omni-7b"][1] == qwen2_7b(152064)  # Qwen2.5-7B's 7.61B
    assert CONFIGS["minicpm-v-2_6"][1] == qwen2_7b(151666)
    phi4_layer = 3072 * 5120 + 3072 * 3072 + 3 * 3072 * 8192 + 2 * 3072
    assert CONFIGS["phi-4-multimodal"][1] == 32 * phi4_layer + 200064 * 3072 + 3072  # Phi-4-mini's 3.8B


def test_what_is_not_costed_is_said(tmp_path):
    omni = load(tmp_path, CONFIGS["qwen2.5-omni-7b"][0]).notes
    assert any("the vision and audio towers of this qwen2_5_omni checkpoint are not" in n for n in omni)
    assert any("talker and token2wav" in n for n in omni)
    phi = load(tmp_path, CONFIGS["phi-4-multimodal"][0]).notes
    assert any("LoRA adapters" in n for n in phi) and not any("not read" in n for n in phi)
    assert not any("not read" in n for n in load(tmp_path, CONFIGS["minicpm-v-2_6"][0]).notes)


def test_minicpm_v_version_picks_the_language_model(tmp_path):
    config = CONFIGS["minicpm-v-2_6"][0]
    # 4.5: Qwen3's layer, its per-head q and k norms (a scale of 128 each) beside Qwen2's shapes without biases
    qwen3 = {**config, "version": 4.5, "head_dim": 128}
    biases = 28 * (3584 + 2 * 512)
    assert params(tmp_path, qwen3) == CONFIGS["minicpm-v-2_6"][1] - biases + 28 * 2 * 128
    with pytest.raises(OpgraphError, match="'version' is 3.0; minicpmv supported: 2.0, 2.5, 2.6, 4.0, 4.5"):
        load(tmp_path, {**config, "version": 3.0})
    # without a version, vLLM takes 2.5 (Llama's layer, no biases) unless hidden is 2,304 with 64 queries
    qwen2_keys = ("version", "sliding_window", "use_sliding_window", "max_window_layers")
    assert params(tmp_path, {k: v for k, v in config.items() if k not in qwen2_keys}) == \
        CONFIGS["minicpm-v-2_6"][1] - biases


def test_deepseek_vl2_language_models(tmp_path):
    """tiny: 12 layers of multi-head attention (use_mla false: 10 heads of 128), the first dense (6,848), then 64
    experts of 896 top-6 and 2 shared; deepseek-vl2: MLA of DeepSeek-VL2's DeepseekV2Config defaults (30 layers, 32
    heads, kv_lora_rank 512, 128 + 64 q/k dims, v 128, q unranked), 72 experts of 1,536 with a selection bias each
    (noaux_tc), 2 shared."""
    d, e = 1280, 3 * 1280 * 896
    tiny = 2 * 129280 * d + 12 * (4 * d * d + 2 * d) + 3 * d * 6848 + 11 * (64 * e + 2 * e + 64 * d) + d
    d, e = 2560, 3 * 2560 * 1536
    mla = d * 32 * 192 + d * 576 + 512 + 512 * 32 * 256 + 32 * 128 * d
    base = 2 * 129280 * d + 30 * (mla + 2 * d) + 3 * d * 12288 + 29 * (72 * e + 2 * e + 72 * d + 72) + d
    assert (tiny, base) == (CONFIGS["deepseek-vl2-tiny"][1], CONFIGS["deepseek-vl2"][1])
    cfg = load(tmp_path, VL2_TINY)
    assert cfg.mla is None and (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim) == (10, 10, 128)
    assert any("num_hidden_layers 30, num_attention_heads 32" in n for n in load(tmp_path, VL2).notes)


def test_mllama_is_refused_with_its_reason(tmp_path):
    with pytest.raises(OpgraphError, match="'model_type' is 'mllama', which is not supported: Llama-3.2-Vision's"):
        load(tmp_path, {"model_type": "mllama", "text_config": {"model_type": "mllama_text_model"}})


# Speech models and InternVL's kin whose language model sits in llm_config: Qwen/Qwen2-Audio-7B-Instruct's first
# config.json (transformers 4.38.1: its text_config saved as the differences from Qwen2Config's defaults);
# mistralai/Voxtral-Small-24B-2507's (a duplicate of it); nvidia/NVLM-D-72B's llm_config as far as its published page
# shows it (hidden 8,192, MLP 29,568, q/k/v biased), the rest Qwen2-72B-Instruct's, which it names; Keye-VL-8B's
# top-level Qwen3-8B fields (a fine-tune's copy); the others' language models are Llama-3.1-8B's, Qwen3-8B's and
# Nemotron-H's fields under their wrapper's key.
QWEN2_AUDIO = {"architectures": ["Qwen2AudioForConditionalGeneration"], "audio_config": {"model_type": "qwen2_audio_encoder"},
               "audio_token_index": 151646, "ignore_index": -100, "model_type": "qwen2_audio",
               "text_config": {"bos_token_id": 151643, "eos_token_id": 151645, "intermediate_size": 11008, "max_position_embeddings": 8192, "model_type": "qwen2", "rope_theta": 10000,
                               "rms_norm_eps": 1e-5, "sliding_window": 32768, "torch_dtype": "bfloat16", "use_mrope": False, "vocab_size": 156032},
               "transformers_version": "4.38.1", "vocab_size": 156032}
VOXTRAL_SMALL = {"architectures": ["VoxtralForConditionalGeneration"], "audio_config": {"model_type": "voxtral_encoder"}, "audio_token_id": 24, "hidden_size": 5120, "model_type": "voxtral", "projector_hidden_act": "gelu",
                 "text_config": {"attention_bias": False, "attention_dropout": 0.0, "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120, "initializer_range": 0.02, "intermediate_size": 32768, "max_position_embeddings": 131072,
                                 "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
                                 "rope_theta": 100000000.0, "sliding_window": None, "use_cache": True, "vocab_size": 131072},
                 "torch_dtype": "bfloat16", "transformers_version": "4.54.0.dev0", "vocab_size": 131072}
QWEN2_72B = {"architectures": ["Qwen2ForCausalLM"], "attention_bias": True, "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 8192, "intermediate_size": 29568,
             "max_position_embeddings": 32768, "mlp_bias": False, "model_type": "qwen2", "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8, "rope_theta": 1000000.0,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 152064}
LLAMA_31_8B = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
               "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 128256}
QWEN3_8B = {"architectures": ["Qwen3ForCausalLM"], "head_dim": 128, "hidden_size": 4096, "intermediate_size": 12288, "max_position_embeddings": 40960, "model_type": "qwen3", "num_attention_heads": 32,
            "num_hidden_layers": 36, "num_key_value_heads": 8, "rope_theta": 1000000, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 151936}
VISION = {"model_type": "intern_vit_6b"}


def gqa(d, heads, kv, head_dim, ffn, *, qkv_bias=False, qk_norm=False):
    """One pre-norm SwiGLU layer of grouped-query attention."""
    return (2 * d * heads * head_dim + 2 * d * kv * head_dim + (heads + 2 * kv) * head_dim * qkv_bias
            + 2 * head_dim * qk_norm + 3 * d * ffn + 2 * d)


SPEECH_AND_LLM_CONFIG = {  # name: (config.json, its language model by hand)
    "qwen2-audio-7b": (QWEN2_AUDIO, 32 * gqa(4096, 32, 32, 128, 11008, qkv_bias=True) + 2 * 156032 * 4096 + 4096),
    "voxtral-small-24b": (VOXTRAL_SMALL, 40 * gqa(5120, 32, 8, 128, 32768) + 2 * 131072 * 5120 + 5120),
    "nvlm-d-72b": ({"architectures": ["NVLM_D"], "model_type": "NVLM_D", "downsample_ratio": 0.5, "llm_config": QWEN2_72B, "vision_config": VISION, "torch_dtype": "bfloat16"},
                   80 * gqa(8192, 64, 8, 128, 29568, qkv_bias=True) + 2 * 152064 * 8192 + 8192),
    "llama-nemotron-nano-vl-8b": ({"model_type": "Llama_Nemotron_Nano_VL", "llm_config": LLAMA_31_8B, "vision_config": {"model_type": "radio"}},
                                  32 * gqa(4096, 32, 8, 128, 14336) + 2 * 128256 * 4096 + 4096),
    "intern-s1-mini": ({"model_type": "interns1", "text_config": QWEN3_8B, "vision_config": {"model_type": "interns1_vision"}},
                       36 * gqa(4096, 32, 8, 128, 12288, qk_norm=True) + 2 * 151936 * 4096 + 4096),
    "ovis2.5-9b": ({"model_type": "ovis2_5", "llm_config": QWEN3_8B, "vit_config": {"model_type": "siglip2_navit"}, "visual_vocab_size": 65536},
                   36 * gqa(4096, 32, 8, 128, 12288, qk_norm=True) + 2 * 151936 * 4096 + 4096),
    "keye-vl-8b": ({**{k: v for k, v in QWEN3_8B.items() if k != "architectures"}, "model_type": "Keye", "architectures": ["KeyeForConditionalGeneration"],
                    "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}, "vision_config": {"model_type": "Keye"}},
                   36 * gqa(4096, 32, 8, 128, 12288, qk_norm=True) + 2 * 151936 * 4096 + 4096),
}
# rhymes-ai/Aria's config.json (transformers 4.47.0.dev0: its text_config diff-saved against AriaTextConfig, so the two
# shared experts are its default): 28 layers of multi-head attention over 20 heads of 128, 64 SwiGLU experts of
# 1,664 top-6 and a shared SwiGLU of 2 x 1,664, a router [64, 2,560], untied tables of 100,352
ARIA = {"_name_or_path": "rhymes-ai/Aria", "architectures": ["AriaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 9, "initializer_range": 0.02, "model_type": "aria", "pad_token_id": 2,
        "projector_patch_to_query_dict": {"1225": 128, "4900": 256},
        "text_config": {"hidden_size": 2560, "intermediate_size": 1664, "max_position_embeddings": 65536, "model_type": "aria_text", "moe_intermediate_size": 1664, "moe_num_experts": 64, "moe_topk": 6,
                        "num_attention_heads": 20, "num_experts_per_tok": 6, "num_hidden_layers": 28, "num_key_value_heads": 20, "rope_theta": 5000000, "vocab_size": 100352},
        "torch_dtype": "bfloat16", "transformers_version": "4.47.0.dev0", "vision_config": {"model_type": "idefics3_vision"}, "vision_feature_layer": -1}
SPEECH_AND_LLM_CONFIG["aria"] = (ARIA, 28 * (4 * 2560 ** 2 + 64 * 2560 + 64 * 3 * 2560 * 1664 + 2 * 3 * 2560 * 1664 + 2 * 2560)
                                 + 2 * 100352 * 2560 + 2560)
# adept/fuyu-8b's config.json (besiktas/fuyu-8b's copy of it): the top level repeats the language model's fields, and
# text_config names only its model_type, so transformers (and vLLM, which builds the text_config) take PersimmonConfig's
# defaults, the same 36 layers of 4,096
FUYU_8B = {"_name_or_path": "adept/fuyu-8b", "architectures": ["FuyuForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 71013, "hidden_act": "relu2", "hidden_dropout": 0.0,
           "hidden_size": 4096, "image_size": 300, "initializer_range": 0.02, "intermediate_size": 16384, "layer_norm_eps": 1e-05, "max_position_embeddings": 16384, "model_type": "fuyu",
           "num_attention_heads": 64, "num_channels": 3, "num_hidden_layers": 36, "partial_rotary_factor": 0.5, "patch_size": 30, "qk_layernorm": True, "rope_scaling": None, "rope_theta": 25000.0,
           "text_config": {"model_type": "persimmon"}, "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.40.1", "use_cache": True, "vocab_size": 262144}
PERSIMMON_LAYER = (3 * 4096 ** 2 + 3 * 4096) + (4096 ** 2 + 4096) + 4 * 64 + 2 * 4096 * 16384 + 16384 + 4096 + 4 * 4096
SPEECH_AND_LLM_CONFIG["fuyu-8b"] = (FUYU_8B, 36 * PERSIMMON_LAYER + 2 * 4096 + 2 * 262144 * 4096)
CONFIGS.update(SPEECH_AND_LLM_CONFIG)


def test_fuyu_reads_its_top_level_where_it_has_no_text_config(tmp_path):
    flat = {k: v for k, v in FUYU_8B.items() if k != "text_config"}
    assert params(tmp_path, flat) == SPEECH_AND_LLM_CONFIG["fuyu-8b"][1]
    # a top-level field that disagrees with the language model vLLM builds (PersimmonConfig's) is refused by name
    with pytest.raises(OpgraphError, match="intermediate_size"):
        load(tmp_path, {**FUYU_8B, "intermediate_size": 8192})


def test_aria_takes_its_two_shared_experts_from_the_class_default(tmp_path):
    cfg = load(tmp_path, ARIA)
    assert cfg.moe.shared == 2 and cfg.moe.top_k == 6 and cfg.moe.renormalize
    assert any("moe_num_shared_experts 2" in n for n in cfg.notes)
    with pytest.raises(OpgraphError, match="moe_intermediate_size"):
        load(tmp_path, {**ARIA, "text_config": {**ARIA["text_config"], "moe_intermediate_size": 1024}})


def test_speech_models_say_what_they_are(tmp_path):
    notes = load(tmp_path, QWEN2_AUDIO).notes
    assert any("the audio tower and projector of this qwen2_audio checkpoint are not" in n for n in notes)
    assert any("hidden_size 4096, num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 32" in n
               for n in notes)  # Qwen2Config's defaults, which its diff-saved text_config leaves out
    assert any("MistralForCausalLM" in n for n in load(tmp_path, VOXTRAL_SMALL).notes)
    speech = load(tmp_path, {"model_type": "granite_speech", "has_lora_adapter": True, "encoder_config": {},
                             "text_config": {**LLAMA_31_8B, "model_type": "granite"}})
    assert any("runs only for audio requests" in n for n in speech.notes)


def test_intern_s1_names_its_language_model(tmp_path):
    text = {k: v for k, v in QWEN3_8B.items() if k != "model_type"}
    with pytest.raises(OpgraphError, match="text_config.model_type"):
        load(tmp_path, {"model_type": "interns1", "text_config": text})


@pytest.mark.parametrize("model_type, reason", [("hunyuan", "cross-layer attention"), ("ultravox", "text_model_id")])
def test_models_refused_with_their_reason(tmp_path, model_type, reason):
    with pytest.raises(OpgraphError, match=f"'{model_type}', which is not supported: .*{reason}"):
        load(tmp_path, {"model_type": model_type, "hidden_size": 64})


# allenai/Molmo-7B-D-0924's config.json (its Hugging Face page): the language model's fields at the top level,
# intermediate_size the two SwiGLU branches together, an embedding table of embedding_size + 128 image-token rows
MOLMO_7B_D = {"architectures": ["MolmoForCausalLM"], "attention_layer_norm": False,
              "auto_map": {"AutoConfig": "config_molmo.MolmoConfig", "AutoModelForCausalLM": "modeling_molmo.MolmoForCausalLM"},
              "clip_qkv": None, "embedding_size": 152064, "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 37888, "layer_norm_eps": 1e-06,
              "layer_norm_type": "rms", "max_position_embeddings": 4096, "model_type": "molmo", "norm_after": False, "num_attention_heads": 28, "num_hidden_layers": 28,
              "num_key_value_heads": 4, "qkv_bias": True, "rope_theta": 1000000.0, "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.43.3",
              "use_cache": True, "use_position_ids": True, "vocab_size": 152064, "weight_tying": False}


def test_molmo_language_model(tmp_path):
    d = 3584  # Qwen2-7B's layer: q, k, v biased, 4 KV heads of 128, a SwiGLU of 37,888 / 2
    layer = linear(d, d) + 2 * linear(d, 512) + d * d + 3 * d * 18944 + 2 * d
    assert params(tmp_path, MOLMO_7B_D) == 28 * layer + d + 152064 * d + (152064 + 128) * d
    cfg = load(tmp_path, MOLMO_7B_D)
    assert any("vision backbone" in n for n in cfg.notes)
    with pytest.raises(OpgraphError, match="tie_word_embeddings"):
        load(tmp_path, {**MOLMO_7B_D, "tie_word_embeddings": True})
    with pytest.raises(OpgraphError, match="moe_num_experts"):  # MolmoE-1B's experts: refused, not priced dense
        load(tmp_path, {**MOLMO_7B_D, "moe_num_experts": 64, "moe_top_k": 8})


def linear(n_in, n_out):
    return n_in * n_out + n_out
