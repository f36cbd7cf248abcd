"""Manifold-constrained hyper-connections (mHC; Xie et al., arXiv 2512.24880), as DeepSeek-V4 runs them.

The residual stream is n = hc_mult streams of the hidden size, [tokens, n x d]. Around each sublayer
(DeepSeek-V4's reference inference/model.py Block.hc_pre and Block.hc_post, inference/kernel.py hc_split_sinkhorn):
`collapse` mixes the streams into the sublayer's input with weights computed from the streams themselves (hc_fn,
an fp32 [(2 + n) n, n d] product, then sigmoids and a Sinkhorn-normalized n x n matrix), and `expand` puts the
sublayer's output back into the streams, mixed by that matrix, in place of a residual add. The embedding is copied
into the n streams (`repeat`), and the head collapses them once more with weights of its own (hc_head, `head`).
Every piece is whole on every GPU under tensor parallelism, as a residual add is.
"""

from __future__ import annotations

from opgraph.core.graph import GraphBuilder
from opgraph.core.tensor import FP32, Tensor


def _coefficients(b: GraphBuilder, key: str, x: Tensor, *, streams: int, iters: int | None) -> Tensor:
    """pre | post | comb for a sublayer (hc_{key}_fn [(2 + n) n, n d], base, scale [3]), or pre alone for the head
    (`iters` None: hc_head_fn [n, n d], base, scale [1]); all fp32, as the checkpoint stores them."""
    m = streams if iters is None else (2 + streams) * streams
    mixes = b.linear(f"hc_{key}_mix", x, b.weight(f"hc_{key}_fn", (m, x.shape[-1]), FP32), out=f"hc_{key}_mixes",
                     dtype=FP32)
    sumsq = b.rms_stats(f"hc_{key}_stats", x, out=f"hc_{key}_sumsq", dtype=FP32)
    base = b.weight(f"hc_{key}_base", (m,), FP32)
    scale = b.weight(f"hc_{key}_scale", (1 if iters is None else 3,), FP32)
    return b.hc_coefficients(f"hc_{key}_coefficients", mixes, sumsq, base, scale, streams=streams, iters=iters,
                             out=f"hc_{key}_weights", dtype=FP32)


def collapse(b: GraphBuilder, key: str, x: Tensor, *, streams: int, iters: int) -> tuple[Tensor, Tensor]:
    """(the sublayer's input [..., d], the coefficients `expand` takes) from the streams x [..., n d]."""
    coeffs = _coefficients(b, key, x, streams=streams, iters=iters)
    return b.hc_collapse(f"hc_{key}_pre", x, coeffs, streams=streams, out=f"hc_{key}_in"), coeffs


def expand(b: GraphBuilder, key: str, x: Tensor, f: Tensor, coeffs: Tensor, *, streams: int, out: str) -> Tensor:
    """The streams after a sublayer whose output is f [..., d]."""
    return b.hc_expand(f"hc_{key}_post", x, f, coeffs, streams=streams, out=out)


def repeat(b: GraphBuilder, h: Tensor, *, streams: int) -> Tensor:
    """The embeddings copied into the streams."""
    return b.hc_repeat("hc_repeat", h, streams=streams, out=f"{h.name.rsplit('.', 1)[-1]}_streams")


def head(b: GraphBuilder, x: Tensor, *, streams: int, weighted: bool = True) -> Tensor:
    """The head's input [..., d] from the last layer's streams (hc_head_fn, without Sinkhorn); not `weighted`
    (DeepSeek-V4.1, which has no hc_head): collapsed with the pre coefficients its last feed-forward computed
    (the model's Block passes each sublayer's pre to the next), read as an input."""
    coeffs = (_coefficients(b, "head", x, streams=streams, iters=None) if weighted else
              b.input("hc_last_pre", (*x.shape[:-1], streams), FP32))
    return b.hc_collapse("hc_head_pre", x, coeffs, streams=streams, out="hc_head_in")
