"""inclusionAI's Ling-2.5 / Ring-2.5 / Ling-2.6 (BailingMoeV2_5ForCausalLM, model_type bailing_hybrid). Expected values
by hand from Ling-2.6-flash's config and the modules inclusionAI/Ring-V2.5's models/modeling_bailing_moe_v2_5.py and
vLLM's models/bailing_moe_linear.py (BailingMoeV25ForCausalLM) build. CONFIG: the preset ling-2.6-flash's file: the
first 49 lines of huggingface.co/inclusionAI/Ling-2.6-flash-fp8 config.json (refs/pr/3, MIT; the same lines as
OsaurusAI/Ling-2.6-flash-MXFP4's); the rest (rope_theta on) the keys the model's config class
(configuration_bailing_moe_v2_5.py) writes, with the values every loader of the model uses (vocab 157,184, the head
untied, routed_scaling_factor 2.5, topk_group 4) and model_type as the Hub tags the model. 32 layers, every 8th (7,
15, 23, 31) MLA over 32 heads (q_lora_rank 1536, kv_lora_rank 512, 128 + 64 / 128), the others lightning attention
over 32 heads of 128 (q, k and v of every head, per-head q/k norms, rope on 64 dims, the output normed in 4 groups
and gated by sigmoid(g_proj)); layer 0 a dense SwiGLU of 9,216, the others 256 experts of 1,024 top-8 and a shared
one; the router and its bias in fp32; one multi-token-prediction layer."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.models import BuildOptions

CONFIG = json.loads((models.presets.CONFIG_DIR / "ling-2.6-flash.json").read_text())  # the preset's file
D, VOCAB, H, HD, E, DE, DENSE = 4096, 157184, 32, 128, 256, 1024, 9216
QR, KVR, NOPE, ROPE, V = 1536, 512, 128, 64, 128
P = H * HD
N_LIN, N_MLA, N_MOE = 28, 4, 31

LINEAR = 3 * P * D + 2 * HD + P * D + P + D * P  # query_key_value, q/k norms, g_proj, g_norm, dense
MLA = (QR * D + QR + H * (NOPE + ROPE) * QR  # q_a_proj, q_a_layernorm, q_b_proj
       + (KVR + ROPE) * D + KVR + H * (NOPE + V) * KVR  # kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj
       + D * H * V)  # dense (o_proj)
MOE = E * 3 * D * DE + 3 * D * DE + E * D + E  # routed, shared, router, its bias


def load(tmp_path, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, **change}))
    return models.get(str(path))


def test_parameters_by_hand_are_the_published_104b(tmp_path):
    total = 2 * VOCAB * D + D + N_LIN * LINEAR + N_MLA * MLA + 3 * D * DENSE + N_MOE * MOE + 32 * 2 * D
    assert round(total / 1e9) == 104  # "104B total, 7.4B active" (the model card)
    active = total - N_MOE * (E - 8) * 3 * D * DE
    assert round(active / 1e9, 1) == 7.4
    model = load(tmp_path).build(Phase.decode(1, 1))
    assert model.params() == total
    assert model.weight_bytes() == 2 * total + 2 * N_MOE * (E * D + E)  # the routers and their biases in fp32
    # the multi-token-prediction layer (model-mtp-layer.safetensors): enorm, hnorm, eh_proj, its MLA and MoE layer,
    # its norms; with it the checkpoint holds the "107B" the Hub counts
    mtp = 2 * D + 2 * D * D + 2 * D + MLA + MOE + D
    assert round((total + mtp) / 1e9) == 107
    draft = load(tmp_path).draft_head("mtp").build(Phase.decode(1, 1))
    assert draft.params() == mtp + 2 * VOCAB * D  # the embedding and head it shares, counted as its own


def blocks(tmp_path, phase, **options):
    model = load(tmp_path).build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_every_eighth_layer_is_mla(tmp_path):
    counts = {n: c for n, (c, _) in blocks(tmp_path, Phase.decode(1, 10)).items()}
    assert counts == {"dense_lightning_layer": 1, "moe_lightning_layer": 27, "moe_mla_layer": 4, "embed_head": 1}


def test_an_mla_layer_by_hand(tmp_path):
    t = 512
    _, g = blocks(tmp_path, Phase.prefill(1, t))["moe_mla_layer"]
    flops = {n: g.ops[n].flops for n in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")}
    assert flops == {"q_a_proj": 2 * t * D * QR, "q_b_proj": 2 * t * QR * H * (NOPE + ROPE),
                     "kv_a_proj_with_mqa": 2 * t * D * (KVR + ROPE), "kv_b_proj": 2 * t * KVR * H * (NOPE + V),
                     "o_proj": 2 * t * H * V * D}
    assert not [n for n in g.ops if n in ("q_norm", "k_norm", "query_layernorm")]  # no per-head norms on MLA
    assert kv_cache_bytes(g) == t * (KVR + ROPE) * 2  # the latent and the rope key, bf16


def test_the_caches_a_sequence_holds(tmp_path):
    b = blocks(tmp_path, Phase.decode(2, 999))
    assert kv_cache_bytes(b["moe_mla_layer"][1]) == 2 * 1000 * (KVR + ROPE) * 2
    # a lightning layer's state: 32 heads x 128 x 128, whatever the context
    assert kv_cache_bytes(b["moe_lightning_layer"][1]) == 2 * H * HD * HD * 2


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_tp_splits_the_heads_of_both_mixers(tmp_path, tp):
    b = blocks(tmp_path, Phase.decode(1, 10), tp=tp)
    assert b["moe_lightning_layer"][1].tensors["attention.g_norm.weight"].shape == (P // tp,)
    assert b["moe_mla_layer"][1].ops["o_proj"].flops == 2 * (H // tp) * V * D


def test_a_tp_that_splits_a_norm_group_is_refused(tmp_path):
    with pytest.raises(OpgraphError, match="group_norm_size"):
        load(tmp_path).build(Phase.decode(1, 10), BuildOptions(tp=8))


def test_every_field_is_read_and_the_head_and_mtp_noted(tmp_path):
    notes = load(tmp_path).notes
    assert not [n for n in notes if "not read" in n]
    assert any("multi-token-prediction" in n for n in notes) and any("SGLang holds it in fp32" in n for n in notes)
    assert any("num_kv_heads_for_linear_attn (8)" in n for n in load(tmp_path, num_kv_heads_for_linear_attn=8).notes)


@pytest.mark.parametrize("change, field", [
    ({"architectures": ["BailingMoeV3ForCausalLM"]}, "architectures"),
    ({"short_conv_kernel_size": 4}, "short_conv_kernel_size"),
    ({"use_qkv_bias": True}, "use_qkv_bias"),
    ({"use_bias": True}, "use_bias"),
    ({"layer_group_size": 6}, "layer_group_size"),
    ({"layer_group_size": [1] * 7 + [0]}, "layer_group_size"),
    ({"qk_head_dim": 200}, "qk_head_dim"),
    ({"topk_method": "greedy"}, "topk_method"),
    ({"scoring_func": "softmax"}, "scoring_func"),
    ({"head_dim": 96}, "head_dim"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, **change)
