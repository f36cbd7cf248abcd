"""Zyphra's Zamba2 hybrid layer (transformers' zamba2, vLLM 0.11's zamba2.py Zamba2HybridLayer): a Mamba-2 layer that
first runs one of the model's shared transformer blocks on the hidden state beside the original embeddings, and adds
the block's output, through a linear of the layer's own, to the Mamba-2 mixer's input.

The blocks' weights are stored once: the first hybrid layer that runs a block holds them, the later ones read the same
weights (GraphBuilder.borrowing), so they count once in the parameters and the memory but are read at every run.
Each run has its own LoRA adapters and linear, and caches its own K and V (vLLM gives every hybrid layer an attention
cache of its own)."""

from __future__ import annotations

from typing import ClassVar

import attrs

from opgraph.core.graph import GraphBuilder
from opgraph.core.model import BuildOptions
from opgraph.core.phase import Phase
from opgraph.core.tensor import Tensor
from . import pieces
from .parallel import Parallel
from .parts import MLP, Attention, Mamba2


@attrs.frozen
class HybridMamba:
    """A Zamba2 hybrid layer's part (its Sublayer has no norm and adds the residual): shared block `block`, then
    input_layernorm(x + linear(block(x))) into the Mamba-2 mixer. The block (Zamba2AttentionDecoderLayer):
    RMSNorm of [x, the original embeddings] (2 x hidden), `attention` over that back to the hidden size
    (Attention.out_dim; its q, k and v adapters where Attention.lora_rank), RMSNorm (pre_ff_layernorm), `mlp` (a
    GeGLU with its gate_up adapter, MLP.lora_rank). `holds`: this layer holds the block's weights (the block's
    first run); else it reads another layer's. The linear [hidden, hidden] is replicated under tensor parallelism
    (vLLM's ReplicatedLinear); with sequence parallelism the block's all-reduces stay whole, as the linear and the
    mixer read every token."""

    mamba: Mamba2
    attention: Attention
    mlp: MLP
    block: int
    holds: bool

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        d = x.shape[-1]
        whole = attrs.evolve(par, sp=None)  # the block's sums feed more work on every token: all-reduced whole
        embeddings = b.input("original_embeddings", x.shape)  # vLLM keeps a copy of the embedding output
        with b.scope(f"block{self.block}."):
            h = b.concat_heads("concat", x, embeddings, heads=1, out="in")
            with b.borrowing(not self.holds):
                h = pieces.norm(b, "input_layernorm", h, "input_layernorm.weight", out="normed")
                h = self.attention.build(b, h, phase, whole, options)
                h = pieces.norm(b, "pre_ff_layernorm", h, "pre_ff_layernorm.weight", out="mlp_in")
                h = self.mlp.build(b, h, phase, whole, options)
            h = pieces.proj(b, "linear", h, d, out="out")
        h = b.elementwise("block_add", "add", x, h, out="mamba_in")
        h = pieces.norm(b, "input_layernorm", h, "input_layernorm.weight", out="mamba_normed")
        return self.mamba.build(b, h, phase, par, options)

    def words(self) -> dict[str, str]:
        return {"mixer": "mamba_hybrid" if self.holds else "mamba_hybrid_shared"}
