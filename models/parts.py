"""Layer parts as values, and a layer as their composition.

A family maps its config fields to parts; a layer is a few sublayers (a token mixer, a feed-forward), each
with its norms where the family puts them (before, after, or both); a model is a `Stack` of such layers. Every
part builds itself into a graph with `build(b, x, phase, par, options)`, one GPU's share under the `Parallel`
layout it is handed, by calling the pieces (models.pieces, models.recurrent) that hold the formulas.

Equal parts make equal layers, and equal layers are one block of the model, built once and counted.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from opgraph.core import checks
from opgraph.core.graph import GraphBuilder
from opgraph.core.model import BuildOptions
from opgraph.core.phase import Phase
from opgraph.core.sizes import minimum
from opgraph.core.tensor import DType, Tensor
from opgraph.errors import OpgraphError
from . import altup, block_sparse, compressed, hyper, pieces, recurrent
from .engram import Engram
from .parallel import Parallel
from .pieces import FULL, Keys

__all__ = ["Attention", "BlockSparseAttention", "Branches", "CompressedAttention", "DeltaNet", "FULL", "Indexer", "Keys", "KimiDelta", "Layer", "LatentAttention", "MLA", "MLP", "Mamba2", "MoE",
           "Sublayer"]


def _positive(inst, attribute, value) -> None:
    checks.integer(attribute.name, value)


def _optional_positive(inst, attribute, value) -> None:
    if value is not None:
        _positive(inst, attribute, value)


# -- token mixers ---------------------------------------------------------------------------------------------

@attrs.frozen
class Attention:
    """Softmax attention over query heads sharing `kv_heads` K/V heads (MHA, GQA, MQA), with the options of
    pieces.gqa_attention: which keys it sees, rotary or not (NoPE), biases, q/k norms, sinks, soft-capping, an
    output gate, a query temperature, a key multiplier (Falcon-H1's key_multiplier), a weightless norm of v and v
    taken from k_proj (Gemma-4's v_norm and attention_k_eq_v), value heads of their own width and a value scale
    (MiMo-V2-Flash's v_head_dim and attention_value_scale)."""

    heads: int = attrs.field(validator=_positive)
    kv_heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    keys: Keys = FULL
    rotary: bool = True
    rotary_dim: int | None = attrs.field(default=None, validator=_optional_positive)
    q_bias: bool = False
    k_bias: bool = False
    v_bias: bool = False
    o_bias: bool = False
    qk_norm: str | None = None
    sinks: bool = False
    softcap: bool = False
    gate: bool = False
    q_scale: bool = False
    k_scale: bool = False
    v_norm: bool = False
    k_eq_v: bool = False
    kv_shared: bool = False  # Gemma-4 E2B/E4B: attends over an earlier layer's K and V, has none of its own
    v_head_dim: int | None = attrs.field(default=None, validator=_optional_positive)  # None: head_dim (MiMo: 128)
    v_scale: bool = False  # v times a constant before attention (MiMo's attention_value_scale)
    head_gate: bool = False  # Step-3.5's use_head_wise_attn_gate: a sigmoid gate a head (g_proj [heads, d])
    own_gate: bool = False  # with `gate`: the gate from its own gate_proj [heads*d, d] (AFMoE), not q_proj's
    # Step-3's MFA: q through a low rank, q_proj [q_rank, d], inter_norm, wq [heads*d, q_rank]; None: one q_proj
    q_rank: int | None = attrs.field(default=None, validator=_optional_positive)
    alibi: bool = False  # ALiBi biases on the scores (BLOOM, MPT), in place of rope
    kv_unused: bool = False  # with kv_shared: K and V still computed and dropped (Gemma-3n under vLLM)
    out_dim: int | None = attrs.field(default=None, validator=_optional_positive)  # o_proj's width: None, the input's
    lora_rank: int | None = attrs.field(default=None, validator=_optional_positive)  # LoRA adapters on q, k and v

    tag: ClassVar[str] = "attention"

    def __attrs_post_init__(self) -> None:
        if self.heads % self.kv_heads:
            raise OpgraphError(f"the KV heads ({self.kv_heads}) must divide the query heads ({self.heads}) evenly: "
                               f"each KV head serves a whole group of query heads")
        if self.rotary_dim is not None and self.rotary_dim > self.head_dim:
            raise OpgraphError(f"rotary_dim ({self.rotary_dim}) exceeds head_dim ({self.head_dim})")
        if self.alibi and self.rotary:
            raise OpgraphError("ALiBi attention takes no rope: give rotary=False with alibi")
        if self.kv_unused and not self.kv_shared:
            raise OpgraphError("kv_unused (K and V computed and dropped) applies to a KV-shared layer (kv_shared)")

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        kw = attrs.asdict(self, recurse=False)
        return pieces.gqa_attention(b, x, phase, par=par, causal=options.causal_skip, **kw)

    def words(self) -> dict[str, str]:
        return {"keys": self.keys.kind, "positions": "rope" if self.rotary else "alibi" if self.alibi else "nope",
                "mixer": "kv_shared" if self.kv_shared else "attention"}



@attrs.frozen
class MLA:
    """Multi-head latent attention dimensions, named as in the DeepSeek config.json."""

    kv_lora_rank: int = attrs.field(validator=_positive)
    qk_nope_head_dim: int = attrs.field(validator=_positive)
    qk_rope_head_dim: int = attrs.field(validator=_positive)
    v_head_dim: int = attrs.field(validator=_positive)
    q_lora_rank: int | None = attrs.field(default=None, validator=_optional_positive)

    @property
    def cache_width(self) -> int:
        """KV-cache elements per token per layer: the latent plus the shared rope key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


@attrs.frozen
class Indexer:
    """DeepSeek-V3.2's lightning indexer (DSA, pieces.lightning_indexer), named as in its config.json: index_n_heads
    (heads), index_head_dim (head_dim), index_topk (topk: the keys each query attends to)."""

    heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    topk: int = attrs.field(validator=_positive)
    # IndexShare (arXiv:2603.12201; GLM-5.2's indexer_types "shared"): the layer attends to the selection the last
    # layer with an indexer of its own made this step, and has no indexer weights, work or key cache itself
    shared: bool = False
    # DeepSeek-V4.1's indexer (models.compressed.latent_indexer): its keys are wk and k_norm on the attention's own
    # compressed latent, cached at `key_dtype`, and held by the layer that compresses (a CompressedAttention that is
    # not its kv_source reads them); `candidates` (blocks kept, block size): the layer also picks candidate blocks
    # for the layers after it (candidate_source_layer_id); `masked` (the same two): its scores are masked to the
    # candidates an earlier layer picked.
    from_latent: bool = False
    key_dtype: DType | None = None
    candidates: tuple[int, int] | None = None
    masked: tuple[int, int] | None = None


@attrs.frozen
class LatentAttention:
    """DeepSeek's multi-head latent attention (pieces.mla_attention) over `heads` heads: decompressed in prefill,
    weight-absorbed in decode. With an `indexer` (DeepSeek-V3.2), sparse: each query attends only to the
    indexer's top-k keys."""

    heads: int = attrs.field(validator=_positive)
    mla: MLA
    indexer: Indexer | None = None
    rotary: bool = True  # False: NoPE (Kimi Linear's mla_use_nope), the rope part unrotated
    gate: bool = False  # Kimi-K3's mla_use_output_gate: a sigmoid gate per output channel (pieces.mla_attention)
    # MiniCPM3 as vLLM runs it: MLA's weights as multi-head attention, per-head K and V (padded) cached, every phase
    expanded: bool = False

    tag: ClassVar[str] = "attention"

    def __attrs_post_init__(self) -> None:
        if self.indexer is not None and not self.mla.q_lora_rank:
            raise OpgraphError("DeepSeek-V3.2's indexer reads the normed q latent: the MLA needs q_lora_rank")
        if self.expanded and self.indexer is not None:
            raise OpgraphError("expanded MLA (run as multi-head attention) has no indexer")

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        m = self.mla
        return pieces.mla_attention(b, x, phase, heads=self.heads, kv_lora_rank=m.kv_lora_rank,
                                    qk_nope_head_dim=m.qk_nope_head_dim, qk_rope_head_dim=m.qk_rope_head_dim,
                                    v_head_dim=m.v_head_dim, q_lora_rank=m.q_lora_rank,
                                    absorbed=phase.past > 0 and not self.expanded, causal=options.causal_skip,
                                    par=par, indexer=self.indexer, rotary=self.rotary, gate=self.gate,
                                    expanded=self.expanded)

    @property
    def cache_width(self) -> int:
        """KV-cache values a token a layer: the latent and rope key, or (expanded) K and padded V of every head."""
        m = self.mla
        return 2 * self.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim) if self.expanded else m.cache_width

    def words(self) -> dict[str, str]:
        keys = "full" if self.indexer is None else "sparse_shared" if self.indexer.shared else "sparse"
        return {"keys": keys, "positions": "rope" if self.rotary else "nope",
                "mixer": "mla_as_mha" if self.expanded else "mla"}



@attrs.frozen
class CompressedAttention:
    """DeepSeek-V4's attention (models.compressed.compressed_attention), named as in its config.json: heads
    (num_attention_heads) over one shared key-value head of head_dim, rope on its last rope_dim
    (qk_rope_head_dim), the low-rank q (q_lora_rank), the grouped output projection (o_groups, o_lora_rank), a
    sliding `window` (sliding_window), and with a compress `ratio` (compress_ratios) the compressed entries,
    selected by an `indexer` (CSA) or all seen (HCA)."""

    heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    rope_dim: int = attrs.field(validator=_positive)
    q_lora_rank: int = attrs.field(validator=_positive)
    o_groups: int = attrs.field(validator=_positive)
    o_lora_rank: int = attrs.field(validator=_positive)
    window: int = attrs.field(validator=_positive)
    ratio: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    indexer: Indexer | None = None
    # DeepSeek-V4.1 (models.compressed.COMPRESSORS): the compressor's kind, "v4" (V4's, with a learned position
    # bias), "gated" (V4.1's pooling without one) or "plain" (ratio 1: each token's entry projected and normed);
    # `source` False: the layer compresses nothing and attends to the entries of the last kv source before it
    # (kv_source_layer_ids); `entry_dtype`: the compressed entries' storage (None: the KV cache's).
    compressor: str = attrs.field(default="v4", validator=attrs.validators.in_(compressed.COMPRESSORS))
    source: bool = True
    entry_dtype: DType | None = None

    tag: ClassVar[str] = "attention"

    def __attrs_post_init__(self) -> None:
        if self.rope_dim > self.head_dim:
            raise OpgraphError(f"rope_dim ({self.rope_dim}) exceeds head_dim ({self.head_dim})")
        if self.indexer is not None and not self.ratio:
            raise OpgraphError("an indexer selects compressed entries: give the layer a compress ratio")
        if self.heads % self.o_groups:
            raise OpgraphError(f"o_groups ({self.o_groups}) must divide the attention heads ({self.heads})")
        if (self.compressor == "plain") != (self.ratio == 1):
            raise OpgraphError(f"a compress ratio of 1 takes the plain compressor and no other ratio does; got ratio "
                               f"{self.ratio} with {self.compressor!r}")
        if self.indexer is not None and self.indexer.from_latent != (self.compressor != "v4"):
            raise OpgraphError("DeepSeek-V4.1's compressors take an indexer keyed on their latent, V4's one with a "
                               "compressor of its own")

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        kw = attrs.asdict(self, recurse=False)
        return compressed.compressed_attention(b, x, phase, par=par, index=kw.pop("indexer"), **kw)

    def words(self) -> dict[str, str]:
        kind = ("sparse" if self.indexer is not None else "compressed") + str(self.ratio) if self.ratio else "sliding"
        if self.ratio and not self.source:
            kind += "_borrowed"  # another layer's entries
        if self.indexer is not None:
            i = self.indexer
            kind += ("_candidates" if i.candidates else "") + ("_masked" if i.masked else "") + (
                "_reused" if i.shared else "")
        return {"keys": kind, "positions": "rope", "mixer": "attention"}


@attrs.frozen
class Mamba2:
    """A Mamba-2 (SSD) mixer (models.recurrent.mamba2_mixer): its conv and recurrent state are the layer's cache,
    whatever the context."""

    n_heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    d_state: int = attrs.field(validator=_positive)
    n_groups: int = attrs.field(default=1, validator=_positive)
    d_conv: int = attrs.field(default=4, validator=_positive)
    chunk_size: int = attrs.field(default=256, validator=_positive)
    conv_bias: bool = True
    proj_bias: bool = False
    # Falcon-H1's options (models.recurrent.mamba2_mixer): no gated norm, norm before the gate, out_proj's own
    # bias, the muP vector on in_proj's output, and the checkpoint's module name.
    rms_norm: bool = True
    norm_before_gate: bool = False
    out_bias: bool | None = None
    in_scale: bool = False
    prefix: str = "mixer."

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return recurrent.mamba2_mixer(b, x, phase, par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"mixer": "mamba"}


@attrs.frozen
class Mamba1:
    """A Mamba-1 mixer (models.recurrent.mamba1_mixer): its conv and SSM state are the layer's cache, whatever the
    context."""

    d_inner: int = attrs.field(validator=_positive)
    d_state: int = attrs.field(validator=_positive)
    dt_rank: int = attrs.field(validator=_positive)
    d_conv: int = attrs.field(default=4, validator=_positive)
    conv_bias: bool = True
    proj_bias: bool = False
    inner_norms: str | None = None  # Falcon-Mamba's weightless RMSNorms of dt, B and C; Jamba's weighted ones
    prefix: str = "mixer."

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return recurrent.mamba1_mixer(b, x, phase, par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"mixer": "mamba"}


@attrs.frozen
class ShortConv:
    """LFM2's gated short convolution (models.recurrent.short_conv): its conv state, (d_conv - 1) x width a
    sequence, is the layer's cache, whatever the context."""

    width: int = attrs.field(validator=_positive)
    d_conv: int = attrs.field(default=3, validator=_positive)
    bias: bool = False
    prefix: str = "conv."

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return recurrent.short_conv(b, x, phase, par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"mixer": "conv"}


@attrs.frozen
class DeltaNet:
    """A Gated DeltaNet linear-attention mixer (models.recurrent.gated_deltanet, Qwen3-Next's): a fixed-size
    state per value head as the layer's cache."""

    num_k_heads: int = attrs.field(validator=_positive)
    num_v_heads: int = attrs.field(validator=_positive)
    head_k_dim: int = attrs.field(validator=_positive)
    head_v_dim: int = attrs.field(validator=_positive)
    d_conv: int = attrs.field(default=4, validator=_positive)

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return recurrent.gated_deltanet(b, x, phase, par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"mixer": "deltanet"}


@attrs.frozen
class BlockSparseAttention:
    """MiniMax-M3's sparse attention (models.block_sparse.block_sparse_attention): GQA of `heads` over `kv_heads`
    heads of head_dim (per-head q and k norms, rope on rotary_dim) over the `top_blocks` blocks of `block` keys an
    indexer of index_heads heads of index_dim picks for each KV head, named as in its sparse_attention_config."""

    heads: int = attrs.field(validator=_positive)
    kv_heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    index_heads: int = attrs.field(validator=_positive)
    index_dim: int = attrs.field(validator=_positive)
    top_blocks: int = attrs.field(validator=_positive)
    block: int = attrs.field(validator=_positive)
    rotary_dim: int | None = attrs.field(default=None, validator=_optional_positive)

    tag: ClassVar[str] = "attention"

    def __attrs_post_init__(self) -> None:
        if self.heads % self.kv_heads or self.index_heads != self.kv_heads:
            raise OpgraphError(f"the KV heads ({self.kv_heads}) must divide the query heads ({self.heads}), and each "
                               f"needs its own index head (index_heads {self.index_heads})")

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return block_sparse.block_sparse_attention(b, x, phase, par=par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"keys": "sparse", "positions": "rope", "mixer": "attention"}


@attrs.frozen
class KimiDelta:
    """A Kimi Delta Attention mixer (models.recurrent.kimi_delta_attention, Kimi Linear's): `heads` heads of
    head_dim, each with a state of head_dim x head_dim as the layer's cache, and the short convs' states."""

    heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    d_conv: int = attrs.field(default=4, validator=_positive)
    full_rank_gate: bool = False  # Kimi-K3's use_full_rank_gate: the output gate one g_proj [heads*head_dim, d]
    bounded: bool = False  # Kimi-K3's gate_lower_bound: the decay gate's safe form (ops.kda_gate)
    fp32_weights: bool = False  # Kimi-K3's checkpoint: the convs' and o_norm's weights in fp32

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return recurrent.kimi_delta_attention(b, x, phase, par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"mixer": "kda"}


@attrs.frozen
class Lightning:
    """A lightning-attention mixer (models.recurrent.lightning_attention, MiniMax-01's): `heads` heads of head_dim,
    each with a state of head_dim x head_dim as the layer's cache."""

    heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    # Ring-linear's (recurrent.lightning_attention): SiLU on q, k and v or not (linear_silu), per-head q and k
    # norms, rope over rotary_dim dims, q scaled, the output norm in groups gated in one kernel, its module names
    act: bool = True
    qk_norm: bool = False
    rotary_dim: int | None = attrs.field(default=None, validator=_optional_positive)
    q_scale: bool = False
    norm_groups: int = attrs.field(default=1, validator=_positive)
    names: tuple[str, str, str, str] = recurrent.LIGHTNING_NAMES
    prefix: str = "self_attn."

    tag: ClassVar[str] = "attention"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        return recurrent.lightning_attention(b, x, phase, par, **attrs.asdict(self, recurse=False))

    def words(self) -> dict[str, str]:
        return {"mixer": "lightning"}


@attrs.frozen
class Branches:
    """Parts side by side: token mixers (Falcon-H1's parallel hybrid: attention and a Mamba-2 mixer), feed-forwards
    (LongCat-Flash's dense MLP beside its shortcut MoE), or a token mixer beside a feed-forward (Cohere's parallel
    block: attention and the MLP under one norm). Each runs on the same normed input and their outputs are
    summed, x + sum_i out_scale_i * part_i(in_scale_i * norm(x)). `in_scale` /
    `out_scale`: per branch, whether its input / output is multiplied by a constant (Falcon-H1's
    attention_in_multiplier, ssm_in_multiplier, attention_out_multiplier, ssm_out_multiplier), one multiply per
    element each, as vLLM runs them (falcon_h1.py FalconH1ParallelHybrid; not folded into the weights).

    Under tensor parallelism each branch ends with its own all-reduce (vLLM's o_proj and the mixer's out_proj are
    RowParallelLinear layers that reduce their results), then the scaled outputs are added on every GPU: two
    all-reduces per layer, as vLLM runs it, not one over the summed partials. The ops keep part "attention" (the
    token-mixing part, which crossover reads); the layer's cache is the attention's KV cache and the Mamba
    states together.

    `norms`: per branch, the weight of a norm of its own on the layer's input (GPT-NeoX's parallel residual,
    x + attn(ln1(x)) + mlp(ln2(x)); Falcon-40B's ln_attn and ln_mlp), with the sublayer then taking no norm of its
    own; `norm` / `norm_bias`: their kind. `reduce_once`: the branches' partial sums are added, then all-reduced
    once (vLLM's falcon.py: reduce_results=False on both, one all-reduce of attention + MLP), not one each."""

    parts: tuple = attrs.field(converter=tuple)
    in_scale: tuple[bool, ...] = attrs.field(default=(), converter=tuple)
    out_scale: tuple[bool, ...] = attrs.field(default=(), converter=tuple)
    norms: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    norm: str = attrs.field(default="rmsnorm", validator=attrs.validators.in_(("rmsnorm", "layernorm")))
    norm_bias: bool = False
    reduce_once: bool = False

    @property
    def tag(self) -> str:
        """What its ops are filed under where they are not a branch's own (the norm before them, the residual add):
        "attention" where a token mixer is among them; for feed-forwards "moe" where experts are among them, else
        "mlp". Each branch's ops are filed under its own part."""
        tags = {p.tag for p in self.parts}
        return "attention" if "attention" in tags else "moe" if "moe" in tags else "mlp"

    def __attrs_post_init__(self) -> None:
        if len(self.parts) < 2:
            raise OpgraphError(f"Branches needs two or more parts side by side, got {len(self.parts)}")
        if sum(p.tag == "attention" for p in self.parts) not in (0, len(self.parts)) and len(self.parts) != 2:
            raise OpgraphError("Branches: the branches must all be token mixers, all feed-forwards, or one token mixer "
                               "beside one feed-forward")
        for field in ("in_scale", "out_scale", "norms"):
            v = getattr(self, field)
            if v and len(v) != len(self.parts):
                raise OpgraphError(f"Branches: {field} needs one flag per branch ({len(self.parts)}), got {len(v)}")
        names = self.names()
        if len(set(names)) != len(names):
            raise OpgraphError(f"Branches: each branch must be a different kind of mixer, got {', '.join(names)}")

    def names(self) -> list[str]:
        return [p.words().get("mixer") or p.words()["ffn"] for p in self.parts]

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        outs = []
        inner = attrs.evolve(par, partial=True) if self.reduce_once else par
        for i, (name, part) in enumerate(zip(self.names(), self.parts)):
            with b.scope(part=part.tag):
                a = (pieces.norm(b, self.norms[i].removesuffix(".weight"), x, self.norms[i], fn=self.norm,
                                 bias=self.norm_bias, out=f"{name}_norm") if self.norms else x)
                a = b.scale(f"{name}_in_scale", a, out=f"{name}_in") if self.in_scale and self.in_scale[i] else a
                y = part.build(b, a, phase, inner, options)
            outs.append(b.scale(f"{name}_out_scale", y, out=f"{name}_scaled")
                        if self.out_scale and self.out_scale[i] else y)
        total = outs[0]
        last = "branches_partial" if self.reduce_once and par.tp > 1 else "branches_out"
        for i, y in enumerate(outs[1:], 1):
            total = b.elementwise("branch_sum" if i == len(outs) - 1 else f"branch_sum{i}", "add", total, y,
                                  out=last if i == len(outs) - 1 else f"branches_out{i}")
        return par.reduce(b, "branches_allreduce", total, "branches_out") if self.reduce_once else total

    def words(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for p in self.parts:
            out.update(p.words())
        if {p.tag == "attention" for p in self.parts} == {True, False}:
            return out  # a mixer beside a feed-forward: each names its own axis
        out["mixer" if self.tag == "attention" else "ffn"] = "+".join(self.names())
        return out


# -- feed-forward -------------------------------------------------------------------------------------------

@attrs.frozen
class MLP:
    """A dense feed-forward of width d_ffn: gated (down(act(gate) * up)) or plain (down(act(up))), any
    activation, with or without biases."""

    d_ffn: int = attrs.field(validator=_positive)
    act: str = "silu"
    gated: bool = True
    bias: bool = False
    prefix: str = "mlp."
    # Falcon-H1's mlp_multipliers (gated only): the gate projection and the output each times a constant.
    gate_scale: bool = False
    out_scale: bool = False
    sparse: bool = False  # Gemma-3n's Gaussian top-k of the gate (activation_sparsity_pattern)
    lora_rank: int | None = attrs.field(default=None, validator=_optional_positive)  # a LoRA adapter on gate_up

    tag: ClassVar[str] = "mlp"

    def __attrs_post_init__(self) -> None:
        if not self.gated and (self.gate_scale or self.out_scale or self.sparse or self.lora_rank):
            raise OpgraphError("gate_scale, out_scale (mlp_multipliers), sparse and lora_rank apply to a gated MLP")

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        kw = dict(d_ffn=self.d_ffn, act=self.act, bias=self.bias, prefix=self.prefix, par=par)
        if not self.gated:
            return pieces.plain_mlp(b, x, **kw)
        return pieces.gated_mlp(b, x, gate_scale=self.gate_scale, out_scale=self.out_scale, sparse=self.sparse,
                                lora_rank=self.lora_rank, **kw)

    def words(self) -> dict[str, str]:
        return {"ffn": "sparse" if self.sparse else "dense"}


ROUTER_BIASES = (None, "linear", "selection")


@attrs.frozen
class MoE:
    """Mixture-of-experts FFN: `experts` routed experts of width `d_expert`, `top_k` per token, and shared
    experts every token runs (`shared` of width d_expert, or one of `shared_d`), optionally behind a sigmoid gate.
    Experts are gated (down(act(gate) * up)) or, with `gated` False, plain (down(act(up)): Nemotron-3's squared-ReLU
    experts), the shared ones alike.
    The router scores by softmax or sigmoid, may carry a bias of its own ("linear", gpt-oss) or a selection bias
    ("selection", DeepSeek-V3's e_score_correction_bias), and may route within `groups` groups (DeepSeek-V3's
    n_group); `router_dtype`: what its weight and bias are stored as where not the model's dtype (Nemotron-3's fp32).
    `latent`: the width the routed experts work in where narrower than the hidden size, projected there and back
    (Nemotron-3 Super's LatentMoE: moe_latent_size; pieces.moe).
    `first_dense` and `layer_freq`: which layers of a uniform model are MoE (every layer_freq-th from first_dense on;
    the layers before are dense), as DecoderConfig reads them. `prefix`: its weights' module names ("mlp.experts",
    Nemotron-H's "mixer.experts")."""

    experts: int = attrs.field(validator=_positive)
    top_k: int = attrs.field(validator=_positive)
    d_expert: int = attrs.field(validator=_positive)
    shared: int = 0
    first_dense: int = 0
    layer_freq: int = attrs.field(default=1, validator=_positive)
    router_bias: str | None = attrs.field(default=None, converter=lambda v: "selection" if v is True else v or None)
    shared_d: int | None = attrs.field(default=None, validator=_optional_positive)
    shared_gate: bool = False
    act: str = "silu"
    scores: str = attrs.field(default="softmax", validator=attrs.validators.in_(("softmax", "sigmoid", "sqrtsoftplus")))
    groups: int = attrs.field(default=1, validator=_positive)
    expert_bias: bool = False
    renormalize: bool = False
    scaled: bool = False
    router_name: str = "gate"
    shared_name: str = "shared_experts"
    gated: bool = True
    router_dtype: DType | None = None
    prefix: str = "mlp."
    latent: int | None = attrs.field(default=None, validator=_optional_positive)
    # the latent projections' module names (down, up), and the norm of the latent sum, if any (Kimi-K3's
    # routed_expert_norm; pieces.moe)
    latent_names: tuple[str, str] = ("fc1_latent_proj", "fc2_latent_proj")
    latent_norm: str | None = None
    shared_act: str | None = None  # the shared experts' activation where not `act` (Step-3.5's per-layer clamps)
    router_norm: bool = False  # Gemma-4: the router's input RMS-normalized with its own scale (pieces._router)
    expert_scale: bool = False  # Gemma-4: each routing weight times its expert's learned scale
    # DeepSeek-V4's first num_hash_layers: each token's experts looked up by its id (gate.tid2eid [vocab, top_k]),
    # this vocabulary's table; the scores still weight them (pieces._router). 0: routed by the scores.
    hashed: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    bias_dtype: DType | None = None  # the selection bias's storage where not router_dtype's (DeepSeek-V4's fp32)
    # LongCat-Flash's zero-computation experts (zero_expert_num, zero_expert_type identity): scored and picked
    # beside the experts, each returning its input times its weight. vLLM and SGLang run a token's picks of them as
    # weight-0 rows of expert 0 (vLLM's ZeroExpertRouter, SGLang's longcat_flash.py since its PR #30387), so the
    # expert GEMMs still see top_k rows a token; the identity term is one kernel over x (pieces.moe).
    zero: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    tag: ClassVar[str] = "moe"

    def __attrs_post_init__(self) -> None:
        if self.top_k > self.experts + self.zero:
            raise OpgraphError(f"top_k ({self.top_k}; num_experts_per_tok in a config.json) must not exceed the "
                               f"number of experts ({self.experts}; num_local_experts or n_routed_experts)")
        for field in ("shared", "first_dense"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise OpgraphError(f"{field} must be a non-negative integer, got {v!r}")
        if self.router_bias not in ROUTER_BIASES:
            raise OpgraphError(f"router_bias must be one of linear, selection or None, got {self.router_bias!r}")
        if self.experts % self.groups:
            raise OpgraphError(f"the router's {self.groups} groups (n_group) must divide the {self.experts} experts")
        if not self.gated and (self.act in pieces.PAIRED_ACTS or self.shared_gate):
            raise OpgraphError(f"plain (non-gated) experts take a one-input activation and no shared-expert gate, "
                               f"got {self.act!r}" + (" and a shared gate" if self.shared_gate else ""))

    def placed(self, i: int) -> bool:
        """Whether layer i (0-based) is one of the MoE layers: every layer_freq-th from first_dense on."""
        return i >= self.first_dense and i % self.layer_freq == 0

    @property
    def shared_width(self) -> int:
        """The width of the shared experts together (0: none)."""
        return self.shared_d if self.shared_d is not None else self.shared * self.d_expert

    def touched(self, tokens: int, override: int | None = None) -> int:
        """Routed experts whose weights a step of `tokens` tokens reads: the user's override, or the
        expectation under uniform routing rounded up (pieces.expected_experts)."""
        if override is None:
            return pieces.expected_experts(self.experts, self.top_k, tokens, self.experts + self.zero)
        if not isinstance(override, int) or isinstance(override, bool) or not self.top_k <= override <= self.experts:
            raise OpgraphError(f"--experts-touched must be an integer from top_k ({self.top_k}) to the number of "
                               f"experts ({self.experts}), got {override!r}")
        # A step of T tokens cannot touch more than T*k experts: small steps cap the user's figure.
        return minimum(override, tokens * self.top_k)

    def rows(self, tokens: int, ep: int, imbalance: float | None, shared: bool = False) -> int:
        """Token-expert rows one expert-parallel GPU runs when each of `ep` GPUs routes `tokens` tokens (or, with
        `shared`, when all of them see the same `tokens`): the busiest GPU's (pieces.busiest_expert_load), or
        imbalance x the mean."""
        return pieces.busiest_expert_load(self.experts, self.top_k, ep, tokens, imbalance or 0.0, shared)

    def touched_local(self, rows: int, ep: int, override: int | None = None) -> int:
        """Experts one expert-parallel GPU reads: of its experts / ep, those its `rows` rows reach (each row one
        of them, uniformly), or the user's override."""
        local = self.experts // ep
        if override is None:
            return pieces.expected_experts(local, 1, rows)
        if not isinstance(override, int) or isinstance(override, bool) or not 1 <= override <= local:
            raise OpgraphError(f"--experts-touched with --ep {ep} counts the experts one GPU reads, from 1 to the "
                               f"{local} it holds ({self.experts} / {ep}); got {override!r}")
        return minimum(override, rows)

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions,
              router_x: Tensor | None = None) -> Tensor:
        ep = par.ep
        if ep > 1 and self.zero:
            raise OpgraphError(f"--ep {ep}: zero-computation experts under expert parallelism (vLLM and SGLang send "
                               f"a token's picks of them to expert 0's GPU as weight-0 rows) are not modelled; "
                               f"use --tp")
        rows = self.rows(phase.tokens, ep, options.expert_imbalance, shared=par.tp > 1) if ep > 1 else 0
        touched = (self.touched_local(rows, ep, options.experts_touched) if ep > 1 else
                   self.touched(phase.tokens, options.experts_touched))
        return pieces.moe(b, x, self, touched=touched, rows=rows, par=par, prefix=self.prefix, router_x=router_x)

    def words(self) -> dict[str, str]:
        return {"ffn": "hash_moe" if self.hashed else "moe"}


@attrs.frozen
class DenseAndExperts:
    """Gemma-4's feed-forward with its MoE block (enable_moe_block): a dense MLP and a mixture of experts side by
    side on the residual stream x, each with a norm before and after, summed (modeling_gemma4.py
    Gemma4TextDecoderLayer): post_feedforward_layernorm_1(mlp(pre_feedforward_layernorm(x))) +
    post_feedforward_layernorm_2(moe(pre_feedforward_layernorm_2(x))), the router reading x itself. Its Sublayer
    has no norm before (the branches have theirs) and post_feedforward_layernorm after. Under tensor parallelism
    each branch ends with its own all-reduce."""

    mlp: MLP
    moe: MoE

    tag: ClassVar[str] = "moe"

    @property
    def parts(self) -> tuple:
        """Its two branches, each on its own (Layer.parts)."""
        return self.mlp, self.moe

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        dense = pieces.norm(b, "pre_feedforward_layernorm", x, "pre_feedforward_layernorm.weight", out="dense_in")
        dense = pieces.norm(b, "post_feedforward_layernorm_1", self.mlp.build(b, dense, phase, par, options),
                            "post_feedforward_layernorm_1.weight", out="dense_out")
        routed = pieces.norm(b, "pre_feedforward_layernorm_2", x, "pre_feedforward_layernorm_2.weight",
                             out="experts_in")
        routed = pieces.norm(b, "post_feedforward_layernorm_2", self.moe.build(b, routed, phase, par, options,
                                                                              router_x=x),
                             "post_feedforward_layernorm_2.weight", out="experts_out")
        return b.elementwise("branches_add", "add", dense, routed, out="ffn_out")

    def words(self) -> dict[str, str]:
        return {"ffn": "moe"}


@attrs.frozen
class PerLayerInput:
    """Gemma-4 E2B/E4B's per-layer input, a residual branch after the feed-forward (modeling_gemma4.py
    Gemma4TextDecoderLayer): per_layer_projection(gelu(per_layer_input_gate(x)) * ple), where ple is this layer's
    `width` slice of the per-layer embeddings the embedding block computes (pieces.per_layer_inputs), read here as an
    input; the Sublayer adds post_per_layer_input_norm after. The two projections are whole on every GPU (vLLM's
    ReplicatedLinear)."""

    width: int = attrs.field(validator=_positive)
    act: str = "gelu"

    tag: ClassVar[str] = "mlp"

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        g = pieces.proj(b, "per_layer_input_gate", x, self.width, out="ple_gate")
        ple = b.input("per_layer_input", (*x.shape[:-1], self.width))
        g = b.elementwise("ple_mul", "mul", b.elementwise("ple_act", self.act, g, out="ple_gate_act"), ple,
                          out="ple_gated")
        return pieces.proj(b, "per_layer_projection", g, x.shape[-1], out="ple_out")

    def words(self) -> dict[str, str]:
        return {}


# -- layers -------------------------------------------------------------------------------------------------

@attrs.frozen
class Sublayer:
    """One residual branch: x + post(part(pre(x))). `pre` / `post`: the names of its norms' weights (None: no
    norm there): pre-norm (Llama), post-norm (OLMo-2), or both (Gemma-2/3's sandwich). `key` names its ops
    ({key}_residual, {key}_allgather). `scale`: x + c post(part(pre(x))), one multiply an element. `carry`: what
    the residual carries, times a constant (MiniMax-01's layernorm_*_alpha, one multiply an element): "input" the
    branch's input, "normed" its normed input (MiniMax-01's postnorm); None: the input as it is."""

    part: object
    pre: str | None = None
    post: str | None = None
    key: str = "attn"
    scale: bool = False  # the branch's output times a constant before the add (Granite's residual_multiplier)
    carry: str | None = attrs.field(default=None, validator=attrs.validators.in_((None, "input", "normed")))
    scope: str = ""  # in front of its part's op and weight names, where a layer runs a part twice (LongCat-Flash's)
    # A norm of the residual sum, norm(x + part(x)): the original Transformer's post-LN (OPT-350m's
    # do_layer_norm_before false); None: the sum goes on as it is
    after: str | None = None


@attrs.frozen
class Layer:
    """A decoder layer: its sublayers in order, and the norm they use (RMSNorm or LayerNorm, with or without a
    shift)."""

    sublayers: tuple[Sublayer, ...] = attrs.field(converter=tuple)
    norm: str = attrs.field(default="rmsnorm", validator=attrs.validators.in_(("rmsnorm", "layernorm")))
    norm_bias: bool = False
    norm_scale: bool = True  # False: its norms have no weight (OLMo's non-parametric LayerNorm)
    scalar: bool = False  # the residual stream times a learned scalar at the end (Gemma-4's layer_scalar)
    # The dtypes of its differing matrices where the checkpoint stores layers of one kind differently (DecoderConfig's
    # _split_by_storage): a kind of its own, priced in a block of its own. "" where all its kind's layers are alike.
    storage: str = ""
    # Manifold-constrained hyper-connections (DeepSeek-V4's hc_mult, arXiv 2512.24880): the residual is `streams`
    # streams of the hidden size, mixed around each sublayer (models.hyper) with `hc_iters` Sinkhorn iterations;
    # 1: a plain residual add.
    streams: int = attrs.field(default=1, validator=_positive)
    hc_iters: int = attrs.field(default=20, validator=_positive)
    # Block AttnRes (Kimi-K3's attn_res_block_size, pieces.attn_res): for each sublayer, how many block snapshots
    # its input mixes with the running sum (0: the running sum as it is); `res_restart`: the layer opens a block, so
    # its input becomes a snapshot and the first sublayer's output starts the new running sum. (): residual adds.
    res_mix: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    res_restart: bool = False
    # A memory read into the residual streams before the sublayers (DeepSeek-V4.1's Engram, models.engram)
    memory: Engram | None = None

    def __attrs_post_init__(self) -> None:
        if any(s.after for s in self.sublayers) and (self.streams > 1 or self.res_mix or self.scalar):
            raise OpgraphError("a norm after the residual add (Sublayer.after) needs a plain residual: no "
                               "hyper-connection streams, AttnRes mixes or layer scalar")

    def parts(self) -> list:
        """Its parts, side-by-side branches (Branches' mixers, DenseAndExperts' MLP and experts) each on its own."""
        return [p for s in self.sublayers
                for p in (s.part.parts if isinstance(s.part, (Branches, DenseAndExperts)) else (s.part,))]

    def words(self) -> dict[str, str]:
        """What this layer is, axis by axis (ffn, keys, positions, mixer), for naming blocks apart."""
        out: dict[str, str] = {}
        for s in self.sublayers:
            out.update(s.part.words())
        if self.res_mix:
            out["res"] = "res" + "_".join(map(str, self.res_mix)) + ("b" if self.res_restart else "")
        if self.memory is not None:
            out.update(self.memory.words())
        return {**out, "storage": self.storage} if self.storage else out

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        """The layer's ops on hidden states x (this GPU's slice of the tokens under sequence parallelism)."""
        ln = dict(fn=self.norm, bias=self.norm_bias, scale=self.norm_scale)
        last = len(self.sublayers) - 1
        if self.memory is not None:
            with b.scope(part=self.memory.tag):
                x = self.memory.add_to(b, x, phase, par, self.streams)
        for i, s in enumerate(self.sublayers):
            names = ("x" if i == 0 else f"h{i - 1}" if i > 1 else "h", "out" if i == last else f"h{i}" if i else "h")
            out = names[1]
            with b.scope(part=s.part.tag):
                a, mixing = (x, None) if self.streams == 1 else hyper.collapse(b, s.key, x, streams=self.streams,
                                                                               iters=self.hc_iters)
                restart = self.res_restart and i == 0  # a block's boundary: the running sum so far becomes a
                # snapshot, and the sublayer's output starts a new one
                if self.res_mix and (self.res_mix[i] or restart):
                    a = pieces.attn_res(b, RES_KEYS[s.key], x, self.res_mix[i], snapshot=restart)
                if s.pre:
                    a = pieces.norm(b, s.pre.removesuffix(".weight"), a, s.pre, out=f"{names[0]}_norm", **ln)
                if s.carry:
                    x = b.scale(f"{s.key}_residual_scale", a if s.carry == "normed" else x, out=f"{s.key}_carried")
                a = par.gather(b, f"{s.key}_allgather", a, f"{names[0]}_norm_full" if s.pre else f"{names[0]}_full")
                with b.scope(s.scope):
                    a = s.part.build(b, a, phase, par, options)
                if s.post:
                    a = pieces.norm(b, s.post.removesuffix(".weight"), a, s.post, out=f"{s.key}_normed", **ln)
                if s.scale:
                    a = b.scale(f"{s.key}_branch_scale", a, out=f"{s.key}_scaled")
                if self.streams > 1:
                    x = hyper.expand(b, s.key, x, a, mixing, streams=self.streams, out=out)
                    continue
                if restart:
                    x = a
                    continue
                summed = "unscaled" if self.scalar and i == last else f"{s.key}_sum" if s.after else out
                x = pieces.residual(b, f"{s.key}_residual", x, a, out=summed)
                if s.after:
                    x = pieces.norm(b, s.after.removesuffix(".weight"), x, s.after, out=out, **ln)
        if self.scalar:
            x = b.scale("layer_scalar", x, b.weight("layer_scalar", (1,)), out="out")
        return x


@attrs.frozen
class AltUpLayer:
    """A Gemma-3n decoder layer over n = `streams` AltUp streams (models.altup; transformers' Gemma3nTextDecoderLayer
    and Gemma3nTextLaurelBlock, vLLM's gemma3n.py): predict the streams, norm the active one (input_layernorm);
    attention and LAuReL of rank `laurel_rank` on it (linear_left, linear_right, post_laurel_norm, plus the normed
    input); (active + post_attention_layernorm(attention) + LAuReL) / sqrt 2; the MLP between pre_ and
    post_feedforward_layernorm added; correct the streams; the active stream times correct_output_scale (where
    `output_scale`: altup_correct_scale) into the per-layer input (`ple`), whose normed output
    (post_per_layer_input_norm) is added to the other streams. RMSNorms throughout. Under tensor parallelism
    attention, LAuReL (linear_left by columns, linear_right by rows) and the MLP each end with an all-reduce; the rest
    is whole on every GPU."""

    attention: Attention
    mlp: MLP
    laurel_rank: int = attrs.field(validator=_positive)
    ple: PerLayerInput | None = None
    streams: int = attrs.field(default=4, validator=attrs.validators.ge(2))
    output_scale: bool = True
    storage: str = ""  # as Layer.storage
    res_restart: ClassVar[bool] = False  # as Layer's: no Block AttnRes

    def parts(self) -> list:
        return [self.attention, self.mlp, *([self.ple] if self.ple else [])]

    def words(self) -> dict[str, str]:
        out = {**self.attention.words(), **self.mlp.words(), "res": "altup"}
        return {**out, "storage": self.storage} if self.storage else out

    def build(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, options: BuildOptions) -> Tensor:
        n, d = self.streams, x.shape[-1] // self.streams
        with b.scope(part="attention"):
            predictions = altup.predict(b, x, streams=n)
            active = b.altup_take("altup_active", predictions, streams=n, out="active_prediction")
            normed = pieces.norm(b, "input_layernorm", active, "input_layernorm.weight", out="active_normed")
            full = par.gather(b, "attn_allgather", normed, "active_normed_full")
            low = pieces.proj(b, "laurel.linear_left", full, par.columns("laurel_rank", self.laurel_rank),
                              out="laurel_low")
            high = par.reduce(b, "laurel_allreduce", pieces.proj(b, "laurel.linear_right", low, d,
                                                                  out=par.out("laurel_high", "laurel_partial")),
                              "laurel_high")
            high = pieces.norm(b, "laurel.post_laurel_norm", high, "laurel.post_laurel_norm.weight",
                               out="laurel_normed")
            laurel = pieces.residual(b, "laurel_residual", normed, high, out="laurel")
            attn = pieces.norm(b, "post_attention_layernorm", self.attention.build(b, full, phase, par, options),
                               "post_attention_layernorm.weight", out="attn_normed")
            gated = pieces.residual(b, "attn_residual", active, attn, out="attn_gated")
            summed = b.scale("laurel_scale", b.elementwise("laurel_add", "add", gated, laurel, out="attn_laurel_sum"),
                             out="attn_laurel")  # / sqrt(2)
        with b.scope(part="mlp"):
            h = pieces.norm(b, "pre_feedforward_layernorm", summed, "pre_feedforward_layernorm.weight",
                            out="mlp_in_normed")
            h = self.mlp.build(b, par.gather(b, "mlp_allgather", h, "mlp_in_full"), phase, par, options)
            h = pieces.norm(b, "post_feedforward_layernorm", h, "post_feedforward_layernorm.weight", out="mlp_normed")
            activated = pieces.residual(b, "mlp_residual", summed, h, out="activated")
        with b.scope(part="attention"):
            corrected = altup.correct(b, predictions, activated, streams=n)
        if self.ple is None:
            return corrected
        with b.scope(part=self.ple.tag):
            first = b.altup_take("altup_first", corrected, streams=n, out="corrected_active")
            if self.output_scale:
                first = b.scale("altup_output_scale", first, b.weight("altup.correct_output_scale", (d,)),
                                out="corrected_scaled")
            y = pieces.norm(b, "post_per_layer_input_norm", self.ple.build(b, first, phase, par, options),
                            "post_per_layer_input_norm.weight", out="ple_normed")
            return b.altup_add("ple_add", corrected, y, streams=n, out="out")


# Block AttnRes's weights before each sublayer, as Kimi-K3's checkpoint names them (pieces.attn_res)
RES_KEYS = {"attn": "self_attention_res", "mlp": "mlp_res"}


def pre_norm(mixer, ffn, *, norm: str = "rmsnorm", norm_bias: bool = False, norm_scale: bool = True) -> Layer:
    """Llama's layer: x + mixer(input_layernorm(x)), then + ffn(post_attention_layernorm(.))."""
    return Layer((Sublayer(mixer, "input_layernorm.weight", key="attn"),
                  Sublayer(ffn, "post_attention_layernorm.weight", key="mlp")), norm, norm_bias, norm_scale)


def post_norm(mixer, ffn) -> Layer:
    """OLMo-2's layer: x + post_attention_layernorm(mixer(x)), then + post_feedforward_layernorm(ffn(.))."""
    return Layer((Sublayer(mixer, post="post_attention_layernorm.weight", key="attn"),
                  Sublayer(ffn, post="post_feedforward_layernorm.weight", key="mlp")))


GEMMA_SANDWICH = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm")


def sandwich_norm(mixer, ffn, names: tuple[str, str, str, str] = GEMMA_SANDWICH) -> Layer:
    """Gemma-2/3's layer: a norm before and after each branch; `names`: the four norms' weights (GLM-4's differ)."""
    pre_mixer, post_mixer, pre_ffn, post_ffn = (f"{n}.weight" for n in names)
    return Layer((Sublayer(mixer, pre_mixer, post_mixer, key="attn"), Sublayer(ffn, pre_ffn, post_ffn, key="mlp")))


NORM_PLACEMENTS = {"pre": pre_norm, "post": post_norm, "sandwich": sandwich_norm}
