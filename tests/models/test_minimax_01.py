"""MiniMax-M1 and MiniMax-Text-01 (model_type minimax_m1, minimax_text_01, and transformers' minimax). Expected
values by hand from the config (models/configs/minimax-m1.json), the checkpoint's tensor shapes (its
modeling_minimax_m1.py and model.safetensors.index.json) and the kernels vLLM runs
(vllm/model_executor/layers/lightning_attn.py: _fwd_diag_kernel, _fwd_kv_parallel, _fwd_kv_reduce,
_fwd_none_diag_kernel and _linear_attn_decode_kernel; vllm/model_executor/models/minimax_text_01.py): 80 layers,
every 8th (7, 15, ..., 79) softmax attention (GQA 64/8 of 128, rope on 64 dims), the other 70 lightning attention
(64 heads of 128); a MoE of 32 SwiGLU experts of 9,216, top-2, in every layer; lm_head in fp32."""

import json

import pytest

from opgraph import FP32, OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core import ops
from opgraph.models import BuildOptions, presets

CONFIG = json.loads((presets.CONFIG_DIR / "minimax-m1.json").read_text())
D, VOCAB, H, KV, HD, E, TOP, DE = 6144, 200064, 64, 8, 128, 32, 2, 9216
P = H * HD  # 8,192: the lightning layer's and the attention's inner width
N_LIGHT, N_SOFT = 70, 10


def test_parameters_and_bytes_by_hand():
    lightning = 3 * P * D + P * D + D * P + P  # qkv_proj, output_gate, out_proj, norm
    softmax = P * D + 2 * KV * HD * D + D * P  # q, k, v, o
    moe = E * 3 * D * DE + E * D  # experts w1, w3, w2; the router
    total = 2 * VOCAB * D + D + N_LIGHT * lightning + N_SOFT * softmax + 80 * (moe + 2 * D)
    assert total == 456_089_655_296
    # The index's total_size, 912,210,767,872 bytes, is all of it in bf16 with the 80 routers in fp32
    assert 2 * total + 80 * E * D * 2 == 912_210_767_872
    model = models.get("minimax-m1").build(Phase.decode(1, 1))
    assert model.params() == total
    # as vLLM holds it: the checkpoint's bytes, and lm_head widened to fp32 (lm_head.float())
    assert model.weight_bytes() == 912_210_767_872 + 2 * VOCAB * D


def blocks(phase, name="minimax-m1", **options):
    model = models.get(name).build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_the_layers_are_placed_as_attn_type_list_says():
    assert CONFIG["attn_type_list"] == [0] * 7 + [1] + [0] * 7 + [1] + [0] * 7 + [1] + [0] * 7 + [1] + [0] * 7 + [1] \
        + [0] * 7 + [1] + [0] * 7 + [1] + [0] * 7 + [1] + [0] * 7 + [1] + [0] * 7 + [1]
    counts = {n: c for n, (c, _) in blocks(Phase.decode(1, 10)).items()}
    assert counts == {"lightning_layer": N_LIGHT, "attention_layer": N_SOFT, "embed_head": 1}


def kernels(n, d=HD):
    """vLLM's prefill kernels for one head over n positions, tile by tile (blocks of 256; a partial last block runs
    the diagonal and inter-block kernels' full tiles, and the KV kernel's tiles of 64 that hold rows)."""
    nb, full = -(-n // 256), n // 256
    kv_tiles = 4 * full + -(-(n % 256) // 64)
    diag = nb * 36 * (2 * 32 * 32 * d + 2 * 32 * 32 * d)  # 36 tile pairs i >= j of 8 tiles of 32: (q k^T) v
    kv = kv_tiles * 2 * 64 * d * d  # (k * decay)^T v
    inter = nb * 4 * 2 * 64 * d * d  # q S_prev, 4 tiles of 64 a block
    vector = (2 * 256  # the k_decay table: exp(-s (256 - j)), 2 FLOPs a position
              + nb * 36 * 4 * 32 * 32  # the decay's difference, times s, negated; qk times it
              + kv_tiles * 64 * d  # k times its decay
              + nb * (2 * d * d + 2)  # S = exp(-s b) S + KV_b
              + nb * 4 * (2 * 64 * d + 2 * 64))  # (q S) times q_decay, plus the diagonal's; q_decay's exponent
    exps = 256 + nb * 36 * 32 * 32 + nb + nb * 4 * 64
    return diag + kv + inter, vector, exps


def test_a_full_block_is_the_kernels_count():
    # 18,874,368 + 8,388,608 + 8,388,608 matrix FLOPs a head and block of 256 (the spec's reading of the kernels)
    assert kernels(256)[0] == 35_651_584
    assert ops.lightning_rows(256, HD, HD) == kernels(256)
    assert ops.lightning_rows(300, HD, HD)[0] == 2 * 36 * 2 * 1024 * 256 + (4 + 1 + 8) * 2 * 64 * HD * HD


@pytest.mark.parametrize("s", [1, 256, 300, 4096])
def test_prefill_runs_the_block_kernels(s):
    _, g = blocks(Phase.prefill(2, s))["lightning_layer"]
    matrix, vector, exps = kernels(s)
    op = g.ops["lightning"]
    assert op.kind == ops.MATMUL
    assert op.flops == 2 * H * (matrix + vector)
    assert op.transcendentals == 2 * H * exps


def test_decode_runs_the_recurrence():
    _, g = blocks(Phase.decode(3, 500))["lightning_layer"]
    # per head: k^T v, exp(-s) S, their sum, q * S (d*d each) and its column sums ((d - 1) d); exp(-s) negated by
    # each of the 4 programs of 32 value columns
    assert g.ops["lightning"].flops == 3 * H * (5 * HD * HD - HD + 4)
    assert g.ops["lightning"].transcendentals == 3 * H * 4
    # the cache a sequence holds: the state, 64 x 128 x 128 at the model's dtype (vLLM's mamba_cache_dtype auto)
    assert kv_cache_bytes(g) == 3 * H * HD * HD * 2
    _, att = blocks(Phase.decode(3, 500))["attention_layer"]
    assert kv_cache_bytes(att) == 3 * 501 * 2 * KV * HD * 2


def test_a_lightning_layer_token_by_hand():
    _, g = blocks(Phase.decode(1, 10))["lightning_layer"]
    gemms = sum(g.ops[n].flops for n in ("qkv_proj", "output_gate", "out_proj"))
    assert gemms == 2 * D * (3 * P + P) + 2 * P * D == 503_316_480
    assert g.ops["qkv_act"].outputs[0].dtype == FP32  # SiLU in fp32, as vLLM runs everything to the gate
    assert g.ops["gate_mul"].outputs[0].dtype != FP32  # back to the model's dtype before out_proj
    # each sublayer: alpha x its normed input, beta x its output, and their sum: 3 FLOPs an element
    residual = [n for n in g.ops if n.endswith(("_residual_scale", "_branch_scale", "_residual"))]
    assert sorted(residual) == sorted(f"{k}_{w}" for k in ("attn", "mlp")
                                      for w in ("residual_scale", "branch_scale", "residual"))
    assert sum(g.ops[n].flops for n in residual) == 2 * 3 * D


def test_the_head_runs_in_fp32():
    _, g = blocks(Phase.decode(1, 10))["embed_head"]
    w = g.tensors["lm_head.weight"]
    assert w.dtype == FP32 and w.shape == (VOCAB, D)


def test_tensor_parallel_splits_the_heads_and_reduces_the_norm():
    _, g = blocks(Phase.decode(4, 10), tp=8)["lightning_layer"]
    assert g.tensors["self_attn.qkv_proj.weight"].shape == (3 * P // 8, D)
    assert g.tensors["self_attn.norm.weight"].shape == (P // 8,)
    reduces = {n: g.ops[n].inputs[0].shape for n in g.ops if g.ops[n].fn == "all_reduce"}
    # the norm's sums of squares (one fp32 value a token), the mixer's output and the experts'
    assert reduces == {"norm_allreduce": (4, 1, 1), "out_allreduce": (4, 1, D), "moe_allreduce": (4, 1, D)}
    assert kv_cache_bytes(g) == 4 * (H // 8) * HD * HD * 2


def write(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_text_01_and_the_transformers_conversion_load_the_same_model(tmp_path):
    text01 = {**CONFIG, "model_type": "minimax_text_01", "architectures": ["MiniMaxText01ForCausalLM"]}
    names = {"layernorm_full_attention": "full_attn", "layernorm_linear_attention": "linear_attn",
             "layernorm_mlp": "mlp"}
    converted = {k: v for k, v in CONFIG.items() if k not in ("attn_type_list", "postnorm")
                 and not k.startswith("layernorm_")}
    converted.update({"model_type": "minimax", "architectures": ["MiniMaxForCausalLM"], "block_size": 256,
                      "layer_types": ["full_attention" if t else "linear_attention" for t in CONFIG["attn_type_list"]]})
    for old, new in names.items():
        converted[f"{new}_alpha_factor"] = CONFIG[f"{old}_alpha"]
        converted[f"{new}_beta_factor"] = CONFIG[f"{old}_beta"]
    def figures(model):
        flops = sum(b.count * op.flops for b in model.blocks for op in b.graph.ops.values())
        return model.params(), model.weight_bytes(), flops

    m1 = models.get("minimax-m1").build(Phase.decode(2, 100))
    for data in (text01, converted):
        cfg = models.get(write(tmp_path, data))
        assert figures(cfg.build(Phase.decode(2, 100))) == figures(m1)
        assert not [n for n in cfg.notes if "not read" in n]  # every residual constant read under its own name
    assert not [n for n in models.get("minimax-m1").notes if "not read" in n]


@pytest.mark.parametrize("change, field", [
    ({"shared_intermediate_size": 1024}, "shared_intermediate_size"),
    ({"attn_type_list": [0, 2] * 40}, "attn_type_list"),
    ({"attn_type_list": [0, 1]}, "attn_type_list"),
    ({"sliding_window": 4096}, "sliding_window"),
    ({"head_dim": 96}, "head_dim"),
    ({"postnorm": "yes"}, "postnorm"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        models.get(write(tmp_path, {**CONFIG, **change}))


def test_the_conversion_needs_its_layer_types(tmp_path):
    converted = {**CONFIG, "model_type": "minimax"}
    del converted["attn_type_list"]
    with pytest.raises(OpgraphError, match="'layer_types' is missing"):
        models.get(write(tmp_path, converted))


def test_minimax_m2_points_lightning_layers_here(tmp_path):
    m2 = json.loads((presets.CONFIG_DIR / "minimax-m2.5.json").read_text())
    n = m2["num_hidden_layers"]
    with pytest.raises(OpgraphError, match="minimax_m1"):
        models.get(write(tmp_path, {**m2, "attn_type_list": [0] * n}))
