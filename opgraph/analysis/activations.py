"""The fate of every tensor a graph produces under a fusion plan, as the reference analysis lists them:
WRITE (materialized, and read back by so many other kernels), FUSED (handed to its consumers on chip,
inside one kernel) or AVOIDED (never formed whole at all)."""

from __future__ import annotations

import attrs

from opgraph.core.fusion import FusionPlan, Partition, apply
from opgraph.core.graph import Graph
from opgraph.core.model import Model
from opgraph.errors import OpgraphError

MATERIALIZED, FUSED, AVOIDED = "materialized", "fused", "avoided"
# A fused attention core computes the score matrix tile by tile with an online softmax (FlashAttention),
# so the scores and probabilities never exist whole, not even on chip.
NEVER_FORMED = frozenset({"qk", "softmax"})


@attrs.frozen
class Fate:
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    nbytes: int
    fate: str
    reads: int  # times it is read back from memory: once per other kernel that consumes it
    producer: str  # op
    kernel: str  # label of the producing kernel
    consumer_kernels: tuple[str, ...]  # labels of the other kernels that read it


def fates(graph: Graph, part: Partition) -> tuple[Fate, ...]:
    """One record per produced tensor, in topological order.

    >>> from opgraph import GraphBuilder, strategy
    >>> b = GraphBuilder()
    >>> x = b.input("x", (1, 4, 8))
    >>> h = b.norm("ln", x, b.weight("ln.w", (8,)), out="h")
    >>> y = b.linear("proj", h, b.weight("w", (16, 8)), out="y")
    >>> g = b.build(outputs=[y])
    >>> [(f.tensor, f.fate) for f in fates(g, apply(strategy("fused"), g))]
    [('h', 'fused'), ('y', 'materialized')]
    """
    labels = {k.name: k.label for k in part.kernels}
    position = {name: i for i, name in enumerate(graph.ops)}
    out = []
    for name, producer in graph.producer.items():
        t = graph.tensors[name]
        own = part.kernel_of[producer]
        others = sorted({part.kernel_of[c] for c in graph.consumers.get(name, ())} - {own}, key=position.__getitem__)
        if name in part.materialized:
            fate = MATERIALIZED
        elif graph.ops[producer].fn in NEVER_FORMED:
            fate = AVOIDED
        else:
            fate = FUSED
        out.append(Fate(name, t.shape, str(t.dtype), t.role.value, t.nbytes, fate,
                        len(others) if fate == MATERIALIZED else 0, producer, labels[own],
                        tuple(labels[k] for k in others)))
    return tuple(out)


@attrs.frozen
class BlockFates:
    name: str
    count: int
    fates: tuple[Fate, ...]


@attrs.frozen
class PhaseFates:
    phase: object  # Phase
    blocks: tuple[BlockFates, ...]


@attrs.frozen
class Activations:
    """`opgraph activations`: every produced tensor's fate, per phase and block."""

    model: str
    plan: FusionPlan
    phases: tuple[PhaseFates, ...]


def activations(models: list[Model], plan: FusionPlan) -> Activations:
    """The fates under `plan` in each of `models` (one per phase); needs no hardware."""
    phases = tuple(PhaseFates(m.phase, tuple(BlockFates(b.name, b.count, fates(b.graph, apply(plan, b.graph)))
                                             for b in m.blocks)) for m in models)
    return Activations(models[0].name, plan, phases)


@attrs.frozen
class BlockView:
    """One block of one phase under a plan: what `opgraph graph` draws."""

    model: str
    phase: object  # Phase
    plan: FusionPlan
    graph: Graph
    partition: Partition


def block_view(model: Model, plan: FusionPlan, block: str | None = None) -> BlockView:
    """The named block (default: the first) of `model` partitioned by `plan`."""
    blocks = {b.name: b for b in model.blocks}
    name = block or model.blocks[0].name
    if name not in blocks:
        raise OpgraphError(f"unknown block {name!r}; valid: {', '.join(blocks)}")
    g = blocks[name].graph
    return BlockView(model.name, model.phase, plan, g, apply(plan, g))
