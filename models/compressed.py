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
from opgraph.core.tensor import FP32, INT32, DType, Role, Tensor
from .parallel import Parallel
from .pieces import INDEX_FP8, Keys, norm, piece, proj, shared_selection

# FlashMLA's sparse kernels, which run this attention in vLLM, SGLang and TensorRT-LLM, take 64 or 128 query heads: a
# GPU with fewer pads its queries with zeros up to the next and computes them all (vLLM's
# DeepseekV4MultiHeadLatentAttentionWrapper.padded_heads; sgl_kernel's flash_mla_sparse_fwd callers pad to 64).
KERNEL_HEADS = (64, 128)

# The CSA compressor's windows overlap (its reference `coff = 1 + (compress_ratio == 4)`): each entry pools 2m
# slots, the kv and scores of the window before and this one, so it projects 2 x width channels.
OVERLAPPING_RATIO = 4


# The compressors (CompressedAttention.compressor): DeepSeek-V4's, whose scores add a learned position bias (ape);
# DeepSeek-V4.1's, which pools without one (ratio 2) or, at ratio 1, projects and norms each token's entry alone.
COMPRESSORS = ("v4", "gated", "plain")


def _stored(dtype: DType | None) -> dict:
    """A cache entry's dtype for an op: the one given, or none (then the builder's KV-cache type)."""
    return {} if dtype is None else dict(dtype=dtype)


def overlap(ratio: int) -> int:
    """How many windows of `ratio` positions one entry pools: 2 for the overlapping CSA compressor, else 1."""
    return 2 if ratio == OVERLAPPING_RATIO else 1


def _latent(b: GraphBuilder, x: Tensor, phase: Phase, *, ratio: int, width: int, prefix: str, kind: str = "v4",
            key_dim: int | None = None) -> tuple[Tensor | None, Tensor | None]:
    """The entries the step's new tokens complete, pooled and RMS-normed before rope, [B, E, width], or None where
    they complete none: E = (past + new) // ratio - past // ratio. Reference Compressor: wkv and wgate
    [overlap x width, d] (bf16 in the checkpoint, computed in fp32) on every new token, its score plus the
    position's ape (`kind` v4; V4.1's "gated" has none), and every `ratio` positions an entry pooled and normed
    (ops.compress_pool, norm [width]) from its window's slots (fp32 kv and scores, a fixed size a sequence kept
    with the cache, of which a step writes its own tokens' rows and reads the others' only to pool). The "plain"
    kind (DeepSeek-V4.1's ratio 1): wkv alone, at the activations' type, and the norm, an entry a token. Ops and
    results are named after the checkpoint's module, `prefix` (attn.compressor., attn.indexer.compressor.), without
    the attention's own prefix. Under tensor parallelism it is whole on every GPU, as the single KV head is.
    With `key_dim` (DeepSeek-V4.1's indexer at its kv source), also each entry's index key before rope, k_norm(wk
    latent) [B, E, key_dim] (wk and k_norm under the attention's indexer.), else None: (latent, key)."""
    tag = prefix.split(".", 1)[1]  # "compressor." or "indexer.compressor."
    norm_weight = f"{prefix}norm.weight"
    top = prefix[:-len(tag)]  # the attention's own prefix, which the indexer's weights are under
    if kind == "plain":
        kv = b.linear(f"{tag}wkv", x, b.weight(f"{prefix}wkv.weight", (width, x.shape[-1])), out=f"{tag}kv")
        latent = norm(b, f"{tag}norm", kv, norm_weight, out=f"{tag}pooled")
        if key_dim is None:
            return latent, None
        key = proj(b, "indexer.wk", latent, key_dim, prefix=top, out="indexer.k")
        return latent, norm(b, "indexer.k_norm", key, f"{top}indexer.k_norm.weight", out="indexer.k_normed")
    channels = overlap(ratio) * width
    kv = b.linear(f"{tag}wkv", x, b.weight(f"{prefix}wkv.weight", (channels, x.shape[-1])), out=f"{tag}kv",
                  dtype=FP32)
    score = b.linear(f"{tag}wgate", x, b.weight(f"{prefix}wgate.weight", (channels, x.shape[-1])),
                     out=f"{tag}score", dtype=FP32)
    ape = b.weight(f"{prefix}ape", (ratio, channels), FP32) if kind == "v4" else None
    slots = overlap(ratio) * ratio
    kept = slots - minimum(phase.new_tokens, slots)
    kept = b.cache(f"{tag}state", (phase.batch, kept, 2 * channels), FP32) if phase.past and kept else None
    entries = (phase.past + phase.new_tokens) // ratio - phase.past // ratio
    key = None if key_dim is None else (b.weight(f"{top}indexer.wk.weight", (key_dim, width)),
                                        b.weight(f"{top}indexer.k_norm.weight", (key_dim,)))
    pooled = b.compress_pool(f"{tag}pool", kv, score, ape, b.weight(norm_weight, (width,)), stride=ratio,
                             width=width, entries=entries, kept=kept, key=key, out=f"{tag}pooled",
                             key_out="indexer.k_normed", state_out=f"{tag}state_rows", dtype=FP32,
                             state_dtype=FP32)
    if not entries:
        return None, None
    return pooled[0], (pooled[1] if key is not None else None)


def compress_entries(b: GraphBuilder, x: Tensor, phase: Phase, *, ratio: int, width: int, rope_dim: int,
                     prefix: str, rotate: bool = False) -> Tensor | None:
    """DeepSeek-V4's compressor: the entries the step's new tokens complete (`_latent`), rotated (rope on their last
    rope_dim) and written to the layer's compressed cache (role KV_CACHE), or None where they complete none; the
    indexer's (`rotate`) Hadamard-transformed after rope and stored in fp8 (INDEX_FP8)."""
    tag = prefix.split(".", 1)[1]
    e, _ = _latent(b, x, phase, ratio=ratio, width=width, prefix=prefix)
    if e is None:
        return None
    if not rotate:
        return b.rope(f"{tag}rope", e, head_dim=width, rotary_dim=rope_dim, out=f"{tag}entry", role=Role.KV_CACHE)
    e = b.rope(f"{tag}rope", e, head_dim=width, rotary_dim=rope_dim, out=f"{tag}rotated")
    return b.hadamard(f"{tag}hadamard", e, dim=width, out=f"{tag}entry", role=Role.KV_CACHE, dtype=INDEX_FP8)


def _cached_entries(b: GraphBuilder, name: str, phase: Phase, ratio: int, width: int, new: Tensor | None,
                    dtype=None, *, source: bool = True) -> list[Tensor]:
    """The compressed entries a step's queries see: those cached before it (past // ratio) and those it pooled; or,
    where the layer is not their `source`, all (past + new) // ratio of them from the cache the source layer wrote
    (borrowed: its to hold)."""
    if not source:
        n = (phase.past + phase.new_tokens) // ratio
        return [b.cache(name, (phase.batch, n, width), dtype, borrowed=True)] if n else []
    keys = [b.cache(name, (phase.batch, phase.past // ratio, width), dtype)] if phase.past // ratio else []
    return keys + ([new] if new is not None else [])


def indexer(b: GraphBuilder, x: Tensor, qr: Tensor, phase: Phase, *, heads: int, head_dim: int, topk: int,
            ratio: int, rope_dim: int, prefix: str) -> Tensor | None:
    """The compressed entries each query attends to, [B, Sq, min(topk, entries)] (int32), or None where there are
    none yet (its compressor, q and weights run all the same, as the reference's do). Reference Indexer: wq_b [heads x head_dim, q_lora_rank] on the normed q latent `qr`, rope, the Hadamard
    transform, fp8 (vLLM's cache stores it so; the reference simulates fp4); its keys are a compressor's of
    head_dim (`compress_entries` with rotate), cached in fp8 (132 bytes an entry for 128); weights_proj [heads, d]
    (bf16);
    the scores (ops.index_scores) over the entries each query sees, then the top min(topk, entries) of them. Whole on
    every GPU under tensor parallelism, as DeepSeek-V3.2's indexer is (pieces.lightning_indexer)."""
    entry = compress_entries(b, x, phase, ratio=ratio, width=head_dim, rope_dim=rope_dim,
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


def latent_indexer(b: GraphBuilder, x: Tensor, qr: Tensor, key: Tensor | None, phase: Phase, *, index,
                   ratio: int, rope_dim: int, source: bool, prefix: str) -> Tensor | None:
    """DeepSeek-V4.1's indexer (its reference inference/model.py Indexer; models.parts.Indexer from_latent): the
    compressed entries each query attends to, [B, Sq, min(topk, entries)] (int32), or None where there are none yet.

    - Its keys: at the layer that compresses (`source`), the new entries' `key` (wk [head_dim, width] and k_norm on
      each one's latent, `_latent`), rope on the last rope_dim, cached at index.key_dtype; elsewhere the source's
      cache, borrowed.
    - wq_b [heads x head_dim, q_lora_rank] on the normed q latent `qr`, rope; weights_proj [heads, d] (bf16).
    - The scores (ops.index_scores) over every entry each query sees (the reference scores them all, then masks):
      masked to an earlier layer's candidate blocks where index.masked (ops.candidate_mask, the candidates read as
      an input); at the candidate source, its best blocks picked for the layers after it (ops.candidate_blocks).
    - The top min(topk, entries), kept as an output for the layers that reuse it.

    A layer that reuses the selection (index.shared) reads it as an input and runs none of this. Whole on every GPU
    under tensor parallelism, as V4's indexer."""
    entries = (phase.past + phase.new_tokens) // ratio
    if index.shared:
        return shared_selection(b, phase, index.topk, entries) if entries else None
    if key is not None:
        key = b.rope("indexer.rope_k", key, head_dim=index.head_dim, rotary_dim=rope_dim, out="indexer.k_entry",
                     role=Role.KV_CACHE, **_stored(index.key_dtype))
    keys = _cached_entries(b, "indexer.k_cache", phase, ratio, index.head_dim, key, index.key_dtype, source=source)
    q = b.linear("indexer.wq_b", qr, b.weight(f"{prefix}indexer.wq_b.weight",
                                              (index.heads * index.head_dim, qr.shape[-1])), out="indexer.q")
    q = b.rope("indexer.rope_q", q, head_dim=index.head_dim, rotary_dim=rope_dim, out="indexer.q_rope")
    w = proj(b, "indexer.weights_proj", x, index.heads, prefix=prefix, out="indexer.weights")
    if not keys:
        return None
    positions = phase.past + phase.new_tokens
    scores = b.index_scores("indexer.scores", q, keys, w, heads=index.heads, head_dim=index.head_dim, stride=ratio,
                            positions=positions, out="indexer.scores", dtype=FP32)
    if index.masked:
        kept, block = index.masked
        shape = (phase.batch, phase.new_tokens, minimum(kept, -(-entries // block)))
        scores = b.candidate_mask("indexer.candidate_mask", scores, b.input("indexer.shared_candidates", shape, INT32),
                                  out="indexer.masked_scores")
    if index.candidates:
        kept, block = index.candidates
        b.keep(b.candidate_blocks("indexer.candidate_blocks", scores, block=block, keep=kept,
                                  out="indexer.candidates", dtype=INT32))
    return b.keep(b.top_k("indexer.top_k", scores, k=minimum(index.topk, entries), out="indexer.topk_indices",
                          dtype=INT32))


@piece("attention")
def compressed_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, head_dim: int, rope_dim: int,
                         q_lora_rank: int, o_groups: int, o_lora_rank: int, window: int, ratio: int = 0,
                         index=None, compressor: str = "v4", source: bool = True, entry_dtype: DType | None = None,
                         par: Parallel = Parallel.SINGLE, prefix: str = "attn.") -> Tensor:
    """DeepSeek-V4's attention (reference Attention.forward), one GPU's share under `par`:

    - q: wq_a [q_lora_rank, d] -> q_norm -> wq_b [heads x head_dim, q_lora_rank], each head RMS-normed without a
      scale, rope on its last rope_dim;
    - kv: wkv [head_dim, d] -> kv_norm -> rope: the one key and value of the token (K = V), the window's cache entry;
    - with a compress `ratio`, the compressor's entries (`compress_entries`), and with `index` (models.parts.Indexer:
      CSA) the indexer's selection of them (`indexer`); DeepSeek-V4.1's (`compressor` gated or plain): entries
      stored at `entry_dtype`, compressed by this layer or, where it is not their `source`, read from the cache of
      the layer that is, and selected by `latent_indexer`;
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
    if ratio and compressor != "v4":  # DeepSeek-V4.1
        latent, key = (_latent(b, x, phase, ratio=ratio, width=head_dim, prefix=f"{prefix}compressor.",
                               kind=compressor, key_dim=index.head_dim if index is not None else None)
                       if source else (None, None))
        new = None if latent is None else b.rope("compressor.rope", latent, head_dim=head_dim, rotary_dim=rope_dim,
                                                 out="compressor.entry", role=Role.KV_CACHE,
                                                 **_stored(entry_dtype))
        entries = _cached_entries(b, "compressed_cache", phase, ratio, head_dim, new, entry_dtype, source=source)
        if index is not None:
            picked = latent_indexer(b, x, qr, key, phase, index=index, ratio=ratio, rope_dim=rope_dim,
                                    source=source, prefix=prefix)
    elif ratio:
        new = compress_entries(b, x, phase, ratio=ratio, width=head_dim, rope_dim=rope_dim,
                               prefix=f"{prefix}compressor.")
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
