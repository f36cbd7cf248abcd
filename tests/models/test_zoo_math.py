"""The zoo's layers against hand formulas: MoE top-k FLOPs and the experts a step reads, MLA in both forms,
sliding-window keys and cache, biases, learned positions and head_dim independent of d_model. Every
expected value is derived here from the config dimensions, never taken from the program's output."""

import math
from fractions import Fraction

import pytest

from opgraph import hardware
from opgraph import models
from opgraph.models import BuildOptions, pieces
from opgraph import FP32, OpgraphError, Phase, Precision, analyze, strategy

H100 = hardware.load("h100-sxm")


def ops_of(cfg, phase, block, options=BuildOptions()):
    model = cfg.build(phase, options)
    [b] = [b for b in model.blocks if b.name == block]
    return b.graph.ops


def flops(cfg, phase, block, options=BuildOptions()):
    return {name: op.flops for name, op in ops_of(cfg, phase, block, options).items()}


def block_cost(cfg, phase, block, options=BuildOptions(), plan="fused"):
    res = analyze(cfg.build(phase, options), strategy(plan), H100)
    [b] = [b for b in res.blocks if b.name == block]
    return b


# -- mixture of experts ----------------------------------------------------------------------------------

def exact_expected(e, k, t):
    """E * (1 - (1 - k/E)^T) as an exact fraction, rounded up to whole experts."""
    return math.ceil(e * (1 - (1 - Fraction(k, e)) ** t))


@pytest.mark.parametrize("e, k", [(8, 2), (64, 6), (160, 6), (256, 8), (4, 4)])
@pytest.mark.parametrize("t", [1, 2, 3, 7, 32, 100, 1000, 65536])
def test_expected_distinct_experts(e, k, t):
    # One token touches exactly k experts; many tokens touch them all; in between the uniform-routing
    # expectation, rounded up (exact arithmetic in the test, so 6/160 cannot round either way).
    assert pieces.expected_experts(e, k, t) == (exact_expected(e, k, t) if t < 5000 else e)
    if t == 1:
        assert pieces.expected_experts(e, k, t) == k


MIXTRAL = models.get("mixtral-8x7b")


@pytest.mark.parametrize("phase", [Phase.prefill(2, 8), Phase.decode(4, 100)], ids=lambda p: p.name)
def test_mixtral_layer_flops_count_top_k_experts_per_token(phase):
    d, ffn, e, k = 4096, 14336, 8, 2
    t = phase.tokens
    f = flops(MIXTRAL, phase, "layer")
    assert f["router"] == 2 * t * e * d  # a matmul to 8 logits per token
    for name in ("experts.gate_proj", "experts.up_proj", "experts.down_proj"):
        assert f[name] == 2 * t * k * ffn * d  # k experts per token, not 8
    assert f["combine"] == 2 * t * k * d
    assert ops_of(MIXTRAL, phase, "layer")["router"].kind == "matmul"


@pytest.mark.parametrize("batch", [1, 2, 4, 64])
def test_moe_weight_bytes_read_follow_the_expected_experts(batch):
    d, ffn, e, k = 4096, 14336, 8, 2
    layer = block_cost(MIXTRAL, Phase.decode(batch, 64), "layer")
    by_op = {o.name: o.cost.traffic.weight_bytes for o in layer.ops}
    touched = exact_expected(e, k, batch)
    assert by_op["experts.gate_proj"] + by_op["experts.up_proj"] + by_op["experts.down_proj"] == 3 * touched * d * ffn * 2


def test_experts_touched_can_be_overridden():
    d, ffn = 4096, 14336
    phase = Phase.decode(32, 64)
    layer = block_cost(MIXTRAL, phase, "layer", BuildOptions(experts_touched=5))
    assert sum(o.cost.traffic.weight_bytes for o in layer.ops if o.name.startswith("experts.")) == 3 * 5 * d * ffn * 2
    assert "--experts-touched 5" in " ".join(MIXTRAL.build(phase, BuildOptions(experts_touched=5)).notes)
    with pytest.raises(OpgraphError, match="--experts-touched must be an integer from top_k \\(2\\)"):
        MIXTRAL.build(phase, BuildOptions(experts_touched=9))
    with pytest.raises(OpgraphError, match="--experts-touched must be an integer from top_k \\(2\\)"):
        MIXTRAL.build(phase, BuildOptions(experts_touched=1))
    # One token picks exactly 2 experts, whatever the override says: the figure is capped at tokens * k.
    one = block_cost(MIXTRAL, Phase.decode(1, 64), "layer", BuildOptions(experts_touched=3))
    assert sum(o.cost.traffic.weight_bytes for o in one.ops if o.name.startswith("experts.")) == 3 * 2 * d * ffn * 2


def test_moe_note_states_the_assumption_with_numbers():
    notes = " ".join(MIXTRAL.build(Phase.decode(2, 64)).notes)
    assert "2 of 8 routed experts" in notes and "8*(1-(1-2/8)^2) = 3.50" in notes and "weights of 4 routed" in notes


V2 = models.get("deepseek-v2-lite")
V3 = models.get("deepseek-v3")


def test_deepseek_moe_layer_counts_routed_and_shared_experts():
    d, dm, e, k, shared = 2048, 1408, 64, 6, 2
    phase = Phase.decode(3, 50)
    t = phase.tokens
    f = flops(V2, phase, "moe_layer")
    routed = sum(f[f"experts.{m}"] for m in ("gate_proj", "up_proj", "down_proj"))
    assert routed == 3 * 2 * t * k * dm * d
    assert sum(f[f"shared.{m}"] for m in ("gate_proj", "up_proj", "down_proj")) == 3 * 2 * t * shared * dm * d
    assert f["router"] == 2 * t * e * d
    dense = flops(V2, phase, "dense_layer")
    assert dense["gate_proj"] == 2 * t * 10944 * d  # the first_k_dense_replace layer: intermediate_size


def test_deepseek_v3_router_has_the_score_correction_bias():
    d, e = 7168, 256
    t = 4
    f = flops(V3, Phase.decode(t, 10), "moe_layer")
    assert f["router"] == 2 * t * e * d + t * e  # the bias add


# -- multi-head latent attention -------------------------------------------------------------------------

# DeepSeek-V3's MLA, from its config.json.
H, D, QR, R, NOPE, ROPE, V = 128, 7168, 1536, 512, 128, 64, 128


def test_mla_prefill_is_decompressed():
    b, s = 2, 16
    t = b * s
    f = flops(V3, Phase.prefill(b, s), "moe_layer")
    assert f["q_a_proj"] == 2 * t * QR * D
    assert f["q_b_proj"] == 2 * t * H * (NOPE + ROPE) * QR
    assert f["kv_a_proj_with_mqa"] == 2 * t * (R + ROPE) * D
    assert f["kv_b_proj"] == 2 * t * H * (NOPE + V) * R  # the new tokens' latents, decompressed
    assert f["qk"] == 2 * b * H * s * s * (NOPE + ROPE)
    assert f["av"] == 2 * b * H * s * s * V
    assert f["o_proj"] == 2 * t * D * H * V
    assert "q_absorb" not in f and "v_absorb" not in f


@pytest.mark.parametrize("ctx", [1, 100, 4096])
def test_mla_decode_is_weight_absorbed_and_never_decompresses_the_cache(ctx):
    b = 3
    phase = Phase.decode(b, ctx)
    ops = ops_of(V3, phase, "moe_layer")
    f = {n: op.flops for n, op in ops.items()}
    assert f["q_absorb"] == 2 * b * H * NOPE * R
    assert f["qk"] == 2 * b * H * (ctx + 1) * (R + ROPE)  # MQA-style over the 576-wide latent+rope entries
    assert f["av"] == 2 * b * H * (ctx + 1) * R
    assert f["v_absorb"] == 2 * b * H * R * V
    assert "kv_b_proj" not in f
    # No op produces anything as long as the cache: nothing is decompressed per cached position.
    for op in ops.values():
        for out in op.outputs:
            assert ctx + 1 not in out.shape[:-1] or op.name == "qk" or op.name == "softmax"
    # The cache holds the latent + rope key per token per layer: under `fused` QK^T reads the ctx cached
    # entries (bf16) while the new one is made in the same kernel, PV reads the same tensors in that kernel
    # (nothing more), and the new entry is written once - as Llama's fused decode does.
    kv = {o.name: o.cost.traffic for o in block_cost(V3, phase, "moe_layer").ops}
    assert kv["qk"].kv_cache_bytes == b * ctx * (R + ROPE) * 2
    assert kv["av"].kv_cache_bytes == 0
    assert kv["cache_entry"].bytes_written == b * (R + ROPE) * 2
    # The absorbed products read kv_b_proj's K rows and V rows: the whole matrix, once.
    weights = {o.name: o.cost.traffic.weight_bytes for o in block_cost(V3, phase, "moe_layer", plan="unfused").ops}
    # fp8 weights: 1 byte, and one fp32 scale per 128 x 128 block (DeepSeek-V3's weight_scale_inv)
    assert weights["q_absorb"] == H * NOPE * R + (H * NOPE // 128) * (R // 128) * 4
    assert weights["v_absorb"] == H * V * R + (H * V // 128) * (R // 128) * 4


def test_mla_notes_say_which_form_each_phase_uses():
    pre = " ".join(V2.build(Phase.prefill(1, 8)).notes)
    dec = " ".join(V2.build(Phase.decode(1, 8)).notes)
    assert "prefill: MLA decompressed" in pre and "weight-absorbed" not in pre
    assert "decode: MLA weight-absorbed" in dec and "never decompressed" in dec


def test_mla_without_q_lora_uses_q_proj():
    f = flops(V2, Phase.prefill(1, 4), "dense_layer")
    assert f["q_proj"] == 2 * 4 * 16 * (128 + 64) * 2048
    assert "q_a_proj" not in f


def test_causal_skip_reaches_mla_and_gqa():
    b, s = 1, 32
    causal = BuildOptions(causal_skip=True)
    pairs = s * (s + 1) // 2
    assert flops(V2, Phase.prefill(b, s), "dense_layer", causal)["qk"] == 2 * b * 16 * pairs * 192
    assert flops(models.get("gemma-7b"), Phase.prefill(b, s), "layer", causal)["av"] == 2 * b * 16 * pairs * 256


# -- sliding window --------------------------------------------------------------------------------------

MISTRAL = models.get("mistral-7b")
W, KV_WIDTH = 4096, 8 * 128


@pytest.mark.parametrize("ctx", [10, 4095, 4096, 10000])
def test_sliding_window_decode_keys_and_cache(ctx):
    b = 2
    keys = min(ctx + 1, W)
    phase = Phase.decode(b, ctx)
    assert flops(MISTRAL, phase, "layer")["qk"] == 2 * b * 32 * keys * 128
    # The cache read holds the window's other keys; with the new entry it never exceeds the window.
    kv = block_cost(MISTRAL, phase, "layer").totals.traffic.kv_cache_bytes
    assert kv == 2 * b * (keys - 1) * KV_WIDTH * 2 + 2 * b * KV_WIDTH * 2
    assert keys - 1 + 1 <= W
    assert f"attends to min(context+1, 4096) = {keys} keys" in " ".join(MISTRAL.build(phase).notes)


def test_sliding_window_prefill_with_causal_skip_counts_the_window():
    s, b = 6000, 1
    pairs = sum(min(p + 1, W) for p in range(s))  # query p sees min(p+1, W) keys
    f = flops(MISTRAL, Phase.prefill(b, s), "layer", BuildOptions(causal_skip=True))
    assert f["qk"] == 2 * b * 32 * pairs * 128
    # Without causal skipping the full score matrix is counted, as everywhere.
    assert flops(MISTRAL, Phase.prefill(b, s), "layer")["qk"] == 2 * b * 32 * s * s * 128


# -- dense variants --------------------------------------------------------------------------------------

def test_gemma_head_dim_is_independent_of_d_model():
    t = 8
    f = flops(models.get("gemma-7b"), Phase.prefill(1, t), "layer")
    assert f["q_proj"] == 2 * t * (16 * 256) * 3072  # 4096 query features from d_model 3072
    assert f["o_proj"] == 2 * t * 3072 * (16 * 256)
    assert ops_of(models.get("gemma-7b"), Phase.prefill(1, t), "layer")["act"].fn == "gelu"  # GeGLU


def test_qwen2_has_qkv_biases_only():
    d, t, kv = 3584, 4, 4 * 128
    f = flops(models.get("qwen2-7b"), Phase.decode(t, 10), "layer")
    assert f["q_proj"] == 2 * t * d * d + t * d
    assert f["k_proj"] == 2 * t * kv * d + t * kv
    assert f["o_proj"] == 2 * t * d * d


def test_gpt2_layer_and_learned_positions():
    d, t, b, s = 768, 16, 2, 8
    cfg = models.get("gpt2")
    f = flops(cfg, Phase.prefill(b, s), "layer")
    assert f["q_proj"] == 2 * t * d * d + t * d  # c_attn's query third, with its bias
    assert f["up_proj"] == 2 * t * 4 * d * d + t * 4 * d
    assert f["down_proj"] == 2 * t * d * 4 * d + t * d
    assert f["input_layernorm"] == 7 * t * d + 4 * t  # LayerNorm with a bias
    assert "rope_q" not in f
    head = block_cost(cfg, Phase.prefill(b, s), "embed_head", plan="unfused")
    pos = next(o for o in head.ops if o.name == "position_embedding")
    assert pos.cost.traffic.weight_bytes == s * d * 2  # every sequence reads the same s position rows
    assert "exceed the model's 1024 learned positions" in " ".join(cfg.build(Phase.decode(1, 1024)).notes)


def test_builders_honour_precision_options():
    phase = Phase.decode(1, 16)
    for name in ("deepseek-v2-lite", "gpt2", "mixtral-8x7b"):
        cfg = models.get(name)
        fp32 = cfg.build(phase, BuildOptions(Precision.uniform(FP32)))
        assert fp32.weight_bytes() == 4 * cfg.build(phase).params()


def test_deepseek_v3_weights_are_fp8_as_its_config_declares():
    """fp8 matrices with one fp32 scale per 128 x 128 block (the checkpoint's weight_scale_inv, quantization_config
    weight_block_size); norm scales, biases, the routers (mlp.gate) and the embedding and output head in bf16, as the
    DeepSeek-V3 technical report (section 3.3.1) keeps them: embed_tokens and lm_head are each 129,280 x 7,168."""
    import math
    phase = Phase.decode(1, 16)
    model = V3.build(phase)
    expected = 0
    for b in model.blocks:
        for t in b.graph.weights():
            *stack, n, k = (1, *t.shape) if len(t.shape) == 1 else t.shape
            kept = len(t.shape) == 1 or "embed_tokens" in t.name or "lm_head" in t.name or t.name.endswith("gate.weight")
            scales = math.prod(stack) * -(-n // 128) * -(-k // 128) * 4
            expected += b.count * (t.numel * 2 if kept else t.numel + scales)
    assert model.weight_bytes() == expected
    assert "weights stored as fp8" in " ".join(model.notes)


def test_quantized_weights_keep_the_tables_at_the_activation_dtype():
    """GPTQ/AWQ int4 checkpoints keep embed_tokens and lm_head in 16 bits: Llama-3-8B's two 128256 x 4096 tables
    at 2 bytes, every other matrix at int4 with one fp16 scale per 128 elements of a row."""
    from opgraph.core.model import BuildOptions
    from opgraph.core.tensor import BF16, INT4, Precision
    cfg = models.get("llama-3-8b")
    p = Precision(weight=INT4.grouped(128), act=BF16, kv=BF16)
    m = cfg.build(Phase.decode(1, 1), BuildOptions(p))
    d, kv, ffn, layers, vocab = 4096, 1024, 14336, 32, 128256

    def int4(rows, cols):  # packed values plus one 2-byte scale per 128-element group of each row
        return rows * cols // 2 + rows * (cols // 128) * 2

    per_layer = int4(d, d) * 2 + int4(kv, d) * 2 + int4(ffn, d) * 2 + int4(d, ffn) + 2 * d * 2
    assert m.weight_bytes() == layers * per_layer + 2 * vocab * d * 2 + d * 2
    assert any("embedding table and lm_head stored as bf16" in n for n in m.notes)
    both = cfg.build(Phase.decode(1, 1), BuildOptions(Precision(INT4.grouped(128), BF16, BF16, tables=INT4)))
    assert both.weight_bytes() < m.weight_bytes()


def test_layer_kinds_are_counted_not_enumerated():
    """The stack's arithmetic count equals walking every layer's own rule (written out here), on random MoE and
    window layouts, over the whole model and over random pipeline ranges; a billion layers cost nothing."""
    import random

    from opgraph.models import DecoderConfig, MoE
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(1, 40)
        moe = MoE(experts=8, top_k=2, d_expert=16, first_dense=rng.randint(0, n), layer_freq=rng.randint(1, 5)) \
            if rng.random() < .7 else None
        window = rng.choice([None, 64])
        listed = frozenset(rng.sample(range(n), rng.randint(1, n - 1))) if window and n > 1 and rng.random() < .6 \
            else None
        cfg = DecoderConfig("t", d_model=64, n_heads=4, n_kv_heads=2, d_ffn=128, n_layers=n, vocab_size=100,
                            moe=moe, sliding_window=window, window_layers=listed)

        def rule(i):  # (is MoE, has the window), from the config's own definitions
            return (moe is not None and i >= moe.first_dense and i % moe.layer_freq == 0,
                    window is not None and (listed is None or i in listed))

        def described(layer):
            return (any(isinstance(p, MoE) for p in layer.parts()), layer.parts()[0].keys.kind == "sliding")

        start = rng.randint(0, n - 1)
        stop = rng.randint(start + 1, n)
        for lo, hi in ((0, n), (start, stop)):
            walked: dict = {}
            for i in range(lo, hi):
                walked[rule(i)] = walked.get(rule(i), 0) + 1
                assert described(cfg.layers.at(i)) == rule(i)
            counted = {described(k): c for k, c in cfg.layers.counts(lo, hi).items()}
            assert counted == walked
    huge = DecoderConfig("t", d_model=64, n_heads=4, n_kv_heads=2, d_ffn=128, n_layers=10**9, vocab_size=100,
                         moe=MoE(experts=8, top_k=2, d_expert=16, first_dense=3, layer_freq=2))
    assert sorted(huge.layer_kinds().values()) == [499_999_998, 500_000_002]  # MoE on 4, 6, ..., dense 0..3 + odds
