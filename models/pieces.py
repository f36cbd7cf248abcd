"""Reusable pieces of decoder models, written against the public GraphBuilder API.

Each piece adds its ops to a builder and returns its output tensor, so a block reads top to bottom
like its forward pass. Op names follow the checkpoints (q_proj, gate_proj, ...); weight names are
the checkpoint's names without the `model.layers.N.` prefix.
"""

from __future__ import annotations

from opgraph.graph import GraphBuilder
from opgraph.phase import Phase
from opgraph.tensor import INT32, Role, Tensor


def norm(b: GraphBuilder, name: str, x: Tensor, weight: str, *, fn: str = "rmsnorm", out: str | None = None) -> Tensor:
    """RMSNorm / LayerNorm with a learned scale over the last dim."""
    d = x.shape[-1]
    return b.norm(name, x, b.weight(weight, (d,)), fn=fn, out=out)


def gqa_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, kv_heads: int, head_dim: int,
                  causal: bool = False, prefix: str = "self_attn.") -> Tensor:
    """Grouped-query attention with rotary positions (MHA when kv_heads == heads, MQA when 1).

    The new token(s)' K and V are the KV-cache entries this step writes (role KV_CACHE, so every fusion
    plan writes them); in decode the `past` cached positions are read as well, and attention runs over
    past + new keys."""
    d = x.shape[-1]
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    q = b.linear("q_proj", x, b.weight(f"{prefix}q_proj.weight", (q_width, d)), out="q")
    k = b.linear("k_proj", x, b.weight(f"{prefix}k_proj.weight", (kv_width, d)), out="k")
    v = b.linear("v_proj", x, b.weight(f"{prefix}v_proj.weight", (kv_width, d)), out="v", role=Role.KV_CACHE)
    q = b.rope("rope_q", q, head_dim=head_dim, out="q_rope")
    k = b.rope("rope_k", k, head_dim=head_dim, out="k_rope", role=Role.KV_CACHE)
    keys, values = [k], [v]
    if phase.past:
        keys.insert(0, b.cache("k_cache", (phase.batch, phase.past, kv_width)))
        values.insert(0, b.cache("v_cache", (phase.batch, phase.past, kv_width)))
    heads_kw = dict(heads=heads, kv_heads=kv_heads, head_dim=head_dim, causal=causal)
    s = b.attention_scores("qk", q, keys, out="scores", **heads_kw)
    p = b.softmax("softmax", s, out="probs")
    o = b.attention_values("av", p, values, out="attn", **heads_kw)
    return b.linear("o_proj", o, b.weight(f"{prefix}o_proj.weight", (d, q_width)), out="attn_out")


def gated_mlp(b: GraphBuilder, x: Tensor, *, d_ffn: int, act: str = "silu", prefix: str = "mlp.") -> Tensor:
    """down(act(gate(x)) * up(x)): SwiGLU with act="silu", GeGLU with act="gelu"."""
    d = x.shape[-1]
    gate = b.linear("gate_proj", x, b.weight(f"{prefix}gate_proj.weight", (d_ffn, d)), out="gate")
    up = b.linear("up_proj", x, b.weight(f"{prefix}up_proj.weight", (d_ffn, d)), out="up")
    a = b.elementwise("act", act, gate, out="act")
    h = b.elementwise("mul", "mul", a, up, out="gated")
    return b.linear("down_proj", h, b.weight(f"{prefix}down_proj.weight", (d, d_ffn)), out="mlp_out")


def residual(b: GraphBuilder, name: str, x: Tensor, branch: Tensor, out: str) -> Tensor:
    return b.elementwise(name, "add", x, branch, out=out)


def embedding(b: GraphBuilder, phase: Phase, *, vocab: int, d_model: int) -> Tensor:
    """Token ids -> hidden states; reads only the rows the batch looks up."""
    ids = b.input("token_ids", (phase.batch, phase.new_tokens), INT32)
    return b.embedding("embedding", ids, b.weight("embed_tokens.weight", (vocab, d_model)), out="embeddings")


def lm_head(b: GraphBuilder, phase: Phase, *, vocab: int, d_model: int, tied: bool, norm_fn: str = "rmsnorm") -> Tensor:
    """Final norm and lm_head over the last layer's output. In prefill only the last position of each
    sequence goes through them, as serving engines do (the norm is per position, so slicing first is exact)."""
    h = b.input("hidden", (phase.batch, phase.new_tokens, d_model))
    if phase.new_tokens > 1:
        h = b.take_last("last_position", h, out="last_hidden")
    h = norm(b, "final_norm", h, "norm.weight", fn=norm_fn, out="final_hidden")
    w = b.weight("embed_tokens.weight" if tied else "lm_head.weight", (vocab, d_model))
    return b.linear("lm_head", h, w, out="logits")
