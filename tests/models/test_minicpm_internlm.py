"""OpenBMB's MiniCPM (minicpm) and Shanghai AI Lab's InternLM2 / 2.5 and InternLM3 (internlm2, internlm3), checked
by hand against their published sizes and the structure the reference code builds (the models' own
modeling_minicpm.py, modeling_internlm2.py, modeling_internlm3.py; vLLM's minicpm.py and internlm2.py): MiniCPM's
muP scalings run whatever their values (the embeddings times scale_emb, each branch times scale_depth / sqrt(L),
lm_head's input divided by hidden / dim_model_base), InternLM's Llama layer. Each CONFIG holds the fields copies of
the published config.json give (MiniCPM4-8B's and MiniCPM-2B's shapes; internlm/internlm2_5-7b-chat's config as a
tutorial quotes it; internlm/internlm3-8b-instruct's as two ports reproduce it)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models

MINICPM4_8B = {"architectures": ["MiniCPMForCausalLM"], "model_type": "minicpm", "hidden_size": 4096,
               "intermediate_size": 16384, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 2, "vocab_size": 73448, "max_position_embeddings": 32768,
               "tie_word_embeddings": False, "pad_token_id": 2, "scale_emb": 12, "scale_depth": 1.4,
               "dim_model_base": 256}
MINICPM_2B = {"architectures": ["MiniCPMForCausalLM"], "model_type": "minicpm", "hidden_size": 2304,
              "intermediate_size": 5760, "num_hidden_layers": 40, "num_attention_heads": 36,
              "num_key_value_heads": 36, "vocab_size": 122753, "scale_emb": 12, "scale_depth": 1.4,
              "dim_model_base": 256}
INTERNLM25_7B = {"architectures": ["InternLM2ForCausalLM"], "attn_implementation": "eager", "bias": False,
                 "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
                 "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
                 "model_type": "internlm2", "num_attention_heads": 32, "num_hidden_layers": 32,
                 "num_key_value_heads": 8, "pad_token_id": 2, "rms_norm_eps": 1e-05,
                 "rope_scaling": {"type": "dynamic", "factor": 2.0}, "rope_theta": 1000000,
                 "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 92544,
                 "pretraining_tp": 1}
INTERNLM3_8B = {"architectures": ["InternLM3ForCausalLM"], "bias": False, "head_dim": 128, "hidden_size": 4096,
                "intermediate_size": 10240, "max_position_embeddings": 32768, "model_type": "internlm3",
                "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 2, "qkv_bias": False,
                "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 6.0, "rope_type": "dynamic"},
                "rope_theta": 50000000, "tie_word_embeddings": False, "vocab_size": 128512}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def llama(d, heads, kv, ffn, layers, vocab, *, tied):
    hd = d // heads
    return (1 if tied else 2) * vocab * d + d + layers * (2 * d * heads * hd + 2 * d * kv * hd + 3 * d * ffn + 2 * d)


def test_minicpm4_8b_by_hand_runs_its_mup_scalings(tmp_path):
    total = llama(4096, 32, 2, 16384, 32, 73448, tied=False)
    assert round(total / 1e9, 2) == 8.19 and round(total / 1e9) == 8  # "MiniCPM4-8B"
    cfg = load(tmp_path, MINICPM4_8B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    blocks = cfg.build(Phase.decode(4, 99)).blocks
    layer, head = blocks[0].graph, blocks[-1].graph
    assert layer.ops["attn_branch_scale"].flops == layer.ops["mlp_branch_scale"].flops == 4 * 4096
    assert head.ops["embed_scale"].flops == head.ops["head_input_scale"].flops == 4 * 4096
    order = list(head.ops)
    assert order.index("final_norm") < order.index("head_input_scale") < order.index("lm_head")
    sparse = load(tmp_path, MINICPM4_8B, sparse_config={"topk": 64, "dense_len": 8192})
    assert sparse.build(Phase.decode(1, 1)).params() == total and "priced dense" in sparse.notes[0]


def test_minicpm_2b_by_hand(tmp_path):
    total = llama(2304, 36, 36, 5760, 40, 122753, tied=True)
    assert (round(total / 1e9, 1), round((total - 122753 * 2304) / 1e9, 1)) == (2.7, 2.4)  # 2.7B, 2.4B non-embedding
    assert load(tmp_path, MINICPM_2B).build(Phase.decode(1, 1)).params() == total


def test_minicpm_moe_routes_its_experts(tmp_path):
    cfg = load(tmp_path, MINICPM_2B, num_experts=8, num_experts_per_tok=2)
    assert (cfg.moe.experts, cfg.moe.top_k, cfg.moe.renormalize) == (8, 2, True)
    dense = load(tmp_path, MINICPM_2B).build(Phase.decode(1, 1)).params()
    assert cfg.build(Phase.decode(1, 1)).params() - dense == 40 * (7 * 3 * 2304 * 5760 + 8 * 2304)


@pytest.mark.parametrize("config, layers, ffn, kv, vocab, published", [
    (INTERNLM25_7B, 32, 14336, 8, 92544, 7.7),  # "7 billion" (InternLM2.5-7B's card); 7.74B by hand
    (INTERNLM3_8B, 48, 10240, 2, 128512, 8.8),  # "8-billion" (InternLM3-8B's card); 8.80B by hand
])
def test_internlm_by_hand(tmp_path, config, layers, ffn, kv, vocab, published):
    total = llama(4096, 32, kv, ffn, layers, vocab, tied=False)
    assert round(total / 1e9, 1) == published
    cfg = load(tmp_path, config)
    assert cfg.build(Phase.decode(1, 1)).params() == total


@pytest.mark.parametrize("config, change, field", [
    (MINICPM4_8B, {"head_dim": 64}, "head_dim"),
    (MINICPM4_8B, {"hidden_act": "fatrelu"}, "hidden_act"),
    (INTERNLM25_7B, {"bias": True}, "bias"),
    (INTERNLM3_8B, {"bias": True}, "bias"),
    ({k: v for k, v in INTERNLM25_7B.items() if k != "bias"}, {}, "bias"),  # InternLM2Config's default: biases
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
