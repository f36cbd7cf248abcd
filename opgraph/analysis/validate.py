"""Predicted against measured kernel times: `opgraph validate MEASURED.csv`.

Each measured row (opgraph.files.measurements) is rebuilt as an opgraph graph of the one kernel it times, and
costed under the `megakernel` plan (the whole graph is one kernel: what a single GEMM or FlashAttention call
reads and writes):
- gemm: y[m, n] = x[m, k] @ W[n, k]^T;
- prefill_attention: causal attention of batch x seq_len new tokens over themselves (qk, softmax, av, with
  causal skipping: FlashAttention computes only the unmasked blocks); reads q, k, v, writes the output;
- decode_attention: one query per sequence over context+1 cached keys; reads q and the K and V cache.

Rows of a class are predicted together by replaying the traced kernel over arrays (opgraph.trace), so a file of
a hundred thousand kernels takes seconds. The error of a row is (predicted - measured) / measured: negative
means the prediction is too fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from opgraph.core.cost import analyze
from opgraph.core.fusion import FusionPlan, FuseRule
from opgraph.core.graph import GraphBuilder
from opgraph.core.hardware import Hardware
from opgraph.core.model import Block, Model
from opgraph.core.phase import Phase
from opgraph.core.tensor import DTYPES, Precision
from opgraph.files.measurements import SHAPE_COLUMNS, SHAPES, Measurement
from opgraph.trace import Traced

__all__ = ["SHAPE_COLUMNS", "Stats", "Validation", "kernel", "predict", "validate"]
ONE_KERNEL = FusionPlan("one kernel", rules=[FuseRule("every op fuses with its neighbours")])


def kernel(kind: str, dtype: str, **shape) -> Model:
    """The graph of one measured kernel, as a one-block model.

    >>> m = kernel("gemm", "bf16", m=8, n=4096, k=4096)
    >>> m.blocks[0].graph.ops["gemm"].flops == 2 * 8 * 4096 * 4096
    True
    """
    b = GraphBuilder(Precision.uniform(DTYPES[dtype]), name=kind)
    if kind == "gemm":
        x = b.input("x", (shape["m"], shape["k"]))
        b.linear("gemm", x, b.weight("w", (shape["n"], shape["k"])), out="y")
    else:
        batch, heads, kv_heads, d = shape["batch"], shape["heads"], shape["kv_heads"], shape["head_dim"]
        kw = dict(heads=heads, kv_heads=kv_heads, head_dim=d, causal=True)
        if kind == "prefill_attention":
            s = shape["seq_len"]
            q = b.input("q", (batch, s, heads * d))
            keys = [b.input("k", (batch, s, kv_heads * d))]
            values = [b.input("v", (batch, s, kv_heads * d))]
        else:
            q = b.input("q", (batch, 1, heads * d))
            keys = [b.cache("k_cache", (batch, shape["context"] + 1, kv_heads * d))]
            values = [b.cache("v_cache", (batch, shape["context"] + 1, kv_heads * d))]
        scores = b.attention_scores("qk", q, keys, out="scores", **kw)
        probs = b.softmax("softmax", scores, causal=True, out="probs")
        b.attention_values("av", probs, values, out="out", **kw)
    phase = Phase.decode(shape.get("batch", 1), shape.get("context", 1))  # unused by the graph: for the record
    return Model(kind, phase, [Block(kind, 1, b.build())])


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
    """`opgraph validate`: each row's prediction, and the error by class and by regime."""

    source: str
    hardware: Hardware
    measurements: tuple[Measurement, ...]
    roofline_s: np.ndarray  # per row, aligned with measurements
    bound: tuple[str, ...]  # per row: the roofline's verdict
    by_class: dict[str, Stats]
    by_regime: dict[str, Stats]
    overall: Stats

    @property
    def errors(self) -> np.ndarray:
        measured = np.array([m.time_s for m in self.measurements])
        return (self.roofline_s - measured) / measured


def predict(measurements: Sequence[Measurement], hw: Hardware) -> tuple[np.ndarray, list[str]]:
    """The roofline time and verdict of every row, by class and dtype, replayed over arrays."""
    times, bounds = np.zeros(len(measurements)), [""] * len(measurements)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(measurements):
        groups.setdefault((m.kind, m.dtype), []).append(i)
    for (kind, dtype), rows in groups.items():
        names = SHAPES[kind]

        def evaluate(*sizes, kind=kind, dtype=dtype, names=names) -> dict:
            t = analyze(kernel(kind, dtype, **dict(zip(names, sizes))), ONE_KERNEL, hw).totals
            return {"time_s": t.time_s, "compute_s": t.compute_s, "memory_s": t.memory_s}

        out = Traced(evaluate, names).many(**{n: [measurements[i].shape[n] for i in rows] for n in names})
        times[rows] = out["time_s"].astype(np.float64)
        compute = out["compute_s"].astype(np.float64)
        memory = out["memory_s"].astype(np.float64)
        for j, i in enumerate(rows):
            bounds[i] = "compute" if compute[j] > memory[j] else "memory"
    return times, bounds


def validate(measurements: Sequence[Measurement], hw: Hardware, source: str = "") -> Validation:
    """Predict every measured kernel on `hw` and summarize the errors.

    >>> from opgraph import hardware
    >>> from opgraph.files.measurements import Measurement
    >>> rows = [Measurement("gemm", "bf16", {"m": 1, "n": 4096, "k": 4096}, 14e-6)]
    >>> v = validate(rows, hardware.load("h100-sxm"))
    >>> round(float(v.roofline_s[0]) * 1e6, 2)  # 33.6 MB of weights at 3,350 GB/s: the measured 14 us is slower
    10.02
    """
    measurements = tuple(measurements)
    times, bounds = predict(measurements, hw)
    measured = np.array([m.time_s for m in measurements])
    errors = (times - measured) / measured

    def stats(key) -> dict[str, Stats]:
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(measurements):
            groups.setdefault(key(i, m), []).append(i)
        return {name: Stats.of(errors[rows]) for name, rows in sorted(groups.items())}

    return Validation(source, hw, measurements, times, tuple(bounds), stats(lambda i, m: m.kind),
                      stats(lambda i, m: bounds[i]), Stats.of(errors))
