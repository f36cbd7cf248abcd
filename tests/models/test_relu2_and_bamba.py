"""Arcee's AFM (arcee), NVIDIA's Minitron and Nemotron-Mini (nemotron) and IBM's Bamba (bamba), checked by hand
against their published sizes and the structure the reference code builds (transformers' modeling_arcee.py,
modeling_nemotron.py, modeling_bamba.py; vLLM's arcee.py, nemotron.py, bamba.py): a plain MLP down(relu(up(x))^2),
Nemotron's LayerNorm1P with a shift and rope over half of each head, Bamba's Mamba-2 layers with attention at
attn_layer_indices and a SwiGLU in every layer. Each CONFIG holds the shapes a copy of the published config.json
gives (AFM-4.5B: tenstorrent's tt-metal params.json for it; Minitron-8B-Base: NVIDIA's Megatron-Bridge; Bamba-9B:
its model card and README)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes

AFM_45B = {"architectures": ["ArceeForCausalLM"], "model_type": "arcee", "hidden_act": "relu2", "hidden_size": 2560,
           "intermediate_size": 18432, "num_hidden_layers": 36, "num_attention_heads": 20, "num_key_value_heads": 4,
           "head_dim": 128, "vocab_size": 128004, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
           "rope_scaling": {"rope_type": "yarn", "factor": 20.0}, "attention_bias": False, "mlp_bias": False,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
MINITRON_8B = {"architectures": ["NemotronForCausalLM"], "model_type": "nemotron", "head_dim": 128,
               "hidden_act": "relu2", "hidden_size": 4096, "intermediate_size": 16384,
               "max_position_embeddings": 4096, "norm_eps": 1e-05, "num_attention_heads": 48,
               "num_hidden_layers": 32, "num_key_value_heads": 8, "partial_rotary_factor": 0.5, "rope_theta": 10000,
               "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 256000}
BAMBA_9B = {"architectures": ["BambaForCausalLM"], "model_type": "bamba", "attn_layer_indices": [9, 18, 27],
            "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "mamba_chunk_size": 256,
            "mamba_conv_bias": True, "mamba_d_conv": 4, "mamba_d_head": 64, "mamba_d_state": 128, "mamba_expand": 2,
            "mamba_n_groups": 1, "mamba_n_heads": 128, "mamba_proj_bias": False, "num_attention_heads": 32,
            "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 128256}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def blocks(cfg, phase=Phase.decode(2, 99)):
    return {b.name: (b.count, b.graph) for b in cfg.build(phase).blocks}


def gqa(d, heads, kv, hd):
    return 2 * d * heads * hd + 2 * d * kv * hd


def test_afm_45b_by_hand_has_no_gate(tmp_path):
    d, f, v = 2560, 18432, 128004
    total = 2 * v * d + d + 36 * (gqa(d, 20, 4, 128) + 2 * d * f + 2 * d)  # untied; up and down only; 2 RMSNorms
    assert round(total / 1e9, 1) == 4.6  # "4.6B params, bfloat16, 9.2 GB" (arcee-ai/AFM-4.5B)
    cfg = load(tmp_path, AFM_45B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (_, g), _ = blocks(cfg).values()
    assert "gate_proj" not in g.ops and g.ops["act"].fn == "relu2" and g.ops["act"].flops == 2 * 2 * f


def test_minitron_8b_by_hand_with_layernorm1p_and_half_rope(tmp_path):
    d, f, v = 4096, 16384, 256000
    # heads x head_dim (48 x 128 = 6,144) is not the hidden size; LayerNorm1P keeps a weight and a bias
    total = 2 * v * d + 2 * d + 32 * (gqa(d, 48, 8, 128) + 2 * d * f + 4 * d)
    assert round(total / 1e9) == 8  # "Minitron-8B-Base"
    cfg = load(tmp_path, MINITRON_8B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (_, g), _ = blocks(cfg).values()
    assert g.ops["input_layernorm"].fn == "layernorm" and g.ops["act"].fn == "relu2"
    assert g.ops["rope_q"].flops == 2 * 48 * 64 * 3  # half of each head rotated
    default = blocks(load(tmp_path, {k: v for k, v in MINITRON_8B.items() if k != "partial_rotary_factor"}))
    assert next(iter(default.values()))[1].ops["rope_q"].flops == 2 * 48 * 64 * 3  # NemotronConfig's 0.5
    whole = blocks(load(tmp_path, MINITRON_8B, partial_rotary_factor=1.0))
    assert next(iter(whole.values()))[1].ops["rope_q"].flops == 2 * 48 * 128 * 3


def test_bamba_9b_by_hand(tmp_path):
    d, f, v, inner, heads, n = 4096, 14336, 128256, 8192, 128, 128
    conv = inner + 2 * n  # one group of B and C
    mamba = d * (2 * inner + 2 * n + heads) + conv * 4 + conv + 3 * heads + inner + inner * d
    attention = gqa(d, 32, 8, 128)
    total = 2 * v * d + d + 29 * mamba + 3 * attention + 32 * (3 * d * f + 2 * d)
    assert total * 4 == 39_120_941_568  # 39.12 GB in fp32 (ibm-ai-platform/Bamba-9B's card: 9.78B)
    cfg = load(tmp_path, BAMBA_9B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    b = blocks(cfg, Phase.decode(1, 999))
    assert {k: c for k, (c, _) in b.items()} == {"mamba_layer": 29, "attention_layer": 3, "embed_head": 1}
    assert kv_cache_bytes(b["attention_layer"][1]) == 1000 * 2 * 8 * 128 * 2
    assert kv_cache_bytes(b["mamba_layer"][1]) == (3 * conv + heads * 64 * n) * 2  # conv and SSM states, bf16
    assert b["attention_layer"][1].ops["rope_q"].flops == 32 * 64 * 3  # half of each head (transformers pins 0.5)


@pytest.mark.parametrize("config, change, field", [
    (AFM_45B, {"hidden_act": "silu"}, "hidden_act"),
    (MINITRON_8B, {"hidden_act": "gelu"}, "hidden_act"),
    (BAMBA_9B, {"attn_layer_indices": [40]}, "attn_layer_indices"),
    (BAMBA_9B, {"mamba_d_head": 100}, "mamba_expand"),
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
