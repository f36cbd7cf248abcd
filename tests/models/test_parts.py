"""Layer parts (models.parts) against hand formulas: sliding and chunked keys, attention sinks, soft-capping,
q/k norms, norm placement, the gated attention output, MoE variants; whole models from small synthetic
config.json dicts (Gemma-3, gpt-oss, Llama-4); and, under hypothesis, mixed stacks costing the sum of their
layers. Every expected value is derived here from the dimensions and the conventions of opgraph.core.ops
(matmul 2*M*N*K, softmax 5 per score, soft cap 3 per score, sink 3 per row, RMSNorm 4 per element + 3 per row,
rope 3 per rotated element, sigmoid 4, clamped SwiGLU 11), never taken from the program's output."""

from fractions import Fraction

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opgraph import BF16, GraphBuilder, Phase, analyze, hardware, strategy
from opgraph.analysis.memory import footprint_of, kv_cache_bytes
from opgraph.models import MLP, Attention, BuildOptions, DecoderConfig, Keys, MoE, Parallel, Stack, hf_config, parts

H100 = hardware.load("h100-sxm")
PLANS = ("unfused", "flash", "fused", "megakernel")

# Small shapes: d_model 64, 4 query heads sharing 2 KV heads of 16 dims, bf16 (2 bytes) everywhere.
D, H, KV, HD = 64, 4, 2, 16
BYTES = 2
FFN = 128


def graph_of(part, phase, par=Parallel.SINGLE, options=BuildOptions(), d=D):
    """One part (or layer) built alone on hidden states [batch, new_tokens, d]."""
    b = GraphBuilder(BF16, "t")
    x = b.input("x", (phase.batch, phase.new_tokens, d))
    return b.build(outputs=[part.build(b, x, phase, par, options)])


def flops(graph):
    return {name: op.flops for name, op in graph.ops.items()}


def weights(graph):
    return {t.name: t.shape for t in graph.weights()}


def decoder(layers, *, vocab=100, **kw):
    """A DecoderConfig around a Stack (or one layer, once)."""
    stack = layers if isinstance(layers, Stack) else Stack.uniform(layers, 1)
    return DecoderConfig("t", d_model=D, n_heads=H, n_kv_heads=KV, head_dim=HD, d_ffn=FFN, n_layers=len(stack),
                         vocab_size=vocab, layers=stack, **kw)


def chunk_lengths(s, c):
    """The chunks of an s-position prompt cut every c positions, the last one shorter."""
    return [c] * (s // c) + ([s % c] if s % c else [])


# -- 1. sliding window in decode ---------------------------------------------------------------------------

@pytest.mark.parametrize("ctx", [1, 6, 7, 8, 9, 50])
def test_sliding_window_decode_keys_flops_and_cache(ctx):
    w, b = 8, 3
    keys = min(ctx + 1, w)  # the new token attends to itself and the window's w-1 most recent cached keys
    g = graph_of(Attention(H, KV, HD, keys=Keys("sliding", w)), Phase.decode(b, ctx))
    f = flops(g)
    assert f["qk"] == 2 * b * H * keys * HD  # every query head over `keys` keys
    assert f["av"] == 2 * b * H * keys * HD  # the same pairs for P @ V
    assert f["softmax"] == 5 * b * H * keys  # 5 per score
    assert g.tensors["k_cache"].shape == (b, keys - 1, KV * HD)  # what the step reads from the cache
    assert kv_cache_bytes(g) == 2 * b * keys * KV * HD * BYTES  # K and V of min(C+1, W) positions after the step


@pytest.mark.parametrize("ctx", [5, 8, 300])
def test_sliding_window_decode_cache_of_a_whole_model(ctx):
    w, b, n = 8, 2, 3
    layer = parts.pre_norm(Attention(H, KV, HD, keys=Keys("sliding", w)), MLP(FFN))
    model = decoder(Stack.uniform(layer, n)).build(Phase.decode(b, ctx))
    keys = min(ctx + 1, w)
    fp = footprint_of(model, strategy("fused"), H100)
    assert fp.kv_cache_bytes == n * 2 * b * keys * KV * HD * BYTES  # n layers, each min(C+1, W) positions
    cost = analyze(model, strategy("fused"), H100)
    # Traffic: the cached keys-1 positions read plus the new entry written, K and V, per layer.
    assert cost.totals.traffic.kv_cache_bytes == n * 2 * b * (keys - 1 + 1) * KV * HD * BYTES


# -- 2. chunked attention ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ctx", [1, 7, 8, 9, 15, 16, 17, 100])
def test_chunked_decode_reads_the_current_chunk(ctx):
    c, b = 8, 2
    cached = ctx % c  # positions of the new token's chunk before it (position ctx, chunk start ctx - ctx % c)
    g = graph_of(Attention(H, KV, HD, keys=Keys("chunked", c)), Phase.decode(b, ctx))
    f = flops(g)
    assert f["qk"] == 2 * b * H * (cached + 1) * HD
    assert f["av"] == 2 * b * H * (cached + 1) * HD
    assert f["softmax"] == 5 * b * H * (cached + 1)
    if cached:
        assert g.tensors["k_cache"].shape == (b, cached, KV * HD)
    else:  # the first token of a chunk reads nothing from the cache
        assert "k_cache" not in g.tensors and "v_cache" not in g.tensors
    assert kv_cache_bytes(g) == 2 * b * (cached + 1) * KV * HD * BYTES


@pytest.mark.parametrize("s", [5, 8, 20, 24, 33])
@pytest.mark.parametrize("causal", [False, True])
def test_chunked_prefill_counts_each_chunks_pairs(s, causal):
    c, b = 8, 2
    lens = chunk_lengths(s, c)
    # Non-causal: each chunk a full len x len block; causal: its lower triangle with the diagonal.
    pairs = sum(n * (n + 1) // 2 for n in lens) if causal else sum(n * n for n in lens)
    g = graph_of(Attention(H, KV, HD, keys=Keys("chunked", c)), Phase.prefill(b, s),
                 options=BuildOptions(causal_skip=causal))
    f = flops(g)
    assert f["qk"] == 2 * b * H * pairs * HD
    assert f["av"] == 2 * b * H * pairs * HD
    assert f["softmax"] == 5 * b * H * pairs


# -- 3. attention sinks (gpt-oss) --------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [Phase.prefill(2, 5), Phase.decode(3, 9)], ids=lambda p: p.name)
def test_sinks_add_three_flops_per_row_and_a_weight_per_head(phase):
    b, sq, sk = phase.batch, phase.new_tokens, phase.keys
    g = graph_of(Attention(H, KV, HD, sinks=True), phase)
    soft = g.ops["softmax"]
    assert soft.flops == 5 * b * H * sq * sk + 3 * b * H * sq  # 5 per score; a sink joins each row: 3
    assert soft.transcendentals == b * H * sq * sk + b * H * sq  # exp of every score and of each row's sink
    assert weights(g)["self_attn.sinks"] == (H,)
    plain = graph_of(Attention(H, KV, HD), phase)
    assert plain.params() + H == g.params()  # H sink logits, nothing else
    assert sum(flops(g).values()) - sum(flops(plain).values()) == 3 * b * H * sq
    # The sink vector is read by the softmax: H values of 2 bytes.
    cost = analyze(decoder(parts.pre_norm(Attention(H, KV, HD, sinks=True), MLP(FFN))).build(phase),
                   strategy("unfused"), H100)
    [layer] = [blk for blk in cost.blocks if blk.name == "layer"]
    [op] = [o for o in layer.ops if o.name == "softmax"]
    assert op.cost.traffic.weight_bytes == H * BYTES


@pytest.mark.parametrize("phase", [Phase.prefill(2, 5), Phase.decode(3, 9)], ids=lambda p: p.name)
def test_sinks_split_with_the_heads_under_tp(phase):
    b, sq, sk, tp = phase.batch, phase.new_tokens, phase.keys, 2
    h = H // tp  # each GPU holds half the query heads, and their sinks
    g = graph_of(Attention(H, KV, HD, sinks=True), phase, par=Parallel(tp=tp))
    assert weights(g)["self_attn.sinks"] == (h,)
    assert g.ops["softmax"].flops == 5 * b * h * sq * sk + 3 * b * h * sq
    # The same through the model builder's --tp.
    model = decoder(parts.pre_norm(Attention(H, KV, HD, sinks=True), MLP(FFN))).build(phase, BuildOptions(tp=tp))
    [layer] = [blk for blk in model.blocks if blk.name == "layer"]
    assert weights(layer.graph)["self_attn.sinks"] == (h,)
    assert layer.graph.ops["softmax"].flops == 5 * b * h * sq * sk + 3 * b * h * sq


def test_sinks_in_a_sliding_layer_decode():
    w, b, ctx = 8, 2, 30
    keys = min(ctx + 1, w)
    g = graph_of(Attention(H, KV, HD, keys=Keys("sliding", w), sinks=True), Phase.decode(b, ctx))
    assert g.ops["softmax"].flops == 5 * b * H * keys + 3 * b * H  # one row per head and sequence


# -- 4. logit soft-capping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [Phase.prefill(2, 6), Phase.decode(2, 11)], ids=lambda p: p.name)
def test_attention_softcap_adds_three_flops_per_score(phase):
    b, sq, sk = phase.batch, phase.new_tokens, phase.keys
    capped = graph_of(Attention(H, KV, HD, softcap=True), phase).ops["softmax"]
    plain = graph_of(Attention(H, KV, HD), phase).ops["softmax"]
    assert capped.flops == (5 + 3) * b * H * sq * sk  # cap * tanh(s / cap): divide, tanh, multiply
    assert capped.flops - plain.flops == 3 * b * H * sq * sk
    assert capped.transcendentals - plain.transcendentals == b * H * sq * sk  # one tanh per score


@pytest.mark.parametrize("phase", [Phase.prefill(2, 6), Phase.decode(3, 11)], ids=lambda p: p.name)
def test_final_logit_softcap_on_the_lm_head(phase):
    vocab, b = 100, phase.batch
    layer = parts.pre_norm(Attention(H, KV, HD), MLP(FFN))

    def head(cfg, options=BuildOptions()):
        [blk] = [blk for blk in cfg.build(phase, options).blocks if blk.name == "embed_head"]
        return blk.graph

    capped, plain = head(decoder(layer, vocab=vocab, logit_softcap=True)), head(decoder(layer, vocab=vocab))
    # Prefill runs the head on the last position only, so b rows of `vocab` logits in both phases.
    assert capped.ops["logit_softcap"].flops == 3 * b * vocab
    assert "logit_softcap" not in plain.ops
    assert sum(flops(capped).values()) - sum(flops(plain).values()) == 3 * b * vocab
    # Under tp=2 (even vocabulary) the logits are gathered whole, then capped: still 3 per logit.
    tp2 = head(decoder(layer, vocab=vocab, logit_softcap=True), BuildOptions(tp=2))
    assert tp2.ops["logit_softcap"].flops == 3 * b * vocab


def test_final_logit_softcap_skips_the_vocabulary_padding_under_tp():
    # Under tp=2 a vocabulary of 101 is padded to 2 x 51 = 102 rows (vocab-parallel lm_head). vLLM's
    # LogitsProcessor gathers the logits, drops the padding (logits[..., :org_vocab_size]) and only then
    # soft-caps, so 3 FLOPs per real logit: 3 * b * 101.
    # LIBRARY DISCREPANCY (if this fails): pieces.lm_head soft-caps the gathered, padded [b, 1, 102] logits.
    vocab, b = 101, 2
    cfg = decoder(parts.pre_norm(Attention(H, KV, HD), MLP(FFN)), vocab=vocab, logit_softcap=True)
    [blk] = [blk for blk in cfg.build(Phase.decode(b, 5), BuildOptions(tp=2)).blocks if blk.name == "embed_head"]
    assert blk.graph.ops["logit_softcap"].flops == 3 * b * vocab


def test_gemma2_softcaps_from_config_fields():
    """A Gemma-2-like config: attn_logit_softcapping soft-caps every layer's scores, final_logit_softcapping
    the logits; the model with both caps costs 3 x (scores + logits) more than the one without."""
    n, w, b, ctx, vocab = 4, 8, 2, 20, 100
    base = {"model_type": "gemma2", "hidden_size": D, "num_attention_heads": H, "num_key_value_heads": KV,
            "head_dim": HD, "intermediate_size": FFN, "num_hidden_layers": n, "vocab_size": vocab,
            "sliding_window": w}
    capped = hf_config.from_dict({**base, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
                                 name="g2", source="test")
    plain = hf_config.from_dict(base, name="g2", source="test")
    phase = Phase.decode(b, ctx)
    # Gemma-2 alternates: even layers slide (min(C+1, W) keys), odd ones see all C+1.
    scores = sum(b * H * (min(ctx + 1, w) if i % 2 == 0 else ctx + 1) for i in range(n))
    extra = 3 * scores + 3 * b * vocab
    totals = [analyze(c.build(phase), strategy("fused"), H100).totals.flops for c in (capped, plain)]
    assert totals[0] - totals[1] == extra


# -- 5. q/k norms ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [Phase.prefill(2, 3), Phase.decode(3, 7)], ids=lambda p: p.name)
def test_per_head_qk_norm_with_weight(phase):
    t = phase.tokens
    g = graph_of(Attention(H, KV, HD, qk_norm="head"), phase)
    f = flops(g)
    assert f["q_norm"] == 4 * t * H * HD + 3 * t * H  # RMSNorm over each head's 16 dims: one row per (token, head)
    assert f["k_norm"] == 4 * t * KV * HD + 3 * t * KV
    w = weights(g)
    assert w["self_attn.q_norm.weight"] == (HD,) and w["self_attn.k_norm.weight"] == (HD,)  # shared by the heads


@pytest.mark.parametrize("phase", [Phase.prefill(2, 3), Phase.decode(3, 7)], ids=lambda p: p.name)
def test_weightless_l2_qk_norm(phase):
    t = phase.tokens
    g = graph_of(Attention(H, KV, HD, qk_norm="head_l2"), phase)
    f = flops(g)
    assert f["q_norm"] == 3 * t * H * HD + 3 * t * H  # square, accumulate, scale; no gamma multiply
    assert f["k_norm"] == 3 * t * KV * HD + 3 * t * KV
    assert not any("norm" in name for name in weights(g))  # no learned scale


@pytest.mark.parametrize("phase", [Phase.prefill(2, 3), Phase.decode(3, 7)], ids=lambda p: p.name)
def test_full_width_qk_norm(phase):
    t = phase.tokens
    g = graph_of(Attention(H, KV, HD, qk_norm="full"), phase)
    f = flops(g)
    assert f["q_norm"] == 4 * t * H * HD + 3 * t  # one row per token over all H*HD features
    assert f["k_norm"] == 4 * t * KV * HD + 3 * t
    w = weights(g)
    assert w["self_attn.q_norm.weight"] == (H * HD,) and w["self_attn.k_norm.weight"] == (KV * HD,)


def test_qk_norms_under_tp():
    phase, tp = Phase.decode(2, 5), 2
    t = phase.tokens
    # Per head: each GPU normalizes its own heads.
    g = graph_of(Attention(H, KV, HD, qk_norm="head"), phase, par=Parallel(tp=tp))
    assert g.ops["q_norm"].flops == 4 * t * (H // tp) * HD + 3 * t * (H // tp)
    assert g.ops["k_norm"].flops == 4 * t * (KV // tp) * HD + 3 * t * (KV // tp)
    # OLMo-2's full-width norm needs every column: q and k are all-gathered, normalized whole, then sliced.
    g = graph_of(Attention(H, KV, HD, qk_norm="full"), phase, par=Parallel(tp=tp))
    for name, width in (("q", H * HD), ("k", KV * HD)):
        gather = g.ops[f"{name}_norm_allgather"]
        assert gather.fn == "all_gather" and gather.group == tp
        assert gather.inputs[0].shape == (2, 1, width // tp) and gather.outputs[0].shape == (2, 1, width)
        norm = g.ops[f"{name}_norm"]
        assert norm.flops == 4 * t * width + 3 * t
        assert weights(g)[f"self_attn.{name}_norm.weight"] == (width,)
        assert g.ops[f"{name}_norm_slice"].outputs[0].shape == (2, 1, width // tp)
    assert g.ops["qk"].flops == 2 * 2 * (H // tp) * 6 * HD  # attention on this GPU's heads only


def test_qwen3_and_olmo2_configs_pick_their_qk_norms():
    common = {"hidden_size": D, "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": HD,
              "intermediate_size": FFN, "num_hidden_layers": 2, "vocab_size": 100}
    qwen3 = hf_config.from_dict({"model_type": "qwen3", **common}, name="q3", source="test")
    olmo2 = hf_config.from_dict({"model_type": "olmo2", **common}, name="o2", source="test")
    t = 4
    [q] = [blk for blk in qwen3.build(Phase.prefill(1, t)).blocks if blk.name != "embed_head"]
    assert weights(q.graph)["self_attn.q_norm.weight"] == (HD,)
    assert q.graph.ops["q_norm"].flops == 4 * t * H * HD + 3 * t * H
    [o] = [blk for blk in olmo2.build(Phase.prefill(1, t)).blocks if blk.name != "embed_head"]
    assert weights(o.graph)["self_attn.k_norm.weight"] == (KV * HD,)
    assert o.graph.ops["k_norm"].flops == 4 * t * KV * HD + 3 * t


# -- 6. norm placement -------------------------------------------------------------------------------------

LAYER_NORMS = {"pre": {"input_layernorm", "post_attention_layernorm"},
               "post": {"post_attention_layernorm", "post_feedforward_layernorm"},
               "sandwich": {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                            "post_feedforward_layernorm"}}


@pytest.mark.parametrize("phase", [Phase.prefill(2, 3), Phase.decode(2, 9)], ids=lambda p: p.name)
def test_norm_placements_differ_by_their_norms_only(phase):
    t = phase.tokens
    att, mlp = Attention(H, KV, HD), MLP(FFN)
    graphs = {k: graph_of(fn(att, mlp), phase) for k, fn in parts.NORM_PLACEMENTS.items()}
    others = None
    for kind, g in graphs.items():
        norms = {n: op for n, op in g.ops.items() if op.kind == "norm"}
        assert set(norms) == LAYER_NORMS[kind]
        for op in norms.values():
            assert op.flops == 4 * t * D + 3 * t  # RMSNorm over d_model, one row per token
        assert sum(1 for w in g.weights() if w.shape == (D,)) == len(LAYER_NORMS[kind])  # 2, 2, 4 vectors
        rest = sorted(op.flops for op in g.ops.values() if op.kind != "norm")
        others = others or rest
        assert rest == others  # attention, MLP and residual adds are the same ops
    p = {k: g.params() for k, g in graphs.items()}
    assert p["pre"] == p["post"] and p["sandwich"] - p["pre"] == 2 * D
    f = {k: sum(flops(g).values()) for k, g in graphs.items()}
    assert f["pre"] == f["post"] and f["sandwich"] - f["pre"] == 2 * (4 * t * D + 3 * t)


def test_post_norm_normalizes_the_branch_not_the_residual():
    g = graph_of(parts.post_norm(Attention(H, KV, HD), MLP(FFN)), Phase.prefill(1, 4))
    # OLMo-2: q/k/v read the residual stream itself; the norm takes attention's output, the add takes the norm's.
    assert g.ops["q_proj"].inputs[0].name == "x"
    assert g.ops["post_attention_layernorm"].inputs[0].name == g.ops["o_proj"].outputs[0].name
    assert g.ops["attn_residual"].inputs[1].name == g.ops["post_attention_layernorm"].outputs[0].name


def test_layernorm_with_bias_placement():
    t = 6
    g = graph_of(parts.pre_norm(Attention(H, KV, HD), MLP(FFN), norm="layernorm", norm_bias=True),
                 Phase.prefill(2, 3))
    for name in LAYER_NORMS["pre"]:
        assert g.ops[name].flops == 7 * t * D + 4 * t  # 6 per element + the shift, 4 per row
    assert sum(1 for w in g.weights() if w.shape == (D,)) == 4  # a scale and a shift per norm


# -- 7. gated attention output (Qwen3-Next) ----------------------------------------------------------------

@pytest.mark.parametrize("phase", [Phase.prefill(2, 3), Phase.decode(2, 9)], ids=lambda p: p.name)
def test_gated_attention_output(phase):
    t = phase.tokens
    gated = graph_of(Attention(H, KV, HD, gate=True), phase)
    plain = graph_of(Attention(H, KV, HD), phase)
    f = flops(gated)
    assert f["q_proj"] == 2 * t * (2 * H * HD) * D  # query and gate rows: twice as wide
    assert f["gate_sigmoid"] == 4 * t * H * HD
    assert f["gate_mul"] == t * H * HD
    assert gated.params() - plain.params() == H * HD * D  # the gate's rows of q_proj
    assert sum(f.values()) - sum(flops(plain).values()) == 2 * t * H * HD * D + 5 * t * H * HD
    assert gated.ops["o_proj"].inputs[0].name == gated.ops["gate_mul"].outputs[0].name  # o_proj sees the gated output


QWEN3_NEXT = {"model_type": "qwen3_next", "hidden_size": D, "num_attention_heads": H, "num_key_value_heads": KV,
              "head_dim": HD, "intermediate_size": FFN, "num_hidden_layers": 4, "vocab_size": 100, "num_experts": 4,
              "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
              "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16,
              "linear_value_head_dim": 16}


def qwen3_next_attention_layer(cfg, phase):
    [layer] = [k for k in cfg.layer_kinds() if isinstance(k.parts()[0], Attention)]
    return cfg.layer(phase, kind=layer)


def test_qwen3_next_config_gates_its_attention():
    cfg = hf_config.from_dict({**QWEN3_NEXT, "partial_rotary_factor": 0.25, "norm_topk_prob": True}, name="n",
                              source="test")
    # full_attention_interval 4 by default: layer 3 is full attention, 0-2 Gated DeltaNet.
    assert [type(cfg.layers.at(i).parts()[0]).__name__ for i in range(4)] == ["DeltaNet"] * 3 + ["Attention"]
    phase = Phase.decode(2, 7)
    t = phase.tokens
    f = flops(qwen3_next_attention_layer(cfg, phase))
    assert f["q_proj"] == 2 * t * 2 * H * HD * D
    assert f["gate_sigmoid"] == 4 * t * H * HD and f["gate_mul"] == t * H * HD
    assert f["rope_q"] == 3 * t * H * (HD // 4)  # a quarter of each head rotated
    assert f["shared.gate"] == 2 * t * D and f["shared.sigmoid"] == 4 * t and f["shared.scale"] == t * D
    assert f["top_k"] == t * (4 + 2 * 2)  # E comparisons + renormalized k weights (2k)


def test_qwen3_next_default_norm_topk_prob():
    # transformers' Qwen3NextConfig (configuration_qwen3_next.py): norm_topk_prob defaults to True, so a
    # config.json that omits it renormalizes the top-k weights: top_k = t * (E + 2k) = t * (4 + 4).
    # LIBRARY DISCREPANCY (if this fails): models/hf_config.py _qwen_moe defaults norm_topk_prob to `not shared`,
    # i.e. False for qwen3_next (Qwen2-MoE's default, not Qwen3-Next's).
    cfg = hf_config.from_dict({**QWEN3_NEXT, "partial_rotary_factor": 0.25}, name="n", source="test")
    phase = Phase.decode(2, 7)
    assert flops(qwen3_next_attention_layer(cfg, phase))["top_k"] == phase.tokens * (4 + 2 * 2)


def test_qwen3_next_default_partial_rotary():
    # transformers' Qwen3NextConfig sets partial_rotary_factor to 0.25 when absent ("assign default for BC"), so
    # rope rotates a quarter of each head: 3 * t * H * HD / 4.
    # LIBRARY DISCREPANCY (if this fails): models/hf_config.py _rotary_dim treats an absent factor as full rotary.
    cfg = hf_config.from_dict({**QWEN3_NEXT, "norm_topk_prob": True}, name="n", source="test")
    phase = Phase.decode(2, 7)
    assert flops(qwen3_next_attention_layer(cfg, phase))["rope_q"] == 3 * phase.tokens * H * (HD // 4)


# -- 8. mixture-of-experts variants ------------------------------------------------------------------------

E, K, N = 8, 2, 32  # experts, top_k, expert width
MOE_PHASES = [Phase.prefill(2, 3), Phase.decode(3, 9)]


@pytest.mark.parametrize("phase", MOE_PHASES, ids=lambda p: p.name)
def test_shared_expert_with_sigmoid_gate(phase):
    t, sd = phase.tokens, 48
    gated = graph_of(MoE(E, K, N, shared_d=sd, shared_gate=True), phase)
    ungated = graph_of(MoE(E, K, N, shared_d=sd), phase)
    f = flops(gated)
    assert f["shared.gate"] == 2 * t * D  # a [1, d] linear per token
    assert f["shared.sigmoid"] == 4 * t
    assert f["shared.scale"] == t * D  # the shared expert's output times its gate
    assert f["shared.gate_proj"] == f["shared.up_proj"] == f["shared.down_proj"] == 2 * t * sd * D
    assert f["shared.act"] + f["shared.mul"] == 5 * t * sd  # SiLU 4 + multiply 1
    assert f["shared_add"] == t * D
    assert weights(gated)["mlp.shared_expert_gate.weight"] == (1, D)
    assert sum(f.values()) - sum(flops(ungated).values()) == 2 * t * D + 4 * t + t * D
    assert gated.params() - ungated.params() == D


@pytest.mark.parametrize("phase", MOE_PHASES, ids=lambda p: p.name)
def test_expert_biases(phase):
    t = phase.tokens
    biased = graph_of(MoE(E, K, N, expert_bias=True), phase)
    plain = graph_of(MoE(E, K, N), phase)
    f = flops(biased)
    assert f["experts.gate_proj"] == 2 * t * K * N * D + t * K * N  # + one add per output of each expert GEMM
    assert f["experts.up_proj"] == 2 * t * K * N * D + t * K * N
    assert f["experts.down_proj"] == 2 * t * K * D * N + t * K * D
    assert sum(f.values()) - sum(flops(plain).values()) == t * K * (2 * N + D)
    w = weights(biased)
    assert w["mlp.experts.gate_proj.bias"] == (E, N) and w["mlp.experts.down_proj.bias"] == (E, D)
    assert biased.params() - plain.params() == E * (2 * N + D)


@pytest.mark.parametrize("phase", MOE_PHASES, ids=lambda p: p.name)
def test_router_scores_and_biases(phase):
    t = phase.tokens
    sig = flops(graph_of(MoE(E, K, N, scores="sigmoid"), phase))
    soft = flops(graph_of(MoE(E, K, N), phase))
    assert sig["router_sigmoid"] == 4 * t * E and "router_softmax" not in sig
    assert soft["router_softmax"] == 5 * t * E and "router_sigmoid" not in soft
    assert sig["router"] == soft["router"] == 2 * t * E * D
    linear = flops(graph_of(MoE(E, K, N, router_bias="linear"), phase))
    assert linear["router"] == 2 * t * E * D + t * E  # gpt-oss's router bias: one add per logit


@pytest.mark.parametrize("groups, renormalize, scaled", [(1, False, False), (4, False, False), (1, True, False),
                                                         (1, False, True), (4, True, True), (2, True, False)])
def test_top_k_flops(groups, renormalize, scaled):
    e, k, phase = 16, 4, Phase.decode(5, 3)
    t = phase.tokens
    spec = MoE(e, k, N, scores="sigmoid", groups=groups, renormalize=renormalize, scaled=scaled)
    per_token = e  # one comparison per score
    if groups > 1:
        per_token += e + 2 * groups  # group scores (sum of the two best: E comparisons, G adds), then G comparisons
    per_token += 2 * k * renormalize + k * scaled  # weights / their sum (2k); x routed_scaling_factor (k)
    assert flops(graph_of(spec, phase))["top_k"] == t * per_token


@pytest.mark.parametrize("phase", MOE_PHASES, ids=lambda p: p.name)
def test_clamped_swiglu_is_one_op(phase):
    t = phase.tokens
    g = graph_of(MoE(E, K, N, act="clamp_swiglu"), phase)
    act = g.ops["experts.act"]
    assert act.fn == "clamp_swiglu" and len(act.inputs) == 2  # gate and up together
    assert act.flops == 11 * t * K * N  # clamp 1 + clamp 2 + alpha 1 + sigmoid 4 + x gate 1 + (up + 1) 1 + x 1
    assert act.transcendentals == t * K * N
    assert "experts.mul" not in g.ops


# -- 9. whole models from config.json dicts ----------------------------------------------------------------

def kinds(cfg):
    """{(keys kind, rotary, is MoE): count} of a config's layers."""
    out: dict = {}
    for layer, n in cfg.layer_kinds().items():
        att = layer.parts()[0]
        key = (att.keys.kind, att.rotary, any(isinstance(p, MoE) for p in layer.parts()))
        out[key] = out.get(key, 0) + n
    return out


def test_gemma3_like_sliding_pattern_and_kv_cache():
    n, w, b, ctx = 12, 512, 2, 16_384
    cfg = hf_config.from_dict({"model_type": "gemma3_text", "hidden_size": D, "num_attention_heads": H,
                               "num_key_value_heads": KV, "head_dim": HD, "intermediate_size": FFN,
                               "num_hidden_layers": n, "vocab_size": 100, "sliding_window": w,
                               "sliding_window_pattern": 6}, name="g3", source="test")
    # transformers' Gemma-3: layer i slides unless (i + 1) % 6 == 0, so layers 5 and 11 are global.
    assert kinds(cfg) == {("sliding", True, False): 10, ("full", True, False): 2}
    assert [i for i in range(n) if cfg.layers.at(i).parts()[0].keys.kind == "full"] == [5, 11]
    phase = Phase.decode(b, ctx)
    per_layer = [2 * b * (ctx + 1 if (i + 1) % 6 == 0 else min(ctx + 1, w)) * KV * HD * BYTES for i in range(n)]
    model = cfg.build(phase)
    assert footprint_of(model, strategy("fused"), H100).kv_cache_bytes == sum(per_layer)
    assert sum(blk.count * kv_cache_bytes(blk.graph) for blk in model.blocks) == sum(per_layer)
    # And the attention products: sum over layers of 2*b*H*keys*hd each.
    qk = sum(2 * b * H * (ctx + 1 if (i + 1) % 6 == 0 else min(ctx + 1, w)) * HD for i in range(n))
    assert sum(blk.count * blk.graph.ops["qk"].flops for blk in model.blocks if "qk" in blk.graph.ops) == qk
    for blk in model.blocks:  # Gemma-3's per-head q/k RMSNorm with a [head_dim] scale, on both kinds of layer
        if blk.name != "embed_head":
            assert weights(blk.graph)["self_attn.q_norm.weight"] == (HD,)
            assert blk.graph.ops["q_norm"].flops == 4 * b * H * HD + 3 * b * H


def gpt_oss_dict(n, types, w=128, **kw):
    return {"model_type": "gpt_oss", "hidden_size": D, "num_attention_heads": H, "num_key_value_heads": KV,
            "head_dim": HD, "intermediate_size": 32, "num_hidden_layers": n, "vocab_size": 100,
            "sliding_window": w, "layer_types": types, "num_local_experts": 4, "num_experts_per_tok": 2,
            "swiglu_limit": 7.0, "attention_bias": True, **kw}


@pytest.mark.parametrize("ctx", [50, 127, 1000, 9999])
def test_gpt_oss_like_alternating_kv_cache_ratio(ctx):
    n, w, b = 6, 128, 2
    mixed = hf_config.from_dict(gpt_oss_dict(n, ["sliding_attention", "full_attention"] * (n // 2), w),
                                name="oss", source="test")
    full = hf_config.from_dict(gpt_oss_dict(n, ["full_attention"] * n, w), name="oss", source="test")
    assert kinds(mixed) == {("sliding", True, True): n // 2, ("full", True, True): n // 2}
    assert kinds(full) == {("full", True, True): n}
    phase = Phase.decode(b, ctx)
    kv = [footprint_of(c.build(phase), strategy("fused"), H100).kv_cache_bytes for c in (mixed, full)]
    entry = 2 * b * KV * HD * BYTES  # K and V of one position, per layer
    assert kv[0] == (n // 2) * min(ctx + 1, w) * entry + (n // 2) * (ctx + 1) * entry
    assert kv[1] == n * (ctx + 1) * entry
    assert Fraction(kv[0], kv[1]) == Fraction(min(ctx + 1, w) + (ctx + 1), 2 * (ctx + 1))


def llama4_dict(n=8, **kw):
    return {"model_type": "llama4_text", "hidden_size": D, "num_attention_heads": H, "num_key_value_heads": KV,
            "head_dim": HD, "intermediate_size": 32, "intermediate_size_mlp": 96, "num_hidden_layers": n,
            "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
            **kw}


def test_llama4_like_block_counts_and_shared_expert():
    n, c = 8, 8
    cfg = hf_config.from_dict(llama4_dict(n, attention_chunk_size=c), name="l4", source="test")
    # no_rope_layers absent: layer i uses rope unless (i + 1) % 4 == 0 (3, 7 NoPE, global); MoE on
    # range(step - 1, n, step) = 1, 3, 5, 7. So chunked rope dense: 0 2 4 6; chunked rope MoE: 1 5; NoPE MoE: 3 7.
    assert kinds(cfg) == {("chunked", True, False): 4, ("chunked", True, True): 2, ("full", False, True): 2}
    phase = Phase.decode(2, 20)
    t, e, k, n_exp, ffn_dense = phase.tokens, 4, 1, 32, 96
    graphs = {key: None for key in kinds(cfg)}
    for layer in cfg.layer_kinds():
        att = layer.parts()[0]
        graphs[(att.keys.kind, att.rotary, any(isinstance(p, MoE) for p in layer.parts()))] = \
            cfg.layer(phase, kind=layer)
    moe, dense, nope = (graphs[("chunked", True, True)], graphs[("chunked", True, False)],
                        graphs[("full", False, True)])
    f = flops(moe)
    assert f["shared.gate_proj"] == f["shared.up_proj"] == f["shared.down_proj"] == 2 * t * n_exp * D
    assert f["router_sigmoid"] == 4 * t * e
    # The MoE FFN minus the dense one, term by term: router, sigmoid, top-k, k routed experts (3 GEMMs, SiLU and
    # multiply), the combine, the shared expert (3 GEMMs, SiLU and multiply) and its add; minus the dense MLP.
    moe_ffn = (2 * t * e * D + 4 * t * e + t * e + 3 * 2 * t * k * n_exp * D + 5 * t * k * n_exp + 2 * t * k * D
               + 3 * 2 * t * n_exp * D + 5 * t * n_exp + t * D)
    dense_ffn = 3 * 2 * t * ffn_dense * D + 5 * t * ffn_dense
    assert sum(f.values()) - sum(flops(dense).values()) == moe_ffn - dense_ffn
    # Chunked rope layers: L2 q/k norms, chunk of ctx % c + 1 keys; NoPE layers: no rope, a query temperature.
    assert flops(dense)["qk"] == 2 * 2 * H * (20 % c + 1) * HD
    assert flops(dense)["q_norm"] == 3 * t * H * HD + 3 * t * H
    fn = flops(nope)
    assert "rope_q" not in fn and "q_norm" not in fn
    assert fn["q_temperature"] == t * H * HD
    assert fn["qk"] == 2 * 2 * H * 21 * HD  # global: all C+1 keys


def test_llama4_like_default_chunk_size():
    # transformers' Llama4TextConfig: attention_chunk_size defaults to 8192 (configuration_llama4.py), so a
    # config.json that omits it chunks its rope layers at 8192. At context 10000 a rope layer reads
    # 10000 % 8192 = 1808 cached keys, not 10000.
    # LIBRARY DISCREPANCY (if this fails): models/hf_config.py _llama4 reads attention_chunk_size with
    # default None (full attention) although its docstring says the defaults are Llama4TextConfig's.
    cfg = hf_config.from_dict(llama4_dict(), name="l4", source="test")
    assert kinds(cfg)[("chunked", True, False)] == 4
    ctx = 10_000
    [layer] = [k for k in cfg.layer_kinds() if k.parts()[0].rotary and not isinstance(k.parts()[1], MoE)]
    g = cfg.layer(Phase.decode(1, ctx), kind=layer)
    assert g.ops["qk"].flops == 2 * 1 * H * (ctx % 8192 + 1) * HD


# -- 10. invariants under hypothesis -----------------------------------------------------------------------

phases = st.one_of(st.builds(Phase.prefill, st.integers(1, 3), st.integers(1, 24)),
                   st.builds(Phase.decode, st.integers(1, 4), st.integers(1, 300)))


def totals(model, plan="fused"):
    r = analyze(model, strategy(plan), H100)
    return r.params, r.weight_bytes, r.totals.flops, r.totals.bytes, r.totals.traffic.kv_cache_bytes


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), kv=st.sampled_from([1, 2]), group=st.integers(1, 2), phase=phases,
       causal=st.booleans())
def test_qwen3_all_full_layer_types_equals_the_uniform_model(n, kv, group, phase, causal):
    fields = {"model_type": "qwen3", "hidden_size": D, "num_attention_heads": kv * group, "num_key_value_heads": kv,
              "head_dim": HD, "intermediate_size": 48, "num_hidden_layers": n, "vocab_size": 50}
    listed = hf_config.from_dict({**fields, "layer_types": ["full_attention"] * n}, name="q", source="test")
    uniform = hf_config.from_dict(fields, name="q", source="test")
    options = BuildOptions(causal_skip=causal)
    assert totals(listed.build(phase, options)) == totals(uniform.build(phase, options))


@settings(max_examples=40, deadline=None)
@given(types=st.lists(st.sampled_from(["sliding_attention", "full_attention"]), min_size=1, max_size=5),
       phase=phases, causal=st.booleans())
def test_gpt_oss_window_wider_than_the_context_costs_as_full(types, phase, causal):
    # A window that holds every key the step sees changes nothing: the layers attend to, and cache, the same keys.
    n = len(types)
    options = BuildOptions(causal_skip=causal)
    wide = hf_config.from_dict(gpt_oss_dict(n, types, w=phase.keys), name="o", source="test")
    full = hf_config.from_dict(gpt_oss_dict(n, ["full_attention"] * n, w=phase.keys), name="o", source="test")
    assert totals(wide.build(phase, options)) == totals(full.build(phase, options))


def mixed_configs():
    """gpt-oss-like (sliding/full listed), Gemma-3-like (sliding_window_pattern) or Llama-4-like (NoPE / chunked,
    dense / MoE) configs with small windows and chunks, so the layer kinds differ in cost."""
    oss = st.builds(lambda types, w: hf_config.from_dict(gpt_oss_dict(len(types), types, w=w), name="o",
                                                         source="test"),
                    st.lists(st.sampled_from(["sliding_attention", "full_attention"]), min_size=1, max_size=6),
                    st.integers(2, 16))
    gemma = st.builds(lambda n, every, w: hf_config.from_dict(
        {"model_type": "gemma3_text", "hidden_size": D, "num_attention_heads": H, "num_key_value_heads": KV,
         "head_dim": HD, "intermediate_size": 48, "num_hidden_layers": n, "vocab_size": 100, "sliding_window": w,
         "sliding_window_pattern": every}, name="g", source="test"),
        st.integers(1, 8), st.integers(1, 4), st.integers(2, 16))
    llama4 = st.builds(lambda n, step, c: hf_config.from_dict(
        llama4_dict(n, interleave_moe_layer_step=step, attention_chunk_size=c), name="l", source="test"),
        st.integers(1, 8), st.integers(1, 3), st.integers(2, 16))
    return st.one_of(oss, gemma, llama4)


@settings(max_examples=40, deadline=None)
@given(cfg=mixed_configs(), phase=phases)
def test_a_mixed_model_costs_the_sum_of_its_layers(cfg, phase):
    model = cfg.build(phase)
    r = analyze(model, strategy("fused"), H100)
    assert sum(blk.count for blk in r.blocks if blk.name != "embed_head") == cfg.n_layers
    for attr in ("flops", "bytes"):
        assert getattr(r.totals, attr) == sum(blk.count * getattr(blk.totals, attr) for blk in r.blocks)
    assert r.totals.traffic.kv_cache_bytes == sum(blk.count * blk.totals.traffic.kv_cache_bytes for blk in r.blocks)
    # Each kind built as a uniform model of its own count: its layers cost what the mixed model's do.
    [head] = [blk for blk in r.blocks if blk.name == "embed_head"]
    want = [head.totals.flops, head.totals.bytes, head.graph.params()]
    for layer, count in cfg.layer_kinds().items():
        alone = attrs.evolve(cfg, layers=Stack.uniform(layer, count), n_layers=count)
        [blk] = [b for b in analyze(alone.build(phase), strategy("fused"), H100).blocks if b.name != "embed_head"]
        assert blk.count == count
        want[0] += count * blk.totals.flops
        want[1] += count * blk.totals.bytes
        want[2] += count * blk.graph.params()
    assert [r.totals.flops, r.totals.bytes, r.params] == want


@settings(max_examples=40, deadline=None)
@given(cfg=mixed_configs(), phase=phases, causal=st.booleans())
def test_mixed_model_flops_are_plan_independent(cfg, phase, causal):
    model = cfg.build(phase, BuildOptions(causal_skip=causal))
    res = {p: analyze(model, strategy(p), H100) for p in PLANS}
    assert len({r.totals.flops for r in res.values()}) == 1
    assert len({r.params for r in res.values()}) == 1
