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
from opgraph.errors import OpgraphError, counted
from opgraph.core.tensor import BF16, DTYPES, INT32, DType, Role, Tensor, nbytes
from opgraph.core.sizes import is_int, maximum, minimum, size_function

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
FUNCTIONS = {"linear", "qk", "av", "softmax", "rmsnorm", "layernorm", "add", "mul", "silu", "gelu", "relu", "tanh", "relu2",
             "sigmoid", "scale", "softcap", "clamp_swiglu", "limit_swiglu", "situ", "sqrt_softplus", "xielu", "slice",
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
        """The operand type the arithmetic runs at: that of the first non-weight input (weight-only quantized weights
        are dequantized to it), or a narrower weight's that quantizes its input (DType.quantizes_input: W8A8)."""
        act = next((t.dtype for t in self.inputs if t.role is not Role.WEIGHT), self.inputs[0].dtype)
        for t in self.inputs:
            if t.role is Role.WEIGHT and t.dtype.quantizes_input and t.dtype.bits < act.bits:
                return DTYPES[t.dtype.name]  # the operand type alone: its scales are the weight's storage
        return act


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


@size_function
def chunk_pairs(sq: int, sk: int, chunk: int, causal: bool) -> int:
    """Query-key pairs of chunked attention (Llama-4's attention_chunk_size): the positions split into chunks of
    `chunk`, and a query sees only the keys of its own chunk. The Sq queries are the last Sq of Sk positions.
    Causal: the query at position p sees p mod chunk + 1 keys. Not causal: each chunk's queries times the keys
    of that chunk up to the last position (a kernel runs each chunk as a sequence of its own, as vLLM's local
    attention does, so no pair across chunks is ever computed).

    >>> chunk_pairs(10, 10, 4, False), chunk_pairs(10, 10, 4, True)  # chunks of 4, 4, 2
    (36, 23)
    """
    a, b = sk - sq, sk
    if causal:
        def upto(n: int) -> int:  # sum over p < n of (p mod chunk + 1)
            r = n % chunk
            return n // chunk * chunk * (chunk + 1) // 2 + r * (r + 1) // 2
        return upto(b) - upto(a)
    ja, jb = a // chunk, (b - 1) // chunk
    if ja == jb:
        return (b - a) * (b - ja * chunk)
    last = b - jb * chunk
    return ((ja + 1) * chunk - a) * chunk + (jb - ja - 1) * chunk * chunk + last * last


@size_function
def select_pairs(sq: int, sk: int, select: int, causal: bool) -> int:
    """Query-key pairs of sparse attention over selected keys (DeepSeek-V3.2's DSA: the lightning indexer picks
    index_topk keys per query): each query attends to min(select, keys it could see) keys. The Sq queries are the
    last Sq of Sk positions. Not causal: Sq * min(select, Sk). Causal: the query at position p sees
    min(select, p + 1), summed over p = Sk - Sq .. Sk - 1.

    >>> select_pairs(10, 10, 4, False), select_pairs(10, 10, 4, True)  # 1+2+3+4 + 6*4
    (40, 34)
    """
    # causal: a sliding window of `select` keys counts exactly these pairs (causal_pairs)
    return causal_pairs(sq, sk, select) if causal else sq * min(select, sk)


@attrs.frozen
class Compressed:
    """Keys a query sees beside its window (DeepSeek-V4's compressed attention, its reference inference/model.py
    Compressor and get_compress_topk_idxs): entries that each pool `stride` positions, the last `parts` of an
    attention op's key tensors. The query at position p sees the (p + 1) // stride entries complete by then, or
    the `select` of them an indexer picks; `positions`: the sequence's positions after the step (the window's keys
    do not tell them, as a window drops the oldest)."""

    stride: int
    positions: int
    select: int | None = None
    parts: int = 1

    def split(self, name: str, keys: tuple) -> tuple[tuple, tuple]:
        """(the window's key tensors, the compressed entries'), as the op was given them."""
        if not 0 < self.parts <= len(keys):
            raise OpgraphError(f"op {name!r}: {self.parts} compressed key parts among {len(keys)} key tensors")
        return keys[:-self.parts], keys[-self.parts:]

    def slots(self, entries: int) -> int:
        """The scores' columns for `entries` compressed entries: all of them, or the selection's."""
        return entries if self.select is None else minimum(self.select, entries)


@size_function
def strided_pairs(sq: int, positions: int, stride: int, select: int | None = None) -> int:
    """Query-entry pairs of attention over compressed entries (Compressed): the Sq queries are the last Sq of
    `positions`, and the query at position p sees min(select, (p + 1) // stride) entries. With F(n), the sum of
    j // stride over j = 1..n (q = n // stride, r = n % stride: stride*q*(q-1)/2 + q*(r+1)), capped where
    j // stride reaches `select`, the pairs are G(positions) - G(positions - Sq).

    >>> strided_pairs(10, 10, 4), strided_pairs(1, 10, 4), strided_pairs(10, 10, 4, 1)  # 0,0,0,1,1,1,1,2,2,2
    (10, 2, 7)
    """
    def upto(n: int) -> int:
        if select is not None and n >= select * stride:
            return upto(select * stride - 1) + select * (n - select * stride + 1)
        q, r = divmod(n, stride)
        return stride * q * (q - 1) // 2 + q * (r + 1)
    return upto(positions) - upto(positions - sq)


@size_function
def block_select_pairs(sq: int, sk: int, select: int, block: int) -> int:
    """Query-key pairs of attention over selected blocks of keys (MiniMax-M3's sparse attention: the top
    select // block blocks of `block` positions, the query's own block among them): the query at position p sees
    every key before it while p < select, else the select - block keys of its other blocks and the p mod block + 1
    of its own. The Sq queries are the last Sq of Sk positions.

    >>> block_select_pairs(1, 300, 256, 128), block_select_pairs(300, 300, 256, 128)  # 128 + 299 % 128 + 1; ...
    (172, 39518)
    """
    def upto(n: int) -> int:  # keys seen by the queries at positions 0 .. n - 1
        if n <= select:
            return n * (n + 1) // 2
        full, r = divmod(n - select, block)
        return (select * (select + 1) // 2 + (n - select) * (select - block + 1) + full * block * (block - 1) // 2
                + r * (r - 1) // 2)
    return upto(sk) - upto(sk - sq)


def pairs(sq: int, sk: int, *, causal: bool, window: int | None = None, chunk: int | None = None,
          select: int | None = None, compressed: Compressed | None = None, block: int | None = None) -> int:
    """Query-key pairs an attention kernel computes: all Sq x Sk, or (causal) the unmasked ones inside a sliding
    window; with a chunk, those of each chunk (chunk_pairs); with `select`, each query's min(select, visible)
    selected keys (select_pairs). With `compressed`, Sk counts the window's keys, and each query's compressed
    entries are added (strided_pairs)."""
    if compressed is not None:
        extra = strided_pairs(sq, compressed.positions, compressed.stride, compressed.select)
        return extra + (pairs(sq, sk, causal=causal, window=window, chunk=chunk, select=select) if sk else 0)
    if select is not None:
        if window is not None or chunk is not None:
            raise OpgraphError("selected keys (select) do not combine with a sliding window or chunks")
        if block is not None:  # whole blocks selected, the query's own one partly (index-based: always causal)
            return block_select_pairs(sq, sk, select, block)
        return select_pairs(sq, sk, select, causal)
    if chunk is not None:
        return chunk_pairs(sq, sk, chunk, causal)
    return causal_pairs(sq, sk, window) if causal else sq * sk


def newest_first(lengths, rows) -> list:
    """How many of `rows` positions come from each part of a key sequence (cache first, then new: `lengths`), the
    newest first: the count of a kernel that reads only some of the keys (a sparse attention's selection).

    >>> newest_first([100, 1], 8), newest_first([100, 20], 50)
    ([7, 1], [30, 20])
    """
    out, left = [], rows
    for length in reversed(lengths):
        r = minimum(length, left)
        out.insert(0, r)
        left = left - r
    return out


def selected_reads(b: int, sq: int, keys: tuple[Tensor, ...], select: int, width: int) -> tuple:
    """The elements of each key part a sparse attention kernel reads when Sq queries each select their own
    min(select, Sk) keys over a cache (DeepSeek-V3.2's DSA on a prompt chunk or a speculative verify step): every
    key at most once, and no more than the selections hold, min(Sk, Sq x min(select, Sk)) positions (their overlap
    is data-dependent; a chunk of a few thousand queries selects every key), newest first; `width` features each."""
    sk = sum(k.shape[1] for k in keys)
    rows = newest_first([k.shape[1] for k in keys], minimum(sk, sq * key_slots(sk, select=select)))
    return tuple(b * r * width for r in rows)


def key_slots(sk: int, *, chunk: int | None = None, select: int | None = None) -> int:
    """The last dim of the scores over Sk keys: Sk, a chunk's min(chunk, Sk), or the selected min(select, Sk)."""
    if select is not None:
        return minimum(select, sk)
    return sk if chunk is None else minimum(chunk, sk)


def attention_scores(name: str, q: Tensor, keys: tuple[Tensor, ...] | list[Tensor], *, heads: int,
                     kv_heads: int, head_dim: int, causal: bool = False, window: int | None = None,
                     chunk: int | None = None, select: int | None = None, indices: Tensor | None = None,
                     compressed: Compressed | None = None, block: int | None = None, out: str | None = None,
                     role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """S = Q K^T per head. q: [B, Sq, heads*head_dim]; keys: [B, s_i, kv_heads*head_dim] (cache, then new).
    Output [B, heads, Sq, Sk]. FLOPs 2*B*heads*pairs*head_dim, pairs = Sq*Sk: every query head does a full
    product even when it shares its K head (GQA). With `causal`, pairs counts only the unmasked part
    (inside the sliding `window`, if any). With a `chunk` (chunked attention), only each chunk's pairs
    (chunk_pairs), and the output holds a chunk's keys per query: [B, heads, Sq, min(chunk, Sk)]. With `select`
    (sparse attention over the keys an indexer selected, DeepSeek-V3.2's DSA), only each query's
    min(select, visible) keys (select_pairs), output [B, heads, Sq, min(select, Sk)]; `indices` (the selection,
    [B, Sq, min(select, Sk)]) is then read as well. With `compressed` (Compressed: DeepSeek-V4), the last key
    tensors are compressed entries each query sees beside its window (strided_pairs), the selection's entries alone
    where an indexer selects them (`indices` then names them)."""
    _check_heads(name, heads, kv_heads)
    keys = tuple(keys)
    if len(q.shape) != 3 or q.shape[2] != heads * head_dim:
        raise OpgraphError(f"op {name!r}: query {q} must be [batch, positions, heads*head_dim={heads * head_dim}]")
    b, sq, _ = q.shape
    width = kv_heads * head_dim
    sk, slots, tail = _keys_seen(name, q, keys, width, chunk, select, compressed)
    s = _out(out or name, (b, heads, sq, slots), q, role, dtype)
    n = pairs(sq, sk, causal=causal, window=window, chunk=chunk, select=select, compressed=compressed, block=block)
    if indices is not None and select is None and (compressed is None or compressed.select is None):
        raise OpgraphError(f"op {name!r}: indices name selected keys; give `select` as well")
    extra = () if indices is None else (indices,)
    return Op(name, MATMUL, "qk", (q, *keys, *extra), (s,), 2 * b * heads * n * head_dim,
              reads=_selected_reads(b, sq, keys, width, select, compressed, tail, extra))


def _keys_seen(name: str, q: Tensor, keys: tuple, width: int, chunk: int | None, select: int | None,
               compressed: Compressed | None) -> tuple:
    """(the window's key positions Sk, the scores' last dim, the compressed entries' tensors) of an attention op."""
    if compressed is None:
        sk = _key_length(name, q, keys, width)
        return sk, key_slots(sk, chunk=chunk, select=select), ()
    if select is not None or chunk is not None:
        raise OpgraphError(f"op {name!r}: compressed entries do not combine with `select` or chunks")
    window, tail = compressed.split(name, keys)
    sk = _key_length(name, q, window, width)
    return sk, sk + compressed.slots(_key_length(name, q, tail, width)), tail


def _selected_reads(b: int, sq: int, keys: tuple, width: int, select: int | None, compressed: Compressed | None,
                    tail: tuple, extra: tuple) -> tuple | None:
    """The elements an attention op reads of each key tensor where it reads only a selection (selected_reads): of
    all its keys under `select` over a cache, of the compressed entries where an indexer selects them; None: all."""
    if select is not None and len(keys) > 1:
        return (None, *selected_reads(b, sq, keys, select, width), *(None for _ in extra))
    if compressed is not None and compressed.select is not None:
        window = (None,) * (len(keys) - len(tail))
        return (None, *window, *selected_reads(b, sq, tail, compressed.select, width), *(None for _ in extra))
    return None


def attention_values(name: str, p: Tensor, values: tuple[Tensor, ...] | list[Tensor], *, heads: int,
                     kv_heads: int, head_dim: int, causal: bool = False, window: int | None = None,
                     chunk: int | None = None, select: int | None = None, value_width: int | None = None,
                     compressed: Compressed | None = None, block: int | None = None, out: str | None = None,
                     role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """O = P V per head. p: [B, heads, Sq, Sk]; values: [B, s_i, kv_heads*head_dim] summing to Sk.
    Output [B, Sq, heads*head_dim]. FLOPs 2*B*heads*pairs*head_dim, pairs as in attention_scores (with `select`:
    each query's selected keys only).
    With `value_width`, each value tensor is [B, s_i, value_width] and only its first kv_heads*head_dim
    features are read: MLA's absorbed decode uses the cached [latent | rope key] entries as V, whose
    latent part is the value (DeepSeek-V2 paper, section 2.1.2). `compressed`: as attention_scores."""
    _check_heads(name, heads, kv_heads)
    values = tuple(values)
    if len(p.shape) != 4 or p.shape[1] != heads:
        raise OpgraphError(f"op {name!r}: probabilities {p} must be [batch, heads={heads}, queries, keys]")
    b, _, sq, _ = p.shape
    width = kv_heads * head_dim
    if value_width is not None and value_width < width:
        raise OpgraphError(f"op {name!r}: value_width {value_width} is narrower than kv_heads*head_dim={width}")
    if value_width is not None and compressed is not None:
        raise OpgraphError(f"op {name!r}: value_width does not combine with compressed entries")
    sk, slots, tail = _keys_seen(name, p, values, value_width or width, chunk, select, compressed)
    if p.shape[3] != slots:
        raise OpgraphError(f"op {name!r}: values cover {sk} positions but the probabilities {p} have "
                           f"{p.shape[3]} keys")
    o = _out(out or name, (b, sq, heads * head_dim), p, role, dtype)
    n = pairs(sq, sk, causal=causal, window=window, chunk=chunk, select=select, compressed=compressed, block=block)
    reads = None if value_width is None else (None, *(v.shape[0] * v.shape[1] * width for v in values))
    # over a cache, a selection's values only (selected_reads)
    reads = _selected_reads(b, sq, values, width, select, compressed, tail, ()) or reads
    return Op(name, MATMUL, "av", (p, *values), (o,), 2 * b * heads * n * head_dim, reads=reads)


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
SOFTCAP_FLOPS_PER_ELEM = 3  # cap * tanh(x / cap): divide, tanh, multiply (Gemma-2's soft-capping)
SINK_FLOPS_PER_ROW = 3  # a sink logit joins the row's max, exp and sum (gpt-oss's attention sinks)
# ALiBi (Press et al., 2022; BLOOM, MPT): slope x (key - query position) added to a score, a multiply and an add, as
# FlashAttention's apply_alibi computes it in registers from the head's slope and the positions
ALIBI_FLOPS_PER_ELEM = 2
ELEMENTWISE_FLOPS_PER_ELEM = {
    "add": 1,
    "mul": 1,
    "silu": 4,  # x / (1 + exp(-x)): negate, exp, add, divide
    "gelu": 8,  # tanh form 0.5x(1 + tanh(c(x + 0.044715x^3))): cube, 2 mul, add, mul, tanh, add, mul
    "relu": 1,  # max(x, 0): one compare (OPT's MLP)
    "relu2": 2,  # squared ReLU, max(x, 0)^2 (So et al., 2021, Primer; Nemotron-4's MLP): compare, multiply
    "sigmoid": 4,  # 1 / (1 + exp(-x)): negate, exp, add, divide (an output or shared-expert gate)
    "softcap": 3,  # cap * tanh(x / cap) (Gemma-2's final_logit_softcapping)
    "tanh": 1,  # one transcendental (Gemma-3n's AltUp router)
    # gpt-oss's clamped SwiGLU of (gate, up), from its reference code (openai/gpt-oss, torch/model.py swiglu):
    # clamp gate (1), clamp up both sides (2), gate * alpha (1), sigmoid (4), times gate (1), up + 1 (1), times (1)
    "clamp_swiglu": 11,
    # DeepSeek-V4's SwiGLU with swiglu_limit (its reference inference/model.py Expert): gate clamped above (1), up
    # clamped both sides (2), silu (4), times up (1)
    "limit_swiglu": 8,
    # Kimi-K3's SiTU of (gate, up) (its modeling_kimi_linear.py SituAndMul, fp32): beta tanh(gate / beta) (a soft cap,
    # 3) times sigmoid(gate) (4, and the multiply 1), times linear_beta tanh(up / linear_beta) (3, and 1)
    "situ": 12,
    # DeepSeek-V4's router scores, sqrt(softplus(x)) = sqrt(log(1 + exp(x))): exp, add, log, sqrt
    "sqrt_softplus": 4,
    # Apertus's xIELU (transformers' XIELUActivation, vLLM's XIELU._xielu_python, which torch.compile fuses):
    # where(x > 0, ap x x + beta x, (expm1(min(x, eps)) - x) an + beta x), both branches computed: compare (1),
    # x x, times ap, beta x, add (4), min, expm1, subtract, times an, add (5), select (1)
    "xielu": 11,
}
ELEMENTWISE_ARITY = {"add": 2, "mul": 2, "silu": 1, "gelu": 1, "relu": 1, "tanh": 1, "relu2": 1, "sigmoid": 1, "softcap": 1,
                     "clamp_swiglu": 2, "limit_swiglu": 2, "situ": 2, "sqrt_softplus": 1, "xielu": 1}
# exp in SiLU's and the sigmoids, tanh in GELU's tanh form and the soft cap
ELEMENTWISE_TRANSCENDENTALS = {"silu": 1, "gelu": 1, "tanh": 1, "sigmoid": 1, "softcap": 1, "clamp_swiglu": 1, "limit_swiglu": 1,
                               "situ": 3, "sqrt_softplus": 2, "xielu": 1}
ROPE_FLOPS_PER_ELEM = 3  # x*cos + rotate_half(x)*sin: 2 multiplies and 1 add per rotated element
# Norms over the last dim d, from the definitions in the PyTorch docs (torch.nn.RMSNorm, torch.nn.LayerNorm):
#   RMSNorm:   per element square, accumulate, scale by 1/rms, multiply by gamma        -> 4
#              per row     divide by d, add eps, rsqrt                                 -> 3
#   LayerNorm: per element accumulate, subtract mean, square, accumulate, scale by 1/sigma, gamma (+ beta) -> 6 (+1)
#              per row     two divides by d, add eps, rsqrt                            -> 4
NORM_FLOPS = {"rmsnorm": (4, 3), "layernorm": (6, 4)}


def softmax(name: str, x: Tensor, *, causal: bool = False, window: int | None = None, keys: int | None = None,
            chunk: int | None = None, select: int | None = None, sinks: Tensor | None = None, softcap: bool = False,
            compressed: Compressed | None = None, block: int | None = None, alibi: Tensor | None = None,
            out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Softmax over the last dim; FLOPs 5 per element. With `causal` or a `chunk`, x is attention scores
    [B, heads, Sq, *] over `keys` key positions (default the last dim) and only the pairs the kernel computes are
    counted (`pairs`): a causal FlashAttention kernel never computes the masked exponentials. With `select`
    (sparse attention over selected keys), x is [B, heads, Sq, min(select, Sk)] and each query's selected keys are
    counted (select_pairs over `keys` = Sk key positions: pass it, the scores' last dim is the selection's).
    `softcap` (Gemma-2's attn_logit_softcapping): each score first becomes cap * tanh(score / cap), 3 FLOPs and one
    exponential more per score. `sinks` (gpt-oss): one learned logit per head [heads] joins every row's
    normalization (its max, exp and sum: 3 FLOPs and one exponential per row) and takes no value. `compressed`
    (DeepSeek-V4): each query's compressed entries beside its window's `keys` key positions (strided_pairs).
    `alibi` (BLOOM, MPT): the slopes, one per head [heads]; each score first gets slope x its distance added,
    ALIBI_FLOPS_PER_ELEM more per score."""
    y = _out(out or name, x.shape, x, role, dtype)
    if causal or chunk is not None or select is not None or compressed is not None:
        if len(x.shape) != 4:
            raise OpgraphError(f"op {name!r}: masked scores must be [batch, heads, queries, keys], got {x}")
        b, heads, sq, sk = x.shape
        elements = b * heads * pairs(sq, sk if keys is None else keys, causal=causal, window=window, chunk=chunk,
                                     select=select, compressed=compressed, block=block)
    else:
        elements = x.numel
    flops, exps = SOFTMAX_FLOPS_PER_ELEM * elements, elements
    if softcap:
        flops, exps = flops + SOFTCAP_FLOPS_PER_ELEM * elements, exps + elements
    inputs = (x,)
    if sinks is not None:
        if len(x.shape) != 4 or sinks.shape != (x.shape[1],):
            raise OpgraphError(f"op {name!r}: sinks {sinks} must hold one logit per head of the scores {x}")
        rows = x.numel // x.shape[-1]
        flops, exps, inputs = flops + SINK_FLOPS_PER_ROW * rows, exps + rows, (x, sinks)
    if alibi is not None:
        if len(x.shape) != 4 or alibi.shape != (x.shape[1],):
            raise OpgraphError(f"op {name!r}: ALiBi slopes {alibi} must hold one slope per head of the scores {x}")
        flops, inputs = flops + ALIBI_FLOPS_PER_ELEM * elements, (*inputs, alibi)
    return Op(name, SOFTMAX, "softmax", inputs, (y,), flops, transcendentals=exps)


def norm(name: str, x: Tensor, weight: Tensor | None, *, bias: Tensor | None = None, fn: str = "rmsnorm",
         heads: int = 1, out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """RMSNorm or LayerNorm over the last dim, with a scale (and for LayerNorm an optional shift); `weight` None:
    no scale (Llama-4's weightless L2 norm of q and k), one multiply per element fewer. With `heads`, each of the
    last dim's `heads` equal slices is normalized on its own (Qwen3's per-head q and k norms), with one scale of a
    slice's width shared by all, or a scale of the whole width, each slice its own (Command R+'s q and k norms);
    either way one multiply per element."""
    if fn not in NORM_FLOPS:
        raise OpgraphError(f"op {name!r}: unknown norm {fn!r}; valid: {', '.join(NORM_FLOPS)}")
    if x.shape[-1] % heads:
        raise OpgraphError(f"op {name!r}: {x} does not split into {heads} heads")
    d = x.shape[-1] // heads
    for p in (weight, bias):
        if p is not None and p.shape not in ((d,), (x.shape[-1],)):
            raise OpgraphError(f"op {name!r}: parameter {p} must have shape ({d},)"
                               + (f" or ({x.shape[-1]},)" if heads > 1 else ""))
    per_elem, per_row = NORM_FLOPS[fn]
    per_elem += (bias is not None) - (weight is None)
    inputs = (x, *(p for p in (weight, bias) if p is not None))
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, NORM, fn, inputs, (y,), per_elem * x.numel + per_row * _rows(x) * heads)


# RMSNorm split where a row's elements lie on several GPUs (vLLM's MiniMaxText01RMSNormTP): each sums its squares,
# the sums are all-reduced, each applies the norm to its own columns. The two halves are RMSNorm's FLOPs exactly.
RMS_STATS, RMS_APPLY = register_function("rms_stats"), register_function("rms_apply")
RMS_STATS_FLOPS = 2  # per element: square, accumulate


def rms_stats(name: str, x: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION,
              dtype: DType | None = None) -> Op:
    """The sum of squares of each row of x [..., d] -> [..., 1]: RMSNorm's statistics over one GPU's columns of a
    row split across GPUs, all-reduced before rms_apply uses them. FLOPs 2 per element (RMS_STATS_FLOPS)."""
    y = _out(out or name, (*x.shape[:-1], 1), x, role, dtype)
    return Op(name, NORM, RMS_STATS, (x,), (y,), RMS_STATS_FLOPS * x.numel)


def rms_apply(name: str, x: Tensor, stats: Tensor, weight: Tensor, *, out: str | None = None,
              role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """x [..., d] RMS-normalized by `stats` [..., 1], the sum of squares of each whole row (rms_stats, summed over
    the GPUs), and scaled by `weight` [d] (this GPU's slice of the scale). FLOPs: RMSNorm's per element less
    rms_stats' (the multiply by the reciprocal root, the scale), and RMSNorm's per row (the mean, + eps, the
    reciprocal root), so that the two together are RMSNorm's (NORM_FLOPS)."""
    if stats.shape != (*x.shape[:-1], 1):
        raise OpgraphError(f"op {name!r}: stats {stats} must be {x} with a last dim of 1")
    if weight.shape != (x.shape[-1],):
        raise OpgraphError(f"op {name!r}: weight {weight} must have shape ({x.shape[-1]},)")
    per_elem, per_row = NORM_FLOPS["rmsnorm"]
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, NORM, RMS_APPLY, (x, stats, weight), (y,), (per_elem - RMS_STATS_FLOPS) * x.numel + per_row * _rows(x))


def elementwise(name: str, fn: str, *inputs: Tensor, params: tuple[Tensor, ...] = (), out: str | None = None,
                role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """add / mul of same-shaped tensors, or silu / gelu / relu / relu2 of one; FLOPs per element from the table above.
    `params`: scalars the function reads (xIELU's learned alpha_p, alpha_n, beta, eps), one value each."""
    if fn not in ELEMENTWISE_FLOPS_PER_ELEM:
        raise OpgraphError(f"op {name!r}: unknown elementwise function {fn!r}; "
                           f"valid: {', '.join(ELEMENTWISE_FLOPS_PER_ELEM)} (add one with "
                           f"opgraph.core.ops.register_elementwise)")
    arity = ELEMENTWISE_ARITY[fn]
    if len(inputs) != arity:
        raise OpgraphError(f"op {name!r}: {fn} takes {counted(arity, 'input')}, got {len(inputs)}")
    for t in inputs[1:]:
        _same_shape(name, inputs[0], t)
    for p in params:
        if p.numel != 1:
            raise OpgraphError(f"op {name!r}: {fn}'s parameters are scalars, got {p}")
    x = inputs[0]
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, fn, (*inputs, *params), (y,), ELEMENTWISE_FLOPS_PER_ELEM[fn] * x.numel,
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
                   weight_reads: int | None = None, bias: Tensor | None = None, out: str | None = None,
                   role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """A separate [out_dim, in_dim] matrix per group, all blocks of `w`: per attention head (MLA's
    absorbed up-projections) or per routed expert slot (a token's k experts). x is [..., groups*in_dim],
    or [..., in_dim] when every group reads the same input (a token's features go to each of its
    experts). Output [..., groups*out_dim]. FLOPs 2*M*groups*in_dim*out_dim, M = rows of x (the same
    2*M*N*K per group as `linear`). Reads `weight_reads` elements of w (default groups*in_dim*out_dim:
    one block per group; MoE passes the expected distinct experts touched). `bias` [blocks, out_dim] (gpt-oss's
    expert biases): an add per output element, reading the bias rows of the blocks it reads."""
    if x.shape[-1] not in (in_dim, groups * in_dim):
        raise OpgraphError(f"op {name!r}: input {x} must end in in_dim={in_dim} or groups*in_dim={groups * in_dim}")
    reads = groups * in_dim * out_dim if weight_reads is None else weight_reads
    if not 0 < reads <= w.numel:
        raise OpgraphError(f"op {name!r}: weight {w} has {w.numel} elements; cannot read {reads}")
    y = _out(out or name, (*x.shape[:-1], groups * out_dim), x, role, dtype)
    flops = 2 * _rows(x) * groups * in_dim * out_dim
    if bias is None:
        return Op(name, MATMUL, "linear", (x, w), (y,), flops, reads=(None, reads))
    if bias.shape != (w.shape[0], out_dim):
        raise OpgraphError(f"op {name!r}: bias {bias} must be [{w.shape[0]}, {out_dim}], one row per block of {w}")
    return Op(name, MATMUL, "linear", (x, w, bias), (y,), flops + _rows(x) * groups * out_dim,
              reads=(None, reads, reads // in_dim))


def multi_linear(name: str, x: Tensor, weights: tuple[Tensor, ...] | list[Tensor], *, outs: tuple[str, ...] | list[str],
                 role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """One kernel applying several [N_i, K] weights to the same x: y_i = x @ W_i^T, one output each
    (a checkpoint matrix whose row blocks feed different ops, e.g. MLA's kv_a_proj_with_mqa = latent rows
    + rope-key rows). FLOPs: the sum of each `linear`'s 2*M*N_i*K; x is read once."""
    if len(weights) != len(outs) or not weights:
        raise OpgraphError(f"op {name!r}: give one output name per weight")
    parts = [linear(name, x, w, out=o, role=role, dtype=dtype) for w, o in zip(weights, outs)]
    return Op(name, MATMUL, "linear", (x, *weights), tuple(p.outputs[0] for p in parts), sum(p.flops for p in parts))


def top_k(name: str, scores: Tensor, *, k: int, groups: int = 1, renormalize: bool = False, scaled: bool = False,
          expert_scale: Tensor | None = None, lookup: Tensor | None = None, out: str | None = None,
          role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """MoE routing: keep the k largest of E scores per token, [..., E] -> [..., k] (their weights; which
    experts they name is part of the result). FLOPs: one comparison per score, as softmax counts its max.
    Group-limited routing (DeepSeek-V3's n_group / topk_group, `groups` > 1) first scores each group by the sum of
    its two best (E comparisons and `groups` adds per token) and keeps the best groups (`groups` comparisons):
    E + 2 x groups more. `renormalize` (norm_topk_prob): the k weights divided by their sum, 2k per token;
    `scaled` (routed_scaling_factor): k multiplies per token, folded into the weights as vLLM does;
    `expert_scale` [E] (Gemma-4's per_expert_scale): each kept weight times its expert's scale, k more.
    `lookup` [..., k] (DeepSeek-V4's hash-routed layers: each token's experts looked up by its id, tid2eid): the
    experts are given, so no score is compared; their k weights are taken from the scores (and renormalized,
    scaled) as above."""
    experts = scores.shape[-1]
    if not 0 < k <= experts:
        raise OpgraphError(f"op {name!r}: k={k} must be between 1 and the {experts} scores")
    if expert_scale is not None and expert_scale.shape != (experts,):
        raise OpgraphError(f"op {name!r}: expert_scale {expert_scale} must have one value per expert ({experts})")
    if lookup is not None and (lookup.shape != (*scores.shape[:-1], k) or groups > 1):
        raise OpgraphError(f"op {name!r}: looked-up experts {lookup} must be [..., k={k}] of the scores {scores}, "
                           f"without groups")
    y = _out(out or name, (*scores.shape[:-1], k), scores, role, dtype)
    compared = experts + (experts + 2 * groups if groups > 1 else 0) if lookup is None else 0
    per_token = compared + 2 * k * renormalize + k * scaled + k * (expert_scale is not None)
    inputs = (scores, *(t for t in (expert_scale, lookup) if t is not None))
    reads = None if lookup is None else (_rows(scores) * k, *(None for t in inputs[1:]))
    return Op(name, GATHER, "topk", inputs, (y,), _rows(scores) * per_token, reads=reads)


# --- DeepSeek-V3.2's sparse attention (DSA): the lightning indexer and the selected keys --------------------
# From the reference inference code (deepseek-ai/DeepSeek-V3.2-Exp, inference/model.py Indexer and MLA,
# inference/kernel.py fp8_index_kernel) and vLLM's (deepseek_v2.py Indexer, sparse_attn_indexer).
HADAMARD = register_function("hadamard")
INDEX_SCORES = register_function("index_scores")
GATHER_SELECTED = register_function("gather_selected")
# fp8_index per query-key pair and head, after the dot product: ReLU (max(logit, 0)) and the weight multiply.
INDEX_FLOPS_PER_HEAD_PAIR = 2
# Per query and head, before the kernel: weights * n_heads^-0.5, * q's fp8 scale, * softmax_scale (head_dim^-0.5).
INDEX_WEIGHT_FLOPS = 3


def hadamard(name: str, x: Tensor, *, dim: int, out: str | None = None, role: Role = Role.ACTIVATION,
             dtype: DType | None = None) -> Op:
    """The fast Walsh-Hadamard transform of every `dim`-wide slice of x [..., n*dim], scaled by dim^-1/2
    (DeepSeek-V3.2's rotate_activation of the indexer's q and k: fast_hadamard_transform's hadamard_transform).
    FLOPs (log2(dim) + 1) per element: one add or subtract per butterfly stage, then the scale. Kind elementwise."""
    if not is_int(dim) or dim < 2 or dim & (dim - 1) or x.shape[-1] % dim:
        raise OpgraphError(f"op {name!r}: dim {dim} must be a power of two that divides the last dim of {x}")
    y = _out(out or name, x.shape, x, role, dtype)
    stages = dim.bit_length() - 1  # log2(dim)
    return Op(name, ELEMENTWISE, HADAMARD, (x,), (y,), (stages + 1) * x.numel)


def index_scores(name: str, q: Tensor, keys: tuple[Tensor, ...] | list[Tensor], weights: Tensor, *, heads: int,
                 head_dim: int, causal: bool = False, stride: int | None = None, positions: int | None = None,
                 out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """DeepSeek-V3.2's lightning indexer scores, one kernel as fp8_index (reference) and DeepGEMM's
    fp8_mqa_logits (vLLM) run it: for each query t and key s, I[t, s] = sum over heads j of w[t, j] *
    ReLU(q[t, j] . k[s]). q: [B, Sq, heads*head_dim]; keys: [B, s_i, head_dim] (one key per position shared by
    every head, cache then new); weights: [B, Sq, heads] (weights_proj's output). Output [B, Sq, Sk].

    FLOPs: per query-key pair computed, 2*heads*head_dim for the dot products, then per head ReLU and the weight
    multiply (2*heads), the head sum (heads - 1) and the key's fp8 scale (1): 2*H*D + 3*H; plus, per query and head,
    the weight's three scalings (n_heads^-1/2, q's fp8 scale, softmax_scale):
    B * (pairs * (2*H*D + 3*H) + 3*Sq*H). pairs as `pairs`: Sq*Sk, or with `causal` the unmasked ones (a kernel
    given each query's key range, as vLLM's; the reference computes all Sq*Sk and masks). With `stride` (DeepSeek-V4's
    indexer, over compressed keys each pooling `stride` of the sequence's `positions`), the query at position p
    scores the (p + 1) // stride keys complete by then (strided_pairs). Kind matmul: the dot products run on the
    tensor cores."""
    keys = tuple(keys)
    if len(q.shape) != 3 or q.shape[2] != heads * head_dim:
        raise OpgraphError(f"op {name!r}: query {q} must be [batch, positions, heads*head_dim={heads * head_dim}]")
    b, sq, _ = q.shape
    if weights.shape != (b, sq, heads):
        raise OpgraphError(f"op {name!r}: weights {weights} must be [batch={b}, positions={sq}, heads={heads}]")
    sk = _key_length(name, q, keys, head_dim)
    n = pairs(sq, sk, causal=causal) if stride is None else strided_pairs(sq, positions, stride)
    # dot products, ReLU and weight per head, the heads - 1 adds of the head sum, the key's fp8 scale
    per_pair = 2 * heads * head_dim + INDEX_FLOPS_PER_HEAD_PAIR * heads + (heads - 1) + 1
    y = _out(out or name, (b, sq, sk), q, role, dtype)
    return Op(name, MATMUL, INDEX_SCORES, (q, *keys, weights), (y,),
              b * (n * per_pair + INDEX_WEIGHT_FLOPS * sq * heads))


BLOCK_SCORES = register_function("block_scores")


def block_scores(name: str, q: Tensor, keys: tuple[Tensor, ...] | list[Tensor], *, heads: int, head_dim: int,
                 block: int, positions: int, out: str | None = None, role: Role = Role.ACTIVATION,
                 dtype: DType | None = None) -> Op:
    """MiniMax-M3's block scores (vLLM's minimax_m3 indexer and index_topk, SGLang's MiniMaxSparseAttnBackend): for
    each query, index head h and block of `block` keys, the largest dot product q_h . k over the block's keys (one
    index key a position, shared by the heads; no ReLU, no weights). q: [B, Sq, heads*head_dim]; keys [B, s_i,
    head_dim] (cache, then new), `positions` of them after the step. Output [B, Sq, heads * blocks] (fp32), blocks =
    ceil(positions / block). The kernels load whole blocks and mask after the products, so the query at position p
    scores block * ceil((p + 1) / block) keys: per key and head the dot product (2*head_dim) and the max (1).
    Kind matmul."""
    keys = tuple(keys)
    if len(q.shape) != 3 or q.shape[2] != heads * head_dim:
        raise OpgraphError(f"op {name!r}: query {q} must be [batch, positions, heads*head_dim={heads * head_dim}]")
    b, sq, _ = q.shape
    _key_length(name, q, keys, head_dim)

    def upto(n: int) -> int:  # sum of ceil(j / block) over j = 1 .. n
        full, r = divmod(n, block)
        return block * full * (full + 1) // 2 + r * (full + 1)
    scored = block * (upto(positions) - upto(positions - sq))
    y = _out(out or name, (b, sq, heads * ((positions + block - 1) // block)), q, role, dtype)
    return Op(name, MATMUL, BLOCK_SCORES, (q, *keys), (y,), b * heads * scored * (2 * head_dim + 1))


CANDIDATE_BLOCKS = register_function("candidate_blocks")
CANDIDATE_MASK = register_function("candidate_mask")


def candidate_blocks(name: str, scores: Tensor, *, block: int, keep: int, out: str | None = None,
                     role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """DeepSeek-V4.1's first selection level (its reference inference/model.py Indexer, candidate_source_layer_id):
    the index scores [B, Sq, E] of E entries taken in blocks of `block`, each block scored by its largest, and the
    best `keep` blocks kept for each query (the newest block among them). Output [B, Sq, min(keep, blocks)], the
    blocks' numbers (int32 unless `dtype`), which later layers' scores are masked to (candidate_mask). FLOPs per
    query: one comparison per score (the blocks' maxima) and one per block (their top-k, as top_k counts it).
    Kind gather, as top_k."""
    if len(scores.shape) != 3 or not is_int(block) or block < 1 or not is_int(keep) or keep < 1:
        raise OpgraphError(f"op {name!r}: scores {scores} must be [batch, queries, entries], with a positive block "
                           f"and count kept")
    bsz, sq, entries = scores.shape
    blocks = -(-entries // block)
    y = _out(out or name, (bsz, sq, minimum(keep, blocks)), scores, role, dtype or INT32)
    return Op(name, GATHER, CANDIDATE_BLOCKS, (scores,), (y,), bsz * sq * (entries + blocks))


def candidate_mask(name: str, scores: Tensor, candidates: Tensor, *, out: str | None = None,
                   role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Index scores [B, Sq, E] with every entry outside a query's candidate blocks (candidates [B, Sq, k], an
    earlier layer's candidate_blocks) set to minus infinity before the top-k (DeepSeek-V4.1's reference Indexer,
    which scores every entry and then masks). FLOPs: one select per score. Kind elementwise."""
    if len(candidates.shape) != 3 or candidates.shape[:2] != scores.shape[:2]:
        raise OpgraphError(f"op {name!r}: candidates {candidates} must be [batch, queries, k] for scores {scores}")
    y = _out(out or name, scores.shape, scores, role, dtype)
    return Op(name, ELEMENTWISE, CANDIDATE_MASK, (scores, candidates), (y,), scores.numel)


def gather_selected(name: str, keys: tuple[Tensor, ...] | list[Tensor], indices: Tensor, *,
                    value_dim: int | None = None, out: str | None = None, outs: list[str] | None = None,
                    role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """The cache entries a decode step's query selected (DSA: the indexer's top-k), gathered for attention over
    them alone. keys: [B, s_i, W] (cache, then the new token's entry); indices: [B, 1, k] (one query per
    sequence), k <= the positions. Output [B, k, W]; with `value_dim`, also the first value_dim features of the
    same rows [B, k, value_dim] (MLA's latent, the values of absorbed attention; name the two with `outs`), so
    each output has its one reader and a plan can fuse the gather into the attention kernel, as FlashMLA's
    sparse decode kernel reads the selected entries itself. No FLOPs. Reads the k selected rows of W and the
    indices: the new token's own entry (its key is among the selected) and k - 1 cached ones, newest first
    across the parts."""
    keys = tuple(keys)
    if len(indices.shape) != 3 or indices.shape[0] != keys[0].shape[0] or indices.shape[1] != 1:
        raise OpgraphError(f"op {name!r}: indices {indices} must be [batch, 1, k]: one query per sequence")
    b, _, k = indices.shape
    width = keys[0].shape[-1]
    sk = _key_length(name, indices, keys, width)
    if k > sk:
        raise OpgraphError(f"op {name!r}: cannot select {k} of {sk} positions")
    if value_dim is not None and not 0 < value_dim <= width:
        raise OpgraphError(f"op {name!r}: value_dim {value_dim} must be between 1 and the width {width}")
    reads = [b * r * width for r in newest_first([part.shape[1] for part in keys], k)]
    names = list(outs) if outs else [out or name] + ([f"{name}.values"] if value_dim else [])
    if len(names) != 1 + (value_dim is not None):
        raise OpgraphError(f"op {name!r}: give {counted(1 + (value_dim is not None), 'output name')}")
    ys = [_out(names[0], (b, k, width), keys[0], role, dtype)]
    if value_dim is not None:
        ys.append(_out(names[1], (b, k, value_dim), keys[0], role, dtype))
    return Op(name, GATHER, GATHER_SELECTED, (*keys, indices), tuple(ys), 0, reads=(*reads, None))


def scale(name: str, x: Tensor, factor: Tensor | None = None, *, out: str | None = None, role: Role = Role.ACTIVATION,
          dtype: DType | None = None) -> Op:
    """x [..., d] times one scalar per row: `factor` [..., 1] (a shared expert's sigmoid gate), one per group of a
    row's d, `factor` [..., g] with g dividing d (Step-3.5's gate per attention head), one learned scalar for all of
    x, `factor` [1] (Gemma-4's layer_scalar), one learned value a feature, `factor` [d] (Gemma-3n's
    correct_output_scale), or one computed in the kernel from the position (Llama-4's attention temperature on NoPE
    layers). FLOPs 1 per element."""
    grouped = factor is not None and factor.shape[:-1] == x.shape[:-1] and x.shape[-1] % factor.shape[-1] == 0
    if factor is not None and factor.shape not in ((1,), (x.shape[-1],)) and not grouped:
        raise OpgraphError(f"op {name!r}: factor {factor} must be {x} with a last dim of 1 or of a divisor of "
                           f"{x.shape[-1]}, one scalar [1], or one a feature [{x.shape[-1]}]")
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, "scale", (x,) if factor is None else (x, factor), (y,), x.numel)


def slice_last(name: str, x: Tensor, width: int, *, out: str | None = None, role: Role = Role.ACTIVATION,
               dtype: DType | None = None) -> Op:
    """Keep `width` of the last dim's features (one GPU's columns after a whole-width op): reads only those."""
    if not 0 < width <= x.shape[-1]:
        raise OpgraphError(f"op {name!r}: cannot keep {width} of the {x.shape[-1]} features of {x}")
    y = _out(out or name, (*x.shape[:-1], width), x, role, dtype)
    return Op(name, GATHER, "slice", (x,), (y,), 0, reads=(_rows(x) * width,))


PAD = register_function("pad")


def pad_last(name: str, x: Tensor, width: int, *, out: str | None = None, role: Role = Role.ACTIVATION,
             dtype: DType | None = None) -> Op:
    """x with zeros appended to its last dim, up to `width` features (query heads padded to a kernel's head count,
    DeepSeek-V4's FlashMLA sparse attention): reads x, writes the padded copy. No FLOPs."""
    if not x.shape[-1] <= width:
        raise OpgraphError(f"op {name!r}: cannot pad the {x.shape[-1]} features of {x} to {width}")
    y = _out(out or name, (*x.shape[:-1], width), x, role, dtype)
    return Op(name, GATHER, PAD, (x,), (y,), 0)


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
# time is a latency per step plus its wire bytes over the link (an alpha-beta model, opgraph.pricing.cost).

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


def all_to_all(name: str, x: Tensor, *, group: int, shape: tuple[int, ...] | None = None, out: str | None = None,
               role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Each GPU sends a 1/n part of x to every other GPU (expert-parallel dispatch and combine): (n-1)/n of the
    buffer, in n-1 pairwise steps. `shape`: the output's, where the exchange regroups the same elements (each GPU's
    columns of every token in, every column of its tokens out); default x's."""
    n = group
    if shape is not None and math.prod(shape) != x.numel:
        raise OpgraphError(f"op {name!r}: an exchange keeps the elements of {x}; {shape} holds {math.prod(shape)}")
    return _collective(name, "all_to_all", x, shape or x.shape, n, (n - 1) * x.nbytes, n - 1, 0, out, role, dtype)


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


# --- State-space and linear-attention layers (Mamba-2, Gated DeltaNet) ------------------------------------
# Their cache is a fixed-size recurrent state (role STATE), read by a decode step and written whole by every step,
# whatever the context. Counts follow the reference kernels the serving engines run (vLLM, SGLang and
# transformers' fast paths all call them), operation by operation, as exact integers; exp and log count as
# transcendentals (sqrt and rsqrt do not, as `norm` counts them). Each form reads its inputs whole and writes its
# outputs whole (the default byte rule): the per-chunk states that the chunked kernels pass between their own
# launches are not counted as memory traffic.
CONV1D = register_function("conv1d")
SSD_CHUNKED, SSD_RECURRENT = register_function("ssd_chunked"), register_function("ssd_recurrent")
DELTA_CHUNKED, DELTA_RECURRENT = register_function("gated_delta_chunked"), register_function("gated_delta_recurrent")
GATED_RMSNORM = register_function("gated_rmsnorm")
SOFTPLUS_FLOPS = 3  # log(1 + exp(x)): exp, add, log (2 transcendentals), as the kernels' softplus computes it
SIGMOID_FLOPS = 4  # 1 / (1 + exp(-x)): negate, exp, add, divide (1 transcendental)


def chunk_sums(t, chunk: int) -> tuple:
    """(chunks, sum of q^2, sum of q^3) over a t-position sequence cut into chunks of `chunk` positions, the last
    one shorter (q: each chunk's length; the kernels limit the last chunk to the positions it has). Arithmetic
    only, so a sweep traces it."""
    full = t // chunk
    rest = t - full * chunk
    return (t + chunk - 1) // chunk, full * chunk * chunk + rest * rest, full * chunk ** 3 + rest ** 3


def _new_state(name: str, out: str | None, shape: tuple, state: Tensor | None, like: Tensor,
               dtype: DType | None) -> Tensor:
    """The state a stateful op writes (role STATE): shaped as the one it reads, if any, and at `dtype` (default:
    the read state's, else the input's)."""
    if state is not None and state.shape != shape:
        raise OpgraphError(f"op {name!r}: state {state} must have shape {shape}")
    return Tensor(out or f"{name}.state", shape, dtype or (state if state is not None else like).dtype, Role.STATE)


def causal_conv1d(name: str, x: Tensor, weight: Tensor, *, bias: Tensor | None = None, state: Tensor | None = None,
                  out: str | None = None, state_out: str | None = None, role: Role = Role.ACTIVATION,
                  dtype: DType | None = None, state_dtype: DType | None = None) -> Op:
    """Depthwise causal conv1d along the positions, kernel K per channel (Mamba's and Gated DeltaNet's short
    convolution; the causal-conv1d package's causal_conv1d_fn in prefill, causal_conv1d_update in decode).
    x: [B, S, C]; weight: [C, K] or the checkpoint's nn.Conv1d shape [C, 1, K]; bias [C]; `state`: the K-1 inputs
    before this step, [B, K-1, C] (decode; a prefill starts from zeros). Outputs: y [B, S, C] and the new conv
    state [B, K-1, C] (role STATE: the last K-1 inputs, as vLLM keeps it; transformers keeps K), written whole.
    FLOPs 2*K per output element (a multiply-add per tap), plus 1 for the bias: B*S*C*(2K + 1). Kind elementwise:
    a depthwise filter never reduces across channels, so it runs on the vector units, not the tensor cores."""
    if len(x.shape) != 3:
        raise OpgraphError(f"op {name!r}: input {x} must be [batch, positions, channels]")
    bsz, s, c = x.shape
    if weight.shape not in ((c, weight.shape[-1]), (c, 1, weight.shape[-1])) or weight.shape[-1] < 2:
        raise OpgraphError(f"op {name!r}: weight {weight} must be [channels={c}, K] or [{c}, 1, K] with K >= 2")
    k = weight.shape[-1]
    new = _new_state(name, state_out, (bsz, k - 1, c), state, x, state_dtype)
    inputs = [x, weight]
    per_elem = 2 * k
    if bias is not None:
        if bias.shape != (c,):
            raise OpgraphError(f"op {name!r}: bias {bias} must have shape ({c},)")
        inputs.append(bias)
        per_elem += 1
    if state is not None:
        inputs.append(state)
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, CONV1D, inputs, (y, new), per_elem * x.numel)


def ssd_scan(name: str, xbc: Tensor, dt: Tensor, a_log: Tensor, d: Tensor, dt_bias: Tensor, *, heads: int,
             head_dim: int, d_state: int, groups: int, recurrent: bool, chunk_size: int = 256,
             state: Tensor | None = None, out: str | None = None, state_out: str | None = None,
             role: Role = Role.ACTIVATION, dtype: DType | None = None, state_dtype: DType | None = None) -> Op:
    """Mamba-2's SSD layer (Dao & Gu 2024, "Transformers are SSMs", arXiv 2405.21060): per head h, with dt_t =
    softplus(dt_t + dt_bias), A = -exp(A_log) and a state of P x N (head_dim x d_state),
    state_t = exp(dt_t*A) * state_{t-1} + dt_t * x_t B_t^T,  y_t = state_t C_t + D x_t;
    B and C are shared by the heads of each of the `groups` groups.

    xbc: [B, S, H*P + 2*G*N], the conv output (x, then B, then C, read in place as vLLM splits it); dt: [B, S, H];
    a_log, d, dt_bias: [H]; `state`: [B, H, P, N] (read in decode; a prefill starts from zeros). Outputs: y
    [B, S, H*P] and the final state [B, H, P, N] (role STATE), written whole.

    Chunked form (`recurrent` False: prefill; mamba_ssm's mamba_chunk_scan_combined, ssd_combined.py, the
    algorithm of the paper's section 6), chunks of Q = chunk_size positions (the last one shorter), per chunk of
    q positions and p = q(q+1)/2 causal pairs, per head unless said:
      _chunk_cumsum:  dt + dt_bias, softplus, dt*A, cumsum            6 per position (2 transcendentals)
      _bmm_chunk:     C B^T per group, full q x q block                2*q*q*N per group
      _chunk_state:   exp(A_last - A_s)*dt_s (3 per position, 1 exp); B scaled, N per position; B^T x, 2*q*N*P
      _state_passing: state = exp(A_chunk)*state + chunk state        2*N*P + 1 per chunk (1 exp)
      _chunk_scan:    off-diagonal C state * exp(A_t): 2*N*P + P + 1 per position (1 exp);
                      diagonal: CB * exp(A_t - A_s) * dt_s per causal pair (4, 1 exp) then @ x, 2*P per pair;
                      D skip, 2*P per position
    so per head: q*(10 + N + 4*N*P + 3*P) + p*(4 + 2*P) + 2*N*P + 1 per chunk, plus 2*q*q*N per group and chunk,
    plus 2 per head per step for A = -exp(A_log) (computed once per step, outside the kernels). The causal
    pairs are those a kernel that skips the blocks above the diagonal computes, as `causal_pairs` counts
    attention. Kind matmul: the bulk (C B^T, B^T x, C state, CB x) runs on the tensor cores (tl.dot).

    Recurrent form (`recurrent` True: decode; mamba_ssm's selective_state_update, one position): per head,
    dt + dt_bias and softplus (4, 2 transcendentals), exp(A*dt) (2, 1), dB = dt*B (N), state*dA + dB*x (3*P*N),
    y = state C (2*P*N), + D*x (2*P): 5*P*N + N + 2*P + 6 per head and token, plus the 2 per head for A.
    Kind elementwise: each state element is read, updated and written once (vector work, memory-bound)."""
    if len(xbc.shape) != 3:
        raise OpgraphError(f"op {name!r}: {xbc} must be [batch, positions, heads*head_dim + 2*groups*d_state]")
    checks.divides(f"op {name!r}", "groups", groups, "heads", heads)
    bsz, s, width = xbc.shape
    h, p, n, g = heads, head_dim, d_state, groups
    if width != h * p + 2 * g * n:
        raise OpgraphError(f"op {name!r}: {xbc} must end in heads*head_dim + 2*groups*d_state = {h * p + 2 * g * n}")
    if dt.shape != (bsz, s, h):
        raise OpgraphError(f"op {name!r}: dt {dt} must be [batch, positions, heads={h}]")
    for t in (a_log, d, dt_bias):
        if t.shape != (h,):
            raise OpgraphError(f"op {name!r}: {t} must have shape ({h},)")
    new = _new_state(name, state_out, (bsz, h, p, n), state, xbc, state_dtype)
    inputs = [xbc, dt, a_log, d, dt_bias] + ([state] if state is not None else [])
    y = _out(out or name, (bsz, s, h * p), xbc, role, dtype)
    if recurrent:
        if s != 1:
            raise OpgraphError(f"op {name!r}: the recurrent form takes one position per sequence, got {s}")
        flops = bsz * h * (5 * p * n + n + 2 * p + 6) + 2 * h
        return Op(name, ELEMENTWISE, SSD_RECURRENT, inputs, (y, new), flops, transcendentals=bsz * h * 3 + h)
    chunks, sq2, _ = chunk_sums(s, chunk_size)
    pairs_ = (sq2 + s) // 2
    per_head = s * (10 + n + 4 * n * p + 3 * p) + pairs_ * (4 + 2 * p) + chunks * (2 * n * p + 1)
    flops = bsz * (h * per_head + g * 2 * sq2 * n) + 2 * h
    exps = bsz * h * (4 * s + pairs_ + chunks) + h
    return Op(name, MATMUL, SSD_CHUNKED, inputs, (y, new), flops, transcendentals=exps)


SELECTIVE_SCAN, SELECTIVE_UPDATE = register_function("selective_scan"), register_function("selective_update")
# Mamba-1's selective scan (Gu & Dao 2023, arXiv 2312.00752, Algorithm 2 as mamba_ssm's kernels run it: B-bar taken
# as dt * B), per channel e and state n: dA = exp(dt_e A_en), h = dA h + (dt_e B_n) u_e, y_e = sum_n C_n h_en.
# Per (channel, state) pair: the one-token update (selective_state_update, decode) 7 FLOPs and an exp; the parallel
# scan of a prompt (selective_scan_fwd) 9, the count Gu gives for it (state-spaces/mamba#110: 9 B L D N), and an exp.
# Per channel either way: dt + dt_bias, softplus (2 transcendentals), dt u, D u and its add, silu(z) (3 and an exp)
# and the gate multiply: 9 FLOPs, 3 transcendentals.
SELECTIVE_PAIR_FLOPS = {SELECTIVE_UPDATE: 7, SELECTIVE_SCAN: 9}
SELECTIVE_CHANNEL_FLOPS, SELECTIVE_CHANNEL_TRANSCENDENTALS = 9, 3


def selective_scan(name: str, u: Tensor, dt: Tensor, b: Tensor, c: Tensor, z: Tensor, a: Tensor, d: Tensor,
                   dt_bias: Tensor, *, recurrent: bool, state: Tensor | None = None, out: str | None = None,
                   state_out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None,
                   state_dtype: DType | None = None) -> Op:
    """Mamba-1's selective scan with its D skip and its gate, y * silu(z) (mamba_ssm's selective_scan_fn with z in
    prefill, selective_state_update in decode; the per-element counts above). u, dt, z: [B, S, E] (the conv's
    output, dt_proj's without its bias, the gate); b, c: [B, S, N]; a: [E, N] (A = -exp(A_log), which vLLM computes
    once at load); d, dt_bias: [E]; `state`: [B, E, N] (read in decode; a prefill starts from zeros). Outputs: y
    [B, S, E] and the final state [B, E, N] (role STATE), written whole. Kind elementwise: no tensor-core work, each
    state element updated in registers (the prompt's intermediate states never reach memory)."""
    if len(u.shape) != 3:
        raise OpgraphError(f"op {name!r}: u {u} must be [batch, positions, channels]")
    bsz, s, e = u.shape
    n = a.shape[-1] if len(a.shape) == 2 else 0
    for t, want in ((dt, u.shape), (z, u.shape), (b, (bsz, s, n)), (c, (bsz, s, n)), (a, (e, n)), (d, (e,)),
                    (dt_bias, (e,))):
        if t.shape != want:
            raise OpgraphError(f"op {name!r}: {t} must have shape {want}")
    if recurrent and s != 1:
        raise OpgraphError(f"op {name!r}: the recurrent form takes one position per sequence, got {s}")
    new = _new_state(name, state_out, (bsz, e, n), state, u, state_dtype)
    inputs = [u, dt, b, c, z, a, d, dt_bias] + ([state] if state is not None else [])
    fn = SELECTIVE_UPDATE if recurrent else SELECTIVE_SCAN
    y = _out(out or name, u.shape, u, role, dtype)
    flops = bsz * s * e * (SELECTIVE_PAIR_FLOPS[fn] * n + SELECTIVE_CHANNEL_FLOPS)
    return Op(name, ELEMENTWISE, fn, inputs, (y, new), flops,
              transcendentals=bsz * s * e * (n + SELECTIVE_CHANNEL_TRANSCENDENTALS))


def gated_delta_rule(name: str, qkv: Tensor, ba: Tensor, a_log: Tensor, dt_bias: Tensor, *, k_heads: int,
                     v_heads: int, head_k_dim: int, head_v_dim: int, recurrent: bool, chunk_size: int = 64,
                     state: Tensor | None = None, out: str | None = None, state_out: str | None = None,
                     role: Role = Role.ACTIVATION, dtype: DType | None = None, state_dtype: DType | None = None) -> Op:
    """The gated delta rule (Yang, Kautz & Hatamizadeh 2024, "Gated Delta Networks", arXiv 2412.06464, eq. 10), as
    Qwen3-Next's linear-attention layers run it: per value head, with a state S of K x V (head_k_dim x head_v_dim),
    S_t = alpha_t * S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,  o_t = S_t q_t,
    alpha_t = exp(g_t), g_t = -exp(A_log) * softplus(a_t + dt_bias), beta_t = sigmoid(b_t) (vLLM's
    fused_gdn_gating: 11 FLOPs per value head and position, 4 transcendentals); q and k are L2-normalized
    (use_qk_l2norm_in_kernel, 3*K + 2 each) and each key head serves v_heads / k_heads value heads (GQA-like).

    qkv: [B, S, 2*Hk*K + Hv*V], the conv output (q, k, v); ba: [B, S, 2*Hv] (b, a); a_log, dt_bias: [Hv]; `state`:
    [B, Hv, K, V] (read in decode). Outputs: o [B, S, Hv*V] and the final state [B, Hv, K, V] (role STATE).

    Chunked form (`recurrent` False: prefill; flash-linear-attention's chunk_gated_delta_rule, the WY form of
    Yang et al. 2024, arXiv 2406.06484, section 3), chunks of C = 64 positions, per value head and chunk of q
    positions (the tiles are full q x q blocks, masked afterwards, as fla computes them):
      chunk_local_cumsum of g                                            q
      chunk_scaled_dot_kkt: A = beta K K^T * exp(g_i - g_j)              q*K + 2*q*q*K + 3*q*q (q*q exps)
      solve_tril: (I + A)^-1, a unit lower-triangular inverse            (q^3 - q)/3 (the forward-substitution
                  count; fla inverts 16 x 16 diagonal blocks and merges them, the same leading term)
      recompute_w_u: u = A (beta v), w = A (beta exp(g) k)               q + q*V + 2*q*q*V + 2*q*K + 2*q*q*K (q exps)
      chunk_gated_delta_rule_fwd_h: v' = u - w S, S = exp(g_last) S + K^T (v' exp(g_last - g))
                                                                         4*q*K*V + 2*q*V + 2*q + K*V + 1 (q + 1 exps)
      chunk_fwd_o: o = (q S) exp(g) + (q K^T * exp(g_i - g_j), causal) v', scaled
                                                                         2*q*K*V + 2*q*q*K + 3*q*q + 2*q*q*V + q + 4*q*V
                                                                         (q + q*q exps)
    so per value head: q*(6*K*V + 3*K + 7*V + 5) + q*q*(6*K + 4*V + 6) + (q^3 - q)/3 + K*V + 1 per chunk, and the
    gating; the L2 norms run once per key head (fla's l2norm_fwd, before the chunk kernels). Kind matmul: the
    chunk products run on the tensor cores.

    Recurrent form (`recurrent` True: decode; fla's fused_recurrent_gated_delta_rule, one position), per value
    head: L2 norms of q and k (2*(3*K + 2)), q * K^-1/2 (K), S *= exp(g) (K*V + 1, 1 exp), v - S^T k (2*K*V + V),
    * beta (V), S += k v^T (2*K*V), o = S^T q (2*K*V): 7*K*V + 7*K + 2*V + 5, plus the gating. Kind elementwise:
    a matrix-vector update per head, on the vector units, memory-bound on the state."""
    if len(qkv.shape) != 3:
        raise OpgraphError(f"op {name!r}: {qkv} must be [batch, positions, 2*k_heads*head_k_dim + v_heads*head_v_dim]")
    checks.divides(f"op {name!r}", "k_heads", k_heads, "v_heads", v_heads)
    bsz, s, width = qkv.shape
    hk, hv, k, v = k_heads, v_heads, head_k_dim, head_v_dim
    if width != 2 * hk * k + hv * v:
        raise OpgraphError(f"op {name!r}: {qkv} must end in 2*k_heads*head_k_dim + v_heads*head_v_dim = "
                           f"{2 * hk * k + hv * v}")
    if ba.shape != (bsz, s, 2 * hv):
        raise OpgraphError(f"op {name!r}: {ba} must be [batch, positions, 2*v_heads={2 * hv}]")
    for t in (a_log, dt_bias):
        if t.shape != (hv,):
            raise OpgraphError(f"op {name!r}: {t} must have shape ({hv},)")
    new = _new_state(name, state_out, (bsz, hv, k, v), state, qkv, state_dtype)
    inputs = [qkv, ba, a_log, dt_bias] + ([state] if state is not None else [])
    o = _out(out or name, (bsz, s, hv * v), qkv, role, dtype)
    gating = 4 + SOFTPLUS_FLOPS + SIGMOID_FLOPS  # a + dt_bias, exp(A_log), negate, multiply; softplus; sigmoid
    if recurrent:
        if s != 1:
            raise OpgraphError(f"op {name!r}: the recurrent form takes one position per sequence, got {s}")
        flops = bsz * hv * (7 * k * v + 7 * k + 2 * v + 5 + gating)
        return Op(name, ELEMENTWISE, DELTA_RECURRENT, inputs, (o, new), flops, transcendentals=bsz * hv * 5)
    chunks, sq2, sq3 = chunk_sums(s, chunk_size)
    per_head = (s * (6 * k * v + 3 * k + 7 * v + 5 + gating) + sq2 * (6 * k + 4 * v + 6) + (sq3 - s) // 3
                + chunks * (k * v + 1))
    flops = bsz * (hv * per_head + hk * s * 2 * (3 * k + 2))
    exps = bsz * hv * (s * (3 + 4) + 2 * sq2 + chunks)
    return Op(name, MATMUL, DELTA_CHUNKED, inputs, (o, new), flops, transcendentals=exps)


KDA_CHUNKED, KDA_RECURRENT = register_function("kda_chunked"), register_function("kda_recurrent")
KDA_GATE = register_function("kda_gate")
KDA_SUBCHUNK = 16  # fla's chunk_kda computes the intra-chunk matrices in 16 x 16 sub-blocks (BC)


def kda_gate(name: str, f: Tensor, a_log: Tensor, dt_bias: Tensor, *, heads: int, bounded: bool = False,
             out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Kimi Delta Attention's per-channel decay (vLLM's and fla's fused_kda_gate): g = -exp(A_log[h]) x
    softplus(f + dt_bias), f [B, S, heads*K] the low-rank gate's output, A_log one per head, dt_bias one per channel.
    FLOPs per element: the add, softplus (SOFTPLUS_FLOPS: exp, add, log) and the multiply, 5 (2 transcendentals).
    `bounded` (Kimi-K3's gate_lower_bound, fla's safe gate): g = lower_bound x sigmoid(exp(A_log[h]) x (f +
    dt_bias)): the add, the multiply, the sigmoid (4) and the multiply by the bound, 7 (1 transcendental).
    Kind elementwise."""
    if f.shape[-1] % heads or a_log.numel != heads or dt_bias.shape != (f.shape[-1],):
        raise OpgraphError(f"op {name!r}: {f} must split into {heads} heads, with A_log {a_log} one a head and "
                           f"dt_bias {dt_bias} one a channel")
    y = _out(out or name, f.shape, f, role, dtype)
    if bounded:
        return Op(name, ELEMENTWISE, KDA_GATE, (f, a_log, dt_bias), (y,), (3 + ELEMENTWISE_FLOPS_PER_ELEM["sigmoid"])
                  * f.numel, transcendentals=f.numel)
    return Op(name, ELEMENTWISE, KDA_GATE, (f, a_log, dt_bias), (y,), (2 + SOFTPLUS_FLOPS) * f.numel,
              transcendentals=2 * f.numel)


def kda_rows(q: int, k: int, v: int, sub: int = KDA_SUBCHUNK) -> tuple:
    """(FLOPs, exponentials) of fla's chunk_kda for one head and one chunk of q positions, less the once-a-chunk
    state decay (Kimi Linear's chunked KDA, the kernels vLLM copies: fla-org/flash-linear-attention b5d48b7,
    fla/ops/kda/{chunk,chunk_intra,wy_fast}.py, and chunk_delta_h.py, chunk_o (chunk_gla_fwd_o_gk), solve_tril.py),
    the tiles counted as the kernels compute them, in order:
      chunk_local_cumsum of g, a lower-triangular 0/1 matrix times g          2*q*q*K, then g / ln 2: q*K
      the intra-chunk A (k k^T, beta) and A_qk (q k^T, scale) with the decay exp(g_i - g_j) per channel:
        each of the m(m - 1)/2 lower sub-block pairs (m = ceil(q / sub))      4*sub^2*K + 6*sub*K + sub^2 (2*sub*K exps)
        the m diagonal sub-blocks, column by column on the vector units       6*q*sub*K + q*sub + q*K (q*sub*K exps)
      solve_tril: (I + A)^-1                                                  (q^3 - q)/3 (as the GDN count)
      recompute_w_u: u = A (beta v), w = A (beta exp(g) k), kg                 2*q*q*(K + V) + q*V + 4*q*K (2*q*K exps)
      chunk_fwd_h: v' = u - w S, S += kg^T v'                                 4*q*K*V + q*V (+ the state decay)
      chunk_fwd_o: o = (q exp(g)) S + tril(A_qk) v'                           2*q*K*V + 2*q*q*V + 2*q*K (q*K exps)
    Arithmetic only, so a sweep traces it."""
    m = (q + sub - 1) // sub
    pairs = m * (m - 1) // 2
    flops = (2 * q * q * k + q * k + pairs * (4 * sub * sub * k + 6 * sub * k + sub * sub) + 6 * q * sub * k + q * sub
             + q * k + (q * q * q - q) // 3 + 2 * q * q * (k + v) + q * v + 4 * q * k + 4 * q * k * v + q * v
             + 2 * q * k * v + 2 * q * q * v + 2 * q * k)
    exps = pairs * 2 * sub * k + q * sub * k + 2 * q * k + q * k
    return flops, exps


def kimi_delta_rule(name: str, q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, *, heads: int,
                    head_dim: int, recurrent: bool, chunk_size: int = 64, state: Tensor | None = None,
                    out: str | None = None, state_out: str | None = None, role: Role = Role.ACTIVATION,
                    dtype: DType | None = None, state_dtype: DType | None = None) -> Op:
    """Kimi Delta Attention (Kimi Linear, arXiv 2510.26692), per head a state S of K x V (head_dim each):
    S_t = (I - beta_t k_t k_t^T) Diag(exp(g_t)) S_{t-1} + beta_t k_t v_t^T, o_t = S_t^T (K^-1/2 q_t): the gated delta
    rule with a decay per channel. q and k are L2-normalized in the kernels (2*(3*K + 2) a head and position, the
    square roots counted as FLOPs and transcendentals).
    q, k, v, g: [B, S, heads*K] (g: kda_gate's output); beta: [B, S, heads]; `state` [B, heads, K, V] (decode).
    Outputs: o [B, S, heads*V] and the final state (role STATE).
    Chunked (`recurrent` False, prefill: fla's chunk_kda over chunks of 64, the last shorter): per head, kda_rows of
    each chunk, and per chunk the state decay S *= exp(g_last) (K*V FLOPs, K exps). Kind matmul.
    Recurrent (decode, fused_recurrent_kda, one position): per head S *= exp(g) (K*V, K exps), v - S^T k (2*K*V),
    * beta (V), S += k v'^T (2*K*V), o = S^T q (2*K*V - V), the L2 norms and q's scale (K): 7*K*V + 7*K + 4.
    Kind elementwise: a matrix-vector update per head, memory-bound on the state."""
    kd = vd = head_dim
    width = heads * kd
    for t in (q, k, v, g):
        if len(t.shape) != 3 or t.shape != q.shape or t.shape[-1] != width:
            raise OpgraphError(f"op {name!r}: q, k, v and g must be [batch, positions, heads*head_dim={width}], "
                               f"got {t}")
    bsz, s, _ = q.shape
    if beta.shape != (bsz, s, heads):
        raise OpgraphError(f"op {name!r}: beta {beta} must be [batch, positions, heads={heads}]")
    new = _new_state(name, state_out, (bsz, heads, kd, vd), state, q, state_dtype)
    inputs = [q, k, v, g, beta] + ([state] if state is not None else [])
    o = _out(out or name, (bsz, s, heads * vd), q, role, dtype)
    norms = 2 * (3 * kd + 2)
    if recurrent:
        if s != 1:
            raise OpgraphError(f"op {name!r}: the recurrent form takes one position per sequence, got {s}")
        return Op(name, ELEMENTWISE, KDA_RECURRENT, inputs, (o, new),
                  bsz * heads * (7 * kd * vd + 7 * kd + 4), transcendentals=bsz * heads * (kd + 2))
    full, rest = s // chunk_size, s % chunk_size
    chunks = (s + chunk_size - 1) // chunk_size
    f_full, e_full = kda_rows(chunk_size, kd, vd)
    f_rest, e_rest = kda_rows(rest, kd, vd)
    flops = bsz * heads * (full * f_full + f_rest + chunks * kd * vd + s * norms)
    exps = bsz * heads * (full * e_full + e_rest + chunks * kd + 2 * s)
    return Op(name, MATMUL, KDA_CHUNKED, inputs, (o, new), flops, transcendentals=exps)


LIGHTNING_BLOCKS, LIGHTNING_RECURRENT = register_function("lightning_blocks"), register_function("lightning_recurrent")
LIGHTNING_BLOCK = 256  # the prefill kernel's block of positions (hard-coded BLOCK in vLLM's lightning_attn.py)
LIGHTNING_DIAG_TILE = 32  # _fwd_diag_kernel's CBLOCK: its tiles within a block
LIGHTNING_KV_TILE = 64  # _fwd_kv_parallel's and _fwd_none_diag_kernel's CBLOCK
LIGHTNING_DECODE_TILE = 32  # _linear_attn_decode_kernel's BLOCK_SIZE: value columns a program
LIGHTNING_HEAD_DIMS = (64, 128)  # the widths lightning_attention runs in one pass (m = 128 if d >= 128 else 64)


def lightning_rows(n, d: int, e: int) -> tuple:
    """(matrix FLOPs, vector FLOPs, exponentials) of vLLM's prefill kernels for one head over one sequence of n
    positions (lightning_attention in vllm/model_executor/layers/lightning_attn.py, MiniMax-01's block algorithm,
    arXiv 2501.08313 section 2.2), blocks of B = 256 positions, nb = ceil(n / B), counted as the kernels compute
    them (a partial last block runs the full tiles of the kernels whose grids cover whole blocks, with masked loads):
      the k_decay table exp(-s (B - j)) a call                               2*B (B exps)
      _fwd_diag_kernel, tiles of 32: the t(t + 1)/2 pairs i >= j of a block  2*32*32*(d + e) matrix, 4*32*32 vector
                                     (t = B / 32): (q_i k_j^T) * decay, @ v_j   (the decay's difference, times s,
                                                                                negated, times qk; 32*32 exps)
      _fwd_kv_parallel, tiles of 64: (k * k_decay)^T v, ceil(rows / 64)      2*64*d*e matrix, 64*d vector
                                     tiles of each block's rows
      _fwd_kv_reduce, a block: S = exp(-s b) S + KV_b                       2*d*e + 2 vector, 1 exp
      _fwd_none_diag_kernel, tiles of 64, B / 64 a block: (q S) * q_decay    2*64*d*e matrix, 2*64*e + 2*64
                                     + the diagonal's output                    vector (64 exps)
    Arithmetic only, so a sweep traces it."""
    b, c1, c2 = LIGHTNING_BLOCK, LIGHTNING_DIAG_TILE, LIGHTNING_KV_TILE
    nb = (n + b - 1) // b
    full = n // b
    kv_tiles = full * (b // c2) + (n - full * b + c2 - 1) // c2
    pairs = (b // c1) * (b // c1 + 1) // 2
    out_tiles = nb * (b // c2)
    matrix = nb * pairs * 2 * c1 * c1 * (d + e) + (kv_tiles + out_tiles) * 2 * c2 * d * e
    vector = (2 * b + nb * pairs * 4 * c1 * c1 + kv_tiles * c2 * d + nb * (2 * d * e + 2)
              + out_tiles * (2 * c2 * e + 2 * c2))
    exps = b + nb * pairs * c1 * c1 + nb + out_tiles * c2
    return matrix, vector, exps


def lightning_attention(name: str, *qkv: Tensor, heads: int, head_dim: int, recurrent: bool,
                        state: Tensor | None = None, out: str | None = None, state_out: str | None = None,
                        role: Role = Role.ACTIVATION, dtype: DType | None = None,
                        state_dtype: DType | None = None) -> Op:
    """Lightning attention (MiniMax-01's linear attention with a fixed decay a head, arXiv 2501.08313; vLLM's
    lightning_attn.py, which MiniMax-Text-01 and MiniMax-M1 run): per head a state S of d x d,
    S_t = exp(-s) S_{t-1} + k_t^T v_t, o_t = q_t S_t, with s the head's slope (a constant of the layer, not a
    weight). No scale, no normalizer, no conv.
    qkv: one [B, S, heads*3*d], each head's q, k and v side by side (MiniMax's qkv_proj layout), or q, k and v
    [B, S, heads*d] each (Ring-linear's, normed and rotated apart); `state`: [B, heads, d, d] (read in
    decode). Outputs: o [B, S, heads*d] and the final state (role STATE).
    Blocks (`recurrent` False, prefill): lightning_rows for each sequence and head. Kind matmul.
    Recurrent (decode, _linear_attn_decode_kernel, one position): per head k^T v (d*d), exp(-s) S (d*d), the sum
    (d*d), q * S (d*d) and its column sums ((d - 1)*d): 5*d*d - d, and exp(-s) negated and taken by each program of
    32 value columns (d / 32 exps). Kind elementwise: memory-bound on the state."""
    d = head_dim
    if d not in LIGHTNING_HEAD_DIMS:
        raise OpgraphError(f"op {name!r}: head_dim {d} is not one the kernels run in one pass (vLLM's "
                           f"lightning_attention slices wider heads into passes of 128); valid: "
                           f"{', '.join(map(str, LIGHTNING_HEAD_DIMS))}")
    width = heads * d * (3 if len(qkv) == 1 else 1)
    if len(qkv) not in (1, 3) or any(len(t.shape) != 3 or t.shape != (*qkv[0].shape[:2], width) for t in qkv):
        raise OpgraphError(f"op {name!r}: takes qkv [batch, positions, heads*3*head_dim={heads * 3 * d}], or q, k "
                           f"and v [batch, positions, heads*head_dim={heads * d}] each; got "
                           f"{', '.join(map(str, qkv))}")
    bsz, s, _ = qkv[0].shape
    new = _new_state(name, state_out, (bsz, heads, d, d), state, qkv[0], state_dtype)
    inputs = [*qkv] + ([state] if state is not None else [])
    o = _out(out or name, (bsz, s, heads * d), qkv[0], role, dtype)
    programs = (d + LIGHTNING_DECODE_TILE - 1) // LIGHTNING_DECODE_TILE
    if recurrent:
        if s != 1:
            raise OpgraphError(f"op {name!r}: the recurrent form takes one position per sequence, got {s}")
        return Op(name, ELEMENTWISE, LIGHTNING_RECURRENT, inputs, (o, new),
                  bsz * heads * (5 * d * d - d + programs), transcendentals=bsz * heads * programs)
    matrix, vector, exps = lightning_rows(s, d, d)
    return Op(name, MATMUL, LIGHTNING_BLOCKS, inputs, (o, new), bsz * heads * (matrix + vector),
              transcendentals=bsz * heads * exps)


def gated_rmsnorm(name: str, x: Tensor, gate: Tensor, weight: Tensor, *, groups: int = 1,
                  norm_before_gate: bool = False, gate_act: str = "silu", out: str | None = None,
                  role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """RMSNorm gated by SiLU(gate), over `groups` equal groups of the last dim: norm(x * silu(gate)) (Mamba-2's
    RMSNormGated with norm_before_gate=False, group_size = d / n_groups, as Nemotron-H and vLLM's
    Mixer2RMSNormGated run it), or with `norm_before_gate` norm(x) * silu(gate) (Qwen3-Next's per-head
    Qwen3NextRMSNormGated). `weight` is [d], or [d / groups] shared by every group (Qwen3-Next's [head_v_dim]).
    `gate_act` "sigmoid": the gate is sigmoid(gate) (Kimi Linear's o_norm, FusedRMSNormGated with
    activation="sigmoid"), which costs what SiLU does. FLOPs per element: SiLU 4 (1 exp), the gate multiply 1,
    RMSNorm's 4; per group of each row RMSNorm's 3 (NORM_FLOPS)."""
    if gate_act not in ("silu", "sigmoid"):
        raise OpgraphError(f"op {name!r}: gate_act must be silu or sigmoid, got {gate_act!r}")
    _same_shape(name, x, gate)
    d = x.shape[-1]
    if groups < 1 or d % groups:
        raise OpgraphError(f"op {name!r}: groups ({groups}) must divide the last dim of {x}")
    if weight.shape not in ((d,), (d // groups,)):
        raise OpgraphError(f"op {name!r}: weight {weight} must have shape ({d},) or ({d // groups},)")
    per_elem, per_row = NORM_FLOPS["rmsnorm"]
    flops = (ELEMENTWISE_FLOPS_PER_ELEM["silu"] + 1 + per_elem) * x.numel + per_row * _rows(x) * groups
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, NORM, GATED_RMSNORM, (x, gate, weight), (y,), flops, transcendentals=x.numel)


# --- DeepSeek-V4's compressed attention and manifold-constrained hyper-connections ------------------------
# From its reference inference code (deepseek-ai/DeepSeek-V4-Pro, inference/model.py Compressor, Block.hc_pre,
# Block.hc_post, ParallelHead.hc_head; inference/kernel.py hc_split_sinkhorn) and the mHC paper (arXiv 2512.24880).
COMPRESS_POOL = register_function("compress_pool")
HC_COEFFICIENTS = register_function("hc_coefficients")
HC_COLLAPSE = register_function("hc_collapse")
HC_EXPAND = register_function("hc_expand")
HC_REPEAT = register_function("hc_repeat")
# A pooled entry, per channel and slot: the softmax over the slots (5, SOFTMAX_FLOPS_PER_ELEM) and the weighted
# sum's multiply and add (2).
POOL_FLOPS_PER_SLOT = SOFTMAX_FLOPS_PER_ELEM + 2


def compress_pool(name: str, kv: Tensor, score: Tensor, ape: Tensor | None, norm: Tensor, *, stride: int, width: int,
                  entries: int, kept: Tensor | None = None, key: tuple[Tensor, Tensor] | None = None,
                  out: str | None = None, key_out: str | None = None, state_out: str | None = None,
                  role: Role = Role.ACTIVATION, dtype: DType | None = None, state_dtype: DType | None = None) -> Op:
    """DeepSeek-V4's compressor after its two projections (reference Compressor.forward): every new token's score
    plus its position's learned bias (`ape` [stride, C], one add per element; None: no bias, as DeepSeek-V4.1's
    compressor has none), and every `stride` positions one entry
    of `width` pooled from the kv of the slots it covers: softmax(score) over the slots times kv, summed, per channel,
    then RMS-normed with `norm` [width] (the reference's Compressor.norm).
    kv, score: [B, S, C], C = overlap x width: the CSA compressor's overlapping windows (overlap 2: [Ca of the
    previous window | Cb of this one], 2 x stride slots), the HCA one's plain ones (overlap 1, `stride` slots).

    Its state is the kv and scores of the overlap x stride slots the next entry pools from, [slots, 2C] a sequence
    (the reference's kv_state and score_state side by side), kept with the layer's cache (role KV_CACHE: a fixed size
    a sequence). A step writes the rows of its new tokens, the last min(S, slots) of them (an output, [B, that, 2C]),
    and reads the rows it keeps, `kept` [B, slots - that, 2C] (a step after the first), only where it pools an entry
    from them; so the cache holds the slots once. (A prompt chunk of `slots` tokens or more keeps no earlier row: the
    rows before it that its first entry pools, fewer than `slots`, are not counted as read.) Outputs: the `entries` entries pooled this step [B, entries, width]
    (none where the step completes no window), then the written rows.
    `key` (wk [K, width], k_norm [K]: DeepSeek-V4.1's indexer, whose keys come from the compressor's latent): each
    pooled entry also projected and RMS-normed to an index key, [B, entries, K] (named `key_out`), after the entries
    in the outputs; in the same op so that a step that completes no entry still holds the weights it would use.
    FLOPs: B x (S x C (the bias, if any) + entries x (overlap x stride x width x POOL_FLOPS_PER_SLOT + RMSNorm's
    4 x width + 3, and with `key` 2 x width x K + RMSNorm's 4 x K + 3)). Kind elementwise."""
    if len(kv.shape) != 3 or score.shape != kv.shape:
        raise OpgraphError(f"op {name!r}: kv {kv} and score {score} must be one shape [batch, positions, channels]")
    bsz, s, c = kv.shape
    if c % width or c // width not in (1, 2):
        raise OpgraphError(f"op {name!r}: the channels of {kv} must be 1 or 2 x the entry width {width}")
    if (ape is not None and ape.shape != (stride, c)) or norm.shape != (width,):
        raise OpgraphError(f"op {name!r}: ape {ape} must be [stride={stride}, channels={c}] and norm {norm} "
                           f"[width={width}]")
    slots = c // width * stride
    written = minimum(s, slots)
    if kept is not None and kept.shape != (bsz, slots - written, 2 * c):
        raise OpgraphError(f"op {name!r}: the kept state {kept} must be [batch, {slots} - {written} rows, {2 * c}]")
    new = Tensor(state_out or f"{name}.state", (bsz, written, 2 * c), state_dtype or kv.dtype, Role.KV_CACHE)
    k = 0
    if key is not None:
        k = key[0].shape[0]
        if key[0].shape != (k, width) or key[1].shape != (k,):
            raise OpgraphError(f"op {name!r}: the key's projection {key[0]} must be [K, width={width}] and its norm "
                               f"{key[1]} [K]")
    per_elem, per_row = NORM_FLOPS["rmsnorm"]
    per_key = 2 * width * k + per_elem * k + per_row if k else 0
    flops = bsz * (s * c * (ape is not None) + entries * (slots * width * POOL_FLOPS_PER_SLOT + per_elem * width
                                                          + per_row + per_key))
    outs = ((_out(out or name, (bsz, entries, width), kv, role, dtype),) if entries else ()) + (
        (_out(key_out or f"{name}.key", (bsz, entries, k), kv, role, dtype),) if entries and k else ()) + (new,)
    inputs = tuple(t for t in (kv, score, ape, norm, *(key or ())) if t is not None)
    if kept is None:
        return Op(name, ELEMENTWISE, COMPRESS_POOL, inputs, outs, flops)
    return Op(name, ELEMENTWISE, COMPRESS_POOL, (*inputs, kept), outs, flops,
              reads=(*(None for _ in inputs), kept.numel if entries else 0))


def hc_coefficients(name: str, mixes: Tensor, sumsq: Tensor, base: Tensor, scale: Tensor, *, streams: int,
                    iters: int | None, out: str | None = None, role: Role = Role.ACTIVATION,
                    dtype: DType | None = None) -> Op:
    """The mixing coefficients of n = `streams` hyper-connection streams from `mixes` [..., M] (the streams' fp32
    product with hc_fn) and their sum of squares `sumsq` [..., 1] (rms_stats), as the reference's hc_pre and
    hc_split_sinkhorn compute them. A sublayer's (M = (2 + n) n, `iters` Sinkhorn iterations): mixes x rstd x scale
    + base, pre = sigmoid + eps (n), post = 2 sigmoid (n), comb = a row softmax + eps of n x n, column-normalized,
    then `iters` - 1 times row- and column-normalized (each a sum and a divide per element): FLOPs per row 3 (rstd)
    + 3M + 10n + 4n^2 (iters + 1). The head's (M = n, `iters` None: ParallelHead.hc_head): pre alone, 3 + 3M + 5n.
    Output [..., M]: pre | post | comb. Kind elementwise."""
    m = mixes.shape[-1]
    want = streams if iters is None else (2 + streams) * streams
    if m != want or sumsq.shape != (*mixes.shape[:-1], 1):
        raise OpgraphError(f"op {name!r}: mixes {mixes} must be [..., {want}] and sumsq {sumsq} [..., 1] for "
                           f"{streams} streams")
    per_row = 3 + 3 * m + (5 * streams if iters is None else 10 * streams + 4 * streams * streams * (iters + 1))
    y = _out(out or name, mixes.shape, mixes, role, dtype)
    return Op(name, ELEMENTWISE, HC_COEFFICIENTS, (mixes, sumsq, base, scale), (y,), _rows(mixes) * per_row)


def _streams(name: str, x: Tensor, coeffs: Tensor, streams: int) -> int:
    if x.shape[-1] % streams or coeffs.shape[:-1] != x.shape[:-1]:
        raise OpgraphError(f"op {name!r}: {x} must be {streams} streams, with coefficients {coeffs} for each row")
    return x.shape[-1] // streams


def hc_collapse(name: str, x: Tensor, coeffs: Tensor, *, streams: int, out: str | None = None,
                role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """A sublayer's input from n = `streams` hyper-connection streams x [..., n*d]: sum_i pre_i x_i [..., d]
    (reference Block.hc_pre). Reads the coefficients' n pre values a row. FLOPs (2n - 1) per output element."""
    d = _streams(name, x, coeffs, streams)
    y = _out(out or name, (*x.shape[:-1], d), x, role, dtype)
    return Op(name, ELEMENTWISE, HC_COLLAPSE, (x, coeffs), (y,), _rows(x) * d * (2 * streams - 1),
              reads=(None, _rows(x) * streams))


def hc_expand(name: str, x: Tensor, f: Tensor, coeffs: Tensor, *, streams: int, out: str | None = None,
              role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """The n = `streams` streams after a sublayer (reference Block.hc_post), in place of a residual add:
    x'_k = post_k f + sum_j comb[j, k] x_j for the sublayer's output f [..., d] and the streams x [..., n*d].
    Reads the post and comb coefficients (n + n^2 a row). FLOPs (2n + 1) per output element."""
    d = _streams(name, x, coeffs, streams)
    if f.shape != (*x.shape[:-1], d):
        raise OpgraphError(f"op {name!r}: the sublayer's output {f} must be [..., {d}] for the streams {x}")
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, HC_EXPAND, (x, f, coeffs), (y,), x.numel * (2 * streams + 1),
              reads=(None, None, _rows(x) * (streams + streams * streams)))


# --- Attention Residuals (Kimi-K3's attn_res_block_size; Block AttnRes): a softmax over depth ----------------------
ATTN_RES_MIX = register_function("attn_res_mix")
ATTN_RES_BANK = register_function("attn_res_bank")


def attn_res_mix(name: str, bank: Tensor, prefix: Tensor, norm_weight: Tensor, proj_weight: Tensor, *,
                 snapshot: str | None = None, out: str | None = None, role: Role = Role.ACTIVATION,
                 dtype: DType | None = None) -> Op:
    """A sublayer's input as Block AttnRes computes it (Kimi-K3's modeling_kimi_linear.py _apply_attn_res; vLLM's
    fused attn_res kernel): over the n = m + 1 sources v_i, the m block snapshots bank [..., m, d] and the current
    block's running sum prefix [..., d], s_i = (v_i . (norm_weight x proj_weight)) / rms(v_i), p = softmax(s), and
    the output sum_i p_i v_i [..., d]. FLOPs per token, as the reference computes it (every source normed and scored
    at each mix): 4 a source element (square, accumulate, times the weight, accumulate), 9 a source (the mean, eps,
    reciprocal root, the product, the softmax's 5), and the weighted sum's 2n - 1 an output element: (6n - 1) d + 9n,
    with 2n transcendentals (a root and an exponential a source). `snapshot`: at a block's boundary the pass also
    writes the running sum as the block's snapshot, a second output named so (vLLM's kernel does both in one pass).
    Kind norm."""
    d = prefix.shape[-1]
    if bank.shape[:-2] != prefix.shape[:-1] or bank.shape[-1] != d:
        raise OpgraphError(f"op {name!r}: the snapshots {bank} must be [..., m, {d}] for the running sum {prefix}")
    if norm_weight.shape != (d,) or proj_weight.shape != (1, d):
        raise OpgraphError(f"op {name!r}: the norm's weight {norm_weight} must be ({d},) and the projection's "
                           f"{proj_weight} (1, {d})")
    n, rows = bank.shape[-2] + 1, _rows(prefix)
    y = _out(out or name, prefix.shape, prefix, role, dtype)
    outs = (y,) if snapshot is None else (y, _out(snapshot, prefix.shape, prefix, role, dtype))
    return Op(name, NORM, ATTN_RES_MIX, (bank, prefix, norm_weight, proj_weight), outs,
              rows * ((6 * n - 1) * d + 9 * n), transcendentals=rows * 2 * n)


def attn_res_bank(name: str, prefix: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION,
                  dtype: DType | None = None) -> Op:
    """The running sum [..., d] written as a block snapshot at a block's boundary (Block AttnRes): a copy, no
    FLOPs. Kind gather."""
    y = _out(out or name, prefix.shape, prefix, role, dtype)
    return Op(name, GATHER, ATTN_RES_BANK, (prefix,), (y,), 0)


# --- Engram (DeepSeek, arXiv 2601.07372; DeepSeek-V4.1's engram_layer_ids): hashed n-gram rows added to the streams --
NGRAM_HASH = register_function("ngram_hash")
ENGRAM_LOOKUP = register_function("engram_lookup")
ENGRAM_GATE = register_function("engram_gate")
# engram_gate, per stream and token beyond its elementwise work: the two means and eps adds, two reciprocal roots,
# their product, the dot's two scalings, abs, the floor, sqrt, the sign, and the sigmoid's negate, exp, add and divide
ENGRAM_GATE_SCALAR_FLOPS = 16
ENGRAM_GATE_TRANSCENDENTALS = 4  # two rsqrt, a sqrt, an exp


def ngram_hash(name: str, ids: Tensor, history: Tensor | None, *, ngram: int, rows: int, out: str | None = None,
               state_out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None,
               state_dtype: DType | None = None) -> Op:
    """The table rows of each token's n-grams (DeepSeek-V4.1's NgramHashState; vLLM's engram.py): the token ids
    [B, S] with the `ngram` - 1 before each (`history` [B, ngram - 1], the sequence's last ids, read in a step after
    the first and written for the next, role STATE), each times an odd multiplier and folded by xor, then for each
    of the `rows` (n-gram size, head) pairs a modulus and an offset. Output [B, S, rows] row numbers (int32 unless
    `dtype`), then the written history. Integer ops counted as FLOPs (as top_k counts comparisons): ngram
    multiplies, ngram - 1 xors, and 2 x rows a token. Kind elementwise."""
    if len(ids.shape) != 2 or not is_int(ngram) or ngram < 2 or not is_int(rows) or rows < 1:
        raise OpgraphError(f"op {name!r}: ids {ids} must be [batch, positions], with an n-gram of 2 or more ids "
                           f"and rows to hash")
    bsz, s = ids.shape
    if history is not None and history.shape != (bsz, ngram - 1):
        raise OpgraphError(f"op {name!r}: the history {history} must be [batch={bsz}, {ngram - 1}]")
    y = _out(out or name, (bsz, s, rows), ids, role, dtype or INT32)
    new = Tensor(state_out or f"{name}.history", (bsz, ngram - 1), state_dtype or ids.dtype, Role.STATE)
    inputs = (ids,) if history is None else (ids, history)
    return Op(name, ELEMENTWISE, NGRAM_HASH, inputs, (y, new), bsz * s * (2 * ngram - 1 + 2 * rows))


def engram_lookup(name: str, rows: Tensor, table: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION,
                  dtype: DType | None = None) -> Op:
    """The hashed rows (rows [B, S, R], ngram_hash's) of an Engram table [N, w] (fp8 with a scale per block of the
    row, as DeepSeek-V4.1 stores it) read and dequantized side by side, [B, S, R x w] at `dtype` (default the
    activations': bf16). Reads each looked-up row (at most the table); FLOPs: the dequantizing multiply, one a value.
    Kind embedding, as a table lookup."""
    if len(table.shape) != 2 or len(rows.shape) != 3:
        raise OpgraphError(f"op {name!r}: table {table} must be [rows, width] and the looked-up rows {rows} "
                           f"[batch, positions, count]")
    n, w = table.shape
    bsz, s, r = rows.shape
    y = Tensor(out or name, (bsz, s, r * w), dtype or BF16, role)
    return Op(name, EMBEDDING, ENGRAM_LOOKUP, (rows, table), (y,), bsz * s * r * w,
              reads=(None, minimum(rows.numel, n) * w))


def engram_gate(name: str, x: Tensor, kv: Tensor, q_weight: Tensor, k_weight: Tensor, *, streams: int,
                out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """The streams x [..., n d] after an Engram memory (DeepSeek-V4.1's reference Engram.forward): kv [..., (n + 1) d]
    holds a key per stream and one value; for stream s, g = sigmoid(sign(t) sqrt(|t|)) with t = sum(x_s q_w k_w
    key_s) / (rms(x_s) rms(key_s) sqrt(d)) (q_weight, k_weight [n, d]), and x_s + g value. FLOPs per stream and
    token: 10 d (the two sums of squares, 2 d each; the four-way product and its sum, 4 d; the update, 2 d) and
    ENGRAM_GATE_SCALAR_FLOPS. Kind elementwise."""
    d = x.shape[-1] // streams if streams > 0 and x.shape[-1] % streams == 0 else 0
    if not d or kv.shape != (*x.shape[:-1], (streams + 1) * d) or q_weight.shape != (streams, d) \
            or k_weight.shape != (streams, d):
        raise OpgraphError(f"op {name!r}: the streams {x} ({streams} of them), keys and value {kv} and weights "
                           f"{q_weight}, {k_weight} do not agree")
    y = _out(out or name, x.shape, x, role, dtype)
    rows = _rows(x) * streams
    return Op(name, ELEMENTWISE, ENGRAM_GATE, (x, kv, q_weight, k_weight), (y,),
              rows * (10 * d + ENGRAM_GATE_SCALAR_FLOPS), transcendentals=rows * ENGRAM_GATE_TRANSCENDENTALS)


def hc_repeat(name: str, h: Tensor, *, streams: int, out: str | None = None, role: Role = Role.ACTIVATION,
              dtype: DType | None = None) -> Op:
    """The embeddings [..., d] copied into n = `streams` hyper-connection streams [..., n*d] (reference
    Transformer.forward's repeat). No FLOPs. Kind gather."""
    y = _out(out or name, (*h.shape[:-1], streams * h.shape[-1]), h, role, dtype)
    return Op(name, GATHER, HC_REPEAT, (h,), (y,), 0)


# --- AltUp (Gemma-3n's alternating updates, Baykal et al., arXiv 2301.13310; transformers' modeling_gemma3n.py
# Gemma3nTextAltUp, vLLM's gemma3n.py): n residual streams [..., n d], one of which a layer computes ------------------
ALTUP_TAKE = register_function("altup_take")
ALTUP_PREDICT = register_function("altup_predict")
ALTUP_CORRECT = register_function("altup_correct")
ALTUP_ADD = register_function("altup_add")
ALTUP_MEAN = register_function("altup_mean")
ROOT_MEAN_SQUARE = register_function("root_mean_square")
MAGNITUDE_MATCH = register_function("magnitude_match")
GAUSSIAN_TOPK = register_function("gaussian_topk")
# Per element: the square and its sum (the mean), then the multiply by target / rms; per row: the divide by d, the
# square root, vLLM's max with its eps and target / rms (gemma3n.py altup_embed and altup_unembed)
MAGNITUDE_FLOPS = (3, 4)
# Gemma-3n's Gaussian top-k of the MLP's gate (vLLM's GeluAndMulSparse, as PyTorch runs it): the mean (a sum per
# element, a divide per row), torch.std(unbiased=False) (its own mean again, then subtract, square and sum per
# element; a divide and a square root per row), the cutoff mean + std x z (2 a row), x - cutoff and the ReLU
GAUSSIAN_TOPK_FLOPS = (7, 6)


def _stream_width(name: str, x: Tensor, streams: int) -> int:
    if streams < 2 or x.shape[-1] % streams:
        raise OpgraphError(f"op {name!r}: {x} is not {streams} equal streams")
    return x.shape[-1] // streams


def altup_take(name: str, x: Tensor, *, streams: int, index: int = 0, out: str | None = None,
               role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """Stream `index` [..., d] of n = `streams` x [..., n d] (AltUp's active one, the first): reads only its rows.
    No FLOPs."""
    d = _stream_width(name, x, streams)
    if not 0 <= index < streams:
        raise OpgraphError(f"op {name!r}: stream {index} of {streams}")
    y = _out(out or name, (*x.shape[:-1], d), x, role, dtype)
    return Op(name, GATHER, ALTUP_TAKE, (x,), (y,), 0, reads=(_rows(x) * d,))


def altup_predict(name: str, x: Tensor, coefs: Tensor, *, streams: int, out: str | None = None,
                  role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """AltUp's predictions: each stream x_j + sum_i c[j, i] x_i, the n x n coefficients `coefs` [..., n^2] computed
    per token (Gemma3nTextAltUp.predict: the matmul of the streams by the coefficients, plus the streams). FLOPs
    2n + 1 per output element (n multiply-adds and the add)."""
    _stream_width(name, x, streams)
    if coefs.shape != (*x.shape[:-1], streams * streams):
        raise OpgraphError(f"op {name!r}: coefficients {coefs} must be {streams * streams} a row of {x}")
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, ALTUP_PREDICT, (x, coefs), (y,), x.numel * (2 * streams + 1))


def altup_correct(name: str, predictions: Tensor, activated: Tensor, coefs: Tensor, *, streams: int,
                  out: str | None = None, role: Role = Role.ACTIVATION, dtype: DType | None = None) -> Op:
    """AltUp's correction (Gemma3nTextAltUp.correct): the innovation, the layer's output `activated` [..., d] less
    the active stream's prediction, times each stream's coefficient plus one (`coefs` [..., n]), added to every
    stream of `predictions` [..., n d]. FLOPs per row: d (the innovation) and n (the coefficients' + 1); per output
    element 2 (the multiply and the add)."""
    d = _stream_width(name, predictions, streams)
    if activated.shape != (*predictions.shape[:-1], d) or coefs.shape != (*predictions.shape[:-1], streams):
        raise OpgraphError(f"op {name!r}: the output {activated} and coefficients {coefs} must be a stream of "
                           f"{predictions} and one a stream")
    y = _out(out or name, predictions.shape, predictions, role, dtype)
    return Op(name, ELEMENTWISE, ALTUP_CORRECT, (predictions, activated, coefs), (y,),
              _rows(predictions) * (d + streams) + 2 * predictions.numel)


def altup_add(name: str, x: Tensor, y: Tensor, *, streams: int, out: str | None = None, role: Role = Role.ACTIVATION,
              dtype: DType | None = None) -> Op:
    """y [..., d] added to every stream of x [..., n d] but the first (Gemma-3n's per-layer input, added to the
    streams a layer did not compute). FLOPs (n - 1) d a row."""
    d = _stream_width(name, x, streams)
    if y.shape != (*x.shape[:-1], d):
        raise OpgraphError(f"op {name!r}: {y} must be one stream of {x}")
    z = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, ALTUP_ADD, (x, y), (z,), _rows(x) * (streams - 1) * d)


def altup_mean(name: str, *parts: Tensor, out: str | None = None, role: Role = Role.ACTIVATION,
               dtype: DType | None = None) -> Op:
    """The mean of n streams, each [..., d] (Gemma-3n's last step before the final norm). FLOPs n per output
    element (n - 1 adds and the divide)."""
    if len(parts) < 2 or any(p.shape != parts[0].shape for p in parts):
        raise OpgraphError(f"op {name!r}: the streams {[str(p) for p in parts]} must be two or more of one shape")
    y = _out(out or name, parts[0].shape, parts[0], role, dtype)
    return Op(name, ELEMENTWISE, ALTUP_MEAN, parts, (y,), len(parts) * parts[0].numel)


def root_mean_square(name: str, x: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION,
                     dtype: DType | None = None) -> Op:
    """sqrt(mean(x^2)) of each row of x [..., d] -> [..., 1] (AltUp's target magnitude). FLOPs 2 per element (the
    square, the sum) and 2 a row (the divide, the square root)."""
    y = _out(out or name, (*x.shape[:-1], 1), x, role, dtype)
    return Op(name, NORM, ROOT_MEAN_SQUARE, (x,), (y,), 2 * x.numel + 2 * _rows(x))


def magnitude_match(name: str, x: Tensor, target: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION,
                    dtype: DType | None = None) -> Op:
    """x [..., d] rescaled to the root mean square `target` [..., 1] of another stream (Gemma-3n's altup_projections
    and altup_unembed_projections outputs): x times target / sqrt(mean(x^2)). FLOPs MAGNITUDE_FLOPS."""
    if target.shape != (*x.shape[:-1], 1):
        raise OpgraphError(f"op {name!r}: target {target} must be one value a row of {x}")
    per_elem, per_row = MAGNITUDE_FLOPS
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, NORM, MAGNITUDE_MATCH, (x, target), (y,), per_elem * x.numel + per_row * _rows(x))


def gaussian_topk(name: str, x: Tensor, *, out: str | None = None, role: Role = Role.ACTIVATION,
                  dtype: DType | None = None) -> Op:
    """Gemma-3n's activation sparsity on the MLP's gate x [..., f]: relu(x - (mean + std x z)) per row, keeping the
    values above the row's Gaussian quantile (z = icdf(target sparsity)); over this GPU's columns under tensor
    parallelism, as vLLM computes it. FLOPs GAUSSIAN_TOPK_FLOPS."""
    per_elem, per_row = GAUSSIAN_TOPK_FLOPS
    y = _out(out or name, x.shape, x, role, dtype)
    return Op(name, ELEMENTWISE, GAUSSIAN_TOPK, (x,), (y,), per_elem * x.numel + per_row * _rows(x))
