"""Acceptance tests for the architecture zoo's presets: every preset's parameter count against the published
checkpoint total and against a hand formula for its family written out here from the config.json
dimensions; every preset reports both phases under every shipped strategy."""

import pytest

from opgraph import hardware
from opgraph import models
from opgraph import Phase, analyze, strategy

# Published totals: the parameter count of each Hugging Face checkpoint (every weight and bias of its
# safetensors, tied embeddings once). DeepSeek-V3: the 671B main model of the paper (Table 1 /
# README_WEIGHTS.md); the checkpoint's extra multi-token-prediction layer (~14B) is not part of it.
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "qwen2-7b": 7_615_616_512,
    "gemma-7b": 8_537_680_896,
    "gpt2": 124_439_808,
    "deepseek-v2-lite": 15_706_484_224,
    "deepseek-v3": 671_026_419_200,
}


def dense(d, heads, kv, hd, ffn, layers, vocab, *, tied=False, qkv_bias=False, experts=0):
    """Llama-style decoder: q, k, v, o (+ q/k/v biases) + SwiGLU/GeGLU (or `experts` of them and a router
    of experts x d) + 2 RMSNorm scales per layer; embeddings, final norm, lm_head unless tied."""
    attn = d * heads * hd + 2 * d * kv * hd + heads * hd * d + (heads * hd + 2 * kv * hd if qkv_bias else 0)
    mlp = 3 * d * ffn if not experts else experts * 3 * d * ffn + experts * d
    return vocab * d + layers * (attn + mlp + 2 * d) + d + (0 if tied else vocab * d)


def gpt2(d, layers, heads, positions, vocab):
    """c_attn (3d x d + 3d), c_proj (d x d + d), c_fc (4d x d + 4d), mlp c_proj (d x 4d + d), ln_1/ln_2
    (scale + bias) per layer; wte (tied lm_head), wpe, ln_f."""
    layer = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 4 * d
    return vocab * d + positions * d + layers * layer + 2 * d


def deepseek(d, heads, q_rank, kv_rank, nope, rope, v, layers, dense_layers, ffn, d_expert, experts, shared,
             vocab, corr_bias):
    """MLA: q (q_a_proj + q_a_layernorm + q_b_proj, or q_proj), kv_a_proj_with_mqa ((kv_rank + rope) x d),
    kv_a_layernorm, kv_b_proj (heads*(nope + v) x kv_rank), o_proj; dense SwiGLU or DeepSeekMoE (routed +
    shared experts, router experts x d, V3's e_score_correction_bias); 2 RMSNorms; untied."""
    q = q_rank * d + q_rank + heads * (nope + rope) * q_rank if q_rank else heads * (nope + rope) * d
    attn = q + (kv_rank + rope) * d + kv_rank + heads * (nope + v) * kv_rank + d * heads * v
    dense_layer = attn + 3 * d * ffn + 2 * d
    moe_layer = attn + 3 * d * d_expert * (experts + shared) + experts * d + (experts if corr_bias else 0) + 2 * d
    return 2 * vocab * d + d + dense_layers * dense_layer + (layers - dense_layers) * moe_layer


# Each from its checkpoint's config.json (hidden_size, heads, kv heads, head_dim, intermediate_size, layers, vocab).
FORMULA = {
    "llama-2-7b": dense(4096, 32, 32, 128, 11008, 32, 32000),
    "llama-3-8b": dense(4096, 32, 8, 128, 14336, 32, 128256),
    "llama-3-70b": dense(8192, 64, 8, 128, 28672, 80, 128256),
    "llama-3.1-405b": dense(16384, 128, 8, 128, 53248, 126, 128256),
    "mistral-7b": dense(4096, 32, 8, 128, 14336, 32, 32000),
    "mixtral-8x7b": dense(4096, 32, 8, 128, 14336, 32, 32000, experts=8),
    "qwen2-7b": dense(3584, 28, 4, 128, 18944, 28, 152064, qkv_bias=True),
    "gemma-7b": dense(3072, 16, 16, 256, 24576, 28, 256000, tied=True),
    "gpt2": gpt2(768, 12, 12, 1024, 50257),
    "deepseek-v2-lite": deepseek(2048, 16, None, 512, 128, 64, 128, 27, 1, 10944, 1408, 64, 2, 102400, False),
    "deepseek-v3": deepseek(7168, 128, 1536, 512, 128, 64, 128, 61, 3, 18432, 2048, 256, 1, 129280, True),
}

PHASES = [Phase.prefill(2, 8), Phase.decode(2, 16)]
H100 = hardware.load("h100-sxm")


def test_every_preset_has_a_published_figure():
    # Each preset here is checked against a published exact total and a hand formula; the presets of today's
    # models against their published figures in test_today_presets.py.
    from test_today_presets import PUBLISHED as TODAY
    assert set(PUBLISHED) == set(FORMULA) and set(models.names()) <= set(PUBLISHED) | set(TODAY)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_hand_formula_reproduces_the_published_total(name):
    # The family's formula on the config.json dimensions gives the checkpoint's count exactly.
    assert FORMULA[name] == PUBLISHED[name]


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_params_exact_in_both_phases(name, phase):
    assert models.get(name).build(phase).params() == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_cites_its_checkpoint(name):
    cfg = models.get(name)
    assert cfg.name == name
    assert cfg.source.startswith("huggingface.co/") and "config.json" in cfg.source


@pytest.mark.parametrize("plan", ["unfused", "flash", "fused"])
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_preset_reports_both_phases(name, plan):
    cfg = models.get(name)
    for phase in PHASES:
        res = analyze(cfg.build(phase), strategy(plan), H100)
        assert res.params == PUBLISHED[name]
        assert res.totals.flops > 0 and res.totals.time_s > 0
        assert [b.name for b in res.blocks][-1] == "embed_head"
        # Blocks with counts cover every layer exactly once.
        assert sum(b.count for b in res.blocks if b.name != "embed_head") == cfg.n_layers


@pytest.mark.parametrize("name, blocks", [
    ("deepseek-v3", [("dense_layer", 3), ("moe_layer", 58), ("embed_head", 1)]),
    ("deepseek-v2-lite", [("dense_layer", 1), ("moe_layer", 26), ("embed_head", 1)]),
    ("mixtral-8x7b", [("layer", 32), ("embed_head", 1)]),
    ("llama-3-8b", [("layer", 32), ("embed_head", 1)]),
])
def test_heterogeneous_models_are_blocks_with_counts(name, blocks):
    # DeepSeek's first_k_dense_replace dense layers, then MoE layers; homogeneous models keep "layer".
    model = models.get(name).build(Phase.decode(1, 8))
    assert [(b.name, b.count) for b in model.blocks] == blocks


def test_summaries_describe_the_architecture():
    v3 = models.get("deepseek-v3").summary()
    assert (v3["attention"], v3["kv_lora_rank"], v3["q_lora_rank"], v3["kv_cache_per_token"]) == ("mla", 512, 1536, 576)
    assert (v3["experts"], v3["top_k"], v3["shared_experts"], v3["dense_layers"], v3["weight_dtype"]) == (
        256, 8, 1, 3, "fp8/b128x128 (w8a8)")  # e4m3 in 128 x 128 blocks, each with its scale; fp8 GEMM inputs
    assert models.get("mistral-7b").summary()["window"] == 4096
    assert models.get("gemma-7b").summary()["head_dim"] == 256
    assert models.get("gpt2").summary()["positions"] == 1024
    assert "window" not in models.get("qwen2-7b").summary()  # use_sliding_window is false in its config
    # the multi-token-prediction layer its checkpoint ships (num_nextn_predict_layers: 1), for `serve --draft mtp`
    assert v3["mtp_layers"] == 1 and "mtp_layers" not in models.get("llama-3-8b").summary()
