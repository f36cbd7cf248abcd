"""Gemma-4 (gemma4 / gemma4_text): the 31B dense and 26B-A4B MoE presets and the family's layer. Expected values
come from the config's fields by hand, with the shapes of the reference code (transformers' modeling_gemma4.py:
Gemma4TextAttention, Gemma4TextMLP, Gemma4TextRouter, Gemma4TextExperts, Gemma4TextDecoderLayer), and from Google's
published counts (30.7B; 25.2B total, 3.8B active)."""

import copy
import json

import pytest

from opgraph import OpgraphError, Phase, analyze, hardware, models, strategy
from opgraph.models import BuildOptions, hf_config, presets

V = 262144
G31 = dict(d=5376, ffn=21504, layers=60, heads=32, kv=16, full_kv=4)
G26 = dict(d=2816, ffn=2112, layers=30, heads=16, kv=8, full_kv=2, experts=128, top_k=8, expert=704)
HEAD, FULL_HEAD = 256, 512  # head_dim on sliding layers, global_head_dim on full ones


def attention(m, full: bool) -> int:
    """q, k (and v on sliding layers: full layers take v from k_proj), o; a q and a k norm of one head's width."""
    hd, kv = (FULL_HEAD, m["full_kv"]) if full else (HEAD, m["kv"])
    return 2 * m["d"] * m["heads"] * hd + m["d"] * kv * hd * (1 if full else 2) + 2 * hd


def layer(m, full: bool) -> int:
    """Attention, the GeGLU MLP, four norms and the layer scalar; with experts their router (weight, scale,
    per-expert scale), the experts' three matrices and three more norms."""
    n = attention(m, full) + 3 * m["d"] * m["ffn"] + 4 * m["d"] + 1
    if "experts" in m:
        n += m["experts"] * m["d"] + m["d"] + m["experts"] + m["experts"] * 3 * m["d"] * m["expert"] + 3 * m["d"]
    return n


def total(m) -> int:
    full = m["layers"] // 6  # every 6th layer
    return (m["layers"] - full) * layer(m, False) + full * layer(m, True) + V * m["d"] + m["d"]  # tied head


@pytest.mark.parametrize("name, m, expected", [("gemma-4-31b", G31, 30_697_345_340),
                                               ("gemma-4-26b-a4b", G26, 25_233_141_790)])
def test_parameters_by_hand(name, m, expected):
    assert models.get(name).build(Phase.decode(1, 1)).params() == total(m) == expected


def test_the_moe_model_runs_8_of_its_128_experts():
    m = G26
    active = total(m) - m["layers"] * (m["experts"] - m["top_k"]) * 3 * m["d"] * m["expert"]
    assert round(active / 1e9, 1) == 3.8  # Google: 3.8B active


def ops_of(name, phase, kind, **options):
    model = models.get(name).build(phase, BuildOptions(**options))
    return next(b for b in model.blocks if b.name == kind).graph.ops


def test_a_full_layer_takes_v_from_k_and_rotates_a_quarter_of_its_head():
    """attention_k_eq_v: no v_proj; v is k_proj's output RMS-normalized per head without a scale; q and k rope
    128 of 512 dims (partial_rotary_factor 0.25, proportional)."""
    t, m = 3, G31
    ops = ops_of("gemma-4-31b", Phase.prefill(1, t), "full_layer")
    assert "v_proj" not in ops and ops["v_norm"].inputs[0].name == ops["k_proj"].outputs[0].name
    assert ops["k_proj"].flops == 2 * t * m["d"] * m["full_kv"] * FULL_HEAD
    assert ops["q_proj"].flops == 2 * t * m["d"] * m["heads"] * FULL_HEAD
    sliding = ops_of("gemma-4-31b", Phase.prefill(1, t), "sliding_layer")
    assert sliding["v_proj"].flops == 2 * t * m["d"] * m["kv"] * HEAD
    # the same 32 heads rotate 128 dims each where a sliding layer's rotate all 256 of theirs
    assert ops["rope_q"].flops * HEAD == sliding["rope_q"].flops * 128


def test_the_layer_scalar_multiplies_the_residual_stream():
    t = 5
    ops = ops_of("gemma-4-31b", Phase.prefill(1, t), "sliding_layer")
    assert ops["layer_scalar"].flops == t * G31["d"] and ops["layer_scalar"].inputs[1].shape == (1,)


def test_the_experts_run_beside_the_dense_mlp():
    """26B-A4B: each token through the dense GeGLU MLP (2,112) and 8 of 128 GeGLU experts (704); the router reads the
    un-normed residual stream through its own scaled norm, softmax over the 128, the top 8 renormalized and each
    times its expert's scale."""
    t, m = 4, G26
    ops = ops_of("gemma-4-26b-a4b", Phase.prefill(1, t), "sliding_layer")
    assert ops["down_proj"].flops == 2 * t * m["ffn"] * m["d"]
    assert ops["experts.down_proj"].flops == 2 * t * m["top_k"] * m["expert"] * m["d"]
    assert ops["router_norm"].inputs[0].name == ops["pre_feedforward_layernorm_2"].inputs[0].name  # the stream
    assert ops["router"].flops == 2 * t * m["d"] * m["experts"]
    assert ops["top_k"].flops == t * (m["experts"] + 2 * m["top_k"] + m["top_k"])  # select, renormalize, scale
    for norm in ("pre_feedforward_layernorm", "post_feedforward_layernorm_1", "pre_feedforward_layernorm_2",
                 "post_feedforward_layernorm_2", "post_feedforward_layernorm"):
        assert ops[norm].kind == "norm"


def test_the_engines_run_the_experts_as_one_fused_moe_call():
    model = models.get("gemma-4-26b-a4b").build(Phase.decode(8, 512), BuildOptions(tp=2))
    res = analyze(model, strategy("vllm"), hardware.load("h100-sxm"))
    [kernel] = [k for b in res.blocks if b.name == "sliding_layer" for k in b.kernel_costs()
                if "experts.gate_proj" in k.ops]
    assert {"experts.up_proj", "experts.down_proj", "combine"} <= set(kernel.ops) and kernel.kind == "moe"


def test_expert_parallelism_sees_the_experts_beside_the_dense_mlp():
    ops = ops_of("gemma-4-26b-a4b", Phase.decode(4, 100), "sliding_layer", tp=4, ep=4)
    assert ops["experts.down_proj"].inputs[1].shape[0] == G26["experts"] // 4


CONFIG = json.loads((presets.CONFIG_DIR / "gemma-4-31b.json").read_text())


def load(**changes):
    data = copy.deepcopy(CONFIG)
    data["text_config"].update(changes)
    data["text_config"] = {k: v for k, v in data["text_config"].items() if v is not None}
    return hf_config.from_dict(data, name="g4", source="test")


@pytest.mark.parametrize("changes, field", [
    ({"num_kv_shared_layers": 60}, "num_kv_shared_layers"),  # no layer left to write K and V
    ({"num_kv_shared_layers": 59}, "num_kv_shared_layers"),  # a full layer with no full layer before it
    ({"use_bidirectional_attention": "all"}, "use_bidirectional_attention"),
    ({"rope_parameters": {"full_attention": {"partial_rotary_factor": 2}}}, "rope_parameters"),
])
def test_what_the_family_does_not_model_is_refused_by_name(changes, field):
    with pytest.raises(OpgraphError, match=field):
        load(**changes).build(Phase.decode(1, 1))


def test_without_k_eq_v_a_full_layer_keeps_its_v_proj_and_kv_heads():
    ops = load(attention_k_eq_v=False).build(Phase.prefill(1, 2)).blocks
    full = next(b for b in ops if b.name == "full_layer").graph.ops
    assert full["v_proj"].flops == 2 * 2 * G31["d"] * G31["kv"] * FULL_HEAD


# E2B and E4B as transformers' converter builds them (convert_gemma4_weights.py _VARIANTS): per-layer embeddings of
# 256, their last layers reading an earlier layer's K and V, E2B's MLP twice as wide on those.
ROPE = {"full_attention": {"partial_rotary_factor": 0.25, "rope_type": "proportional"}, "sliding_attention": {}}
E_COMMON = {"model_type": "gemma4_text", "hidden_size_per_layer_input": 256, "final_logit_softcapping": 30.0,
            "rope_parameters": ROPE, "num_attention_heads": 8, "hidden_activation": "gelu_pytorch_tanh"}
E4B = dict(E_COMMON, hidden_size=2560, intermediate_size=10240, num_hidden_layers=42, num_key_value_heads=2,
           layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 7, num_kv_shared_layers=18)
E2B = dict(E_COMMON, hidden_size=1536, intermediate_size=6144, num_hidden_layers=35, num_key_value_heads=1,
           layer_types=(["sliding_attention"] * 4 + ["full_attention"]) * 7, num_kv_shared_layers=20,
           use_double_wide_mlp=True)


def edge_params(c) -> int:
    """By hand: each layer's attention (shared layers: q and o and q's norm only), its GeGLU MLP (doubled on shared
    layers where use_double_wide_mlp), four norms and the scalar, its per-layer input's gate, projection and norm;
    the tied embedding, the per-layer table [V, L x 256], its projection [L x 256, H] and norm, the final norm."""
    h, n, p, heads, kv = c["hidden_size"], c["num_hidden_layers"], 256, 8, c["num_key_value_heads"]
    first_shared = n - c["num_kv_shared_layers"]
    total = V * h + V * n * p + n * p * h + p + h
    for i, kind in enumerate(c["layer_types"]):
        hd = FULL_HEAD if kind == "full_attention" else HEAD
        shared = i >= first_shared
        attn = 2 * h * heads * hd + hd + (0 if shared else 2 * h * kv * hd + hd)
        width = c["intermediate_size"] * (2 if shared and c.get("use_double_wide_mlp") else 1)
        total += attn + 3 * h * width + 4 * h + 1 + 2 * h * p + h
    return total


@pytest.mark.parametrize("c, independent", [(E2B, 4_628_569_379), (E4B, 7_463_013_418)])
def test_the_edge_models_by_hand(c, independent):
    """`independent`: the same count made separately from the reference code's shapes. The published figures (E2B
    2.3B effective, 5.1B with embeddings; E4B 4.5B and 8B) include the vision and audio towers, not costed."""
    model = hf_config.from_dict(c, name="e", source="test").build(Phase.decode(1, 1))
    assert model.params() == edge_params(c) == independent


def test_a_shared_layer_reads_an_earlier_layers_kv_and_holds_none():
    """E4B decoding 1 token at a 999-token context: the 20 sliding layers that write K and V hold their 512-token
    window, the 4 full ones all 1,000 positions, 2 KV heads of 256 and 512 in bf16; the 18 shared layers hold
    nothing, and read the 512 or 1,000 positions an earlier layer wrote."""
    cfg = hf_config.from_dict(E4B, name="e4b", source="test")
    model = cfg.build(Phase.decode(1, 999))
    from opgraph.analysis.memory import kv_cache_bytes
    held = sum(b.count * kv_cache_bytes(b.graph) for b in model.blocks)
    assert held == 20 * 512 * 2 * 2 * HEAD * 2 + 4 * 1000 * 2 * 2 * FULL_HEAD * 2
    shared = next(b for b in model.blocks if b.name == "full_kv_shared_layer").graph.ops
    assert "k_proj" not in shared and "v_proj" not in shared
    assert shared["qk"].inputs[1].shape == (1, 1000, 2 * FULL_HEAD) and shared["qk"].inputs[1].role.value == "input"


def test_the_per_layer_inputs_are_made_once_and_read_by_each_layer():
    t, c = 6, E2B
    model = hf_config.from_dict(c, name="e2b", source="test").build(Phase.prefill(1, t))
    embed = next(b for b in model.blocks if b.name == "embed_head").graph.ops
    lp = c["num_hidden_layers"] * 256
    assert embed["per_layer_model_projection"].flops == 2 * t * c["hidden_size"] * lp
    assert embed["per_layer_embedding"].outputs[0].shape[-1] == lp
    layer = next(b for b in model.blocks if b.name == "sliding_attention_layer").graph.ops
    assert layer["per_layer_input_gate"].flops == layer["per_layer_projection"].flops == 2 * t * c["hidden_size"] * 256
    assert layer["ple_mul"].inputs[1].shape == (1, t, 256)


def test_the_per_layer_projection_is_column_parallel_and_gathered():
    """vLLM's gemma4.py builds per_layer_model_projection a ColumnParallelLinear with gather_output=True: under TP 4
    each GPU holds and multiplies a quarter of its layers x 256 outputs, then all-gathers them; the per-layer gate
    and projection in each layer stay whole (ReplicatedLinear)."""
    t, c = 6, E2B
    model = hf_config.from_dict(c, name="e2b", source="test").build(Phase.prefill(1, t), BuildOptions(tp=4))
    embed = next(b for b in model.blocks if b.name == "embed_head").graph
    lp = c["num_hidden_layers"] * 256
    assert embed.ops["per_layer_model_projection"].flops == 2 * t * c["hidden_size"] * lp // 4
    assert embed.tensors["per_layer_model_projection.weight"].shape == (lp // 4, c["hidden_size"])
    gather = embed.ops["per_layer_allgather"]
    assert gather.group == 4 and gather.outputs[0].shape == (1, t, lp)
    layer = next(b for b in model.blocks if b.name == "sliding_attention_layer").graph.ops
    assert layer["per_layer_input_gate"].flops == 2 * t * c["hidden_size"] * 256
