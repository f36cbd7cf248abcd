"""Rotary position embeddings: a layer's queries and keys rotated in one kernel.

A kernel with a rope op and no matrix product, attention, collective or norm is a rope kernel; the elementwise work
fused into it (the KV-cache write beside it) is priced with it. Its own class because its kernels reach a different
share of the bandwidth from other elementwise kernels of the same bytes: measured on an H200 as vLLM compiles it
(benchmarks/data/h200-opgraph.csv.gz), rope moves its bytes about 1.5-2.3x slower than SiLU x mul at 100-2,000 tokens,
since every element also gathers its position's cos and sin. A calibration without a rope table prices it as
elementwise (its class before it had one). A measured row rotates `tokens` tokens' `heads` query and `kv_heads` key
heads of `head_dim` (NeoX style, every dim), reading and writing them once.
"""

from __future__ import annotations

from opgraph.pricing.kinds import VECTOR_PARAMS, KernelClass, Row, compiled

ROPE = "rope"


def _build(b, s: dict) -> list:
    """One rope op over the queries and keys side by side: vLLM's and SGLang's rotary kernels rotate both in one
    launch (two ops on separate tensors would be two kernels: a kernel is one connected piece of the graph)."""
    tokens, d = s["tokens"], s["head_dim"]
    b.rope("rope", b.input("qk", (tokens, (s["heads"] + s["kv_heads"]) * d)), head_dim=d, out="qk_rot")
    return []


def _rotate(qk, positions, cos_sin):
    """NeoX-style rotary embedding of every head of qk [tokens, heads x head_dim] at its token's position, the cos
    and sin read from a [positions, head_dim] cache (cos half, then sin half) as vLLM's RotaryEmbedding keeps them."""
    import torch  # where bench runs only: torch is an optional extra
    cos, sin = (t.unsqueeze(1) for t in cos_sin[positions].chunk(2, dim=-1))
    x = qk.view(qk.shape[0], -1, cos_sin.shape[-1])
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).view_as(qk)


def _bench(torch, dt, s: dict, dev: str):
    tokens, d, positions = s["tokens"], s["head_dim"], 8192
    qk = torch.randn(tokens, (s["heads"] + s["kv_heads"]) * d, dtype=dt, device=dev)
    return compiled(torch, _rotate, (qk, torch.randint(0, positions, (tokens,), device=dev)),
                    (torch.randn(positions, d, dtype=dt, device=dev),))


CLASSES = (KernelClass(ROPE, lambda op: op.kind == "rope", 90, group="vector", kinds=frozenset({"rope"}), rows=(
    Row("rope", ("tokens", "heads", "kv_heads", "head_dim"), "rotary embedding of a layer's queries and keys, one "
        "kernel", _build, _bench),), fitted=VECTOR_PARAMS, fallback="elementwise", about="rotary embeddings"),)
