"""Loading Hugging Face config.json files from disk: every supported model_type, old and new key spellings,
errors that name the field and the file, and the CLI as a user meets it."""

import json

import pytest

from opgraph import hardware
from opgraph import models
from opgraph.models import hf_config
from userland import opgraph
from opgraph import BF16, FP16, FP32, OpgraphError, Phase, analyze, strategy

# Small configs of each supported model_type, as the checkpoints spell them.
# Ring-linear's and Ling-2.5's shared fields: Ling-2.0's MoE, lightning layers with a softmax one every 2nd
LING_LINEAR = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
               "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "first_k_dense_replace": 1,
               "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16, "num_shared_experts": 1,
               "n_group": 2, "topk_group": 1, "score_function": "sigmoid", "use_qk_norm": True,
               "partial_rotary_factor": 0.5, "routed_scaling_factor": 2.5, "layer_group_size": 2, "group_norm_size": 4}
TINY = {
    "llama": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "rope_theta": 500000.0,
              "torch_dtype": "bfloat16"},
    "mistral": {"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 1,
                "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "sliding_window": 8},
    "mixtral": {"model_type": "mixtral", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 96, "num_hidden_layers": 2, "vocab_size": 100, "num_local_experts": 4,
                "num_experts_per_tok": 2, "sliding_window": None},
    "qwen2": {"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "use_sliding_window": True,
              "sliding_window": 16, "max_window_layers": 1, "tie_word_embeddings": True},
    "gpt2": {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 32, "n_inner": None,
             "vocab_size": 100, "activation_function": "gelu_new"},
    "deepseek_v2": {"model_type": "deepseek_v2", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
                    "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8,
                    "n_shared_experts": 2, "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": None,
                    "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
                    "vocab_size": 100},
    "deepseek_v3": {"model_type": "deepseek_v3", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
                    "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8,
                    "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 2, "q_lora_rank": 24,
                    "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
                    "vocab_size": 100, "num_nextn_predict_layers": 1},
    "gemma": {"model_type": "gemma", "hidden_size": 48, "num_attention_heads": 2, "num_key_value_heads": 1,
              "head_dim": 32, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
              "hidden_act": "gelu"},
    "qwen3": {"model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
              "attention_bias": False, "use_sliding_window": False, "max_window_layers": 2, "sliding_window": None},
    "qwen3_moe": {"model_type": "qwen3_moe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100,
                  "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16, "norm_topk_prob": True,
                  "decoder_sparse_step": 1, "mlp_only_layers": [0]},
    "qwen3_next": {"model_type": "qwen3_next", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100,
                   "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                   "shared_expert_intermediate_size": 16, "full_attention_interval": 4, "partial_rotary_factor": 0.25,
                   "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 8,
                   "linear_value_head_dim": 8, "linear_conv_kernel_dim": 4},
    "qwen3_5_text": {"model_type": "qwen3_5_text", "hidden_size": 64, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 4,
                     "vocab_size": 100, "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                     "shared_expert_intermediate_size": 16, "attn_output_gate": True,
                     "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
                     "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 8,
                     "linear_value_head_dim": 8, "mamba_ssm_dtype": "float32"},
    "qwen3_5_moe_text": {"model_type": "qwen3_5_moe_text", "hidden_size": 64, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2, "vocab_size": 100,
                         "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                         "shared_expert_intermediate_size": 16, "layer_types": ["linear_attention", "full_attention"],
                         "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 8,
                         "linear_value_head_dim": 8},
    "mimo_v2_flash": {"model_type": "mimo_v2_flash", "hidden_size": 64, "num_attention_heads": 4,
                      "num_key_value_heads": 1, "head_dim": 24, "v_head_dim": 16, "swa_num_attention_heads": 4,
                      "swa_num_key_value_heads": 2, "swa_head_dim": 24, "swa_v_head_dim": 16, "num_hidden_layers": 3,
                      "vocab_size": 100, "intermediate_size": 128, "hybrid_layer_pattern": [0, 1, 1],
                      "moe_layer_freq": [0, 1, 1], "sliding_window": 8, "add_swa_attention_sink_bias": True,
                      "partial_rotary_factor": 0.334, "attention_value_scale": 0.707, "n_routed_experts": 8,
                      "num_experts_per_tok": 2, "moe_intermediate_size": 16, "scoring_func": "sigmoid",
                      "topk_method": "noaux_tc", "n_group": 1, "norm_topk_prob": True},
    "mimo_v2": {"model_type": "mimo_v2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 1,
                "head_dim": 24, "v_head_dim": 16, "swa_num_attention_heads": 4, "swa_num_key_value_heads": 2,
                "swa_head_dim": 24, "swa_v_head_dim": 16, "num_hidden_layers": 3, "vocab_size": 100,
                "intermediate_size": 128, "hybrid_layer_pattern": [0, 1, 1], "moe_layer_freq": [0, 1, 1],
                "sliding_window": 8, "add_swa_attention_sink_bias": True, "n_routed_experts": 8,
                "num_experts_per_tok": 2, "moe_intermediate_size": 16, "scoring_func": "sigmoid",
                "topk_method": "noaux_tc", "n_group": 1, "norm_topk_prob": True,
                "vision_config": {"model_type": "mimo_v2_vision"}, "audio_config": {"model_type": "mimo_v2_audio"}},
    "gpt_oss": {"model_type": "gpt_oss", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2,
                "head_dim": 16, "intermediate_size": 32, "num_hidden_layers": 2, "vocab_size": 100,
                "attention_bias": True, "num_local_experts": 4, "num_experts_per_tok": 2, "experts_per_token": 2,
                "sliding_window": 8, "swiglu_limit": 7.0, "layer_types": ["sliding_attention", "full_attention"],
                "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
                    "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}},
    "kimi_k2": {"model_type": "kimi_k2", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
                "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8, "n_shared_experts": 1,
                "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": 24, "kv_lora_rank": 32,
                "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "vocab_size": 100,
                "scoring_func": "sigmoid", "topk_method": "noaux_tc", "n_group": 1, "topk_group": 1,
                "norm_topk_prob": True, "routed_scaling_factor": 2.827},
    "deepseek_v32": {"model_type": "deepseek_v32", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
                     "intermediate_size": 128, "moe_intermediate_size": 16, "n_routed_experts": 8,
                     "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": 24,
                     "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
                     "vocab_size": 100, "index_n_heads": 4, "index_head_dim": 16, "index_topk": 8,
                     "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                             "weight_block_size": [128, 128]}},
    "gemma2": {"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100,
               "sliding_window": 8, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
               "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16},
    "gemma3_text": {"model_type": "gemma3_text", "hidden_size": 64, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 12,
                    "vocab_size": 100, "sliding_window": 8, "sliding_window_pattern": 6},
    "gemma4_text": {"model_type": "gemma4_text", "hidden_size": 64, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "num_global_key_value_heads": 1, "attention_k_eq_v": True,
                    "head_dim": 16, "global_head_dim": 32, "intermediate_size": 128, "num_hidden_layers": 6,
                    "vocab_size": 100, "sliding_window": 8, "hidden_size_per_layer_input": 0,
                    "enable_moe_block": True, "num_experts": 4, "top_k_experts": 2, "moe_intermediate_size": 16},
    "llama4_text": {"model_type": "llama4_text", "hidden_size": 64, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32, "intermediate_size_mlp": 128,
                    "num_hidden_layers": 8, "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 1,
                    "interleave_moe_layer_step": 2, "attention_chunk_size": 8, "use_qk_norm": True},
    "phi3": {"model_type": "phi3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
             "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "sliding_window": 15},
    "olmo2": {"model_type": "olmo2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
              "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100},
    "glm4_moe": {"model_type": "glm4_moe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100,
                 "attention_bias": True, "partial_rotary_factor": 0.5, "moe_intermediate_size": 16,
                 "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
                 "n_group": 1, "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
                 "use_qk_norm": True, "num_nextn_predict_layers": 1},
    "ministral3": {"model_type": "ministral3", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2,
                   "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                   "rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn", "factor": 16.0,
                                       "original_max_position_embeddings": 16, "llama_4_scaling_beta": 0.1}},
    "granitemoehybrid": {"model_type": "granitemoehybrid", "hidden_size": 64, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "intermediate_size": 16, "shared_intermediate_size": 32,
                         "num_local_experts": 4, "num_experts_per_tok": 2, "num_hidden_layers": 4, "vocab_size": 100,
                         "mamba_n_heads": 8, "mamba_d_state": 16, "mamba_chunk_size": 8,
                         "layer_types": ["mamba", "attention", "mamba", "mamba"], "embedding_multiplier": 12.0,
                         "residual_multiplier": 0.22, "logits_scaling": 8.0},
    "step3p5": {"model_type": "step3p5", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                "vocab_size": 100, "num_attention_heads": 4, "num_attention_groups": 2, "head_dim": 16,
                "use_qk_norm": True, "use_head_wise_attn_gate": True, "sliding_window": 8,
                "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "sliding_attention"],
                "partial_rotary_factors": [0.5, 1.0, 1.0, 1.0],
                "attention_other_setting": {"attention_type": "sliding_attention", "num_attention_heads": 8,
                                            "num_attention_groups": 2, "head_dim": 16},
                "use_moe": True, "moe_layers_enum": "1,2,3", "moe_num_experts": 8, "moe_top_k": 2,
                "moe_intermediate_size": 16, "share_expert_dim": 16, "moe_router_activation": "sigmoid",
                "use_moe_router_bias": True, "norm_expert_weight": True, "moe_router_scaling_factor": 3.0,
                "swiglu_limits": [0, 0, 0, 7.0], "swiglu_limits_shared": [0, 0, 0, 16.0]},
    "bailing_moe": {"model_type": "bailing_moe", "architectures": ["BailingMoeV2ForCausalLM"], "hidden_size": 64,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128,
                    "num_hidden_layers": 3, "vocab_size": 100, "first_k_dense_replace": 1, "num_experts": 8,
                    "num_experts_per_tok": 2, "moe_intermediate_size": 16, "num_shared_experts": 1, "n_group": 2,
                    "topk_group": 1, "score_function": "sigmoid", "use_qk_norm": True, "partial_rotary_factor": 0.5,
                    "routed_scaling_factor": 2.5},
    "qwen2_moe": {"model_type": "qwen2_moe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100, "num_experts": 8,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 16, "shared_expert_intermediate_size": 32,
                  "mlp_only_layers": [0]},
    "olmoe": {"model_type": "olmoe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
              "intermediate_size": 16, "num_hidden_layers": 2, "vocab_size": 100, "num_experts": 8,
              "num_experts_per_tok": 2},
    "smollm3": {"model_type": "smollm3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "no_rope_layer_interval": 2},
    "exaone4": {"model_type": "exaone4", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "sliding_window": 8,
                "sliding_window_pattern": 2},
    "glm4": {"model_type": "glm4", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "attention_bias": True,
             "partial_rotary_factor": 0.5},
    "glm4v_text": {"model_type": "glm4v_text", "hidden_size": 64, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                   "attention_bias": True, "partial_rotary_factor": 0.5},
    **{name: {"model_type": name, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100,
              "attention_bias": True, "partial_rotary_factor": 0.5, "moe_intermediate_size": 16,
              "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
              "n_group": 1, "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5}
       for name in ("glm4v_moe_text", "Glm4vMoe_text")},
    "dots1": {"model_type": "dots1", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
              "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100, "first_k_dense_replace": 1,
              "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
              "norm_topk_prob": True, "routed_scaling_factor": 2.5, "scoring_func": "noaux_tc"},
    "hunyuan_v1_dense": {"model_type": "hunyuan_v1_dense", "hidden_size": 64, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2,
                         "vocab_size": 100, "use_qk_norm": True, "tie_word_embeddings": True},
    "longcat_flash": {"model_type": "longcat_flash", "hidden_size": 64, "num_attention_heads": 4, "num_layers": 2,
                      "q_lora_rank": 24, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
                      "v_head_dim": 16, "ffn_hidden_size": 128, "expert_ffn_hidden_size": 16, "n_routed_experts": 8,
                      "zero_expert_num": 4, "zero_expert_type": "identity", "moe_topk": 3,
                      "routed_scaling_factor": 6.0, "vocab_size": 100, "mla_scale_q_lora": True,
                      "mla_scale_kv_lora": True, "attention_method": "MLA"},
    "nemotron-nas": {"model_type": "nemotron-nas", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 4,
                     "vocab_size": 100, "num_key_value_heads": None, "intermediate_size": None,
                     "block_configs": [
                         {"attention": {"no_op": False, "n_heads_in_group": 2}, "ffn": {"ffn_mult": 1.0}},
                         {"attention": {"no_op": True}, "ffn": {"ffn_mult": 2.5}},
                         {"attention": {"no_op": False, "n_heads_in_group": 2}, "ffn": {"no_op": True}},
                         {"attention": {"no_op": True}, "ffn": {"no_op": True}}]},
    "bailing_hybrid": {**LING_LINEAR, "model_type": "bailing_hybrid", "architectures": ["BailingMoeV2_5ForCausalLM"],
                       "num_key_value_heads": 4, "q_lora_rank": 24, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
                       "qk_rope_head_dim": 8, "v_head_dim": 16, "num_nextn_predict_layers": 1},
    "bailing_moe_linear": {**LING_LINEAR, "model_type": "bailing_moe_linear",
                           "architectures": ["BailingMoeLinearV2ForCausalLM"], "linear_silu": False,
                           "router_dtype": "fp32", "use_rmsnorm": True},
    "ernie4_5": {"model_type": "ernie4_5", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "use_bias": True},
    "granite": {"model_type": "granite", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "embedding_multiplier": 12.0,
                "residual_multiplier": 0.22, "attention_multiplier": 0.0625, "logits_scaling": 8.0,
                "tie_word_embeddings": True},
    "granitemoe": {"model_type": "granitemoe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "intermediate_size": 32, "num_hidden_layers": 2, "vocab_size": 100, "num_local_experts": 8,
                   "num_experts_per_tok": 2, "residual_multiplier": 0.22},
    "granitemoeshared": {"model_type": "granitemoeshared", "hidden_size": 64, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "intermediate_size": 32, "num_hidden_layers": 2, "vocab_size": 100,
                         "num_local_experts": 8, "num_experts_per_tok": 2, "shared_intermediate_size": 64},
    "apertus": {"model_type": "apertus", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "hidden_act": "xielu",
                "qk_norm": True, "post_norm": False},
    "afmoe": {"model_type": "afmoe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100,
              "moe_intermediate_size": 16, "num_experts": 8, "num_experts_per_tok": 2, "num_shared_experts": 1,
              "num_dense_layers": 1, "sliding_window": 8, "route_scale": 2.5, "mup_enabled": True},
    "lfm2": {"model_type": "lfm2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
             "block_ff_dim": 192, "num_hidden_layers": 3, "vocab_size": 100, "full_attn_idxs": [1]},
    "lfm2_moe": {"model_type": "lfm2_moe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100, "moe_intermediate_size": 16,
                 "num_experts": 8, "num_experts_per_tok": 2, "num_dense_layers": 1,
                 "layer_types": ["conv", "full_attention", "conv"]},
    "qwen2_vl_text": {"model_type": "qwen2_vl_text", "hidden_size": 64, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                      "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}},
    "qwen2_5_vl_text": {"model_type": "qwen2_5_vl_text", "hidden_size": 64, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100},
    "step3_text": {"model_type": "step3_text", "hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                   "share_q_dim": 32, "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100,
                   "moe_num_experts": 4, "moe_top_k": 2, "moe_intermediate_size": 16, "share_expert_dim": 16,
                   "moe_layers_enum": "1,2"},
    "phimoe": {"model_type": "phimoe", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": 32, "num_hidden_layers": 2, "vocab_size": 100, "num_local_experts": 4,
               "num_experts_per_tok": 2, "attention_bias": True, "lm_head_bias": True, "sliding_window": 16},
    "minicpm": {"model_type": "minicpm", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "scale_emb": 12,
                "scale_depth": 1.4, "dim_model_base": 16},
    "minicpm3": {"model_type": "minicpm3", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                 "num_hidden_layers": 2, "vocab_size": 100, "q_lora_rank": 32, "kv_lora_rank": 16,
                 "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "scale_emb": 12, "scale_depth": 1.4,
                 "dim_model_base": 16},
    "internlm2": {"model_type": "internlm2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "bias": False},
    "internlm3": {"model_type": "internlm3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                  "qkv_bias": True},
    "aria_text": {"model_type": "aria_text", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 16,
                  "num_hidden_layers": 2, "vocab_size": 100, "moe_num_experts": 4, "moe_topk": 2,
                  "moe_num_shared_experts": 1},
    "arctic": {"model_type": "arctic", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": 32, "num_hidden_layers": 2, "vocab_size": 100, "num_local_experts": 4,
               "num_experts_per_tok": 2, "moe_layer_frequency": 2, "use_residual": True},
    "helium": {"model_type": "helium", "hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
               "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "attention_bias": True},
    "ministral": {"model_type": "ministral", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "sliding_window": 16,
                  "layer_types": ["sliding_attention", "full_attention"]},
    "vaultgemma": {"model_type": "vaultgemma", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                   "sliding_window": 16},
    "flex_olmo": {"model_type": "flex_olmo", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 16, "num_hidden_layers": 2, "vocab_size": 100, "num_experts": 4,
                  "num_experts_per_tok": 2},
    "gpt_neo": {"model_type": "gpt_neo", "hidden_size": 64, "num_heads": 4, "num_layers": 2, "vocab_size": 100,
                "max_position_embeddings": 64, "attention_types": [[["global", "local"], 1]], "window_size": 16},
    "codegen": {"model_type": "codegen", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100,
                "n_positions": 64, "rotary_dim": 8},
    "molmo": {"model_type": "molmo", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 256, "num_hidden_layers": 2, "vocab_size": 100, "embedding_size": 100,
              "qkv_bias": True, "attention_layer_norm": True, "norm_after": True},
    "zamba2": {"model_type": "zamba2", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
               "num_hidden_layers": 4, "vocab_size": 100, "n_mamba_heads": 8, "mamba_d_state": 16, "adapter_rank": 8,
               "layers_block_type": ["mamba", "hybrid", "mamba", "hybrid"], "num_mem_blocks": 2, "use_mem_rope": True,
               "use_shared_attention_adapter": True},
    "internlm": {"model_type": "internlm", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                 "num_hidden_layers": 2, "vocab_size": 100, "bias": True, "rotary": {"base": 10000, "type": "dynamic"}},
    "qwen": {"model_type": "qwen", "hidden_size": 64, "num_attention_heads": 4, "kv_channels": 16,
             "intermediate_size": 256, "num_hidden_layers": 2, "vocab_size": 100, "seq_length": 64, "no_bias": True},
    "persimmon": {"model_type": "persimmon", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256,
                  "num_hidden_layers": 2, "vocab_size": 100, "qk_layernorm": True},
    "deepseek": {"model_type": "deepseek", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
                 "intermediate_size": 128, "moe_intermediate_size": 16, "num_hidden_layers": 3, "vocab_size": 100,
                 "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1},
    "dbrx": {"model_type": "dbrx", "d_model": 64, "n_heads": 4, "n_layers": 2, "vocab_size": 100,
             "attn_config": {"kv_n_heads": 2, "clip_qkv": 8}, "ffn_config": {"ffn_hidden_size": 32,
                                                                             "moe_num_experts": 4, "moe_top_k": 2}},
    "starcoder2": {"model_type": "starcoder2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "sliding_window": 16},
    "qwen3_omni_moe_text": {"model_type": "qwen3_omni_moe_text", "hidden_size": 64, "num_attention_heads": 4,
                            "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128,
                            "num_hidden_layers": 2, "vocab_size": 100, "num_experts": 8, "num_experts_per_tok": 2,
                            "moe_intermediate_size": 16},
    "mamba": {"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100,
              "state_size": 8},
    "falcon_mamba": {"model_type": "falcon_mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100,
                     "intermediate_size": 128, "time_step_rank": 8, "state_size": 8, "tie_word_embeddings": False},
    "jamba": {"model_type": "jamba", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "attn_layer_period": 4,
              "attn_layer_offset": 2, "num_experts": 4, "num_experts_per_tok": 2, "mamba_d_state": 8},
    "arcee": {"model_type": "arcee", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "hidden_act": "relu2"},
    "nemotron": {"model_type": "nemotron", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "head_dim": 32, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                 "partial_rotary_factor": 0.5},
    "bamba": {"model_type": "bamba", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100, "attn_layer_indices": [1],
              "mamba_n_heads": 8, "mamba_d_head": 16, "mamba_d_state": 16, "mamba_chunk_size": 4},
    "gpt_neox": {"model_type": "gpt_neox", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                 "num_hidden_layers": 2, "vocab_size": 100, "rotary_pct": 0.25, "use_parallel_residual": True},
    "gptj": {"model_type": "gptj", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 32, "rotary_dim": 8,
             "vocab_size": 100},
    "phi": {"model_type": "phi", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
            "num_hidden_layers": 2, "vocab_size": 100, "partial_rotary_factor": 0.5, "qk_layernorm": True},
    "falcon": {"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_kv_heads": 2,
               "num_hidden_layers": 2, "vocab_size": 100, "new_decoder_architecture": True, "bias": True},
    "opt": {"model_type": "opt", "hidden_size": 64, "num_attention_heads": 4, "ffn_dim": 128, "num_hidden_layers": 2,
            "vocab_size": 100, "max_position_embeddings": 32, "do_layer_norm_before": False,
            "word_embed_proj_dim": 32},
    "gpt_bigcode": {"model_type": "gpt_bigcode", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 32,
                    "vocab_size": 100, "multi_query": True},
    "olmo": {"model_type": "olmo", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
             "num_hidden_layers": 2, "vocab_size": 100, "clip_qkv": 8.0},
    "stablelm": {"model_type": "stablelm", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "use_qkv_bias": True,
                 "qk_layernorm": True, "use_parallel_residual": True},
    "stablelm_epoch": {"model_type": "stablelm_epoch", "hidden_size": 64, "num_attention_heads": 4,
                       "num_key_value_heads": 4, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                       "rope_pct": 0.25, "norm_eps": 1e-05},
    "exaone": {"model_type": "exaone", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "head_dim": 8, "intermediate_size": 128, "num_layers": 2, "vocab_size": 100,
               "activation_function": "silu", "tie_word_embeddings": False},
    "bloom": {"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100},
    "mpt": {"model_type": "mpt", "d_model": 64, "n_heads": 4, "n_layers": 2, "vocab_size": 100, "max_seq_len": 64,
            "expansion_ratio": 2, "no_bias": False, "attn_config": {"alibi": True, "clip_qkv": 6.0},
            "ffn_config": {"ffn_type": "mptmlp"}},
    "glm": {"model_type": "glm", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100},
    "chatglm": {"model_type": "chatglm", "hidden_size": 64, "num_attention_heads": 4, "num_layers": 2,
                "kv_channels": 16, "multi_query_attention": True, "multi_query_group_num": 2, "ffn_hidden_size": 128,
                "padded_vocab_size": 100, "add_qkv_bias": True, "rmsnorm": True, "post_layer_norm": True,
                "seq_length": 64, "original_rope": True},
    "gemma3n_text": {"model_type": "gemma3n_text", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "head_dim": 16, "intermediate_size": [128, 96, 128, 96], "num_hidden_layers": 4,
                     "vocab_size": 100, "vocab_size_per_layer_input": 90, "hidden_size_per_layer_input": 8,
                     "laurel_rank": 4, "altup_num_inputs": 4, "num_kv_shared_layers": 2, "sliding_window": 8,
                     "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                     "activation_sparsity_pattern": [0.95, 0.0, 0.0, 0.0], "final_logit_softcapping": 30.0},
    "baichuan": {"model_type": "baichuan", "architectures": ["BaichuanForCausalLM"], "hidden_size": 64,
                 "num_attention_heads": 4, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100},
    "qwen2_5_omni_text": {"model_type": "qwen2_5_omni_text", "hidden_size": 64, "num_attention_heads": 4,
                          "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                          "rope_scaling": {"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"}},
    "RefinedWeb": {"model_type": "RefinedWeb", "hidden_size": 64, "n_head": 4, "n_head_kv": 2, "n_layer": 2,
                   "vocab_size": 100, "parallel_attn": True},
    "RefinedWebModel": {"model_type": "RefinedWebModel", "hidden_size": 64, "n_head": 4, "n_layer": 2,
                        "vocab_size": 100, "multi_query": True, "parallel_attn": True},
    "cohere": {"model_type": "cohere", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "use_qk_norm": True,
               "logit_scale": 0.0625},
    "cohere2": {"model_type": "cohere2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "sliding_window": 8,
                "sliding_window_pattern": 2, "logit_scale": 0.25},
    "ernie4_5_moe": {"model_type": "ernie4_5_moe", "hidden_size": 64, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100,
                     "moe_num_experts": 8, "moe_k": 2, "moe_intermediate_size": 16, "moe_layer_start_index": 1,
                     "moe_layer_end_index": -1, "moe_num_shared_experts": 1},
    "hunyuan_v1_moe": {"model_type": "hunyuan_v1_moe", "hidden_size": 64, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                       "vocab_size": 100, "num_experts": 8, "moe_topk": [2, 1], "moe_intermediate_size": 16,
                       "num_shared_expert": 1},
    "olmo3": {"model_type": "olmo3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100, "sliding_window": 8},
    "seed_oss": {"model_type": "seed_oss", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2,
                 "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                 "attention_bias": True, "attention_out_bias": False},
    "glm4_moe_lite": {"model_type": "glm4_moe_lite", "hidden_size": 64, "num_attention_heads": 4,
                      "num_key_value_heads": 4, "intermediate_size": 128, "num_hidden_layers": 3, "vocab_size": 100,
                      "q_lora_rank": 24, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
                      "v_head_dim": 16, "moe_intermediate_size": 16, "n_routed_experts": 8, "n_shared_experts": 1,
                      "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "norm_topk_prob": True,
                      "routed_scaling_factor": 1.8, "num_nextn_predict_layers": 1},
    "qwen3_vl_text": {"model_type": "qwen3_vl_text", "hidden_size": 64, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2,
                      "vocab_size": 100},
    "qwen3_vl_moe_text": {"model_type": "qwen3_vl_moe_text", "hidden_size": 64, "num_attention_heads": 4,
                          "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2,
                          "vocab_size": 100, "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                          "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": []},
    "glm_moe_dsa": {"model_type": "glm_moe_dsa", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
                    "num_key_value_heads": 4, "head_dim": 8, "intermediate_size": 128, "moe_intermediate_size": 16,
                    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
                    "q_lora_rank": 24, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
                    "qk_head_dim": 24, "v_head_dim": 16, "vocab_size": 100, "index_n_heads": 4, "index_head_dim": 16,
                    "index_topk": 8, "rope_interleave": True, "indexer_rope_interleave": True},
    "deepseek_v4": {"model_type": "deepseek_v4", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 4,
                    "num_key_value_heads": 1, "head_dim": 32, "qk_rope_head_dim": 8, "q_lora_rank": 16,
                    "o_groups": 2, "o_lora_rank": 16, "sliding_window": 8, "compress_ratios": [0, 4, 128, 4],
                    "index_n_heads": 2, "index_head_dim": 16, "index_topk": 4, "n_routed_experts": 8,
                    "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 16,
                    "num_hash_layers": 1, "hc_mult": 2, "vocab_size": 100},
    "deepseek_v41_text": {"model_type": "deepseek_v41_text", "hidden_size": 64, "num_attention_heads": 4,
                          "num_hidden_layers": 6, "num_key_value_heads": 1, "head_dim": 32, "qk_rope_head_dim": 8,
                          "q_lora_rank": 16, "o_groups": 2, "o_lora_rank": 16, "sliding_window": 8,
                          "compress_ratios": [0, 2, 2, 1, 1, 1], "kv_source_layer_ids": [1, 3],
                          "index_source_layer_ids": [1, 3, 5], "candidate_source_layer_id": 3,
                          "candidate_topk_blocks": 2, "candidate_block_size": 4, "index_n_heads": 2,
                          "index_head_dim": 16, "index_topk": 4, "engram_layer_ids": [0],
                          "engram_num_embeddings": [1000], "engram_n_heads": 2, "engram_head_dim": 8,
                          "engram_max_ngram_size": 3, "n_routed_experts": 8, "num_experts_per_tok": 2,
                          "n_shared_experts": 1, "moe_intermediate_size": 16, "hc_mult": 2, "vocab_size": 100},
    "kimi_linear": {"model_type": "kimi_linear", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
                    "linear_attn_config": {"kda_layers": [1, 2], "full_attn_layers": [3], "num_heads": 2,
                                           "head_dim": 16, "short_conv_kernel_size": 4},
                    "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
                    "mla_use_nope": True, "num_experts": 8, "num_experts_per_token": 2, "moe_intermediate_size": 16,
                    "num_shared_experts": 1, "first_k_dense_replace": 1, "intermediate_size": 128, "vocab_size": 100},
    "minimax_m3": {"model_type": "minimax_m3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 16, "rotary_dim": 8, "num_hidden_layers": 3, "vocab_size": 100, "intermediate_size": 16,
                   "dense_intermediate_size": 32, "num_local_experts": 4, "num_experts_per_tok": 2,
                   "n_shared_experts": 1, "hidden_act": "swigluoai", "use_qk_norm": True, "qk_norm_type": "per_head",
                   "moe_layer_freq": [0, 1, 1], "sparse_attention_config": {
                       "use_sparse_attention": True, "sparse_index_dim": 16, "sparse_num_index_heads": 2,
                       "sparse_topk_blocks": 2, "sparse_block_size": 8, "sparse_attention_freq": [0, 1, 1],
                       "sparse_disable_index_value": [0, 1, 1]}},
    "minimax_m2": {"model_type": "minimax_m2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 16, "rotary_dim": 8, "intermediate_size": 16, "num_hidden_layers": 2,
                   "vocab_size": 100, "num_local_experts": 8, "num_experts_per_tok": 2, "scoring_func": "sigmoid",
                   "use_routing_bias": True, "use_qk_norm": True, "qk_norm_type": "per_layer",
                   "attn_type_list": [1, 1], "shared_intermediate_size": 0, "use_mtp": True, "num_mtp_modules": 3,
                   "mtp_transformer_layers": 1},
    "minimax_text_01": {"model_type": "minimax_text_01", "hidden_size": 64, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "head_dim": 64, "rotary_dim": 32, "intermediate_size": 16,
                        "num_hidden_layers": 2, "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 2,
                        "attn_type_list": [0, 1], "postnorm": True, "layernorm_full_attention_alpha": 2.0,
                        "layernorm_full_attention_beta": 1.0, "layernorm_linear_attention_alpha": 2.0,
                        "layernorm_linear_attention_beta": 1.0, "layernorm_mlp_alpha": 2.0,
                        "layernorm_mlp_beta": 1.0, "shared_intermediate_size": 0, "shared_moe_mode": "sigmoid"},
    "minimax_m1": {"model_type": "minimax_m1", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 64, "intermediate_size": 16, "num_hidden_layers": 2, "vocab_size": 100,
                   "num_local_experts": 4, "num_experts_per_tok": 2, "attn_type_list": [0, 1]},
    "minimax": {"model_type": "minimax", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 64, "rotary_dim": 32, "intermediate_size": 16, "num_hidden_layers": 2, "vocab_size": 100,
                "num_local_experts": 4, "num_experts_per_tok": 2, "layer_types": ["linear_attention", "full_attention"],
                "full_attn_alpha_factor": 2.0, "full_attn_beta_factor": 1.0, "linear_attn_alpha_factor": 2.0,
                "linear_attn_beta_factor": 1.0, "mlp_alpha_factor": 2.0, "mlp_beta_factor": 1.0, "block_size": 256},
    "nemotron_h": {"model_type": "nemotron_h", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "attention_head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 4, "vocab_size": 100,
                   "hybrid_override_pattern": "M-M*", "mamba_num_heads": 8, "mamba_head_dim": 16,
                   "ssm_state_size": 8, "n_groups": 2, "conv_kernel": 4, "chunk_size": 8, "expand": 2,
                   "mlp_hidden_act": "relu2", "use_conv_bias": True, "use_bias": False},
    "mamba2": {"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100, "num_heads": 8,
               "head_dim": 16, "state_size": 8, "n_groups": 1, "conv_kernel": 4, "chunk_size": 8, "expand": 2},
    "falcon_h1": {"model_type": "falcon_h1", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "head_dim": 16, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                  "mamba_d_ssm": 128, "mamba_n_heads": 8, "mamba_d_head": 16, "mamba_n_groups": 1,
                  "mamba_d_state": 8, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_chunk_size": 8,
                  "mamba_conv_bias": True, "mamba_proj_bias": False, "projectors_bias": False,
                  "mamba_rms_norm": False, "mamba_norm_before_gate": False, "attention_bias": False,
                  "mlp_bias": False, "rope_theta": 100000000000.0, "embedding_multiplier": 5.5,
                  "lm_head_multiplier": 0.04, "key_multiplier": 0.39, "attention_in_multiplier": 1.0,
                  "attention_out_multiplier": 0.94, "ssm_in_multiplier": 1.25, "ssm_out_multiplier": 0.24,
                  "ssm_multipliers": [0.35, 0.25, 0.35, 0.5, 0.35], "mlp_multipliers": [0.88, 0.59],
                  "time_step_min": 0.001, "time_step_max": 0.1, "time_step_limit": [0.0, 1e9],
                  "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
}


def write(tmp_path, data, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_every_supported_model_type_has_a_tiny_config():
    assert set(TINY) == set(hf_config.FAMILIES)


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_every_model_type_reports_both_phases(model_type, tmp_path):
    cfg = models.get(str(write(tmp_path, TINY[model_type])))
    for phase in (Phase.prefill(2, 12), Phase.decode(2, 20)):
        model = cfg.build(phase)
        for plan in ("unfused", "flash", "fused"):
            res = analyze(model, strategy(plan), hardware.load("h100-sxm"))
            assert res.totals.flops > 0 and res.params == model.params()


def test_loaded_config_matches_hand_dimensions(tmp_path):
    # Qwen2 with use_sliding_window: layers from max_window_layers (1) on use the window; the rest full.
    cfg = models.get(str(write(tmp_path, TINY["qwen2"])))
    blocks = [(b.name, b.count) for b in cfg.build(Phase.decode(1, 40)).blocks]
    assert blocks == [("full_layer", 1), ("sliding_layer", 3), ("embed_head", 1)]
    # DeepSeek-V3: first_k_dense_replace 2 of 3 layers dense; q_lora path; MTP noted, not counted.
    v3 = models.get(str(write(tmp_path, TINY["deepseek_v3"])))
    model = v3.build(Phase.decode(1, 8))
    assert [(b.name, b.count) for b in model.blocks] == [("dense_layer", 2), ("moe_layer", 1), ("embed_head", 1)]
    assert any("multi-token-prediction" in n for n in model.notes)
    # GPT-2: n_inner null means 4 * n_embd; tied embeddings; learned positions.
    g = models.get(str(write(tmp_path, TINY["gpt2"])))
    assert (g.d_ffn, g.tie_embeddings, g.max_positions, g.norm) == (256, True, 32, "layernorm")


def test_old_and_new_spellings_load_the_same_model(tmp_path):
    old = {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 32, "vocab_size": 100}
    new = {"model_type": "gpt2", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
           "max_position_embeddings": 32, "vocab_size": 100, "dtype": "float32"}
    a = hf_config.load(write(tmp_path, old, "old.json"))
    b = hf_config.load(write(tmp_path, new, "new.json"))
    phase = Phase.decode(1, 4)
    assert a.build(phase).params() == b.build(phase).params()
    assert (a.dtype, b.dtype) == (BF16, FP32)  # no dtype given: bf16; `dtype` is the newer torch_dtype
    llama_new = {**TINY["llama"], "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default",
                                                      "partial_rotary_factor": 0.5}, "dtype": "float16"}
    del llama_new["rope_theta"], llama_new["torch_dtype"]
    c = hf_config.load(write(tmp_path, llama_new, "llama.json"))
    assert (c.dtype, c.rotary_dim) == (FP16, 8)  # head_dim 16, half of it rotated
    rope_q = c.layer(Phase.decode(1, 4)).ops["rope_q"]
    assert rope_q.flops == 3 * 4 * 8  # 4 heads x 8 rotated dims x 3 FLOPs


def test_directory_with_config_json_and_names(tmp_path):
    ckpt = tmp_path / "my-model"
    ckpt.mkdir()
    write(ckpt, TINY["llama"])
    cfg = models.get(str(ckpt))
    assert cfg.name == "my-model" and str(ckpt / "config.json") in cfg.source


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": None}, "field 'hidden_size' is missing"),
    ({"hidden_size": "4096"}, "field 'hidden_size' must be an integer from 1 to 1,000,000,000, got '4096'"),
    ({"num_hidden_layers": 0}, "field 'num_hidden_layers' must be an integer from 1 to 1,000,000,000, got 0"),
    ({"num_hidden_layers": 10**30}, "field 'num_hidden_layers' must be an integer from 1 to 1,000,000,000, got a "
                                    "number of 31 digits (no model is that large)"),
    ({"num_key_value_heads": 3}, "n_kv_heads (3) must divide n_heads (4)"),
    ({"torch_dtype": "float8"}, "field 'torch_dtype' is 'float8'; supported: bfloat16, float16, float32"),
    ({"hidden_act": "relu"}, "field 'hidden_act' is 'relu'; supported: silu"),
    ({"tie_word_embeddings": "yes"}, "field 'tie_word_embeddings' must be true or false, got 'yes'"),
    ({"rope_theta": "big"}, "field 'rope_theta' must be a positive number"),
    ({"quantization_config": {"quant_method": "hqq", "bits": 4}}, "'hqq' is not supported; valid: fp8, mxfp4"),
    ({"model_type": "t5"}, "field 'model_type' is 't5', which is not supported; supported: llama, mistral, "
                               "mixtral, qwen2, qwen3"),
    ({"model_type": "t5"}, "or write the model in Python and pass FILE.py:NAME"),
    ({"model_type": None}, "field 'model_type' is missing"),
])
def test_bad_fields_name_the_field_and_the_file(tmp_path, change, message):
    data = {k: v for k, v in {**TINY["llama"], **change}.items() if v is not None}
    path = write(tmp_path, data)
    with pytest.raises(OpgraphError) as e:
        models.get(str(path))
    assert message in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_gpt2_missing_field_names_both_spellings(tmp_path):
    data = {k: v for k, v in TINY["gpt2"].items() if k != "n_embd"}
    with pytest.raises(OpgraphError, match="field 'n_embd' is missing \\(or 'hidden_size'\\)"):
        models.get(str(write(tmp_path, data)))


def test_deepseek_missing_mla_field(tmp_path):
    data = {k: v for k, v in TINY["deepseek_v2"].items() if k != "kv_lora_rank"}
    with pytest.raises(OpgraphError, match="field 'kv_lora_rank' is missing"):
        models.get(str(write(tmp_path, data)))


@pytest.mark.parametrize("text, message", [
    ('{"model_type": "llama", ', "not valid JSON"),
    ("[1, 2]", "must be a table/object at the top level"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"hidden_size": ' + "9" * 5000 + "}", "not a valid model config"),
])
def test_unreadable_files_name_the_file(tmp_path, text, message):
    path = write(tmp_path, text, "broken.json")
    with pytest.raises(OpgraphError, match=message) as e:
        models.get(str(path))
    assert str(path) in str(e.value)


def test_missing_file():
    with pytest.raises(OpgraphError, match="model config file 'nowhere/config.json' does not exist"):
        models.get("nowhere/config.json")




def test_cli_reports_a_config_json_offline(tmp_path):
    path = write(tmp_path, TINY["deepseek_v3"])
    r = opgraph("report", str(path), "--format", "json", "--batch", "2", "--seq-len", "16", "--context", "64")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    expected = models.get(str(path)).build(Phase.decode(1, 1)).params()
    for phase in ("prefill", "decode"):
        assert j["phases"][phase]["model"]["params"] == expected
        assert [b["name"] for b in j["phases"][phase]["blocks"]] == ["dense_layer", "moe_layer", "embed_head"]


@pytest.mark.parametrize("data, message", [
    ({"model_type": "t5"}, "field 'model_type' is 't5', which is not supported; supported: llama"),
    ({"model_type": "llama"}, "field 'hidden_size' is missing"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, data, message):
    path = write(tmp_path, data)
    r = opgraph("report", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr and str(path) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_byte_order_mark_is_not_part_of_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(TINY["llama"]).encode())
    assert models.get(str(path)).d_model == TINY["llama"]["hidden_size"]


def test_a_folder_without_config_json_names_it(tmp_path):
    with pytest.raises(OpgraphError, match="does not exist"):
        models.get(str(tmp_path / "model.json"))


def test_qwen3_next_places_moe_and_full_attention_each_by_its_own_rule(tmp_path):
    # Layer i is full attention when (i + 1) % full_attention_interval == 0 and MoE when (i + 1) %
    # decoder_sparse_step == 0 (Qwen3NextDecoderLayer): two patterns of periods 4 and 3, laid over each other.
    data = {**TINY["qwen3_next"], "num_hidden_layers": 12, "decoder_sparse_step": 3}
    cfg = models.get(str(write(tmp_path, data)))
    for i in range(12):
        words = cfg.layers.at(i).words()
        assert words["mixer"] == ("attention" if (i + 1) % 4 == 0 else "deltanet"), i
        assert words["ffn"] == ("moe" if (i + 1) % 3 == 0 else "dense"), i


def test_mamba_ssm_dtype_sets_the_recurrent_state_not_the_conv_window(tmp_path):
    # Qwen3.5's mamba_ssm_dtype float32 becomes vLLM's mamba_ssm_cache_dtype, the temporal state's dtype; the conv
    # state stays at mamba_cache_dtype, the model's bf16 (MambaStateDtypeCalculator._mamba_state_dtype).
    graph = models.get(str(write(tmp_path, TINY["qwen3_5_text"]))).build(Phase.decode(1, 8)).blocks[0].graph
    dtypes = {n.rsplit(".", 1)[-1]: t.dtype for n, t in graph.tensors.items() if n.endswith("_state_new")}
    assert dtypes == {"conv_state_new": BF16, "recurrent_state_new": FP32}
