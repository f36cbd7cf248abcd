"""Fusion plans: data (rules and explicit groups) plus the one function that applies them.

A plan partitions a graph's ops into kernels. `materialized` is the single place that decides
which tensors reach memory: a tensor is written when it crosses a kernel boundary or must persist
(a new KV-cache entry, a graph output). Everything else stays on chip and costs no bytes.

How a plan is applied (`apply`):
1. Fuse rules, in order, each over the graph's edges in topological order: a matching edge merges
   the kernels of its producer and consumer, unless a `never` rule forbids it. A never rule is a
   constraint, not a filter: no merge, direct or through other ops, may put the two ends of an edge
   it matches into one kernel.
2. Explicit groups merge their ops whatever the rules say.
3. The kernel graph must be a DAG; then `materialized` decides what reaches memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import networkx as nx

from opgraph.errors import OpgraphError, noun
from opgraph.core.graph import Graph
from opgraph.core.sets import DisjointSets
from opgraph.core.tensor import Role


class FusionError(OpgraphError):
    """The plan cannot be applied to this graph; the message names the plan, the rule or group, and the ops."""


def _names(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class FuseRule:
    """Fuse (or, with `never`, forbid fusing) a producer op with a consumer op along an edge.

    `producer` / `consumer`: op kinds or functions ("norm", "matmul", "qk", "silu", ...); None matches any op.
    `tensor`: roles of the tensor passed along the edge ("activation", "kv_cache"); None matches any.
    `single_consumer`: only when the consumer is the only op reading the results passed along the edge
    (tinygrad's "a single consumer fuses"; an op with several outputs may fuse with each output's reader);
    `single_producer`: only when the producer is the only op the consumer reads from.
    `same_part`: only when the producer, the consumer and every other reader of the results passed along the
    edge carry the same part tag (attention, mlp, ...): a result shared by two branches of a block, or two
    branches meeting in one op, stay separate kernels unless a rule without it says otherwise.
    `stacked`: only along an edge one end of which multiplies by a stack of matrices, one per group ([experts, out,
    in]: the routed experts' GEMMs), and neither end of which multiplies by a plain matrix: the routed experts' w13,
    activation, w2 and weighted sum, which engines run as one fused-MoE call, and not the shared experts beside them.
    `siblings`: fuse side by side instead of along an edge (horizontal fusion): ops matching `consumer` that do not
    depend on each other; those with weights only when they read the same input and their weights belong to one
    module of the checkpoint (a weight's name up to its last two dotted parts: self_attn for self_attn.q_proj.weight)
    and, with `packed`, to one of its lists of leaf names (vLLM's packed_modules_mapping: q_proj, k_proj and v_proj
    run as one qkv_proj GEMM). Ops without weights (rope on q and on k) merge by kind alone. With `same_part`: one part.
    """

    name: str
    producer: frozenset[str] | None = attrs.field(default=None, converter=_names)
    consumer: frozenset[str] | None = attrs.field(default=None, converter=_names)
    tensor: frozenset[str] | None = attrs.field(default=None, converter=_names)
    single_consumer: bool = False
    single_producer: bool = False
    same_part: bool = False
    stacked: bool = False
    never: bool = False
    siblings: bool = False
    packed: tuple[frozenset[str], ...] = attrs.field(default=(), converter=lambda ps: tuple(frozenset(p) for p in ps))

    def __attrs_post_init__(self) -> None:
        edge = [k for k in ("producer", "tensor", "single_consumer", "single_producer", "stacked", "never")
                if getattr(self, k)]
        if self.siblings and edge:
            raise OpgraphError(f"fuse rule {self.name!r}: siblings fuse side by side, not along an edge; "
                               f"{', '.join(edge)} cannot be combined with it")
        if self.packed and not self.siblings:
            raise OpgraphError(f"fuse rule {self.name!r}: packed lists weights fused side by side; it needs siblings")


@attrs.frozen
class FusionPlan:
    """A fusion strategy: rules, then explicit groups of op names. A group names ops of one block; a
    group whose ops are all absent from a block is skipped there (one plan serves a model's layers and
    its embedding/head block), but a group matching no block at all is an error."""

    name: str
    rules: tuple[FuseRule, ...] = attrs.field(default=(), converter=tuple)
    groups: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=lambda gs: tuple(tuple(g) for g in gs))
    description: str = ""


@attrs.frozen
class Kernel:
    """A fused kernel, named after its first op in topological order."""

    name: str
    ops: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.ops[0] if len(self.ops) == 1 else f"{self.ops[0]}..{self.ops[-1]}"


@attrs.frozen
class Partition:
    """The result of applying a plan to one graph."""

    kernels: tuple[Kernel, ...]  # in an order they can run in
    kernel_of: dict[str, str]
    materialized: frozenset[str]
    groups_used: frozenset[int]  # indices into plan.groups that matched this graph


def _matches(sel: frozenset[str] | None, op) -> bool:
    return sel is None or op.kind in sel or op.fn in sel


def _edge_matches(graph: Graph, rule: FuseRule, u: str, v: str) -> bool:
    if not (_matches(rule.producer, graph.ops[u]) and _matches(rule.consumer, graph.ops[v])):
        return False
    if rule.tensor is not None and not any(graph.tensors[t].role.value in rule.tensor
                                           for t in graph.edge_tensors[u, v]):
        return False
    if rule.single_consumer and any(graph.consumers[t] != [v] for t in graph.edge_tensors[u, v]):
        return False
    if rule.single_producer and set(graph.dag.predecessors(v)) != {u}:
        return False
    if rule.stacked:
        matrices = [len(op.inputs[1].shape) for op in (graph.ops[u], graph.ops[v]) if op.fn == "linear"]
        if 3 not in matrices or 2 in matrices:
            return False
    if rule.same_part:
        part = graph.ops[u].part
        readers = {c for t in graph.edge_tensors[u, v] for c in graph.consumers[t]}
        if any(graph.ops[c].part != part for c in readers):
            return False
    return True


class _Kernels:
    """Union-find over ops that refuses merges a never rule forbids."""

    def __init__(self, ops: Iterable[str], forbidden: list[tuple[str, str]]):
        self.uf = DisjointSets(ops)
        self.forbidden = forbidden

    def can_merge(self, a: str, b: str) -> bool:
        if not self.forbidden:
            return True
        ra, rb = self.uf[a], self.uf[b]
        return not any({self.uf[x], self.uf[y]} == {ra, rb} for x, y in self.forbidden)

    def merge(self, *ops: str) -> None:
        self.uf.union(*ops)


def apply(plan: FusionPlan, graph: Graph) -> Partition:
    """Partition `graph` into kernels by `plan`, check the kernels form a DAG, and decide what is materialized."""
    edges = [(u, v) for u in graph.ops for v in graph.dag.successors(u)]  # topological order of producers
    forbidden = [(u, v) for rule in plan.rules if rule.never for u, v in edges if _edge_matches(graph, rule, u, v)]
    order = {name: i for i, name in enumerate(graph.ops)}
    try:
        return _partition(plan, graph, _merge_by_rules(plan, graph, edges, forbidden, acyclic=False), order)
    except FusionError:
        # A rule fused two kernels that a path through a third connects (a shared expert's add and the
        # expert-parallel combine it waits for): merge again, skipping each rule's merge that would close a
        # cycle, as compilers' fusion passes do; a cycle that remains is the plan's groups', and an error.
        # Plans whose merges are all safe never take this slower path.
        return _partition(plan, graph, _merge_by_rules(plan, graph, edges, forbidden, acyclic=True), order)


def _partition(plan: FusionPlan, graph: Graph, kernels: "_Kernels", order: dict[str, int]) -> Partition:
    """The plan's explicit groups merged on top of its rules' kernels, checked to run in some order."""
    used = set()
    for i, group in enumerate(plan.groups):
        present = [n for n in group if n in graph.ops]
        if not present:
            continue
        _check_group(plan, graph, group, present)
        kernels.merge(*present)
        used.add(i)
    members = {m[0]: tuple(m) for m in (sorted(s, key=order.__getitem__) for s in kernels.uf.to_sets())}
    kernel_of = {op: first for first, ops in members.items() for op in ops}
    run_order = _check_acyclic(plan, graph, kernel_of, order)
    ks = tuple(Kernel(name, members[name]) for name in run_order)
    return Partition(ks, kernel_of, materialized(graph, kernel_of), frozenset(used))


def _merge_by_rules(plan: FusionPlan, graph: Graph, edges: list, forbidden: list, acyclic: bool) -> _Kernels:
    kernels = _Kernels(graph.ops, forbidden)
    # kernel -> the kernels reading its results, kept only when merges are checked for cycles
    succ = {n: set(graph.dag.successors(n)) for n in graph.ops} if acyclic else None
    for rule in plan.rules:
        if rule.never:
            continue
        pairs = _sibling_pairs(graph, rule) if rule.siblings else (
            (u, v) for u, v in edges if _edge_matches(graph, rule, u, v))
        for u, v in pairs:
            if kernels.can_merge(u, v):
                a, b = kernels.uf[u], kernels.uf[v]
                if not acyclic or a == b:
                    kernels.merge(u, v)
                    continue
                if _reaches(succ, succ[a] - {b}, b) or _reaches(succ, succ[b] - {a}, a):
                    continue  # a path through a third kernel joins them: fused, they would wait on themselves
                kernels.merge(u, v)
                root = kernels.uf[u]
                merged = (succ.pop(a) | succ.pop(b)) - {a, b}
                for readers in succ.values():
                    if a in readers or b in readers:
                        readers -= {a, b}
                        readers.add(root)
                succ[root] = merged
    return kernels


def _weight_module(op) -> tuple[str, str] | None:
    """The checkpoint module and leaf name of an op's first weight (self_attn.q_proj.weight -> self_attn, q_proj);
    None for an op without weights."""
    for t in op.inputs:
        if t.role is Role.WEIGHT:
            parts = t.name.split(".")
            return ".".join(parts[:-2]), parts[-2] if len(parts) > 1 else parts[0]
    return None


def _sibling_pairs(graph: Graph, rule: FuseRule) -> list[tuple[str, str]]:
    """The pairs a siblings rule merges, each family's first op with each other one: ops matching its consumer (of
    one part, with same_part); with weights, of one module and input (and one packed list, where it has them)."""
    families: dict[tuple, list[str]] = {}
    for v, op in graph.ops.items():
        if not _matches(rule.consumer, op):
            continue
        weight = _weight_module(op)
        key: tuple = (op.part if rule.same_part else "",)
        if weight is not None:
            module, leaf = weight
            packed = next((i for i, names in enumerate(rule.packed) if leaf in names), None) if rule.packed else -1
            if packed is None:
                continue
            key += (module, packed, op.inputs[0].name)
        families.setdefault(key, []).append(v)
    return [(ops[0], v) for ops in families.values() for v in ops[1:]]


def _reaches(succ: dict[str, set[str]], start: set[str], target: str) -> bool:
    seen, todo = set(start), list(start)
    while todo:
        n = todo.pop()
        if n == target:
            return True
        for m in succ[n] - seen:
            seen.add(m)
            todo.append(m)
    return False


def _check_group(plan: FusionPlan, graph: Graph, group: tuple[str, ...], present: list[str]) -> None:
    """A group must name ops of this block, and they must be connected: through producer-consumer edges
    or by reading the same activation (horizontal fusion, as of q_proj, k_proj and v_proj)."""
    missing = [n for n in group if n not in graph.ops]
    if missing:
        raise FusionError(f"fusion plan {plan.name!r}: group {list(group)} names {noun(len(missing), 'op')} {missing} "
                          f"that {noun(len(missing), 'is', 'are')} not in block {graph.name!r} "
                          f"(its ops: {', '.join(graph.ops)})")
    links = nx.Graph()
    links.add_nodes_from(present)
    links.add_edges_from((u, v) for u in present for v in graph.dag.successors(u) if v in links)
    readers: dict[str, list[str]] = {}
    for n in present:
        for t in graph.ops[n].inputs:
            if t.role is not Role.WEIGHT:
                readers.setdefault(t.name, []).append(n)
    for ops_reading in readers.values():
        links.add_edges_from(zip(ops_reading, ops_reading[1:]))
    parts = list(nx.connected_components(links))
    if len(parts) > 1:
        shown = " | ".join(", ".join(sorted(p, key=list(graph.ops).index)) for p in parts)
        raise FusionError(f"fusion plan {plan.name!r}: group {list(group)} is not connected in block "
                          f"{graph.name!r}: its ops fall apart into {{{shown}}}; a kernel must be one piece of the "
                          f"graph (ops linked by the tensors they pass or share)")


def _check_acyclic(plan: FusionPlan, graph: Graph, kernel_of: dict[str, str], order: dict[str, int]) -> list[str]:
    """A kernel must be able to run after all its inputs exist: the kernel graph has to be a DAG. Returns the
    kernels in an order they can run in (ties broken by their first op's position)."""
    between = {(kernel_of[u], kernel_of[v]) for u, v in graph.edge_tensors if kernel_of[u] != kernel_of[v]}
    if all(order[a] < order[b] for a, b in between):  # every edge runs forward: a DAG, run in first-op order
        return sorted(set(kernel_of.values()), key=order.__getitem__)
    kg = nx.DiGraph()
    kg.add_nodes_from(set(kernel_of.values()))
    kg.add_edges_from(between)
    try:
        cycle = nx.find_cycle(kg)
    except nx.NetworkXNoCycle:
        return list(nx.lexicographical_topological_sort(kg, key=order.__getitem__))
    path = " -> ".join(u for u, _ in cycle)
    raise FusionError(f"fusion plan {plan.name!r} makes the kernel graph cyclic in block {graph.name!r}: "
                      f"kernels {path} -> {cycle[0][0]} depend on each other (a kernel would need its own output "
                      f"from another kernel); fuse the ops in between too, or split the group")


def materialized(graph: Graph, kernel_of: dict[str, str]) -> frozenset[str]:
    """THE store-or-keep-on-chip decision. A produced tensor is written to memory when it must persist
    or when some consumer runs in another kernel than its producer."""
    out = set()
    for name, producer in graph.producer.items():
        if graph.persistent(name) or any(kernel_of[c] != kernel_of[producer] for c in graph.consumers.get(name, ())):
            out.add(name)
    return frozenset(out)
