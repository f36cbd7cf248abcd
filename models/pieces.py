"""Reusable pieces of decoder models, written against the public GraphBuilder API.

Each piece adds its ops to a builder and returns its output tensor, so a block reads top to bottom
like its forward pass. Op names follow the checkpoints (q_proj, gate_proj, kv_b_proj, ...); weight names
are the Hugging Face Llama/DeepSeek names without the `model.layers.N.` prefix (GPT-2's fused c_attn is
three projections of the same total size; a checkpoint matrix that feeds two ops is two row blocks,
`name.weight[part]`). Every piece works in both phases: the phase only changes shapes and which cache is read.
"""

from __future__ import annotations

import functools
import math

import attrs

from opgraph.core import checks
from opgraph.errors import OpgraphError
from opgraph.core.graph import GraphBuilder
from opgraph.core.phase import Phase
from opgraph.core.sizes import minimum, size_function
from opgraph.core.tensor import FP8, FP32, INT32, INT64, DType, Role, Tensor
from . import altup, hyper
from .parallel import Parallel, shard


def piece(part: str = ""):
    """Every piece takes `name`: its ops, results, weights and cache entries are named inside the builder scope
    `name` (a prefix), so a piece can be used more than once in one block; and its ops are tagged `part`
    unless the caller's scope already tagged them."""
    def wrap(build):
        @functools.wraps(build)
        def call(b: GraphBuilder, *args, name: str = "", **kwargs):
            with b.scope(name, part=part):
                return build(b, *args, **kwargs)
        return call
    return wrap


def norm(b: GraphBuilder, name: str, x: Tensor, weight: str, *, fn: str = "rmsnorm", bias: bool = False,
         out: str | None = None, scale: bool = True) -> Tensor:
    """RMSNorm / LayerNorm with a learned scale (and, with `bias`, a shift) over the last dim; without `scale`,
    neither (OLMo's non-parametric LayerNorm: no weight, no bias)."""
    d = x.shape[-1]
    shift = b.weight(weight.replace("weight", "bias"), (d,)) if bias and scale else None
    return b.norm(name, x, b.weight(weight, (d,)) if scale else None, bias=shift, fn=fn, out=out)


def proj(b: GraphBuilder, name: str, x: Tensor, n: int, *, prefix: str = "", bias: bool = False,
         out: str | None = None, role: Role = Role.ACTIVATION) -> Tensor:
    """A linear layer named like its checkpoint module: weight `{prefix}{name}.weight` [n, in] (+ bias [n])."""
    w = b.weight(f"{prefix}{name}.weight", (n, x.shape[-1]))
    shift = b.weight(f"{prefix}{name}.bias", (n,)) if bias else None
    return b.linear(name, x, w, bias=shift, out=out, role=role)


@attrs.frozen
class Keys:
    """Which keys a layer's queries see: all earlier positions ("full"), the last `size` ("sliding", Mistral,
    Gemma, gpt-oss), or those of their own chunk of `size` positions ("chunked", Llama-4's attention_chunk_size).
    The layer's KV cache holds exactly what it sees."""

    kind: str = attrs.field(default="full", validator=attrs.validators.in_(("full", "sliding", "chunked")))
    size: int | None = None

    def __attrs_post_init__(self) -> None:
        if (self.kind == "full") != (self.size is None):
            raise OpgraphError(f"{self.kind} attention {'takes no' if self.kind == 'full' else 'needs a'} size")
        if self.size is not None:
            checks.integer(f"the {self.kind} attention size", self.size)

    @property
    def window(self) -> int | None:
        return self.size if self.kind == "sliding" else None

    @property
    def chunk(self) -> int | None:
        return self.size if self.kind == "chunked" else None

    def cached(self, phase: Phase) -> int:
        """Earlier positions a new token reads from the KV cache: all of them; with a sliding window the
        window - 1 most recent (the new token is the window's last key); in a chunk, those of the current chunk
        before it. So the cache never holds more than the window or the chunk."""
        if self.kind == "full":
            return phase.past
        if self.kind == "sliding":
            return minimum(phase.past, self.size - 1)
        return _within_chunk(phase.past, self.size)


@size_function
def _within_chunk(position: int, chunk: int) -> int:
    return position % chunk


FULL = Keys()


def _qk_norm(b: GraphBuilder, name: str, x: Tensor, kind: str, heads: int, head_dim: int, par: Parallel,
             prefix: str, whole: int, role: Role) -> Tensor:
    """q or k normalized as the family does: per head with a learned scale ("head": Qwen3, Gemma-3), per head
    without one ("head_l2": Llama-4's L2 norm), or over the whole projection, whose statistics under tensor
    parallelism need every GPU's columns: "full" (OLMo-2) all-gathers the projection first, as vLLM's Olmo2 does,
    and each GPU keeps its own slice; "full_reduced" (MiniMax-M2) all-reduces each row's sum of squares, one fp32
    value a token, and each GPU scales its own columns, as vLLM's MiniMaxText01RMSNormTP does. `whole`: the
    unsplit projection's width. "head_layernorm" (Command R+): a LayerNorm per head, each head with a scale of its own
    ([heads, head_dim] in the checkpoint, split with the heads under tensor parallelism). "shared_layernorm" (Phi's
    qk_layernorm): a LayerNorm per head with one scale and shift of head_dim that every head shares."""
    if kind == "head_layernorm":
        scale = b.weight(f"{prefix}{name}.weight", (heads * head_dim,))
        return b.norm(name, x, scale, fn="layernorm", heads=heads, out=f"{name}_out", role=role)
    if kind == "shared_layernorm":
        scale, shift = (b.weight(f"{prefix}{name}.{w}", (head_dim,)) for w in ("weight", "bias"))
        return b.norm(name, x, scale, bias=shift, fn="layernorm", heads=heads, out=f"{name}_out", role=role)
    if kind == "full_reduced":
        return reduced_norm(b, name, x, par, prefix=prefix, whole=whole, role=role)
    if kind == "full":
        if par.tp == 1:
            return b.norm(name, x, b.weight(f"{prefix}{name}.weight", (whole,)), out=f"{name}_out", role=role)
        full = b.all_gather(f"{name}_allgather", x, group=par.tp, out=f"{name}_full")
        y = b.norm(name, full, b.weight(f"{prefix}{name}.weight", (whole,)), out=f"{name}_whole")
        return b.slice_last(f"{name}_slice", y, x.shape[-1], out=f"{name}_out", role=role)
    scale = b.weight(f"{prefix}{name}.weight", (head_dim,)) if kind == "head" else None
    return b.norm(name, x, scale, heads=heads, out=f"{name}_out", role=role)


def reduced_norm(b: GraphBuilder, name: str, x: Tensor, par: Parallel, *, prefix: str, whole: int,
                 role: Role = Role.ACTIVATION) -> Tensor:
    """An RMSNorm over a projection's whole width (`whole`) whose columns tensor parallelism splits: each GPU sums
    its columns' squares, the sums (one fp32 value a token) are all-reduced, and each GPU scales its own columns,
    as vLLM's MiniMaxText01RMSNormTP does (MiniMax-M2's q and k norms, MiniMax-01's lightning-attention norm)."""
    if par.tp == 1:
        return b.norm(name, x, b.weight(f"{prefix}{name}.weight", (whole,)), out=f"{name}_out", role=role)
    sums = b.rms_stats(f"{name}_stats", x, out=f"{name}_sumsq", dtype=FP32)
    sums = b.all_reduce(f"{name}_allreduce", sums, group=par.tp, out=f"{name}_sumsq_all", dtype=FP32)
    return b.rms_apply(name, x, sums, b.weight(f"{prefix}{name}.weight", (x.shape[-1],)), out=f"{name}_out",
                       role=role)


QK_NORMS = ("head", "head_l2", "head_layernorm", "shared_layernorm", "full", "full_reduced")


@piece("attention")
def gqa_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, kv_heads: int, head_dim: int,
                  par: Parallel = Parallel.SINGLE, causal: bool = False, prefix: str = "self_attn.",
                  q_bias: bool = False, k_bias: bool = False, v_bias: bool = False, o_bias: bool = False,
                  keys: Keys = FULL, rotary_dim: int | None = None, rotary: bool = True, qk_norm: str | None = None,
                  sinks: bool = False, softcap: bool = False, gate: bool = False, q_scale: bool = False,
                  k_scale: bool = False, v_norm: bool = False, k_eq_v: bool = False,
                  kv_shared: bool = False, v_head_dim: int | None = None, v_scale: bool = False,
                  head_gate: bool = False, own_gate: bool = False, q_rank: int | None = None,
                  alibi: bool = False, kv_unused: bool = False, out_dim: int | None = None,
                  lora_rank: int | None = None) -> Tensor:
    """Grouped-query attention (MHA when kv_heads == heads, MQA when 1), head_dim independent of d_model.

    - Biases on q, k, v and o each on its own (Qwen2: q, k, v; GPT-2 and gpt-oss: all four).
    - `rotary=False`: no rotary positions (GPT-2's learned positions, Llama-4's NoPE layers); `rotary_dim`: the
      dims of each head it rotates (partial rotary).
    - `keys`: full, sliding window or chunked (Keys): decode reads only the cached positions the layer sees.
    - `qk_norm`: q and k normalized before rope (_qk_norm: "head", "head_l2", "head_layernorm", "full" or
      "full_reduced").
    - `sinks` (gpt-oss): a learned logit per head joins the softmax; `softcap` (Gemma-2): scores soft-capped;
      `alibi` (BLOOM, MPT): each score plus its head's slope times the key's distance (ops.softmax), the slopes
      fp32 values the engine computes at load (not checkpoint weights), split with the heads;
      `gate` (Qwen3-Next): q_proj also gives a gate per output element, sigmoid(gate) x attention output (with
      `own_gate`, AFMoE's: the gate from a gate_proj of its own, [heads*d, d], one more GEMM);
      `q_rank` (Step-3's MFA): q through a low rank, q_proj [q_rank, d] and its RMSNorm (inter_norm), whole on every
      GPU as vLLM replicates them, then wq [heads*d, q_rank], split with the heads;
      `head_gate` (Step-3.5's use_head_wise_attn_gate): g_proj [heads, d] gives one a head, sigmoid(g) times each
      head's output (column-parallel over the heads);
      `q_scale` (Llama-4's attn_temperature_tuning on NoPE layers): q times a per-position temperature;
      `k_scale` (Falcon-H1's key_multiplier): k times a constant before rope, one multiply per element, as vLLM
      runs it (`k = k * self.key_multiplier`).
    - `v_norm` (Gemma-4): v RMS-normalized per head without a scale; `k_eq_v` (Gemma-4's attention_k_eq_v on its
      full layers): no v_proj, v is k_proj's output (before k's norm and rope), normalized; the cache still holds K
      and V apart, as transformers and vLLM store them (modeling_gemma4.py Gemma4TextAttention). vLLM also loads
      k_proj's weight into its fused qkv_proj's v slot and runs that product (gemma4.py), which is not counted.
    - `kv_shared` (Gemma-4 E2B and E4B's last num_kv_shared_layers): no k_proj, v_proj or k and v norms; the layer
      attends over the K and V an earlier layer of its kind wrote this step and before, read as inputs (role INPUT,
      so they are no cache of its own), and writes none. With `kv_unused` (Gemma-3n, whose checkpoint keeps every
      layer's k_proj and v_proj): the layer still projects, norms and rotates K and V of its own, as vLLM's fused
      qkv_proj does, and nothing reads them.
    - `v_head_dim` (MiMo-V2-Flash: 192 for q and k, 128 for v): each value head's width where it is not head_dim;
      v_proj, the V cache, the P V product and o_proj's input take it. `v_scale` (MiMo's attention_value_scale):
      v times a constant before attention, one multiply per element.

    - `out_dim` (Zamba2's shared blocks: attention over a 2 x hidden input, back to the hidden size): o_proj's
      output width where it is not the input's. `lora_rank` (Zamba2's use_shared_attention_adapter): q, k and v
      each plus a LoRA adapter of that rank on the same input (_lora).

    The new token(s)' K and V are the KV-cache entries this step writes (role KV_CACHE, so every fusion
    plan writes them); in decode the cached positions are read as well, and attention runs over
    cached + new keys.

    Under tensor parallelism (`par`) this is one GPU's share: q, k and v column-parallel over the heads (KV heads
    replicated when tp exceeds them, sinks split with their heads), o_proj row-parallel, then an all-reduce."""
    d = x.shape[-1]
    v_dim = head_dim if v_head_dim is None else v_head_dim
    whole_q, whole_kv = heads * head_dim, kv_heads * head_dim
    if lora_rank and (q_rank or gate or own_gate or kv_shared or k_eq_v or v_norm or v_scale):
        raise OpgraphError("LoRA adapters on q, k and v (lora_rank) are modelled on plain q, k and v projections")
    heads, kv_heads = par.heads(heads), par.kv_heads(kv_heads)
    q_width, kv_width, v_width = heads * head_dim, kv_heads * head_dim, kv_heads * v_dim
    if qk_norm not in (None, *QK_NORMS):
        raise OpgraphError(f"qk_norm must be one of {', '.join(QK_NORMS)} or None, got {qk_norm!r}")
    if qk_norm in ("full", "full_reduced") and kv_width * par.tp != whole_kv:
        raise OpgraphError(f"--tp {par.tp} replicates the KV heads, which a norm over the whole k projection "
                           f"(OLMo-2's, MiniMax-M2's) cannot split; use a --tp that divides the KV heads")
    k_role = Role.ACTIVATION if rotary else Role.KV_CACHE  # k as the cache stores it: after rope, if any
    if own_gate and not gate:
        raise OpgraphError("own_gate (the output gate's own gate_proj) needs gate")
    if q_rank and (gate or q_bias):
        raise OpgraphError("a low-rank q (q_rank) is modelled without an output gate or a q bias")
    if q_rank:
        low = b.linear("q_proj", x, b.weight(f"{prefix}q_proj.weight", (q_rank, d)), out="q_low")
        low = b.norm("inter_norm", low, b.weight(f"{prefix}inter_norm.weight", (q_rank,)), out="q_low_normed")
        q = proj(b, "wq", low, q_width, prefix=prefix, out="q")
    elif own_gate:
        q = proj(b, "q_proj", x, q_width, prefix=prefix, bias=q_bias, out="q")
        g = b.linear("attn_gate_proj", x, b.weight(f"{prefix}gate_proj.weight", (q_width, d)), out="attn_gate")
    elif gate:
        if q_bias:
            raise OpgraphError("a gated q_proj with a bias is not supported")
        w = [b.weight(f"{prefix}q_proj.weight[{part}]", (q_width, d)) for part in ("query", "gate")]
        q, g = b.multi_linear("q_proj", x, w, outs=["q", "attn_gate"])
    else:
        q = proj(b, "q_proj", x, q_width, prefix=prefix, bias=q_bias, out="q")
        q = _lora(b, "q", x, {"q": q}, lora_rank, par, prefix)[0] if lora_rank else q
    if k_eq_v and not v_norm:
        raise OpgraphError("k_eq_v (v taken from k_proj) is modelled with v's norm (Gemma-4's v_norm)")
    if k_eq_v and v_dim != head_dim:
        raise OpgraphError(f"k_eq_v takes v from k_proj, so v_head_dim ({v_dim}) must be head_dim ({head_dim})")
    if gate and v_dim != head_dim:
        raise OpgraphError(f"a gated q_proj gates head_dim ({head_dim}) outputs a head; v_head_dim is {v_dim}")
    if v_scale and (k_eq_v or v_norm):
        raise OpgraphError("v_scale (MiMo's attention_value_scale) is modelled without v's norm or k_eq_v")
    if kv_shared:
        q = _qk_norm(b, "q_norm", q, qk_norm, heads, head_dim, par, prefix, whole_q, Role.ACTIVATION) if qk_norm \
            else q
        if kv_unused:  # projected, normed and rotated, then dropped: their results are the graph's, no cache
            k = proj(b, "k_proj", x, kv_width, prefix=prefix, bias=k_bias, out="k")
            v = proj(b, "v_proj", x, v_width, prefix=prefix, bias=v_bias, out="v")
            if v_norm:
                b.norm("v_norm", v, None, heads=kv_heads, out="v_norm_out")
            if qk_norm:
                k = _qk_norm(b, "k_norm", k, qk_norm, kv_heads, head_dim, par, prefix, whole_kv, Role.ACTIVATION)
            if rotary:
                b.rope("rope_k", k, head_dim=head_dim, rotary_dim=rotary_dim, out="k_rope")
        if rotary:
            q = b.rope("rope_q", q, head_dim=head_dim, rotary_dim=rotary_dim, out="q_rope")
        if q_scale:
            q = b.scale("q_temperature", q, out="q_scaled")
        seen = (phase.batch, keys.cached(phase) + phase.new_tokens)
        return _attend(b, q, [b.input("shared_k", (*seen, kv_width))], [b.input("shared_v", (*seen, v_width))],
                       phase, out_dim or d, par, keys, causal, prefix, o_bias, heads=heads, kv_heads=kv_heads,
                       head_dim=head_dim, v_dim=v_dim, sinks=sinks, softcap=softcap, alibi=alibi,
                       gate=g if gate else _head_gate(b, x, heads, prefix) if head_gate else None)
    k_out = Role.ACTIVATION if qk_norm or k_scale or k_eq_v else k_role
    k = proj(b, "k_proj", x, kv_width, prefix=prefix, bias=k_bias, out="k",
             role=Role.ACTIVATION if lora_rank else k_out)
    v = k if k_eq_v else proj(b, "v_proj", x, v_width, prefix=prefix, bias=v_bias, out="v",
                              role=Role.ACTIVATION if v_norm or v_scale or lora_rank else Role.KV_CACHE)
    if lora_rank:  # the adapted k and v take the roles the projections' outputs would have had
        [k] = _lora(b, "k", x, {"k": k}, lora_rank, par, prefix, roles={"k": k_out})
        [v] = _lora(b, "v", x, {"v": v}, lora_rank, par, prefix, roles={"v": Role.KV_CACHE})
    if v_scale:
        v = b.scale("v_scale", v, out="v_scaled", role=Role.KV_CACHE)
    if v_norm:
        v = b.norm("v_norm", v, None, heads=kv_heads, out="v_norm_out", role=Role.KV_CACHE)
    if qk_norm:
        q = _qk_norm(b, "q_norm", q, qk_norm, heads, head_dim, par, prefix, whole_q, Role.ACTIVATION)
        k = _qk_norm(b, "k_norm", k, qk_norm, kv_heads, head_dim, par, prefix, whole_kv,
                     Role.ACTIVATION if k_scale else k_role)
    if k_scale:
        k = b.scale("k_scale", k, out="k_scaled", role=k_role)
    if rotary:
        q = b.rope("rope_q", q, head_dim=head_dim, rotary_dim=rotary_dim, out="q_rope")
        k = b.rope("rope_k", k, head_dim=head_dim, rotary_dim=rotary_dim, out="k_rope", role=Role.KV_CACHE)
    if q_scale:
        q = b.scale("q_temperature", q, out="q_scaled")
    cached = [k], [v]
    past = keys.cached(phase)
    if past:
        cached[0].insert(0, b.cache("k_cache", (phase.batch, past, kv_width)))
        cached[1].insert(0, b.cache("v_cache", (phase.batch, past, v_width)))
    return _attend(b, q, *cached, phase, out_dim or d, par, keys, causal, prefix, o_bias, heads=heads,
                   kv_heads=kv_heads, head_dim=head_dim, v_dim=v_dim, sinks=sinks, softcap=softcap, alibi=alibi,
                   gate=g if gate else _head_gate(b, x, heads, prefix) if head_gate else None)


def _lora(b: GraphBuilder, name: str, x: Tensor, ys: dict[str, Tensor], rank: int, par: Parallel, prefix: str, *,
          roles: dict[str, Role] | None = None) -> list[Tensor]:
    """Each of `ys` plus its block of B(A(x)): a LoRA adapter beside the projections that made them (vLLM's
    Zamba2LoRA; one A, and B's rows the outputs' widths stacked: Zamba2's gate_up adapter). A [rank, in] is
    column-parallel with its output all-gathered (gather_output=True), B column-parallel as the projections are. The
    adapter is the block's own (one a layer that runs it) even where the projections are borrowed
    (GraphBuilder.borrowing). `roles`: an output's role where not an activation (the KV cache's k and v)."""
    roles = roles or {}
    with b.borrowing(False):
        low = proj(b, f"{name}_adapter.A", x, par.columns("the adapter rank", rank), prefix=prefix,
                   out=f"{name}_lora_low")
        low = par.gather_columns(b, f"{name}_lora_gather", low, f"{name}_lora_rank")
        w = _row_blocks(b, f"{name}_adapter.B", rank, {part: y.shape[-1] for part, y in ys.items()}, prefix=prefix)
        deltas = b.multi_linear(f"{name}_adapter.B", low, w, outs=[f"{part}_lora" for part in ys])
    deltas = deltas if isinstance(deltas, (list, tuple)) else [deltas]
    return [b.elementwise(f"{part}_lora_add", "add", y, delta, out=f"{part}_adapted",
                          role=roles.get(part, Role.ACTIVATION)) for (part, y), delta in zip(ys.items(), deltas)]


def _head_gate(b: GraphBuilder, x: Tensor, heads: int, prefix: str) -> Tensor:
    """Step-3.5's gate logits, one a head of this GPU's (g_proj [heads, d])."""
    return proj(b, "g_proj", x, heads, prefix=prefix, out="attn_gate")


def _attend(b: GraphBuilder, q: Tensor, ks: list, vs: list, phase: Phase, d: int, par: Parallel, keys: Keys,
            causal: bool, prefix: str, o_bias: bool, *, heads: int, kv_heads: int, head_dim: int, v_dim: int,
            sinks: bool = False, softcap: bool = False, gate: Tensor | None = None, select: int | None = None,
            block: int | None = None, indices: Tensor | None = None, alibi: bool = False) -> Tensor:
    """Attention of q over the keys `ks` and values `vs` (cached and new; values of `v_dim` a head), softmax with its
    sinks and soft cap, the output gate where given, o_proj and its all-reduce. `select`, `block`, `indices`: each
    query's selected keys (ops.pairs; MiniMax-M3's blocks)."""
    heads_kw = dict(heads=heads, kv_heads=kv_heads, causal=causal, window=keys.window, chunk=keys.chunk,
                    select=select, block=block)
    s = b.attention_scores("qk", q, ks, out="scores", head_dim=head_dim, indices=indices, **heads_kw)
    sink = b.weight(f"{prefix}sinks", (heads,)) if sinks else None
    slopes = b.input("alibi_slopes", (heads,), FP32) if alibi else None
    p = b.softmax("softmax", s, causal=causal, window=keys.window, chunk=keys.chunk, select=select, block=block,
                  keys=keys.cached(phase) + phase.new_tokens, sinks=sink, softcap=softcap, alibi=slopes,
                  out="probs")
    o = b.attention_values("av", p, vs, out="attn", head_dim=v_dim, **heads_kw)
    if gate is not None:  # one gate an output element (Qwen3-Next), or one a head (Step-3.5)
        g = b.elementwise("gate_sigmoid", "sigmoid", gate, out="attn_gate_act")
        o = (b.elementwise("gate_mul", "mul", o, g, out="attn_gated") if g.shape == o.shape else
             b.scale("gate_mul", o, g, out="attn_gated"))
    y = proj(b, "o_proj", o, d, prefix=prefix, bias=o_bias, out=par.out("attn_out", "attn_partial"))
    return par.reduce(b, "o_allreduce", y, "attn_out")


def _row_blocks(b: GraphBuilder, name: str, k: int, parts: dict[str, int], *, prefix: str) -> list[Tensor]:
    """The row blocks of checkpoint matrix `{prefix}{name}.weight` [sum(parts), k] that feed different ops:
    one weight `.weight[part]` per block, together exactly the checkpoint's rows."""
    return [b.weight(f"{prefix}{name}.weight[{part}]", (n, k)) for part, n in parts.items()]


# DeepSeek-V3.2's indexer keys and queries: fp8 e4m3 with one fp32 scale per 128 values (the reference's act_quant
# with block_size 128 and its k_cache / k_scale_cache; vLLM's "fp8 naive cache", head_dim + head_dim // 128 * 4
# bytes per token: 132 for index_head_dim 128), whatever the model's own KV-cache dtype.
INDEX_FP8 = FP8.grouped(128, scale_bits=32)


def shared_selection(b: GraphBuilder, phase: Phase, topk: int, entries: int) -> Tensor:
    """The selection an earlier layer's indexer made this step, read as an input: min(topk, entries) indices a query,
    [B, Sq, that] (int32). GLM-5.2's IndexShare layers and DeepSeek-V4.1's layers between index sources attend to it,
    as transformers' prev_topk_indices and vLLM's one topk_indices_buffer hand it on."""
    return b.input("indexer.shared_topk_indices", (phase.batch, phase.new_tokens, minimum(topk, entries)), INT32)


def lightning_indexer(b: GraphBuilder, x: Tensor, cq: Tensor, phase: Phase, *, heads: int, head_dim: int, topk: int,
                      rope_dim: int, causal: bool = False, prefix: str = "self_attn.") -> Tensor:
    """DeepSeek-V3.2's lightning indexer (DeepSeek-V3.2-Exp report, section 2.1; reference inference/model.py
    Indexer.forward): the top-k keys each query attends to, [B, Sq, min(topk, Sk)] (int32 positions). Ops indexer.*,
    weights `{prefix}indexer.*` as the checkpoint names them:

    - q: wq_b [heads*head_dim, q_lora_rank] on the normed q latent `cq`; rope on the first rope_dim of each head's
      dims (the reference splits [q_pe | q_nope]); the Hadamard transform (rotate_activation); fp8 with a scale
      per 128 values (act_quant, not counted as FLOPs, as no cast is);
    - k: wk [head_dim, d_model] on x; k_norm, a LayerNorm with bias [head_dim]; rope on its first rope_dim; the
      Hadamard transform; fp8: the indexer's KV-cache entry (INDEX_FP8, 132 bytes a token for head_dim 128);
    - weights_proj [heads, d_model] on x: each head's weight per query;
    - index_scores over every key, cached and new (ops.index_scores: the dot products, ReLU, weights, head sum);
    - top_k: the min(topk, Sk) best keys per query (one comparison per score, whole rows: torch.topk's, as the
      reference runs it over the masked scores).

    Under tensor parallelism the indexer is replicated, on every GPU whole (vLLM's Indexer: wq_b a ReplicatedLinear
    and wk + weights_proj one MergedColumnParallelLinear with disable_tp, "no tensor parallel, just replicated"; the
    reference also runs wq_b whole on every rank and checks that every rank selected the same keys), and so is its
    key cache, as the latent cache is."""
    w_q = b.weight(f"{prefix}indexer.wq_b.weight", (heads * head_dim, cq.shape[-1]))
    q = b.linear("indexer.wq_b", cq, w_q, out="indexer.q")
    q = b.rope("indexer.rope_q", q, head_dim=head_dim, rotary_dim=rope_dim, out="indexer.q_rope")
    q = b.hadamard("indexer.hadamard_q", q, dim=head_dim, out="indexer.q_rotated", dtype=INDEX_FP8)
    k = proj(b, "indexer.wk", x, head_dim, prefix=prefix, out="indexer.k")
    k = norm(b, "indexer.k_norm", k, f"{prefix}indexer.k_norm.weight", fn="layernorm", bias=True,
             out="indexer.k_normed")
    k = b.rope("indexer.rope_k", k, head_dim=head_dim, rotary_dim=rope_dim, out="indexer.k_rope")
    k = b.hadamard("indexer.hadamard_k", k, dim=head_dim, out="indexer.k_entry", role=Role.KV_CACHE, dtype=INDEX_FP8)
    w = proj(b, "indexer.weights_proj", x, heads, prefix=prefix, out="indexer.weights")
    keys = [k]
    if phase.past:
        keys.insert(0, b.cache("indexer.k_cache", (phase.batch, phase.past, head_dim), INDEX_FP8))
    scores = b.index_scores("indexer.scores", q, keys, w, heads=heads, head_dim=head_dim, causal=causal,
                            out="indexer.scores", dtype=FP32)
    return b.top_k("indexer.top_k", scores, k=minimum(topk, phase.keys), out="indexer.topk_indices", dtype=INT32)


@piece("attention")
def mla_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, kv_lora_rank: int, qk_nope_head_dim: int,
                  qk_rope_head_dim: int, v_head_dim: int, q_lora_rank: int | None = None, absorbed: bool = False,
                  causal: bool = False, prefix: str = "self_attn.", par: Parallel = Parallel.SINGLE,
                  indexer=None, rotary: bool = True, gate: bool = False, expanded: bool = False) -> Tensor:
    """Multi-head latent attention (DeepSeek-V2 paper, section 2.1; DeepSeek-V3 keeps it).

    kv_a_proj_with_mqa compresses each token to a latent of kv_lora_rank (normed) plus one rope key of
    qk_rope_head_dim shared by all heads; that pair, kv_lora_rank + qk_rope_head_dim per token, is all
    the KV cache holds. Queries come from q_proj, or from the low-rank q_a_proj -> q_a_layernorm ->
    q_b_proj when q_lora_rank is set.

    Decompressed form (absorbed=False, prefill): kv_b_proj expands the new tokens' latents into per-head
    K (nope part, with the shared rope key appended) and V, then ordinary attention with head_dim
    qk_nope + qk_rope for QK^T and v_head_dim for PV.
    Weight-absorbed form (absorbed=True, decode): kv_b_proj's K block is folded into the query
    (q_absorb: per head q_nope @ W_UK -> kv_lora_rank) and its V block into the output (v_absorb), so
    attention runs MQA-style straight over the cached [latent | rope key] entries, which are never
    decompressed: QK^T over kv_lora_rank + qk_rope per head, PV over the kv_lora_rank latent.

    Under tensor parallelism (`par`, as vLLM shards MLA): the heads split over the GPUs (q_b_proj or q_proj, kv_b_proj, the
    absorbed products by columns; o_proj by rows, then an all-reduce); the latent path (q_a_proj,
    kv_a_proj_with_mqa, their norms) and so the latent KV cache are on every GPU whole.

    With an `indexer` (models.parts.Indexer: heads, head_dim, topk; DeepSeek-V3.2's sparse attention, DSA), the
    lightning indexer (lightning_indexer) picks min(topk, Sk) keys per query and attention runs over those alone:
    in prefill the decompressed form with `select=topk` on qk, softmax and av (each query min(topk, keys it sees));
    in decode a gather of the selected min(topk, context + 1) latent entries (gather_selected), then the absorbed
    form over them; several queries a sequence over a cache (a prompt chunk, a speculative verify step: the
    absorbed form too, as vLLM's FlashMLA sparse backend runs both) attend to their selections in the kernel, which
    reads each cached entry at most once (ops.selected_reads). Needs q_lora_rank (the indexer reads the normed q
    latent). The indexer is replicated under tensor parallelism (lightning_indexer). A `shared` indexer (IndexShare,
    GLM-5.2's "shared" layers) runs nothing: the layer reads the indices an earlier layer selected this step, as
    transformers' GlmMoeDsaAttention takes prev_topk_indices and vLLM's layers read one topk_indices_buffer. Without `rotary` (Kimi Linear's
    NoPE MLA, vLLM's KimiMLAAttention with rotary_emb None) the qk_rope_head_dim parts are used unrotated. With
    `gate` (Kimi-K3's mla_use_output_gate: its modeling_kimi_linear.py KimiMLAAttention), g_proj [heads*v_head_dim,
    d] on the layer's input gives a sigmoid gate for each output channel of each head, multiplied in before o_proj
    (column-parallel over the heads, as vLLM and SGLang shard it).

    `expanded` (MiniCPM3 as vLLM's minicpm3.py runs it, outside its MLA backends): MLA's weights run as multi-head
    attention in every phase. The decompressed K (qk_nope + qk_rope a head) and V, zero-padded to that width
    (F.pad: v_pad), are what the cache holds, heads x 2 x (qk_nope + qk_rope) values a token, and attention runs over
    them; each head's output is cut back to v_head_dim (a copy, attn_slice) before o_proj."""
    d = x.shape[-1]
    if expanded and (indexer is not None or absorbed):
        raise OpgraphError("expanded MLA (run as multi-head attention) has no absorbed form or indexer")
    if indexer is not None and not q_lora_rank:
        raise OpgraphError("DeepSeek-V3.2's indexer reads the normed q latent: it needs q_lora_rank")
    heads = par.heads(heads)
    nope, rope, r = qk_nope_head_dim, qk_rope_head_dim, kv_lora_rank
    q_parts = {"nope": heads * nope, "rope": heads * rope}
    if q_lora_rank:
        cq = proj(b, "q_a_proj", x, q_lora_rank, prefix=prefix, out="q_latent")
        cq = norm(b, "q_a_layernorm", cq, f"{prefix}q_a_layernorm.weight", out="q_latent_norm")
        w_q = _row_blocks(b, "q_b_proj", q_lora_rank, q_parts, prefix=prefix)
        q_nope, q_pe = b.multi_linear("q_b_proj", cq, w_q, outs=["q_nope", "q_pe"])
    else:
        q_nope, q_pe = b.multi_linear("q_proj", x, _row_blocks(b, "q_proj", d, q_parts, prefix=prefix),
                                     outs=["q_nope", "q_pe"])
    if rotary:  # Kimi Linear's MLA layers (mla_use_nope) keep the qk_rope_head_dim part unrotated
        q_pe = b.rope("rope_q", q_pe, head_dim=rope, out="q_pe_rope")
    w_kv_a = _row_blocks(b, "kv_a_proj_with_mqa", d, {"latent": r, "rope": rope}, prefix=prefix)
    latent, k_pe = b.multi_linear("kv_a_proj_with_mqa", x, w_kv_a, outs=["kv_latent", "k_pe"])
    latent = norm(b, "kv_a_layernorm", latent, f"{prefix}kv_a_layernorm.weight", out="kv_latent_norm")
    if rotary:
        k_pe = b.rope("rope_k", k_pe, head_dim=rope, out="k_pe_rope")
    if not expanded:
        entry = b.concat_heads("cache_entry", latent, k_pe, heads=1, out="latent_entry", role=Role.KV_CACHE)
    w_uk, w_uv = _row_blocks(b, "kv_b_proj", r, {"k": heads * nope, "v": heads * v_head_dim}, prefix=prefix)
    picked = select = None
    if indexer is not None and indexer.shared:  # IndexShare: the selection an earlier layer's indexer wrote
        picked, select = shared_selection(b, phase, indexer.topk, phase.keys), indexer.topk
    elif indexer is not None:
        picked = lightning_indexer(b, x, cq, phase, heads=indexer.heads, head_dim=indexer.head_dim,
                                   topk=indexer.topk, rope_dim=rope, causal=causal, prefix=prefix)
        select = indexer.topk
    if absorbed:
        q_lat = b.grouped_linear("q_absorb", q_nope, w_uk, groups=heads, in_dim=nope, out_dim=r, out="q_latent_absorbed")
        q = b.concat_heads("q_concat", q_lat, q_pe, heads=heads, out="q_full")
        keys = [entry]
        if phase.past:
            keys.insert(0, b.cache("latent_cache", (phase.batch, phase.past, r + rope)))
        kw = dict(heads=heads, kv_heads=1, causal=causal)
        if picked is not None and phase.new_tokens > 1:
            # several queries a sequence over its cache (a prompt chunk, a speculative verify step): each query its
            # own selection, read in the kernel (FlashMLA's sparse kernels take the indices themselves)
            kw.update(select=select)
            s = b.attention_scores("qk", q, keys, head_dim=r + rope, indices=picked, out="scores", **kw)
            p = b.softmax("softmax", s, causal=causal, keys=phase.keys, select=select, out="probs")
            o = b.attention_values("av", p, keys, head_dim=r, value_width=r + rope, out="attn_latent", **kw)
        elif picked is not None:
            # only the selected entries: one output for QK^T ([latent | rope key]), one for PV (the latent)
            sel_k, sel_v = b.gather_selected("gather_selected", keys, picked, value_dim=r, dtype=entry.dtype,
                                             outs=["selected_entries", "selected_latents"])
            s = b.attention_scores("qk", q, [sel_k], head_dim=r + rope, out="scores", **kw)
            p = b.softmax("softmax", s, causal=causal, out="probs")
            o = b.attention_values("av", p, [sel_v], head_dim=r, out="attn_latent", **kw)
        else:
            s = b.attention_scores("qk", q, keys, head_dim=r + rope, out="scores", **kw)
            p = b.softmax("softmax", s, causal=causal, out="probs")
            o = b.attention_values("av", p, keys, head_dim=r, value_width=r + rope, out="attn_latent", **kw)
        o = b.grouped_linear("v_absorb", o, w_uv, groups=heads, in_dim=r, out_dim=v_head_dim, out="attn")
    elif expanded:
        width = nope + rope
        if v_head_dim > width:
            raise OpgraphError(f"expanded MLA pads V to the q/k width ({width}); v_head_dim {v_head_dim} is wider")
        k_nope, v = b.multi_linear("kv_b_proj", latent, [w_uk, w_uv], outs=["k_nope", "v"])
        q = b.concat_heads("q_concat", q_nope, q_pe, heads=heads, out="q_full")
        k = b.concat_heads("k_concat", k_nope, k_pe, heads=heads, shared=(1,), out="k_full", role=Role.KV_CACHE)
        v = b.pad_last("v_pad", v, heads * width, out="v_padded", role=Role.KV_CACHE)
        keys, values = [k], [v]
        if phase.past:
            keys.insert(0, b.cache("k_cache", (phase.batch, phase.past, heads * width)))
            values.insert(0, b.cache("v_cache", (phase.batch, phase.past, heads * width)))
        kw = dict(heads=heads, kv_heads=heads, causal=causal)
        s = b.attention_scores("qk", q, keys, head_dim=width, out="scores", **kw)
        p = b.softmax("softmax", s, causal=causal, out="probs")
        o = b.attention_values("av", p, values, head_dim=width, out="attn_padded", **kw)
        o = b.slice_last("attn_slice", o, heads * v_head_dim, out="attn")
    else:
        if phase.past:
            raise OpgraphError("the decompressed MLA form here covers prefill (an empty cache); decode uses the "
                               "weight-absorbed form")
        k_nope, v = b.multi_linear("kv_b_proj", latent, [w_uk, w_uv], outs=["k_nope", "v"])
        q = b.concat_heads("q_concat", q_nope, q_pe, heads=heads, out="q_full")
        k = b.concat_heads("k_concat", k_nope, k_pe, heads=heads, shared=(1,), out="k_full")
        kw = dict(heads=heads, kv_heads=heads, causal=causal, select=select)
        s = b.attention_scores("qk", q, [k], head_dim=nope + rope, indices=picked, out="scores", **kw)
        p = b.softmax("softmax", s, causal=causal, keys=phase.keys if select else None, select=select, out="probs")
        o = b.attention_values("av", p, [v], head_dim=v_head_dim, out="attn", **kw)
    if gate:
        g = proj(b, "g_proj", x, heads * v_head_dim, prefix=prefix, out="attn_gate")
        o = b.elementwise("gate_mul", "mul", o, b.elementwise("gate_sigmoid", "sigmoid", g, out="attn_gate_act"),
                          out="attn_gated")
    return par.reduce(b, "o_allreduce", proj(b, "o_proj", o, d, prefix=prefix, out=par.out("attn_out", "attn_partial")),
                      "attn_out")


# Two-input activations take the gate and the up projection together (gpt-oss's clamped SwiGLU).
PAIRED_ACTS = frozenset({"clamp_swiglu", "limit_swiglu", "situ"})
# Activations with learned scalars of their own, each in the checkpoint under act_fn (Apertus's xIELU: transformers'
# XIELUActivation keeps alpha_p and alpha_n as parameters, beta and eps as persistent buffers, all four per layer).
ACT_PARAMS = {"xielu": ("alpha_p", "alpha_n", "beta", "eps")}


def _activation(b: GraphBuilder, name: str, act: str, x: Tensor, prefix: str, out: str) -> Tensor:
    """act(x), reading the activation's own scalars (ACT_PARAMS) where it has them."""
    params = tuple(b.weight(f"{prefix}act_fn.{p}", (1,)) for p in ACT_PARAMS.get(act, ()))
    return b.elementwise(name, act, x, params=params, out=out)


@piece("mlp")
def gated_mlp(b: GraphBuilder, x: Tensor, *, d_ffn: int, act: str = "silu", prefix: str = "mlp.",
              bias: bool = False, par: Parallel = Parallel.SINGLE, reduce_output: bool = True,
              gate_scale: bool = False, out_scale: bool = False, sparse: bool = False,
              lora_rank: int | None = None) -> Tensor:
    """down(act(gate(x)) * up(x)): SwiGLU with act="silu", GeGLU with act="gelu", any registered activation;
    gpt-oss's clamped SwiGLU (act="clamp_swiglu") takes gate and up in one op. Under tensor parallelism (`par`),
    one GPU's share: gate and up column-parallel, down row-parallel, then an all-reduce (left to the caller with
    `reduce_output=False`, when its partial sums join others first). `gate_scale` and `out_scale` (Falcon-H1's
    mlp_multipliers): the gate projection times a constant before the activation (this GPU's columns), and the
    output times a constant after the all-reduce, one multiply per element each, as vLLM runs them. `sparse`
    (Gemma-3n's activation_sparsity_pattern): the gate's Gaussian top-k (ops.gaussian_topk) before the activation.
    `lora_rank` (Zamba2's shared MLP): gate and up plus a LoRA adapter of that rank on gate_up (_lora)."""
    d, d_ffn = x.shape[-1], par.columns("the FFN width", d_ffn)
    gate = proj(b, "gate_proj", x, d_ffn, prefix=prefix, bias=bias, out="gate")
    up = proj(b, "up_proj", x, d_ffn, prefix=prefix, bias=bias, out="up")
    if lora_rank:
        gate, up = _lora(b, "gate_up", x, {"gate": gate, "up": up}, lora_rank, par, prefix)
    if gate_scale:
        gate = b.scale("gate_scale", gate, out="gate_scaled")
    if sparse:
        gate = b.gaussian_topk("gate_topk", gate, out="gate_sparse")
    y = _down(b, _gated(b, "", act, gate, up, ""), d, prefix, bias, par, reduce_output)
    return b.scale("out_scale", y, out="mlp_scaled") if out_scale else y


def _down(b: GraphBuilder, h: Tensor, d: int, prefix: str, bias: bool, par: Parallel, reduce_output: bool) -> Tensor:
    """An MLP's down projection back to the hidden size `d`, row-parallel under `par`, then the all-reduce (left to
    the caller with `reduce_output=False`)."""
    if not reduce_output:
        return proj(b, "down_proj", h, d, prefix=prefix, bias=bias, out="mlp_out")
    return par.reduce(b, "down_allreduce", proj(b, "down_proj", h, d, prefix=prefix, bias=bias,
                                                out=par.out("mlp_out", "mlp_partial")), "mlp_out")


def _gated(b: GraphBuilder, ops: str, act: str, gate: Tensor, up: Tensor, outs: str) -> Tensor:
    """act(gate) * up, as two ops (act, mul), or one for a paired activation; `ops`/`outs` prefix their names."""
    if act in PAIRED_ACTS:
        return b.elementwise(f"{ops}act", act, gate, up, out=f"{outs}gated")
    if act in ACT_PARAMS:
        raise OpgraphError(f"{act} (an activation with scalars of its own) is modelled in a plain MLP, not a gated one")
    a = b.elementwise(f"{ops}act", act, gate, out=f"{outs}act")
    return b.elementwise(f"{ops}mul", "mul", a, up, out=f"{outs}gated")


@piece("mlp")
def plain_mlp(b: GraphBuilder, x: Tensor, *, d_ffn: int, act: str = "gelu", prefix: str = "mlp.",
              bias: bool = True, par: Parallel = Parallel.SINGLE, reduce_output: bool = True) -> Tensor:
    """down(act(up(x))), with or without biases: GPT-2's c_fc -> gelu -> c_proj, Nemotron-H's squared-ReLU MLP
    (split under `par` as gated_mlp is, its all-reduce left to the caller with `reduce_output=False`)."""
    d, d_ffn = x.shape[-1], par.columns("the FFN width", d_ffn)
    h = proj(b, "up_proj", x, d_ffn, prefix=prefix, bias=bias, out="up")
    return _down(b, _activation(b, "act", act, h, prefix, "act"), d, prefix, bias, par, reduce_output)


@size_function
def expected_experts(experts: int, top_k: int, tokens: int, pool: int | None = None) -> int:
    """Distinct routed experts a step's `tokens` touch, each token picking top_k of `experts` uniformly
    at random: the expectation E*(1 - (1 - k/E)^T), rounded up to whole experts (an expert's weights are
    read whole or not at all). Exact integer arithmetic, so k/E never rounds the wrong way. `pool`: the candidates
    each token picks among where more than the experts (LongCat-Flash's zero-computation experts beside them):
    E*(1 - (1 - k/P)^T).

    A size function (opgraph.core.sizes): a sweep evaluates it once per distinct token count, so the
    exact power is computed only where it decides the answer."""
    pool = pool or experts
    if top_k >= pool:
        return experts
    # Experts left untouched: E*((P-k)/P)^T = E (P-k)^T / P^T; it is below 1/2 unless T < P/k*ln(2E),
    # so the exact powers below never exceed a few hundred factors.
    if experts * (1 - top_k / pool) ** tokens < 0.5:
        return experts
    return experts - experts * (pool - top_k) ** tokens // pool ** tokens


@size_function
def expected_experts_real(experts: int, top_k: int, tokens: int, pool: int | None = None) -> float:
    """The expectation E*(1 - (1 - k/P)^T) before rounding, for notes that show the arithmetic."""
    return experts * (1 - (1 - top_k / (pool or experts)) ** tokens)


@functools.lru_cache(maxsize=None)
def expected_max_normal(n: int) -> float:
    """E[max of n independent standard normals], by integrating x * n * phi(x) * Phi(x)^(n-1) (trapezoids of 1e-3
    over [-9, 9]; exact to about 1e-9). 0 for n = 1; 0.5642 for n = 2 (1/sqrt(pi)); 1.7660 for n = 16."""
    step, total = 1e-3, 0.0
    for i in range(-9000, 9001):
        x = i * step
        pdf = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        total += x * n * pdf * (0.5 * (1 + math.erf(x / math.sqrt(2)))) ** (n - 1)
    return total * step


@size_function
def busiest_expert_load(experts: int, top_k: int, gpus: int, tokens: int, imbalance: float = 0.0,
                        shared: bool = False) -> int:
    """Token-expert rows the busiest of `gpus` expert-parallel GPUs runs when each GPU routes `tokens` tokens to
    top_k of `experts` (experts / gpus on each GPU).

    The mean is tokens x top_k. Under uniform routing, the rows one GPU receives from one token are
    hypergeometric (top_k draws from `experts`, experts/gpus of them its own), so its load over the group's
    gpus x tokens tokens has variance gpus x tokens x k p (1 - p) (E - k) / (E - 1), p = 1 / gpus; the busiest
    GPU's expected load is taken as the mean plus sigma x E[max of `gpus` standard normals] (normal loads,
    treated as independent), rounded up. `imbalance` > 0 replaces that by imbalance x the mean (a measured or
    assumed max / mean). Capped at what a GPU can receive: gpus x tokens x min(top_k, its experts).
    `shared`: every GPU has the same `tokens` tokens (experts spread over a tensor-parallel group), so the group
    routes `tokens`, not gpus x tokens, and the mean is tokens x top_k / gpus."""
    local = experts // gpus
    cap = (1 if shared else gpus) * tokens * min(top_k, local)  # each token gives one GPU at most min(k, local)
    if shared:
        tokens = tokens / gpus  # the same spread as gpus GPUs routing tokens / gpus each
    mean = tokens * top_k
    if imbalance:
        return min(cap, math.ceil(imbalance * mean))
    p = 1 / gpus
    var = gpus * tokens * top_k * p * (1 - p) * ((experts - top_k) / (experts - 1) if experts > 1 else 0.0)
    return min(cap, math.ceil(mean + math.sqrt(var) * expected_max_normal(gpus) - 1e-9))


@piece("moe")
def moe(b: GraphBuilder, x: Tensor, spec, *, touched: int, rows: int = 0, par: Parallel = Parallel.SINGLE,
        prefix: str = "mlp.", router_x: Tensor | None = None) -> Tensor:
    """Mixture-of-experts feed-forward as `spec` (a models.parts.MoE) says: Mixtral's, DeepSeekMoE's with shared
    experts, Qwen's with a gated shared expert, gpt-oss's with expert biases and a clamped SwiGLU, Llama-4's.

    router (a matmul to E logits, with its own bias or a selection bias) -> softmax or sigmoid -> top_k (group-
    limited where the spec says); each token runs through its top_k routed experts (FLOPs for exactly k experts per
    token), gated or, where the spec says, plain (Nemotron-3's down(relu2(up))), whose outputs are combined with the
    routing weights; shared experts are one MLP of the same kind and the spec's shared width that every token runs
    (times a sigmoid gate per token where the spec has one).
    Routed expert weights are stacked [E, out, in]; a step reads `touched` of the E experts (`expected_experts`).

    Under tensor parallelism without expert parallelism (as vLLM shards MoE): the router on every GPU, each
    expert's width (and the shared experts') split over the GPUs, one all-reduce of the combined output.
    Under expert parallelism (par.ep > 1) a GPU holds experts / ep whole experts and runs `rows` token-expert rows
    through them (the busiest GPU's load, or the mean's: `busiest_expert_load`):
    - over data-parallel GPUs (tp = 1; every GPU on its own sequences, as DeepSeek serves V3): its tokens go out
      to their experts' GPUs (ep_dispatch) and the outputs come back (ep_combine) to be weighted and summed per
      token; shared experts run whole on every GPU, on its own tokens;
    - over a tensor-parallel group (tp = ep; every GPU has every token after attention, as vLLM's expert
      parallelism runs): each GPU gathers the rows routed to its experts (moe_route), adds their weighted outputs
      into a partial sum per token (moe_unroute), and one all-reduce completes it, with the shared experts split
      by width as tensor parallelism splits them;
    - over ep groups of a tensor-parallel group (ep divides tp, as TensorRT-LLM's moe_tp x moe_ep and SGLang's
      --ep-size below --tp-size run it): the same, each of a group's tp / ep GPUs holding its group's experts at
      1 / (tp / ep) of their width (Parallel.expert_split) and running every row routed to them.

    A latent MoE (spec.latent: Nemotron-3 Super's LatentMoE, arXiv 2512.20856) runs its routed experts in a
    narrower space: fc1_latent_proj takes each token there after routing (the router reads the full hidden state)
    and before any dispatch, so the experts' matrices and the rows that move are latent wide, and fc2_latent_proj
    takes the weighted sum back; both are whole on every GPU (vLLM's and SGLang's ReplicatedLinear). Under tensor
    parallelism the routed sum is all-reduced in the latent space before fc2 and the shared experts' output on its
    own, two all-reduces where a plain MoE has one (vLLM's MoERunner._maybe_reduce_routed_output_before_transform,
    vllm/model_executor/layers/fused_moe/runner/moe_runner.py). Kimi-K3's (spec.latent_names routed_expert_down_proj
    and routed_expert_up_proj, spec.latent_norm routed_expert_norm) RMS-normalizes the whole latent sum before the
    projection back (its modeling_kimi_linear.py KimiSparseMoeBlock; SGLang's unfused path, two all-reduces: vLLM
    sends the latent and the shared partials in one)."""
    d, tp, ep = x.shape[-1], par.tp, par.ep
    weights = _router(b, x if router_x is None else router_x, spec, prefix)  # Gemma-4's reads the un-normed stream
    down_name, up_name = spec.latent_names
    xe = x if spec.latent is None else proj(b, down_name, x, spec.latent, prefix=prefix, out="latent")
    de = xe.shape[-1]  # the width the routed experts take and give back
    if ep > 1:
        held = shard("the routed experts", spec.experts, ep)  # every row on one of its experts
        width, groups = par.expert_columns(spec.d_expert), 1
        if tp > 1:
            h = b.moe_route("route", xe, rows=rows, out="routed")
        else:
            h = b.ep_dispatch("dispatch", xe, group=ep, top_k=spec.top_k, rows=rows, out="dispatched")
    else:
        held, width, groups, h = spec.experts, par.expert_columns(spec.d_expert), spec.top_k, xe

    def experts_linear(name: str, h: Tensor, n: int, k: int, out: str) -> Tensor:
        w = b.weight(f"{prefix}experts.{name}.weight", (held, n, k))
        bias = b.weight(f"{prefix}experts.{name}.bias", (held, n), b.precision.act) if spec.expert_bias else None
        return b.grouped_linear(f"experts.{name}", h, w, groups=groups, in_dim=k, out_dim=n,
                                weight_reads=touched * n * k, bias=bias, out=out)

    if spec.gated:
        gate = experts_linear("gate_proj", h, width, de, "expert_gate")
        a = _gated(b, "experts.", spec.act, gate, experts_linear("up_proj", h, width, de, "expert_up"), "expert_")
    else:
        a = b.elementwise("experts.act", spec.act, experts_linear("up_proj", h, width, de, "expert_up"),
                          out="expert_act")
    y = experts_linear("down_proj", a, de, width, "expert_out")
    latent = spec.latent is not None
    summed = "routed_latent" if latent else "routed_out"  # the weighted sum, in the experts' width
    if ep > 1 and tp > 1:
        out = b.moe_unroute("combine", y, weights, tokens=x.shape[:-1], out=f"{summed}_partial")
    else:
        if ep > 1:
            y = b.ep_combine("combine_back", y, group=ep, top_k=spec.top_k, tokens=x.shape[:-1], out="expert_returned")
        out = b.moe_combine("combine", y, weights, top_k=spec.top_k, out=par.out(summed, f"{summed}_partial"))
    if latent:  # the routed sum whole, (normed,) then back to the hidden size
        out = par.reduce(b, "latent_allreduce", out, summed)
        if spec.latent_norm:
            out = norm(b, spec.latent_norm, out, f"{prefix}{spec.latent_norm}.weight", out="routed_latent_normed")
        out = proj(b, up_name, out, d, prefix=prefix, out="routed_out")
    if spec.shared_width:
        # Shared experts sit beside the routed ones in one block, as ops named shared.*
        mlp = gated_mlp if spec.gated else plain_mlp
        # split by width over the tp group whatever the experts' layout; a latent MoE's reduces its own output, as
        # the routed latent sum is (scattered over the tokens under sequence parallelism)
        s = mlp(b, x, d_ffn=spec.shared_width, act=spec.shared_act or spec.act, prefix=f"{prefix}{spec.shared_name}.",
                bias=False, name="shared.", par=Parallel(tp, sp=par.sp), reduce_output=latent)
        if spec.shared_gate:
            g = b.linear("shared.gate", x, b.weight(f"{prefix}shared_expert_gate.weight", (1, d)), out="shared_gate")
            s = b.scale("shared.scale", s, b.elementwise("shared.sigmoid", "sigmoid", g, out="shared_gate_act"),
                        out="shared_scaled")
        out = b.elementwise("shared_add", "add", out, s, out="moe_out" if latent else par.out("moe_out", "moe_partial"))
    if latent:  # each side reduced already
        return out
    if spec.zero:  # the identity experts' term: x times the token's weights on them, summed in one kernel
        z = b.scale("zero_experts", x, out="zero_out")
        out = b.elementwise("zero_add", "add", out, z, out=par.out("experts_out", "experts_partial"))
    return par.reduce(b, "moe_allreduce", out, "moe_out" if spec.shared_width or spec.zero else "routed_out")


def _router(b: GraphBuilder, x: Tensor, spec, prefix: str) -> Tensor:
    """router (a matmul to E logits: with gpt-oss's bias, or DeepSeek-V3's selection bias added to the scores)
    -> softmax or sigmoid scores -> the top_k routing weights. Gemma-4's (spec.router_norm, spec.expert_scale):
    its input RMS-normalized with a learned scale (router.scale) and times hidden_size^-1/2 first, and each kept
    weight times its expert's per_expert_scale (modeling_gemma4.py Gemma4TextRouter). DeepSeek-V4's
    (spec.scores "sqrtsoftplus", spec.hashed): scores sqrt(softplus(logits)), and in its hash-routed layers each
    token's experts looked up by its id in gate.tid2eid [vocab, top_k] (int64; its reference inference/model.py
    Gate), its weights still taken from the scores; the selection bias is then not read."""
    e, dt = spec.experts + spec.zero, spec.router_dtype  # zero-computation experts are scored and picked too
    if spec.router_norm:
        normed = b.norm("router_norm", x, b.weight(f"{prefix}{spec.router_name}.scale", (x.shape[-1],)),
                        out="router_normed")
        x = b.scale("router_input_scale", normed, out="router_input")
    bias = (b.weight(f"{prefix}{spec.router_name}.bias", (e,), spec.bias_dtype or dt) if spec.router_bias == "linear"
            else b.weight(f"{prefix}{spec.router_name}.e_score_correction_bias", (e,), spec.bias_dtype or dt)
            if spec.router_bias == "selection" and not spec.hashed else None)
    logits = b.linear("router", x, b.weight(f"{prefix}{spec.router_name}.weight", (e, x.shape[-1]), dt), bias=bias,
                      out="router_logits")
    if spec.scores == "sigmoid":
        probs = b.elementwise("router_sigmoid", "sigmoid", logits, out="router_probs")
    elif spec.scores == "sqrtsoftplus":
        probs = b.elementwise("router_sqrt_softplus", "sqrt_softplus", logits, out="router_probs")
    else:
        probs = b.softmax("router_softmax", logits, out="router_probs")
    scales = b.weight(f"{prefix}{spec.router_name}.per_expert_scale", (e,)) if spec.expert_scale else None
    looked = None
    if spec.hashed:
        ids = b.input("token_ids", x.shape[:-1], INT32)
        table = b.weight(f"{prefix}{spec.router_name}.tid2eid", (spec.hashed, spec.top_k), INT64)
        looked = b.embedding("hash_route", ids, table, out="hashed_experts", dtype=INT64)
    return b.top_k("top_k", probs, k=spec.top_k, groups=spec.groups, renormalize=spec.renormalize,
                   scaled=spec.scaled, expert_scale=scales, lookup=looked, out="routing_weights")


def residual(b: GraphBuilder, name: str, x: Tensor, branch: Tensor, out: str) -> Tensor:
    return b.elementwise(name, "add", x, branch, out=out)


def attn_res(b: GraphBuilder, key: str, prefix: Tensor, blocks: int, *, snapshot: bool = False) -> Tensor:
    """Block AttnRes's input to a sublayer (or the head): the mix of the `blocks` snapshots written at the block
    boundaries so far, read from memory, and the current block's running sum `prefix` (ops.attn_res_mix), with the
    weights `{key}_norm.weight` [d] and `{key}_proj.weight` [1, d] as Kimi-K3's checkpoint names them. With
    `snapshot` (a block's boundary) the same pass writes `prefix` as the block's snapshot, an output of the graph.
    Without snapshots to mix, the snapshot is written on its own (attn_res_bank). Whole on every GPU under tensor
    parallelism, as a residual add is."""
    d = prefix.shape[-1]
    if not blocks:
        b.keep(b.attn_res_bank("attn_res_bank", prefix, out="block_snapshot"))
        return prefix
    bank = b.input(f"{key}_blocks", (*prefix.shape[:-1], blocks, d))
    y = b.attn_res_mix(f"{key}_mix", bank, prefix, b.weight(f"{key}_norm.weight", (d,)),
                       b.weight(f"{key}_proj.weight", (1, d)), snapshot="block_snapshot" if snapshot else None,
                       out=f"{key}_in")
    if not snapshot:
        return y
    b.keep(y[1])
    return y[0]


@piece("embedding")
def embedding(b: GraphBuilder, phase: Phase, *, vocab: int, d_model: int, positions: int | None = None,
              scaled: bool = False, par: Parallel = Parallel.SINGLE, embed_dim: int | None = None,
              normed: bool = False) -> Tensor:
    """Token ids -> hidden states; reads only the rows the batch looks up. With `positions` (the size of
    a learned position table, GPT-2's wpe), adds the learned position embedding: every sequence looks up
    the same new_tokens positions, so only those rows are read. `scaled`: the embeddings times sqrt(d_model)
    (Gemma's normalizer), one multiply per element. `embed_dim` (OPT-350m's word_embed_proj_dim): the table's
    width, then project_in to d_model, whole on every GPU (vLLM's ReplicatedLinear), before the positions.
    `normed` (BLOOM's word_embeddings_layernorm): a LayerNorm with a shift on the looked-up rows."""
    h = _lookup(b, "embedding", "embed_tokens.weight", phase, vocab=vocab, width=embed_dim or d_model, par=par,
                out="embeddings")
    if normed:
        h = norm(b, "embed_norm", h, "word_embeddings_layernorm.weight", fn="layernorm", bias=True,
                 out="embeddings_normed")
    if embed_dim:
        h = proj(b, "project_in", h, d_model, out="embeddings_projected")
    if scaled:
        h = b.scale("embed_scale", h, out="embeddings_scaled")
    if positions is None:
        return h
    shape = h.shape[:-1]  # with sequence parallelism, this GPU's slice of the tokens
    pos = b.input("position_ids", shape, INT32)
    p = b.embedding("position_embedding", pos, b.weight("embed_positions.weight", (positions, d_model),
                                                        b.precision.table), rows=shape[1], out="position_embeddings")
    return b.elementwise("add_positions", "add", h, p, out="hidden_in")


def _lookup(b: GraphBuilder, name: str, table: str, phase: Phase, *, vocab: int, width: int, par: Parallel,
            out: str) -> Tensor:
    """The rows of an embedding table [vocab, width] the batch's token ids look up. Under tensor parallelism the
    table is vocab-parallel (Megatron): each GPU holds ceil(vocab / tp) rows, the vocabulary padded to fit, looks up
    the ids in its shard and an all-reduce sums the shards' rows. Quantized checkpoints keep their tables
    unquantized (Precision.table)."""
    ids = b.input("token_ids", (phase.batch, phase.new_tokens), INT32)
    tp = par.tp
    if tp == 1:
        return b.embedding(name, ids, b.weight(table, (vocab, width), b.precision.table), out=out)
    rows = minimum(-(-phase.tokens // tp), -(-vocab // tp))  # ids spread over the shards
    part = b.embedding(name, ids, b.weight(table, (-(-vocab // tp), width), b.precision.table), rows=rows,
                       out=f"{out}_partial")
    return par.reduce(b, f"{name}_allreduce", part, out)


def per_layer_inputs(b: GraphBuilder, phase: Phase, h: Tensor, *, layers: int, width: int, vocab: int,
                     par: Parallel = Parallel.SINGLE) -> Tensor:
    """Gemma-4 E2B/E4B's per-layer embeddings (modeling_gemma4.py Gemma4TextModel.get_per_layer_inputs and
    project_per_layer_inputs): every token's row of embed_tokens_per_layer [vocab, layers x width] times
    sqrt(width), plus per_layer_model_projection [layers x width, d] of the scaled embeddings `h` times d^-1/2,
    RMS-normed per layer slice (per_layer_projection_norm, one scale of `width`), the sum times 2^-1/2: [tokens,
    layers x width], of which each layer reads its slice (parts.PerLayerInput). The table is vocab-parallel as the
    main one is (_lookup; vLLM's gemma4.py builds it a VocabParallelEmbedding); the projection is column-parallel,
    each GPU's share of its outputs all-gathered (vLLM's ColumnParallelLinear with gather_output=True)."""
    looked = b.scale("per_layer_embed_scale", _lookup(b, "per_layer_embedding", "embed_tokens_per_layer.weight",
                                                       phase, vocab=vocab, width=layers * width, par=par,
                                                       out="per_layer_embedded"), out="per_layer_embedded_scaled")
    checks.divides("per_layer_model_projection", "tp", par.tp, "its outputs (layers x width)", layers * width)
    projected = proj(b, "per_layer_model_projection", h, layers * width // par.tp,
                     out=par.out("per_layer_projected", "per_layer_partial"))
    projected = par.gather_columns(b, "per_layer_allgather", projected, "per_layer_projected")
    projected = b.scale("per_layer_projection_scale", projected, out="per_layer_projected_scaled")
    normed = b.norm("per_layer_projection_norm", projected, b.weight("per_layer_projection_norm.weight", (width,)),
                    heads=layers, out="per_layer_normed")
    return b.scale("per_layer_input_scale", b.elementwise("per_layer_add", "add", normed, looked,
                                                         out="per_layer_summed"), out="per_layer_inputs")


@piece("draft")
def draft_join(b: GraphBuilder, phase: Phase, *, d_model: int, norms: bool, norm_fn: str = "rmsnorm",
               par: Parallel = Parallel.SINGLE, streams: int = 1) -> Tensor:
    """The input of a speculative-decoding head: the embedding of the token it drafts from and the target's last
    hidden state, joined by one [2d -> d] projection. `norms`: each RMS-normed first (the multi-token-prediction
    module: enorm, hnorm, eh_proj; DeepSeek-V3 technical report section 2.2, vLLM deepseek_mtp.py; Qwen3-Next's
    pre_fc_norm_embedding, pre_fc_norm_hidden, fc), else joined as they are (EAGLE's fc, vLLM llama_eagle.py).
    The projection is a plain nn.Linear, whole on every GPU and unquantized, in SGLang's heads and in vLLM's DeepSeek,
    GLM and EAGLE heads, so it is stored as the embedding and lm_head are (Precision.table); vLLM's Qwen3-Next head
    alone splits its fc over the tensor-parallel GPUs (qwen3_next_mtp.py ColumnParallelLinear, gathered), which this
    counts whole on each GPU (2 d^2 weights, 8.4M at Qwen3-Next's d of 2,048).

    Over `streams` hyper-connection streams (DeepSeek-V4's MTPBlock, its reference inference/model.py): the target's
    hidden state is its last layer's streams; e_proj [d, d] takes the normed embedding, h_proj [d, d] each normed
    stream (hnorm per stream), and the embedding's projection is added to every stream. Both are stored as the
    checkpoint stores them (fp8 blocks in DeepSeek-V4's)."""
    shape = (*par.tokens(phase), d_model)
    if streams > 1:
        if not norms:
            raise OpgraphError("a draft head over hyper-connection streams is a multi-token-prediction module")
        e = norm(b, "enorm", b.input("embeddings", shape), "enorm.weight", fn=norm_fn, out="embeddings_normed")
        h = b.input("target_hidden", (*shape[:-1], streams * d_model))
        h = b.norm("hnorm", h, b.weight("hnorm.weight", (d_model,)), heads=streams, out="target_hidden_normed")
        h = b.grouped_linear("h_proj", h, b.weight("h_proj.weight", (d_model, d_model)), groups=streams,
                             in_dim=d_model, out_dim=d_model, weight_reads=d_model * d_model, out="streams_projected")
        e = hyper.repeat(b, proj(b, "e_proj", e, d_model, out="embeddings_projected"), streams=streams)
        return b.elementwise("join", "add", h, e, out="hidden_in")
    e, h = b.input("embeddings", shape), b.input("target_hidden", shape)
    if norms:
        e = norm(b, "enorm", e, "enorm.weight", fn=norm_fn, out="embeddings_normed")
        h = norm(b, "hnorm", h, "hnorm.weight", fn=norm_fn, out="target_hidden_normed")
    joined = b.concat_heads("join", e, h, heads=1, out="joined")
    name = "eh_proj" if norms else "fc"
    return b.linear(name, joined, b.weight(f"{name}.weight", (d_model, 2 * d_model), b.precision.table),
                    out="hidden_in")


@piece("head")
def lm_head(b: GraphBuilder, phase: Phase, *, vocab: int, d_model: int, tied: bool, norm_fn: str = "rmsnorm",
            norm_bias: bool = False, softcap: bool = False, par: Parallel = Parallel.SINGLE,
            scaled: bool = False, input_scaled: bool = False, bias: bool = False, final_norm: bool = True,
            dtype: DType | None = None, streams: int = 1,
            hc_head: bool = True, res_blocks: int = 0, embed_dim: int | None = None,
            norm_scale: bool = True, altup_streams: bool = False) -> Tensor:
    """Final norm and lm_head over the last layer's output. In prefill only the last position of each
    sequence goes through them, as serving engines do (the norm is per position, so slicing first is exact).
    With sequence parallelism the last layer's output arrives as this GPU's slice of the tokens, gathered first.
    `softcap` (Gemma-2's final_logit_softcapping): the logits soft-capped, cap * tanh(logit / cap). `scaled`
    (Falcon-H1's lm_head_multiplier): then the logits times a constant, one multiply per logit (vLLM's
    LogitsProcessor scale, which it applies only when the factor is not 1); `input_scaled` (MiniCPM's
    dim_model_base): the normed hidden state times a constant before lm_head, one multiply an element. `bias`
    (Phi-3.5-MoE's lm_head_bias): lm_head's bias, one add a logit, as transformers adds it. Without
    `final_norm` (an EAGLE head: vLLM's llama_eagle.py returns the layer's output to the target's lm_head as it is)
    no norm comes first.
    `dtype`: lm_head's storage where a quantized checkpoint stores it so (GPTQ's lm_head: true, a MIXED_PRECISION
    entry); else the tables' (Precision.table). `streams` > 1: the last layer's hyper-connection streams, collapsed
    first (models.hyper.head; `hc_head` False: with the last layer's coefficients).
    `altup_streams`: the streams are AltUp's (Gemma-3n), averaged back by models.altup.head instead.
    `res_blocks` > 0 (Block AttnRes): the head's input is the mix of that many block
    snapshots and the last block's running sum (attn_res_mix, output_attn_res_norm and _proj). `embed_dim`
    (OPT-350m's word_embed_proj_dim): project_out to that width, whole on every GPU, before an lm_head as wide."""
    tp = par.tp
    h = b.input("hidden", (*par.tokens(phase), d_model * streams))
    h = par.gather(b, "hidden_allgather", h, "hidden_full")
    if phase.new_tokens > 1:
        h = b.take_last("last_position", h, out="last_hidden")
    if streams > 1:
        h = (altup.head(b, h, streams=streams, par=par) if altup_streams else
             hyper.head(b, h, streams=streams, weighted=hc_head))
    if res_blocks:
        h = attn_res(b, "output_attn_res", h, res_blocks)
    if final_norm:
        h = norm(b, "final_norm", h, "norm.weight", fn=norm_fn, bias=norm_bias, out="final_hidden", scale=norm_scale)
    if input_scaled:
        h = b.scale("head_input_scale", h, out="head_input")
    if embed_dim:
        h = proj(b, "project_out", h, embed_dim, out="head_input_projected")
    local = -(-vocab // tp)  # vocab-parallel, padded as the embedding is
    w = b.weight("embed_tokens.weight" if tied else "lm_head.weight", (local, h.shape[-1]),
                 dtype or b.precision.table)
    shift = b.weight("lm_head.bias", (local,)) if bias else None
    logits = par.gather_columns(b, "logits_allgather", b.linear("lm_head", h, w, bias=shift,
                                                                out=par.out("logits", "logits_partial")), "logits")
    if not softcap and not scaled:
        return logits
    if local * tp != vocab:  # the vocabulary's padding is dropped first, as vLLM's LogitsProcessor does
        logits = b.slice_last("logits_unpadded", logits, vocab, out="logits_vocab")
    if softcap:
        logits = b.elementwise("logit_softcap", "softcap", logits, out="logits_capped")
    return b.scale("logit_scale", logits, out="logits_scaled") if scaled else logits
