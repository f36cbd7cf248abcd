"""Snowflake's Arctic (arctic) as vLLM 0.11's arctic.py runs it: in every layer (moe_layer_frequency 1) GQA attention,
a dense SwiGLU as wide as the hidden size (the residual MLP) and 128 SwiGLU experts of 4,864, top-2 renormalized,
their partial sums all-reduced once. The config is Snowflake/snowflake-arctic-instruct's config.json (its main
branch, as Hugging Face shows it); the counts are by hand from the shapes, checked against the model card's "10B dense
transformer" and "128 x 3.66B" experts, "17B active"."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase

ARCTIC = {"architectures": ["ArcticForCausalLM"],
          "auto_map": {"AutoConfig": "configuration_arctic.ArcticConfig", "AutoModel": "modeling_arctic.ArcticModel",
                       "AutoModelForCausalLM": "modeling_arctic.ArcticForCausalLM",
                       "AutoModelForSequenceClassification": "modeling_arctic.ArcticForSequenceClassification"},
          "attention_dropout": 0, "bos_token_id": 31998, "enable_expert_tensor_parallelism": False,
          "eos_token_id": 31999, "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02,
          "intermediate_size": 4864, "max_position_embeddings": 4096, "max_sequence_length": 4096,
          "model_type": "arctic", "moe_eval_capacity_factor": 1, "moe_layer_frequency": 1, "moe_min_capacity": 0,
          "moe_token_dropping": True, "moe_train_capacity_factor": 1, "num_attention_heads": 56,
          "num_experts_per_tok": 2, "num_hidden_layers": 35, "num_key_value_heads": 8, "num_local_experts": 128,
          "parallel_attn_mlp_res": True, "quantization": None, "rms_norm_eps": 1e-05, "rope_theta": 10000,
          "router_aux_loss_coef": 0.001, "sliding_window": None, "tie_word_embeddings": False,
          "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": True, "use_residual": True,
          "vocab_size": 32000}
D, E = 7168, 3 * 7168 * 4864  # one expert
ATTENTION = 2 * D * 56 * 128 + 2 * D * 8 * 128
DENSE = 35 * (ATTENTION + 3 * D * D + 3 * D + D * 128) + D + 2 * 32000 * D  # attention, residual MLP, 3 norms, router


def test_arctic_count(tmp_path):
    assert params(tmp_path, ARCTIC) == DENSE + 35 * 128 * E == 478_584_608_768
    assert round(DENSE / 1e9) == 10 and round(35 * E / 1e9, 2) == 3.66  # "10B dense" and "128 x 3.66B"
    assert round((DENSE + 35 * 2 * E) / 1e9) == 17  # "17B active" (top-2)


def test_arctic_layer_all_reduces_twice(tmp_path):
    g = layer_graph(load(tmp_path, ARCTIC), Phase.decode(4, 100), tp=8)
    assert [n for n in g.ops if n.endswith("allreduce")] == ["o_allreduce", "branches_allreduce"]
    assert g.ops["gate_proj"].flops == 2 * 4 * D * D // 8  # the residual MLP, hidden-wide, split 8 ways


def test_arctic_dense_layers_where_the_frequency_says(tmp_path):
    # moe_layer_frequency 2: layers 0, 2, ... a SwiGLU of intermediate_size, 1, 3, ... the hybrid
    two = params(tmp_path, ARCTIC, moe_layer_frequency=2, num_hidden_layers=2)
    one_dense = ATTENTION + 3 * D * 4864 + 2 * D
    one_hybrid = ATTENTION + 3 * D * D + 128 * E + D * 128 + 3 * D
    assert two == one_dense + one_hybrid + D + 2 * 32000 * D


def test_arctic_refuses_deepspeed_quantization(tmp_path):
    with pytest.raises(OpgraphError, match="quantization"):
        load(tmp_path, ARCTIC, quantization={"q_bits": 8})
