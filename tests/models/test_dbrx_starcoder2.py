"""Databricks' DBRX (dbrx) and BigCode's StarCoder2 (starcoder2), checked by hand against their published sizes and
the structure the reference code builds (transformers' modeling_dbrx.py and modeling_starcoder2.py; vLLM's dbrx.py
and starcoder2.py). DBRX holds databricks/dbrx-instruct's config.json as a copy gives it (its nested attn_config and
ffn_config); STARCODER2_15B bigcode/starcoder2-15b's as a downloaded copy quotes it (neither licence is one a
preset can ship under: the Databricks Open Model License, BigCode OpenRAIL-M)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models

DBRX = {"architectures": ["DbrxForCausalLM"],
        "attn_config": {"clip_qkv": 8, "kv_n_heads": 8, "model_type": "", "rope_theta": 500000},
        "d_model": 6144, "emb_pdrop": 0.0,
        "ffn_config": {"ffn_hidden_size": 10752, "model_type": "", "moe_jitter_eps": 0, "moe_loss_weight": 0.05,
                       "moe_num_experts": 16, "moe_top_k": 4},
        "initializer_range": 0.02, "max_seq_len": 32768, "model_type": "dbrx", "n_heads": 48, "n_layers": 40,
        "output_router_logits": False, "resid_pdrop": 0.0, "router_aux_loss_coef": 0.05,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.38.2", "use_cache": True,
        "vocab_size": 100352}
STARCODER2_15B = {"architectures": ["Starcoder2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 0,
                  "eos_token_id": 0, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 6144,
                  "initializer_range": 0.01275, "intermediate_size": 24576, "max_position_embeddings": 16384,
                  "mlp_type": "default", "model_type": "starcoder2", "norm_epsilon": 1e-05, "norm_type": "layer_norm",
                  "num_attention_heads": 48, "num_hidden_layers": 40, "num_key_value_heads": 4, "rms_norm_eps": 1e-05,
                  "rope_theta": 100000, "sliding_window": 4096, "tie_word_embeddings": False,
                  "torch_dtype": "float32", "use_bias": True, "use_cache": True, "vocab_size": 49152}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def test_dbrx_by_hand_is_the_published_132b_36b_active(tmp_path):
    d, f, e, k, v = 6144, 10752, 16, 4, 100352
    attention = d * (d + 2 * 8 * 128) + d * d  # the fused Wqkv, out_proj
    layer = attention + e * d + e * 3 * d * f + 2 * d  # router, experts (w1, v1, w2), norm_1 and norm_2 (no shifts)
    total = 2 * v * d + d + 40 * layer  # untied
    active = total - 40 * (e - k) * 3 * d * f
    assert (round(total / 1e9), round(active / 1e9)) == (132, 36)  # Databricks: 132B total, 36B active
    cfg = load(tmp_path, DBRX)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    assert (cfg.moe.experts, cfg.moe.top_k, cfg.moe.renormalize, cfg.context_window) == (16, 4, True, 32768)
    assert any("clip_qkv 8" in n for n in cfg.notes)
    g = cfg.build(Phase.decode(2, 99)).blocks[0].graph
    assert [op.fn for name, op in g.ops.items() if op.kind == "norm"] == ["layernorm", "layernorm"]


def test_starcoder2_15b_by_hand(tmp_path):
    d, f, v = 6144, 24576, 49152
    attention = 2 * d * d + 2 * d * 4 * 128 + (48 + 2 * 4) * 128 + d  # q, o; k, v; their biases
    layer = attention + 2 * d * f + f + d + 4 * d  # c_fc and c_proj with biases; two LayerNorms with shifts
    total = 2 * v * d + 2 * d + 40 * layer  # untied; the final LayerNorm's weight and bias
    assert round(total / 1e9) == 16  # "starcoder2-15b": 15.96B
    cfg = load(tmp_path, STARCODER2_15B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    g = cfg.build(Phase.decode(1, 9999)).blocks[0].graph
    assert g.ops["act"].fn == "gelu" and "gate_proj" not in g.ops
    assert g.ops["qk"].flops == 2 * 48 * 128 * 4096  # a window of 4,096 of the 10,000 keys


@pytest.mark.parametrize("config, change, field", [
    (DBRX, {"tie_word_embeddings": True}, "tie_word_embeddings"),
    (DBRX, {"ffn_config": {**DBRX["ffn_config"], "ffn_act_fn": {"name": "gelu"}}}, "ffn_config.ffn_act_fn"),
    (STARCODER2_15B, {"norm_type": "rms_norm"}, "norm_type"),
    (STARCODER2_15B, {"hidden_act": "silu"}, "hidden_act"),
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
