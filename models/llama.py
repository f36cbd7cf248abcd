"""The dense Llama-family decoder: pre-norm RMSNorm, GQA with rotary positions, SwiGLU MLP."""

from __future__ import annotations

import attrs

from models import pieces
from models.options import BuildOptions
from opgraph.errors import OpgraphError
from opgraph.graph import Graph, GraphBuilder
from opgraph.model import Block, Model
from opgraph.phase import Phase
from opgraph.tensor import BF16, DType, Precision


def _positive(inst, attribute, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise OpgraphError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.frozen
class LlamaConfig:
    name: str
    d_model: int = attrs.field(validator=_positive)
    n_heads: int = attrs.field(validator=_positive)
    n_kv_heads: int = attrs.field(validator=_positive)
    d_ffn: int = attrs.field(validator=_positive)
    n_layers: int = attrs.field(validator=_positive)
    vocab_size: int = attrs.field(validator=_positive)
    head_dim: int | None = None  # default d_model // n_heads, as in the HF config
    dtype: DType = BF16
    tie_embeddings: bool = False
    source: str = ""

    def __attrs_post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise OpgraphError(f"{self.name}: n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}) "
                               f"evenly: each KV head serves a whole group of query heads")
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise OpgraphError(f"{self.name}: d_model ({self.d_model}) must be divisible by n_heads "
                                   f"({self.n_heads}) when head_dim is not given")
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        else:
            _positive(self, attrs.fields(LlamaConfig).head_dim, self.head_dim)

    def precision(self, options: BuildOptions) -> Precision:
        return options.precision or Precision.uniform(self.dtype)

    def layer(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Graph:
        b = GraphBuilder(self.precision(options), "layer")
        x = b.input("x", (phase.batch, phase.new_tokens, self.d_model))
        a = pieces.norm(b, "input_layernorm", x, "input_layernorm.weight", out="x_norm")
        a = pieces.gqa_attention(b, a, phase, heads=self.n_heads, kv_heads=self.n_kv_heads, head_dim=self.head_dim,
                                 causal=options.causal_skip)
        h = pieces.residual(b, "attn_residual", x, a, out="h")
        m = pieces.norm(b, "post_attention_layernorm", h, "post_attention_layernorm.weight", out="h_norm")
        m = pieces.gated_mlp(b, m, d_ffn=self.d_ffn, act="silu")
        out = pieces.residual(b, "mlp_residual", h, m, out="out")
        return b.build(outputs=[out])

    def embed_head(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Graph:
        b = GraphBuilder(self.precision(options), "embed_head")
        dims = dict(vocab=self.vocab_size, d_model=self.d_model)
        emb = pieces.embedding(b, phase, **dims)
        logits = pieces.lm_head(b, phase, tied=self.tie_embeddings, **dims)
        return b.build(outputs=[emb, logits])

    def summary(self) -> dict:
        """Shape fields for `opgraph models`."""
        return {"layers": self.n_layers, "d_model": self.d_model, "heads": self.n_heads, "kv_heads": self.n_kv_heads,
                "head_dim": self.head_dim, "d_ffn": self.d_ffn, "vocab": self.vocab_size,
                "tied_embeddings": self.tie_embeddings, "dtype": self.dtype.name}

    def build(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Model:
        """The model for one phase, built as `options` say (precision per role, causal skipping)."""
        return Model(self.name, phase, (Block("layer", self.n_layers, self.layer(phase, options)),
                                        Block("embed_head", 1, self.embed_head(phase, options))))
