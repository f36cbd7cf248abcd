"""Kimi Linear (model_type kimi_linear). Expected values by hand from the checkpoint's tensor list (SOURCES.json) and
the kernels vLLM runs (vllm/model_executor/layers/kda.py; fla-org/flash-linear-attention's chunk_kda and
fused_recurrent_kda): 27 layers, Kimi Delta Attention (32 heads of 128, short convs of 4) in all but the 7 MLA
layers 4, 8, ..., 24, 27 (1-based) which run without rope; layer 0 a dense SwiGLU, the others MoE of 256 experts,
top-8, one shared expert."""

import json

import pytest

from opgraph import FP32, OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.analysis.serve import served_state_dtype
from opgraph.models import BuildOptions, hf_config, presets

CONFIG = json.loads((presets.CONFIG_DIR / "kimi-linear-48b-a3b.json").read_text())
D, VOCAB, H, K = 2304, 163840, 32, 128
P = H * K
N_KDA, N_MLA, E, TOP, DE, DENSE = 20, 7, 256, 8, 1024, 9216


def test_parameters_and_bytes_by_hand():
    kda = 3 * P * D + 3 * P * 4 + K * D + P * K + P + H + H * D + K * D + P * K + K + D * P  # q,k,v, convs, f, dt_bias,
    # A_log, b, g, o_norm, o_proj
    mla = 32 * 192 * D + 576 * D + 512 + 512 * 32 * 256 + D * 32 * 128  # q_proj, kv_a, its norm, kv_b, o_proj
    expert = 3 * D * DE
    moe = E * expert + expert + E * D + E  # routed, shared, router, selection bias
    total = (2 * VOCAB * D + D + N_KDA * kda + N_MLA * mla + 3 * D * DENSE + 26 * moe + 27 * 2 * D)
    assert total == 49_122_681_728  # the checkpoint's 20,493 tensors
    model = models.get("kimi-linear-48b-a3b").build(Phase.decode(1, 1))
    assert model.params() == total
    fp32 = N_KDA * (P + H)  # dt_bias and A_log are fp32 in the checkpoint, all else bf16
    assert model.weight_bytes() == 2 * total + 2 * fp32


def blocks(phase, **options):
    model = models.get("kimi-linear-48b-a3b").build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_the_layers_are_placed_as_the_config_lists_them():
    counts = {n: c for n, (c, _) in blocks(Phase.decode(1, 10)).items()}
    assert counts == {"dense_kda_layer": 1, "moe_kda_layer": 19, "moe_mla_layer": 7, "embed_head": 1}


def chunk(q, c=16):
    """fla's chunk_kda, one head and one chunk of q positions (K = V), term by term as the kernels compute it."""
    m = -(-q // c)
    pairs = m * (m - 1) // 2
    cumsum = 2 * q * q * K + q * K
    off = pairs * (4 * c * c * K + 6 * c * K + c * c)
    diag = 6 * q * c * K + q * c + q * K
    solve = (q ** 3 - q) // 3
    w_u = 2 * q * q * 2 * K + q * K + 4 * q * K
    fwd_h = 4 * q * K * K + q * K + K * K
    fwd_o = 2 * q * K * K + 2 * q * q * K + 2 * q * K
    exps = pairs * 2 * c * K + q * c * K + 2 * q * K + K + q * K
    return cumsum + off + diag + solve + w_u + fwd_h + fwd_o, exps


def test_a_64_chunk_is_the_kernels_count():
    assert chunk(64) == (12_320_576, 180_352)


@pytest.mark.parametrize("s", [64, 100, 5000])
def test_prefill_runs_the_chunked_form(s):
    _, g = blocks(Phase.prefill(2, s))["moe_kda_layer"]
    full, rest = divmod(s, 64)
    flops, exps = (full * chunk(64)[i] + (chunk(rest)[i] if rest else 0) for i in (0, 1))
    norms = s * 2 * (3 * K + 2)  # q's and k's L2 norms, a square root each
    assert g.ops["delta_rule"].flops == 2 * H * (flops + norms)
    assert g.ops["delta_rule"].transcendentals == 2 * H * (exps + 2 * s)


def test_decode_runs_the_recurrence_over_an_fp32_state():
    _, g = blocks(Phase.decode(3, 500))["moe_kda_layer"]
    assert g.ops["delta_rule"].flops == 3 * H * (7 * K * K + 7 * K + 4)
    assert g.tensors["recurrent_state"].dtype == FP32
    # the cache a sequence holds: the fp32 state, and the three convs' last 3 inputs in bf16
    assert kv_cache_bytes(g) == 3 * (H * K * K * 4 + 3 * 3 * P * 2)
    assert kv_cache_bytes(g) // 3 == 2_170_880


def test_the_mla_layers_run_without_rope():
    _, g = blocks(Phase.decode(2, 500))["moe_mla_layer"]
    assert not any(op.fn == "rope" for op in g.ops.values())
    assert g.tensors["self_attn.q_proj.weight[nope]"].shape == (32 * 128, D)  # a plain q_proj, no q latent
    assert kv_cache_bytes(g) == 2 * 501 * 576 * 2  # the latent and the unrotated shared key


def test_every_engine_keeps_the_state_in_fp32():
    cfg = models.get("kimi-linear-48b-a3b")
    assert cfg.recurrent and all(served_state_dtype(e, cfg, "bf16") is None for e in ("vllm", "sglang", "trtllm"))


@pytest.mark.parametrize("change, message", [
    ({"linear_attn_config": {**CONFIG["linear_attn_config"], "kda_layers": [1, 2]}}, "kda_layers"),
    ({"linear_attn_config": {**CONFIG["linear_attn_config"], "num_heads": 0}}, "num_heads"),
    ({"moe_router_activation_func": "relu"}, "moe_router_activation_func"),
])
def test_bad_fields_are_refused_by_name(change, message):
    with pytest.raises(OpgraphError, match=message):
        hf_config.from_dict({**CONFIG, **change}, name="x", source="test")
