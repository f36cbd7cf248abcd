"""Sweeps: one model, plan and GPU evaluated at many batch sizes and lengths.

The graph's structure does not change with batch or length, so a sweep does not rebuild it per point:
`Sweeper` traces the ordinary build-fuse-cost pipeline once per regime with symbolic batch and length
(`opgraph.trace`) and then evaluates compiled straight-line code, which gives exactly the numbers
`opgraph report` gives at that point.
"""

from __future__ import annotations

import attrs

from opgraph.cost import COMPUTE, MEMORY, analyze
from opgraph.errors import OpgraphError
from opgraph.fusion import FusionPlan
from opgraph.hardware import Hardware
from opgraph.phase import Phase
from opgraph.trace import Traced


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
    block_time_s: dict[str, float]  # one instance of each block
    dominant_op: str  # "block.op" taking the largest share of the model's time
    dominant_share: float

    @property
    def intensity(self) -> float:
        return self.model_flops / self.model_bytes

    @property
    def bound(self) -> str:
        return COMPUTE if self.compute_s > self.memory_s else MEMORY

    @property
    def length_name(self) -> str:
        return "seq_len" if self.phase == "prefill" else "context"


class Sweeper:
    """Evaluate a model at (batch, length) points of one phase; `build(phase)` gives the model for a phase
    (e.g. `lambda ph: config.build(ph, options)`)."""

    def __init__(self, build, plan: FusionPlan, hw: Hardware, phase: str):
        if phase not in ("prefill", "decode"):
            raise OpgraphError(f"unknown phase {phase!r}; valid: prefill, decode")
        make = Phase.prefill if phase == "prefill" else Phase.decode
        self.hw, self.phase = hw, phase

        def evaluate(batch, length) -> list:
            r = analyze(build(make(batch, length)), plan, hw)
            t = r.totals
            ops = [(f"{b.name}.{o.name}", b.count * o.cost.time_s) for b in r.blocks for o in b.ops]
            top = max(ops, key=lambda kv: kv[1])
            blocks = [x for b in r.blocks for x in (b.name, b.totals.time_s)]
            return [t.time_s, t.flops, t.bytes, t.compute_s, t.memory_s, top[0], top[1], *blocks]

        self._traced = Traced(evaluate, ("batch", "length"))

    def point(self, batch: int, length: int) -> SweepPoint:
        time_s, flops, nbytes, compute_s, memory_s, top, top_s, *blocks = self._traced(batch, length)
        return SweepPoint(self.hw.name, self.phase, batch, length, time_s, flops, nbytes, compute_s, memory_s,
                          dict(zip(blocks[::2], blocks[1::2])), top, top_s / time_s)

    @property
    def regimes(self) -> int:
        """How many times the pipeline was traced: once per regime met so far."""
        return len(self._traced.regimes)


def parse_values(text: str, name: str) -> list[int]:
    """A sweep axis: "1,2,4", an inclusive range "1:512" or "1:512:8", or a progression "1,2,4,...,512"
    (geometric when the first terms have an integer ratio that reaches the end exactly, else arithmetic)."""
    def num(s: str) -> int:
        try:
            value = int(s)
        except ValueError:
            raise OpgraphError(f"{name}: {s!r} is not an integer (in {text!r})") from None
        if value <= 0:
            raise OpgraphError(f"{name}: values must be positive integers, got {value} (in {text!r})")
        return value

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
            values.extend(_progression(values[-2], values[-1], num(parts[i + 1]), name, text)[2:])
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
            values.extend(range(start, stop + 1, step))
        else:
            values.append(num(p))
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
        return list(range(a, end + 1, b - a))
    raise OpgraphError(f"{name}: {a},{b},...,{end} is neither a geometric nor an arithmetic progression "
                       f"that ends at {end} (in {text!r})")


def sweep(build, plan: FusionPlan, hardware: list[Hardware], phases: list[str], batches: list[int],
          lengths: dict[str, list[int]]) -> list[SweepPoint]:
    """Every (hardware, phase, batch, length) combination, in that nesting order."""
    points = []
    for hw in hardware:
        for phase in phases:
            sweeper = Sweeper(build, plan, hw, phase)
            points += [sweeper.point(b, n) for b in batches for n in lengths[phase]]
    return points
