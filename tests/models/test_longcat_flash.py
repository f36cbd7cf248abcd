"""Meituan's LongCat-Flash (model_type longcat_flash). Expected values by hand from LongCat-Flash-Chat's config (the
preset longcat-flash's file: its fields as mlx-community/LongCat-Flash-Chat-bf16's config.json copies them; the
values agree with transformers' LongcatFlashConfig defaults) and the modules transformers' modeling_longcat_flash.py
and vLLM's longcat_flash.py build: 28 layers, each two MLA attentions (64 heads; q_lora 1536, kv_lora 512, 128 + 64 /
128), two SwiGLU MLPs of 12,288 and one MoE on the first MLP's input: 512 experts of 2,048 beside 256 identity
experts, top-12 of softmax scores over all 768, times 6; the router (768 x 6,144) and its selection bias in fp32."""

import json
from fractions import Fraction
from math import ceil

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.models import BuildOptions

CONFIG = json.loads((models.presets.CONFIG_DIR / "longcat-flash.json").read_text())  # the preset's file
D, H, V, FFN, E, Z, K, DE, L = 6144, 64, 131072, 12288, 512, 256, 12, 2048, 28
MLA = (1536 * D + 1536 + H * 192 * 1536  # q_a_proj, q_a_layernorm, q_b_proj
       + 576 * D + 512 + H * 256 * 512  # kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj
       + D * H * 128)  # o_proj
MLP = 3 * D * FFN
EXPERT = 3 * D * DE
ROUTER = (E + Z) * D + (E + Z)  # classifier and e_score_correction_bias, one row each for the zero experts too
LAYER = 2 * MLA + 2 * MLP + E * EXPERT + ROUTER + 4 * D


def load(tmp_path, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, **change}))
    return models.get(str(path))


def test_parameters_by_hand_are_the_published_560b(tmp_path):
    total = 2 * V * D + D + L * LAYER
    assert total // 10**9 == 560  # "560B total parameters" (meituan-longcat/LongCat-Flash-Chat README)
    # "18.6B ~ 31.3B (27B on average) activated": 0 to 12 real experts a token, the head counted, not the embedding
    fixed = total - V * D - L * E * EXPERT
    assert [(fixed + L * k * EXPERT) * 10 // 10**9 for k in (0, 12)] == [186, 313]
    assert round((fixed + L * 8 * EXPERT) / 1e9) == 27  # 8 real experts: 12 x 512/768 under uniform routing
    model = load(tmp_path).build(Phase.decode(1, 1))
    assert model.params() == total
    assert model.weight_bytes() == 2 * total + 2 * L * ROUTER  # the router and its bias in fp32


def layer(tmp_path, phase, **options):
    (name, (count, g)), _ = {b.name: (b.count, b.graph)
                             for b in load(tmp_path).build(phase, BuildOptions(**options)).blocks}.items()
    assert count == L
    return g


def test_a_layer_runs_two_attentions_two_mlps_and_one_moe(tmp_path):
    t = 256
    g = layer(tmp_path, Phase.prefill(1, t))
    assert g.ops["o_proj"].flops == g.ops["1.o_proj"].flops == 2 * t * H * 128 * D
    assert g.ops["down_proj"].flops == g.ops["1.down_proj"].flops == 2 * t * FFN * D
    assert g.ops["router"].outputs[0].shape[-1] == E + Z
    # the zero slots run as weight-0 rows of expert 0: 12 rows a token through the expert GEMMs
    assert g.ops["experts.down_proj"].flops == 2 * t * K * DE * D
    assert g.ops["zero_experts"].flops == g.ops["zero_add"].flops == t * D
    assert kv_cache_bytes(g) == 2 * t * 576 * 2  # two latent caches a layer, bf16


@pytest.mark.parametrize("tokens", [1, 64, 4096])
def test_decode_reads_the_experts_uniform_routing_over_768_reaches(tmp_path, tokens):
    untouched = E * (1 - Fraction(K, E + Z)) ** tokens
    g = layer(tmp_path, Phase.decode(tokens, 100))
    reads = g.ops["experts.down_proj"].reads[1]
    assert reads == (E - int(untouched) if untouched > 0 else E) * D * DE  # whole experts, in elements
    if tokens == 1:
        assert ceil(E - untouched) == 8  # 12 x 512 / 768


def test_the_mtp_layer_is_one_dense_layer(tmp_path):
    draft = load(tmp_path).draft_head("mtp").build(Phase.decode(1, 1))
    mtp = 2 * D + 2 * D * D + MLA + MLP + 2 * D + D  # enorm, hnorm, eh_proj, its MLA and MLP, their norms, the last
    assert draft.params() == mtp + 2 * V * D  # its embedding and head counted as its own


def test_expert_parallelism_is_refused_and_the_fields_are_read(tmp_path):
    with pytest.raises(OpgraphError, match="zero-computation experts"):
        load(tmp_path).build(Phase.decode(1, 10), BuildOptions(tp=8, ep=8))
    assert load(tmp_path, num_hidden_layers=56).n_layers == L
    assert not [n for n in load(tmp_path).notes if "not read" in n]


@pytest.mark.parametrize("change, field", [
    ({"num_hidden_layers": 30}, "num_hidden_layers"),
    ({"attention_method": "LSA"}, "attention_method"),
    ({"zero_expert_type": "const"}, "zero_expert_type"),
    ({"router_bias": True}, "router_bias"),
    ({"attention_bias": True}, "attention_bias"),
    ({"router_dtype": "fp8"}, "router_dtype"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, **change)
