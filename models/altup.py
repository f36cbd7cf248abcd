"""AltUp's residual streams, as Gemma-3n runs them (transformers' modeling_gemma3n.py Gemma3nTextModel and
Gemma3nTextAltUp; vLLM's gemma3n.py); the layer that uses them is parts.AltUpLayer.

AltUp (alternating updates, Baykal et al., arXiv 2301.13310) keeps n residual streams of the hidden size, [tokens,
n d]; a layer computes only the first (the active stream) and predicts and corrects the others around it with
n x n and n coefficients a token, computed from the active stream by a small router (an RMSNorm times 1/d, a [n, d]
projection and a tanh). LAuReL (Menghani et al., arXiv 2411.07501) adds a rank-r branch of the normed input beside
attention. The embedding makes the streams (`embed`: the embeddings and n - 1 projections of them, each rescaled
to the embeddings' root mean square) and the head averages them back (`head`: n - 1 projections, rescaled to the
first stream's). Under tensor parallelism the router, the coefficients, the per-layer input's projections and all
the stream arithmetic are whole on every GPU (vLLM's ReplicatedLinear); LAuReL's right projection is row-parallel
and all-reduces, as o_proj and down_proj do (three all-reduces a layer); the stream projections are column-parallel,
their outputs all-gathered (ColumnParallelLinear with gather_output=True).
"""

from __future__ import annotations

from opgraph.core.graph import GraphBuilder
from opgraph.core.tensor import Tensor
from .parallel import Parallel


def _gathered_projection(b: GraphBuilder, name: str, x: Tensor, par: Parallel, out: str) -> Tensor:
    """A [d, d] projection, column-parallel with its outputs all-gathered (vLLM's altup_projections and
    altup_unembed_projections)."""
    d = x.shape[-1]
    y = b.linear(name, x, b.weight(f"{name}.weight", (par.columns(name, d), d)), out=par.out(out, f"{out}_part"))
    return par.gather_columns(b, f"{name}_allgather", y, out)


def embed(b: GraphBuilder, h: Tensor, *, streams: int, par: Parallel) -> Tensor:
    """The streams [..., n d] from the scaled embeddings h [..., d]: h, then altup_projections.{i}(h) for i < n - 1,
    each rescaled to h's root mean square (Gemma3nTextModel.forward)."""
    target = b.root_mean_square("altup_target", h, out="altup_embed_rms")
    made = [h]
    for i in range(streams - 1):
        y = _gathered_projection(b, f"altup_projections.{i}", h, par, f"altup_stream{i + 1}")
        made.append(b.magnitude_match(f"altup_match{i + 1}", y, target, out=f"altup_stream{i + 1}_matched"))
    return b.concat_heads("altup_streams", *made, heads=1, out="embedding_streams")


def head(b: GraphBuilder, x: Tensor, *, streams: int, par: Parallel) -> Tensor:
    """The final norm's input [..., d] from the last layer's streams x [..., n d]: the first stream, and
    altup_unembed_projections.{i} of the others, each rescaled to the first's root mean square, averaged."""
    first = b.altup_take("altup_unembed_take0", x, streams=streams, out="altup_out0")
    target = b.root_mean_square("altup_unembed_target", first, out="altup_unembed_rms")
    made = [first]
    for i in range(1, streams):
        s = b.altup_take(f"altup_unembed_take{i}", x, streams=streams, index=i, out=f"altup_out{i}")
        y = _gathered_projection(b, f"altup_unembed_projections.{i - 1}", s, par, f"altup_unembedded{i}")
        made.append(b.magnitude_match(f"altup_unembed_match{i}", y, target, out=f"altup_unembedded{i}_matched"))
    return b.altup_mean("altup_mean", *made, out="altup_mean_out")


def _router(b: GraphBuilder, key: str, x: Tensor, streams: int) -> Tensor:
    """tanh(modality_router(router_norm(x) / d)): n values a token from the active stream x [..., d]."""
    d = x.shape[-1]
    normed = b.norm(f"altup_{key}_norm", x, b.weight("altup.router_norm.weight", (d,)), out=f"altup_{key}_normed")
    scaled = b.scale(f"altup_{key}_scale", normed, out=f"altup_{key}_scaled")
    logits = b.linear(f"altup_{key}_router", scaled, b.weight("altup.modality_router.weight", (streams, d)),
                      out=f"altup_{key}_logits")
    return b.elementwise(f"altup_{key}_tanh", "tanh", logits, out=f"altup_{key}_modalities")


def predict(b: GraphBuilder, x: Tensor, *, streams: int) -> Tensor:
    """The streams' predictions [..., n d] (altup.predict): each stream plus the streams mixed by n x n
    coefficients a token, prediction_coefs [n^2, n] of the router's output on the active stream."""
    active = b.altup_take("altup_predict_take", x, streams=streams, out="altup_active_in")
    coefs = b.linear("altup_prediction_coefs", _router(b, "predict", active, streams),
                     b.weight("altup.prediction_coefs.weight", (streams * streams, streams)),
                     out="altup_prediction_coefs_out")
    return b.altup_predict("altup_predict", x, coefs, streams=streams, out="altup_predictions")


def correct(b: GraphBuilder, predictions: Tensor, activated: Tensor, *, streams: int) -> Tensor:
    """The streams corrected by the layer's output `activated` [..., d] (altup.correct): correction_coefs [n, n] of
    the router's output on it, one coefficient a stream."""
    coefs = b.linear("altup_correction_coefs", _router(b, "correct", activated, streams),
                     b.weight("altup.correction_coefs.weight", (streams, streams)), out="altup_correction_coefs_out")
    return b.altup_correct("altup_correct", predictions, activated, coefs, streams=streams, out="altup_corrected")
