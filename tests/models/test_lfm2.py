"""Liquid AI's LFM2 (transformers' lfm2 and lfm2_moe; vLLM's lfm2.py, lfm2_moe.py and its ShortConv), checked by hand
against the published sizes and the structure the reference code builds: layers of GQA (per-head q/k norms) or of
the gated short convolution, in_proj to B | C | x, B x, a 3-tap depthwise causal conv, C times it, out_proj, with no
scan and a conv state of 2 x hidden values a sequence; the SwiGLU's width two thirds of block_ff_dim rounded up to
256. LFM2_700M holds LiquidAI/LFM2-700M's config.json fields (LFM Open License v1.0, so no preset ships); the others
change its shapes as the published models do (the LFM2 model cards' table; LFM2-8B-A1B's layer_types)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.model import BuildOptions

LFM2_700M = {"architectures": ["Lfm2ForCausalLM"], "block_auto_adjust_ff_dim": True, "block_dim": 1536,
             "block_ff_dim": 10240, "block_ffn_dim_multiplier": 1.0, "block_mlp_init_scale": 1.0,
             "block_multiple_of": 256, "block_norm_eps": 1e-05, "block_out_init_scale": 1.0,
             "block_use_swiglu": True, "block_use_xavier_init": True, "bos_token_id": 1, "conv_L_cache": 3,
             "conv_bias": False, "conv_dim": 1536, "conv_dim_out": 1536, "conv_use_xavier_init": True,
             "eos_token_id": 7, "full_attn_idxs": [2, 5, 8, 10, 12, 14], "hidden_size": 1536,
             "initializer_range": 0.02, "max_position_embeddings": 128000, "model_type": "lfm2", "norm_eps": 1e-05,
             "num_attention_heads": 24, "num_heads": 24, "num_hidden_layers": 16, "num_key_value_heads": 8,
             "pad_token_id": 0, "rope_theta": 1000000.0, "torch_dtype": "bfloat16",
             "transformers_version": "4.54.0.dev0", "use_cache": True, "use_pos_enc": True, "vocab_size": 65536}
SHAPES = {  # hidden size, heads, block_ff_dim; LFM2-2.6B: 30 layers, its width as given (auto-adjust off)
    "350M": dict(hidden_size=1024, block_dim=1024, conv_dim=1024, conv_dim_out=1024, num_attention_heads=16,
                 num_heads=16, block_ff_dim=6656),
    "1.2B": dict(hidden_size=2048, block_dim=2048, conv_dim=2048, conv_dim_out=2048, num_attention_heads=32,
                 num_heads=32, block_ff_dim=12288),
    "2.6B": dict(hidden_size=2048, block_dim=2048, conv_dim=2048, conv_dim_out=2048, num_attention_heads=32,
                 num_heads=32, block_ff_dim=10752, block_auto_adjust_ff_dim=False, num_hidden_layers=30,
                 full_attn_idxs=[2, 5, 9, 13, 17, 21, 24, 27]),
}
LFM2_8B_A1B = {"architectures": ["Lfm2MoeForCausalLM"], "conv_L_cache": 3, "conv_bias": False, "dtype": "bfloat16",
               "hidden_size": 2048, "intermediate_size": 7168,
               "layer_types": ["full_attention" if i in (2, 6, 10, 14, 18, 21) else "conv" for i in range(24)],
               "max_position_embeddings": 128000, "model_type": "lfm2_moe", "moe_intermediate_size": 1792,
               "norm_eps": 1e-05, "norm_topk_prob": True, "num_attention_heads": 32, "num_dense_layers": 2,
               "num_experts": 32, "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8,
               "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}, "routed_scaling_factor": 1.0,
               "tie_word_embeddings": True, "use_expert_bias": True, "vocab_size": 65536}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def by_hand(d, ffn, layers=16, attention_layers=6, heads=None):
    """Tied embeddings; conv layers in_proj 3 d^2, the 3-tap conv, out_proj d^2; attention layers q, o d^2 and k, v
    to 8 KV heads of 64, with a per-head q and k scale; every layer a SwiGLU and two norms."""
    conv = 4 * d * d + 3 * d
    attention = 2 * d * d + 2 * d * 8 * 64 + 2 * 64
    return (65536 * d + d + (layers - attention_layers) * conv + attention_layers * attention
            + layers * (3 * d * ffn + 2 * d))


@pytest.mark.parametrize("name, config, ffn, layers, attention_layers, published", [
    ("700M", LFM2_700M, 6912, 16, 6, 742_489_344),  # int(2 x 10,240 / 3) = 6,826, rounded up to 6,912
    ("350M", {**LFM2_700M, **SHAPES["350M"]}, 4608, 16, 6, 354_483_968),  # 4,437 -> 4,608
    ("1.2B", {**LFM2_700M, **SHAPES["1.2B"]}, 8192, 16, 6, 1_170_340_608),
    ("2.6B", {**LFM2_700M, **SHAPES["2.6B"]}, 10752, 30, 8, 2_569_272_320),
])
def test_dense_counts_are_the_published_ones(tmp_path, name, config, ffn, layers, attention_layers, published):
    # published: the exact parameter counts of the LFM2 model cards' table
    assert by_hand(config["hidden_size"], ffn, layers, attention_layers) == published
    assert load(tmp_path, config).build(Phase.decode(1, 1)).params() == published


def test_the_short_conv_block_and_its_state(tmp_path):
    d = 1536
    blocks = {b.name: (b.count, b.graph) for b in load(tmp_path, LFM2_700M).build(Phase.decode(4, 999)).blocks}
    assert {n: c for n, (c, _) in blocks.items()} == {"conv_layer": 10, "attention_layer": 6, "embed_head": 1}
    g = blocks["conv_layer"][1]
    assert g.ops["in_proj"].flops == 2 * 4 * d * 3 * d and g.ops["out_proj"].flops == 2 * 4 * d * d
    assert g.ops["b_gate"].flops == g.ops["c_gate"].flops == 4 * d
    assert g.ops["conv"].fn == "conv1d" and g.ops["conv"].flops == 4 * 2 * 3 * d  # 3 taps, no activation after
    assert [name for name, op in g.ops.items() if op.fn == "silu"] == ["act"]  # the SwiGLU's alone
    # no keys: a conv state of the last 2 gated inputs a sequence, whatever the context
    assert kv_cache_bytes(g) == 4 * 2 * d * 2
    assert kv_cache_bytes(blocks["attention_layer"][1]) == 4 * 1000 * 2 * 8 * 64 * 2
    # under tensor parallelism the channels split, and out_proj all-reduces
    g2 = next(b.graph for b in load(tmp_path, LFM2_700M).build(Phase.decode(4, 999), BuildOptions(tp=2)).blocks
              if b.name == "conv_layer")
    assert kv_cache_bytes(g2) == 4 * 2 * d // 2 * 2 and "out_allreduce" in g2.ops


def test_lfm2_8b_a1b_by_hand_is_the_published_8_3b_1_5b_active(tmp_path):
    d, e, k, w = 2048, 32, 4, 1792
    conv, attention = 4 * d * d + 3 * d, 2 * d * d + 2 * d * 8 * 64 + 2 * 64
    moe = e * d + e + e * 3 * d * w  # router, the fp32 selection bias, experts
    total = 65536 * d + d + 18 * conv + 6 * attention + 2 * 3 * d * 7168 + 22 * moe + 24 * 2 * d
    active = total - 22 * (e - k) * 3 * d * w
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (8.3, 1.6)  # "8.3B total, 1.5B active" (card)
    cfg = load(tmp_path, LFM2_8B_A1B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    assert (cfg.moe.experts, cfg.moe.top_k, cfg.moe.first_dense, cfg.moe.scores) == (32, 4, 2, "sigmoid")


def test_without_layer_lists_every_layer_is_attention(tmp_path):
    cfg = load(tmp_path, LFM2_700M, full_attn_idxs=None)
    assert [b.name for b in cfg.build(Phase.decode(1, 9)).blocks] == ["layer", "embed_head"]


@pytest.mark.parametrize("config, change, field", [
    (LFM2_700M, {"block_dim": 2048}, "block_dim"),
    (LFM2_700M, {"block_use_swiglu": False}, "block_use_swiglu"),
    (LFM2_700M, {"full_attn_idxs": [2, 99]}, "full_attn_idxs"),
    (LFM2_700M, {"layer_types": ["conv"] * 16}, "full_attn_idxs"),  # the two lists disagree
    (LFM2_700M, {"block_ffn_dim_multiplier": "wide"}, "block_ffn_dim_multiplier"),
    (LFM2_8B_A1B, {"layer_types": None}, "layer_types"),
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
