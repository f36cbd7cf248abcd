"""The operator graph: a networkx DiGraph keyed by unique op names, checked by `lint`, and a builder
whose calls read like a block's forward pass."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator

import attrs

import networkx as nx

from opgraph.core import ops
from opgraph.errors import OpgraphError
from opgraph.core.tensor import BF16, DType, Precision, Role, Tensor


class LintError(OpgraphError):
    """The graph is malformed; the message names the offending op or tensor."""


# Tensors that may legitimately have no producer inside the graph.
DECLARED_ROLES = frozenset({Role.INPUT, Role.WEIGHT, Role.KV_CACHE, Role.STATE})


class Graph:
    """A DAG of ops. `dag` is a plain nx.DiGraph: node = op name (attribute `op`), edge = producer ->
    consumer (attribute `tensors`, the names passed along it). Ops are kept in topological order."""

    def __init__(self, op_list: Iterable[ops.Op], outputs: Iterable[Tensor | str] = (), name: str = "graph"):
        self.name = name
        op_list = list(op_list)
        self.tensors: dict[str, Tensor] = {}
        self.producer: dict[str, str] = {}
        self.consumers: dict[str, list[str]] = {}
        self.edge_tensors: dict[tuple[str, str], list[str]] = {}  # the dag's edge attribute, read often by fusion
        self.dag = nx.DiGraph()
        in_order = self._lint_and_index(op_list)
        # Ops are kept in their topological order that stays closest to the order given (the lexicographic one by
        # position); when every edge already runs forward, that is the order given, and no sort is needed.
        self.ops: dict[str, ops.Op] = ({op.name: op for op in op_list} if in_order else
                                       {n: self.dag.nodes[n]["op"] for n in nx.lexicographical_topological_sort(
                                           self.dag, key=self._order.__getitem__)})
        self.outputs = self._resolve_outputs(outputs)

    # -- lint ---------------------------------------------------------------------------------------
    def _lint_and_index(self, op_list: list[ops.Op]) -> bool:
        """torch.fx's Graph.lint, for this vocabulary: unique names, one producer per tensor, consistent
        shapes, no dangling activations, no cycles. Raises LintError naming the culprit. Returns whether every
        edge runs forward in the order given (then there is no cycle, and that order is topological)."""
        forward = True
        self._order = {}
        for i, op in enumerate(op_list):
            if op.name in self._order:
                raise LintError(f"duplicate op name {op.name!r}")
            self._order[op.name] = i
            self.dag.add_node(op.name, op=op)
            for t in op.outputs:
                if t.name in self.producer:
                    raise LintError(f"tensor {t.name!r} is produced by both {self.producer[t.name]!r} and {op.name!r}")
                self.producer[t.name] = op.name
        for op in op_list:
            for t in (*op.inputs, *op.outputs):
                self._register(t, op)
            for t in op.inputs:
                self.consumers.setdefault(t.name, []).append(op.name)
                src = self.producer.get(t.name)
                if src is None:
                    if t.role not in DECLARED_ROLES:
                        raise LintError(f"tensor {t.name!r} (read by op {op.name!r}) has no producer and is not "
                                        f"a declared input, weight or cache")
                elif src == op.name:
                    raise LintError(f"op {op.name!r} consumes its own output {t.name!r} (a cycle)")
                else:
                    forward = forward and self._order[src] < self._order[op.name]
                    edge = self.dag.get_edge_data(src, op.name)
                    if edge is None:
                        self.edge_tensors[src, op.name] = names = [t.name]
                        self.dag.add_edge(src, op.name, tensors=names)
                    elif t.name not in edge["tensors"]:
                        edge["tensors"].append(t.name)
        if forward:
            return True
        try:
            cycle = nx.find_cycle(self.dag)
        except nx.NetworkXNoCycle:
            return False
        raise LintError("cycle through ops " + " -> ".join(u for u, _ in cycle) + f" -> {cycle[0][0]}")

    def _register(self, t: Tensor, op: ops.Op) -> None:
        seen = self.tensors.setdefault(t.name, t)
        if seen != t:
            who = self.producer.get(t.name)
            where = f"op {who!r} produces" if who else "it is first seen as"
            raise LintError(f"tensor {t.name!r}: shape/type mismatch at op {op.name!r}: {where} {seen}, "
                            f"op {op.name!r} uses {t}")

    def _resolve_outputs(self, outputs: Iterable[Tensor | str]) -> frozenset[str]:
        names = set()
        for o in outputs:
            n = o if isinstance(o, str) else o.name
            if n not in self.producer:
                raise LintError(f"declared output {n!r} is not produced by any op")
            names.add(n)
        # An unconsumed result is still a result: it is written out, never silently dropped.
        names.update(t for t in self.producer if not self.consumers.get(t))
        return frozenset(names)

    # -- queries ------------------------------------------------------------------------------------
    def persistent(self, tensor: str) -> bool:
        """Must reach memory whatever the fusion plan: graph outputs, new KV-cache entries and written recurrent
        states (role STATE: the next step reads them)."""
        return tensor in self.outputs or self.tensors[tensor].role in (Role.KV_CACHE, Role.STATE)

    def weights(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.role is Role.WEIGHT]

    def params(self) -> int:
        """Weight elements, each shared tensor (e.g. tied embeddings) once; weights another block holds
        (Tensor.borrowed) not at all."""
        return sum(t.numel for t in self.weights() if not t.borrowed)

    def weight_bytes(self) -> int:
        """Bytes to store the weights, each shared tensor once, those another block holds not at all."""
        return sum(t.nbytes for t in self.weights() if not t.borrowed)

    def quantized_inputs(self) -> frozenset[str]:
        """The operand types of weights whose GEMMs quantize their input to them (DType.quantizes_input: W8A8)."""
        return frozenset(t.dtype.name for t in self.weights() if t.dtype.quantizes_input)

    def weight_only(self, types: Iterable[str]) -> "Graph":
        """This graph with the input-quantizing weights of operand types `types` made weight-only (dequantized in
        the GEMM, multiplied at the activations' type): how a GPU without those types' matrix units runs them (vLLM's
        Marlin fp8 kernels on Ampere, its fp4 ones on Hopper). This same graph when there are none."""
        types = set(types)
        swap = {t.name: attrs.evolve(t, dtype=t.dtype.with_input_quantized(False)) for t in self.weights()
                if t.dtype.quantizes_input and t.dtype.name in types}
        if not swap:
            return self
        changed = [attrs.evolve(op, inputs=[swap.get(t.name, t) for t in op.inputs])
                   if any(t.name in swap for t in op.inputs) else op for op in self.ops.values()]
        return Graph(changed, self.outputs, self.name)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.ops)} ops)"


def lint(op_list: Iterable[ops.Op], outputs: Iterable[Tensor | str] = (), name: str = "graph") -> Graph:
    """Check a list of ops (unique names, one producer per tensor, matching shapes, no dangling
    activations, no cycles) and return the Graph; raises LintError naming the op or tensor at fault.
    Building a Graph always runs these checks, so a pass can trust any Graph it is handed."""
    return Graph(op_list, outputs, name)


def _op_method(factory):
    """Expose an op factory from `opgraph.core.ops` as a builder method that adds the op and returns its output
    (a tuple for an op with several), stored at the builder's precision for the output's role unless the call
    says otherwise. The op and output names get the builder's current scope in front."""
    @functools.wraps(factory)
    def method(self: "GraphBuilder", name: str, *args, **kwargs):
        kwargs.setdefault("dtype", self.precision.of(kwargs.get("role", Role.ACTIVATION)))
        if kwargs.get("out") is not None:
            kwargs["out"] = self._prefix + kwargs["out"]
        if kwargs.get("outs") is not None:
            kwargs["outs"] = [self._prefix + o for o in kwargs["outs"]]
        op = factory(self._prefix + name, *args, **kwargs)
        self.add(op)
        return op.outputs[0] if len(op.outputs) == 1 else op.outputs
    return method


def _state_op_method(factory):
    """As `_op_method`, for an op that also writes a recurrent state: `state_out` (the state's name) gets the scope
    in front too, and the state is stored at the builder's state precision unless the call says otherwise. Returns
    (output, new state)."""
    method = _op_method(factory)

    @functools.wraps(factory)
    def stateful(self: "GraphBuilder", name: str, *args, **kwargs):
        kwargs.setdefault("state_dtype", self.precision.of(Role.STATE))
        if kwargs.get("state_out") is not None:
            kwargs["state_out"] = self._prefix + kwargs["state_out"]
        return method(self, name, *args, **kwargs)
    return stateful


class GraphBuilder:
    """Builds a Graph call by call, like a forward pass:

    >>> b = GraphBuilder()
    >>> x = b.input("x", (2, 8, 64))
    >>> y = b.linear("proj", x, b.weight("proj.weight", (32, 64)))
    >>> g = b.build(outputs=[y])
    >>> g.ops["proj"].flops == 2 * 2 * 8 * 64 * 32
    True
    """

    def __init__(self, precision: Precision | DType = BF16, name: str = "graph",
                 weight_dtype: Callable[[str], DType] | None = None):
        self.precision = precision if isinstance(precision, Precision) else Precision.uniform(precision)
        self.name = name
        # A checkpoint that quantizes some weight matrices and not others: the dtype of each, by its checkpoint name
        # (as a piece names it, without the builder's scope: a shared expert's "mlp.shared_experts.up_proj.weight").
        self.weight_dtype = weight_dtype
        self._ops: list[ops.Op] = []
        self._kept: list[Tensor] = []  # outputs besides those build() is given (keep)
        self._declared: dict[str, Tensor] = {}
        self._prefix, self._part = "", ""
        self._borrowing = False

    @contextlib.contextmanager
    def borrowing(self, borrowed: bool = True) -> Iterator["GraphBuilder"]:
        """Inside the `with`, weights are another block's (Tensor.borrowed): read by the ops here, held and counted
        by the block that holds them (a block of layers that share their weights: Zamba2's transformer blocks)."""
        saved, self._borrowing = self._borrowing, borrowed
        try:
            yield self
        finally:
            self._borrowing = saved

    @contextlib.contextmanager
    def scope(self, name: str = "", part: str = "") -> Iterator["GraphBuilder"]:
        """Inside the `with`, op names, output names and declared tensor names get `name` in front, so a piece
        used twice in one block keeps its ops, weights and cache apart; ops are tagged with `part`
        ("attention", "mlp", ...) unless an enclosing scope already tagged them.

        >>> b = GraphBuilder()
        >>> x = b.input("x", (1, 4, 8))
        >>> with b.scope("expert0.", part="mlp"):
        ...     y = b.linear("up", x, b.weight("up.weight", (16, 8)))
        >>> b.build().ops["expert0.up"].part, y.name
        ('mlp', 'expert0.up')
        """
        saved = self._prefix, self._part
        self._prefix += name
        self._part = self._part or part
        try:
            yield self
        finally:
            self._prefix, self._part = saved

    def _declare(self, name: str, shape: tuple[int, ...], dtype: DType | None, role: Role,
                 borrowed: bool = False) -> Tensor:
        name = self._prefix + name
        t = Tensor(name, shape, dtype or self.precision.of(role), role, borrowed=borrowed)
        seen = self._declared.setdefault(name, t)
        if seen != t:
            raise LintError(f"tensor {name!r} declared twice, as {seen} ({seen.role.value}) and {t} ({role.value})")
        return seen

    def input(self, name: str, shape: tuple[int, ...], dtype: DType | None = None) -> Tensor:
        """An activation that comes from outside the graph (the previous layer, token ids)."""
        return self._declare(name, shape, dtype, Role.INPUT)

    def weight(self, name: str, shape: tuple[int, ...], dtype: DType | None = None) -> Tensor:
        """A parameter. Declaring the same name again returns the same tensor (tied weights).
        Matrices are stored at the weight precision; vectors (norm scales, biases) at the activation
        precision, as weight-quantization schemes leave them."""
        if dtype is None and len(shape) == 1:
            dtype = self.precision.act
        elif dtype is None and self.weight_dtype is not None:
            dtype = self.weight_dtype(name)
        return self._declare(name, shape, dtype, Role.WEIGHT, self._borrowing)

    def cache(self, name: str, shape: tuple[int, ...], dtype: DType | None = None, *,
              borrowed: bool = False) -> Tensor:
        """KV-cache entries written by earlier steps, read here; `borrowed`: another layer's, which that layer
        holds (Tensor.borrowed), so this one's cache does not count them."""
        return self._declare(name, shape, dtype, Role.KV_CACHE, borrowed)

    def state(self, name: str, shape: tuple[int, ...], dtype: DType | None = None) -> Tensor:
        """A recurrent state written by the previous step, read here (role STATE, at the precision's state dtype):
        a state-space or linear-attention layer's conv or SSM state, whose size does not depend on the context."""
        return self._declare(name, shape, dtype, Role.STATE)

    def add(self, op: ops.Op) -> Tensor:
        """Add any op (including one built by hand, whose names it keeps); returns its first output. The op is
        tagged with the current scope's part unless it has one."""
        if self._part and not op.part:
            op = attrs.evolve(op, part=self._part)
        self._ops.append(op)
        return op.outputs[0]

    linear = _op_method(ops.linear)
    attention_scores = _op_method(ops.attention_scores)
    attention_values = _op_method(ops.attention_values)
    softmax = _op_method(ops.softmax)
    norm = _op_method(ops.norm)
    rms_stats = _op_method(ops.rms_stats)
    rms_apply = _op_method(ops.rms_apply)
    elementwise = _op_method(ops.elementwise)
    rope = _op_method(ops.rope)
    embedding = _op_method(ops.embedding)
    take_last = _op_method(ops.take_last)
    concat_heads = _op_method(ops.concat_heads)
    grouped_linear = _op_method(ops.grouped_linear)
    multi_linear = _op_method(ops.multi_linear)
    top_k = _op_method(ops.top_k)
    scale = _op_method(ops.scale)
    slice_last = _op_method(ops.slice_last)
    pad_last = _op_method(ops.pad_last)
    moe_combine = _op_method(ops.moe_combine)
    all_reduce = _op_method(ops.all_reduce)
    all_gather = _op_method(ops.all_gather)
    reduce_scatter = _op_method(ops.reduce_scatter)
    all_to_all = _op_method(ops.all_to_all)
    ep_dispatch = _op_method(ops.ep_dispatch)
    moe_route = _op_method(ops.moe_route)
    moe_unroute = _op_method(ops.moe_unroute)
    ep_combine = _op_method(ops.ep_combine)
    send_recv = _op_method(ops.send_recv)
    causal_conv1d = _state_op_method(ops.causal_conv1d)
    ssd_scan = _state_op_method(ops.ssd_scan)
    selective_scan = _state_op_method(ops.selective_scan)
    gated_delta_rule = _state_op_method(ops.gated_delta_rule)
    kimi_delta_rule = _state_op_method(ops.kimi_delta_rule)
    lightning_attention = _state_op_method(ops.lightning_attention)
    kda_gate = _op_method(ops.kda_gate)
    gated_rmsnorm = _op_method(ops.gated_rmsnorm)
    hadamard = _op_method(ops.hadamard)
    index_scores = _op_method(ops.index_scores)
    block_scores = _op_method(ops.block_scores)
    gather_selected = _op_method(ops.gather_selected)
    candidate_blocks = _op_method(ops.candidate_blocks)
    candidate_mask = _op_method(ops.candidate_mask)
    compress_pool = _state_op_method(ops.compress_pool)
    hc_coefficients = _op_method(ops.hc_coefficients)
    hc_collapse = _op_method(ops.hc_collapse)
    hc_expand = _op_method(ops.hc_expand)
    hc_repeat = _op_method(ops.hc_repeat)
    altup_take = _op_method(ops.altup_take)
    altup_predict = _op_method(ops.altup_predict)
    altup_correct = _op_method(ops.altup_correct)
    altup_add = _op_method(ops.altup_add)
    altup_mean = _op_method(ops.altup_mean)
    root_mean_square = _op_method(ops.root_mean_square)
    magnitude_match = _op_method(ops.magnitude_match)
    gaussian_topk = _op_method(ops.gaussian_topk)
    ngram_hash = _state_op_method(ops.ngram_hash)
    engram_lookup = _op_method(ops.engram_lookup)
    engram_gate = _op_method(ops.engram_gate)
    attn_res_mix = _op_method(ops.attn_res_mix)
    attn_res_bank = _op_method(ops.attn_res_bank)

    def keep(self, t: Tensor) -> Tensor:
        """Make `t` one of the graph's outputs besides those build() is given (a result later layers read, as
        Block AttnRes's snapshots)."""
        self._kept.append(t)
        return t

    def build(self, outputs: Iterable[Tensor | str] = ()) -> Graph:
        return Graph(self._ops, [*outputs, *self._kept], name=self.name)
