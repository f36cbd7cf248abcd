"""Sweeps: one model, plan and GPU evaluated at many batch sizes and lengths.

The graph's structure does not change with batch or length, so a sweep does not rebuild it per point:
`Sweeper` traces the ordinary build-fuse-cost pipeline once per regime with symbolic batch and length
(`opgraph.trace`) and replays it, one point at a time or over whole numpy arrays, giving exactly the
numbers `opgraph report` gives at each point.
"""

from __future__ import annotations

import attrs
import numpy as np

from opgraph.analysis.memory import footprint
from opgraph.core.traffic import intensity
from opgraph.pricing.cost import COMMUNICATION, COMPUTE, MEMORY, analyze, verdict
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.core.phase import LENGTH_NAMES, PHASES, VARIED, Phase
from opgraph.core.checks import MAX_SIZE
from opgraph.trace import Traced

MAX_VALUES = 10**6  # values on one sweep axis

_TOTALS = ("time_s", "flops", "bytes", "compute_s", "memory_s", "expected_s", "comm_s", "footprint_bytes")


@attrs.frozen
class SweepPoint:
    hardware: str
    phase: str
    batch: int
    length: int  # seq_len in prefill, context in decode
    model_time_s: float
    model_flops: int
    model_bytes: int
    compute_s: float
    memory_s: float
    block_expected_s: dict[str, float]  # one instance of each block, expected
    dominant_op: str  # "block.op" taking the largest share of the model's expected time
    dominant_share: float
    expected_s: float = 0.0  # the model's expected time (opgraph.pricing.timing); model_time_s is its roofline
    comm_s: float = 0.0  # the model's time on the links (the roofline's: wire bytes at the link speed)
    footprint_bytes: int = 0  # one GPU's weights, KV cache and peak activations (opgraph.analysis.memory)
    capacity_bytes: float = 0.0

    @property
    def fits(self) -> bool:
        return self.footprint_bytes <= self.capacity_bytes

    @property
    def intensity(self) -> float:
        return intensity(self.model_flops, self.model_bytes)

    @property
    def bound(self) -> str:
        """The report's verdict for the model: compute, memory or communication."""
        return verdict(self.compute_s, self.memory_s, self.comm_s)

    @property
    def length_name(self) -> str:
        return LENGTH_NAMES[self.phase]


@attrs.frozen(eq=False)
class SweepGrid:
    """Many points of one phase on one GPU, as arrays of equal length (one entry a point). Counts are int64
    arrays, or object arrays of exact Python ints where they exceed int64."""

    hardware: str
    phase: str
    batch: np.ndarray
    length: np.ndarray
    time_s: np.ndarray  # the model's time
    flops: np.ndarray
    bytes: np.ndarray
    compute_s: np.ndarray
    memory_s: np.ndarray
    block_expected_s: dict[str, np.ndarray]  # one instance of each block, expected
    op_labels: tuple[str, ...]  # "block.op"
    dominant: np.ndarray  # index into op_labels of the op taking the largest share of the model's expected time
    dominant_share: np.ndarray
    expected_s: np.ndarray  # the model's expected time; time_s is its roofline
    comm_s: np.ndarray  # the model's time on the links
    footprint_bytes: np.ndarray  # one GPU's memory for the step: does it fit (capacity_bytes)?
    capacity_bytes: float
    op_expected_s: dict[str, np.ndarray] = attrs.field(factory=dict)  # "block.op": all its repeats, expected; only
    # kept when asked for (grid(..., ops=True)): a large sweep would hold an array an op

    @property
    def bound(self) -> np.ndarray:
        """The report's verdict at each point: compute, memory or communication."""
        c, m, comm = (np.asarray(a, dtype=np.float64) for a in (self.compute_s, self.memory_s, self.comm_s))
        return np.where((comm > c) & (comm > m), COMMUNICATION, np.where(c > m, COMPUTE, MEMORY))

    def __len__(self) -> int:
        return len(self.batch)

    def points(self) -> list[SweepPoint]:
        """The grid as records, one per point (for rendering)."""
        cols = [c.tolist() for c in (self.batch, self.length, self.time_s, self.flops, self.bytes, self.compute_s,
                                     self.memory_s, self.dominant, self.dominant_share, self.expected_s, self.comm_s,
                                     self.footprint_bytes)]
        blocks = {name: t.tolist() for name, t in self.block_expected_s.items()}
        return [SweepPoint(self.hardware, self.phase, b, n, t, f, by, c, m,
                           {name: ts[i] for name, ts in blocks.items()}, self.op_labels[d], share, e, comm, fp,
                           self.capacity_bytes)
                for i, (b, n, t, f, by, c, m, d, share, e, comm, fp) in enumerate(zip(*cols))]


class Sweeper:
    """Evaluate a model at (batch, length) points of one phase; `build(phase)` gives the model for a phase
    (e.g. `lambda ph: config.build(ph, options)`)."""

    def __init__(self, build, plan: FusionPlan, hw: Hardware, phase: str):
        if phase not in PHASES:
            raise OpgraphError(f"unknown phase {phase!r}; valid: {', '.join(PHASES)}")
        self.hw, self.phase, self._priced = hw, phase, False

        def evaluate(batch, length) -> dict:
            r = analyze(build(Phase.of(phase, batch, length)), plan, hw)
            t = r.totals
            out = dict(zip(_TOTALS, (t.time_s, t.flops, t.bytes, t.compute_s, t.memory_s, t.expected_s, t.comm_s,
                                     footprint(r).total)))
            out.update({("block", b.name): b.totals.expected_s for b in r.blocks})
            out.update({("op", f"{b.name}.{o.name}"): b.count * o.cost.expected_s for b in r.blocks for o in b.ops})
            return out

        self._evaluate = evaluate
        self._traced: Traced | None = None  # traced when a second size is asked for (one size: no trace to pay)

    @property
    def traced(self) -> Traced:
        if self._traced is None:
            self._traced = Traced(self._evaluate, ("batch", "length"))
        return self._traced

    def point(self, batch: int, length: int) -> SweepPoint:
        """One point: the first by the report's own path (build, fuse, cost), later ones by replaying it."""
        if self._traced is None and not self._priced:
            self._priced = True
            out = self._evaluate(batch, length)
        else:
            out = self.traced(batch, length)
        ops = {label[1]: v for label, v in out.items() if label[0] == "op"}
        top = max(ops, key=ops.__getitem__)
        return SweepPoint(self.hw.name, self.phase, batch, length, *(out[k] for k in _TOTALS[:5]),
                          {label[1]: v for label, v in out.items() if label[0] == "block"}, top,
                          ops[top] / out["expected_s"], out["expected_s"], out["comm_s"], out["footprint_bytes"],
                          self.hw.capacity)

    def grid(self, batch, length, *, ops: bool = False) -> SweepGrid:
        """Every point (batch[i], length[i]) at once; use `numpy.meshgrid` for a cross product. With `ops`, the grid
        also keeps each op's expected time (over all its block's repeats)."""
        batch, length = np.asarray(batch, dtype=np.int64), np.asarray(length, dtype=np.int64)
        if batch.shape != length.shape or batch.ndim != 1:
            raise OpgraphError("batch and length must be 1-D sequences of equal length, one entry a point")
        for name, values in (("batch", batch), (LENGTH_NAMES[self.phase], length)):
            if values.size and values.min() <= 0:
                raise OpgraphError(f"{name} values must be positive integers, got {int(values.min())}")
        out = self.traced.many(batch=batch, length=length)
        op_times = [(label[1], v) for label, v in out.items() if isinstance(label, tuple) and label[0] == "op"]
        best = np.zeros(len(batch), dtype=np.int64)
        top = np.full(len(batch), -np.inf)
        for i, (_, t) in enumerate(op_times):  # a running maximum: no n x ops matrix
            better = t > top
            best[better], top[better] = i, t[better]
        with np.errstate(all="ignore"):
            share = top / np.asarray(out["expected_s"], dtype=np.float64)
        return SweepGrid(self.hw.name, self.phase, batch, length, out["time_s"], out["flops"], out["bytes"],
                         out["compute_s"], out["memory_s"],
                         {label[1]: v for label, v in out.items() if isinstance(label, tuple) and label[0] == "block"},
                         tuple(label for label, _ in op_times), best, share,
                         np.asarray(out["expected_s"], dtype=np.float64), np.asarray(out["comm_s"], dtype=np.float64),
                         np.asarray(out["footprint_bytes"]), self.hw.capacity,
                         {label: np.asarray(t, dtype=np.float64) for label, t in op_times} if ops else {})

    @property
    def regimes(self) -> int:
        """How many times the pipeline was traced: once per regime met so far."""
        return len(self._traced.regimes) if self._traced is not None else 0


@attrs.frozen
class SweepCurve:
    phase: str
    variable: str  # "batch" (decode) or "seq_len" (prefill)
    fixed: dict  # the other size, held constant
    xs: tuple[int, ...]
    model_s: tuple[float, ...]  # the model's expected time, per x
    blocks: tuple[tuple[str, tuple[float, ...]], ...]  # (block, its expected time over all its repeats, per x)
    crossovers: tuple[tuple[str, int], ...]  # (block, smallest compute-bound value) within the plotted range
    roofline_s: tuple[float, ...] = ()  # the model's roofline (the ideal), per x: the plots' reference line
    intensity: tuple[float, ...] = ()  # the model's FLOP/byte, per x
    bound: tuple[str, ...] = ()  # the model's verdict, per x: compute, memory or communication
    ops: tuple[tuple[str, tuple[float, ...]], ...] = ()  # ("block.op", its expected time over all repeats, per x)

    @property
    def tokens_per_s(self) -> tuple[float, ...]:
        """The step's batch of tokens over its expected time, per x: new tokens in decode (the batch), prompt tokens
        in prefill (the batch held times seq_len)."""
        per_x = 1 if self.phase == "decode" else self.fixed["batch"]
        return tuple(x * per_x / t for x, t in zip(self.xs, self.model_s))


def sweep_curve(build, plan, hw, phase: str, xs: list[int], fixed: int, *, found=None,
                ops: bool = False) -> SweepCurve:
    """Model and per-block expected time (and the model's roofline, intensity and verdict) along one axis (batch in
    decode at context `fixed`, seq_len in prefill at batch `fixed`), from the sweep evaluator, and each block's
    crossover (opgraph.analysis.crossover) if in range: those in `found` when given (already computed), else
    computed here. With `ops`, each op's expected time too."""
    from opgraph.analysis.crossover import crossovers

    varied, held = np.asarray(xs, dtype=np.int64), np.full(len(xs), fixed, dtype=np.int64)
    grid = Sweeper(build, plan, hw, phase).grid(*((varied, held) if VARIED[phase][0] == "batch" else (held, varied)),
                                                ops=ops)
    counts = {b.name: b.count for b in build(Phase.of(phase, 1, 2)).blocks}
    blocks = tuple((name, tuple((count * grid.block_expected_s[name]).tolist())) for name, count in counts.items())
    found = crossovers(build, plan, hw, phase, fixed) if found is None else found
    marks = tuple((x.label, x.at) for x in found
                  if x.label in counts and x.at is not None and min(xs) <= x.at <= max(xs))
    variable, other = VARIED[phase]
    flops, nbytes = grid.flops.tolist(), grid.bytes.tolist()
    return SweepCurve(phase, variable, {other: fixed}, tuple(xs), tuple(grid.expected_s.tolist()), blocks, marks,
                      tuple(grid.time_s.tolist()), tuple(intensity(f, b) for f, b in zip(flops, nbytes)),
                      tuple(grid.bound.tolist()),
                      tuple((label, tuple(t.tolist())) for label, t in grid.op_expected_s.items()))


def parse_values(text: str, name: str) -> list[int]:
    """A sweep axis: "1,2,4", an inclusive range "1:512" or "1:512:8", or a progression "1,2,4,...,512"
    (geometric when the first terms have an integer ratio that reaches the end exactly, else arithmetic)."""
    def num(s: str) -> int:
        digits = s[1:] if s[:1] == "-" else s
        if not (digits.isascii() and digits.isdigit()):
            raise OpgraphError(f"{name}: {s[:20]!r} is not an integer (in {text[:60]!r})")
        value = int(s) if len(digits) <= 12 else MAX_SIZE + 1
        if not 0 < value <= MAX_SIZE:
            shown = f"{value:,}" if len(digits) <= 12 else f"a number of {len(digits)} digits"
            raise OpgraphError(f"{name}: values must be integers from 1 to {MAX_SIZE:,}, got {shown} (in {text[:60]!r})")
        return value

    def extend(more) -> None:
        if len(values) + len(more) > MAX_VALUES:
            raise OpgraphError(f"{name}: {text[:60]!r} gives more than {MAX_VALUES:,} values; use a coarser step")
        values.extend(more)

    values: list[int] = []
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise OpgraphError(f"{name}: no values in {text!r}")
    i = 0
    while i < len(parts):
        p = parts[i]
        if p == "...":
            if len(values) < 2 or i + 1 >= len(parts):
                raise OpgraphError(f"{name}: '...' needs two values before it and one after, as in 1,2,4,...,512")
            extend(_progression(values[-2], values[-1], num(parts[i + 1]), name, text)[2:])
            i += 2
            continue
        if ":" in p:
            bounds = p.split(":")
            if len(bounds) not in (2, 3):
                raise OpgraphError(f"{name}: a range is START:STOP or START:STOP:STEP, got {p!r}")
            start, stop = num(bounds[0]), num(bounds[1])
            step = num(bounds[2]) if len(bounds) == 3 else 1
            if stop < start:
                raise OpgraphError(f"{name}: range {p!r} ends before it starts")
            extend(range(start, stop + 1, step))
        else:
            extend([num(p)])
        i += 1
    return values


def _progression(a: int, b: int, end: int, name: str, text: str) -> list[int]:
    if b > a and b % a == 0:
        seq, ratio = [a, b], b // a
        while seq[-1] < end:
            seq.append(seq[-1] * ratio)
        if seq[-1] == end:
            return seq
    if b > a and (end - a) % (b - a) == 0 and end > b:
        return range(a, end + 1, b - a)
    raise OpgraphError(f"{name}: {a},{b},...,{end} is neither a geometric nor an arithmetic progression "
                       f"that ends at {end} (in {text!r})")


@attrs.frozen
class SweepReport:
    """`opgraph sweep`: one grid per GPU and phase."""

    model: str
    plan: FusionPlan
    main_block: str  # the most repeated block, whose time the table shows
    grids: tuple[SweepGrid, ...]
    notes: tuple[str, ...] = ()  # what a reader must know of the points (the command's: e.g. a context too long)


def sweep(build, plan: FusionPlan, hardware: list[Hardware], phases: list[str], batches: list[int],
          lengths: dict[str, list[int]]) -> SweepReport:
    """Every (hardware, phase, batch, length) combination: one grid per GPU and phase, in that order, each
    with the points batch-major (every length of the first batch, then of the second, ...).

    >>> from opgraph import hardware, models, strategy
    >>> r = sweep(models.get("llama-3-8b").build, strategy("fused"), [hardware.load("h100-sxm")], ["decode"],
    ...           [1, 512], {"decode": [1024]})
    >>> [p.bound for p in r.grids[0].points()]  # the KV cache read grows with the batch as fast as the FLOPs
    ['memory', 'memory']
    """
    probe = build(Phase.of(phases[0], batches[0], lengths[phases[0]][0]))  # a point of the grid (--sp splits it)
    grids = []
    for hw in hardware:
        for phase in phases:
            b, n = np.meshgrid(np.asarray(batches, dtype=np.int64), np.asarray(lengths[phase], dtype=np.int64),
                               indexing="ij")
            grids.append(Sweeper(build, plan, hw, phase).grid(b.ravel(), n.ravel()))
    return SweepReport(probe.name, plan, max(probe.blocks, key=lambda blk: blk.count).name, tuple(grids))
