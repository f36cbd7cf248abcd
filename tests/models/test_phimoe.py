"""Microsoft's Phi-3.5-MoE (transformers' phimoe, vLLM's phimoe.py), checked by hand against its published 41.9B total
and 6.6B active: LayerNorms with shifts, biased attention, 16 SwiGLU experts top-2 in every layer, and a biased
lm_head. PHI35_MOE holds microsoft/Phi-3.5-MoE-instruct's config.json's fields as copies that keep them give them
(its rope_scaling's 64-value factor lists left out: they change no cost)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models

PHI35_MOE = {"architectures": ["PhiMoEForCausalLM"], "attention_bias": True, "attention_dropout": 0.0, "auto_map": {"AutoConfig": "configuration_phimoe.PhiMoEConfig", "AutoModelForCausalLM": "modeling_phimoe.PhiMoEForCausalLM"}, "bos_token_id": 1, "eos_token_id": 32000, "hidden_act": "silu", "hidden_dropout": 0.0, "hidden_size": 4096, "initializer_range": 0.02, "input_jitter_noise": 0.01, "intermediate_size": 6400, "lm_head_bias": True, "max_position_embeddings": 131072, "model_type": "phimoe", "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 16, "original_max_position_embeddings": 4096, "output_router_logits": False, "rms_norm_eps": 1e-05, "rope_scaling": {"long_mscale": 1.243163121016122, "original_max_position_embeddings": 4096, "short_mscale": 1.243163121016122, "type": "longrope"}, "rope_theta": 10000.0, "router_aux_loss_coef": 0.0, "router_jitter_noise": 0.01, "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 32064}


def load(tmp_path, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**PHI35_MOE, **change}))
    return models.get(str(path))


def test_phi35_moe_by_hand_is_the_published_41_9b_6_6b_active(tmp_path):
    d, f, e, v = 4096, 6400, 16, 32064
    attention = 2 * d * d + 2 * d * 8 * 128 + (d + 2 * 8 * 128) + d  # weights, then q, k, v and o biases
    layer = attention + e * d + e * 3 * d * f + 4 * d  # router, experts, two LayerNorms with shifts
    total = 2 * v * d + v + 2 * d + 32 * layer  # untied; the lm_head bias; the final LayerNorm
    active = total - 32 * (e - 2) * 3 * d * f
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (41.9, 6.6)  # its model card: 41.9B, 6.6B active
    cfg = load(tmp_path)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    head = cfg.build(Phase.decode(4, 9)).blocks[-1].graph
    assert "lm_head.bias" in head.tensors and head.ops["lm_head"].flops == 4 * (2 * d * v + v)
    assert load(tmp_path, lm_head_bias=False).build(Phase.decode(1, 1)).params() == total - v


@pytest.mark.parametrize("change, field", [
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"num_experts_per_tok": 32}, "num_experts_per_tok"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=field):
        load(tmp_path, **change)
