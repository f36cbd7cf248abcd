"""Token mixers with a fixed-size state: Mamba-1 (the selective scan), Mamba-2 (SSD), Gated DeltaNet, Kimi Delta
Attention, lightning attention and LFM2's gated short convolution, as layer parts.

Each part adds a whole mixer to a builder (input projections, the short causal conv, the scan, the gated norm, the
output projection, and under tensor parallelism the all-reduce) and returns its output, with its ops tagged
part "attention" (the layer's token-mixing part, which crossover analyses read). Its cache is two recurrent states
of role STATE, the conv state and the SSM state, read by a decode step and written whole by every step: they do
not grow with the context (opgraph.analysis.memory.kv_cache_bytes counts each written state once). The SSM (or
delta-rule) state is stored at the precision's state dtype (Precision.state: the model's dtype by default, as vLLM
keeps it); the conv state at the activation dtype whatever the state dtype is, as vLLM keeps it (its conv state
follows mamba_cache_dtype, only the temporal state mamba_ssm_cache_dtype: MambaStateDtypeCalculator in
vllm/model_executor/layers/mamba/mamba_utils.py).

Weights carry the Hugging Face checkpoint names, so a mixer's parameter count is the checkpoint's exactly; a
checkpoint matrix whose row blocks feed different ops is one weight per block, `name.weight[block]`, as
models.pieces writes MLA's.

Tensor parallelism (`par`, as vLLM shards them: mamba_mixer2.py, qwen3_next.py): the heads split over the GPUs, with
their conv channels, dt, A_log, D and dt_bias; in_proj by columns, out_proj by rows, then `par.reduce`. Each GPU's
states are its heads' share. Under sequence parallelism the caller gathers the tokens first; the part ends with
`par.reduce`, which is then a reduce-scatter.
"""

from __future__ import annotations

from opgraph.core import checks
from opgraph.core.graph import GraphBuilder
from opgraph.core.phase import Phase
from opgraph.core.tensor import FP32, DType, Tensor
from opgraph.errors import OpgraphError

from . import pieces
from .parallel import Parallel

PART = "attention"


def _linear(b: GraphBuilder, name: str, x: Tensor, n: int, *, prefix: str, bias: bool, out: str) -> Tensor:
    """A linear layer named like its checkpoint module: weight `{prefix}{name}.weight` [n, in] (+ bias [n])."""
    w = b.weight(f"{prefix}{name}.weight", (n, x.shape[-1]))
    shift = b.weight(f"{prefix}{name}.bias", (n,)) if bias else None
    return b.linear(name, x, w, bias=shift, out=out)


def _split_linear(b: GraphBuilder, name: str, x: Tensor, parts: dict[str, int], *, prefix: str,
                  bias: bool) -> list[Tensor]:
    """One checkpoint matrix `{prefix}{name}.weight` [sum(parts), in] whose row blocks feed different ops: one GEMM
    (multi_linear) with an output per block; with a bias, one linear per block, each with its bias block."""
    k = x.shape[-1]
    weights = [b.weight(f"{prefix}{name}.weight[{part}]", (n, k)) for part, n in parts.items()]
    if not bias:
        return list(b.multi_linear(name, x, weights, outs=list(parts)))
    return [b.linear(f"{name}.{part}", x, w, bias=b.weight(f"{prefix}{name}.bias[{part}]", (n,)), out=part)
            for (part, n), w in zip(parts.items(), weights)]


def _conv(b: GraphBuilder, x: Tensor, phase: Phase, *, d_conv: int, bias: bool, prefix: str, name: str = "conv1d",
          tag: str = "conv", weight_dtype: DType | None = None, act: bool = True) -> Tensor:
    """The depthwise causal conv1d over x's channels and its SiLU (none where not `act`: LFM2's short conv); decode
    reads the conv state (the last d_conv - 1 inputs), every step writes it. The conv weight is kept at the
    activation dtype, as quantized checkpoints leave it (vLLM builds it with quant_config=None), and so is the conv state (see the module's note).
    `name`: the checkpoint module (Kimi Linear has q_conv1d, k_conv1d, v_conv1d); `tag` names its ops' results;
    `weight_dtype`: the conv weight's storage where the checkpoint keeps it otherwise (Kimi-K3's fp32)."""
    bsz, _, channels = x.shape
    dtype = b.precision.act
    w = b.weight(f"{prefix}{name}.weight", (channels, 1, d_conv), weight_dtype or dtype)
    shift = b.weight(f"{prefix}{name}.bias", (channels,)) if bias else None
    state = b.state(f"{tag}_state", (bsz, d_conv - 1, channels), dtype) if phase.name == "decode" else None
    y, _ = b.causal_conv1d(name, x, w, bias=shift, state=state, out=f"{tag}_out", state_out=f"{tag}_state_new",
                           state_dtype=dtype)
    return b.elementwise(f"{tag}_act", "silu", y, out=f"{tag}_act") if act else y


def _width(x: Tensor, d_model: int | None, who: str) -> int:
    """The hidden width of a mixer's input, checked against the d_model its caller names (if any)."""
    if d_model is not None and d_model != x.shape[-1]:
        raise OpgraphError(f"{who}: d_model {d_model} differs from the input's {x.shape[-1]}")
    return x.shape[-1]


def ssm_groups(n_groups: int, tp: int) -> int:
    """B/C groups one GPU holds: n_groups / tp when tp divides them (vLLM, SGLang); else, when n_groups divides tp,
    one group replicated on tp / n_groups GPUs, each GPU's heads lying in one group (vLLM's
    extra_groups_for_head_shards, which it allows for n_groups = 1 only)."""
    if n_groups % tp == 0:
        return n_groups // tp
    if tp % n_groups == 0:
        return 1
    raise OpgraphError(f"--tp {tp} neither divides the {n_groups} SSM groups nor is a multiple of them, so B and C "
                       f"cannot follow the heads")


def mamba2_mixer(b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel = Parallel.SINGLE, *, n_heads: int,
                 head_dim: int, d_state: int, n_groups: int = 1, d_conv: int = 4, chunk_size: int = 256,
                 conv_bias: bool = True, proj_bias: bool = False, d_model: int | None = None,
                 prefix: str = "mixer.", rms_norm: bool = True, norm_before_gate: bool = False,
                 out_bias: bool | None = None, in_scale: bool = False) -> Tensor:
    """A Mamba-2 mixer (Dao & Gu 2024, arXiv 2405.21060, section 7; transformers' Mamba2Mixer and
    NemotronHMamba2Mixer, vLLM's mamba_mixer2.py), d_inner = n_heads * head_dim:
    in_proj [d_model -> 2*d_inner + 2*n_groups*d_state + n_heads] = z | xBC | dt; the causal conv1d over xBC
    (conv_dim = d_inner + 2*n_groups*d_state channels, with `conv_bias`) and SiLU; the SSD scan (chunked over
    `chunk_size` positions in prefill, the one-token recurrence in decode) with dt_bias, A_log and the D skip;
    the gated RMSNorm norm(y * silu(z)) over n_groups groups (mamba_ssm's RMSNormGated with group_size
    d_inner / n_groups, as Nemotron-H and vLLM run it; transformers' Mamba2Mixer torch path norms the whole
    d_inner, the same for n_groups = 1 checkpoints); out_proj [d_inner -> d_model]. `proj_bias`: biases on in_proj and out_proj
    (config use_bias / mamba_proj_bias).

    Cache per sequence: the conv state (d_conv - 1) x conv_dim and the SSM state n_heads x head_dim x d_state.

    Falcon-H1's options (transformers' FalconH1Mixer, vLLM's MambaMixer2 as falcon_h1.py builds it), each off by
    default: `rms_norm=False` (mamba_rms_norm false): no gated norm and no norm weight, the gate alone,
    y * silu(z) (vLLM's Mixer2RMSNormGated returns there; 5 FLOPs per element); `norm_before_gate`
    (mamba_norm_before_gate): norm(y) * silu(z), the same FLOPs; `out_bias`: out_proj's bias when it differs
    from in_proj's (transformers builds out_proj with projectors_bias, in_proj with mamba_proj_bias; None: as
    `proj_bias`); `in_scale`: the muP vector (ssm_multipliers) times in_proj's whole output, one multiply per
    element of z, xBC and dt, as vLLM runs it (`projected_states * mup_vector`, not folded into the weights).
    The inner width is n_heads * head_dim: Falcon-H1's mamba_d_ssm must equal it (FalconH1Config checks it).

    Under tensor parallelism the heads split (so d_inner, z, x, dt and the states); B and C split by groups
    when tp divides n_groups, else one group is replicated per GPU (`ssm_groups`). With n_groups = 1 and tp > 1
    vLLM's norm also all-reduces each token's sum of squares (a few bytes per token), not counted here."""
    d = _width(x, d_model, "mamba2_mixer")
    checks.divides("mamba2_mixer", "n_groups", n_groups, "n_heads", n_heads)
    with b.scope(part=PART):
        heads = par.heads(n_heads, "the Mamba heads")
        groups = ssm_groups(n_groups, par.tp)
        d_inner = heads * head_dim
        conv_dim = d_inner + 2 * groups * d_state
        z, xbc, dt = _split_linear(b, "in_proj", x, {"z": d_inner, "xBC": conv_dim, "dt": heads}, prefix=prefix,
                                   bias=proj_bias)
        if in_scale:  # Falcon-H1's muP vector over [z | xBC | dt], one multiply per element
            z, xbc, dt = (b.scale(f"mup_{part}", t, out=f"{part}_mup") for part, t in zip(("z", "xBC", "dt"),
                                                                                          (z, xbc, dt)))
        xbc = _conv(b, xbc, phase, d_conv=d_conv, bias=conv_bias, prefix=prefix)
        bsz = x.shape[0]
        decode = phase.name == "decode"
        state = b.state("ssm_state", (bsz, heads, head_dim, d_state)) if decode else None
        y, _ = b.ssd_scan("ssd", xbc, dt, b.weight(f"{prefix}A_log", (heads,)), b.weight(f"{prefix}D", (heads,)),
                          b.weight(f"{prefix}dt_bias", (heads,)), heads=heads, head_dim=head_dim, d_state=d_state,
                          groups=groups, chunk_size=chunk_size, recurrent=decode, state=state, out="ssm_out",
                          state_out="ssm_state_new")
        # The norm's groups: n_groups over the whole d_inner, so groups / tp of them on each GPU (one, spanning
        # its slice, when they are replicated).
        if rms_norm:
            y = b.gated_rmsnorm("gated_norm", y, z, b.weight(f"{prefix}norm.weight", (d_inner,)), groups=groups,
                                norm_before_gate=norm_before_gate, out="ssm_normed")
        else:  # the gate alone: y * silu(z)
            y = b.elementwise("gate_mul", "mul", y, b.elementwise("gate_act", "silu", z, out="gate_act"),
                              out="ssm_gated")
        out = _linear(b, "out_proj", y, d, prefix=prefix, bias=proj_bias if out_bias is None else out_bias,
                      out="mixer_out" if par.tp == 1 else "mixer_partial")
        return par.reduce(b, "out_allreduce", out, "mixer_out")


def mamba1_mixer(b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel = Parallel.SINGLE, *, d_inner: int,
                 d_state: int, dt_rank: int, d_conv: int = 4, conv_bias: bool = True, proj_bias: bool = False,
                 inner_norms: str | None = None, prefix: str = "mixer.") -> Tensor:
    """A Mamba-1 mixer (Gu & Dao 2023, arXiv 2312.00752; transformers' MambaMixer, vLLM's mamba_mixer.py):
    in_proj [d_model -> 2 d_inner] = x | z; the causal conv1d over x (`conv_bias`) and SiLU; x_proj [d_inner ->
    dt_rank + 2 d_state] = dt | B | C, no bias; `inner_norms`: RMSNorms of dt, B and C, "weightless" (Falcon-Mamba)
    or "weighted" (Jamba's dt_layernorm, b_layernorm, c_layernorm); dt_proj [dt_rank -> d_inner], its bias added in
    the scan; the selective scan with A [d_inner, d_state] (fp32, as vLLM keeps -exp(A_log)), D and the gate
    y * silu(z) (ops.selective_scan); out_proj [d_inner -> d_model]. `proj_bias`: biases on in_proj and out_proj.

    Cache per sequence: the conv state (d_conv - 1) x d_inner and the SSM state d_inner x d_state.

    Under tensor parallelism d_inner splits (in_proj by columns, the conv, dt_proj, A, D); x_proj and out_proj are
    row-parallel, so each ends with an all-reduce (dt_rank + 2 d_state values a token, then d_model), as vLLM
    shards it; the inner norms run whole on every GPU."""
    d = x.shape[-1]
    if inner_norms not in (None, "weightless", "weighted"):
        raise OpgraphError(f"mamba1_mixer: inner_norms must be None, 'weightless' or 'weighted', got {inner_norms!r}")
    with b.scope(part=PART):
        e = par.columns("the Mamba inner width (d_inner)", d_inner)
        xs, z = _split_linear(b, "in_proj", x, {"xs": e, "z": e}, prefix=prefix, bias=proj_bias)
        u = _conv(b, xs, phase, d_conv=d_conv, bias=conv_bias, prefix=prefix)
        x_dbl = _linear(b, "x_proj", u, dt_rank + 2 * d_state, prefix=prefix, bias=False,
                        out=par.out("x_dbl", "x_dbl_partial"))
        x_dbl = par.reduce_whole(b, "x_allreduce", x_dbl, "x_dbl")
        dt, gate_b, gate_c = (b.slice_last(f"{n}_slice", x_dbl, w, out=f"{n}_raw")
                              for n, w in (("dt", dt_rank), ("b", d_state), ("c", d_state)))
        if inner_norms:
            def norm(n: str, t: Tensor) -> Tensor:
                w = b.weight(f"{prefix}{n}_layernorm.weight", (t.shape[-1],)) if inner_norms == "weighted" else None
                return b.norm(f"{n}_layernorm", t, w, out=f"{n}_normed")
            dt, gate_b, gate_c = norm("dt", dt), norm("b", gate_b), norm("c", gate_c)
        dt = _linear(b, "dt_proj", dt, e, prefix=prefix, bias=False, out="dt")
        decode = phase.name == "decode"
        state = b.state("ssm_state", (x.shape[0], e, d_state)) if decode else None
        y, _ = b.selective_scan("selective_scan", u, dt, gate_b, gate_c, z, b.weight(f"{prefix}A_log", (e, d_state),
                                                                                        FP32),
                                b.weight(f"{prefix}D", (e,)), b.weight(f"{prefix}dt_proj.bias", (e,)),
                                recurrent=decode, state=state, out="ssm_out", state_out="ssm_state_new")
        out = _linear(b, "out_proj", y, d, prefix=prefix, bias=proj_bias, out=par.out("mixer_out", "mixer_partial"))
        return par.reduce(b, "out_allreduce", out, "mixer_out")


def short_conv(b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel = Parallel.SINGLE, *, width: int,
               d_conv: int = 3, bias: bool = False, prefix: str = "conv.") -> Tensor:
    """LFM2's gated short convolution (transformers' Lfm2ShortConv, vLLM's ShortConv): in_proj [d_model -> 3 width]
    = B | C | x; B * x; the depthwise causal conv1d over that (d_conv taps, no activation); C times it; out_proj
    [width -> d_model]. No scan and no norm: per token 8 d_model width + (2 d_conv + 2) width FLOPs at width =
    d_model, whatever the context.

    Cache per sequence: the conv state, (d_conv - 1) x width at the activation dtype (vLLM's
    short_conv_state_shape). Under tensor parallelism the channels split (in_proj by columns, with the conv's
    channels; out_proj by rows, then `par.reduce`), as vLLM shards ShortConv."""
    d = x.shape[-1]
    with b.scope(part=PART):
        w = par.columns("the short conv's channels (conv_dim)", width)
        gate_b, gate_c, h = _split_linear(b, "in_proj", x, {"B": w, "C": w, "xs": w}, prefix=prefix, bias=bias)
        h = b.elementwise("b_gate", "mul", gate_b, h, out="bx")
        h = _conv(b, h, phase, d_conv=d_conv, bias=bias, prefix=prefix, name="conv", act=False)
        h = b.elementwise("c_gate", "mul", gate_c, h, out="conv_gated")
        out = _linear(b, "out_proj", h, d, prefix=prefix, bias=bias, out=par.out("mixer_out", "mixer_partial"))
        return par.reduce(b, "out_allreduce", out, "mixer_out")


def gated_deltanet(b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel = Parallel.SINGLE, *, num_k_heads: int,
                   num_v_heads: int, head_k_dim: int, head_v_dim: int, d_conv: int = 4, chunk_size: int = 64,
                   d_model: int | None = None, prefix: str = "linear_attn.") -> Tensor:
    """A Gated DeltaNet mixer as Qwen3-Next runs it (transformers' Qwen3NextGatedDeltaNet, vLLM's qwen3_next.py;
    Yang, Kautz & Hatamizadeh 2024, arXiv 2412.06464): in_proj_qkvz [d_model -> 2*key_dim + 2*value_dim] = qkv | z
    and in_proj_ba [d_model -> 2*num_v_heads] = b | a (key_dim = num_k_heads*head_k_dim, value_dim =
    num_v_heads*head_v_dim); the causal conv1d over q, k, v (conv_dim = 2*key_dim + value_dim, no bias) and SiLU;
    the gated delta rule (chunked over 64 positions in prefill, the one-token recurrence in decode; gates from
    A_log, dt_bias, a and b; q and k L2-normalized, each key head shared by num_v_heads / num_k_heads value heads);
    the gated RMSNorm per value head, norm(o) * silu(z), with one [head_v_dim] weight shared by the heads;
    out_proj [value_dim -> d_model].

    Cache per sequence: the conv state (d_conv - 1) x conv_dim and the recurrent state num_v_heads x head_k_dim x
    head_v_dim. Under tensor parallelism both head counts split (vLLM needs tp to divide num_k_heads), with the
    conv channels, dt_bias and A_log; the norm weight is on every GPU."""
    d = _width(x, d_model, "gated_deltanet")
    checks.divides("gated_deltanet", "num_k_heads", num_k_heads, "num_v_heads", num_v_heads)
    with b.scope(part=PART):
        hk = par.heads(num_k_heads, "the linear-attention key heads")
        hv = par.heads(num_v_heads, "the linear-attention value heads")
        key_dim, value_dim = hk * head_k_dim, hv * head_v_dim
        conv_dim = 2 * key_dim + value_dim
        qkv, z = _split_linear(b, "in_proj_qkvz", x, {"qkv": conv_dim, "z": value_dim}, prefix=prefix, bias=False)
        ba = _linear(b, "in_proj_ba", x, 2 * hv, prefix=prefix, bias=False, out="ba")
        qkv = _conv(b, qkv, phase, d_conv=d_conv, bias=False, prefix=prefix)
        decode = phase.name == "decode"
        state = b.state("recurrent_state", (x.shape[0], hv, head_k_dim, head_v_dim)) if decode else None
        o, _ = b.gated_delta_rule("delta_rule", qkv, ba, b.weight(f"{prefix}A_log", (hv,)),
                                  b.weight(f"{prefix}dt_bias", (hv,)), k_heads=hk, v_heads=hv, head_k_dim=head_k_dim,
                                  head_v_dim=head_v_dim, chunk_size=chunk_size, recurrent=decode, state=state,
                                  out="delta_out", state_out="recurrent_state_new")
        o = b.gated_rmsnorm("gated_norm", o, z, b.weight(f"{prefix}norm.weight", (head_v_dim,)), groups=hv,
                            norm_before_gate=True, out="delta_normed")
        out = _linear(b, "out_proj", o, d, prefix=prefix, bias=False,
                      out="mixer_out" if par.tp == 1 else "mixer_partial")
        return par.reduce(b, "out_allreduce", out, "mixer_out")


def kimi_delta_attention(b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel = Parallel.SINGLE, *, heads: int,
                         head_dim: int, d_conv: int = 4, gate_rank: int | None = None, chunk_size: int = 64,
                         full_rank_gate: bool = False, bounded: bool = False, fp32_weights: bool = False,
                         prefix: str = "self_attn.") -> Tensor:
    """A Kimi Delta Attention mixer as Kimi Linear runs it (vLLM's layers/kda.py KimiDeltaAttention; fla's
    layers/kda.py): q_proj, k_proj, v_proj [d -> heads*head_dim] each, then its own causal conv1d (q_conv1d,
    k_conv1d, v_conv1d, no bias) and SiLU; the per-channel decay g from a low-rank f_a_proj [d -> head_dim] and
    f_b_proj [head_dim -> heads*head_dim] (ops.kda_gate, with A_log a head and dt_bias a channel, both fp32 in the
    checkpoint); beta = sigmoid(b_proj x) a head; the delta rule (ops.kimi_delta_rule: chunked in prefill, the
    one-token recurrence in decode); the output gated per head by sigmoid(g_b_proj(g_a_proj x)) in an RMSNorm of
    head_dim (o_norm, FusedRMSNormGated with a sigmoid); o_proj [heads*head_dim -> d]. `gate_rank`: the low-rank
    projections' width (head_dim in Kimi Linear). Kimi-K3's (its modeling_kimi_linear.py KimiDeltaAttention):
    `full_rank_gate`, the output gate one g_proj [d -> heads*head_dim] (column-parallel); `bounded`, the decay gate's
    safe form with gate_lower_bound (ops.kda_gate); `fp32_weights`, the convs' and o_norm's weights in fp32, as its
    checkpoint stores them.

    Cache per sequence: the three conv states, (d_conv - 1) x heads*head_dim each at the activation dtype, and the
    recurrent state heads x head_dim x head_dim at the precision's state dtype. Under tensor parallelism the heads
    split (q, k, v, f_b, g_b, b_proj column-parallel, with their convs, A_log and dt_bias; o_proj row-parallel);
    f_a_proj, g_a_proj and the norm weight are whole on every GPU (vLLM's ReplicatedLinear)."""
    rank = head_dim if gate_rank is None else gate_rank
    with b.scope(part=PART):
        h = par.heads(heads, "the KDA heads")
        width = h * head_dim
        small = FP32 if fp32_weights else None
        qkv = [_conv(b, _linear(b, f"{n}_proj", x, width, prefix=prefix, bias=False, out=n), phase, d_conv=d_conv,
                     bias=False, prefix=prefix, name=f"{n}_conv1d", tag=f"{n}_conv", weight_dtype=small) for n in "qkv"]
        f = _linear(b, "f_b_proj", _linear(b, "f_a_proj", x, rank, prefix=prefix, bias=False, out="f_low"), width,
                    prefix=prefix, bias=False, out="f")
        g = b.kda_gate("gate", f, b.weight(f"{prefix}A_log", (h,), FP32), b.weight(f"{prefix}dt_bias", (width,), FP32),
                       heads=h, bounded=bounded, out="decay", dtype=FP32)
        beta = b.elementwise("beta", "sigmoid", _linear(b, "b_proj", x, h, prefix=prefix, bias=False, out="b"),
                             out="beta", dtype=FP32)
        decode = phase.name == "decode"
        state = b.state("recurrent_state", (x.shape[0], h, head_dim, head_dim)) if decode else None
        o, _ = b.kimi_delta_rule("delta_rule", *qkv, g, beta, heads=h, head_dim=head_dim, chunk_size=chunk_size,
                                 recurrent=decode, state=state, out="delta_out", state_out="recurrent_state_new")
        gate = (_linear(b, "g_proj", x, width, prefix=prefix, bias=False, out="out_gate") if full_rank_gate else
                _linear(b, "g_b_proj", _linear(b, "g_a_proj", x, rank, prefix=prefix, bias=False, out="g_low"), width,
                        prefix=prefix, bias=False, out="out_gate"))
        o = b.gated_rmsnorm("o_norm", o, gate, b.weight(f"{prefix}o_norm.weight", (head_dim,), small), groups=h,
                            norm_before_gate=True, gate_act="sigmoid", out="delta_normed")
        out = _linear(b, "o_proj", o, x.shape[-1], prefix=prefix, bias=False,
                      out="mixer_out" if par.tp == 1 else "mixer_partial")
        return par.reduce(b, "out_allreduce", out, "mixer_out")


# MiniMax-01's module names for the projections and the norm (qkv, gate, out, norm); Ring-linear's differ
LIGHTNING_NAMES = ("qkv_proj", "output_gate", "out_proj", "norm")


def lightning_attention(b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel = Parallel.SINGLE, *, heads: int,
                        head_dim: int, act: bool = True, qk_norm: bool = False, rotary_dim: int | None = None,
                        q_scale: bool = False, norm_groups: int = 1, names: tuple = LIGHTNING_NAMES,
                        prefix: str = "self_attn.") -> Tensor:
    """A lightning-attention mixer as vLLM runs MiniMax-Text-01's and MiniMax-M1's
    (MiniMaxText01LinearAttention in vllm/model_executor/layers/mamba/linear_attn.py; arXiv 2501.08313):
    qkv_proj [d -> heads*3*head_dim] (each head's q, k and v side by side, no bias), SiLU in fp32 (`act`), the
    linear attention with a fixed decay a head (ops.lightning_attention, in fp32), an RMSNorm over the whole
    heads*head_dim output (`norm`, fp32; under tensor parallelism its sums of squares all-reduced:
    pieces.reduced_norm), times sigmoid(output_gate x) [d -> heads*head_dim], back to the activation dtype, and
    out_proj [heads*head_dim -> d]. No conv, no rope, no q or k norm.

    Ring-linear's (inclusionAI's BailingMoELinearAttention: vLLM's layers/mamba/linear/bailing_linear_attn.py,
    SGLang's models/bailing_moe_linear.py), with its `names` (query_key_value, g_proj, dense, g_norm): q, k and v
    of every head from one matrix, without SiLU where `act` is False (linear_silu), q and k each RMS-normed per
    head in fp32 (`qk_norm`: query_layernorm, key_layernorm), rotated over their first `rotary_dim` dims, q times
    head_dim^-1/2 (`q_scale`); the output RMS-normed in `norm_groups` groups and gated by sigmoid(g_proj x) in one
    kernel (RMSNormGated; its groups never span GPUs: --tp must divide them; one group is MiniMax's norm).

    Cache per sequence: the state heads x head_dim x head_dim at the precision's state dtype (vLLM's
    mamba_cache_dtype, the model's dtype unless told otherwise). Under tensor parallelism the heads split (qkv_proj
    and output_gate column-parallel, out_proj row-parallel) with their slopes and the norm weight's columns."""
    qkv_name, gate_name, out_name, norm_name = names
    with b.scope(part=PART):
        h = par.heads(heads, "the lightning-attention heads")
        width = h * head_dim
        if norm_groups > 1 and norm_groups % par.tp:
            raise OpgraphError(f"--tp {par.tp} splits a group of the lightning layer's output norm ({norm_groups} "
                               f"groups: group_norm_size): the engines keep each group on one GPU; use a --tp that "
                               f"divides {norm_groups}")
        if qk_norm or rotary_dim or q_scale:  # q, k and v apart
            qkv = _split_linear(b, qkv_name, x, {"q": width, "k": width, "v": width}, prefix=prefix, bias=False)
            if act:
                qkv = [b.elementwise(f"{n}_act", "silu", t, out=f"{n}_act", dtype=FP32) for n, t in zip("qkv", qkv)]
            q, k, v = qkv
            if qk_norm:
                q, k = (b.norm(n, t, b.weight(f"{prefix}{n}.weight", (head_dim,)), heads=h, out=f"{n}_out", dtype=FP32)
                        for n, t in (("query_layernorm", q), ("key_layernorm", k)))
            if rotary_dim:
                q, k = (b.rope(f"rope_{n}", t, head_dim=head_dim, rotary_dim=rotary_dim, out=f"{n}_rope")
                        for n, t in (("q", q), ("k", k)))
            if q_scale:
                q = b.scale("q_scale", q, out="q_scaled")
            qkv = (q, k, v)
        else:
            qkv = (_linear(b, qkv_name, x, 3 * width, prefix=prefix, bias=False, out="qkv"),)
            if act:
                qkv = (b.elementwise("qkv_act", "silu", qkv[0], out="qkv_act", dtype=FP32),)
        state = b.state("recurrent_state", (x.shape[0], h, head_dim, head_dim)) if phase.name == "decode" else None
        o, _ = b.lightning_attention("lightning", *qkv, heads=h, head_dim=head_dim, recurrent=phase.name == "decode",
                                     state=state, out="lightning_out", state_out="recurrent_state_new")
        gate = _linear(b, gate_name, x, width, prefix=prefix, bias=False, out="out_gate")
        if norm_groups > 1:
            o = b.gated_rmsnorm(norm_name, o, gate, b.weight(f"{prefix}{norm_name}.weight", (width,)),
                                groups=norm_groups // par.tp, norm_before_gate=True, gate_act="sigmoid",
                                out="mixer_gated", dtype=b.precision.act)
        else:
            o = pieces.reduced_norm(b, norm_name, o, par, prefix=prefix, whole=heads * head_dim)
            gate = b.elementwise("gate_sigmoid", "sigmoid", gate, out="out_gate_act")
            o = b.elementwise("gate_mul", "mul", o, gate, out="mixer_gated", dtype=b.precision.act)
        out = _linear(b, out_name, o, x.shape[-1], prefix=prefix, bias=False,
                      out="mixer_out" if par.tp == 1 else "mixer_partial")
        return par.reduce(b, "out_allreduce", out, "mixer_out")
