"""Attention: the score product, its softmax and the value product of one layer, as FlashAttention runs them.

A kernel that computes scores (an op qk) is attention: decode attention when its queries are one position per
sequence over cached keys, prefill attention otherwise. Its softmax and value product are priced with it, and its formula reads the
sequences x KV heads its scores cover (a cost per row: FlashAttention's work per sequence and head group). Where
exponentials are counted (a calibration's exp rate), their overlap with the matrix products is fitted too
(FlashAttention-3 overlaps them only in part: Shah et al., 2024, sections 3.1-3.2).

A measured row is causal attention of batch x seq_len new tokens over themselves (FlashAttention computes only the
unmasked blocks), or one query per sequence over context+1 cached keys.

Decode attention over an fp8 KV cache is a class of its own, `decode_attention_fp8` (a row's dtype fp8: the cache in
fp8, the queries in bf16): vLLM 0.24.0's FlashAttention-3 and FA4 kernels on the H200 take 0.87-1.10 of their bf16
time over the same shapes (aiconfigurator's generation_attention_perf, median by size of the cache read), not the
half its bytes would give, so the bf16 table (its fallback, where a calibration has no table of its own) prices it
too fast. TensorRT-LLM 1.3.0rc20's kernels do gain (0.61-0.86), SGLang 0.5.14's do not (0.88-1.35).
"""

from __future__ import annotations

import attrs

from opgraph.core.tensor import BF16, DTYPES, FP8, Precision
from opgraph.pricing.kinds import KERNEL_PARAMS, PER_ROW, KernelClass, Row

PREFILL_ATTENTION, DECODE_ATTENTION = "prefill_attention", "decode_attention"
DECODE_FP8 = f"{DECODE_ATTENTION}_fp8"  # over an fp8 KV cache
FNS = frozenset({"qk", "softmax", "av"})


def _takes(op) -> bool:
    """The score and value products, and the softmax over scores [batch, heads, queries, keys] (not a router's)."""
    return op.fn in FNS and (op.fn != "softmax" or len(op.inputs[0].shape) == 4)


def decoding(ops) -> bool | None:
    """Whether the kernel's scores are one query per sequence over cached keys (decode attention); None: no scores.
    One query over itself alone (a one-token prompt) is prefill: there is no cache to read."""
    for op in ops:
        if op.fn == "qk":
            queries, keys = op.outputs[0].shape[2], op.outputs[0].shape[3]
            return queries == 1 and keys > 1
    return None


def attention_rows(ops) -> dict:
    for op in ops:
        if op.fn == "qk":
            q, keys, scores = op.inputs[0], op.inputs[1], op.outputs[0]
            batch, heads = scores.shape[0], scores.shape[1]
            return {"attention_rows": batch * (keys.shape[-1] // (q.shape[-1] // heads))}
    return {}


def _cache_dtype(ops) -> str:
    """The class of a decode kernel by its cached keys' storage: fp8 or not."""
    scores = next(op for op in ops if op.fn == "qk")
    return DECODE_FP8 if any(t.dtype.name == "fp8" for t in scores.inputs[1:]) else DECODE_ATTENTION


def _precision(dtype: str) -> Precision:
    """A measured decode row's storage: an fp8 row's cache in fp8 and its queries in bf16; else all in `dtype`."""
    return Precision(weight=BF16, act=BF16, kv=FP8) if dtype == "fp8" else Precision.uniform(DTYPES[dtype])


def _build(b, s: dict, decode: bool) -> list:
    batch, heads, kv_heads, d = s["batch"], s["heads"], s["kv_heads"], s["head_dim"]
    kw = dict(heads=heads, kv_heads=kv_heads, head_dim=d, causal=True)
    if decode:
        q = b.input("q", (batch, 1, heads * d))
        keys = [b.cache("k_cache", (batch, s["context"] + 1, kv_heads * d))]
        values = [b.cache("v_cache", (batch, s["context"] + 1, kv_heads * d))]
    else:
        q = b.input("q", (batch, s["seq_len"], heads * d))
        keys = [b.input("k", (batch, s["seq_len"], kv_heads * d))]
        values = [b.input("v", (batch, s["seq_len"], kv_heads * d))]
    scores = b.attention_scores("qk", q, keys, out="scores", **kw)
    probs = b.softmax("softmax", scores, causal=True, out="probs")
    b.attention_values("av", probs, values, out="out", **kw)
    return []


def _bench(torch, dt, s: dict, dev: str, decode: bool):
    b, h, kv, d = s["batch"], s["heads"], s["kv_heads"], s["head_dim"]
    queries, keys = (1, s["context"] + 1) if decode else (s["seq_len"], s["seq_len"])
    q = torch.randn(b, h, queries, d, dtype=dt, device=dev)
    k = torch.randn(b, kv, keys, d, dtype=dt, device=dev)
    v = torch.randn(b, kv, keys, d, dtype=dt, device=dev)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    return lambda: sdpa(q, k, v, is_causal=not decode, enable_gqa=h != kv)


def _class(name: str, decode: bool, row: Row, order: int) -> KernelClass:
    def claims(ops) -> bool:
        d = decoding(ops)
        return d is not None and d == decode
    return KernelClass(name, _takes, order, claims=claims, group="attention", kinds=frozenset({"softmax"}),
                       features=attention_rows,
                       rows=(row,), fitted=(*KERNEL_PARAMS, PER_ROW), special=True,
                       about=f"FlashAttention over {'the KV cache, one query per sequence' if decode else 'a prompt'}")


PREFILL = _class(PREFILL_ATTENTION, False, Row(
    "prefill_attention", ("batch", "seq_len", "heads", "kv_heads", "head_dim"), "causal, over an empty cache",
    lambda b, s: _build(b, s, False), lambda *a: _bench(*a, decode=False)), 30)
DECODE = attrs.evolve(_class(DECODE_ATTENTION, True, Row(
    "decode_attention", ("batch", "context", "heads", "kv_heads", "head_dim"),
    "one new token per sequence over context+1 keys (dtype fp8: an fp8 cache, bf16 queries)",
    lambda b, s: _build(b, s, True), lambda *a: _bench(*a, decode=True), precision=_precision), 31),
    named=_cache_dtype, by_dtype=lambda dtype: DECODE_FP8 if dtype == "fp8" else DECODE_ATTENTION)
CLASSES = (PREFILL, DECODE, attrs.evolve(DECODE, name=DECODE_FP8, rows=(), fallback=DECODE_ATTENTION,
                                         about="FlashAttention over an fp8 KV cache, one query per sequence"))
