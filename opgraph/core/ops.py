"""Operator nodes, each with the one formula for its FLOPs.

Conventions (the README repeats them):
- A multiply-add counts as 2 FLOPs, so a matmul of [M, K] @ [K, N] is 2*M*N*K
  (the standard convention, e.g. Kaplan et al. 2020, "Scaling Laws", section 2.1;
  XLA's HloCostAnalysis counts a dot the same way).
- Transcendentals (exp, rsqrt, tanh) count 1 FLOP each.
- Every factory takes `out` (the output tensor's name, default the op's), `role` and `dtype` (default
  the first input's), so a builder can place results in the KV cache and give each role its precision.
- Default byte rule, as in XLA's HloCostAnalysis: an op reads each input whole and
  writes each output whole. Ops that touch only part of an input (an embedding
  reads only the rows it looks up) say so in `reads`.
"""

from __future__ import annotations

import math

import attrs

from opgraph.core import checks
from opgraph.errors import OpgraphError
from opgraph.core.tensor import DType, Role, Tensor, nbytes
from opgraph.core.sizes import is_int, maximum, minimum

# Op categories as sets, so rules can speak of them (tinygrad's GroupOp habit).
MATMUL = "matmul"
SOFTMAX = "softmax"
NORM = "norm"
ELEMENTWISE = "elementwise"
ROPE = "rope"
EMBEDDING = "embedding"
GATHER = "gather"
# The vocabularies are open: user code adds to them with register_kind / register_function /
# register_elementwise, never by editing this file.
COLLECTIVE = "collective"  # communication between GPUs: its bytes go over links, not (only) to memory
KINDS = {MATMUL, SOFTMAX, NORM, ELEMENTWISE, ROPE, EMBEDDING, GATHER, COLLECTIVE}
# What each op computes (Op.fn); fusion rules may name these as well as kinds.
FUNCTIONS = {"linear", "qk", "av", "softmax", "rmsnorm", "layernorm", "add", "mul", "silu", "gelu", "relu2",
             "rope", "embedding", "take_last", "concat", "topk", "moe_combine", "moe_route", "moe_unroute",
             "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "ep_dispatch", "ep_combine", "send_recv"}
# Ops whose arithmetic runs on the matrix units; everything else runs at the vector rate.
MATRIX_KINDS = {MATMUL}


@attrs.frozen
class Op:
    name: str
    kind: str
    fn: str  # what exactly it computes: "linear", "qk", "rmsnorm", "silu", ...
    inputs: tuple[Tensor, ...] = attrs.field(converter=tuple)
    outputs: tuple[Tensor, ...] = attrs.field(converter=tuple)
    flops: int
    # Elements read of each input, aligned with `inputs`; None means the whole tensor.
    reads: tuple[int | None, ...] | None = None
    # Which part of the model it belongs to ("attention", "mlp", "moe", "embedding", "head", ...), as the
    # builder tagged it; analyses that ask "which ops are attention" read this, never guess from topology.
    part: str = ""
    # Exponentials (exp, tanh) among the FLOPs, counted apart as XLA counts transcendentals: they run on the
    # special-function units, whose rate can bound a kernel (FlashAttention-3 on H100).
    transcendentals: int = 0
    # Collectives: bytes each GPU sends over its links, in how many steps, among how many GPUs.
    wire_bytes: int = 0
    wire_steps: int = 0
    group: int = 1

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise OpgraphError(f"op {self.name!r}: unknown kind {self.kind!r}; valid: {', '.join(sorted(KINDS))}")
        if self.fn not in FUNCTIONS:
            raise OpgraphError(f"op {self.name!r}: unknown function {self.fn!r}; register it first with "
                               f"opgraph.core.ops.register_function({self.fn!r})")
        if self.reads is not None and len(self.reads) != len(self.inputs):
            raise OpgraphError(f"op {self.name!r}: `reads` must have one entry per input")
        if not is_int(self.flops) or self.flops < 0:
            raise OpgraphError(f"op {self.name!r}: flops must be a non-negative int, got {self.flops!r}")

    def read_elems(self, i: int) -> int:
        """How many elements of input i this op reads."""
        if self.reads is None or self.reads[i] is None:
            return self.inputs[i].numel
        return self.reads[i]

    @property
    def compute_dtype(self) -> DType:
        """The precision the arithmetic runs at: that of the first non-weight input
        (weight-only quantized weights are dequantized to the activation type)."""
        for t in self.inputs:
            if t.role is not Role.WEIGHT:
                return t.dtype
        return self.inputs[0].dtype


def _rows(x: Tensor) -> int:
    return math.prod(x.shape[:-1])


def _same_shape(op: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise OpgraphError(f"op {op!r}: shape mismatch between {a} and {b}")


def _out(name: str, shape: tuple[int, ...], like: Tensor, role: Role, dtype: DType | None) -> Tensor:
    return Tensor(name, shape, dtype or like.dtype, role)


def linear(name: str, x: Tensor, w: Tensor, *, bias: Tensor | None = None, out: str | None = None,
           role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """y = x @ W^T (+ b), with W stored [out, in] as in torch.nn.Linear and the checkpoints (so a tied
    lm_head is the embedding table itself). x: [..., K], W: [N, K] -> [..., N].
    FLOPs 2*M*N*K, plus M*N for the bias add."""
    if len(w.shape) != 2:
        raise OpgraphError(f"op {name!r}: weight {w} must be 2-D [out, in]")
    n, k = w.shape
    if x.shape[-1] != k:
        raise OpgraphError(f"op {name!r}: input {x} has last dim {x.shape[-1]}, weight {w} expects {k}")
    m = _rows(x)
    flops = 2 * m * n * k
    inputs = [x, w]
    if bias is not None:
        if bias.shape != (n,):
            raise OpgraphError(f"op {name!r}: bias {bias} must have shape ({n},)")
        inputs.append(bias)
        flops += m * n
    y = _out(out or name, (*x.shape[:-1], n), x, role, dtype)
    return Op(name, MATMUL, "linear", inputs, (y,), flops)


def _check_heads(name: str, heads: int, kv_heads: int) -> None:
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
        raise OpgraphError(f"op {name!r}: kv_heads ({kv_heads}) must be positive and divide heads ({heads})")


def _key_length(name: str, q: Tensor, keys: tuple[Tensor, ...], width: int) -> int:
    """Total key positions over the cache part(s) and the new part; each is [B, s_i, kv_heads*head_dim]."""
    for k in keys:
        if len(k.shape) != 3 or k.shape[0] != q.shape[0] or k.shape[2] != width:
            raise OpgraphError(f"op {name!r}: {k} must be [batch={q.shape[0]}, positions, {width}]")
    return sum(k.shape[1] for k in keys)


def causal_pairs(sq: int, sk: int, window: int | None = None) -> int:
    """Query-key pairs a causal mask leaves, when the Sq queries are the last Sq of Sk positions:
    query i (0-based) sees the Sk - Sq earlier positions and i + 1 of its own. This is the part a
    causal FlashAttention kernel computes (it skips the blocks above the diagonal).
    With a sliding `window` (Mistral), the query at position p sees min(p + 1, window) keys."""
    if window is None or window >= sk:
        return sq * (sk - sq) + sq * (sq + 1) // 2
    lo, hi = sk - sq + 1, sk  # keys seen without the window, one value per query: lo..hi
    below = max(0, min(hi, window) - lo + 1)  # queries the window does not cut
    return (lo + lo + below - 1) * below // 2 + window * (sq - below)


def attention_scores(name: str, q: Tensor, keys: tuple[Tensor, ...] | list[Tensor], *, heads: int,
                     kv_heads: int, head_dim: int, causal: bool = False, window: int | None = None,
                     out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """S = Q K^T per head. q: [B, Sq, heads*head_dim]; keys: [B, s_i, kv_heads*head_dim] (cache, then new).
    Output [B, heads, Sq, Sk]. FLOPs 2*B*heads*pairs*head_dim, pairs = Sq*Sk: every query head does a full
    product even when it shares its K head (GQA). With `causal`, pairs counts only the unmasked part
    (inside the sliding `window`, if any)."""
    _check_heads(name, heads, kv_heads)
    keys = tuple(keys)
    if len(q.shape) != 3 or q.shape[2] != heads * head_dim:
        raise OpgraphError(f"op {name!r}: query {q} must be [batch, positions, heads*head_dim={heads * head_dim}]")
    b, sq, _ = q.shape
    sk = _key_length(name, q, keys, kv_heads * head_dim)
    s = _out(out or name, (b, heads, sq, sk), q, role, dtype)
    pairs = causal_pairs(sq, sk, window) if causal else sq * sk
    return Op(name, MATMUL, "qk", (q, *keys), (s,), 2 * b * heads * pairs * head_dim)


def attention_values(name: str, p: Tensor, values: tuple[Tensor, ...] | list[Tensor], *, heads: int,
                     kv_heads: int, head_dim: int, causal: bool = False, window: int | None = None,
                     value_width: int | None = None, out: str | None = None,
                     role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """O = P V per head. p: [B, heads, Sq, Sk]; values: [B, s_i, kv_heads*head_dim] summing to Sk.
    Output [B, Sq, heads*head_dim]. FLOPs 2*B*heads*pairs*head_dim, pairs as in attention_scores.
    With `value_width`, each value tensor is [B, s_i, value_width] and only its first kv_heads*head_dim
    features are read: MLA's absorbed decode uses the cached [latent | rope key] entries as V, whose
    latent part is the value (DeepSeek-V2 paper, section 2.1.2)."""
    _check_heads(name, heads, kv_heads)
    values = tuple(values)
    if len(p.shape) != 4 or p.shape[1] != heads:
        raise OpgraphError(f"op {name!r}: probabilities {p} must be [batch, heads={heads}, queries, keys]")
    b, _, sq, sk = p.shape
    width = kv_heads * head_dim
    if value_width is not None and value_width < width:
        raise OpgraphError(f"op {name!r}: value_width {value_width} is narrower than kv_heads*head_dim={width}")
    got = _key_length(name, p, values, value_width or width)
    if got != sk:
        raise OpgraphError(f"op {name!r}: values cover {got} positions but the probabilities {p} have {sk} keys")
    o = _out(out or name, (b, sq, heads * head_dim), p, role, dtype)
    pairs = causal_pairs(sq, sk, window) if causal else sq * sk
    reads = None if value_width is None else (None, *(v.shape[0] * v.shape[1] * width for v in values))
    return Op(name, MATMUL, "av", (p, *values), (o,), 2 * b * heads * pairs * head_dim, reads=reads)


def register_kind(kind: str, *, matrix: bool = False) -> str:
    """Add an op kind ("scan", "conv", ...) that ops and fusion rules may name; `matrix` kinds run at the
    matrix-unit peak, others at the vector rate. Registering a kind again is harmless."""
    if not isinstance(kind, str) or not kind.isidentifier():
        raise OpgraphError(f"op kind must be a name (letters, digits, _), got {kind!r}")
    if kind in KINDS and (kind in MATRIX_KINDS) != matrix:
        raise OpgraphError(f"op kind {kind!r} is already registered with matrix={kind in MATRIX_KINDS}")
    KINDS.add(kind)
    if matrix:
        MATRIX_KINDS.add(kind)
    return kind


def register_function(fn: str) -> str:
    """Add a function name (Op.fn) for ops built by hand with Op(...); fusion rules may name it."""
    if not isinstance(fn, str) or not fn.isidentifier():
        raise OpgraphError(f"op function must be a name (letters, digits, _), got {fn!r}")
    FUNCTIONS.add(fn)
    return fn


def register_elementwise(fn: str, flops_per_element: int, *, arity: int = 1, transcendentals_per_element: int = 0) -> str:
    """Add an elementwise function for `elementwise()` / `GraphBuilder.elementwise`, with its FLOPs per output
    element and its number of same-shaped inputs.

    >>> register_elementwise("relu", 1)  # max(x, 0): one comparison per element
    'relu'
    >>> elementwise("act", "relu", Tensor("x", (2, 8), DType("fp16", 16))).flops
    16
    """
    if not isinstance(flops_per_element, int) or isinstance(flops_per_element, bool) or flops_per_element < 0:
        raise OpgraphError(f"elementwise {fn!r}: flops_per_element must be an int >= 0, got {flops_per_element!r}")
    if not isinstance(arity, int) or isinstance(arity, bool) or arity < 1:
        raise OpgraphError(f"elementwise {fn!r}: arity must be a positive int, got {arity!r}")
    known = ELEMENTWISE_FLOPS_PER_ELEM.get(fn), ELEMENTWISE_ARITY.get(fn)
    if known[0] is not None and known != (flops_per_element, arity):
        raise OpgraphError(f"elementwise {fn!r} is already registered with {known[0]} FLOPs per element and "
                           f"arity {known[1]}")
    register_function(fn)
    ELEMENTWISE_FLOPS_PER_ELEM[fn] = flops_per_element
    ELEMENTWISE_ARITY[fn] = arity
    ELEMENTWISE_TRANSCENDENTALS[fn] = checks.integer("transcendentals_per_element", transcendentals_per_element,
                                                     minimum=0, maximum=flops_per_element)
    return fn


# Per-element FLOPs of each vector function; one home for these constants.
SOFTMAX_FLOPS_PER_ELEM = 5  # max, subtract, exp, sum, divide (scale and mask folded into qk, as FlashAttention does)
ELEMENTWISE_FLOPS_PER_ELEM = {
    "add": 1,
    "mul": 1,
    "silu": 4,  # x / (1 + exp(-x)): negate, exp, add, divide
    "gelu": 8,  # tanh form 0.5x(1 + tanh(c(x + 0.044715x^3))): cube, 2 mul, add, mul, tanh, add, mul
    "relu2": 2,  # squared ReLU, max(x, 0)^2 (So et al., 2021, Primer; Nemotron-4's MLP): compare, multiply
}
ELEMENTWISE_ARITY = {"add": 2, "mul": 2, "silu": 1, "gelu": 1, "relu2": 1}
ELEMENTWISE_TRANSCENDENTALS = {"silu": 1, "gelu": 1}  # exp in SiLU's sigmoid, tanh in GELU's tanh form
ROPE_FLOPS_PER_ELEM = 3  # x*cos + rotate_half(x)*sin: 2 multiplies and 1 add per rotated element
# Norms over the last dim d, from the definitions in the PyTorch docs (torch.nn.RMSNorm, torch.nn.LayerNorm):
#   RMSNorm:   per element square, accumulate, scale by 1/rms, multiply by gamma        -> 4
#              per row     divide by d, add eps, rsqrt                                 -> 3
#   LayerNorm: per element accumulate, subtract mean, square, accumulate, scale by 1/sigma, gamma (+ beta) -> 6 (+1)
#              per row     two divides by d, add eps, rsqrt                            -> 4
NORM_FLOPS = {"rmsnorm": (4, 3), "layernorm": (6, 4)}


def softmax(name: str, x: Tensor, *, causal: bool = False, window: int | None = None, out: str | None = None,
            role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Softmax over the last dim; FLOPs 5 per element. With `causal`, x is attention scores [B, heads, Sq, Sk] and
    only the unmasked pairs are counted (inside the sliding `window`, if any), as in attention_scores: a causal
    FlashAttention kernel never computes the masked exponentials."""
    y = _out(out or name, x.shape, x, role, dtype)
    if causal:
        if len(x.shape) != 4:
            raise OpgraphError(f"op {name!r}: a causal softmax needs scores [batch, heads, queries, keys], got {x}")
        b, heads, sq, sk = x.shape
        elements = b * heads * causal_pairs(sq, sk, window)
    else:
        elements = x.numel
    return Op(name, SOFTMAX, "softmax", (x,), (y,), SOFTMAX_FLOPS_PER_ELEM * elements, transcendentals=elements)


def norm(name: str, x: Tensor, weight: Tensor, *, bias: Tensor | None = None, fn: str = "rmsnorm",
         out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """RMSNorm or LayerNorm over the last dim, with a scale (and for LayerNorm an optional shift)."""
    if fn not in NORM_FLOPS:
        raise OpgraphError(f"op {name!r}: unknown norm {fn!r}; valid: {', '.join(NORM_FLOPS)}")
    d = x.shape[-1]
    for p in (weight, bias):
        if p is not None and p.shape != (d,):
            raise OpgraphError(f"op {name!r}: parameter {p} must have shape ({d},)")
    per_elem, per_row = NORM_FLOPS[fn]
    if bias is not None:
        per_elem += 1
    inputs = (x, weight) if bias is None else (x, weight, bias)
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, NORM, fn, inputs, (y,), per_elem * x.numel + per_row * _rows(x))


def elementwise(name: str, fn: str, *inputs: Tensor, out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """add / mul of same-shaped tensors, or silu / gelu / relu2 of one; FLOPs per element from the table above."""
    if fn not in ELEMENTWISE_FLOPS_PER_ELEM:
        raise OpgraphError(f"op {name!r}: unknown elementwise function {fn!r}; "
                           f"valid: {', '.join(ELEMENTWISE_FLOPS_PER_ELEM)} (add one with "
                           f"opgraph.core.ops.register_elementwise)")
    arity = ELEMENTWISE_ARITY[fn]
    if len(inputs) != arity:
        raise OpgraphError(f"op {name!r}: {fn} takes {arity} input(s), got {len(inputs)}")
    for t in inputs[1:]:
        _same_shape(name, inputs[0], t)
    x = inputs[0]
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, fn, inputs, (y,), ELEMENTWISE_FLOPS_PER_ELEM[fn] * x.numel,
              transcendentals=ELEMENTWISE_TRANSCENDENTALS.get(fn, 0) * x.numel)


def rope(name: str, x: Tensor, *, head_dim: int, rotary_dim: int | None = None,
         out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Rotary position embedding on [..., heads*head_dim], rotating `rotary_dim` of each head's dims
    (all of them by default). FLOPs 3 per rotated element. The cos/sin tables are not counted as reads:
    they are computed in-kernel or are a few KB."""
    rotary_dim = head_dim if rotary_dim is None else rotary_dim
    if x.shape[-1] % head_dim or not 0 < rotary_dim <= head_dim:
        raise OpgraphError(f"op {name!r}: {x} must be [..., heads*head_dim] with 0 < rotary_dim <= head_dim={head_dim}")
    rotated = x.numel // head_dim * rotary_dim
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ROPE, "rope", (x,), (y,), ROPE_FLOPS_PER_ELEM * rotated)


def embedding(name: str, ids: Tensor, table: Tensor, *, rows: int | None = None, out: str | None = None,
              role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Row lookup: ids [...] into table [vocab, d] -> [..., d]. No FLOPs; reads only the rows it uses,
    at most one per id and at most the whole table (like XLA's gather rule). `rows` says how many
    distinct rows the ids name when the caller knows better (learned positions: every sequence of the
    batch looks up the same positions)."""
    if len(table.shape) != 2:
        raise OpgraphError(f"op {name!r}: table {table} must be 2-D [vocab, d]")
    vocab, d = table.shape
    rows = minimum(ids.numel if rows is None else rows, vocab)
    y = _out(out or name, (*ids.shape, d), table, role, dtype)
    return Op(name, EMBEDDING, "embedding", (ids, table), (y,), 0, reads=(None, rows * d))


def take_last(name: str, x: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Keep the last position of each sequence: [B, S, d] -> [B, 1, d]. Reads only those rows."""
    if len(x.shape) != 3:
        raise OpgraphError(f"op {name!r}: {x} must be [batch, positions, features]")
    b, _, d = x.shape
    y = _out(out or name, (b, 1, d), x, role, dtype)
    return Op(name, GATHER, "take_last", (x,), (y,), 0, reads=(b * d,))


# --- Architecture zoo: MLA, mixture-of-experts -------------------------------------------------------------

def concat_heads(name: str, *parts: Tensor, heads: int, shared: tuple[int, ...] = (), out: str | None = None,
                 role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Per-head concatenation along the features: each part is [..., heads*d_i], or [..., d_i] for the
    parts listed in `shared` (one head's worth, broadcast to every head: MLA's rope key). Output
    [..., heads*sum(d_i)]. Data movement only: no FLOPs; it reads its inputs and writes its output
    (a kernel that fuses it writes the parts straight into place)."""
    if not parts or any(p.shape[:-1] != parts[0].shape[:-1] for p in parts):
        raise OpgraphError(f"op {name!r}: parts {[str(p) for p in parts]} must agree on all but the last dim")
    width = 0
    for i, p in enumerate(parts):
        per_head, left = (p.shape[-1], 0) if i in shared else divmod(p.shape[-1], heads)
        if left:
            raise OpgraphError(f"op {name!r}: part {p} is not heads={heads} equal slices")
        width += per_head
    y = _out(out or name, (*parts[0].shape[:-1], heads * width), parts[0], role, dtype)
    return Op(name, GATHER, "concat", parts, (y,), 0)


def grouped_linear(name: str, x: Tensor, w: Tensor, *, groups: int, in_dim: int, out_dim: int,
                   weight_reads: int | None = None, out: str | None = None, role: Role = Role.ACTIVATION,
                   dtype: DType | None = None) -> Op:
    """A separate [out_dim, in_dim] matrix per group, all blocks of `w`: per attention head (MLA's
    absorbed up-projections) or per routed expert slot (a token's k experts). x is [..., groups*in_dim],
    or [..., in_dim] when every group reads the same input (a token's features go to each of its
    experts). Output [..., groups*out_dim]. FLOPs 2*M*groups*in_dim*out_dim, M = rows of x (the same
    2*M*N*K per group as `linear`). Reads `weight_reads` elements of w (default groups*in_dim*out_dim:
    one block per group; MoE passes the expected distinct experts touched)."""
    if x.shape[-1] not in (in_dim, groups * in_dim):
        raise OpgraphError(f"op {name!r}: input {x} must end in in_dim={in_dim} or groups*in_dim={groups * in_dim}")
    reads = groups * in_dim * out_dim if weight_reads is None else weight_reads
    if not 0 < reads <= w.numel:
        raise OpgraphError(f"op {name!r}: weight {w} has {w.numel} elements; cannot read {reads}")
    y = _out(out or name, (*x.shape[:-1], groups * out_dim), x, role, dtype)
    return Op(name, MATMUL, "linear", (x, w), (y,), 2 * _rows(x) * groups * in_dim * out_dim, reads=(None, reads))


def multi_linear(name: str, x: Tensor, weights: tuple[Tensor, ...] | list[Tensor], *, outs: tuple[str, ...] | list[str],
                 role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """One kernel applying several [N_i, K] weights to the same x: y_i = x @ W_i^T, one output each
    (a checkpoint matrix whose row blocks feed different ops, e.g. MLA's kv_a_proj_with_mqa = latent rows
    + rope-key rows). FLOPs: the sum of each `linear`'s 2*M*N_i*K; x is read once."""
    if len(weights) != len(outs) or not weights:
        raise OpgraphError(f"op {name!r}: give one output name per weight")
    parts = [linear(name, x, w, out=o, role=role, dtype=dtype) for w, o in zip(weights, outs)]
    return Op(name, MATMUL, "linear", (x, *weights), tuple(p.outputs[0] for p in parts), sum(p.flops for p in parts))


def top_k(name: str, scores: Tensor, *, k: int, out: str | None = None, role: Role = Role.ACTIVATION,
          dtype: DType | None = None) -> Op:
    """MoE routing: keep the k largest of E scores per token, [..., E] -> [..., k] (their weights; which
    experts they name is part of the result). FLOPs: one comparison per score, as softmax counts its max."""
    if not 0 < k <= scores.shape[-1]:
        raise OpgraphError(f"op {name!r}: k={k} must be between 1 and the {scores.shape[-1]} scores")
    y = _out(out or name, (*scores.shape[:-1], k), scores, role, dtype)
    return Op(name, GATHER, "topk", (scores,), (y,), scores.numel)


def moe_route(name: str, x: Tensor, *, rows: int, out: str | None = None, role: Role = Role.ACTIVATION,
              dtype: DType | None = None) -> Op:
    """Expert parallelism inside a tensor-parallel group: every GPU has all the tokens x [..., d]; it gathers the
    `rows` token copies routed to its own experts -> [rows, d] (fused_moe's permutation). No FLOPs; reads the
    distinct tokens it needs, at most all of them."""
    d = x.shape[-1]
    y = _out(out or name, (rows, d), x, role, dtype)
    return Op(name, GATHER, "moe_route", (x,), (y,), 0, reads=(minimum(rows, _rows(x)) * d,))


def moe_unroute(name: str, y: Tensor, weights: Tensor, *, tokens: tuple[int, ...], out: str | None = None,
                role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """The inverse of moe_route: each of this GPU's expert outputs y [rows, d], times its routing weight, added
    into its token's row -> [*tokens, d], the partial sums the group's all-reduce completes. FLOPs 2*rows*d."""
    o = _out(out or name, (*tokens, y.shape[-1]), y, role, dtype)
    return Op(name, ELEMENTWISE, "moe_unroute", (y, weights), (o,), 2 * y.numel)


def moe_combine(name: str, y: Tensor, weights: Tensor, *, top_k: int, out: str | None = None,
                role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Weighted sum of each token's k expert outputs: y [..., k*d] with weights [..., k] -> [..., d].
    FLOPs 2*M*k*d: a multiply and an add per expert output element (Mixtral's and DeepSeek's
    `final_hidden_states += expert_out * routing_weight`)."""
    if weights.shape != (*y.shape[:-1], top_k) or y.shape[-1] % top_k:
        raise OpgraphError(f"op {name!r}: {y} must be [..., top_k*d] and {weights} [..., top_k={top_k}]")
    d = y.shape[-1] // top_k
    o = _out(out or name, (*y.shape[:-1], d), y, role, dtype)
    return Op(name, ELEMENTWISE, "moe_combine", (y, weights), (o,), 2 * y.numel)


# --- Communication between GPUs ---------------------------------------------------------------------------
# Bytes on the wire per GPU follow the ring algorithms NCCL uses for large buffers (Patarasuk and Yuan, 2009;
# NCCL's performance notes: an all-reduce's bus bandwidth is its algorithm bandwidth x 2(n-1)/n). Each op's
# time is a latency per step plus its wire bytes over the link (an alpha-beta model, opgraph.core.cost).

def _collective(name: str, fn: str, x: Tensor, shape: tuple, group: int, wire_num: int, steps: int, flops: int,
                out: str | None, role: Role, dtype: DType | None) -> Op:
    if not is_int(group) or group < 2:
        raise OpgraphError(f"op {name!r}: a {fn} needs a group of at least 2 GPUs, got {group!r}")
    y = _out(out or name, shape, x, role, dtype)
    wire = -(-wire_num // group)  # whole bytes, rounded up
    return Op(name, COLLECTIVE, fn, (x,), (y,), flops, wire_bytes=wire, wire_steps=steps, group=group)


def all_reduce(name: str, x: Tensor, *, group: int, out: str | None = None, role: Role = Role.ACTIVATION,
               dtype: DType | None = None) -> Op:
    """Sum x over `group` GPUs (ring): each sends 2(n-1)/n of the buffer in 2(n-1) steps and adds (n-1)/n of
    its elements. Every GPU ends with the whole sum.

    >>> op = all_reduce("ar", Tensor("x", (8, 4096), DType("bf16", 16)), group=8)
    >>> op.wire_bytes == 2 * 7 * (8 * 4096 * 2) // 8, op.wire_steps
    (True, 14)
    """
    n = group
    return _collective(name, "all_reduce", x, x.shape, n, 2 * (n - 1) * x.nbytes, 2 * (n - 1),
                       -(-(n - 1) * x.numel // n), out, role, dtype)


def _resized(shape: tuple, dim: int, size) -> tuple:
    dim = dim % len(shape)
    return (*shape[:dim], size, *shape[dim + 1:])


def all_gather(name: str, x: Tensor, *, group: int, dim: int = -1, out: str | None = None,
               role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Concatenate each GPU's x along `dim` (default the last; the tokens under sequence parallelism) (ring):
    each receives the n-1 other shards in n-1 steps."""
    n = group
    return _collective(name, "all_gather", x, _resized(x.shape, dim, x.shape[dim] * n), n, (n - 1) * n * x.nbytes,
                       n - 1, 0, out, role, dtype)


def reduce_scatter(name: str, x: Tensor, *, group: int, dim: int = -1, out: str | None = None,
                   role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Sum x over `group` GPUs, each keeping 1/n of `dim` (default the last) (ring): (n-1)/n of the buffer in
    n-1 steps."""
    n = group
    if x.shape[dim] % n:
        raise OpgraphError(f"op {name!r}: dim {dim} of {x} does not split into {n} equal parts")
    return _collective(name, "reduce_scatter", x, _resized(x.shape, dim, x.shape[dim] // n), n, (n - 1) * x.nbytes,
                       n - 1, -(-(n - 1) * x.numel // n), out, role, dtype)


def all_to_all(name: str, x: Tensor, *, group: int, out: str | None = None, role: Role = Role.ACTIVATION,
               dtype: DType | None = None) -> Op:
    """Each GPU sends a 1/n part of x to every other GPU (expert-parallel dispatch and combine): (n-1)/n of the
    buffer, in n-1 pairwise steps."""
    n = group
    return _collective(name, "all_to_all", x, x.shape, n, (n - 1) * x.nbytes, n - 1, 0, out, role, dtype)


def ep_dispatch(name: str, x: Tensor, *, group: int, top_k: int, rows: int, out: str | None = None,
                role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Expert-parallel dispatch (an all-to-all, as DeepEP's): each of this GPU's tokens x [..., d] goes to the
    GPUs holding its top_k experts, and this GPU receives the `rows` token copies its own experts run -> [rows, d].
    On the wire per GPU: the larger of what it sends (tokens x top_k rows) and what it receives (rows), of which
    (n-1)/n crosses to other GPUs when each GPU holds 1/n of the experts; n-1 pairwise steps.

    >>> op = ep_dispatch("d", Tensor("x", (4, 7168), DType("bf16", 16)), group=16, top_k=8, rows=40)
    >>> op.outputs[0].shape, op.wire_bytes == 15 * 40 * 7168 * 2 // 16
    ((40, 7168), True)
    """
    y = _out(out or name, (rows, x.shape[-1]), x, role, dtype)
    d = x.shape[-1]
    moved = nbytes(maximum(_rows(x) * top_k, rows) * d, y.dtype, d)
    return _collective(name, "ep_dispatch", x, y.shape, group, (group - 1) * moved, group - 1, 0, out, role, dtype)


def ep_combine(name: str, y: Tensor, *, group: int, top_k: int, tokens: tuple[int, ...], out: str | None = None,
               role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Expert-parallel combine, the dispatch's inverse: the expert outputs y [rows, d] go back to their tokens'
    GPUs, where each token gathers its top_k outputs -> [*tokens, top_k * d]; on the wire as `ep_dispatch`."""
    d = y.shape[-1]
    shape = (*tokens, top_k * d)
    moved = nbytes(maximum(math.prod(tokens) * top_k, y.shape[0]) * d, dtype or y.dtype, d)
    return _collective(name, "ep_combine", y, shape, group, (group - 1) * moved, group - 1, 0, out, role, dtype)


def send_recv(name: str, x: Tensor, *, span: int = 2, out: str | None = None, role: Role = Role.ACTIVATION,
              dtype: DType | None = None) -> Op:
    """Send x to the next pipeline stage: the whole buffer, one step. `span`: the GPUs the pipeline spans, which
    decides the link (over the network when they fill more than one node, as stages then sit on different nodes)."""
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, COLLECTIVE, "send_recv", (x,), (y,), 0, wire_bytes=x.nbytes, wire_steps=1, group=max(span, 2))
