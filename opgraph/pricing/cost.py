"""The cost traversal: graph + fusion partition + hardware -> one frozen record per op, kernel, block and model.

Bytes come from the partition (opgraph.core.traffic). Time is the per-op roofline, the ideal: compute = FLOPs /
peak (matrix peak for matmuls at their operand dtype, vector peak otherwise), memory = bytes / bandwidth, a
collective's wire bytes / link bandwidth, time = the longest; nothing else. A block's time is the sum of its ops'
times, and the model's is the sum over blocks times their counts. This roofline is the verdict's basis.

Beside it, each kernel has an expected time under the GPU's time model (opgraph.pricing.timing; price_kernels is
the one pricing step every command uses), shared among its ops by roofline time; ops of a latency-bound kernel say
so. Without a time model the expected time is the roofline, a collective's with the spec's latency per step.
"""

from __future__ import annotations

import attrs

from opgraph.core.fusion import FusionError, FusionPlan, Kernel, Partition, apply
from opgraph.core.graph import Graph
from opgraph.pricing.hardware import Hardware
from opgraph.core.model import Model, Stage, precision_in_use
from opgraph.core.ops import COLLECTIVE as COLLECTIVE_KIND, MATRIX_KINDS
from opgraph.core.phase import Phase
from opgraph.core.traffic import Traffic, intensity, op_traffic
from opgraph.core.sizes import maximum, minimum
from opgraph.pricing.kinds import classify, features, op_class
from opgraph.pricing.kinds.all_to_all import FNS as ALL_TO_ALL_FNS
from opgraph.pricing.kinds.collective import COLLECTIVE, stages
from opgraph.pricing.timing import LATENCY, KernelWork, expected_fused
from opgraph.errors import OpgraphError, noun

COMPUTE, MEMORY, COMMUNICATION = "compute", "memory", "communication"
FUSED = "fused"  # an op's verdict where it moves no bytes of its own inside a larger kernel

def verdict(compute_s: float, memory_s: float, comm_s: float = 0.0) -> str:
    """THE roofline verdict: communication-bound when the time on the links exceeds both the compute and the
    memory time; else compute-bound when the compute time exceeds the memory time; else memory-bound."""
    if comm_s > compute_s and comm_s > memory_s:
        return COMMUNICATION
    return COMPUTE if compute_s > memory_s else MEMORY


@attrs.frozen
class Roofline:
    """FLOPs and bytes with their times on one hardware."""

    flops: int
    traffic: Traffic
    compute_s: float
    memory_s: float
    time_s: float  # the roofline: the longest of compute_s, memory_s and comm_s
    expected_s: float = 0.0  # the calibrated time model's (opgraph.pricing.timing); the roofline without one
    comm_s: float = 0.0  # on the links between GPUs: wire bytes over the link bandwidth (latencies: expected_s's)
    wire_bytes: int = 0  # bytes this GPU sends to others

    @property
    def bytes(self) -> int:
        return self.traffic.bytes

    @property
    def intensity(self) -> float:
        return intensity(self.flops, self.traffic.bytes)

    @property
    def bound(self) -> str:
        return verdict(self.compute_s, self.memory_s, self.comm_s)

    def times(self, k: int) -> "Roofline":
        """The same work done k times over (a block repeated k times in the model)."""
        return Roofline(self.flops * k, self.traffic * k, self.compute_s * k, self.memory_s * k, self.time_s * k,
                        self.expected_s * k, self.comm_s * k, self.wire_bytes * k)


@attrs.frozen
class OpCost:
    name: str
    kind: str
    fn: str
    kernel: str
    cost: Roofline
    share: float  # of its block's expected time
    part: str = ""  # the builder's tag: attention, mlp, moe, embedding, head, ...
    latency_margin_s: float = 0.0  # its kernel's fixed cost less the larger of the kernel's compute and memory times
    fused: bool = False  # it moves no bytes of its own inside a kernel of several ops

    @property
    def latency_bound(self) -> bool:
        """Its kernel's fixed cost exceeds the kernel's compute and memory times."""
        return self.latency_margin_s > 0

    @property
    def bound(self) -> str:
        """fused (its kernel's verdict counts), latency (its kernel's fixed cost exceeds its compute and memory
        times), else the roofline's verdict: compute, memory or communication."""
        return FUSED if self.fused else LATENCY if self.latency_bound else self.cost.bound


@attrs.frozen
class KernelCost:
    """One kernel of a block: its ops' summed work and roofline, its own expected time, its class and verdict."""

    name: str
    label: str  # "first..last" op
    ops: tuple[str, ...]
    kind: str  # the class that prices it (opgraph.pricing.kinds)
    cost: Roofline  # its ops' totals; expected_s is the kernel's own
    latency_margin_s: float = 0.0  # its fixed cost less the larger of its compute and memory times

    @property
    def latency_bound(self) -> bool:
        return self.latency_margin_s > 0

    @property
    def bound(self) -> str:
        return LATENCY if self.latency_bound else self.cost.bound


@attrs.frozen
class BlockCost:
    """One block's costs, with the graph and the fusion partition they came from, so that every analysis of
    the same run (memory, activations, pictures) reuses them instead of applying the plan again."""

    name: str
    count: int
    ops: tuple[OpCost, ...]
    totals: Roofline  # one instance of the block
    graph: Graph = attrs.field(eq=False, repr=False)
    partition: Partition = attrs.field(eq=False, repr=False)
    kernel_s: dict[str, float] = attrs.field(factory=dict)  # each kernel's expected seconds, by kernel name
    # operand types whose input-quantizing (W8A8) weights ran weight-only here: the GPU has no matrix rate for them
    weight_only: frozenset[str] = frozenset()

    @property
    def kernels(self) -> tuple[Kernel, ...]:
        return self.partition.kernels

    def kernel_costs(self) -> list[KernelCost]:
        """Each kernel's cost, in the order they run."""
        by_name = {o.name: o for o in self.ops}
        out = []
        for k in self.kernels:
            ops = [by_name[n] for n in k.ops]
            cost = attrs.evolve(_sum([o.cost for o in ops]), expected_s=self.kernel_s.get(k.name, 0.0))
            out.append(KernelCost(k.name, k.label, k.ops, classify([self.graph.ops[n] for n in k.ops]), cost,
                                  ops[0].latency_margin_s))  # every op of a kernel holds the kernel's
        return out

    @property
    def materialized(self) -> frozenset[str]:
        return self.partition.materialized


@attrs.frozen
class StageCost:
    """One pipeline stage: what it runs, its cost for one micro-batch, and the weights its GPUs hold."""

    stage: Stage
    totals: Roofline
    weight_bytes: int
    params: int


@attrs.frozen
class PhaseCost:
    model: str
    phase: Phase
    plan: FusionPlan
    hardware: Hardware
    blocks: tuple[BlockCost, ...]
    params: int
    weight_bytes: int  # storage of all weights
    totals: Roofline  # the whole model: blocks times their counts
    notes: tuple[str, ...] = ()
    precision: dict[str, str] = attrs.field(factory=dict)  # role -> dtype(s) in use, for the reader
    gpus: int = 1  # the figures are one GPU's of a tensor-parallel group this large
    whole_weight_bytes: int | None = None  # with gpus > 1: the unsplit model's weights (None: not known)
    # With gpus > 1: the whole group's FLOPs, bytes and wire bytes (its times are the step's, as every GPU's).
    group: Roofline | None = None
    link_group: int = 1  # the largest group a collective runs over (which links it crosses)
    parallel: str = ""  # the parallel plan in words
    replicas: int = 1  # batches the group serves at once (data parallelism)
    # Pipeline parallelism: each stage's cost at one micro-batch (the blocks above are at one micro-batch too),
    # and the model itself (its stages' weights and KV cache are at the whole batch: opgraph.analysis.memory).
    stages: tuple["StageCost", ...] = ()
    built: Model | None = None


def _roofline(op, traffic: Traffic, peak: float, hw: Hardware) -> Roofline:
    """The ideal: FLOPs at the peak, bytes at the bandwidth, wire bytes at the link speed, whichever is longest."""
    compute_s = op.flops / peak
    memory_s = traffic.bytes / hw.bandwidth
    time_s = maximum(compute_s, memory_s)
    comm_s = 0.0
    if op.wire_bytes:  # a collective: the links and the memory run side by side
        _link(op, hw)
        comm_s = wire_time(op, hw)
        time_s = maximum(time_s, comm_s)
    return Roofline(op.flops, traffic, compute_s, memory_s, time_s, time_s, comm_s, op.wire_bytes)


def _link(op, hw: Hardware):
    if hw.interconnect is None:
        raise OpgraphError(f"op {op.name!r} communicates between GPUs, but hardware {hw.name!r} has no "
                           f"[interconnect] table in its spec (link bandwidth, GPUs per node, network bandwidth)")
    return hw.interconnect


PAIRWISE = ALL_TO_ALL_FNS  # every GPU sends a part to each other GPU directly


def wire_time(op, hw: Hardware) -> float:
    """The beta part of a collective's alpha-beta time: its wire bytes over the group's slowest link. A ring
    runs at its slowest hop; an all-to-all that spans nodes sends each peer its 1/n share directly, so its
    peers inside the node take theirs over the links while the rest go over the network, side by side."""
    if not op.wire_bytes:
        return 0.0
    link, n = hw.interconnect, op.group
    if op.fn not in PAIRWISE or n <= link.gpus_per_node:
        return op.wire_bytes / link.bandwidth(n)
    inside, outside = link.gpus_per_node - 1, n - link.gpus_per_node  # peers in the node and beyond it
    share = op.wire_bytes / (n - 1)  # bytes to one peer
    return maximum(share * inside / link.link_bandwidth, share * outside / link.network_bandwidth)


def _sum(parts: list[Roofline]) -> Roofline:
    """Totals of several rooflines. Times add: ops run one after another."""
    traffic = Traffic()
    for p in parts:
        traffic += p.traffic
    return Roofline(sum(p.flops for p in parts), traffic, sum(p.compute_s for p in parts),
                    sum(p.memory_s for p in parts), sum(p.time_s for p in parts), sum(p.expected_s for p in parts),
                    sum(p.comm_s for p in parts), sum(p.wire_bytes for p in parts))


def kernel_work(ops: list, rooflines: dict[str, Roofline], hw: Hardware) -> tuple[str, list[KernelWork]]:
    """What the time model reads of one kernel: its class, and its work split by the class that prices each part
    (opgraph.pricing.kinds.op_class), each part's times, exponentials, collective steps and shape features."""
    kind = classify(ops)
    by_class: dict[str, list] = {}
    for op in ops:
        by_class.setdefault(op_class(op, kind), []).append(op)
    works = []
    for cls, members in by_class.items():
        wire = sum(rooflines[o.name].comm_s for o in members)
        steps = sum(o.wire_steps for o in members)
        alpha = _alpha(steps, hw)
        # the collective class prices the engines' own kernels by their stages (kinds.collective.stages)
        ways = [(stages(o), rooflines[o.name].comm_s) for o in members if o.wire_bytes] if cls == COLLECTIVE else []
        works.append(KernelWork(cls, sum(rooflines[o.name].compute_s for o in members),
                                sum(rooflines[o.name].memory_s for o in members),
                                sum(o.transcendentals for o in members), comm_s=alpha + wire, wire_s=wire,
                                comm_steps=steps, comm_stages=sum(w[0] for w, _ in ways),
                                oneshot_stages=sum(w[1] for w, _ in ways),
                                oneshot_wire_s=sum(w[2] * t for w, t in ways) if any(w[0] > w[1] for w, _ in ways)
                                else 0.0, **features(cls, members)))
    return kind, works


def _alpha(steps: int, hw: Hardware) -> float:
    """The spec's latency of a collective's steps (the alpha of its alpha-beta time; the roofline has none)."""
    return steps * hw.interconnect.step_latency_s if steps else 0.0


def _alpha_beta(op, r: Roofline, hw: Hardware) -> float:
    return maximum(r.time_s, _alpha(op.wire_steps, hw) + r.comm_s) if op.wire_steps else r.time_s


def price_kernels(graph: Graph, part: Partition, rooflines: dict[str, Roofline], hw: Hardware) -> tuple[dict, dict, dict]:
    """THE pricing step: each kernel's expected time under the GPU's time model (opgraph.pricing.timing). Returns
    each op's share of its kernel's time (by roofline time), each op's kernel's latency margin, and each kernel's own
    expected time by name (the block's is their sum: what sweeps replay). Without a time model: each op's roofline (a
    collective's with the spec's latency per step)."""
    if not hw.timing.calibrated:  # the roofline, and a collective's latency per step (the spec's alpha)
        out = {n: _alpha_beta(graph.ops[n], r, hw) for n, r in rooflines.items()}
        return out, {}, {k.name: sum(out[n] for n in k.ops) for k in part.kernels}
    out, margins, kernels = {}, {}, {}
    for k in part.kernels:
        kind, works = kernel_work([graph.ops[n] for n in k.ops], rooflines, hw)
        time, margin = expected_fused(hw.timing, works, kind)
        kernels[k.name] = time
        roof = sum(rooflines[n].time_s for n in k.ops)
        for n in k.ops:
            out[n] = time * rooflines[n].time_s / roof if roof else time / len(k.ops)
            margins[n] = margin
    return out, margins, kernels


def _overlap_comm(graph: Graph, rooflines: dict[str, Roofline], totals: Roofline, share: float) -> Roofline:
    """A block whose collectives run beside its other kernels (--comm-overlap): `share` of the smaller of its
    collective time and its other time is hidden, in both the roofline and the expected time."""
    comm = [rooflines[n] for n, op in graph.ops.items() if op.kind == COLLECTIVE_KIND]
    if not comm:
        return totals
    hidden = {}
    for field in ("time_s", "expected_s"):
        c = sum(getattr(r, field) for r in comm)
        hidden[field] = getattr(totals, field) - share * minimum(c, getattr(totals, field) - c)
    return attrs.evolve(totals, **hidden)


def block_cost(name: str, count: int, graph: Graph, part: Partition, hw: Hardware) -> BlockCost:
    """Per-op and total cost of one instance of a block, fused as `part` says. Weights whose GEMMs quantize their input
    to a type the GPU cannot multiply run weight-only (Graph.weight_only), as engines fall back on such a GPU."""
    unrated = frozenset(n for n in graph.quantized_inputs() if not hw.multiplies(n))
    graph = graph.weight_only(unrated)
    traffic = op_traffic(graph, part)
    rooflines = {}
    for op_name, op in graph.ops.items():
        try:
            peak = hw.matrix_rate(op.compute_dtype) if op.kind in MATRIX_KINDS else hw.vector_flops
        except OpgraphError as e:  # which op: its format may be the model's own (an fp8 indexer), not --dtype's
            raise OpgraphError(f"op {op_name!r} multiplies {op.compute_dtype.name} operands: {e}") from None
        rooflines[op_name] = _roofline(op, traffic[op_name], peak, hw)
    times, margins, kernels = price_kernels(graph, part, rooflines, hw)
    rooflines = {n: Roofline(r.flops, r.traffic, r.compute_s, r.memory_s, r.time_s, times[n], r.comm_s, r.wire_bytes)
                 for n, r in rooflines.items()}  # not attrs.evolve: a tenth of the costing's time
    totals = _sum(list(rooflines.values()))
    if hw.timing.calibrated:  # the kernels' times (an op's share of its kernel's is a division: its sum may round)
        totals = attrs.evolve(totals, expected_s=sum(kernels.values()))
    if hw.comm_overlap:
        totals = _overlap_comm(graph, rooflines, totals, hw.comm_overlap)
    sizes = {k.name: len(k.ops) for k in part.kernels}
    ops = tuple(
        OpCost(n, op.kind, op.fn, part.kernel_of[n], rooflines[n],
               rooflines[n].expected_s / totals.expected_s if totals.expected_s else 0.0, op.part, margins.get(n, 0.0),
               # an op that moves nothing of its own inside a larger kernel: its kernel's verdict is the one that counts
               sizes[part.kernel_of[n]] > 1 and not rooflines[n].bytes and not op.wire_bytes)
        for n, op in graph.ops.items()
    )
    return BlockCost(name, count, ops, totals, graph, part, kernels, unrated)


def analyze(model: Model, plan: FusionPlan, hw: Hardware) -> PhaseCost:
    """Cost every block of `model` (built for one phase) under `plan` on `hw`."""
    cost = _pipeline(model, plan, hw) if model.stages else _one(model, plan, hw)
    if model.mean_gpu is not None:  # the GPUs differ in load: the group's totals are the mean GPU's
        mean = analyze(model.mean_gpu() if callable(model.mean_gpu) else model.mean_gpu, plan, hw).group
        cost = attrs.evolve(cost, group=_group(cost.totals, mean))
    return cost


def block_costs(model: Model, plan: FusionPlan, hw: Hardware, names: frozenset[str] | None = None) -> list[BlockCost]:
    """Each block of `model` (or each of those `names` names) costed under `plan` on `hw`: a block's cost is its own
    graph's, whatever the other blocks are (what pricing a part of an iteration alone relies on)."""
    return [block_cost(b.name, b.count, b.graph, apply(plan, b.graph), hw) for b in model.blocks
            if names is None or b.name in names]


def _one(model: Model, plan: FusionPlan, hw: Hardware) -> PhaseCost:
    blocks = block_costs(model, plan, hw)
    used = set().union(*(b.partition.groups_used for b in blocks))
    unused = [list(g) for i, g in enumerate(plan.groups) if i not in used]
    if unused:
        raise FusionError(f"fusion plan {plan.name!r}: {noun(len(unused), 'group')} {unused} "
                          f"{noun(len(unused), 'matches', 'match')} no op of model {model.name!r} "
                          f"(blocks: {', '.join(b.name for b in model.blocks)})")
    totals = _sum([b.totals.times(b.count) for b in blocks])
    group = _group(totals, totals.times(model.gpus)) if model.gpus > 1 else None  # every GPU alike, in lockstep
    return PhaseCost(model.name, model.phase, plan, hw, tuple(blocks), model.params(), model.weight_bytes(), totals,
                     model.notes, precision_in_use(model), model.gpus, model.whole_weight_bytes,
                     group, _link_group(model), model.parallel, model.replicas)


def _group(step: Roofline, work: Roofline) -> Roofline:
    """A group's figures: the work of all its GPUs (FLOPs, bytes, wire bytes) in the time of the step."""
    return attrs.evolve(step, flops=work.flops, traffic=work.traffic, wire_bytes=work.wire_bytes)


def _link_group(model: Model) -> int:
    """The largest group a collective of the model runs over: which links its traffic crosses."""
    return max((op.group for op in model.ops() if op.wire_bytes), default=1)


def _pipeline(model: Model, plan: FusionPlan, hw: Hardware) -> PhaseCost:
    """A pipeline of stages, each costed at one micro-batch from the blocks it runs. With M micro-batches and
    stage times t_s, a decode step (every sequence one token; M micro-batches in flight, as serving engines keep
    them) takes max(M x max t_s, sum t_s): the busiest stage works through all M, and each micro-batch passes
    every stage; a prefill (the batch's prompts, filling and draining the pipeline) takes sum t_s + (M-1) x
    max t_s (GPipe, Huang et al. 2019). The per-GPU figures are the busiest stage's, over its M micro-batches."""
    micro = _one(model.micro, plan, hw)
    by_name = {b.name: b for b in micro.blocks}
    stages = [StageCost(st, _sum([by_name[name].totals.times(count) for name, count in st.counts]),
                        *model.stage_weights(st)) for st in model.stages]
    m = model.micro_batches
    busiest = stages[0]
    for s in stages[1:]:
        if s.totals.expected_s > busiest.totals.expected_s:
            busiest = s
    times = {}
    for field in ("time_s", "expected_s"):
        slowest, through = getattr(stages[0].totals, field), getattr(stages[0].totals, field)
        for s in stages[1:]:
            slowest, through = maximum(slowest, getattr(s.totals, field)), through + getattr(s.totals, field)
        times[field] = (maximum(m * slowest, through) if model.phase.past else through + (m - 1) * slowest)
    totals = attrs.evolve(busiest.totals.times(m), **times)
    width = model.gpus // len(stages)  # GPUs per stage
    group = _group(totals, _sum([s.totals for s in stages]).times(m * width))
    return PhaseCost(model.name, model.phase, plan, hw, micro.blocks, busiest.params, busiest.weight_bytes, totals,
                     model.notes, precision_in_use(model), model.gpus, model.whole_weight_bytes, group,
                     _link_group(model), model.parallel, model.replicas, tuple(stages), model)
