"""Pictures of a report, drawn with matplotlib: an optional extra (pip install "opgraph[plot]").

matplotlib is imported here only, inside the functions that draw, so no other command needs it. Each
drawing function takes the cost records (it never computes a cost), and returns the Figure together with
the data it drew, so a test can check the picture against the report point by point. Figures are made
without pyplot (no global state, no display): PNG renders with Agg, SVG with matplotlib's SVG backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs

from opgraph.pricing.cost import PhaseCost
from opgraph.errors import OpgraphError
from opgraph.core.model import Model
from opgraph.core.ops import MATRIX_KINDS
from opgraph.core.tensor import DType

INSTALL_HINT = ('plots need matplotlib, an optional extra: pip install "opgraph[plot]" '
                '(or pip install ".[plot]" from a checkout)')
FILE_TYPES = (".png", ".svg")
OTHER_BELOW = 0.01  # breakdown: ops under 1% of their phase's time in every phase are one "other" segment
PHASE_STYLE = {"prefill": ("tab:blue", "o"), "decode": ("tab:orange", "s")}


def require() -> None:
    """Fail early, in one line saying how to install it, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise OpgraphError(INSTALL_HINT) from None


def figure(**kwargs):
    """A matplotlib Figure (not attached to pyplot: no global state, no display)."""
    require()
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def check_path(path: str | Path) -> Path:
    """The output file; its suffix picks the format."""
    p = Path(path)
    if p.suffix.lower() not in FILE_TYPES:
        raise OpgraphError(f"--out {str(path)!r}: the file name must end in {' or '.join(FILE_TYPES)} "
                           f"(the suffix picks the format)")
    if not p.parent.is_dir():
        raise OpgraphError(f"--out {str(path)!r}: folder {str(p.parent)!r} does not exist")
    return p


def save(fig, path: str | Path) -> Path:
    p = check_path(path)
    try:
        fig.savefig(p, format=p.suffix[1:].lower(), dpi=150, bbox_inches="tight")
    except OSError as e:
        raise OpgraphError(f"--out {str(path)!r}: cannot write: {e.strerror or e}") from None
    return p


def matmul_dtype(model: Model) -> DType:
    """The precision the model's matmuls compute at (that of the first matmul): the roof to draw."""
    return next(op.compute_dtype for op in model.ops() if op.kind in MATRIX_KINDS)


def matmul_dtype_of(results: list[PhaseCost]) -> DType:
    """matmul_dtype of the costed graphs."""
    return next(op.compute_dtype for b in results[0].blocks for op in b.graph.ops.values() if op.kind in MATRIX_KINDS)


def _time_model(hw) -> str:
    return hw.timing.name if hw.timing.calibrated else "no calibration: the roofline"


# -- roofline ----------------------------------------------------------------------------------------
@attrs.frozen
class Point:
    phase: str
    block: str
    op: str
    label: str
    intensity: float  # FLOP/byte, the report's (inf: touches no memory)
    attainable: float  # FLOP/s achieved in the expected time: flops / expected_s
    bound: str


@attrs.frozen
class RooflineData:
    peak: float  # matrix FLOP/s at the matmuls' dtype
    dtype: str
    vector: float  # FLOP/s of the vector units (norms, softmax, elementwise)
    bandwidth: float  # byte/s
    points: tuple[Point, ...]
    skipped: tuple[str, ...]  # "phase block.op: why" for ops a log-log plot cannot place (no FLOPs)

    @property
    def ridge(self) -> float:
        """FLOP/byte where the memory roof meets the matrix peak."""
        return self.peak / self.bandwidth


def roofline_data(results: list[PhaseCost], dtype: DType) -> RooflineData:
    """One point per op of each phase and distinct block: (intensity, flops / expected time), both the report's.
    An op that touches no memory (fused away) has infinite intensity and is drawn at the right edge; an op
    that does no arithmetic (an embedding lookup) has no place on a log FLOP/s axis and is listed in
    `skipped`."""
    hw = results[0].hardware
    points, skipped = [], []
    for p in results:
        named = [(b.name, o) for b in p.blocks for o in b.ops]
        repeated = {o.name for _, o in named if sum(o.name == x.name for _, x in named) > 1}
        for block, o in named:
            r = o.cost
            if r.flops == 0 or r.expected_s == 0:
                skipped.append(f"{p.phase.name} {block}.{o.name}: does no arithmetic")
                continue
            label = f"{block}.{o.name}" if o.name in repeated else o.name
            points.append(Point(p.phase.name, block, o.name, label, r.intensity, r.flops / r.expected_s, o.bound))
    return RooflineData(hw.matrix_rate(dtype), dtype.name, hw.vector_flops, hw.bandwidth, tuple(points),
                        tuple(skipped))


def _clusters(xy: list[tuple[float, float, str]], close: float = 1.08) -> list[tuple[float, float, list[str]]]:
    """Points within a factor `close` of each other on both axes share one label, so none overprints."""
    groups: list[tuple[float, float, list[str]]] = []
    for x, y, label in sorted(xy):
        for gx, gy, names in groups:
            if max(x / gx, gx / x) < close and max(y / gy, gy / y) < close:
                names.append(label)
                break
        else:
            groups.append((x, y, [label]))
    return groups


def _wrap(names: list[str], per_line: int = 3) -> str:
    return "\n".join(", ".join(names[i:i + per_line]) for i in range(0, len(names), per_line))


def roofline(results: list[PhaseCost], dtype: DType):
    """The hardware roofline (log intensity vs attainable FLOP/s, ridge marked) with every op as a labelled
    point; ops that coincide share a label, and fused-away ops (infinite intensity) sit at the right edge.
    Returns (Figure, RooflineData)."""
    data = roofline_data(results, dtype)
    first = results[0]
    fig = figure(figsize=(12, 8), layout="constrained")
    ax = fig.add_subplot()
    xs = [pt.intensity for pt in data.points if not math.isinf(pt.intensity)] + [data.ridge]
    lo, hi = min(xs) / 3, max(xs) * 40
    edge = hi / 1.6  # where ops of infinite intensity are drawn
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(data.peak, x * data.bandwidth) for x in grid], color="black", lw=2,
            label=f"roofline: {data.dtype} matrix peak {data.peak / 1e12:,.0f} TFLOP/s, "
                  f"{data.bandwidth / 1e9:,.0f} GB/s")
    ax.plot(grid, [min(data.vector, x * data.bandwidth) for x in grid], color="gray", lw=1, ls="--",
            label=f"vector roof {data.vector / 1e12:,.1f} TFLOP/s (norms, softmax, elementwise)")
    ax.plot([data.ridge], [data.peak], marker="*", ms=16, color="red", ls="none",
            label=f"ridge point: {data.ridge:,.0f} FLOP/B")
    ax.annotate(f"ridge {data.ridge:,.0f} FLOP/B", (data.ridge, data.peak), textcoords="offset points",
                xytext=(-40, 10), color="red")
    ax.axvline(edge, color="gray", lw=0.5, ls=":")
    for k, (phase, (color, marker)) in enumerate(PHASE_STYLE.items()):
        pts = [pt for pt in data.points if pt.phase == phase]
        finite = [pt for pt in pts if not math.isinf(pt.intensity)]
        fused = [pt for pt in pts if math.isinf(pt.intensity)]
        if finite:
            ax.scatter([pt.intensity for pt in finite], [pt.attainable for pt in finite], color=color,
                       marker=marker, s=40, zorder=3, label=f"{phase} ops ({len(finite)})")
        if fused:
            ax.scatter([edge] * len(fused), [pt.attainable for pt in fused], color=color, marker=">", s=40,
                       zorder=3, label=f"{phase} ops fused away, ∞ FLOP/B ({len(fused)}), at the right edge")
        xy = [(pt.intensity, pt.attainable, pt.label) for pt in finite] + [(edge, pt.attainable, pt.label)
                                                                          for pt in fused]
        for x, y, names in _clusters(xy):
            # prefill labels above the point, decode labels below, so coinciding phases do not overprint
            right = x < edge
            ax.annotate(_wrap(names), (x, y), textcoords="offset points", xytext=(6 if right else -6, 6 - 18 * k),
                        fontsize=7, color=color, ha="left" if right else "right", va="bottom" if k == 0 else "top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("attained FLOP/s (op FLOPs / its expected time)")
    sizes = "; ".join(f"{p.phase.name} " + ", ".join(f"{k} {v:,}" for k, v in p.phase.describe().items())
                      for p in results)
    ax.set_title(f"{first.model} on {first.hardware.display_name}, fusion {first.plan.name}\n({sizes}); points: "
                 f"expected times ({_time_model(first.hardware)}), lines: the roofline")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig, data


# -- breakdown ---------------------------------------------------------------------------------------
@attrs.frozen
class BreakdownData:
    phases: tuple[str, ...]
    segments: tuple[tuple[str, tuple[float, ...]], ...]  # (op or "other (n ops)", seconds per phase), stack order
    totals: tuple[float, ...]  # model time per phase, seconds (the report's)
    other: tuple[str, ...]  # the ops folded into "other"


def breakdown_data(results: list[PhaseCost]) -> BreakdownData:
    """Model expected time per op name and phase: an op's in each block times the block's count, summed over
    the blocks that have it. Ops under OTHER_BELOW of their phase's time in every phase form one segment."""
    per_op: dict[str, list[float]] = {}
    for i, p in enumerate(results):
        for b in p.blocks:
            for o in b.ops:
                per_op.setdefault(o.name, [0.0] * len(results))[i] += b.count * o.cost.expected_s
    totals = tuple(p.totals.expected_s for p in results)
    small = [n for n, ts in per_op.items() if all(t < OTHER_BELOW * tot for t, tot in zip(ts, totals))]
    segments = [(n, tuple(ts)) for n, ts in per_op.items() if n not in small]
    if small:
        segments.append((f"other ({len(small)} ops)", tuple(math.fsum(per_op[n][i] for n in small)
                                                         for i in range(len(results)))))
    return BreakdownData(tuple(p.phase.name for p in results), tuple(segments), totals, tuple(small))


def breakdown(results: list[PhaseCost]):
    """A stacked bar of model time per op for each phase, each phase on its own axis (prefill takes far
    longer than one decode step). Returns (Figure, BreakdownData)."""
    data = breakdown_data(results)
    first = results[0]
    fig = figure(figsize=(4 + 3 * len(results), 7), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    cmap = _colors(len(data.segments))
    for i, (ax, p) in enumerate(zip(axes, results)):
        bottom = 0.0
        for (name, ts), color in zip(data.segments, cmap):
            ms = ts[i] * 1e3
            ax.bar([0], [ms], bottom=bottom, color=color, width=0.6, label=name if i == 0 else None)
            if ts[i] >= 0.04 * data.totals[i]:
                ax.text(0, bottom + ms / 2, f"{name} {ts[i] / data.totals[i]:.0%}", ha="center", va="center",
                        fontsize=7)
            bottom += ms
        ax.set_xticks([0], [p.phase.name + "\n" + ", ".join(f"{k} {v:,}" for k, v in p.phase.describe().items())])
        ax.set_xlim(-0.6, 0.6)
        ax.set_ylabel("model expected time (ms)")
        ax.set_title(f"{p.phase.name}: {data.totals[i] * 1e3:,.3g} ms expected ({p.totals.time_s * 1e3:,.3g} ms roofline)")
    fig.suptitle(f"{first.model} on {first.hardware.display_name}, fusion {first.plan.name}: expected time per op "
                 f"({_time_model(first.hardware)})")
    fig.legend(loc="outside right center", fontsize=8, title="op (all layers)")
    return fig, data


def _colors(n: int) -> list:
    from matplotlib import colormaps
    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


# -- sweep -------------------------------------------------------------------------------------------
def sweep(curves: list, title: str):
    """Expected time against batch or length, one panel per phase: the model's (with its roofline dashed) and each
    block's, log-log, with each block's compute-bound crossover marked. Returns (Figure, curves)."""
    fig = figure(figsize=(6.5 * len(curves), 5), layout="constrained")
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, c in zip(axes, curves):
        ms = [t * 1e3 for t in c.model_s]
        ax.plot(c.xs, ms, "o-", color="black", label="model, expected", markersize=3)
        if c.roofline_s:
            ax.plot(c.xs, [t * 1e3 for t in c.roofline_s], "--", color="black", linewidth=1, label="model, roofline")
        colors = _colors(len(c.blocks))
        for (name, ts), color in zip(c.blocks, colors):
            ax.plot(c.xs, [t * 1e3 for t in ts], "-", color=color, label=name)
        for name, at in c.crossovers:
            ax.axvline(at, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"{name} compute-bound from {c.variable} {at:,}", (at, max(ms)), rotation=90,
                        fontsize=7, va="top", ha="right")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(c.variable)
        ax.set_ylabel("expected time (ms)")
        fixed = ", ".join(f"{k} {v:,}" for k, v in c.fixed.items())
        ax.set_title(f"{c.phase} at {fixed}")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig, curves


def pareto(plan):
    """A serving plan's candidates: output tokens/s per GPU against tokens/s per user, one colour a layout, the
    Pareto front joined, candidates within the limits filled (hollow otherwise), the best starred. Returns the
    Figure."""
    fig = figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    from opgraph.analysis.serving_plan import SPLITS

    def group(c) -> str:  # splits share one colour (their many layouts are in the JSON and the table)
        return SPLITS if c.disaggregated else c.layout.describe() + (" + draft" if c.speculative else "")

    layouts = sorted({group(c) for c in plan.candidates})
    for name, color in zip(layouts, _colors(len(layouts))):
        mine = [c for c in plan.candidates if group(c) == name]
        for inside in (True, False):
            pts = [c for c in mine if c.meets_limits == inside]
            if pts:
                ax.scatter([c.tokens_per_s_per_user for c in pts], [c.tokens_per_s_per_gpu for c in pts], s=28,
                           color=color if inside else "none", edgecolors=color, marker="^" if name == SPLITS else "o",
                           label=name if inside or not any(c.meets_limits for c in mine) else None)
    front = sorted((c for c in plan.candidates if c.on_front), key=lambda c: c.tokens_per_s_per_user)
    ax.plot([c.tokens_per_s_per_user for c in front], [c.tokens_per_s_per_gpu for c in front], "-", color="black",
            linewidth=1, label="Pareto front")
    if plan.best is not None:
        ax.scatter([plan.best.tokens_per_s_per_user], [plan.best.tokens_per_s_per_gpu], marker="*", s=220,
                   color="gold", edgecolors="black", zorder=5, label="best within the limits")
    ax.set_xlabel("output tokens/s per user (1 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(f"{plan.model} on {plan.gpus} x {plan.hardware.display_name}, engine {plan.engine}: expected "
                 f"steady state ({_time_model(plan.hardware)}); {plan.prompt:,} -> {plan.output:,} tokens; hollow: "
                 f"outside the limits", fontsize=9)
    ax.legend(fontsize=8)
    return fig


# -- files, with a line saying what was drawn (the plot command's output) -----------------------------------
def pareto_file(plan, path) -> str:
    fig = pareto(plan)
    best = (f"; best {plan.best.layout.describe()} at " + (f"{plan.best.rate:g} requests/s in all" if plan.best.rate
                                                             is not None else f"concurrency {plan.best.concurrency}")
            if plan.best else
            "; none within the limits")
    return (f"wrote {save(fig, path)}: {len(plan.candidates)} candidates, {len(plan.front)} on the Pareto front"
            f"{best}\n")



def roofline_file(results: list[PhaseCost], path) -> str:
    fig, data = roofline(results, matmul_dtype_of(results))
    what = (f"{len(data.points)} op points, ridge at {data.ridge:,.0f} FLOP/B"
            + (f"; not drawn: {'; '.join(data.skipped)}" if data.skipped else ""))
    return f"wrote {save(fig, path)}: {what}\n"


def breakdown_file(results: list[PhaseCost], path) -> str:
    fig, data = breakdown(results)
    what = f"{len(data.segments)} segments per phase" + (f" ('other': {', '.join(data.other)})" if data.other else "")
    return f"wrote {save(fig, path)}: {what}\n"


def sweep_file(curves: list, title: str, path) -> str:
    fig, _ = sweep(curves, title)
    marks = "; ".join(f"{c.phase}: {b} from {c.variable} {at:,}" for c in curves for b, at in c.crossovers)
    return (f"wrote {save(fig, path)}: {sum(len(c.xs) for c in curves)} points"
            + (f"; crossovers {marks}" if marks else "; no block crosses to compute-bound in range") + "\n")


# -- predicted against measured ------------------------------------------------------------------------
def validation(v):
    """Predicted against measured kernel time, log-log, one colour a class: the roofline on the left, the
    calibrated model on the right (when the GPU has one), the diagonal and a +-30% band marked. Returns the Figure."""
    import numpy as np
    panels = v.predictors
    fig = figure(figsize=(6.2 * len(panels), 6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    measured = v.measured_s * 1e6
    kinds = np.array([m.kind for m in v.measurements])
    lo, hi = measured.min() / 3, measured.max() * 3
    colors = _colors(len(set(kinds.tolist())))
    for ax, predictor in zip(axes, panels):
        predicted = (v.expected_s if predictor == "expected" else v.roofline_s) * 1e6
        for kind, color in zip(sorted(set(kinds.tolist())), colors):
            sel = kinds == kind
            s = v.stats[predictor]["class"][kind]
            ax.scatter(measured[sel], np.maximum(predicted[sel], lo), s=3, alpha=0.35, color=color,
                       label=f"{kind} ({s.count:,}): median |error| {s.median:.1%}, p90 {s.p90:.1%}")
        ax.plot([lo, hi], [lo, hi], color="black", lw=1)
        ax.fill_between([lo, hi], [lo * 0.7, hi * 0.7], [lo * 1.3, hi * 1.3], color="gray", alpha=0.15, label="±30%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured µs")
        ax.set_ylabel(f"{predictor} µs")
        ax.set_title("roofline (datasheet peaks)" if predictor == "roofline" else f"expected ({v.hardware.timing.name})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", markerscale=4)
    fig.suptitle(f"{v.source or 'measurements'} on {v.hardware.display_name}: predicted against measured")
    return fig


def validation_file(v, path) -> str:
    overall = v.stats[v.predictors[-1]]["all"]["all"]
    return (f"wrote {save(validation(v), path)}: {len(v.measurements):,} kernels; {v.predictors[-1]} median |error| "
            f"{overall.median:.1%}, p90 {overall.p90:.1%}\n")
