"""inclusionAI's Ring-linear 2.0 (model_type bailing_moe_linear). Expected values by hand from Ring-mini-linear-2.0's
config (below: the fields of mlx-community/Ring-mini-linear-2.0-4bit's config.json, its conversion's quantization
keys left out) and the modules SGLang's models/bailing_moe_linear.py and vLLM's
layers/mamba/linear/bailing_linear_attn.py build: 20 layers, every 5th (4, 9, 14, 19) Ling-2.0's GQA 16/4, the
others lightning attention over 16 heads of 128 (q, k and v of every head, per-head q/k norms, rope on 64 dims, an
output norm in 4 groups gated by sigmoid(g_proj)); layer 0 a dense SwiGLU of 5,120, the others 256 experts of 512
top-8 and a shared one; the router and its bias fp32."""

import json

import pytest

from opgraph import FP32, OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.models import BuildOptions

CONFIG = {
    "architectures": ["BailingMoeLinearV2ForCausalLM"], "attention_dropout": 0.0, "embedding_dropout": 0.0,
    "eos_token_id": 156892, "first_k_dense_replace": 1, "group_norm_size": 4, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 5120, "layer_group_size": 5, "linear_silu": False,
    "max_position_embeddings": 131072, "model_type": "bailing_moe_linear", "moe_intermediate_size": 512,
    "moe_router_enable_expert_bias": True, "moe_shared_expert_intermediate_size": 512, "n_group": 8,
    "norm_topk_prob": True, "num_attention_heads": 16, "num_experts": 256, "num_experts_per_tok": 8,
    "num_hidden_layers": 20, "num_key_value_heads": 4, "num_nextn_predict_layers": 0, "num_shared_experts": 1,
    "output_dropout": 0.0, "pad_token_id": 156892, "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000, "routed_scaling_factor": 2.5, "router_dtype": "fp32",
    "score_function": "sigmoid", "tie_word_embeddings": False, "topk_group": 4, "torch_dtype": "bfloat16",
    "transformers_version": "4.56.1", "use_bias": False, "use_cache": True, "use_qk_norm": True,
    "use_qkv_bias": False, "use_rmsnorm": True, "vocab_size": 157184}
D, VOCAB, H, KV, HD, E, DE, DENSE = 2048, 157184, 16, 4, 128, 256, 512, 5120
P = H * HD
N_LIN, N_SOFT = 16, 4


def load(tmp_path, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, **change}))
    return models.get(str(path))


def test_parameters_by_hand_are_the_published_16_4b(tmp_path):
    linear = 3 * P * D + 2 * HD + P * D + P + D * P  # query_key_value, q/k norms, g_proj, g_norm, dense
    softmax = (H + 2 * KV) * HD * D + 2 * HD + D * P  # query_key_value, q/k norms, dense
    moe = E * 3 * D * DE + 3 * D * DE + E * D + E  # routed, shared, router, its bias
    total = 2 * VOCAB * D + D + N_LIN * linear + N_SOFT * softmax + 3 * D * DENSE + 19 * moe + 20 * 2 * D
    assert total == 16_423_448_320  # "16.4B total" (model card), 957M non-embedding active (arXiv 2510.19338)
    model = load(tmp_path).build(Phase.decode(1, 1))
    assert model.params() == total
    fp32 = 19 * (E * D + E) + VOCAB * D  # the routers and their biases, and lm_head as SGLang runs it
    assert model.weight_bytes() == 2 * total + 2 * fp32


def blocks(tmp_path, phase, **options):
    model = load(tmp_path).build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_every_fifth_layer_is_softmax_attention(tmp_path):
    counts = {n: c for n, (c, _) in blocks(tmp_path, Phase.decode(1, 10)).items()}
    assert counts == {"dense_lightning_layer": 1, "moe_lightning_layer": 15, "moe_attention_layer": 4, "embed_head": 1}


def test_a_linear_layer_by_hand(tmp_path):
    _, g = blocks(tmp_path, Phase.decode(3, 500))["moe_lightning_layer"]
    assert g.ops["query_key_value"].flops == 3 * 2 * D * 3 * P  # one GEMM for q, k and v of all 16 heads
    # per head: k^T v, exp(-s) S, the sum, q * S (d*d each) and its column sums ((d - 1) d), exp(-s) negated by 4
    # programs of 32 value columns
    assert g.ops["lightning"].flops == 3 * H * (5 * HD * HD - HD + 4)
    assert [t.name for t in g.ops["lightning"].inputs[:3]] == ["q_scaled", "k_rope", "v"]
    assert g.ops["rope_q"].outputs[0].shape == (3, 1, P)
    assert g.ops["query_layernorm"].outputs[0].dtype == FP32
    assert "silu" not in {op.fn for n, op in g.ops.items() if n.startswith(("q", "k", "v"))}  # linear_silu false
    # the state, 16 x 128 x 128 a layer at the model's dtype (vLLM's mamba_cache_dtype auto), no conv
    assert kv_cache_bytes(g) == 3 * H * HD * HD * 2
    _, att = blocks(tmp_path, Phase.decode(3, 500))["moe_attention_layer"]
    assert kv_cache_bytes(att) == 3 * 501 * 2 * KV * HD * 2  # 8 KiB a token over the 4 softmax layers


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_the_output_norm_keeps_its_groups_on_one_gpu(tmp_path, tp):
    _, g = blocks(tmp_path, Phase.decode(2, 10), tp=tp)["moe_lightning_layer"]
    norm = g.ops["g_norm"]
    assert norm.fn == "gated_rmsnorm" and g.tensors["attention.g_norm.weight"].shape == (P // tp,)
    assert not [n for n in g.ops if n.startswith("g_norm") and g.ops[n].fn == "all_reduce"]


def test_a_tp_that_splits_a_norm_group_is_refused(tmp_path):
    with pytest.raises(OpgraphError, match="group_norm_size"):
        load(tmp_path).build(Phase.decode(1, 10), BuildOptions(tp=8))


@pytest.mark.parametrize("change, rotated", [({}, HD // 2), ({"partial_rotary_factor": 1.0}, HD),
                                             ({"linear_rope": False}, 0)])
def test_rope_turns_the_dims_the_config_says(tmp_path, change, rotated):
    _, g = {b.name: (b.count, b.graph) for b in load(tmp_path, **change).build(Phase.decode(1, 10)).blocks}[
        "moe_lightning_layer"]
    ropes = [op.flops for op in g.ops.values() if op.fn == "rope"]
    assert ropes == ([3 * H * rotated] * 2 if rotated else [])  # q's and k's: 3 FLOPs a rotated element


def test_seg_la_is_noted_and_every_field_read(tmp_path):
    cfg = load(tmp_path, linear_backend="seg_la")
    assert any("seg_la" in n for n in cfg.notes)
    assert not [n for n in load(tmp_path).notes if "not read" in n or "seg_la" in n]


@pytest.mark.parametrize("change, field", [
    ({"layer_group_size": 3}, "layer_group_size"),
    ({"head_dim": 96}, "head_dim"),
    ({"use_rmsnorm": False}, "use_rmsnorm"),
    ({"router_dtype": "fp16"}, "router_dtype"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, **change)
