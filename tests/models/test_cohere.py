"""Cohere's Command models (transformers' cohere and cohere2; vLLM's commandr.py), checked by hand against their
published sizes and the structure the reference code builds: one LayerNorm (a scale, no shift) before attention and
the MLP side by side, x + attn(ln(x)) + mlp(ln(x)); per-head q and k LayerNorms with a scale each head (Command R+);
Command R7B's and A's every fourth layer full and without rope, the others a window of 4,096 keys with rope; the
logits times logit_scale. Each CONFIG holds a published config.json's fields (copies named by each: Cohere's
repositories are gated, CC-BY-NC-4.0, so no preset ships)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.model import BuildOptions

# CohereForAI/c4ai-command-r-v01, as Cohere's own c4ai-command-r-v01-4bit repository copies it
COMMAND_R = {"architectures": ["CohereForCausalLM"], "attention_bias": False, "hidden_act": "silu",
             "hidden_size": 8192, "intermediate_size": 22528, "layer_norm_eps": 1e-05, "logit_scale": 0.0625,
             "max_position_embeddings": 8192, "model_max_length": 131072, "model_type": "cohere",
             "num_attention_heads": 64, "num_hidden_layers": 40, "num_key_value_heads": 64, "rope_theta": 8000000.0,
             "torch_dtype": "bfloat16", "use_cache": True, "use_qk_norm": False, "vocab_size": 256000}
# c4ai-command-r-plus (turboderp/command-r-plus-103B-exl2's config.json.bak)
COMMAND_R_PLUS = {**COMMAND_R, "hidden_size": 12288, "intermediate_size": 33792, "logit_scale": 0.8333333333333334,
                  "num_attention_heads": 96, "num_hidden_layers": 64, "num_key_value_heads": 8,
                  "rope_theta": 75000000.0, "use_qk_norm": True}
# c4ai-command-r7b-12-2024 (huihui-ai/c4ai-command-r7b-12-2024-abliterated's config.json: weights changed, not shapes)
COMMAND_R7B = {"architectures": ["Cohere2ForCausalLM"], "attention_bias": False, "cache_implementation": "hybrid",
               "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
               "layer_norm_eps": 1e-05, "layer_switch": 4, "logit_scale": 0.25, "max_position_embeddings": 8192,
               "model_type": "cohere2", "num_attention_heads": 32, "num_hidden_layers": 32,
               "num_key_value_heads": 8, "order_of_interleaved_layers": "local_attn_first",
               "position_embedding_type": "rope_gptj", "rope_scaling": None, "rope_theta": 50000, "rotary_pct": 1.0,
               "sliding_window": 4096, "sliding_window_pattern": 4, "torch_dtype": "bfloat16",
               "use_embedding_sharing": True, "use_gated_activation": True, "use_parallel_block": True,
               "use_parallel_embedding": True, "vocab_size": 256000}
# c4ai-command-a-03-2025: its model card's shapes (12,288 wide, 64 layers, 96 heads, 8 KV heads, 36,864-wide MLP)
COMMAND_A = {**COMMAND_R7B, "hidden_size": 12288, "intermediate_size": 36864, "num_attention_heads": 96,
             "num_hidden_layers": 64, "max_position_embeddings": 131072}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def blocks(cfg, phase, **options):
    return {b.name: (b.count, b.graph) for b in cfg.build(phase, BuildOptions(**options)).blocks}


def by_hand(d, layers, heads, kv, ffn, vocab, *, qk_norm=False):
    """Tied embeddings (one table), no biases, one LayerNorm scale a layer and the final one; q and k norms a scale
    per head and channel."""
    hd = d // heads
    layer = 2 * d * heads * hd + 2 * d * kv * hd + 3 * d * ffn + d + qk_norm * (heads + kv) * hd
    return vocab * d + d + layers * layer


@pytest.mark.parametrize("config, published", [
    (COMMAND_R, 34.981),  # safetensors-derived "params" (a leaderboard request for CohereForAI/c4ai-command-r-v01)
    (COMMAND_R7B, 8.028),  # ibid. for c4ai-command-r7b-12-2024 (its card rounds to "7B")
    (COMMAND_A, 111.058),  # ibid. for c4ai-command-a-03-2025 (its card: "111 billion")
])
def test_counts_are_the_published_ones(tmp_path, config, published):
    total = by_hand(config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
                    config["num_key_value_heads"], config["intermediate_size"], 256000)
    assert round(total / 1e9, 3) == published
    assert load(tmp_path, config).build(Phase.decode(1, 1)).params() == total


def test_command_r_plus_counts_a_scale_per_head_for_q_and_k(tmp_path):
    total = by_hand(12288, 64, 96, 8, 33792, 256000, qk_norm=True)
    assert round(total / 1e9) == 104  # "104 billion parameters" (its model card)
    cfg = load(tmp_path, COMMAND_R_PLUS)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (_, (count, g)), _ = blocks(cfg, Phase.decode(1, 9)).items()
    assert count == 64
    q, k = g.ops["q_norm"], g.ops["k_norm"]
    assert (q.fn, k.fn) == ("layernorm", "layernorm")
    # rope after the norms; the per-head scales split with their heads under tensor parallelism
    order = list(g.ops)
    assert order.index("k_norm") < order.index("rope_k")
    (_, (_, g4)), _ = blocks(cfg, Phase.decode(1, 9), tp=4).items()
    assert g4.tensors["self_attn.q_norm.weight"].shape == (96 // 4 * 128,)


def test_one_norm_before_attention_and_the_mlp_side_by_side(tmp_path):
    g = next(iter(blocks(load(tmp_path, COMMAND_R), Phase.decode(4, 99)).values()))[1]
    norms = [name for name, op in g.ops.items() if op.kind == "norm"]
    assert norms == ["input_layernorm"] and g.ops["input_layernorm"].fn == "layernorm"
    ln = g.ops["input_layernorm"].outputs[0].name
    readers = {name for name, op in g.ops.items() if ln in [t.name for t in op.inputs]}
    assert {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"} <= readers
    # two all-reduces a layer under tensor parallelism: o_proj's and down_proj's (vLLM's RowParallelLinear)
    g2 = next(iter(blocks(load(tmp_path, COMMAND_R), Phase.decode(4, 99), tp=2).values()))[1]
    assert [name for name, op in g2.ops.items() if op.fn == "all_reduce"] == ["o_allreduce", "down_allreduce"]


def test_command_a_every_fourth_layer_is_full_and_without_rope(tmp_path):
    b = blocks(load(tmp_path, COMMAND_A), Phase.decode(1, 9999))
    assert {n: c for n, (c, _) in b.items()} == {"sliding_rope_layer": 48, "full_nope_layer": 16, "embed_head": 1}
    full, sliding = b["full_nope_layer"][1], b["sliding_rope_layer"][1]
    assert not [op for op in full.ops.values() if op.fn == "rope"]
    assert [op.fn for op in sliding.ops.values()].count("rope") == 2
    assert kv_cache_bytes(full) == 10000 * 2 * 8 * 128 * 2
    assert kv_cache_bytes(sliding) == 4096 * 2 * 8 * 128 * 2  # the window's 4,096 keys, of 10,000
    head = b["embed_head"][1]
    assert head.ops["logit_scale"].flops == 256000  # one multiply a logit


def test_layer_types_and_defaults_place_the_same_windows(tmp_path):
    listed = ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"] * 8
    same = load(tmp_path, COMMAND_R7B, sliding_window_pattern=None, layer_types=listed)
    default = load(tmp_path, COMMAND_R7B, sliding_window_pattern=None, sliding_window=None)
    want = {n: c for n, (c, _) in blocks(load(tmp_path, COMMAND_R7B), Phase.decode(1, 9)).items()}
    for cfg in (same, default):
        assert {n: c for n, (c, _) in blocks(cfg, Phase.decode(1, 9)).items()} == want


def test_a_logit_scale_of_one_is_not_run(tmp_path):
    head = blocks(load(tmp_path, COMMAND_R7B, logit_scale=1.0), Phase.decode(1, 9))["embed_head"][1]
    assert "logit_scale" not in head.ops


@pytest.mark.parametrize("config, change, field", [
    (COMMAND_R7B, {"head_dim": 256}, "head_dim"),
    (COMMAND_R7B, {"use_parallel_block": False}, "use_parallel_block"),
    (COMMAND_R7B, {"rotary_pct": 0.5}, "rotary_pct"),
    (COMMAND_R7B, {"sliding_window_pattern": "LLLG"}, "sliding_window_pattern"),
    (COMMAND_R7B, {"use_qk_norm": True}, "use_qk_norm"),  # cohere2 builds no q or k norm
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
