"""GEMM classes by dtype: an fp8 x fp8 matrix product is the class gemm_fp8, fitted apart from bf16's gemm; a
calibration without a gemm_fp8 table prices it by its gemm one, as before the split."""

import random
from pathlib import Path

import attrs
import numpy as np
import pytest

from opgraph import hardware
from opgraph.analysis.calibrate import calibrate, split
from opgraph.analysis.validate import work_of, ONE_KERNEL, features, kernel, validate
from opgraph.pricing.cost import analyze
from opgraph.core.graph import GraphBuilder
from opgraph.core.model import Block, Model
from opgraph.core.phase import Phase
from opgraph.core.tensor import BF16, FP8, Precision
from opgraph.pricing.kinds import FALLBACK, classify, op_class
from opgraph.pricing.kinds.gemm import GEMM, gemm_class
from opgraph.pricing.timing import ROOFLINE, ClassTiming, KernelWork, TimeModel, expected

GEMM_FP8 = gemm_class("fp8")
from opgraph.files.measurements import Measurement, read
from opgraph.pricing.kinds import time_class

DATA = Path(__file__).parents[2] / "benchmarks" / "data"
H100 = hardware.load("h100-sxm")
BARE = attrs.evolve(H100, timing=ROOFLINE)
BW, FP8_PEAK = 3350e9, 1979e12  # hardware/specs/h100-sxm.toml: memory_bandwidth_GB_per_s, [matrix_TFLOP_per_s] fp8
TRUE = {GEMM: ClassTiming(latency_s=4e-6, compute_efficiency=0.8, memory_efficiency=0.85, overlap=0.6),
        GEMM_FP8: ClassTiming(latency_s=7e-6, compute_efficiency=0.5, memory_efficiency=0.7, overlap=0.3)}


def synthetic(n: int, seed: int = 1, dtypes=("bf16", "fp8")) -> list[Measurement]:
    """GEMMs of random shapes and dtypes whose 'measured' times are the model's with the TRUE parameters of their
    dtype's class (gemm for bf16, gemm_fp8 for fp8), times noise of about 3% (lognormal)."""
    rng = random.Random(seed)
    rows = [Measurement("gemm", rng.choice(dtypes), {"m": rng.choice([1, 4, 16, 64, 256, 1024, 4096, 16384]),
                                                     "n": rng.choice([1024, 4096, 14336]),
                                                     "k": rng.choice([1024, 4096, 8192])}, 1.0) for _ in range(n)]
    f = features(rows, BARE)
    classes = np.array([GEMM_FP8 if m.dtype == "fp8" else GEMM for m in rows])  # by hand, not by time_class
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.03, len(rows)))
    times = np.zeros(len(rows))
    for kind, params in TRUE.items():
        sel = classes == kind
        if sel.any():
            t, _ = expected(TimeModel("true", {kind: params}), work_of(kind, f, sel))
            times[sel] = t * noise[sel]
    return [attrs.evolve(m, time_s=float(t)) for m, t in zip(rows, times)]


def test_the_time_class_of_a_measured_row_follows_its_dtype():
    assert [time_class("gemm", d) for d in ("bf16", "fp16", "fp8", "int8")] == ["gemm", "gemm", "gemm_fp8", "gemm_int8"]
    assert time_class("all_reduce", "fp8") == "collective" and time_class("ep_dispatch", "bf16") == "all_to_all"
    # decode attention splits by its cache's storage (an fp8 cache has a table of its own), prefill does not
    assert time_class("decode_attention", "fp8") == "decode_attention_fp8"
    assert time_class("decode_attention", "bf16") == time_class("decode_attention", "fp16") == "decode_attention"
    assert time_class("prefill_attention", "fp8") == "prefill_attention"
    assert FALLBACK[GEMM_FP8] == GEMM and FALLBACK["gemm_int8"] == GEMM and GEMM not in FALLBACK


def test_known_fp8_and_bf16_parameters_are_recovered_apart_from_noisy_measurements():
    result = calibrate(synthetic(1600), BARE, holdout=0.25, seed=3)
    fitted = {c.kind: c for c in result.classes}
    assert set(fitted) == {GEMM, GEMM_FP8}
    for kind, truth in TRUE.items():
        p = fitted[kind].params
        assert p.latency_s == pytest.approx(truth.latency_s, rel=0.1), kind
        assert p.compute_efficiency == pytest.approx(truth.compute_efficiency, rel=0.05), kind
        assert p.memory_efficiency == pytest.approx(truth.memory_efficiency, rel=0.05), kind
        assert fitted[kind].after.median < 0.04  # the noise floor, held out
        assert fitted[kind].before.median > 0.2  # the roofline was far off
    assert set(result.model.classes) == {GEMM, GEMM_FP8}


def test_appending_fp8_rows_leaves_the_bf16_fit_as_it_was():
    """The held-out split is by row index (a seeded draw per row), so rows appended at the end move no earlier
    row's assignment: the gemm fit of a file is the same before and after its fp8 rows are added."""
    bf16 = synthetic(500, seed=5, dtypes=("bf16",))
    fp8 = synthetic(300, seed=6, dtypes=("fp8",))
    assert (split(800, 0.2, 0)[:500] == split(500, 0.2, 0)).all()
    alone = calibrate(bf16, BARE, holdout=0.2, seed=0)
    both = calibrate(bf16 + fp8, BARE, holdout=0.2, seed=0)
    assert both.model.classes[GEMM] == alone.model.classes[GEMM]
    assert {c.kind for c in both.classes} == {GEMM, GEMM_FP8}


def one_gemm(precision: Precision, m=8, n=4096, k=4096) -> Model:
    b = GraphBuilder(precision, name="x")
    b.linear("gemm", b.input("x", (m, k)), b.weight("w", (n, k)), out="y")
    return Model("x", Phase.decode(1, 1), [Block("x", 1, b.build())])


def ops(model: Model) -> list:
    return list(model.blocks[0].graph.ops.values())


def test_a_matmul_is_classed_by_its_compute_dtype():
    fp8, bf16 = ops(one_gemm(Precision.uniform(FP8))), ops(one_gemm(Precision.uniform(BF16)))
    weight_only = ops(one_gemm(Precision(FP8, BF16, BF16)))  # fp8 weights, bf16 activations: multiplies in bf16
    assert classify(fp8) == op_class(fp8[0], "prefill_attention") == GEMM_FP8
    assert classify(bf16) == op_class(bf16[0], "prefill_attention") == GEMM
    assert classify(weight_only) == GEMM and weight_only[0].compute_dtype.name == "bf16"
    assert gemm_class("fp16") == GEMM and gemm_class("fp8") == GEMM_FP8


def test_a_weight_that_quantizes_its_input_multiplies_at_its_own_type():
    """W8A8: fp8 weights whose GEMM quantizes the bf16 activations run on the fp8 units (2 x m x n x k FLOPs at the
    fp8 peak), while the activations it reads and writes stay bf16 (2 bytes an element); a 4-bit weight-only
    int4 beside bf16 activations still multiplies in bf16."""
    m, n, k = 8, 4096, 4096
    w8a8 = one_gemm(Precision(FP8.with_input_quantized(), BF16, BF16), m, n, k)
    [op] = ops(w8a8)
    assert op.compute_dtype == FP8 and classify([op]) == GEMM_FP8
    assert [t.dtype.bits for t in op.inputs] == [16, 8] and op.outputs[0].dtype == BF16
    assert op.flops == 2 * m * n * k
    assert str(op.inputs[1].dtype) == "fp8 (w8a8)"
    h100 = hardware.load("h100-sxm")
    cost = analyze(w8a8, ONE_KERNEL, h100).blocks[0].ops[0].cost
    assert cost.compute_s == pytest.approx(2 * m * n * k / h100.matrix_rate(FP8))
    assert cost.traffic.bytes == m * k * 2 + n * k + m * n * 2  # bf16 in, fp8 weight, bf16 out
    wider = one_gemm(Precision(BF16.with_input_quantized(), FP8, FP8))  # a weight wider than its input: as given
    assert ops(wider)[0].compute_dtype == FP8


def test_a_gpu_without_the_weights_type_runs_an_input_quantizing_gemm_weight_only():
    """An A100 has no fp8 matrix units: a W8A8 GEMM runs as vLLM's Marlin kernel runs it there, fp8 weights dequantized
    and multiplied in bf16 (the bf16 peak, class gemm), reading the same bytes; the block says which type fell back."""
    m, n, k = 64, 4096, 4096
    w8a8 = one_gemm(Precision(FP8.with_input_quantized(), BF16, BF16), m, n, k)
    a100, h100 = hardware.load("a100-sxm"), hardware.load("h100-sxm")
    on_a100, on_h100 = (analyze(w8a8, ONE_KERNEL, hw).blocks[0] for hw in (a100, h100))
    assert on_a100.weight_only == {"fp8"} and on_h100.weight_only == frozenset()
    assert on_a100.ops[0].cost.compute_s == pytest.approx(2 * m * n * k / a100.matrix_flops["bf16"])
    assert on_a100.ops[0].cost.traffic == on_h100.ops[0].cost.traffic
    assert [k.kind for k in on_a100.kernel_costs()] == [GEMM] and [k.kind for k in on_h100.kernel_costs()] == [GEMM_FP8]
    assert str(on_a100.graph.ops["gemm"].inputs[1].dtype) == "fp8"


def test_inside_a_fused_kernel_each_matmul_is_priced_by_its_own_class():
    """A fused attention kernel (projection, scores, softmax, values) at fp8: the kernel is attention, its
    projection's work is gemm_fp8's."""
    b = GraphBuilder(Precision.uniform(FP8), name="attn")
    x = b.input("x", (1, 16, 1024))
    q = b.linear("q_proj", x, b.weight("wq", (1024, 1024)), out="q")
    kw = dict(heads=8, kv_heads=8, head_dim=128, causal=True)
    scores = b.attention_scores("qk", q, [b.input("k", (1, 16, 1024))], out="scores", **kw)
    probs = b.softmax("softmax", scores, causal=True, out="probs")
    b.attention_values("av", probs, [b.input("v", (1, 16, 1024))], out="out", **kw)
    graph_ops = list(b.build().ops.values())
    assert classify(graph_ops) == "prefill_attention"
    assert {op.name: op_class(op, "prefill_attention") for op in graph_ops} == {
        "q_proj": GEMM_FP8, "qk": "prefill_attention", "softmax": "prefill_attention", "av": "prefill_attention"}


# m=8, n=k=4096 in fp8: 2*8*4096*4096 FLOPs at 1,979 TFLOP/s, and 1-byte x, W and y
M, N, K = 8, 4096, 4096
COMPUTE_S = 2 * M * N * K / FP8_PEAK  # 0.1356 us
MEMORY_S = (M * K + N * K + M * N) / BW  # 16,842,752 bytes: 5.0277 us


def test_without_a_gemm_fp8_table_an_fp8_gemm_is_priced_by_gemm_as_before():
    gemm = ClassTiming(latency_s=5e-6, compute_efficiency=0.5, memory_efficiency=0.8, overlap=1.0)
    only_gemm = attrs.evolve(H100, timing=TimeModel("old", {GEMM: gemm}))
    old_way = 5e-6 + max(COMPUTE_S / 0.5, MEMORY_S / 0.8)  # 5 + max(0.271, 6.285) = 11.285 us
    assert analyze(one_gemm(Precision.uniform(FP8)), ONE_KERNEL, only_gemm).totals.expected_s == \
        pytest.approx(old_way, rel=1e-9)
    assert old_way == pytest.approx(11.2846e-6, rel=1e-4)
    fp8 = ClassTiming(latency_s=2e-6, compute_efficiency=0.4, memory_efficiency=0.9, overlap=1.0)
    both = attrs.evolve(H100, timing=TimeModel("new", {GEMM: gemm, GEMM_FP8: fp8}))
    own_way = 2e-6 + max(COMPUTE_S / 0.4, MEMORY_S / 0.9)  # 2 + 5.586 us
    assert analyze(one_gemm(Precision.uniform(FP8)), ONE_KERNEL, both).totals.expected_s == \
        pytest.approx(own_way, rel=1e-9)
    # validate prices a measured fp8 row the same way, by gemm_fp8 or, where the calibration lacks it, by gemm
    row = [Measurement("gemm", "fp8", {"m": M, "n": N, "k": K}, 10e-6)]
    assert validate(row, only_gemm).expected_s[0] == pytest.approx(old_way, rel=1e-9)
    assert validate(row, both).expected_s[0] == pytest.approx(own_way, rel=1e-9)
    # and a bf16 row by gemm either way
    bf16 = [Measurement("gemm", "bf16", {"m": M, "n": N, "k": K}, 10e-6)]
    assert validate(bf16, both).expected_s[0] == validate(bf16, only_gemm).expected_s[0]


def test_validate_rebuilds_an_fp8_row_at_the_fp8_peak_with_one_byte_operands():
    g = kernel("gemm", "fp8", m=1, n=4096, k=4096).blocks[0].graph
    assert {t.dtype.name for op in g.ops.values() for t in (*op.inputs, *op.outputs)} == {"fp8"}  # x, W and y
    rows = [Measurement("gemm", "fp8", {"m": 1, "n": 4096, "k": 4096}, 8e-6),  # decode-sized: the weight read
            Measurement("gemm", "fp8", {"m": 8192, "n": 8192, "k": 8192}, 900e-6)]  # compute-bound
    v = validate(rows, BARE)
    memory = (4096 + 4096 * 4096 + 4096) / BW  # 16,785,408 bytes / 3,350 GB/s = 5.0106 us
    assert 2 * 4096 * 4096 / FP8_PEAK < memory
    compute = 2 * 8192**3 / FP8_PEAK  # 555.6 us, above 3 x 8192^2 bytes / 3,350 GB/s = 60.1 us
    assert 3 * 8192**2 / BW < compute
    assert v.roofline_s == pytest.approx([memory, compute], rel=1e-9)
    assert v.roofline_s[0] * 1e6 == pytest.approx(5.0106, rel=1e-4)
    assert v.roofline_s[1] * 1e6 == pytest.approx(555.6, rel=1e-4)
    assert v.regime == ("memory", "compute")
    # the same shapes in bf16: twice the bytes, at the bf16 peak (989 TFLOP/s)
    b = validate([attrs.evolve(r, dtype="bf16") for r in rows], BARE)
    assert b.roofline_s == pytest.approx([2 * memory, 2 * 8192**3 / 989e12], rel=1e-9)


def test_the_shipped_fp8_rows_come_last_and_the_h100_calibration_fits_them_apart():
    rows = read(DATA / "h100-sxm-vllm.csv.gz")
    dtypes = [r.dtype for r in rows]
    first = dtypes.index("fp8")
    moe = [r.kind for r in rows].index("moe")  # the fused-MoE calls, appended after them
    assert set(dtypes[first:moe]) == {"fp8"} and {r.kind for r in rows[first:moe]} == {"gemm"}
    assert {r.kind for r in rows[moe:]} == {"moe"} and moe - first > 30_000
    tm = H100.timing
    assert GEMM_FP8 in tm.classes and tm.of(GEMM_FP8) == tm.classes[GEMM_FP8] != tm.classes[GEMM]
    assert GEMM_FP8 not in hardware.load("a100-sxm").timing.classes  # no fp8 tensor cores, no fp8 rows


# vLLM's fp8 GEMM as the shipped H100 calibration models it: 64 x 64 output tiles in waves of the 132 SMs, and the
# per-token quantization of its bf16 input (per row and per input element) before it
WAVES = ClassTiming(latency_s=5e-6, compute_efficiency=0.7, memory_efficiency=0.9, overlap=0.5, tile_m=64, tile_n=64,
                    tiles_per_wave=132, per_row_s=7e-9, per_input_s=2e-12)


def test_a_report_prices_an_fp8_gemm_in_waves_with_its_quantization_by_hand():
    """y[300, 256] = x[300, 8192] @ W^T: 5 x 4 = 20 tiles of 64 x 64, less than one wave of 132, so the product
    runs at one tile's pace: 132 x 64 x 64 outputs' work for 300 x 256."""
    m, n, k = 300, 256, 8192
    hw = attrs.evolve(H100, timing=TimeModel("waves", {GEMM_FP8: WAVES}))
    compute = 2 * m * n * k / FP8_PEAK * (132 * 64 * 64) / (m * n) / 0.7
    memory = (m * k + n * k + m * n) / BW / 0.9
    busy = compute + memory - min(compute, memory) * 0.5
    want = 5e-6 + busy + 300 * 7e-9 + 300 * 8192 * 2e-12
    got = analyze(one_gemm(Precision.uniform(FP8), m=m, n=n, k=k), ONE_KERNEL, hw).totals.expected_s
    assert got == pytest.approx(want, rel=1e-9)
    assert validate([Measurement("gemm", "fp8", {"m": m, "n": n, "k": k}, 50e-6)], hw).expected_s[0] == \
        pytest.approx(want, rel=1e-9)


def test_known_wave_tiling_and_quantization_costs_are_recovered():
    rng = random.Random(7)
    rows = [Measurement("gemm", "fp8", {"m": rng.choice([1, 16, 64, 129, 513, 2048, 8192, 32768]),
                                        "n": rng.choice([64, 512, 4096, 14336]),
                                        "k": rng.choice([128, 1024, 8192, 51200])}, 1.0) for _ in range(1500)]
    f = features(rows, BARE)
    t, _ = expected(TimeModel("true", {GEMM_FP8: WAVES}), work_of(GEMM_FP8, f))
    noise = np.exp(np.random.default_rng(7).normal(0, 0.03, len(rows)))
    fit = calibrate([attrs.evolve(r, time_s=float(s)) for r, s in zip(rows, t * noise)], BARE, holdout=0.25, seed=2)
    (c,) = fit.classes
    assert (c.params.tile_m, c.params.tile_n, c.params.tiles_per_wave) == (64, 64, H100.sms) == (64, 64, 132)
    assert c.params.per_row_s == pytest.approx(7e-9, rel=0.15)
    assert c.params.per_input_s == pytest.approx(2e-12, rel=0.15)
    assert c.params.compute_efficiency == pytest.approx(0.7, rel=0.05)
    assert c.after.median < 0.04 and c.before.median > 0.3
