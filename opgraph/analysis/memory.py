"""Memory capacity: what one step of a phase needs to hold on the GPU, and whether it fits.

Three parts, all in bytes (exact ints):
- weights: storage of every weight tensor (tied ones once), whatever a step reads of them;
- KV cache: every tensor of role KV_CACHE in each layer's graph, times the layer count. In decode at
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
import json
from collections.abc import Callable

import attrs
import networkx as nx
from tabulate import tabulate

from opgraph.core.cost import precision_in_use
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FusionPlan, Partition, apply
from opgraph.core.graph import Graph
from opgraph.core.hardware import Hardware
from opgraph.core.model import Model
from opgraph.core.phase import Phase
from opgraph.analysis.search import first_true
from opgraph.core.tensor import Role

# Roles whose bytes are counted elsewhere (weights, KV cache), never as activations.
_NOT_ACTIVATIONS = frozenset({Role.WEIGHT, Role.KV_CACHE})


@attrs.frozen
class Peak:
    """The most activation bytes alive at once in one block, at which kernel, and which tensors."""

    bytes: int
    kernel: str  # label of the kernel running at the peak ("" for a block with no activations)
    alive: tuple[str, ...]  # tensor names alive then, in topological order


def _pieces(graph: Graph) -> list[set[str]]:
    """The op sets that share no activation: linked by the tensors they pass or by reading the same input."""
    links = nx.Graph(graph.dag.to_undirected(as_view=True))
    for name, readers in graph.consumers.items():
        if name not in graph.producer and graph.tensors[name].role is not Role.WEIGHT:
            links.add_edges_from(zip(readers, readers[1:]))
    return list(nx.connected_components(links))


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
    """Bytes of one instance of a block's KV-cache tensors: those read from the cache and those written."""
    return sum(t.nbytes for t in graph.tensors.values() if t.role is Role.KV_CACHE)


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


def footprint(model: Model, plan: FusionPlan, hw: Hardware) -> Footprint:
    """Weights, KV cache and peak activations of one step of `model` (built for one phase) under `plan`."""
    blocks = tuple(BlockMemory(b.name, b.count, kv_cache_bytes(b.graph), peak_activations(b.graph, apply(plan, b.graph)))
                   for b in model.blocks)
    return Footprint(model.name, model.phase, hw.capacity, model.weight_bytes(), blocks, precision_in_use(model))


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
        return footprint(build(phase_at(b)), plan, hw)

    one, two = at(1), at(2)
    per_seq = two.total - one.total
    if one.fits and per_seq > 0:
        guess = int((hw.capacity - (one.total - per_seq)) // per_seq)
        fits, over = at(guess), at(guess + 1)
        if fits.fits and not over.fits:
            return MaxBatch(guess, fits, over, "linear")
    if not one.fits:
        return MaxBatch(0, None, one, "linear" if per_seq > 0 else "search")
    over = first_true(lambda b: not at(b).fits, 2, SEARCH_LIMIT)  # batch 1 fits
    if over is None:
        raise OpgraphError(f"{one.model}: memory does not grow with the batch; every batch up to "
                           f"{SEARCH_LIMIT:,} fits")
    return MaxBatch(over - 1, at(over - 1), at(over), "search")


# -- rendering ---------------------------------------------------------------------------------------
def verdict(fp: Footprint) -> str:
    """Plain words: 'fits: 20.4 GB of 80 GB (25%), 59.6 GB free' or 'DOES NOT FIT: needs ...'."""
    cap = fp.capacity
    if fp.fits:
        return (f"fits: {fp.total / 1e9:,.2f} GB of {cap / 1e9:,.0f} GB ({fp.total / cap:.0%}), "
                f"{(cap - fp.total) / 1e9:,.2f} GB free")
    return (f"DOES NOT FIT: needs {fp.total / 1e9:,.2f} GB, the GPU has {cap / 1e9:,.0f} GB "
            f"({(fp.total - cap) / 1e9:,.2f} GB over)")


def to_dict(fp: Footprint) -> dict:
    """Exact byte counts for scripts."""
    peak = fp.peak_block
    return {**fp.phase.describe(), "weight_bytes": fp.weight_bytes, "kv_cache_bytes": fp.kv_cache_bytes,
            "activation_bytes": fp.activation_bytes, "total_bytes": fp.total, "capacity_bytes": fp.capacity,
            "fits": fp.fits, "peak": {"block": peak.name, "kernel": peak.peak.kernel, "alive": list(peak.peak.alive)},
            "blocks": [{"name": b.name, "count": b.count, "kv_cache_bytes": b.kv_cache_bytes,
                        "peak_activation_bytes": b.peak.bytes, "peak_kernel": b.peak.kernel,
                        "peak_alive": list(b.peak.alive)} for b in fp.blocks]}


def rows(fp: Footprint) -> list[list[str]]:
    """Table rows (item, GB, detail) for one footprint; the total row carries the verdict."""
    kv = ", ".join(f"{b.name} {b.count} x {b.kv_cache_bytes / 1e6:,.1f} MB" for b in fp.blocks if b.kv_cache_bytes)
    peak = fp.peak_block
    others = ", ".join(f"{b.name} {b.peak.bytes / 1e6:,.2f} MB" for b in fp.blocks if b is not peak)
    return [
        ["weights", f"{fp.weight_bytes / 1e9:,.3f}", "all weights as stored"],
        ["KV cache", f"{fp.kv_cache_bytes / 1e9:,.3f}", kv or "no KV cache"],
        ["peak activations", f"{fp.activation_bytes / 1e9:,.3f}",
         f"{peak.name}, while kernel {peak.peak.kernel or '-'} runs: {', '.join(peak.peak.alive) or '-'}"
         + (f" (other blocks: {others})" if others else "")],
        ["total", f"{fp.total / 1e9:,.3f}", verdict(fp)],
    ]


def _cache_line(fp: Footprint) -> str:
    ph = fp.phase
    if ph.name == "prefill":
        return (f"the step writes K and V for all {ph.new_tokens:,} positions of each sequence (a sliding-window "
                f"layer included)")
    return (f"after the step the KV cache holds context+1 = {ph.keys:,} tokens per sequence (at most the window "
            f"in a sliding-window layer)")


def _max_batch_line(fp: Footprint, mb: MaxBatch) -> str:
    length = ", ".join(f"{k} {v:,}" for k, v in fp.phase.describe().items() if k != "batch")
    over = f"batch {mb.batch + 1:,} needs {mb.over.total / 1e9:,.2f} GB: does not fit"
    if mb.batch == 0:
        return f"largest batch that fits at {length}: none; {over}"
    how = ("solved exactly (memory = weights + batch x per-sequence bytes), checked at both batches"
           if mb.method == "linear" else "found by search, checked at both batches")
    return f"largest batch that fits at {length}: {mb.batch:,} ({mb.fits.total / 1e9:,.2f} GB); {over}; {how}"


def render(results: list[tuple[Footprint, MaxBatch]], hw: Hardware, plan: FusionPlan, fmt: str) -> str:
    """`opgraph memory`'s output: per phase, the footprint at the asked batch and the largest batch that fits."""
    first = results[0][0]
    if fmt == "json":
        return json.dumps({
            "model": first.model, "hardware": hw.name, "fusion": plan.name, "capacity_bytes": hw.capacity,
            "precision": first.precision, "units": {"*_bytes": "byte"},
            "phases": {fp.phase.name: {**to_dict(fp), "max_batch": {
                "batch": mb.batch, "method": mb.method, "total_bytes": mb.fits.total if mb.fits else None,
                "next_batch_total_bytes": mb.over.total}} for fp, mb in results}}, indent=2) + "\n"
    lines = [f"opgraph memory: {first.model} on {hw.display_name} ({hw.name}), {hw.capacity / 1e9:,.0f} GB of "
             f"memory; fusion {plan.name}",
             "precision: " + "; ".join(f"{role.replace('_', ' ')} {dt}" for role, dt in first.precision.items())]
    for fp, mb in results:
        sizes = ", ".join(f"{k} {v:,}" for k, v in fp.phase.describe().items())
        lines += ["", f"{fp.phase.name.upper()}: {sizes}: {_cache_line(fp)}", "",
                  tabulate(rows(fp), ["item", "GB", "detail"], disable_numparse=True, colalign=("left", "right")),
                  _max_batch_line(fp, mb)]
    lines += ["", "Peak activations: the most materialized tensors alive at once while a block's kernels run in "
                  "order (on-chip intermediates cost nothing); layers run one after another, so one block's peak is "
                  "the model's. GB = 10^9 bytes, MB = 10^6."]
    return "\n".join(lines) + "\n"
