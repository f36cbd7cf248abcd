"""Predicted against measured kernel times: `opgraph validate MEASURED.csv`.

Each measured row (opgraph.files.measurements) is rebuilt as the opgraph graph of the one kernel it times (its
class's row in opgraph.pricing.kinds: a GEMM, causal FlashAttention over a prompt, one decode query over the KV
cache, a norm, an activation, rope, an embedding lookup, an all-reduce or an expert-parallel all-to-all), fused into
one kernel, and priced by the same step as `opgraph report` (opgraph.pricing.cost): a row's expected time is what the
report gives that kernel, to the last bit.

Rows of a class are predicted together by replaying the traced kernel over arrays (opgraph.trace), so a file of
a hundred thousand kernels takes seconds. The error of a row is (predicted - measured) / measured: negative
means the prediction is too fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from opgraph.errors import OpgraphError
from opgraph.pricing import kinds
from opgraph.pricing.cost import analyze, kernel_work, verdict
from opgraph.core.fusion import FusionPlan, FuseRule
from opgraph.core.graph import GraphBuilder
from opgraph.pricing.hardware import Hardware
from opgraph.core.model import Block, Model
from opgraph.core.phase import Phase
from opgraph.core.tensor import DTYPES, Precision
from opgraph.pricing.kinds import time_class
from opgraph.pricing.timing import KernelWork, expected
from opgraph.files.measurements import SHAPE_COLUMNS, SHAPES, Measurement
from opgraph.trace import Traced

__all__ = ["SHAPE_COLUMNS", "Stats", "Validation", "expected_times", "features", "kernel", "validate", "work_of"]
ONE_KERNEL = FusionPlan("one kernel", rules=[FuseRule("every op fuses with its neighbours")])


def kernel(kind: str, dtype: str, **shape) -> Model:
    """The graph of one measured kernel, as a one-block model: the graph its class's row rebuilds
    (opgraph.pricing.kinds).

    >>> m = kernel("gemm", "bf16", m=8, n=4096, k=4096)
    >>> m.blocks[0].graph.ops["gemm"].flops == 2 * 8 * 4096 * 4096
    True
    """
    _, row = kinds.row(kind)
    b = GraphBuilder(row.precision(dtype) if row.precision else Precision.uniform(DTYPES[dtype]), name=kind)
    outputs = row.build(b, shape)  # beyond the graph's sinks, tensors the kernel writes (add_rms_norm's sum)
    phase = Phase.decode(shape.get("batch", 1), shape.get("context", 1))  # unused by the graph: for the record
    return Model(kind, phase, [Block(kind, 1, b.build(outputs))])


@attrs.frozen
class Stats:
    """The error distribution of some rows: |predicted - measured| / measured, and its signed median."""

    count: int
    median: float
    p90: float
    bias: float  # median of (predicted - measured) / measured: below 0, too fast
    too_fast: float  # share of rows predicted faster than measured

    @classmethod
    def of(cls, errors: np.ndarray) -> "Stats":
        a = np.abs(errors)
        return cls(len(errors), float(np.median(a)), float(np.quantile(a, 0.9)), float(np.median(errors)),
                   float(np.mean(errors < 0)))


@attrs.frozen(eq=False)
class Validation:
    """`opgraph validate`: each row's predictions, and their errors by class and by regime."""

    source: str
    hardware: Hardware
    measurements: tuple[Measurement, ...]
    roofline_s: np.ndarray  # per row, aligned with measurements
    expected_s: np.ndarray  # the calibrated time model's (the roofline where the GPU has no calibration)
    regime: tuple[str, ...]  # per row: latency, compute or memory
    stats: dict[str, dict[str, dict[str, Stats]]]  # predictor -> "class" / "regime" / "all" -> group -> Stats
    notes: tuple[str, ...] = ()  # what the reader must know: e.g. a trace's calls that map to no class

    @property
    def measured_s(self) -> np.ndarray:
        return np.array([m.time_s for m in self.measurements])

    def errors(self, predictor: str = "expected") -> np.ndarray:
        predicted = self.expected_s if predictor == "expected" else self.roofline_s
        return (predicted - self.measured_s) / self.measured_s

    @property
    def predictors(self) -> tuple[str, ...]:
        return ("roofline", "expected") if self.hardware.timing.calibrated else ("roofline",)


# KernelWork's fields after its class, in order
WORK = ("compute_s", "memory_s", "transcendentals", "gemm_rows", "gemm_depth", "gemm_cols", "attention_rows", "comm_s",
        "wire_s", "comm_steps", "comm_stages", "oneshot_stages", "oneshot_wire_s", "tiles", "gemm_groups")
FEATURES = ("time_s", "expected_s", *WORK)


def features(measurements: Sequence[Measurement], hw: Hardware) -> dict[str, np.ndarray]:
    """Per row: its kernel's roofline and expected time on `hw`, exactly as `opgraph report` prices that kernel (the
    same costing and pricing step, opgraph.pricing.cost), and what the time model reads of it (KernelWork's fields),
    by class and dtype, replayed over arrays."""
    out = {f: np.zeros(len(measurements)) for f in FEATURES}
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(measurements):
        groups.setdefault((m.kind, m.dtype), []).append(i)
    for (kind, dtype), rows in groups.items():
        names = SHAPES[kind]

        def evaluate(*sizes, kind=kind, dtype=dtype, names=names) -> dict:
            block = analyze(kernel(kind, dtype, **dict(zip(names, sizes))), ONE_KERNEL, hw).blocks[0]
            if len(block.kernels) != 1:  # a measured row times one kernel
                raise OpgraphError(f"measured class {kind!r} rebuilds {len(block.kernels)} kernels, not one; its row "
                                   f"in opgraph.pricing.kinds is wrong")
            priced, works = kernel_work(list(block.graph.ops.values()), {o.name: o.cost for o in block.ops}, hw)
            if priced != time_class(kind, dtype):  # calibrate fits the row to the class the report prices it by
                raise OpgraphError(f"a measured {kind} row of these sizes ({dict(zip(names, sizes))}) is a "
                                   f"{priced} kernel, not {time_class(kind, dtype)}")
            if len(works) != 1:  # every measured class rebuilds a kernel that one class prices
                raise OpgraphError(f"measured class {kind!r} rebuilds a kernel priced by several classes "
                                   f"({', '.join(w.kind for w in works)}); its row in opgraph.pricing.kinds is wrong")
            work = works[0]
            return {"time_s": block.totals.time_s, "expected_s": block.totals.expected_s,
                    **{f: getattr(work, f) for f in WORK}}

        got = Traced(evaluate, names).many(**{n: [measurements[i].shape[n] for i in rows] for n in names})
        for f in FEATURES:
            out[f][rows] = np.asarray(got[f], dtype=np.float64)
    return out


def work_of(kind: str, f: dict[str, np.ndarray], rows=slice(None)) -> KernelWork:
    """Some rows' kernels, all of time class `kind`, as one KernelWork over arrays."""
    return KernelWork(kind, *(f[name][rows] for name in WORK))


def expected_times(tm, classes: Sequence[str], f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The time model over arrays of kernels (features as `features` gives them), each priced by its time class
    (`classes`, per row: opgraph.pricing.kinds.time_class of its class and dtype): (seconds, latency-bound). The
    formula is the report's (opgraph.pricing.timing.expected): with `tm` the GPU's own model this is `expected_s`."""
    times, latency = f["expected_s"].copy(), np.zeros(len(classes), dtype=bool)
    if not tm.calibrated:
        return times, latency
    classes = np.asarray(classes)
    for kind in np.unique(classes):
        rows = classes == kind
        times[rows], latency[rows] = expected(tm, work_of(str(kind), f, rows))
    return times, latency


def validate(measurements: Sequence[Measurement], hw: Hardware, source: str = "",
             notes: Sequence[str] = ()) -> Validation:
    """Predict every measured kernel on `hw` (its roofline, and its calibrated time if `hw` has a time model)
    and summarize the errors.

    >>> from opgraph import hardware
    >>> from opgraph.files.measurements import Measurement
    >>> rows = [Measurement("gemm", "bf16", {"m": 1, "n": 4096, "k": 4096}, 14e-6)]
    >>> v = validate(rows, hardware.load("h100-sxm"))
    >>> round(float(v.roofline_s[0]) * 1e6, 2)  # 33.6 MB of weights at 3,350 GB/s: the measured 14 us is slower
    10.02
    """
    measurements = tuple(measurements)
    f = features(measurements, hw)
    kinds = [m.kind for m in measurements]
    _, latency = expected_times(hw.timing, [time_class(m.kind, m.dtype) for m in measurements], f)
    expected_s = f["expected_s"]
    regime = tuple(verdict(c, mem, comm) if not lat else "latency"
                   for lat, c, mem, comm in zip(latency, f["compute_s"], f["memory_s"], f["comm_s"]))
    measured = np.array([m.time_s for m in measurements])
    stats = {}
    for name, predicted in (("roofline", f["time_s"]), ("expected", expected_s)):
        errors = (predicted - measured) / measured
        stats[name] = {"class": _grouped(errors, kinds), "regime": _grouped(errors, regime),
                       "all": {"all": Stats.of(errors)}}
    return Validation(source, hw, measurements, f["time_s"], expected_s, regime, stats, tuple(notes))


def _grouped(errors: np.ndarray, keys: Sequence[str]) -> dict[str, Stats]:
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return {key: Stats.of(errors[rows]) for key, rows in sorted(groups.items())}
