"""Arcee's Trinity (transformers' afmoe, vLLM's afmoe.py), checked by hand against its published sizes and the
structure the reference code builds: four RMSNorms a layer, q/k norms per head, an output gate from its own
gate_proj, every fourth layer full attention without rope and the others a window with rope, dense first layers,
then sigmoid-routed experts picked with a selection bias beside one shared expert. The configs hold the fields of
arcee-ai/Trinity-Nano-Preview's and Trinity-Large-Preview's config.json (Apache-2.0) as copies of them give them
(AWS's NxD Inference test fixture, mlx-community's 4-bit conversion; Large's route_scale from its technical report,
arXiv 2602.17004)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.core.tensor import FP32

NANO = {"architectures": ["AfmoeForCausalLM"], "dtype": "bfloat16", "global_attn_every_n_layers": 4, "head_dim": 128,
        "hidden_act": "silu", "hidden_size": 1024, "intermediate_size": 3072, "load_balance_coeff": 0.001,
        "max_position_embeddings": 131072, "model_type": "afmoe", "moe_intermediate_size": 256, "mup_enabled": True,
        "n_group": 1, "num_attention_heads": 8, "num_dense_layers": 2, "num_expert_groups": 1, "num_experts": 128,
        "num_experts_per_tok": 8, "num_hidden_layers": 56, "num_key_value_heads": 2, "num_limited_groups": 1,
        "num_shared_experts": 1, "rms_norm_eps": 1e-05, "rope_theta": 10000, "route_norm": True,
        "route_scale": 2.826, "score_func": "sigmoid", "sliding_window": 2048, "tie_word_embeddings": False,
        "topk_group": 1, "use_grouped_mm": True, "vocab_size": 200192}
LARGE = {**NANO, "hidden_size": 3072, "intermediate_size": 12288, "max_position_embeddings": 262144,
         "moe_intermediate_size": 3072, "num_attention_heads": 48, "num_dense_layers": 6, "num_experts": 256,
         "num_experts_per_tok": 4, "num_hidden_layers": 60, "num_key_value_heads": 8, "route_scale": 2.448,
         "sliding_window": 4096}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def by_hand(c):
    """(total, active with both embedding tables) from the shapes: attention with its gate_proj and q/k scales,
    four norms, dense SwiGLUs, then router, selection bias, experts and the shared expert."""
    d, hd, v = c["hidden_size"], 128, c["vocab_size"]
    heads, kv, e, k, w = (c[key] for key in ("num_attention_heads", "num_key_value_heads", "num_experts",
                                             "num_experts_per_tok", "moe_intermediate_size"))
    common = d * hd * (3 * heads + 2 * kv) + 2 * hd + 4 * d
    dense = common + 3 * d * c["intermediate_size"]
    moe = common + e * d + e + 3 * e * d * w + 3 * d * w
    first, layers = c["num_dense_layers"], c["num_hidden_layers"]
    total = first * dense + (layers - first) * moe + 2 * v * d + d
    return total, total - (layers - first) * (e - k) * 3 * d * w


@pytest.mark.parametrize("config, published_total, published_active", [
    (NANO, 6, 1),  # "6B total, 1B active" (Arcee, the Trinity technical report)
    (LARGE, 398, 13),  # "~398B total, ~13B active" (Trinity-Large-Preview's card)
])
def test_counts_are_the_published_ones(tmp_path, config, published_total, published_active):
    total, active = by_hand(config)
    assert (total // 10**9, round(active / 1e9)) == (published_total, published_active)  # 398.6B: "~398B"
    assert load(tmp_path, config).build(Phase.decode(1, 1)).params() == total


def test_trinity_large_layers(tmp_path):
    cfg = load(tmp_path, LARGE)
    blocks = {b.name: (b.count, b.graph) for b in cfg.build(Phase.decode(2, 9999)).blocks}
    # six dense layers first (the fourth of them full), then every fourth layer full attention without rope
    assert {n: c for n, (c, _) in blocks.items()} == {"dense_sliding_rope_layer": 5, "dense_full_nope_layer": 1,
                                                     "moe_sliding_rope_layer": 40, "moe_full_nope_layer": 14,
                                                     "embed_head": 1}
    _, g = blocks["moe_sliding_rope_layer"]
    norms = [name for name, op in g.ops.items() if op.kind == "norm" and name not in ("q_norm", "k_norm")]
    assert norms == ["input_layernorm", "post_attention_layernorm", "pre_mlp_layernorm", "post_mlp_layernorm"]
    assert g.ops["attn_gate_proj"].flops == 2 * 2 * 3072 * 48 * 128 and "gate_sigmoid" in g.ops
    assert g.tensors["mlp.router.gate.weight"].dtype == FP32  # vLLM's router, and its selection bias, in fp32
    assert not [op for op in blocks["moe_full_nope_layer"][1].ops.values() if op.fn == "rope"]
    assert "embed_scale" in blocks["embed_head"][1].ops  # times sqrt(hidden_size): mup_enabled
    unscaled = load(tmp_path, LARGE, mup_enabled=False).build(Phase.decode(2, 9)).blocks[-1].graph
    assert "embed_scale" not in unscaled.ops


@pytest.mark.parametrize("change, field", [
    ({"n_group": 8}, "n_group"),
    ({"num_expert_groups": 4}, "num_expert_groups"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"global_attn_every_n_layers": "every fourth"}, "global_attn_every_n_layers"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, NANO, **change)
