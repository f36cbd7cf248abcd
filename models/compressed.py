"""DeepSeek-V4's attention: a sliding window of raw keys beside compressed entries, each pooling several positions.

From DeepSeek-V4's reference inference code (deepseek-ai/DeepSeek-V4-Pro, inference/model.py: Attention,
Compressor, Indexer; inference/kernel.py sparse_attn), with the shapes its released checkpoints hold. One KV head of
head_dim serves every query head as key and value (K = V), so a layer caches one head_dim vector a token in its window
and one a compressed entry:

- window only (compress ratio 0): the last `window` positions;
- HCA (ratio m = 128): the window and every entry pooled so far, one per m positions;
- CSA (ratio m = 4, with an indexer): the window and the `topk` entries an indexer picks of those pooled so far, one
  per m positions over overlapping windows of 2m.

The attention kernel is index-based (sparse_attn takes each query's list of window and entry indices; vLLM's FlashMLA
sparse kernels likewise), so it computes only the pairs each query sees, whatever the causal setting.
"""

from __future__ import annotations

from opgraph.core.graph import GraphBuilder
from opgraph.errors import OpgraphError
from opgraph.core.ops import Compressed
from opgraph.core.phase import Phase
from opgraph.core.sizes import minimum
from opgraph.core.tensor import FP32, INT32, Role, Tensor
from .parallel import Parallel
from .pieces import INDEX_FP8, Keys, norm, piece, proj

# FlashMLA's sparse kernels, which run this attention in vLLM, SGLang and TensorRT-LLM, take 64 or 128 query heads: a
# GPU with fewer pads its queries with zeros up to the next and computes them all (vLLM's
# DeepseekV4MultiHeadLatentAttentionWrapper.padded_heads; sgl_kernel's flash_mla_sparse_fwd callers pad to 64).
KERNEL_HEADS = (64, 128)

# The CSA compressor's windows overlap (its reference `coff = 1 + (compress_ratio == 4)`): each entry pools 2m
# slots, the kv and scores of the window before and this one, so it projects 2 x width channels.
OVERLAPPING_RATIO = 4


def overlap(ratio: int) -> int:
    """How many windows of `ratio` positions one entry pools: 2 for the overlapping CSA compressor, else 1."""
    return 2 if ratio == OVERLAPPING_RATIO else 1


def compressor(b: GraphBuilder, x: Tensor, phase: Phase, *, ratio: int, width: int, rope_dim: int, prefix: str,
               rotate: bool = False) -> Tensor | None:
    """The entries the step's new tokens complete, [B, E, width] (role KV_CACHE, written to the layer's compressed
    cache), or None where they complete none: E = (past + new) // ratio - past // ratio. Reference Compressor:
    wkv and wgate [overlap x width, d] (bf16 in the checkpoint, computed in fp32) on every new token, its score plus
    the position's ape, and every `ratio` positions an entry pooled and RMS-normed (ops.compress_pool, norm [width])
    from its window's slots (fp32 kv and scores, a fixed size a sequence kept with the cache, of which a step writes
    its own tokens' rows and reads the others' only to pool), then rotated (rope on its last rope_dim);
    the indexer's (`rotate`) then Hadamard-transformed and stored in fp8 (INDEX_FP8). Ops and results are named
    after the checkpoint's module, `prefix` (attn.compressor., attn.indexer.compressor.), without the attention's
    own prefix. Under tensor parallelism it is whole on every GPU, as the single KV head is."""
    tag = prefix.split(".", 1)[1]  # "compressor." or "indexer.compressor."
    channels = overlap(ratio) * width
    kv = b.linear(f"{tag}wkv", x, b.weight(f"{prefix}wkv.weight", (channels, x.shape[-1])), out=f"{tag}kv",
                  dtype=FP32)
    score = b.linear(f"{tag}wgate", x, b.weight(f"{prefix}wgate.weight", (channels, x.shape[-1])),
                     out=f"{tag}score", dtype=FP32)
    ape = b.weight(f"{prefix}ape", (ratio, channels), FP32)
    slots = overlap(ratio) * ratio
    kept = slots - minimum(phase.new_tokens, slots)
    kept = b.cache(f"{tag}state", (phase.batch, kept, 2 * channels), FP32) if phase.past and kept else None
    entries = (phase.past + phase.new_tokens) // ratio - phase.past // ratio
    pooled = b.compress_pool(f"{tag}pool", kv, score, ape, b.weight(f"{prefix}norm.weight", (width,)), stride=ratio,
                             width=width, entries=entries, kept=kept, out=f"{tag}pooled",
                             state_out=f"{tag}state_rows", dtype=FP32, state_dtype=FP32)
    if not entries:
        return None
    e = pooled[0]
    if not rotate:
        return b.rope(f"{tag}rope", e, head_dim=width, rotary_dim=rope_dim, out=f"{tag}entry", role=Role.KV_CACHE)
    e = b.rope(f"{tag}rope", e, head_dim=width, rotary_dim=rope_dim, out=f"{tag}rotated")
    return b.hadamard(f"{tag}hadamard", e, dim=width, out=f"{tag}entry", role=Role.KV_CACHE, dtype=INDEX_FP8)


def _cached_entries(b: GraphBuilder, name: str, phase: Phase, ratio: int, width: int, new: Tensor | None,
                    dtype=None) -> list[Tensor]:
    """The compressed entries a step's queries see: those cached before it (past // ratio) and those it pooled."""
    keys = [b.cache(name, (phase.batch, phase.past // ratio, width), dtype)] if phase.past // ratio else []
    return keys + ([new] if new is not None else [])


def indexer(b: GraphBuilder, x: Tensor, qr: Tensor, phase: Phase, *, heads: int, head_dim: int, topk: int,
            ratio: int, rope_dim: int, prefix: str) -> Tensor | None:
    """The compressed entries each query attends to, [B, Sq, min(topk, entries)] (int32), or None where there are
    none yet (its compressor, q and weights run all the same, as the reference's do). Reference Indexer: wq_b [heads x head_dim, q_lora_rank] on the normed q latent `qr`, rope, the Hadamard
    transform, fp8 (vLLM's cache stores it so; the reference simulates fp4); its keys are a compressor's of
    head_dim (`compressor` with rotate), cached in fp8 (132 bytes an entry for 128); weights_proj [heads, d] (bf16);
    the scores (ops.index_scores) over the entries each query sees, then the top min(topk, entries) of them. Whole on
    every GPU under tensor parallelism, as DeepSeek-V3.2's indexer is (pieces.lightning_indexer)."""
    entry = compressor(b, x, phase, ratio=ratio, width=head_dim, rope_dim=rope_dim,
                       prefix=f"{prefix}indexer.compressor.", rotate=True)
    keys = _cached_entries(b, "indexer.k_cache", phase, ratio, head_dim, entry, INDEX_FP8)
    q = b.linear("indexer.wq_b", qr, b.weight(f"{prefix}indexer.wq_b.weight", (heads * head_dim, qr.shape[-1])),
                 out="indexer.q")
    q = b.rope("indexer.rope_q", q, head_dim=head_dim, rotary_dim=rope_dim, out="indexer.q_rope")
    q = b.hadamard("indexer.hadamard_q", q, dim=head_dim, out="indexer.q_rotated", dtype=INDEX_FP8)
    w = proj(b, "indexer.weights_proj", x, heads, prefix=prefix, out="indexer.weights")
    if not keys:  # no entry pooled yet (a sequence's first ratio - 1 positions): q and the weights go unread
        return None
    positions = phase.past + phase.new_tokens
    scores = b.index_scores("indexer.scores", q, keys, w, heads=heads, head_dim=head_dim, stride=ratio,
                            positions=positions, out="indexer.scores", dtype=FP32)
    return b.top_k("indexer.top_k", scores, k=minimum(topk, positions // ratio), out="indexer.topk_indices",
                   dtype=INT32)


@piece("attention")
def compressed_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, head_dim: int, rope_dim: int,
                         q_lora_rank: int, o_groups: int, o_lora_rank: int, window: int, ratio: int = 0,
                         index=None, par: Parallel = Parallel.SINGLE, prefix: str = "attn.") -> Tensor:
    """DeepSeek-V4's attention (reference Attention.forward), one GPU's share under `par`:

    - q: wq_a [q_lora_rank, d] -> q_norm -> wq_b [heads x head_dim, q_lora_rank], each head RMS-normed without a
      scale, rope on its last rope_dim;
    - kv: wkv [head_dim, d] -> kv_norm -> rope: the one key and value of the token (K = V), the window's cache entry;
    - with a compress `ratio`, the compressor's entries (`compressor`), and with `index` (models.parts.Indexer:
      CSA) the indexer's selection of them (`indexer`);
    - attention of every query head over its window's keys and its entries (ops.Compressed), one learned sink
      logit a head (attn_sink, fp32) in the softmax; the output's rope undone (rope on its last rope_dim);
    - the grouped output projection: wo_a, o_groups blocks [o_lora_rank, heads x head_dim / o_groups] each on its
      group of heads, then wo_b [d, o_groups x o_lora_rank].

    The attention itself runs over the GPU's heads padded to 64 or 128 (KERNEL_HEADS): the padded heads' scores and
    values are computed and dropped. Under tensor parallelism the heads split, and with them the output
    projection's groups (o_groups must divide over the GPUs): wq_b and wo_a column-parallel, wo_b row-parallel, then an all-reduce. wq_a, wkv, their norms,
    the compressor and the indexer are whole on every GPU, and so is the cache, as MLA's latent path is."""
    local = par.heads(heads)
    groups = par.columns("the output projection's groups (o_groups)", o_groups)
    padded = next((n for n in KERNEL_HEADS if local <= n), None)
    if padded is None:
        raise OpgraphError(f"DeepSeek-V4's attention kernels take at most {KERNEL_HEADS[-1]} query heads a GPU; "
                           f"{local} here: raise --tp")
    qr = norm(b, "q_norm", proj(b, "wq_a", x, q_lora_rank, prefix=prefix, out="q_latent"), f"{prefix}q_norm.weight",
              out="q_latent_norm")
    q = proj(b, "wq_b", qr, local * head_dim, prefix=prefix, out="q")
    q = b.norm("q_head_norm", q, None, heads=local, out="q_normed")
    q = b.rope("rope_q", q, head_dim=head_dim, rotary_dim=rope_dim, out="q_rope")
    kv = norm(b, "kv_norm", proj(b, "wkv", x, head_dim, prefix=prefix, out="kv"), f"{prefix}kv_norm.weight",
              out="kv_normed")
    kv = b.rope("rope_kv", kv, head_dim=head_dim, rotary_dim=rope_dim, out="kv_entry", role=Role.KV_CACHE)
    keys = Keys("sliding", window)
    past = keys.cached(phase)
    window_keys = ([b.cache("window_cache", (phase.batch, past, head_dim))] if past else []) + [kv]
    entries, picked = [], None
    if ratio:
        new = compressor(b, x, phase, ratio=ratio, width=head_dim, rope_dim=rope_dim, prefix=f"{prefix}compressor.")
        entries = _cached_entries(b, "compressed_cache", phase, ratio, head_dim, new)
        if index is not None:
            picked = indexer(b, x, qr, phase, heads=index.heads, head_dim=index.head_dim, topk=index.topk,
                             ratio=ratio, rope_dim=rope_dim, prefix=prefix)
    seen = (Compressed(ratio, phase.past + phase.new_tokens, index.topk if index is not None else None, len(entries))
            if entries else None)
    if padded > local:  # zero query heads up to the kernel's count; their outputs are dropped unread
        q = b.pad_last("pad_heads", q, padded * head_dim, out="q_padded")
    kw = dict(heads=padded, kv_heads=1, causal=True, window=window, compressed=seen)
    s = b.attention_scores("qk", q, window_keys + entries, head_dim=head_dim, indices=picked, out="scores", **kw)
    # one sink a head, padded as the queries are (vLLM keeps them padded with -inf): at one GPU the checkpoint's own
    sinks = b.weight(f"{prefix}attn_sink", (padded if padded > local else local,), FP32)
    p = b.softmax("softmax", s, causal=True, window=window, keys=past + phase.new_tokens, sinks=sinks,
                  compressed=seen, out="probs")
    o = b.attention_values("av", p, window_keys + entries, head_dim=head_dim, out="attn", **kw)
    if padded > local:
        o = b.slice_last("unpad_heads", o, local * head_dim, out="attn_heads")
    o = b.rope("rope_o", o, head_dim=head_dim, rotary_dim=rope_dim, out="attn_unrotated")
    width = local * head_dim // groups
    o = b.grouped_linear("wo_a", o, b.weight(f"{prefix}wo_a.weight", (groups * o_lora_rank, width)), groups=groups,
                         in_dim=width, out_dim=o_lora_rank, out="attn_groups")
    y = proj(b, "wo_b", o, x.shape[-1], prefix=prefix, out=par.out("attn_out", "attn_partial"))
    return par.reduce(b, "o_allreduce", y, "attn_out")
