"""Memory capacity: what one step of a phase needs to hold on the GPU, and whether it fits.

Three parts, all in bytes (exact ints):
- weights: storage of every weight tensor (tied ones once), whatever a step reads of them;
- KV cache: every tensor of role KV_CACHE in each layer's graph, and each recurrent state (role STATE) it
  writes (a state-space or linear-attention layer's fixed-size conv and SSM states), times the layer count. In decode at
  context C those are the cached positions the step reads plus the new token's entry it writes, so the
  figure is the cache *after* the step: C+1 tokens per sequence, or min(C+1, window) in a sliding-window
  layer, and MLA's latent+rope entries rather than per-head K and V. In prefill they are the K and V the
  step writes for all seq_len positions;
- activations: the peak of the materialized (non-weight, non-cache) tensors alive at once, walking a
  block's kernels in topological order (`peak_activations`), the largest over the model's blocks. Layers
  run one after another, so one layer's peak is the model's, not one per layer.

The total is their sum; it fits when it is at most the GPU's capacity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import attrs

from opgraph.core.model import precision_in_use
from opgraph.pricing.cost import PhaseCost
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FusionPlan, Partition, apply
from opgraph.core.graph import Graph
from opgraph.core.sets import DisjointSets
from opgraph.pricing.hardware import Hardware
from opgraph.core.model import Model
from opgraph.core.phase import Phase
from opgraph.analysis.search import first_true
from opgraph.core.tensor import Role

# Roles whose bytes are counted elsewhere (weights, KV cache), never as activations.
_NOT_ACTIVATIONS = frozenset({Role.WEIGHT, Role.KV_CACHE, Role.STATE})


@attrs.frozen
class Peak:
    """The most activation bytes alive at once in one block, at which kernel, and which tensors."""

    bytes: int
    kernel: str  # label of the kernel running at the peak ("" for a block with no activations)
    alive: tuple[str, ...]  # tensor names alive then, in topological order


def _pieces(graph: Graph) -> list[set[str]]:
    """The op sets that share no activation: linked by the tensors they pass or by reading the same input."""
    links = DisjointSets(graph.ops)  # not a networkx graph to walk: every sweep point asks this
    for u, v in graph.edge_tensors:
        links.union(u, v)
    for name, readers in graph.consumers.items():
        if name not in graph.producer and graph.tensors[name].role is not Role.WEIGHT:
            links.union(*readers)
    order = {n: i for i, n in enumerate(graph.ops)}  # pieces in the order of their first op, as the graph runs
    return sorted((set(p) for p in links.to_sets()), key=lambda p: min(map(order.__getitem__, p)))


def _lifetimes(graph: Graph, part: Partition, ops: set[str], step: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(first, last) kernel step at which each activation among `ops`' tensors occupies memory: a
    materialized result from the kernel that writes it to the last kernel that reads it (to the last step
    if it is a block output); a graph input from the first step to its last reader."""
    last = max((step[part.kernel_of[o]] for o in ops), default=0)
    first = min((step[part.kernel_of[o]] for o in ops), default=0)
    spans = {}
    for name, t in graph.tensors.items():
        if t.role in _NOT_ACTIVATIONS:
            continue
        producer = graph.producer.get(name)
        readers = [step[part.kernel_of[c]] for c in graph.consumers.get(name, ()) if c in ops]
        if producer is None:
            if readers:
                spans[name] = (first, max(readers))
        elif producer in ops and name in part.materialized:
            end = last if graph.persistent(name) else max(readers, default=step[part.kernel_of[producer]])
            spans[name] = (step[part.kernel_of[producer]], end)
    return spans


def peak_activations(graph: Graph, part: Partition) -> Peak:
    """The largest total of materialized activations alive at any kernel step: not the sum of all writes.

    Tensors fused inside a kernel stay on chip and cost nothing; weights and KV-cache entries are counted
    elsewhere. Parts of a block that share no tensor (the embedding and the head in `embed_head`) run at
    different times of the model, so each is walked on its own and the block's peak is the larger.

    >>> from opgraph.core.graph import GraphBuilder
    >>> from opgraph.core.fusion import FusionPlan, apply
    >>> b = GraphBuilder()
    >>> x = b.input("x", (1, 4, 8))                         # 64 bytes of bf16
    >>> a = b.linear("up", x, b.weight("w1", (16, 8)))       # 128 bytes
    >>> y = b.linear("down", a, b.weight("w2", (8, 16)))     # 64 bytes
    >>> g = b.build(outputs=[y])
    >>> peak_activations(g, apply(FusionPlan("none"), g)).bytes  # x and a while `up` runs
    192
    """
    order = [k.name for k in part.kernels]  # apply() lists kernels in an order they can run in
    step = {k: i for i, k in enumerate(order)}
    best = Peak(0, "", ())
    for ops in _pieces(graph):
        spans = _lifetimes(graph, part, ops, step)
        for i in sorted({step[part.kernel_of[o]] for o in ops}):
            alive = [n for n, (a, z) in spans.items() if a <= i <= z]
            total = sum(graph.tensors[n].nbytes for n in alive)
            if total > best.bytes:
                label = next(k.label for k in part.kernels if k.name == order[i])
                best = Peak(total, label, tuple(alive))
    return best


def kv_cache_bytes(graph: Graph) -> int:
    """Bytes of one instance of a block's cache: its KV-cache tensors (those read from the cache and those
    written), plus the recurrent states (role STATE) it writes. A state is updated in place, so what the cache
    holds is one copy, the written one, in prefill and decode alike: the state a decode step reads is not
    counted again, and the total does not grow with the context. Entries borrowed from another layer's cache
    are that layer's, not counted here."""
    return sum(t.nbytes for t in graph.tensors.values()
               if (t.role is Role.KV_CACHE and not t.borrowed) or (t.role is Role.STATE and t.name in graph.producer))


@attrs.frozen
class BlockMemory:
    name: str
    count: int
    kv_cache_bytes: int  # one instance
    peak: Peak  # one instance


@attrs.frozen
class Footprint:
    """What one step of `phase` holds in GPU memory, against `capacity` bytes."""

    model: str
    phase: Phase
    capacity: float
    weight_bytes: int
    blocks: tuple[BlockMemory, ...]
    precision: dict[str, str] = attrs.field(factory=dict)  # role -> dtype(s), for the reader
    group_kv_cache_bytes: int | None = None  # a parallel group's: every GPU's KV cache (None: one GPU)

    @property
    def kv_cache_bytes(self) -> int:
        return sum(b.count * b.kv_cache_bytes for b in self.blocks)

    @property
    def peak_block(self) -> BlockMemory:
        return max(self.blocks, key=lambda b: b.peak.bytes)

    @property
    def activation_bytes(self) -> int:
        return self.peak_block.peak.bytes

    @property
    def total(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity


def _block(name: str, count: int, graph: Graph, part: Partition) -> BlockMemory:
    return BlockMemory(name, count, kv_cache_bytes(graph), peak_activations(graph, part))


def footprint(cost: PhaseCost) -> Footprint:
    """Weights, KV cache and peak activations of the step a cost record describes (its partitions reused).

    >>> from opgraph import Phase, analyze, hardware, models, strategy
    >>> cost = analyze(models.get("llama-3-8b").build(Phase.decode(72, 8192)), strategy("fused"),
    ...                hardware.load("h100-sxm"))
    >>> fp = footprint(cost)
    >>> fp.kv_cache_bytes == 2 * 32 * 72 * 8193 * 8 * 128 * 2  # K and V, 32 layers, 72 x (8192 + 1) tokens
    True
    >>> fp.fits  # 93.4 GB on an 80 GiB (85.9 GB) GPU
    False
    """
    if cost.built is not None and cost.built.stages:  # its blocks are the pipeline's, at one micro-batch
        return _pipeline_footprint(cost.built, {b.name: b.partition for b in cost.blocks}, cost.hardware)
    blocks = tuple(_block(b.name, b.count, b.graph, b.partition) for b in cost.blocks)
    fp = Footprint(cost.model, cost.phase, cost.hardware.capacity, cost.weight_bytes, blocks, cost.precision)
    return attrs.evolve(fp, group_kv_cache_bytes=cost.gpus * fp.kv_cache_bytes) if cost.gpus > 1 else fp


def footprint_of(model: Model, plan: FusionPlan, hw: Hardware) -> Footprint:
    """The footprint of `model` (built for one phase) under `plan`, without costing it."""
    if model.stages:
        return _pipeline_footprint(model, {b.name: apply(plan, b.graph) for b in model.micro.blocks}, hw)
    blocks = tuple(_block(b.name, b.count, b.graph, apply(plan, b.graph)) for b in model.blocks)
    fp = Footprint(model.name, model.phase, hw.capacity, model.weight_bytes(), blocks, precision_in_use(model))
    return attrs.evolve(fp, group_kv_cache_bytes=model.gpus * fp.kv_cache_bytes) if model.gpus > 1 else fp


def _pipeline_footprint(model: Model, partitions: dict[str, Partition], hw: Hardware) -> Footprint:
    """A pipeline's footprint is its fullest stage's: the weights and KV cache of its blocks for the whole batch,
    and the activations of one micro-batch (`partitions`: how its micro-batch blocks are fused), since the stage
    works on one at a time."""
    whole = {b.name: b.graph for b in model.blocks}
    each = {b.name: (kv_cache_bytes(whole[b.name]), peak_activations(b.graph, partitions[b.name]))
            for b in model.micro.blocks}
    precision = precision_in_use(model)
    stages = [Footprint(f"{model.name} ({stage.name})", model.phase, hw.capacity, model.stage_weights(stage)[0],
                        tuple(BlockMemory(name, count, *each[name]) for name, count in stage.counts), precision)
              for stage in model.stages]
    width = model.gpus // len(stages)  # GPUs per stage, each with its stage's cache
    return attrs.evolve(max(stages, key=lambda f: f.total),
                        group_kv_cache_bytes=width * sum(f.kv_cache_bytes for f in stages))


@attrs.frozen
class MaxBatch:
    """The largest batch whose footprint fits (0: not even batch 1), and how it was found."""

    batch: int
    fits: Footprint | None  # the footprint at `batch` (None when batch is 0)
    over: Footprint  # the footprint at batch + 1, which does not fit
    method: str  # "linear" (solved exactly, then checked) or "search"


SEARCH_LIMIT = 1 << 40


def max_batch(build: Callable[[Phase], Model], phase_at: Callable[[int], Phase], plan: FusionPlan,
              hw: Hardware) -> MaxBatch:
    """The largest batch B with footprint(B) <= capacity, for phases `phase_at(B)`.

    Memory is weights + batch x (per-sequence KV cache and activations), so two evaluations give the
    line and B = floor((capacity - weights) / per_sequence) solves it exactly. The answer is then checked
    by evaluating B (fits) and B+1 (does not); if either check fails (rounding of packed sub-byte types,
    a builder whose memory is not linear in the batch), a doubling-then-bisection search finds it,
    assuming only that memory grows with the batch."""
    @functools.lru_cache(maxsize=None)
    def at(b: int) -> Footprint:
        return footprint_of(build(phase_at(b)), plan, hw)

    one, two = at(1), at(2)
    per_seq = two.total - one.total
    if one.fits and per_seq > 0:
        guess = int((hw.capacity - (one.total - per_seq)) // per_seq)
        fits, over = at(guess), at(guess + 1)
        if fits.fits and not over.fits:
            return MaxBatch(guess, fits, over, "linear")
        # Nearly linear (a pipeline's micro-batches round up): the line through the last two probes, twice,
        # then a bracket around its answer, bisected.
        for _ in range(2):
            slope = over.total - fits.total
            if slope <= 0 or guess < 1:
                break
            guess = max(1, guess + int((hw.capacity - fits.total) // slope))
            fits, over = at(guess), at(guess + 1)
            if fits.fits and not over.fits:
                return MaxBatch(guess, fits, over, "search")
        lo, hi = max(1, guess - guess // 4 - 1), guess + guess // 4 + 2
        if at(lo).fits and not at(hi).fits:
            over = first_true(lambda b: not at(b).fits, lo + 1, hi)
            return MaxBatch(over - 1, at(over - 1), at(over), "search")
    if not one.fits:
        return MaxBatch(0, None, one, "linear" if per_seq > 0 else "search")
    over = first_true(lambda b: not at(b).fits, 2, SEARCH_LIMIT)  # batch 1 fits
    if over is None:
        raise OpgraphError(f"{one.model}: memory does not grow with the batch; every batch up to "
                           f"{SEARCH_LIMIT:,} fits")
    return MaxBatch(over - 1, at(over - 1), at(over), "search")


@attrs.frozen
class PhaseMemory:
    footprint: Footprint  # at the asked batch
    max_batch: MaxBatch  # at the asked length
    notes: tuple[str, ...] = ()  # what the model's builder says of this phase (what it counts and leaves out)


@attrs.frozen
class MemoryReport:
    """`opgraph memory`: per phase, the footprint at the asked sizes and the largest batch that fits."""

    model: str
    hardware: Hardware
    plan: FusionPlan
    phases: tuple[PhaseMemory, ...]
    gpus: int = 1  # with a parallel plan every figure is one GPU's of this many
    replicas: int = 1  # batches the group serves at once: its largest batch is this many times one GPU's
    parallel: str = ""  # the parallel plan in words


def memory(build: Callable[[Phase], Model], phases: Sequence[Phase], plan: FusionPlan, hw: Hardware) -> MemoryReport:
    """The footprint of each phase and the largest batch that fits at its length.

    >>> from opgraph import Phase, hardware, models, strategy
    >>> r = memory(models.get("llama-3-8b").build, [Phase.decode(64, 8192)], strategy("fused"), hardware.load("h100-sxm"))
    >>> r.phases[0].max_batch.batch  # 16.06 GB of weights + 1.07 GB of KV cache per sequence in 80 GiB (85.9 GB)
    65
    """
    models = [build(ph) for ph in phases]
    results = tuple(PhaseMemory(footprint_of(m, plan, hw),
                                max_batch(build, lambda b, ph=ph: attrs.evolve(ph, batch=b), plan, hw), m.notes)
                    for m, ph in zip(models, phases))
    name = models[0].name if models else ""
    first = models[0] if models else None
    return MemoryReport(name, hw, plan, results, first.gpus if first else 1, first.replicas if first else 1,
                        first.parallel if first else "")
