"""MiMo-V2-Flash (model_type mimo_v2_flash): expected values by hand from the published shapes (SOURCES.json) and the
reference code (transformers' modeling_mimo_v2_flash.py, vLLM's and SGLang's mimo_v2_flash.py): 48 layers, full
attention at layer 0 and every sixth (9), sliding-window attention of 128 keys elsewhere (39); q and k heads of 192,
v heads of 128; 4 KV heads in full layers, 8 in sliding ones; a sink per head in sliding layers; v times 0.707 before
attention; layer 0 a dense SwiGLU MLP of 16,384, the other 47 MoE of 256 experts of 2,048, top 8, no shared
expert, the router in fp32."""

import json

import pytest

from opgraph import FP32, OpgraphError, Phase, models
from opgraph.models import BuildOptions, hf_config, presets

D, VOCAB, HEADS, QK, V = 4096, 152576, 64, 192, 128
FULL_KV, SWA_KV, WINDOW = 4, 8, 128
N_FULL, N_SWA, N_MOE = 9, 39, 47
EXPERTS, TOP, D_EXPERT, D_FFN = 256, 8, 2048, 16384
CONFIG = json.loads((presets.CONFIG_DIR / "mimo-v2-flash.json").read_text())


def test_parameters_by_hand():
    full = D * HEADS * QK + D * FULL_KV * QK + D * FULL_KV * V + HEADS * V * D
    swa = D * HEADS * QK + D * SWA_KV * QK + D * SWA_KV * V + HEADS * V * D + HEADS  # + the sinks
    experts = EXPERTS * 3 * D * D_EXPERT
    moe = experts + EXPERTS * D + EXPERTS  # + the router and its selection bias
    total = 2 * VOCAB * D + N_FULL * full + N_SWA * swa + 3 * D * D_FFN + N_MOE * moe + 48 * 2 * D + D
    assert total == 308_778_780_864  # "309B total parameters" (the README)
    cfg = models.get("mimo-v2-flash")
    assert cfg.build(Phase.decode(1, 1)).params() == total
    active = total - N_MOE * experts * (EXPERTS - TOP) // EXPERTS
    assert active == 15_445_936_320  # "15B active parameters"


def blocks(phase, **options):
    model = models.get("mimo-v2-flash").build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_the_layers_are_placed_as_the_pattern_says():
    counts = {name: count for name, (count, _) in blocks(Phase.decode(1, 10)).items()}
    assert counts == {"dense_full_layer": 1, "moe_full_layer": N_FULL - 1, "moe_sliding_layer": N_SWA,
                      "embed_head": 1}


def test_keys_and_values_take_their_own_widths():
    t, past = 2, 1000
    g = blocks(Phase.decode(t, past))
    _, full = g["moe_full_layer"]
    _, swa = g["moe_sliding_layer"]
    ops = full.ops
    assert ops["qk"].flops == 2 * t * HEADS * (past + 1) * QK
    assert ops["av"].flops == 2 * t * HEADS * (past + 1) * V
    assert full.tensors["v_cache"].shape == (t, past, FULL_KV * V)
    assert full.tensors["k_cache"].shape == (t, past, FULL_KV * QK)
    # the sliding layer reads the 127 cached keys its window still holds, and has a sink per head
    assert swa.ops["av"].flops == 2 * t * HEADS * WINDOW * V
    assert swa.tensors["v_cache"].shape == (t, WINDOW - 1, SWA_KV * V)
    assert swa.tensors["self_attn.sinks"].shape == (HEADS,)
    assert "self_attn.sinks" not in full.tensors
    # o_proj takes 64 value heads of 128
    assert ops["o_proj"].flops == 2 * t * HEADS * V * D


def test_v_is_scaled_before_attention_and_cached_scaled():
    _, full = blocks(Phase.decode(2, 10))["moe_full_layer"]
    scale = full.ops["v_scale"]
    assert scale.flops == 2 * FULL_KV * V and scale.outputs[0].role.value == "kv_cache"


def test_rope_turns_64_dims_of_each_head():
    _, full = blocks(Phase.prefill(1, 4))["moe_full_layer"]
    assert full.ops["rope_q"].flops == full.ops["rope_k"].flops * HEADS // FULL_KV
    assert int(QK * 0.334) == 64


def test_the_router_is_kept_in_fp32():
    _, moe = blocks(Phase.decode(1, 10))["moe_sliding_layer"]
    assert moe.tensors["mlp.gate.weight"].dtype == FP32


def test_tp8_replicates_the_full_layers_kv_heads():
    """vLLM's QKVParallelLinear: 4 KV heads over 8 GPUs, each head on two; the sliding layers' 8 one each."""
    g = blocks(Phase.decode(1, 100), tp=8)
    _, full = g["moe_full_layer"]
    _, swa = g["moe_sliding_layer"]
    assert full.tensors["v_cache"].shape[-1] == V
    assert swa.tensors["v_cache"].shape[-1] == V
    assert swa.tensors["self_attn.sinks"].shape == (HEADS // 8,)


@pytest.mark.parametrize("change, field", [
    ({"hybrid_layer_pattern": [0, 1]}, "hybrid_layer_pattern"),
    ({"moe_layer_freq": 1}, "moe_layer_freq"),
    ({"sliding_window_size": 64}, "sliding_window"),
    ({"use_qk_norm": True}, "use_qk_norm"),
])
def test_bad_fields_are_refused_by_name(change, field):
    with pytest.raises(OpgraphError, match=field):
        hf_config.from_dict({**CONFIG, **change}, name="mimo", source="test").build(Phase.decode(1, 1))
