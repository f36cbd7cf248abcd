"""Predicted against measured kernel times: `opgraph validate MEASURED.csv`.

Each measured row (opgraph.files.measurements) is rebuilt as an opgraph graph of the one kernel it times, and
costed under the `megakernel` plan (the whole graph is one kernel: what a single GEMM or FlashAttention call
reads and writes):
- gemm: y[m, n] = x[m, k] @ W[n, k]^T, x, W and y all of the row's dtype (an fp8 row: 1-byte operands and output,
  at the spec's fp8 matrix peak), priced by the GEMM class of that dtype (gemm, gemm_fp8: time_class);
- prefill_attention: causal attention of batch x seq_len new tokens over themselves (qk, softmax, av, with
  causal skipping: FlashAttention computes only the unmasked blocks); reads q, k, v, writes the output;
- decode_attention: one query per sequence over context+1 cached keys; reads q and the K and V cache;
- all_reduce: a ring all-reduce of `elements` values over `gpus` GPUs (opgraph.core.ops), on the spec's links;
- ep_dispatch, ep_combine: the expert-parallel all-to-alls (opgraph.core.ops.ep_dispatch, ep_combine) of `tokens`
  tokens of `hidden` values per GPU, each to its top_k experts' GPUs, over `gpus` GPUs, at the mean load of uniform
  routing (each GPU receives tokens x top_k rows), in the row's dtype: (n-1)/n x tokens x top_k x hidden values on
  the wire per GPU.

Rows of a class are predicted together by replaying the traced kernel over arrays (opgraph.trace), so a file of
a hundred thousand kernels takes seconds. The error of a row is (predicted - measured) / measured: negative
means the prediction is too fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from opgraph.core.cost import analyze, verdict, wire_time
from opgraph.core.fusion import FusionPlan, FuseRule
from opgraph.core.graph import GraphBuilder
from opgraph.core.hardware import Hardware
from opgraph.core.model import Block, Model
from opgraph.core.phase import Phase
from opgraph.core.tensor import DTYPES, INT32, Precision
from opgraph.core.timing import KernelWork, expected, shape_features
from opgraph.files.measurements import SHAPE_COLUMNS, SHAPES, Measurement, time_class
from opgraph.trace import Traced

__all__ = ["SHAPE_COLUMNS", "Stats", "Validation", "expected_times", "features", "kernel", "validate"]
ONE_KERNEL = FusionPlan("one kernel", rules=[FuseRule("every op fuses with its neighbours")])


def kernel(kind: str, dtype: str, **shape) -> Model:
    """The graph of one measured kernel, as a one-block model.

    >>> m = kernel("gemm", "bf16", m=8, n=4096, k=4096)
    >>> m.blocks[0].graph.ops["gemm"].flops == 2 * 8 * 4096 * 4096
    True
    """
    b = GraphBuilder(Precision.uniform(DTYPES[dtype]), name=kind)
    outputs = []  # beyond the graph's sinks, tensors the kernel writes (add_rms_norm's sum: the next residual)
    if kind == "gemm":
        x = b.input("x", (shape["m"], shape["k"]))
        b.linear("gemm", x, b.weight("w", (shape["n"], shape["k"])), out="y")
    elif kind == "all_reduce":
        b.all_reduce("all_reduce", b.input("x", (shape["elements"],)), group=shape["gpus"], out="y")
    elif kind == "ep_dispatch":
        tokens, top_k = shape["tokens"], shape["top_k"]
        b.ep_dispatch("ep_dispatch", b.input("x", (tokens, shape["hidden"])), group=shape["gpus"], top_k=top_k,
                      rows=tokens * top_k, out="y")
    elif kind == "ep_combine":
        tokens, top_k = shape["tokens"], shape["top_k"]
        b.ep_combine("ep_combine", b.input("y", (tokens * top_k, shape["hidden"])), group=shape["gpus"], top_k=top_k,
                     tokens=(tokens,), out="out")
    elif kind in ("rms_norm", "layer_norm", "add_rms_norm"):
        tokens, hidden = shape["tokens"], shape["hidden"]
        x = b.input("x", (tokens, hidden))
        if kind == "add_rms_norm":
            x = b.elementwise("add", "add", x, b.input("residual", (tokens, hidden)), out="sum")
            outputs.append(x)
        bias = b.weight("beta", (hidden,)) if kind == "layer_norm" else None
        fn = "layernorm" if kind == "layer_norm" else "rmsnorm"
        b.norm("norm", x, b.weight("gamma", (hidden,)), bias=bias, fn=fn, out="y")
    elif kind in ("silu_mul", "relu2"):
        x = b.input("x", (shape["tokens"], shape["hidden"]))
        if kind == "relu2":
            b.elementwise("relu2", "relu2", x, out="y")
        else:
            gate = b.elementwise("silu", "silu", x, out="act")
            b.elementwise("mul", "mul", gate, b.input("up", (shape["tokens"], shape["hidden"])), out="y")
    elif kind == "rope":
        tokens, d = shape["tokens"], shape["head_dim"]
        b.rope("rope_q", b.input("q", (tokens, shape["heads"] * d)), head_dim=d, out="q_rot")
        b.rope("rope_k", b.input("k", (tokens, shape["kv_heads"] * d)), head_dim=d, out="k_rot")
    elif kind == "embedding":
        ids = b.input("ids", (shape["tokens"],), INT32)
        b.embedding("embedding", ids, b.weight("table", (shape["vocab"], shape["hidden"])), out="y")
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


FEATURES = ("time_s", "compute_s", "memory_s", "transcendentals", "gemm_rows", "gemm_depth", "gemm_cols",
            "attention_rows", "comm_s", "wire_s", "comm_steps")  # after time_s, KernelWork's fields in order


def features(measurements: Sequence[Measurement], hw: Hardware) -> dict[str, np.ndarray]:
    """Per row: the roofline and expected times of its kernel on `hw`, and what the time model reads of it
    (opgraph.core.timing.KernelWork), by class and dtype, replayed over arrays."""
    out = {f: np.zeros(len(measurements)) for f in FEATURES}
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(measurements):
        groups.setdefault((m.kind, m.dtype), []).append(i)
    for (kind, dtype), rows in groups.items():
        names = SHAPES[kind]

        def evaluate(*sizes, kind=kind, dtype=dtype, names=names) -> dict:
            model = kernel(kind, dtype, **dict(zip(names, sizes)))
            t = analyze(model, ONE_KERNEL, hw).totals
            ops = list(model.blocks[0].graph.ops.values())
            return dict(zip(FEATURES, (t.time_s, t.compute_s, t.memory_s, sum(op.transcendentals for op in ops),
                                       *shape_features(ops), t.comm_s, sum(wire_time(op, hw) for op in ops),
                                       sum(op.wire_steps for op in ops))))

        got = Traced(evaluate, names).many(**{n: [measurements[i].shape[n] for i in rows] for n in names})
        for f in FEATURES:
            out[f][rows] = np.asarray(got[f], dtype=np.float64)
    return out


def expected_times(tm, classes: Sequence[str], f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The time model over arrays of kernels (features as `features` gives them), each priced by its time class
    (`classes`, per row: opgraph.files.measurements.time_class of its class and dtype): (seconds, latency-bound)."""
    times, latency = f["time_s"].copy(), np.zeros(len(classes), dtype=bool)
    if not tm.calibrated:
        return times, latency
    classes = np.asarray(classes)
    for kind in np.unique(classes):
        rows = classes == kind
        work = KernelWork(str(kind), *(f[name][rows] for name in FEATURES[1:]))
        times[rows], latency[rows] = expected(tm, work)
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
    expected_s, latency = expected_times(hw.timing, [time_class(m.kind, m.dtype) for m in measurements], f)
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
