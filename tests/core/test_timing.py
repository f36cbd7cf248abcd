"""The time model (opgraph.pricing.timing), term by term, against the formula worked by hand."""

import attrs
import numpy as np
import pytest

from opgraph.errors import OpgraphError
from opgraph.pricing.timing import ClassTiming, KernelWork, TimeModel, expected, expected_fused
from opgraph.trace import Traced

US = 1e-6


def one(kind="gemm", rate=None, **params) -> TimeModel:
    return TimeModel("t", {kind: ClassTiming(**params)}, rate)


def test_efficiencies_overlap_and_latency():
    tm = one(latency_s=2 * US, compute_efficiency=0.5, memory_efficiency=0.8, overlap=0.25)
    t, latency_bound = expected(tm, KernelWork("gemm", compute_s=3 * US, memory_s=4 * US))
    # compute 3 / 0.5 = 6, memory 4 / 0.8 = 5; busy 6 + 5 - 5 x 0.25 = 9.75; plus the latency 2
    assert t == pytest.approx(11.75 * US)
    assert not latency_bound


def test_exponentials_overlap_the_matrix_products_by_special_overlap():
    # 2e6 exponentials at 1e12/s take 2 us beside 5 us of matrix products
    work = KernelWork("prefill_attention", compute_s=5 * US, memory_s=0.0, transcendentals=2_000_000)
    hidden, _ = expected(one("prefill_attention", 1e12), work)  # default 1: the larger of the two
    assert hidden == pytest.approx(5 * US)
    summed, _ = expected(one("prefill_attention", 1e12, special_overlap=0.0), work)
    assert summed == pytest.approx(7 * US)
    part, _ = expected(one("prefill_attention", 1e12, special_overlap=0.25), work)
    assert part == pytest.approx((5 + 2 - 2 * 0.25) * US)
    ignored, _ = expected(one("prefill_attention", None, special_overlap=0.0), work)  # no rate: not counted
    assert ignored == pytest.approx(5 * US)


def test_exponentials_can_bound_the_kernel():
    work = KernelWork("prefill_attention", compute_s=1 * US, memory_s=0.0, transcendentals=3_000_000)
    t, _ = expected(one("prefill_attention", 1e12), work)
    assert t == pytest.approx(3 * US)


def test_attention_pays_per_sequence_and_kv_head():
    work = KernelWork("decode_attention", compute_s=0.0, memory_s=1 * US, attention_rows=8 * 8)
    t, _ = expected(one("decode_attention", latency_s=10 * US, per_row_s=0.02 * US), work)
    assert t == pytest.approx((10 + 1 + 64 * 0.02) * US)


def test_gemm_rows_pad_to_the_tile():
    # 65 rows on a 64-row tile compute as 128: the matrix time grows by 128 / 65
    work = KernelWork("gemm", compute_s=6.5 * US, memory_s=0.0, gemm_rows=65)
    t, _ = expected(one(tile_m=64), work)
    assert t == pytest.approx(6.5 * 128 / 65 * US)


def test_gemm_tiles_run_in_whole_waves():
    # y[65, 130]: 2 x 3 tiles of 64 x 64 = 6 tiles; in waves of 4 they take 2 waves, the time of 8 tiles:
    # 8 x 64 x 64 = 32,768 outputs' work for 65 x 130 = 8,450 needed
    work = KernelWork("gemm", compute_s=1 * US, memory_s=0.0, gemm_rows=65, gemm_depth=4096, gemm_cols=130)
    waves, _ = expected(one(tile_m=64, tile_n=64, tiles_per_wave=4), work)
    assert waves == pytest.approx(32768 / 8450 * US)
    tiles, _ = expected(one(tile_m=64, tile_n=64), work)  # no waves: the 6 tiles alone
    assert tiles == pytest.approx(6 * 4096 / 8450 * US)
    # a GEMM that fills less than a wave runs at one tile's pace: y[1, 64] costs a whole 64 x 64 tile per wave of 4
    small = KernelWork("gemm", compute_s=1 * US, memory_s=0.0, gemm_rows=1, gemm_depth=4096, gemm_cols=64)
    t, _ = expected(one(tile_m=64, tile_n=64, tiles_per_wave=4), small)
    assert t == pytest.approx(4 * 64 * 64 / 64 * US)


def test_a_matrix_kernel_without_a_gemm_shape_is_not_padded_to_tiles():
    # gated DeltaNet's chunked scan runs on the matrix units but has no y[m, n] to tile: 1 us at 0.8 of the peak,
    # not a wave of 132 tiles of 64 x 64 over a 1 x 1 output (540,672 times that)
    scan = KernelWork("gemm_fp8", compute_s=1 * US, memory_s=0.0)
    t, _ = expected(one("gemm_fp8", compute_efficiency=0.8, tile_m=64, tile_n=64, tiles_per_wave=132), scan)
    assert t == pytest.approx(1 * US / 0.8)


def test_gemm_pays_per_activation_row_and_per_input_element():
    # an fp8 GEMM quantizes its input first: 7 ns per row and 2 ps per element of x[300, 4096], beside 10 us
    work = KernelWork("gemm_fp8", compute_s=10 * US, memory_s=0.0, gemm_rows=300, gemm_depth=4096, gemm_cols=512)
    t, _ = expected(one("gemm_fp8", latency_s=5 * US, per_row_s=7e-9, per_input_s=2e-12), work)
    assert t == pytest.approx(5 * US + 10 * US + 300 * 7e-9 + 300 * 4096 * 2e-12)


def test_a_thin_gemm_is_no_faster_than_one_tiles_walk_along_k_up_to_the_split():
    # 1 ns a unit of k, split beyond k = 2,000: a k of 4,096 walks 2 us, beside 1 us of bytes, after 3 us of launch
    tm = one(latency_s=3 * US, per_depth_s=1e-9, split_depth=2000)
    thin = KernelWork("gemm", compute_s=0.1 * US, memory_s=1 * US, gemm_rows=8, gemm_depth=4096, gemm_cols=128)
    assert expected(tm, thin)[0] == pytest.approx((3 + 2) * US)
    short = attrs.evolve(thin, gemm_depth=500)  # 0.5 us of walk: the bytes take longer
    assert expected(tm, short)[0] == pytest.approx((3 + 1) * US)
    never_split = one(latency_s=3 * US, per_depth_s=1e-9)  # split_depth 0: the walk grows with k
    assert expected(never_split, thin)[0] == pytest.approx(3 * US + 4096e-9)
    large = KernelWork("gemm", compute_s=50 * US, memory_s=20 * US, gemm_rows=4096, gemm_depth=4096, gemm_cols=4096)
    assert expected(tm, large)[0] == pytest.approx((3 + 50) * US)  # a GEMM that fills the GPU: the walk is hidden


def test_the_first_stretch_of_a_vector_kernels_traffic_runs_at_the_l2s_pace():
    # 4 us of traffic at the datasheet bandwidth: the first 1.5 us of it at 2x that pace (0.75 us), the other 2.5 us
    # at 0.8 of it (3.125 us), after 2 us of launch
    tm = one("norm", latency_s=2 * US, memory_efficiency=0.8, cache_s=1.5 * US, cache_efficiency=2.0)
    assert expected(tm, KernelWork("norm", compute_s=0.0, memory_s=4 * US))[0] == pytest.approx((2 + 0.75 + 3.125) * US)
    # traffic within the stretch: all of it at the L2's pace
    assert expected(tm, KernelWork("norm", compute_s=0.0, memory_s=1 * US))[0] == pytest.approx((2 + 0.5) * US)
    # cache_s 0 (every class but the vector ones): memory at memory_efficiency alone, whatever cache_efficiency says
    flat = one("norm", latency_s=2 * US, memory_efficiency=0.8, cache_efficiency=2.0)
    assert expected(flat, KernelWork("norm", compute_s=0.0, memory_s=4 * US))[0] == pytest.approx((2 + 5) * US)


def test_a_fused_moe_call_pays_per_tile():
    # 30 us fixed, 10 us of bytes, 20,000 programs at 1.5 ns: 30 us more
    tm = one("moe", latency_s=30 * US, per_tile_s=1.5e-9)
    assert expected(tm, KernelWork("moe", compute_s=1 * US, memory_s=10 * US, tiles=20_000))[0] == pytest.approx(70 * US)


def test_a_kernel_is_latency_bound_when_its_fixed_cost_exceeds_both_times():
    t, latency_bound = expected(one(latency_s=5 * US), KernelWork("gemm", compute_s=1 * US, memory_s=2 * US))
    assert t == pytest.approx(7 * US) and latency_bound
    _, latency_bound = expected(one(latency_s=1 * US), KernelWork("gemm", compute_s=1 * US, memory_s=2 * US))
    assert not latency_bound


def test_a_fused_kernel_pays_one_latency_its_own_classes():
    tm = TimeModel("t", {"gemm": ClassTiming(latency_s=3 * US), "prefill_attention": ClassTiming(latency_s=12 * US),
                         "norm": ClassTiming(latency_s=7 * US)})
    works = [KernelWork("gemm", compute_s=4 * US, memory_s=1 * US),
             KernelWork("prefill_attention", compute_s=2 * US, memory_s=0.0)]
    t, _ = expected_fused(tm, works, "prefill_attention")  # an attention block: its projections' work, one launch
    assert t == pytest.approx((12 + 4 + 2) * US)
    # a norm fused into the projection after it: the GEMM kernel's 3 us, not the standalone norm's 7
    fused_norm = [KernelWork("norm", compute_s=0.0, memory_s=0.5 * US),
                  KernelWork("gemm", compute_s=4 * US, memory_s=1 * US)]
    t, _ = expected_fused(tm, fused_norm, "gemm")
    assert t == pytest.approx((3 + 0.5 + 4) * US)


@pytest.mark.parametrize("field, value", [("special_overlap", 1.5), ("special_overlap", -0.1), ("overlap", 2),
                                          ("tile_n", 0), ("tiles_per_wave", -1), ("per_input_s", -1e-12),
                                          ("per_depth_s", -1e-9), ("split_depth", -1), ("cache_s", -1e-6),
                                          ("cache_efficiency", 0), ("per_tile_s", -1e-9)])
def test_parameters_out_of_range_are_refused(field, value):
    with pytest.raises(Exception, match=field):
        ClassTiming(**{field: value})


def test_shape_features_are_the_first_gemms_m_k_and_all_its_output_columns():
    from opgraph.core.graph import GraphBuilder
    from opgraph.core.tensor import BF16, Precision
    from opgraph.pricing.kinds import features
    b = GraphBuilder(Precision.uniform(BF16), name="x")
    x = b.input("x", (4, 8, 512))
    b.multi_linear("kv_a", x, [b.weight("w1", (576, 512)), b.weight("w2", (64, 512))], outs=("latent", "rope"))
    assert features("gemm", list(b.build().ops.values())) == {"gemm_rows": 4 * 8, "gemm_depth": 512,
                                                               "gemm_cols": 576 + 64}


# A GEMM class with tables by rows (the kernels a library dispatches by m): 1 µs up to 16 rows, 2 µs up to 64, 3 µs
# above. With no compute or memory a kernel's time is its table's latency, so each table shows by its number.
BY_ROWS = ClassTiming(latency_s=3e-6, by_rows=((16, ClassTiming(latency_s=1e-6)), (64, ClassTiming(latency_s=2e-6))))
ROWS, BY_ROWS_TIMES = (1, 16, 17, 64, 65, 4096), [1e-6, 1e-6, 2e-6, 2e-6, 3e-6, 3e-6]


def test_a_gemm_is_priced_by_the_table_of_its_rows_one_by_one_over_arrays_and_traced():
    tm = TimeModel("x", {"gemm_fp8": BY_ROWS})
    assert [expected(tm, KernelWork("gemm_fp8", 0.0, 0.0, gemm_rows=m))[0] for m in ROWS] == BY_ROWS_TIMES
    rows = np.array(ROWS)
    t, _ = expected(tm, KernelWork("gemm_fp8", np.zeros(6), np.zeros(6), gemm_rows=rows))  # a fit's, a validation's
    assert t.tolist() == BY_ROWS_TIMES
    # a sweep over the batch: one regime per range of rows, each replayed exactly
    traced = Traced(lambda a, b: {"t": expected(tm, KernelWork("gemm_fp8", 0.0, 0.0, gemm_rows=a * b))[0]}, ("a", "b"))
    assert [traced(m, 1)["t"] for m in ROWS] == BY_ROWS_TIMES and len(traced.regimes) == 3


def test_a_grouped_gemm_takes_the_table_of_the_rows_of_one_of_its_problems():
    # a fused-MoE call priced by the GEMM class: 320 rows over 32 experts are GEMMs of 10 rows (m <= 16); over 4
    # experts, of 80 (above 64); 33 rows over 2 experts, of 17 rounded up (17-64); no groups: one GEMM of 320
    tm = TimeModel("x", {"gemm_fp8": BY_ROWS})
    cases = [(320, 32, 1e-6), (320, 4, 3e-6), (33, 2, 2e-6), (32, 2, 1e-6), (320, 0, 3e-6)]
    assert [expected(tm, KernelWork("moe_fp8", 0.0, 0.0, gemm_rows=r, gemm_groups=g))[0] for r, g, _ in cases] == \
        [t for *_, t in cases]
    rows, groups = (np.array([c[i] for c in cases]) for i in (0, 1))
    t, _ = expected(tm, KernelWork("moe_fp8", np.zeros(5), np.zeros(5), gemm_rows=rows, gemm_groups=groups))
    assert t.tolist() == [t for *_, t in cases]
    traced = Traced(lambda a, b: {"t": expected(tm, KernelWork("moe_fp8", 0.0, 0.0, gemm_rows=a * b,
                                                                gemm_groups=b))[0]}, ("a", "b"))
    assert [traced(a, b)["t"] for a, b in ((10, 32), (80, 4), (17, 2))] == [1e-6, 3e-6, 2e-6]


def test_a_fused_kernel_pays_the_latency_of_its_gemms_rows_table():
    tm = TimeModel("x", {"gemm_fp8": BY_ROWS, "norm": ClassTiming(latency_s=7e-6)})
    works = [KernelWork("norm", 0.0, 0.0), KernelWork("gemm_fp8", 0.0, 0.0, gemm_rows=20)]
    assert expected_fused(tm, works, "gemm_fp8")[0] == 2e-6
    assert expected_fused(tm, works)[0] == 7e-6  # a norm's kernel: its own latency


@pytest.mark.parametrize("by_rows", [((64, ClassTiming()), (16, ClassTiming())), ((16, ClassTiming()),) * 2,
                                     ((16, BY_ROWS),)])
def test_tables_by_rows_must_rise_and_have_none_of_their_own(by_rows):
    with pytest.raises(OpgraphError, match="rising bounds"):
        ClassTiming(by_rows=by_rows)
