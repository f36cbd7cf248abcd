"""DeepSeek-V3.2's sparse attention (DSA): the lightning indexer and MLA over its top-k keys, against hand counts.

Every expected value is derived here from the dimensions, following the reference inference code
(deepseek-ai/DeepSeek-V3.2-Exp, inference/model.py Indexer and MLA; inference/kernel.py fp8_index), never taken
from the program's output.
"""

import numpy as np
import pytest

from opgraph import hardware
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.analysis.sweep import Sweeper
from opgraph.core import ops
from opgraph.pricing.cost import analyze, block_cost
from opgraph.core.fusion import FusionPlan, apply
from opgraph.core.graph import GraphBuilder
from opgraph.core.model import Block, BuildOptions, Model
from opgraph.core.phase import Phase
from opgraph.core.tensor import BF16, FP8, Precision
from opgraph.errors import OpgraphError
from opgraph import strategy
from opgraph.models.parallel import Parallel
from opgraph.models.parts import MLA, Indexer, LatentAttention

H100 = hardware.load("h100-sxm")

# A tiny MLA with an indexer. The indexer's head_dim is 128 as in V3.2, so its fp8 keys and queries carry one fp32
# scale per head (per 128 values), as the reference's act_quant(block_size=128) stores them.
D, HEADS, R, NOPE, ROPE, V, QL = 64, 4, 16, 8, 4, 8, 32
IH, ID, TOPK = 2, 128, 6
LOG2_ID = 7
IDX = Indexer(heads=IH, head_dim=ID, topk=TOPK)


def mla(indexer=IDX):
    return LatentAttention(HEADS, MLA(R, NOPE, ROPE, V, QL), indexer)


def graph(phase, indexer=IDX, causal=True, precision=Precision.uniform(BF16), tp=1, dims=None):
    part = mla(indexer) if dims is None else dims
    d = D if dims is None else dims.d_model
    b = GraphBuilder(precision, "layer")
    x = b.input("x", (phase.batch, phase.new_tokens, d))
    y = part.build(b, x, phase, Parallel(tp), BuildOptions(causal_skip=causal))
    return b.build(outputs=[y])


def flops(g):
    return {name: op.flops for name, op in g.ops.items()}


def traffic(g, plan=FusionPlan("none")):
    """Bytes each op reads and writes, every op its own kernel unless `plan` fuses them."""
    bc = block_cost("layer", 1, g, apply(plan, g), H100)
    return {o.name: o.cost.traffic for o in bc.ops}


def visible(past, new, causal):
    """The keys each query sees: the query at position p sees p + 1 (causal), or all past + new."""
    return [p + 1 if causal else past + new for p in range(past, past + new)]


def selected_pairs(past, new, causal, k=TOPK):
    return sum(min(k, n) for n in visible(past, new, causal))


def indexer_flops(batch, new, past, causal):
    """The indexer's ops, as Indexer.forward computes them."""
    t, keys = batch * new, past + new
    pairs = sum(visible(past, new, causal))
    return {
        "indexer.wq_b": 2 * t * (IH * ID) * QL,  # q from the normed q latent
        "indexer.rope_q": 3 * t * IH * ROPE,  # rope on each head's first qk_rope_head_dim dims
        "indexer.hadamard_q": (LOG2_ID + 1) * t * IH * ID,  # rotate_activation: log2(128) butterflies + scale
        "indexer.wk": 2 * t * ID * D,
        "indexer.k_norm": (6 + 1) * t * ID + 4 * t,  # LayerNorm with a bias
        "indexer.rope_k": 3 * t * ROPE,
        "indexer.hadamard_k": (LOG2_ID + 1) * t * ID,
        "indexer.weights_proj": 2 * t * IH * D,
        # fp8_index per pair: dot products 2*IH*ID, then per head relu and * weight, the IH - 1 adds of the head
        # sum, * the key's scale; and per query and head: weights * IH^-0.5 * q_scale * softmax_scale
        "indexer.scores": batch * (pairs * (2 * IH * ID + 2 * IH + (IH - 1) + 1) + 3 * new * IH),
        "indexer.top_k": t * keys,  # torch.topk: one comparison per score of each whole row
    }


# -- the number of selected pairs ------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_select_pairs_match_a_brute_force_count(causal):
    for sk in range(1, 30):
        for sq in range(1, sk + 1):
            for k in (1, 2, 5, 16, 64):
                want = sum(min(k, n) for n in visible(sk - sq, sq, causal))
                assert ops.pairs(sq, sk, causal=causal, select=k) == want, (sq, sk, k)


def test_select_does_not_combine_with_windows_or_chunks():
    with pytest.raises(OpgraphError):
        ops.pairs(4, 8, causal=True, window=2, select=3)
    with pytest.raises(OpgraphError):
        ops.pairs(4, 8, causal=True, chunk=2, select=3)


def test_selected_scores_hold_min_k_keys_per_query():
    b = GraphBuilder()
    q = b.input("q", (1, 10, 2 * 8))
    k = b.input("k", (1, 10, 2 * 8))
    s = b.attention_scores("qk", q, [k], heads=2, kv_heads=2, head_dim=8, causal=True, select=4)
    assert s.shape == (1, 2, 10, 4)
    p = b.softmax("softmax", s, causal=True, keys=10, select=4)
    o = b.attention_values("av", p, [k], heads=2, kv_heads=2, head_dim=8, causal=True, select=4)
    g = b.build(outputs=[o])
    n = 1 + 2 + 3 + 4 + 6 * 4
    assert flops(g) == {"qk": 2 * 2 * n * 8, "softmax": 5 * 2 * n, "av": 2 * 2 * n * 8}


# -- FLOPs -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("seq", [4, 10], ids=["below_topk", "above_topk"])
def test_prefill_flops_by_hand(seq, causal):
    batch = 2
    f = flops(graph(Phase.prefill(batch, seq), causal=causal))
    for name, want in indexer_flops(batch, seq, 0, causal).items():
        assert f[name] == want, name
    n = selected_pairs(0, seq, causal)
    assert f["qk"] == 2 * batch * HEADS * n * (NOPE + ROPE)  # decompressed: per head q_nope|q_pe . k_nope|k_pe
    assert f["softmax"] == 5 * batch * HEADS * n
    assert f["av"] == 2 * batch * HEADS * n * V
    # the rest of MLA is untouched by the indexer
    plain = flops(graph(Phase.prefill(batch, seq), indexer=None, causal=causal))
    assert {k: v for k, v in f.items() if k in plain and k not in ("qk", "softmax", "av")} == \
        {k: v for k, v in plain.items() if k not in ("qk", "softmax", "av")}
    if seq <= TOPK:  # every key is selected: as dense MLA
        assert (f["qk"], f["softmax"], f["av"]) == (plain["qk"], plain["softmax"], plain["av"])


@pytest.mark.parametrize("context", [3, 20], ids=["below_topk", "above_topk"])
def test_decode_flops_by_hand(context):
    batch = 3
    g = graph(Phase.decode(batch, context))
    f = flops(g)
    for name, want in indexer_flops(batch, 1, context, True).items():
        assert f[name] == want, name
    k = min(TOPK, context + 1)  # selected latent entries, the new token's among them
    assert f["gather_selected"] == 0
    assert f["qk"] == 2 * batch * HEADS * k * (R + ROPE)  # absorbed: over [latent | rope key]
    assert f["softmax"] == 5 * batch * HEADS * k
    assert f["av"] == 2 * batch * HEADS * k * R  # over the latent
    assert g.tensors["selected_entries"].shape == (batch, k, R + ROPE)
    assert g.tensors["indexer.topk_indices"].shape == (batch, 1, k)


@pytest.mark.parametrize("new,past", [(3, 20), (12, 20), (3, 2)], ids=["verify", "chunk", "short_cache"])
def test_several_queries_over_a_cache_by_hand(new, past):
    """A prompt chunk or a speculative verify step: `new` queries a sequence over `past` cached tokens, each
    attending to its own top-k in the absorbed form (vLLM's FlashMLA sparse backend runs prefill and decode so)."""
    batch, keys = 2, past + new
    g = graph(Phase("prefill", batch, new, past))
    f = flops(g)
    for name, want in indexer_flops(batch, new, past, True).items():
        assert f[name] == want, name
    n = selected_pairs(past, new, True)
    assert "gather_selected" not in g.ops  # each query its own selection, read in the kernel
    assert f["qk"] == 2 * batch * HEADS * n * (R + ROPE)
    assert f["softmax"] == 5 * batch * HEADS * n
    assert f["av"] == 2 * batch * HEADS * n * R
    assert g.tensors["indexer.topk_indices"].shape == (batch, new, min(TOPK, keys))
    # bytes: each key at most once and no more than the selections hold, the new tokens' own entries first
    rows = min(keys, new * min(TOPK, keys))
    new_rows, cached_rows = min(new, rows), rows - min(new, rows)
    t = traffic(g)
    q_bytes = batch * new * HEADS * (R + ROPE) * 2
    assert t["qk"].bytes_read == q_bytes + batch * rows * LATENT_BYTES + batch * new * min(TOPK, keys) * 4
    assert g.ops["qk"].read_elems(1) == batch * cached_rows * (R + ROPE)  # the cache part, after the new entries
    assert g.ops["qk"].read_elems(2) == batch * new_rows * (R + ROPE)
    assert t["qk"].kv_cache_bytes == batch * rows * LATENT_BYTES  # cached entries and the new tokens' own
    assert t["av"].bytes_read == batch * HEADS * new * min(TOPK, keys) * 2 + batch * rows * R * 2


def test_the_selected_rows_come_newest_first():
    assert ops.newest_first([100, 1], 8) == [7, 1]
    assert ops.newest_first([100, 20], 50) == [30, 20]
    assert ops.newest_first([5, 20], 100) == [5, 20]


def test_attention_flops_stop_growing_beyond_topk_while_the_indexer_keeps_growing():
    attention = ("gather_selected", "qk", "softmax", "av")
    seen = {}
    for context in (TOPK - 2, TOPK - 1, 50, 500, 5000):
        f = flops(graph(Phase.decode(1, context)))
        seen[context] = (sum(f[n] for n in attention), f["indexer.scores"])
        assert f["indexer.scores"] == (context + 1) * (2 * IH * ID + 3 * IH) + 3 * IH
    attn = [a for a, _ in seen.values()]
    index = [i for _, i in seen.values()]
    assert attn[0] < attn[1] == attn[2] == attn[3] == attn[4]  # capped from context + 1 = topk on
    assert index == sorted(index) and len(set(index)) == len(index)  # grows with every key
    # prefill: beyond topk, each further prompt token adds exactly topk pairs of attention
    per_token = [flops(graph(Phase.prefill(1, s)))["qk"] for s in (20, 21, 22)]
    assert per_token[1] - per_token[0] == per_token[2] - per_token[1] == 2 * HEADS * TOPK * (NOPE + ROPE)


# -- bytes --------------------------------------------------------------------------------------------------------

KEY_BYTES = ID + 4  # fp8 e4m3 values, one fp32 scale per 128: 132 bytes a token
LATENT_BYTES = (R + ROPE) * 2  # bf16 latent + rope key


@pytest.mark.parametrize("context", [3, 20], ids=["below_topk", "above_topk"])
def test_decode_bytes_by_hand(context):
    batch = 2
    g = graph(Phase.decode(batch, context))
    t = traffic(g)
    k = min(TOPK, context + 1)
    # the indexer reads its whole key cache (every key is scored) and writes fp32 scores
    q_bytes = batch * (IH * ID + 4 * IH)  # fp8 q, one fp32 scale per head
    assert t["indexer.scores"].bytes_read == q_bytes + batch * (context + 1) * KEY_BYTES + batch * IH * 2
    assert t["indexer.scores"].kv_cache_bytes == batch * (context + 1) * KEY_BYTES
    assert t["indexer.scores"].bytes_written == batch * (context + 1) * 4
    assert t["indexer.top_k"].bytes_read == batch * (context + 1) * 4
    assert t["indexer.top_k"].bytes_written == batch * k * 4  # int32 positions
    # the gather reads only the k selected latent entries (and the indices)
    assert t["gather_selected"].bytes_read == batch * k * LATENT_BYTES + batch * k * 4
    assert t["gather_selected"].kv_cache_bytes == batch * k * LATENT_BYTES
    assert t["gather_selected"].bytes_written == batch * k * LATENT_BYTES + batch * k * R * 2
    # attention over them: q (absorbed, HEADS x (R + ROPE)) and the selected entries
    assert t["qk"].bytes_read == batch * HEADS * (R + ROPE) * 2 + batch * k * LATENT_BYTES
    assert t["av"].bytes_read == batch * HEADS * k * 2 + batch * k * R * 2


def test_fused_plan_gathers_inside_the_attention_kernel():
    g = graph(Phase.decode(2, 20))
    part = apply(strategy("fused"), g)
    assert part.kernel_of["gather_selected"] == part.kernel_of["qk"] == part.kernel_of["av"]
    assert not {"selected_entries", "selected_latents"} & part.materialized
    assert "indexer.k_entry" in part.materialized  # a new KV-cache entry always reaches memory
    t = traffic(g, strategy("fused"))
    k = min(TOPK, 21)
    # the attention kernel reads k - 1 cached entries per sequence; the new token's own entry is made in the
    # same kernel (and written to the cache by it), so it is not read back
    assert sum(x.kv_cache_bytes for n, x in t.items() if n in ("gather_selected", "qk", "softmax", "av")) == \
        2 * (k - 1) * LATENT_BYTES


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_prefill_bytes_of_the_index_scores(causal):
    batch, seq = 2, 10
    t = traffic(graph(Phase.prefill(batch, seq), causal=causal))
    q_bytes = batch * seq * (IH * ID + 4 * IH)
    assert t["indexer.scores"].bytes_read == q_bytes + batch * seq * KEY_BYTES + batch * seq * IH * 2
    assert t["indexer.scores"].bytes_written == batch * seq * seq * 4  # the whole [Sq, Sk] fp32 score matrix
    assert t["indexer.hadamard_k"].kv_cache_bytes == batch * seq * KEY_BYTES  # the new keys, written to the cache


# -- the KV cache ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("context", [3, 20])
def test_kv_cache_per_token_is_latent_rope_and_indexer_key(context):
    batch = 2
    g = graph(Phase.decode(batch, context))
    assert kv_cache_bytes(g) == batch * (context + 1) * (LATENT_BYTES + KEY_BYTES)
    assert kv_cache_bytes(graph(Phase.decode(batch, context), indexer=None)) == batch * (context + 1) * LATENT_BYTES


class Dims:
    """A mixer at DeepSeek-V3.2's hidden size, 7168."""

    d_model = 7168

    def __init__(self, part):
        self.part = part

    def build(self, *args):
        return self.part.build(*args)


# DeepSeek-V3.2's attention (config.json): 128 heads, kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128,
# q_lora_rank 1536; index_n_heads 64, index_head_dim 128, index_topk 2048.
V32_MLA = MLA(512, 128, 64, 128, 1536)
V32 = Dims(LatentAttention(128, V32_MLA, Indexer(64, 128, 2048)))


@pytest.mark.parametrize("kv, latent", [(BF16, 576 * 2), (FP8, 576)])
def test_v32_kv_cache_per_token_per_layer(kv, latent):
    g = graph(Phase.decode(1, 1), precision=Precision(BF16, BF16, kv), dims=V32)
    assert kv_cache_bytes(g) == 2 * (latent + 132)  # 2 tokens: latent + rope key at the KV dtype, fp8 index key


# -- parameters and tensor parallelism ---------------------------------------------------------------------------

def indexer_params(g):
    return sum(t.numel for t in g.weights() if ".indexer." in t.name)


def test_v32_indexer_parameters():
    want = 64 * 128 * 1536 + 128 * 7168 + 2 * 128 + 64 * 7168  # wq_b, wk, k_norm weight + bias, weights_proj
    g = graph(Phase.decode(1, 1), dims=V32)
    assert indexer_params(g) == want
    names = {t.name for t in g.weights() if ".indexer." in t.name}
    assert names == {"self_attn.indexer.wq_b.weight", "self_attn.indexer.wk.weight",
                     "self_attn.indexer.k_norm.weight", "self_attn.indexer.k_norm.bias",
                     "self_attn.indexer.weights_proj.weight"}
    assert g.params() == graph(Phase.decode(1, 1), dims=Dims(LatentAttention(128, V32_MLA))).params() + want


def test_the_indexer_is_replicated_under_tensor_parallelism():
    phase = Phase.decode(2, 20)
    one, two = graph(phase, tp=1), graph(phase, tp=2)
    assert indexer_params(one) == indexer_params(two)
    f1, f2 = flops(one), flops(two)
    for name in indexer_flops(2, 1, 20, True):
        assert f1[name] == f2[name], name
    assert f2["qk"] * 2 == f1["qk"]  # the MLA heads split
    assert kv_cache_bytes(one) == kv_cache_bytes(two)  # latent and indexer caches whole on every GPU


def test_an_indexer_needs_the_q_latent():
    with pytest.raises(OpgraphError, match="q_lora_rank"):
        LatentAttention(HEADS, MLA(R, NOPE, ROPE, V), IDX)


# -- sweeps trace through the selection -------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_sweep_matches_direct_builds_across_topk(phase):
    def build(ph):
        return Model("dsa", ph, [Block("layer", 1, graph(ph))])

    lengths = np.array([1, 3, TOPK - 1, TOPK, TOPK + 1, 40, 300], dtype=np.int64)
    batches = np.full(len(lengths), 2, dtype=np.int64)
    grid = Sweeper(build, strategy("fused"), H100, phase).grid(batches, lengths)
    for i, n in enumerate(lengths.tolist()):
        direct = analyze(build(Phase.of(phase, 2, n)), strategy("fused"), H100).totals
        assert int(grid.flops[i]) == direct.flops
        assert int(grid.bytes[i]) == direct.bytes


@pytest.mark.parametrize("extra", [["--max-batch-tokens", "512"], ["--draft", "mtp", "--acceptance", "0.7"],
                                   ["--prefix", "512"]], ids=["chunked", "speculative", "prefix"])
def test_deepseek_v32_serves_chunks_verify_steps_and_cached_prefixes(extra):
    """Each of these runs queries over a cache several at a time: prompt chunks of 512 (vLLM's chunked prefill of a
    1,024-token prompt), the 2-token verify step of one MTP draft token, the 512 tokens after a cached prefix."""
    import json

    from userland import opgraph
    r = opgraph("serve", "deepseek-v3.2", "--hardware", "h200", "--tp", "8", "--concurrency", "2", "--prompt", "1024",
                "--output", "8", "--format", "json", *extra)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ttft_s"] > 0 and d["tpot_s"] > 0
