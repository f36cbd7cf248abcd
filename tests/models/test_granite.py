"""IBM's Granite 3.x (transformers' granite, granitemoe, granitemoeshared; vLLM's granite.py, granitemoe.py,
granitemoeshared.py), checked by hand against their published sizes and the structure the reference code builds:
Llama's layer with the muP multipliers run as vLLM runs them (the embeddings times embedding_multiplier, each
branch's output times residual_multiplier before its residual add, the logits divided by logits_scaling; the
attention_multiplier is the softmax's scale), and the MoE models' experts, top-k of 40 with no shared expert, or
beside one (granitemoeshared). Each CONFIG holds the fields of a published config.json (the copies named by
each)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models

# ibm-granite/granite-3.3-8b-instruct's config.json (Apache-2.0), as a copy of it prints it
GRANITE_33_8B = {"architectures": ["GraniteForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                 "attention_multiplier": 0.0078125, "bos_token_id": 0, "embedding_multiplier": 12.0,
                 "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
                 "intermediate_size": 12800, "logits_scaling": 16.0, "max_position_embeddings": 131072,
                 "mlp_bias": False, "model_type": "granite", "num_attention_heads": 32, "num_hidden_layers": 40,
                 "num_key_value_heads": 8, "pad_token_id": 0, "residual_multiplier": 0.22, "rms_norm_eps": 1e-05,
                 "rope_scaling": None, "rope_theta": 10000000.0, "tie_word_embeddings": True,
                 "torch_dtype": "bfloat16", "transformers_version": "4.49.0", "use_cache": True,
                 "vocab_size": 49159}
# ibm-granite/granite-3.1-3b-a800m-instruct's shapes (input_linear [40, 1024, 1536]: 40 experts of 512, gate and
# up fused), with Granite-3.x's multipliers
GRANITE_31_3B_A800M = {"architectures": ["GraniteMoeForCausalLM"], "hidden_act": "silu", "hidden_size": 1536,
                       "intermediate_size": 512, "max_position_embeddings": 131072, "model_type": "granitemoe",
                       "num_attention_heads": 24, "num_experts_per_tok": 8, "num_hidden_layers": 32,
                       "num_key_value_heads": 8, "num_local_experts": 40, "rope_theta": 10000000.0,
                       "tie_word_embeddings": True, "vocab_size": 49155, "embedding_multiplier": 12.0,
                       "residual_multiplier": 0.22, "attention_multiplier": 0.015625, "logits_scaling": 6.0}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def only_layer(cfg, phase=Phase.decode(1, 9)):
    (block, *_) = cfg.build(phase).blocks
    return block.count, block.graph


def attention_params(d, heads, kv, hd):
    return 2 * d * heads * hd + 2 * d * kv * hd


def test_granite_33_8b_by_hand_runs_its_multipliers(tmp_path):
    d, layers, v = 4096, 40, 49159
    total = v * d + d + layers * (attention_params(d, 32, 8, 128) + 3 * d * 12800 + 2 * d)  # tied: one table
    assert round(total / 1e9) == 8  # "granite-3.3-8b"
    cfg = load(tmp_path, GRANITE_33_8B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    count, g = only_layer(cfg, Phase.decode(4, 99))
    assert count == 40
    # each branch's output times residual_multiplier: one multiply an element, before each residual add
    assert g.ops["attn_branch_scale"].flops == g.ops["mlp_branch_scale"].flops == 4 * d
    order = list(g.ops)
    assert order.index("attn_branch_scale") < order.index("attn_residual")
    head = cfg.build(Phase.decode(4, 99)).blocks[-1].graph
    assert head.ops["logit_scale"].flops == 4 * v  # the logits divided by logits_scaling, one op a logit
    assert [op.fn for op in head.ops.values()].count("scale") >= 2  # and the embeddings times embedding_multiplier


def test_a_logits_scaling_of_one_is_not_run(tmp_path):
    head = load(tmp_path, GRANITE_33_8B, logits_scaling=1.0).build(Phase.decode(1, 9)).blocks[-1].graph
    assert "logit_scale" not in head.ops


def test_granitemoe_3b_a800m_by_hand(tmp_path):
    d, e, width, layers, v = 1536, 40, 512, 32, 49155
    layer = attention_params(d, 24, 8, 64) + e * d + e * 3 * d * width + 2 * d  # router, experts, two norms
    total = v * d + d + layers * layer
    active = total - v * d - layers * (e - 8) * 3 * d * width  # without the embedding, 8 of the 40 experts
    assert (round(total / 1e9, 1), round(active / 1e6, -2)) == (3.3, 800)  # "3b-a800m"
    cfg = load(tmp_path, GRANITE_31_3B_A800M)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    assert (cfg.moe.experts, cfg.moe.top_k, cfg.moe.shared_d) == (40, 8, None)


def test_granitemoeshared_adds_its_shared_expert(tmp_path):
    base = load(tmp_path, GRANITE_31_3B_A800M).build(Phase.decode(1, 1)).params()
    shared = load(tmp_path, GRANITE_31_3B_A800M, model_type="granitemoeshared", shared_intermediate_size=1024)
    assert shared.build(Phase.decode(1, 1)).params() - base == 32 * 3 * 1536 * 1024
    none = load(tmp_path, GRANITE_31_3B_A800M, model_type="granitemoeshared", shared_intermediate_size=0)
    assert none.build(Phase.decode(1, 1)).params() == base


@pytest.mark.parametrize("config, change, field", [
    (GRANITE_33_8B, {"hidden_act": "gelu"}, "hidden_act"),
    (GRANITE_33_8B, {"num_local_experts": 8}, "num_local_experts"),  # a dense granite builds no experts
    (GRANITE_31_3B_A800M, {"shared_intermediate_size": 1024}, "shared_intermediate_size"),  # granitemoe: none
    (GRANITE_31_3B_A800M, {"mlp_bias": True}, "mlp_bias"),  # GraniteMoeConfig has no MLP biases
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
