"""Crossover points: where an op, or a whole block, turns compute-bound as the batch (decode) or the
sequence length (prefill) grows, and the decode context at which attention overtakes the FFN.

Each answer is checked against the evaluator itself: n is reported only when the predicate is false at
n - 1 and true at n. Where an op's FLOPs and bytes are linear in the variable (checked at four points),
n comes from solving flops(n) / peak = bytes(n) / bandwidth exactly; otherwise from a doubling search and
a bisection, which assume the predicate stays true once it holds (true of these costs: FLOPs grow at
least as fast as bytes in batch and length).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import attrs

from opgraph.pricing.cost import COMPUTE, analyze, verdict
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.core import checks
from opgraph.core.phase import PHASES, VARIED, Phase
from opgraph.analysis.search import first_true
from opgraph.analysis.sweep import SweepCurve, sweep_curve
from opgraph.trace import Traced

LIMIT = 1 << 20  # the largest batch or length searched


@attrs.frozen
class Crossover:
    label: str  # "block.op", or "block" for a whole block
    at: int | None  # smallest value that is compute-bound; None: not up to LIMIT
    method: str  # "linear solve", "search", or "already" (compute-bound from 1)


_FIELDS = ("flops", "bytes", "compute_s", "memory_s", "comm_s")


def _evaluator(build, plan: FusionPlan, hw: Hardware, phase: str, fixed: int) -> Traced:
    """(flops, bytes, compute_s, memory_s, comm_s) of every op and block at one value of the variable."""
    def evaluate(n) -> dict:
        r = analyze(build(Phase.along(phase, n, fixed)), plan, hw)
        out = {}
        for b in r.blocks:
            for label, c in [(f"{b.name}.{o.name}", o.cost) for o in b.ops] + [(b.name, b.totals)]:
                out.update({(label, f): getattr(c, f) for f in _FIELDS})
        return out
    return Traced(evaluate, ("n",))


def _table(values: dict) -> dict[str, tuple]:
    table: dict[str, list] = {}
    for (label, _), v in values.items():  # fields arrive in _FIELDS order for each label
        table.setdefault(label, []).append(v)
    return {label: tuple(v) for label, v in table.items()}


def crossovers(build, plan: FusionPlan, hw: Hardware, phase: str, fixed: int) -> list[Crossover]:
    """For decode, the variable is the batch at context `fixed`; for prefill, the seq_len at batch `fixed`.
    `build(phase)` gives the model for a phase."""
    checks.choice("phase", phase, PHASES)
    ev = _evaluator(build, plan, hw, phase, fixed)
    at = functools.lru_cache(maxsize=None)(lambda n: _table(ev(n)))  # labels' searches share many probes
    # ops that move nothing of their own inside a larger kernel have no verdict of their own (their kernel's counts)
    probe = analyze(build(Phase.along(phase, 1, fixed)), plan, hw)
    fused = {f"{b.name}.{o.name}" for b in probe.blocks for o in b.ops if o.fused}
    return [_solve(label, lambda n, label=label: at(n)[label]) for label in at(1) if label not in fused]


def _bound(row: tuple) -> bool:
    """Whether the report calls it compute-bound: its compute time exceeds its memory time and its time on the links."""
    return verdict(row[2], row[3], row[4]) == COMPUTE


def _solve(label: str, row_at) -> Crossover:
    first = row_at(1)
    if _bound(first):
        return Crossover(label, 1, "already")
    n = _linear_solution(row_at)
    if n is not None:
        if n > LIMIT:
            return Crossover(label, None, "linear solve")
        if _bound(row_at(n)) and not _bound(row_at(n - 1)):
            return Crossover(label, n, "linear solve")
    return Crossover(label, _search(row_at), "search")


def _linear_solution(row_at) -> int | None:
    """If flops and bytes are linear in n, the smallest n with flops(n) * t_f > bytes(n) * t_b, where t_f and
    t_b are the op's seconds per FLOP and per byte (read off its own times); LIMIT + 1 for never."""
    pts = {n: row_at(n) for n in (1, 2, 3, LIMIT)}
    coeffs = []
    for i in (0, 1):  # flops, bytes
        a = pts[2][i] - pts[1][i]
        if pts[3][i] - pts[2][i] != a or pts[LIMIT][i] != pts[1][i] + (LIMIT - 1) * a:
            return None
        coeffs.append((a, pts[1][i] - a))  # value(n) = a*n + b
    (fa, fb), (ba, bb) = coeffs
    f1, b1, c1, m1 = pts[1][:4]
    if not f1 or not b1:
        return None
    tf, tb = Fraction(c1) / f1, Fraction(m1) / b1
    slope, offset = fa * tf - ba * tb, fb * tf - bb * tb  # compute - memory time = slope*n + offset
    if slope <= 0:
        return LIMIT + 1  # memory time grows as fast or faster: never
    return max(1, math.floor(-offset / slope) + 1)


def _search(row_at) -> int | None:
    return first_true(lambda n: _bound(row_at(n)), 1, LIMIT)


# -- attention versus FFN ----------------------------------------------------------------------------
ATTENTION, FFN_PARTS = "attention", frozenset({"mlp", "moe"})


def not_compared(model) -> str:
    """Why attention cannot be set against the FFN in a model whose every op is tagged ("" if it can): it has no
    feed-forward part at all (a pure state-space model such as Mamba-2)."""
    tagged = {op.part for op in model.ops()}
    if "" not in tagged and ATTENTION in tagged and not tagged & FFN_PARTS:
        return f"{model.name} has no feed-forward part (mlp or moe) to compare attention with"
    return ""


def attention_overtakes_ffn(build, plan: FusionPlan, hw: Hardware, batch: int, *, time: str = "time_s") -> int | None:
    """The smallest decode context at which the ops tagged "attention" take more time than those tagged "mlp" or
    "moe" (summed over the model's blocks); None if not up to LIMIT. The parts come from the builders' tags
    (GraphBuilder.scope): in a pre-norm layer each half's norm and residual add belong to it. `time` is
    "time_s" (the roofline) or "expected_s" (the calibrated time model)."""
    probe = build(Phase.decode(batch, 1))
    tagged = {op.part for op in probe.ops()}
    if not_compared(probe):
        return None
    if ATTENTION not in tagged or not tagged & FFN_PARTS:
        raise OpgraphError(f"{probe.name}: comparing attention with the FFN needs ops tagged 'attention' and "
                           f"'mlp' or 'moe' (parts found: {', '.join(sorted(p or '(untagged)' for p in tagged))}); "
                           f"tag them with GraphBuilder.scope(part=...)")

    def evaluate(n) -> dict:
        r = analyze(build(Phase.decode(batch, n)), plan, hw)
        attention = ffn = 0.0
        for b in r.blocks:
            for o in b.ops:
                if o.part == ATTENTION:
                    attention += b.count * getattr(o.cost, time)
                elif o.part in FFN_PARTS:
                    ffn += b.count * getattr(o.cost, time)
        return {"attention": attention, "ffn": ffn}

    ev = Traced(evaluate, ("n",))
    row = lambda n: (0, 0, *ev(n).values(), 0)  # noqa: E731 - (flops, bytes, attention_s, ffn_s, 0) for _search
    return 1 if _bound(row(1)) else _search(row)


@attrs.frozen
class PhaseCrossovers:
    phase: str
    variable: str  # "batch" (decode) or "seq_len" (prefill)
    fixed: dict[str, int]  # the other size, held
    crossovers: tuple[Crossover, ...]
    attention_overtakes_ffn: int | None = None  # decode only: the context (roofline times); None: not up to LIMIT
    attention_batch: int | None = None  # decode only: the batch that comparison is made at
    attention_overtakes_ffn_expected: int | None = None  # the same by the calibrated time model's times
    not_compared: str = ""  # decode only: why attention was not set against the FFN ("" when it was)
    curves: SweepCurve | None = None  # the model, its blocks and ops along the varied size (curve_sizes)


def curve_sizes(found) -> list[int]:
    """The sizes a phase's curves are computed at: the powers of two from 1 to twice the largest finite crossover
    rounded up to a power of two (so every crossover sits well inside the curve), at least 2^10 (a phase with no
    crossover still shows three decades) and at most LIMIT (the search's own end); and each finite crossover itself,
    so that its mark sits on a computed point rather than between two."""
    at = {x.at for x in found if x.at is not None}
    end = min(LIMIT, max(1 << 10, 1 << (2 * max(at, default=1) - 1).bit_length()))
    return sorted({1 << k for k in range(end.bit_length())} | at)


@attrs.frozen
class CrossoverReport:
    """`opgraph crossover`: per phase, where each op and block turns compute-bound."""

    model: str
    hardware: Hardware
    plan: FusionPlan
    phases: tuple[PhaseCrossovers, ...]
    limit: int = LIMIT


def crossover_report(build, plan: FusionPlan, hw: Hardware, phases: list[str], *, batch: int,
                     context: int, curves: bool = True) -> CrossoverReport:
    """Decode varies the batch at `context`; prefill varies seq_len at `batch`. Decode also gives the context at
    which attention overtakes the FFN at `batch`. Each phase also has its curves along the varied size (the model's
    times, throughput and intensity, each block's and op's time) at `curve_sizes`, from the sweep evaluator, unless
    `curves` is false (the text report shows none).

    >>> from opgraph import hardware, models, strategy
    >>> r = crossover_report(models.get("llama-3-8b").build, strategy("fused"), hardware.load("h100-sxm"),
    ...                      ["decode"], batch=32, context=1024)
    >>> next(x.at for x in r.phases[0].crossovers if x.label == "layer.q_proj")  # just past 989e12 / 3350e9
    296
    """
    out = []
    for ph in phases:
        variable, held = VARIED[ph]
        fixed = {held: {"context": context, "batch": batch}[held]}
        xs = tuple(crossovers(build, plan, hw, ph, fixed[held]))
        along = sweep_curve(build, plan, hw, ph, curve_sizes(xs), fixed[held], found=xs, ops=True) if curves else None
        decode = ph == "decode"  # only decode compares attention with the FFN, along the context
        over = attention_overtakes_ffn(build, plan, hw, batch) if decode else None
        expected_over = attention_overtakes_ffn(build, plan, hw, batch, time="expected_s") if decode else None
        why = not_compared(build(Phase.decode(batch, 1))) if decode else ""
        out.append(PhaseCrossovers(ph, variable, fixed, xs, over, batch if decode else None, expected_over, why,
                                   along))
    return CrossoverReport(build(Phase.of(phases[0], 1, 1)).name, hw, plan, tuple(out))
