"""The time model: what a kernel takes on a real GPU, beside its ideal roofline.

The roofline (FLOPs at the datasheet peak, bytes at the datasheet bandwidth, wire bytes at the link speed, nothing
else) stays the verdict's basis. Real
kernels are slower: they reach a fraction of the peaks, pay a fixed cost per launch, pad GEMM rows to a tile,
and attention pays per (sequence x KV head). The model, per kernel class:

    matmul   = roofline compute time x (tile work / m x n) / compute_efficiency       (GEMM: tiles, waves below)
    special  = exponentials / exp_rate                       (softmax, SiLU, GELU on the special-function units)
    compute  = matmul + special - min(matmul, special) x special_overlap
    memory   = roofline memory time / memory_efficiency                (vector classes: the L2's share below)
    busy     = compute + memory - min(compute, memory) x overlap
    busy     = max(busy, per_depth x min(k, split_depth))     (GEMM: one output tile's serial walk along k)
    expected = latency + busy + per_row x rows + per_input x (m x k) + per_tile x tiles

where rows are an attention kernel's sequences x KV heads, or a GEMM's activation rows m, and tiles a fused-MoE
call's programs (opgraph.pricing.kinds.moe: each expert's rows in blocks, times its GEMMs' output columns in blocks),
which a call of many narrow experts runs many of for few bytes. A GEMM y[m, n] =
x[m, k] @ W[n, k]^T computes in tile_m x tile_n output tiles, tiles_per_wave of them at once (the GPU's SMs): its
tile work is the tiles it runs, rounded up to whole waves, x tile_m x tile_n (without tiles_per_wave: only m padded
to tile_m). Small GEMMs that fill less than a wave run at one tile's pace, however long their k. fp8 GEMMs as vLLM
runs them (W8A8, activations quantized per token) first quantize their bf16 input in a kernel of its own: a cost
per row and per input element (per_row, per_input), fitted; bf16 GEMMs fit both to 0. One output tile's k-loop is
serial (load, multiply, next k-step), so a GEMM of few tiles takes per_depth a unit of k however few its bytes, until
the library splits k across SMs (cuBLAS's split-K) beyond split_depth: measured on the H100, bf16 GEMMs of m 1-512
and n 128 grow by about 1.2 us per 1,024 of k up to k of about 2,500, then stay at about 6 us to k = 16,384.

A small kernel's traffic is served partly by the L2 cache: in a step, its input was just written by the kernel
before it; in a benchmark, the same inputs are read call after call. Measured on an H200 (norms, SiLU x mul, rope,
embeddings in CUDA graphs), kernels moving up to 20-40 MB run above the DRAM's datasheet bandwidth, larger ones at
0.8-0.9 of it. The vector classes fit this as a first stretch of traffic at the L2's pace: up to cache_s of the
roofline memory time (cache_s x bandwidth bytes) at cache_efficiency of the datasheet bandwidth (above 1: faster
than DRAM), the rest at memory_efficiency. With cache_s = 0 (every other class) memory is as above.

FlashAttention-3 overlaps its exponentials with its matrix products only in part (Shah et al., 2024, sections
3.1-3.2), which special_overlap measures; the default 1 takes the larger of the two.

A collective's links run beside its memory traffic: busy = max(busy, comm), where comm is its steps x per_step
plus its wire bytes over the link bandwidth x link_efficiency (the spec's alpha-beta time until calibrated; a
link_efficiency above 1 is a switch that reduces in the network, as NVLink SHARP does). All-to-alls (expert-parallel
dispatch and combine) are the class all_to_all, with the same parameters fitted apart; a calibration without that
class prices them by its collective class (FALLBACK).

Which class prices a kernel, and which shape features it reads, is each class's own record (opgraph.pricing.kinds).

A kernel is latency-bound when its latency exceeds its compute, memory and link times. Time is a property of
a kernel (a fused group): it pays its latency once. Parameters are data: a calibration file per GPU
(opgraph.hardware loads hardware/calibrations/<gpu>.toml), fitted by `opgraph calibrate` to measured kernels.
Everything here is plain arithmetic on sizes, so sweeps replay it (opgraph.trace).
"""

from __future__ import annotations

import attrs

from opgraph.core import checks
from opgraph.errors import OpgraphError
from opgraph.core.sizes import maximum, minimum
from opgraph.pricing.kinds import FALLBACK
from opgraph.pricing.kinds.collective import COLLECTIVE

LATENCY, COMPUTE, MEMORY = "latency", "compute", "memory"


def row_ranges(bounds) -> list[tuple[int, int | None]]:
    """The ranges of rows that rising bounds split GEMMs into: (fewest less one, most; None: no most).

    >>> row_ranges([16, 64])
    [(0, 16), (16, 64), (64, None)]
    """
    return list(zip([0, *bounds], [*bounds, None]))


def in_rows(rows, lo: int, hi: int | None):
    """Whether GEMMs of `rows` rows (an array) fall in the range (lo, hi]."""
    return (rows > lo) & (rows <= hi) if hi is not None else rows > lo


@attrs.frozen
class ClassTiming:
    """The fitted parameters of one kernel class (defaults: the ideal roofline)."""

    latency_s: float = 0.0
    compute_efficiency: float = 1.0  # fraction of the datasheet matrix (or vector) peak reached
    memory_efficiency: float = 1.0  # fraction of the datasheet bandwidth reached
    overlap: float = 1.0  # of compute and memory inside the kernel: 1 = max, 0 = sum
    tile_m: int = 1  # GEMM output tiles: rows (m) are padded to a multiple of this (tile quantization)
    tile_n: int = 1  # and columns (n) to a multiple of this
    tiles_per_wave: int = 0  # GEMM tiles that run at once (the GPU's SMs); 0: no wave quantization
    per_row_s: float = 0.0  # attention: per (sequence x KV head); GEMM: per activation row (m)
    per_input_s: float = 0.0  # GEMM: per element of the activation input (m x k), e.g. its quantization to fp8
    per_depth_s: float = 0.0  # GEMM: per unit of k along one output tile's k-loop (the serial chain a thin GEMM runs)
    split_depth: float = 0.0  # GEMM: the k beyond which the library splits k across SMs (caps the chain); 0: never
    special_overlap: float = 1.0  # of the exponentials with the matrix products: 1 = max, 0 = sum
    link_efficiency: float = 1.0  # collectives: achieved link bandwidth / the spec's (above 1: in-switch reduction)
    per_step_s: float | None = None  # collectives: latency per algorithm step; None: the spec's step latency
    cache_s: float = 0.0  # vector classes: roofline memory time of the traffic the L2 serves; 0: none
    cache_efficiency: float = 1.0  # and the share of the datasheet bandwidth it is served at (above 1: faster)
    per_tile_s: float = 0.0  # fused-MoE calls: per program of its grouped GEMMs (KernelWork.tiles)
    # GEMMs: (most rows, table) pairs, bounds rising: the kernels a library dispatches by m (vLLM's CUTLASS fp8 GEMMs
    # on Hopper: m <= 16, <= 64, <= 128, each its own tile shape); GEMMs of more rows than the last take this table
    by_rows: tuple[tuple[int, "ClassTiming"], ...] = ()

    def __attrs_post_init__(self) -> None:
        checks.number("latency_s", self.latency_s, minimum=0, maximum=1)
        checks.number("compute_efficiency", self.compute_efficiency, above=0, maximum=1)
        checks.number("memory_efficiency", self.memory_efficiency, above=0, maximum=1)
        checks.number("overlap", self.overlap, minimum=0, maximum=1)
        checks.integer("tile_m", self.tile_m, maximum=4096)
        checks.integer("tile_n", self.tile_n, maximum=4096)
        checks.integer("tiles_per_wave", self.tiles_per_wave, minimum=0, maximum=10**6)
        checks.number("per_row_s", self.per_row_s, minimum=0, maximum=1)
        checks.number("per_input_s", self.per_input_s, minimum=0, maximum=1)
        checks.number("per_depth_s", self.per_depth_s, minimum=0, maximum=1e-3)
        checks.number("split_depth", self.split_depth, minimum=0, maximum=1e9)
        checks.number("special_overlap", self.special_overlap, minimum=0, maximum=1)
        checks.number("link_efficiency", self.link_efficiency, above=0, maximum=2)
        if self.per_step_s is not None:
            checks.number("per_step_s", self.per_step_s, minimum=0, maximum=1)
        checks.number("cache_s", self.cache_s, minimum=0, maximum=1)
        checks.number("cache_efficiency", self.cache_efficiency, above=0, maximum=10)
        checks.number("per_tile_s", self.per_tile_s, minimum=0, maximum=1e-3)
        bounds = [b for b, _ in self.by_rows]
        for b in bounds:
            checks.integer("rows bound", b, maximum=10**9)
        if bounds != sorted(set(bounds)) or any(t.by_rows for _, t in self.by_rows):
            raise OpgraphError(f"tables by rows must have rising bounds and no tables of their own, got {bounds}")

    def ranges(self) -> list[tuple[int, int | None, "ClassTiming"]]:
        """(fewest rows less one, most rows or None, table) of each of its tables, its own last."""
        return [(lo, hi, t) for (lo, hi), t in zip(row_ranges([b for b, _ in self.by_rows]),
                                                   (*(t for _, t in self.by_rows), attrs.evolve(self, by_rows=())))]

    def for_rows(self, rows):
        """The table that prices a GEMM of `rows` rows (an int, or a traced one: a sweep splits at the bounds)."""
        for bound, table in self.by_rows:
            if rows <= bound:
                return table
        return self


@attrs.frozen
class TimeModel:
    """A GPU's calibration: parameters per kernel class, where they came from and how well they fit."""

    name: str
    classes: dict[str, ClassTiming] = attrs.field(factory=dict)
    exp_rate: float | None = None  # exponentials per second on the special-function units; None: not counted
    source: str = ""
    fit: str = ""  # the held-out error of the fit, as the calibration file states it
    # where each table came from, where the model was put together from several (merged, overridden); {}: `source`
    origins: dict[str, str] = attrs.field(factory=dict)

    @property
    def calibrated(self) -> bool:
        """Whether it has parameters at all (else every expected time is the roofline)."""
        return bool(self.classes)

    def merged(self, base: "TimeModel", label: str, base_label: str) -> "TimeModel":
        """This model's tables over `base`'s, class by class: what `base` has and this model lacks comes from `base`.
        `label` and `base_label` name the two in `origins`."""
        classes = {**base.classes, **self.classes}
        origins = {kind: label if kind in self.classes else base.origins.get(kind, base_label) for kind in classes}
        rate = self.exp_rate if self.exp_rate is not None else base.exp_rate
        fits = "; ".join(f for f in (self.fit, base.fit) if f)
        return TimeModel(self.name, classes, rate, self.source, fits, origins)

    def overridden(self, label: str, **fields) -> "TimeModel":
        """Every table with `fields` (latency_s, overlap) set, and a "default" table with them for the classes it
        has none for: what --launch-us and --overlap do to the expected time."""
        classes = {kind: attrs.evolve(p, **fields) for kind, p in self.classes.items()}
        classes.setdefault("default", ClassTiming(**fields))
        origins = {kind: f"{self.origins.get(kind, self.name)}, {label}" for kind in self.classes}
        origins["default"] = origins.get("default", label)
        return attrs.evolve(self, classes=classes, origins=origins)

    def priced_as(self, kind: str, other: str, label: str) -> "TimeModel":
        """This model with `kind`'s kernels priced by the table that prices `other` (an engine running another
        kernel for the same work, e.g. Marlin's for MXFP4 experts); unchanged where no table prices `other`."""
        table = self.table(other)
        if table is None or table == self.table(kind):
            return self
        origins = {**self.origins, kind: f"{table}'s table ({label})"}
        return attrs.evolve(self, classes={**self.classes, kind: self.classes[table]}, origins=origins)

    def of(self, kind: str) -> ClassTiming:
        """The parameters that price `kind`: its own table, else its FALLBACK's, else "default", else the roofline."""
        table = self.table(kind)
        return ClassTiming() if table is None else self.classes[table]

    def table(self, kind: str) -> str | None:
        """The table that prices `kind` (its own, its FALLBACK's or "default"); None: the roofline does."""
        while kind not in self.classes and kind in FALLBACK:
            kind = FALLBACK[kind]
        return kind if kind in self.classes else "default" if "default" in self.classes else None


ROOFLINE = TimeModel("roofline")  # no calibration: the expected time is the roofline


@attrs.frozen
class KernelWork:
    """What the time model needs of one kernel: its class, its roofline times, and its shape where it matters."""

    kind: str
    compute_s: float
    memory_s: float
    transcendentals: int = 0
    gemm_rows: int = 0  # its GEMM's m (rows of the activation), k (their width) and n (output columns): tiles
    gemm_depth: int = 0
    gemm_cols: int = 0
    attention_rows: int = 0  # attention: sequences x KV heads
    comm_s: float = 0.0  # collectives: time on the links (the spec's alpha-beta, opgraph.pricing.cost)
    wire_s: float = 0.0  # collectives: the beta part of comm_s (wire bytes / the spec's link bandwidth)
    comm_steps: int = 0  # collectives: the algorithm's steps (the alpha part is steps x the spec's step latency)
    # the collective class, calibrated: its stages as the engines' kernels run them, and the one-stage way of its
    # all-reduces (its stages and wire time; 0.0: none), priced when cheaper (opgraph.pricing.kinds.collective)
    comm_stages: int = 0
    oneshot_stages: int = 0
    oneshot_wire_s: float = 0.0
    tiles: int = 0  # fused-MoE calls: the programs its grouped GEMMs launch
    # grouped GEMMs (a fused-MoE call): the problems its rows spread over, the experts it touches; 0: one GEMM
    gemm_groups: int = 0


def dispatch_rows(work: KernelWork):
    """The m a library dispatches a kernel by (ClassTiming.by_rows): a GEMM's rows; a grouped GEMM's, the rows of one
    of its problems (rows spread evenly over the experts touched, rounded up), as each expert's product is a GEMM of
    the rows routed to it. A fused-MoE call priced by a GEMM class (no table of its own on the GPU) otherwise took
    the table of its summed rows: a decode step's 128 x 10 routed rows over 32 experts as one GEMM of 320 rows."""
    rows, groups = work.gemm_rows, work.gemm_groups
    if hasattr(groups, "shape"):  # arrays (a fit's, a validation's): rows without groups are GEMMs'
        import numpy as np

        return np.where(groups > 0, -(-rows // np.maximum(groups, 1)), rows)
    return rows if _zero(groups) else -(-rows // groups)


def expected(tm: TimeModel, work: KernelWork) -> tuple[float, bool]:
    """(the expected seconds of one kernel, whether it is latency-bound).

    >>> tm = TimeModel("x", {"gemm": ClassTiming(latency_s=5e-6, compute_efficiency=0.8, memory_efficiency=0.5)})
    >>> t, latency_bound = expected(tm, KernelWork("gemm", compute_s=1e-6, memory_s=2e-6))
    >>> round(t * 1e6, 6), latency_bound  # 5 + max(1.25, 4): 4 us of memory at half the bandwidth
    (9.0, True)
    """
    time, margin = expected_fused(tm, [work])
    return time, margin > 0


def _parts(tm: TimeModel, work: KernelWork) -> tuple[float, object, object, object, object]:
    """(latency, busy time, compute time, memory time, fixed costs within the busy time) of one class's work."""
    p = tm.of(work.kind).for_rows(dispatch_rows(work))
    # Terms that are identities (an efficiency of 1, nothing to add) are skipped: a sweep replays every line.
    compute = work.compute_s if p.compute_efficiency == 1 else work.compute_s / p.compute_efficiency
    # tiles pad a GEMM's output; a matrix-unit kernel without one (a chunked linear-attention scan) is not padded
    if (p.tile_m > 1 or p.tile_n > 1 or p.tiles_per_wave) and not _zero(work.gemm_rows):
        compute = compute * _tile_work(p, work)
    if tm.exp_rate and not _zero(work.transcendentals):
        compute = _overlapped(compute, work.transcendentals / tm.exp_rate, p.special_overlap)
    if p.cache_s:  # the first cache_s of the traffic at the L2's pace
        cached = minimum(work.memory_s, p.cache_s)
        memory = cached / p.cache_efficiency + (work.memory_s - cached) / p.memory_efficiency
    else:
        memory = work.memory_s if p.memory_efficiency == 1 else work.memory_s / p.memory_efficiency
    busy = _overlapped(compute, memory, p.overlap)
    if p.per_depth_s:  # a GEMM is no faster than one output tile's walk along k (up to where k is split)
        depth = minimum(work.gemm_depth, p.split_depth) if p.split_depth else work.gemm_depth
        busy = maximum(busy, p.per_depth_s * depth)
    fixed = 0.0
    if not _zero(work.comm_s):  # a collective: its links run beside the rest
        comm = work.comm_s
        if work.kind == COLLECTIVE and p.per_step_s is not None:  # the engines' kernels, stage by stage
            comm = p.per_step_s * work.comm_stages + work.wire_s / p.link_efficiency
            if not _zero(work.oneshot_wire_s):
                comm = minimum(comm, p.per_step_s * work.oneshot_stages + work.oneshot_wire_s / p.link_efficiency)
            fixed = p.per_step_s * work.oneshot_stages  # the least its stages cost, whatever it moves
        elif p.per_step_s is not None or p.link_efficiency != 1:
            alpha = work.comm_s - work.wire_s if p.per_step_s is None else p.per_step_s * work.comm_steps
            comm = alpha + work.wire_s / p.link_efficiency
        busy = maximum(busy, comm)
        memory = maximum(memory, comm - fixed)  # the verdict's question: do the fixed costs exceed the transfers?
    if p.per_row_s:
        busy = busy + p.per_row_s * (work.attention_rows + work.gemm_rows)
    if p.per_input_s:
        busy = busy + p.per_input_s * work.gemm_rows * work.gemm_depth
    if p.per_tile_s:
        busy = busy + p.per_tile_s * work.tiles
    return p.latency_s, busy, compute, memory, fixed


def _tile_work(p: ClassTiming, work: KernelWork):
    """The work a GEMM's tiles do over the work it needs (>= 1): m padded to tile_m, n to tile_n, and with
    tiles_per_wave, its tiles rounded up to whole waves."""
    rows, cols = maximum(work.gemm_rows, 1), maximum(work.gemm_cols, 1)
    row_tiles, col_tiles = -(-rows // p.tile_m), -(-cols // p.tile_n)
    tiles = row_tiles * col_tiles
    if p.tiles_per_wave:
        tiles = -(-tiles // p.tiles_per_wave) * p.tiles_per_wave
    return tiles * (p.tile_m * p.tile_n) / (rows * cols)


def _overlapped(a, b, overlap: float):
    """Two activities of one kernel that overlap by `overlap` of the shorter: 1 = max, 0 = sum."""
    return maximum(a, b) if overlap == 1 else a + b - minimum(a, b) * overlap


def _zero(x) -> bool:
    return type(x) in (int, float) and x == 0


def expected_fused(tm: TimeModel, works: list[KernelWork], kind: str | None = None) -> tuple[float, float]:
    """One kernel of class `kind` (classify's) that does several classes' work (a fused attention block: GEMMs,
    rope, attention; a norm fused into a projection): each part runs at its own class's efficiencies, and the
    kernel pays one latency, its own class's: an op fused into another's kernel brings its work, not a launch
    of its own. Without `kind`, the first work's class. Returns (seconds, latency margin): the latency less the
    larger of the compute and memory times, latency-bound when positive. A margin, not the verdict, so that a
    sweep tracing this formula records no branch on it (a verdict is asked for only when a report is shown)."""
    kind = kind or works[0].kind
    if tm.of(kind).by_rows and hasattr(works[0].gemm_rows, "shape"):
        return _by_rows(tm, works, kind)
    parts = [_parts(tm, w) for w in works]
    latency = tm.of(kind).for_rows(dispatch_rows(_own(works, kind))).latency_s
    busy, compute, memory, fixed = parts[0][1], parts[0][2], parts[0][3], parts[0][4]
    for _, b, c, m, f in parts[1:]:
        busy, compute, memory, fixed = busy + b, compute + c, memory + m, fixed + f
    # a collective's stages cost a fixed time each, whatever they move: a latency in the verdict
    return latency + busy, latency + fixed - maximum(compute, memory)


def _own(works: list[KernelWork], kind: str) -> KernelWork:
    """The work of a kernel's own class (its GEMM's shape picks the table by rows), else its first."""
    return next((w for w in works if w.kind == kind), works[0])


def _by_rows(tm: TimeModel, works: list[KernelWork], kind: str):
    """expected_fused over arrays of kernels (a fit's, a validation's) whose class has tables by rows: each row
    priced by its own table."""
    import numpy as np

    table = tm.table(kind)
    rows = dispatch_rows(_own(works, kind))
    time, margin = np.zeros(len(rows)), np.zeros(len(rows))
    for lo, hi, own in tm.classes[table].ranges():
        picked = in_rows(rows, lo, hi)
        if picked.any():
            each = TimeModel(tm.name, {**tm.classes, table: own}, tm.exp_rate)
            part = [attrs.evolve(w, **{f: (v[picked] if hasattr(v, "shape") else v) for f, v in attrs.asdict(
                w, recurse=False).items() if f != "kind"}) for w in works]
            time[picked], margin[picked] = expected_fused(each, part, kind)
    return time, margin
