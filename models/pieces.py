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

from opgraph.errors import OpgraphError
from opgraph.core.graph import GraphBuilder
from opgraph.core.phase import Phase
from opgraph.core.sizes import minimum, size_function
from opgraph.core.tensor import INT32, Role, Tensor


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
         out: str | None = None) -> Tensor:
    """RMSNorm / LayerNorm with a learned scale (and, with `bias`, a shift) over the last dim."""
    d = x.shape[-1]
    shift = b.weight(weight.replace("weight", "bias"), (d,)) if bias else None
    return b.norm(name, x, b.weight(weight, (d,)), bias=shift, fn=fn, out=out)


def proj(b: GraphBuilder, name: str, x: Tensor, n: int, *, prefix: str = "", bias: bool = False,
         out: str | None = None, role: Role = Role.ACTIVATION) -> Tensor:
    """A linear layer named like its checkpoint module: weight `{prefix}{name}.weight` [n, in] (+ bias [n])."""
    w = b.weight(f"{prefix}{name}.weight", (n, x.shape[-1]))
    shift = b.weight(f"{prefix}{name}.bias", (n,)) if bias else None
    return b.linear(name, x, w, bias=shift, out=out, role=role)


def shard(name: str, size: int, tp: int) -> int:
    """`size` split over `tp` GPUs (Megatron tensor parallelism): an error naming the sizes when it does not split."""
    if size % tp:
        raise OpgraphError(f"--tp {tp} does not divide {name} ({size}); tensor parallelism splits it evenly")
    return size // tp


def kv_heads_per_gpu(kv_heads: int, tp: int) -> int:
    """KV heads each GPU holds: kv_heads / tp, or one (replicated on tp / kv_heads GPUs) when tp exceeds them."""
    if kv_heads >= tp:
        return shard("the KV heads", kv_heads, tp)
    if tp % kv_heads:
        raise OpgraphError(f"--tp {tp} is not a multiple of the {kv_heads} KV heads, so they cannot be replicated "
                           f"evenly")
    return 1


def reduce(b: GraphBuilder, name: str, x: Tensor, tp: int, out: str, sp: int | None = None) -> Tensor:
    """The all-reduce that completes a row-parallel layer's partial sums (nothing when tp is 1); with sequence
    parallelism (`sp`: the token dim the hidden states are split along), a reduce-scatter along it instead."""
    if tp == 1:
        return x
    if sp is not None:
        return b.reduce_scatter(name.replace("allreduce", "reducescatter"), x, group=tp, dim=sp, out=out)
    return b.all_reduce(name, x, group=tp, out=out)


def gather(b: GraphBuilder, name: str, x: Tensor, tp: int, out: str, sp: int | None) -> Tensor:
    """Sequence parallelism: the whole tokens back from each GPU's slice, before a column-parallel layer."""
    return b.all_gather(name, x, group=tp, dim=sp, out=out) if sp is not None and tp > 1 else x


def token_slice(phase: Phase, tp: int, sp: int) -> tuple[int, int]:
    """(batch, positions) of one GPU's slice of a step's tokens under sequence parallelism: the prompt split
    along its positions (sp = 1), or a decode step's sequences (sp = 0)."""
    size = (phase.batch, phase.new_tokens)[sp]
    if size % tp:
        what = ("seq_len", "batch")[sp == 0]
        raise OpgraphError(f"--sp with --tp {tp}: the {what} ({size}) does not split into {tp} equal slices of "
                           f"tokens; give a {what} divisible by {tp}")
    return (phase.batch // tp, phase.new_tokens) if sp == 0 else (phase.batch, phase.new_tokens // tp)


def cached_positions(phase: Phase, window: int | None) -> int:
    """Earlier positions a new token reads from the KV cache: all of them, or with a sliding window the
    window - 1 most recent (the new token is the window's last key), so the cache never holds more
    than `window` tokens."""
    return phase.past if window is None else minimum(phase.past, window - 1)


@piece("attention")
def gqa_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, kv_heads: int, head_dim: int,
                  causal: bool = False, prefix: str = "self_attn.", qkv_bias: bool = False, o_bias: bool = False,
                  window: int | None = None, rotary_dim: int | None = None, rotary: bool = True,
                  tp: int = 1, sp: int | None = None) -> Tensor:
    """Grouped-query attention (MHA when kv_heads == heads, MQA when 1), head_dim independent of d_model.

    `qkv_bias`/`o_bias`: biases as in Qwen2 (q, k, v) or GPT-2 (all four). `rotary=False` for models with
    learned absolute positions (GPT-2). `window`: sliding-window attention (Mistral): decode attends to
    min(context+1, window) keys and reads at most window-1 cached positions.

    The new token(s)' K and V are the KV-cache entries this step writes (role KV_CACHE, so every fusion
    plan writes them); in decode the cached positions are read as well, and attention runs over
    cached + new keys.

    With `tp` > 1 (Megatron tensor parallelism) this is one GPU's share: q, k and v column-parallel over the
    heads (KV heads replicated when tp exceeds them), o_proj row-parallel, then an all-reduce of its output."""
    d = x.shape[-1]
    heads, kv_heads = shard("the attention heads", heads, tp), kv_heads_per_gpu(kv_heads, tp)
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    new_kv = Role.ACTIVATION if rotary else Role.KV_CACHE
    q = proj(b, "q_proj", x, q_width, prefix=prefix, bias=qkv_bias, out="q")
    k = proj(b, "k_proj", x, kv_width, prefix=prefix, bias=qkv_bias, out="k", role=new_kv)
    v = proj(b, "v_proj", x, kv_width, prefix=prefix, bias=qkv_bias, out="v", role=Role.KV_CACHE)
    if rotary:
        q = b.rope("rope_q", q, head_dim=head_dim, rotary_dim=rotary_dim, out="q_rope")
        k = b.rope("rope_k", k, head_dim=head_dim, rotary_dim=rotary_dim, out="k_rope", role=Role.KV_CACHE)
    keys, values = [k], [v]
    past = cached_positions(phase, window)
    if past:
        keys.insert(0, b.cache("k_cache", (phase.batch, past, kv_width)))
        values.insert(0, b.cache("v_cache", (phase.batch, past, kv_width)))
    heads_kw = dict(heads=heads, kv_heads=kv_heads, head_dim=head_dim, causal=causal, window=window)
    s = b.attention_scores("qk", q, keys, out="scores", **heads_kw)
    p = b.softmax("softmax", s, causal=causal, window=window, out="probs")
    o = b.attention_values("av", p, values, out="attn", **heads_kw)
    if tp == 1:
        return proj(b, "o_proj", o, d, prefix=prefix, bias=o_bias, out="attn_out")
    return reduce(b, "o_allreduce", proj(b, "o_proj", o, d, prefix=prefix, bias=o_bias, out="attn_partial"), tp,
                  "attn_out", sp)


def _row_blocks(b: GraphBuilder, name: str, k: int, parts: dict[str, int], *, prefix: str) -> list[Tensor]:
    """The row blocks of checkpoint matrix `{prefix}{name}.weight` [sum(parts), k] that feed different ops:
    one weight `.weight[part]` per block, together exactly the checkpoint's rows."""
    return [b.weight(f"{prefix}{name}.weight[{part}]", (n, k)) for part, n in parts.items()]


@piece("attention")
def mla_attention(b: GraphBuilder, x: Tensor, phase: Phase, *, heads: int, kv_lora_rank: int, qk_nope_head_dim: int,
                  qk_rope_head_dim: int, v_head_dim: int, q_lora_rank: int | None = None, absorbed: bool = False,
                  causal: bool = False, prefix: str = "self_attn.", tp: int = 1, sp: int | None = None) -> Tensor:
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

    With `tp` > 1 (as vLLM shards MLA): the heads split over the GPUs (q_b_proj or q_proj, kv_b_proj, the
    absorbed products by columns; o_proj by rows, then an all-reduce); the latent path (q_a_proj,
    kv_a_proj_with_mqa, their norms) and so the latent KV cache are on every GPU whole."""
    d = x.shape[-1]
    heads = shard("the attention heads", heads, tp)
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
    q_pe = b.rope("rope_q", q_pe, head_dim=rope, out="q_pe_rope")
    w_kv_a = _row_blocks(b, "kv_a_proj_with_mqa", d, {"latent": r, "rope": rope}, prefix=prefix)
    latent, k_pe = b.multi_linear("kv_a_proj_with_mqa", x, w_kv_a, outs=["kv_latent", "k_pe"])
    latent = norm(b, "kv_a_layernorm", latent, f"{prefix}kv_a_layernorm.weight", out="kv_latent_norm")
    k_pe = b.rope("rope_k", k_pe, head_dim=rope, out="k_pe_rope")
    entry = b.concat_heads("cache_entry", latent, k_pe, heads=1, out="latent_entry", role=Role.KV_CACHE)
    w_uk, w_uv = _row_blocks(b, "kv_b_proj", r, {"k": heads * nope, "v": heads * v_head_dim}, prefix=prefix)
    if absorbed:
        q_lat = b.grouped_linear("q_absorb", q_nope, w_uk, groups=heads, in_dim=nope, out_dim=r, out="q_latent_absorbed")
        q = b.concat_heads("q_concat", q_lat, q_pe, heads=heads, out="q_full")
        keys = [entry]
        if phase.past:
            keys.insert(0, b.cache("latent_cache", (phase.batch, phase.past, r + rope)))
        kw = dict(heads=heads, kv_heads=1, causal=causal)
        s = b.attention_scores("qk", q, keys, head_dim=r + rope, out="scores", **kw)
        p = b.softmax("softmax", s, causal=causal, out="probs")
        o = b.attention_values("av", p, keys, head_dim=r, value_width=r + rope, out="attn_latent", **kw)
        o = b.grouped_linear("v_absorb", o, w_uv, groups=heads, in_dim=r, out_dim=v_head_dim, out="attn")
    else:
        if phase.past:
            raise OpgraphError("the decompressed MLA form here covers prefill (an empty cache); decode uses the "
                               "weight-absorbed form")
        k_nope, v = b.multi_linear("kv_b_proj", latent, [w_uk, w_uv], outs=["k_nope", "v"])
        q = b.concat_heads("q_concat", q_nope, q_pe, heads=heads, out="q_full")
        k = b.concat_heads("k_concat", k_nope, k_pe, heads=heads, shared=(1,), out="k_full")
        kw = dict(heads=heads, kv_heads=heads, causal=causal)
        s = b.attention_scores("qk", q, [k], head_dim=nope + rope, out="scores", **kw)
        p = b.softmax("softmax", s, causal=causal, out="probs")
        o = b.attention_values("av", p, [v], head_dim=v_head_dim, out="attn", **kw)
    if tp == 1:
        return proj(b, "o_proj", o, d, prefix=prefix, out="attn_out")
    return reduce(b, "o_allreduce", proj(b, "o_proj", o, d, prefix=prefix, out="attn_partial"), tp, "attn_out", sp)


@piece("mlp")
def gated_mlp(b: GraphBuilder, x: Tensor, *, d_ffn: int, act: str = "silu", prefix: str = "mlp.",
              bias: bool = False, tp: int = 1, reduce_output: bool = True, sp: int | None = None) -> Tensor:
    """down(act(gate(x)) * up(x)): SwiGLU with act="silu", GeGLU with act="gelu". With `tp` > 1, one GPU's
    share: gate and up column-parallel, down row-parallel, then an all-reduce (left to the caller with
    `reduce_output=False`, when its partial sums join others first)."""
    d, d_ffn = x.shape[-1], shard("the FFN width", d_ffn, tp)
    gate = proj(b, "gate_proj", x, d_ffn, prefix=prefix, bias=bias, out="gate")
    up = proj(b, "up_proj", x, d_ffn, prefix=prefix, bias=bias, out="up")
    a = b.elementwise("act", act, gate, out="act")
    h = b.elementwise("mul", "mul", a, up, out="gated")
    if tp == 1 or not reduce_output:
        return proj(b, "down_proj", h, d, prefix=prefix, bias=bias, out="mlp_out")
    return reduce(b, "down_allreduce", proj(b, "down_proj", h, d, prefix=prefix, bias=bias, out="mlp_partial"), tp,
                  "mlp_out", sp)


@piece("mlp")
def plain_mlp(b: GraphBuilder, x: Tensor, *, d_ffn: int, act: str = "gelu", prefix: str = "mlp.",
              bias: bool = True, tp: int = 1, sp: int | None = None) -> Tensor:
    """down(act(up(x))) with biases, as GPT-2's c_fc -> gelu -> c_proj (with `tp`, as gated_mlp splits it)."""
    d, d_ffn = x.shape[-1], shard("the FFN width", d_ffn, tp)
    h = proj(b, "up_proj", x, d_ffn, prefix=prefix, bias=bias, out="up")
    h = b.elementwise("act", act, h, out="act")
    if tp == 1:
        return proj(b, "down_proj", h, d, prefix=prefix, bias=bias, out="mlp_out")
    return reduce(b, "down_allreduce", proj(b, "down_proj", h, d, prefix=prefix, bias=bias, out="mlp_partial"), tp,
                  "mlp_out", sp)


@size_function
def expected_experts(experts: int, top_k: int, tokens: int) -> int:
    """Distinct routed experts a step's `tokens` touch, each token picking top_k of `experts` uniformly
    at random: the expectation E*(1 - (1 - k/E)^T), rounded up to whole experts (an expert's weights are
    read whole or not at all). Exact integer arithmetic, so k/E never rounds the wrong way.

    A size function (opgraph.core.sizes): a sweep evaluates it once per distinct token count, so the
    exact power is computed only where it decides the answer."""
    if top_k >= experts:
        return experts
    # Experts left untouched: E*((E-k)/E)^T = (E-k)^T / E^(T-1); it is below 1/2 unless T < E/k*ln(2E),
    # so the exact powers below never exceed a few hundred factors.
    if experts * (1 - top_k / experts) ** tokens < 0.5:
        return experts
    return experts - (experts - top_k) ** tokens // experts ** (tokens - 1)


@size_function
def expected_experts_real(experts: int, top_k: int, tokens: int) -> float:
    """The expectation E*(1 - (1 - k/E)^T) before rounding, for notes that show the arithmetic."""
    return experts * (1 - (1 - top_k / experts) ** tokens)


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
def moe(b: GraphBuilder, x: Tensor, *, experts: int, top_k: int, d_expert: int, touched: int, shared: int = 0,
        act: str = "silu", router_bias: bool = False, prefix: str = "mlp.", tp: int = 1, ep: int = 1,
        rows: int = 0, sp: int | None = None) -> Tensor:
    """Mixture-of-experts feed-forward (Mixtral; DeepSeekMoE with `shared` always-on experts).

    router (a matmul to E logits) -> softmax -> top_k; each token runs through its top_k routed SwiGLU
    experts (FLOPs for exactly k experts per token), whose outputs are combined with the routing weights;
    shared experts are one SwiGLU of shared*d_expert that every token runs. Routed expert weights are
    stacked [E, out, in]; a step reads `touched` of the E experts (see `expected_experts`).
    `router_bias`: DeepSeek-V3's e_score_correction_bias, an E-vector added to the scores for selection.
    With `tp` > 1 (as vLLM shards MoE without expert parallelism): the router on every GPU, each expert's
    width (and the shared experts') split over the GPUs, one all-reduce of the combined output.
    With `ep` > 1 (expert parallelism over `ep` data-parallel GPUs, as DeepSeek serves V3): see `expert_parallel`."""
    if ep > 1:
        return expert_parallel(b, x, experts=experts, top_k=top_k, d_expert=d_expert, touched=touched,
                               shared=shared, act=act, router_bias=router_bias, prefix=prefix, ep=ep, rows=rows,
                               tp=tp, sp=sp)
    d, d_slice = x.shape[-1], shard("the expert width", d_expert, tp)
    weights = _router(b, x, experts, top_k, router_bias, prefix)

    def experts_linear(name: str, h: Tensor, n: int, k: int, out: str) -> Tensor:
        w = b.weight(f"{prefix}experts.{name}.weight", (experts, n, k))
        return b.grouped_linear(f"experts.{name}", h, w, groups=top_k, in_dim=k, out_dim=n,
                                weight_reads=touched * n * k, out=out)

    gate = experts_linear("gate_proj", x, d_slice, d, "expert_gate")
    up = experts_linear("up_proj", x, d_slice, d, "expert_up")
    a = b.elementwise("experts.act", act, gate, out="expert_act")
    h = b.elementwise("experts.mul", "mul", a, up, out="expert_gated")
    y = experts_linear("down_proj", h, d, d_slice, "expert_out")
    out = b.moe_combine("combine", y, weights, top_k=top_k, out="routed_out" if tp == 1 else "routed_partial")
    if shared:
        # DeepSeek's shared experts sit beside the routed ones in one block, as ops named shared.*
        s = gated_mlp(b, x, d_ffn=shared * d_expert, act=act, prefix=f"{prefix}shared_experts.", name="shared.",
                      tp=tp, reduce_output=False)
        out = b.elementwise("shared_add", "add", out, s, out="moe_out" if tp == 1 else "moe_partial")
    return reduce(b, "moe_allreduce", out, tp, "moe_out" if shared else "routed_out", sp)


def _router(b: GraphBuilder, x: Tensor, experts: int, top_k: int, router_bias: bool, prefix: str) -> Tensor:
    """router (a matmul to E logits, plus DeepSeek-V3's selection bias) -> softmax -> the top_k routing weights."""
    bias = b.weight(f"{prefix}gate.e_score_correction_bias", (experts,)) if router_bias else None
    logits = b.linear("router", x, b.weight(f"{prefix}gate.weight", (experts, x.shape[-1])), bias=bias,
                      out="router_logits")
    probs = b.softmax("router_softmax", logits, out="router_probs")
    return b.top_k("top_k", probs, k=top_k, out="routing_weights")


def expert_parallel(b: GraphBuilder, x: Tensor, *, experts: int, top_k: int, d_expert: int, touched: int,
                    shared: int, act: str, router_bias: bool, prefix: str, ep: int, rows: int, tp: int = 1,
                    sp: int | None = None) -> Tensor:
    """One GPU's MoE under expert parallelism: it holds experts / ep whole experts and runs `rows` token-expert
    rows through them (the busiest GPU's load, or the mean's: see `busiest_expert_load`), reading `touched`.
    - Over data-parallel GPUs (tp = 1; every GPU on its own sequences, as DeepSeek serves V3): its tokens go out
      to their experts' GPUs (ep_dispatch) and the outputs come back (ep_combine) to be weighted and summed per
      token; shared experts run whole on every GPU, on its own tokens.
    - Over a tensor-parallel group (tp = ep; every GPU has every token after attention, as vLLM's expert
      parallelism runs): each GPU gathers the rows routed to its experts (moe_route), adds their weighted outputs
      into a partial sum per token (moe_unroute), and one all-reduce (a reduce-scatter with sequence
      parallelism) completes it, with the shared experts split by width as tensor parallelism splits them."""
    d, local = x.shape[-1], shard("the routed experts", experts, ep)
    weights = _router(b, x, experts, top_k, router_bias, prefix)
    if tp > 1:
        sent = b.moe_route("route", x, rows=rows, out="routed")
    else:
        sent = b.ep_dispatch("dispatch", x, group=ep, top_k=top_k, rows=rows, out="dispatched")

    def experts_linear(name: str, h: Tensor, n: int, k: int, out: str) -> Tensor:
        w = b.weight(f"{prefix}experts.{name}.weight", (local, n, k))
        return b.grouped_linear(f"experts.{name}", h, w, groups=1, in_dim=k, out_dim=n,
                                weight_reads=touched * n * k, out=out)

    gate = experts_linear("gate_proj", sent, d_expert, d, "expert_gate")
    up = experts_linear("up_proj", sent, d_expert, d, "expert_up")
    h = b.elementwise("experts.mul", "mul", b.elementwise("experts.act", act, gate, out="expert_act"), up,
                      out="expert_gated")
    y = experts_linear("down_proj", h, d, d_expert, "expert_out")
    if tp > 1:
        out = b.moe_unroute("combine", y, weights, tokens=x.shape[:-1], out="routed_partial")
    else:
        back = b.ep_combine("combine_back", y, group=ep, top_k=top_k, tokens=x.shape[:-1], out="expert_returned")
        out = b.moe_combine("combine", back, weights, top_k=top_k, out="routed_out")
    if shared:
        s = gated_mlp(b, x, d_ffn=shared * d_expert, act=act, prefix=f"{prefix}shared_experts.", name="shared.",
                      tp=tp, reduce_output=False)
        out = b.elementwise("shared_add", "add", out, s, out="moe_partial" if tp > 1 else "moe_out")
    return reduce(b, "moe_allreduce", out, tp, "moe_out" if shared else "routed_out", sp)


def residual(b: GraphBuilder, name: str, x: Tensor, branch: Tensor, out: str) -> Tensor:
    return b.elementwise(name, "add", x, branch, out=out)


@piece("embedding")
def embedding(b: GraphBuilder, phase: Phase, *, vocab: int, d_model: int, positions: int | None = None,
              tp: int = 1, sp: int | None = None) -> Tensor:
    """Token ids -> hidden states; reads only the rows the batch looks up. With `positions` (the size of
    a learned position table, GPT-2's wpe), adds the learned position embedding: every sequence looks up
    the same new_tokens positions, so only those rows are read."""
    ids = b.input("token_ids", (phase.batch, phase.new_tokens), INT32)
    table = b.precision.table  # quantized checkpoints keep their tables unquantized (Precision.table)
    if tp > 1:  # vocab-parallel (Megatron): each GPU holds ceil(vocab / tp) rows, the vocabulary padded to fit
        rows = minimum(-(-phase.tokens // tp), -(-vocab // tp))  # ids spread over the shards
        part = b.embedding("embedding", ids, b.weight("embed_tokens.weight", (-(-vocab // tp), d_model), table),
                           rows=rows, out="embeddings_partial")
        h = reduce(b, "embedding_allreduce", part, tp, "embeddings", sp)
    else:
        h = b.embedding("embedding", ids, b.weight("embed_tokens.weight", (vocab, d_model), table), out="embeddings")
    if positions is None:
        return h
    shape = h.shape[:-1]  # with sequence parallelism, this GPU's slice of the tokens
    pos = b.input("position_ids", shape, INT32)
    p = b.embedding("position_embedding", pos, b.weight("embed_positions.weight", (positions, d_model), table),
                    rows=shape[1], out="position_embeddings")
    return b.elementwise("add_positions", "add", h, p, out="hidden_in")


@piece("head")
def lm_head(b: GraphBuilder, phase: Phase, *, vocab: int, d_model: int, tied: bool, norm_fn: str = "rmsnorm",
            norm_bias: bool = False, tp: int = 1, sp: int | None = None) -> Tensor:
    """Final norm and lm_head over the last layer's output. In prefill only the last position of each
    sequence goes through them, as serving engines do (the norm is per position, so slicing first is exact).
    With sequence parallelism the last layer's output arrives as this GPU's slice of the tokens, gathered first."""
    if sp is not None and tp > 1:
        h = gather(b, "hidden_allgather", b.input("hidden", token_slice(phase, tp, sp) + (d_model,)), tp, "hidden_full", sp)
    else:
        h = b.input("hidden", (phase.batch, phase.new_tokens, d_model))
    if phase.new_tokens > 1:
        h = b.take_last("last_position", h, out="last_hidden")
    h = norm(b, "final_norm", h, "norm.weight", fn=norm_fn, bias=norm_bias, out="final_hidden")
    local = -(-vocab // tp)  # vocab-parallel, padded as the embedding is
    w = b.weight("embed_tokens.weight" if tied else "lm_head.weight", (local, d_model), b.precision.table)
    if tp == 1:
        return b.linear("lm_head", h, w, out="logits")
    return b.all_gather("logits_allgather", b.linear("lm_head", h, w, out="logits_partial"), group=tp, out="logits")
