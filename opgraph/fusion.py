"""Fusion plans: data (rules and explicit groups) plus the one function that applies them.

A plan partitions a graph's ops into kernels. `materialized` is the single place that decides
which tensors reach memory: a tensor is written when it crosses a kernel boundary or must persist
(a new KV-cache entry, a graph output). Everything else stays on chip and costs no bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import networkx as nx

from opgraph.errors import OpgraphError
from opgraph.graph import Graph


class FusionError(OpgraphError):
    """The plan cannot be applied to this graph; the message names the rule, group or ops."""


def _kinds(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class FuseRule:
    """Fuse a producer op with a consumer op along an edge of the graph.

    `producer` / `consumer` are sets of op kinds or functions ("norm", "matmul", "qk", "silu"...);
    None matches any op. With `single_consumer`, the edge fuses only when the consumer is the only op
    that reads any of the producer's outputs: a result that several ops need is kept in memory
    (tinygrad's "a single consumer fuses" rule).
    """

    name: str
    producer: frozenset[str] | None = attrs.field(default=None, converter=_kinds)
    consumer: frozenset[str] | None = attrs.field(default=None, converter=_kinds)
    single_consumer: bool = False


@attrs.frozen
class FusionPlan:
    """A fusion strategy: rules applied to every edge, then explicit groups of op names.
    A group names ops of one block; ops of a group missing from a block are an error unless the
    whole group is absent there (so one plan serves a model's layer and its embedding/head block)."""

    name: str
    rules: tuple[FuseRule, ...] = attrs.field(default=(), converter=tuple)
    groups: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=lambda gs: tuple(tuple(g) for g in gs))
    description: str = ""


@attrs.frozen
class Kernel:
    """A fused kernel, named after its first op in topological order."""

    name: str
    ops: tuple[str, ...]


@attrs.frozen
class Partition:
    """The result of applying a plan to one graph."""

    kernels: tuple[Kernel, ...]
    kernel_of: dict[str, str]
    materialized: frozenset[str]
    groups_used: frozenset[int]  # indices into plan.groups that matched this graph


def _matches(sel: frozenset[str] | None, op) -> bool:
    return sel is None or op.kind in sel or op.fn in sel


def _rule_edges(graph: Graph, rule: FuseRule):
    for u, v in graph.dag.edges:
        pu, pv = graph.ops[u], graph.ops[v]
        if not (_matches(rule.producer, pu) and _matches(rule.consumer, pv)):
            continue
        if rule.single_consumer and set(graph.dag.successors(u)) != {v}:
            continue
        yield u, v


def apply(plan: FusionPlan, graph: Graph) -> Partition:
    """Partition `graph` into kernels by `plan`, check the kernels form a DAG, and decide what is materialized."""
    uf = nx.utils.UnionFind(graph.ops)
    for rule in plan.rules:
        for u, v in _rule_edges(graph, rule):
            uf.union(u, v)
    used = set()
    for i, group in enumerate(plan.groups):
        present = [n for n in group if n in graph.ops]
        if not present:
            continue
        missing = [n for n in group if n not in graph.ops]
        if missing:
            raise FusionError(f"fusion plan {plan.name!r}: group {list(group)} names op(s) {missing} that are not "
                              f"in block {graph.name!r} (its ops: {', '.join(graph.ops)})")
        uf.union(*present)
        used.add(i)
    order = {name: i for i, name in enumerate(graph.ops)}
    kernels = []
    kernel_of = {}
    for members in sorted((sorted(s, key=order.__getitem__) for s in uf.to_sets()), key=lambda m: order[m[0]]):
        k = Kernel(members[0], tuple(members))
        kernels.append(k)
        kernel_of.update(dict.fromkeys(members, k.name))
    _check_acyclic(plan, graph, kernel_of)
    return Partition(tuple(kernels), kernel_of, materialized(graph, kernel_of), frozenset(used))


def _check_acyclic(plan: FusionPlan, graph: Graph, kernel_of: dict[str, str]) -> None:
    """A kernel must be able to run after all its inputs exist: the kernel graph has to be a DAG."""
    kg = nx.DiGraph()
    kg.add_nodes_from(set(kernel_of.values()))
    kg.add_edges_from((kernel_of[u], kernel_of[v]) for u, v in graph.dag.edges if kernel_of[u] != kernel_of[v])
    try:
        cycle = nx.find_cycle(kg)
    except nx.NetworkXNoCycle:
        return
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


# -- the shipped strategies ------------------------------------------------------------------------
ATTENTION_CORE = (
    FuseRule("attention core: scores stay on chip", producer={"qk"}, consumer={"softmax"}),
    FuseRule("attention core: probabilities stay on chip", producer={"softmax"}, consumer={"av"}),
)

UNFUSED = FusionPlan("unfused", description="every op is its own kernel, as in eager PyTorch")
FLASH = FusionPlan("flash", ATTENTION_CORE,
                   description="the attention core (qk, softmax, av) is one kernel; everything else unfused")
FUSED = FusionPlan(
    "fused",
    (
        FuseRule("a norm fuses into the ops that consume it", producer={"norm"}),
        *ATTENTION_CORE,
        FuseRule("an op fuses into its only consumer (elementwise epilogues, rope, residual adds, "
                 "q into attention, attention into o_proj)", single_consumer=True),
    ),
    description="well-optimized: norm into the projections, elementwise ops and residual adds into epilogues, "
                "attention core in one kernel; only results needed by several ops or kept (KV cache, "
                "outputs) reach memory",
)

STRATEGIES: dict[str, FusionPlan] = {p.name: p for p in (UNFUSED, FLASH, FUSED)}


def strategy(name: str) -> FusionPlan:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise OpgraphError(f"unknown fusion strategy {name!r}; valid: {', '.join(STRATEGIES)}") from None
