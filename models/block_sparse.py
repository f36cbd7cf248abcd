"""MiniMax-M3's sparse attention (MSA): grouped-query attention over the blocks of keys a lightning indexer picks.

From vLLM's vllm/models/minimax_m3 (nvidia/model.py MiniMaxM3SparseAttention, common/indexer.py,
common/ops/index_topk.py, common/sparse_attention.py) and SGLang's models/minimax_m3.py: the keys are grouped into
blocks of `block` positions; an indexer of `index_heads` query heads (one per KV head) and one key head of
index_dim, each normed per head and rotated as the main q and k are, scores every block by the largest dot product
over its keys; each KV head's query heads attend to the `top_blocks` blocks its index head picks, the query's own
block forced among them. Each index key is cached beside the layer's K and V.
"""

from __future__ import annotations

from opgraph.core.graph import GraphBuilder
from opgraph.core.phase import Phase
from opgraph.core.sizes import minimum
from opgraph.core.tensor import FP32, INT32, Role, Tensor
from .parallel import Parallel
from .pieces import FULL, _attend, _qk_norm, piece, proj


@piece("attention")
def block_sparse_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, kv_heads: int, head_dim: int,
                           rotary_dim: int | None, index_heads: int, index_dim: int, top_blocks: int, block: int,
                           par: Parallel = Parallel.SINGLE, prefix: str = "self_attn.") -> Tensor:
    """One GPU's share under `par`:

    - q, k, v as GQA's (q_proj, k_proj, v_proj), each head RMS-normed with one [head_dim] scale (q_norm, k_norm),
      rope on its first rotary_dim dims;
    - the indexer: index_q_proj [index_heads*index_dim, d] and index_k_proj [index_dim, d], normed per head
      (index_q_norm, index_k_norm) and rotated likewise; the index key is the layer's second cache entry
      (index_dim values a position, at the activation dtype);
    - the block scores (ops.block_scores) and each index head's top `top_blocks` blocks (ops.top_k, one comparison a
      score);
    - attention of each query over its KV head's selected blocks (ops.block_select_pairs: every key before it while
      it sits in the first top_blocks blocks, else top_blocks - 1 whole blocks and its own up to it), o_proj and its
      all-reduce.

    Under tensor parallelism the heads split as GQA's (KV heads replicated when tp exceeds them) and the index
    heads with the KV heads (one a KV head); the index key is computed and cached whole on every GPU."""
    d = x.shape[-1]
    h, kvh = par.heads(heads), par.kv_heads(kv_heads)
    ih = par.kv_heads(index_heads)
    q = proj(b, "q_proj", x, h * head_dim, prefix=prefix, out="q")
    k = proj(b, "k_proj", x, kvh * head_dim, prefix=prefix, out="k")
    v = proj(b, "v_proj", x, kvh * head_dim, prefix=prefix, out="v", role=Role.KV_CACHE)
    q = _qk_norm(b, "q_norm", q, "head", h, head_dim, par, prefix, heads * head_dim, Role.ACTIVATION)
    k = _qk_norm(b, "k_norm", k, "head", kvh, head_dim, par, prefix, kv_heads * head_dim, Role.ACTIVATION)
    q = b.rope("rope_q", q, head_dim=head_dim, rotary_dim=rotary_dim, out="q_rope")
    k = b.rope("rope_k", k, head_dim=head_dim, rotary_dim=rotary_dim, out="k_rope", role=Role.KV_CACHE)
    iq = proj(b, "index_q_proj", x, ih * index_dim, prefix=prefix, out="index_q")
    ik = proj(b, "index_k_proj", x, index_dim, prefix=prefix, out="index_k")
    iq = _qk_norm(b, "index_q_norm", iq, "head", ih, index_dim, par, prefix, index_heads * index_dim, Role.ACTIVATION)
    ik = _qk_norm(b, "index_k_norm", ik, "head", 1, index_dim, par, prefix, index_dim, Role.ACTIVATION)
    iq = b.rope("rope_index_q", iq, head_dim=index_dim, rotary_dim=rotary_dim, out="index_q_rope")
    act = b.precision.act
    ik = b.rope("rope_index_k", ik, head_dim=index_dim, rotary_dim=rotary_dim, out="index_k_entry", role=Role.KV_CACHE,
                dtype=act)
    past, positions = phase.past, phase.past + phase.new_tokens
    index_keys = ([b.cache("index_k_cache", (phase.batch, past, index_dim), act)] if past else []) + [ik]
    scores = b.block_scores("block_scores", iq, index_keys, heads=ih, head_dim=index_dim, block=block,
                            positions=positions, out="block_scores", dtype=FP32)
    blocks = (positions + block - 1) // block
    picked = b.top_k("block_top_k", scores, k=ih * minimum(top_blocks, blocks), out="selected_blocks", dtype=INT32)
    keys, values = [k], [v]
    if past:
        keys.insert(0, b.cache("k_cache", (phase.batch, past, kvh * head_dim)))
        values.insert(0, b.cache("v_cache", (phase.batch, past, kvh * head_dim)))
    return _attend(b, q, keys, values, phase, d, par, FULL, True, prefix, False, heads=h, kv_heads=kvh,
                   head_dim=head_dim, v_dim=head_dim, select=top_blocks * block, block=block, indices=picked)
