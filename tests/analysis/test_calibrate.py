"""`opgraph calibrate`: synthetic measurements generated from known parameters (with noise) are fitted back to
those parameters; calibration files round-trip and bad ones name the file, the table and the field."""

import random

import attrs
import numpy as np
import pytest
from userland import opgraph

from opgraph import hardware
from opgraph.analysis.calibrate import calibrate
from opgraph.analysis.validate import work_of, features, validate
from opgraph.pricing.timing import ROOFLINE, ClassTiming, KernelWork, TimeModel, expected
from opgraph.errors import OpgraphError
from opgraph.files.measurements import Measurement
from opgraph.hardware.calibration import parse, write

BARE = attrs.evolve(hardware.load("h100-sxm"), timing=ROOFLINE)
TRUE = {"gemm": ClassTiming(latency_s=4e-6, compute_efficiency=0.75, memory_efficiency=0.85, overlap=0.6),
        "decode_attention": ClassTiming(latency_s=9e-6, compute_efficiency=0.7, memory_efficiency=0.9, overlap=0.8,
                                        per_row_s=3e-8)}


def synthetic(n: int, seed: int = 1) -> list[Measurement]:
    """Kernels of random shapes whose 'measured' times are the model's with the TRUE parameters, times noise of
    about 3% (lognormal)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        if rng.random() < 0.5:
            shape = {"m": rng.choice([1, 4, 16, 64, 256, 1024, 4096, 16384]), "n": rng.choice([1024, 4096, 14336]),
                     "k": rng.choice([1024, 4096, 8192])}
            rows.append(Measurement("gemm", "bf16", shape, 1.0))
        else:
            shape = {"batch": rng.choice([1, 8, 32, 128]), "context": rng.choice([1, 64, 1024, 8192, 32768]),
                     "heads": 32, "kv_heads": rng.choice([1, 8, 32]), "head_dim": 128}
            rows.append(Measurement("decode_attention", "bf16", shape, 1.0))
    f = features(rows, BARE)
    kinds = np.array([m.kind for m in rows])
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.03, len(rows)))
    times = np.zeros(len(rows))
    for kind, params in TRUE.items():
        sel = kinds == kind
        t, _ = expected(TimeModel("true", {kind: params}), work_of(kind, f, sel))
        times[sel] = t * noise[sel]
    return [attrs.evolve(m, time_s=float(t)) for m, t in zip(rows, times)]


def test_known_parameters_are_recovered_from_noisy_measurements():
    result = calibrate(synthetic(1200), BARE, holdout=0.25, seed=3)
    fitted = {c.kind: c for c in result.classes}
    for kind, truth in TRUE.items():
        p = fitted[kind].params
        assert p.latency_s == pytest.approx(truth.latency_s, rel=0.1), kind
        assert p.memory_efficiency == pytest.approx(truth.memory_efficiency, rel=0.05), kind
        assert fitted[kind].after.median < 0.04  # the noise floor, held out
        assert fitted[kind].before.median > 0.2  # the roofline was far off
    assert fitted["gemm"].params.compute_efficiency == pytest.approx(0.75, rel=0.05)
    assert fitted["decode_attention"].params.per_row_s == pytest.approx(3e-8, rel=0.25)


def test_a_calibration_file_round_trips_and_validate_uses_it(tmp_path):
    result = calibrate(synthetic(600), BARE, holdout=0.25, seed=3, source="synthetic")
    path = write(result.model, tmp_path / "x.toml")
    back = parse(path)
    assert set(back.classes) == {"gemm", "decode_attention"} and back.fit == result.model.fit
    for kind in back.classes:
        assert back.classes[kind].memory_efficiency == pytest.approx(result.model.classes[kind].memory_efficiency)
    r = opgraph("report", "--phase", "decode", "--calibration", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    v = validate(synthetic(200, seed=9), attrs.evolve(BARE, timing=back))
    assert v.stats["expected"]["all"]["all"].median < 0.05 < v.stats["roofline"]["all"]["all"].median


def test_the_cli_fits_writes_and_reports_held_out_error(tmp_path):
    path = tmp_path / "m.csv"
    header = "class,dtype,m,n,k,batch,seq_len,context,heads,kv_heads,head_dim,time_us,source\n"
    lines = []
    for m in synthetic(300):
        s = m.shape
        cells = [m.kind, m.dtype, s.get("m", ""), s.get("n", ""), s.get("k", ""), s.get("batch", ""), "",
                 s.get("context", ""), s.get("heads", ""), s.get("kv_heads", ""), s.get("head_dim", ""),
                 repr(m.time_s * 1e6), "synthetic"]
        lines.append(",".join(map(str, cells)))
    path.write_text(header + "\n".join(lines) + "\n")
    r = opgraph("calibrate", str(path), "--out", str(tmp_path / "fit.toml"), "--holdout", "0.3")
    assert r.returncode == 0, r.stderr
    assert "held-out error" in r.stdout and (tmp_path / "fit.toml").is_file()
    assert parse(tmp_path / "fit.toml").calibrated


@pytest.mark.parametrize("text, says", [
    ("name = 'x'\n", "no kernel class tables"),
    ("[gemm]\nlatency_us = -1\n", "[gemm] latency_s must be a finite number >= 0"),
    ("[gemm]\ncompute_efficiency = 1.5\n", "[gemm] compute_efficiency must be a finite number > 0 and <= 1"),
    ("[gemm]\nspeed = 3\n", "[gemm]: unknown field(s) speed"),
    ("[gemm]\noverlap = 'half'\n", "[gemm] overlap must be a number"),
    ("exp_rate_per_s = -3\n[gemm]\noverlap = 1\n", "exp_rate_per_s must be a positive number"),
    ("size = 3\n", "unknown field 'size'"),
    # tables by rows (ClassTiming.by_rows)
    ("[gemm_fp8]\nlatency_us = 1\n[gemm_fp8.rows_x]\nlatency_us = 1\n", "[gemm_fp8.rows_x] is not a table by rows"),
    ("[gemm_fp8]\nlatency_us = 1\n[gemm_fp8.rows_0]\nlatency_us = 1\n", "[gemm_fp8.rows_0] is not a table by rows"),
    ("[gemm]\n[gemm.small]\nlatency_us = 1\n", "[gemm.small] is not a table by rows"),
    ("[gemm]\n[gemm.rows_16]\nspeed = 1\n", "[gemm.rows_16]: unknown field(s) speed"),
])
def test_bad_calibration_files(tmp_path, text, says):
    (tmp_path / "c.toml").write_text(text)
    r = opgraph("report", "--calibration", str(tmp_path / "c.toml"))
    assert r.returncode == 2 and says in r.stderr and str(tmp_path / "c.toml") in r.stderr, r.stderr


def test_too_few_rows_to_fit_is_an_error():
    with pytest.raises(Exception, match="a fit needs at least"):
        calibrate(synthetic(10), BARE)


def test_the_shipped_h100_calibration_is_installed_and_states_its_fit():
    tm = hardware.load("h100-sxm").timing
    assert tm.calibrated and {"gemm", "prefill_attention", "decode_attention"} <= set(tm.classes)
    assert "aiconfigurator-core" in tm.source and "held-out" in tm.fit
    assert not hardware.load("v100").timing.calibrated  # no calibration: the expected time is the roofline


def test_the_rtx_pro_6000_calibration_prices_its_measured_kernels_far_better_than_the_roofline():
    # vLLM 0.24.0's kernels on an RTX PRO 6000 Server Edition (aiconfigurator-core 0.12.0), every 25th row and every
    # all-reduce: the shipped fit against the roofline it replaces, class by class
    from pathlib import Path
    from opgraph.files.measurements import read
    tm = hardware.load("rtx-pro-6000").timing
    assert tm.calibrated and set(tm.classes) == {"gemm", "gemm_fp8", "prefill_attention", "decode_attention",
                                                 "collective"}
    assert "rtx-pro-6000-vllm.csv.gz" in tm.source and "held-out" in tm.fit
    rows = read(Path(__file__).parents[2] / "benchmarks" / "data" / "rtx-pro-6000-vllm.csv.gz")
    sample = rows[::25] + [m for m in rows if m.kind == "all_reduce"]
    stats = validate(sample, hardware.load("rtx-pro-6000")).stats
    fitted, roofline = stats["expected"]["class"], stats["roofline"]["class"]
    assert set(fitted) == {"gemm", "prefill_attention", "decode_attention", "all_reduce"}
    for kind, s in fitted.items():
        assert s.median < roofline[kind].median / 2, kind
    assert fitted["gemm"].median <= 0.10 and fitted["prefill_attention"].median <= 0.15


@pytest.mark.parametrize("gpu", ["gb200", "b300", "gb300"])
def test_the_rack_and_ultra_blackwells_price_their_measured_kernels_far_better_than_the_roofline(gpu):
    # vLLM 0.24.0's kernels on each GPU (aiconfigurator-core 0.12.0), every 25th row and every all-reduce and
    # all-to-all: the shipped fit against the roofline these specs had before, class by class
    from pathlib import Path
    from opgraph.files.measurements import read
    tm = hardware.load(gpu).timing
    assert tm.calibrated and {"gemm", "gemm_fp8", "prefill_attention", "decode_attention", "collective",
                              "all_to_all", "mla_decode_attention"} <= set(tm.classes)
    assert f"{gpu}-vllm.csv.gz" in tm.source and "held-out" in tm.fit
    rows = read(Path(__file__).parents[2] / "benchmarks" / "data" / f"{gpu}-vllm.csv.gz")
    sample = rows[::25] + [m for m in rows if m.kind == "all_reduce" or m.kind.startswith("ep_")]
    stats = validate(sample, hardware.load(gpu)).stats
    fitted, roofline = stats["expected"]["class"], stats["roofline"]["class"]
    assert {"gemm", "prefill_attention", "decode_attention", "all_reduce", "ep_dispatch", "ep_combine"} <= set(fitted)
    for kind, s in fitted.items():
        assert s.median < roofline[kind].median / 2, kind


def test_without_scipy_calibrate_says_how_to_install(tmp_path):
    from userland import python
    code = ("import sys; sys.modules['scipy'] = None\n"
            "from opgraph.cli import main\n"
            f"sys.exit(main(['calibrate', {str(tmp_path / 'm.csv')!r}, '--out', {str(tmp_path / 'x.toml')!r}]))")
    rows = "\n".join(f"gemm,bf16,{m},4096,4096,,,,,,,{10 + m},x" for m in range(1, 40))
    (tmp_path / "m.csv").write_text("class,dtype,m,n,k,batch,seq_len,context,heads,kv_heads,head_dim,time_us,source\n"
                                    + rows + "\n")
    r = python(code)
    assert r.returncode == 2 and 'pip install "opgraph[fit]"' in r.stderr and "Traceback" not in r.stderr, r.stderr


# All-reduce kernels, timed by hand as the engines' custom kernels run them (vLLM's custom_all_reduce.cuh): over n
# GPUs either two stages, a reduce-scatter then an all-gather, moving 2(n-1)/n of the buffer per GPU (a ring's bytes),
# or one stage, each GPU reading the n - 1 other whole buffers, whichever is faster; each stage a fixed cost, the bytes
# over the H100 SXM's 450 GB/s NVLink at a fraction of it (memory traffic, 2 x the buffer at 3,350 GB/s, is always
# less here).
LINK, STAGES_TRUE = 450e9, {"latency_s": 2e-6, "link_efficiency": 0.7, "per_step_s": 3e-6}


def all_reduce_time(gpus: int, elements: int, latency_s: float, link_efficiency: float, per_step_s: float) -> float:
    buffer, link = 2 * elements, LINK * link_efficiency  # bf16
    two = 2 * per_step_s + 2 * (gpus - 1) / gpus * buffer / link
    one = per_step_s + (gpus - 1) * buffer / link
    return latency_s + min(one, two)


def all_reduces(n: int, seed: int = 1) -> list[Measurement]:
    rng, noise = random.Random(seed), np.random.default_rng(seed).normal(0, 0.03, n)
    rows = []
    for i in range(n):
        shape = {"gpus": rng.choice([2, 4, 8]), "elements": rng.choice([2 ** p for p in range(7, 29)])}
        time = all_reduce_time(**shape, **STAGES_TRUE) * float(np.exp(noise[i]))
        rows.append(Measurement("all_reduce", "bf16", shape, time))
    return rows


def test_all_reduce_parameters_are_recovered_and_priced_as_the_collective_class(tmp_path):
    result = calibrate(all_reduces(300), BARE, holdout=0.25, seed=3)
    back = parse(write(result.model, tmp_path / "c.toml")).classes["collective"]
    assert back.per_step_s == pytest.approx(result.model.classes["collective"].per_step_s, rel=1e-4)
    [fit] = result.classes
    assert fit.kind == "collective"  # the class that prices every collective op in a model
    assert fit.params.latency_s == pytest.approx(2e-6, rel=0.2)
    assert fit.params.link_efficiency == pytest.approx(0.7, rel=0.05)
    assert fit.params.per_step_s == pytest.approx(3e-6, rel=0.1)
    assert fit.after.median < 0.04 < fit.before.median


def test_a_calibrated_all_reduce_is_timed_by_its_fitted_stages_the_cheaper_way():
    params = ClassTiming(**STAGES_TRUE)
    row = Measurement("all_reduce", "bf16", {"gpus": 8, "elements": 2 ** 20}, 1e-5)
    v = validate([row], attrs.evolve(BARE, timing=TimeModel("t", {"collective": params})))
    assert float(v.expected_s[0]) == pytest.approx(all_reduce_time(8, 2 ** 20, **STAGES_TRUE), rel=1e-9)
    # 2^20 values over 8 GPUs: two stages (7/4 of the 2 MiB buffer on the wire) beat one (7 buffers)
    assert float(v.expected_s[0]) == pytest.approx(2e-6 + 2 * 3e-6 + 2 * 7 / 8 * 2 ** 21 / (LINK * 0.7), rel=1e-9)
    small = Measurement("all_reduce", "bf16", {"gpus": 8, "elements": 2 ** 10}, 1e-5)  # 2 KiB: one stage is faster
    one = validate([small], attrs.evolve(BARE, timing=TimeModel("t", {"collective": params})))
    assert float(one.expected_s[0]) == pytest.approx(2e-6 + 3e-6 + 7 * 2 ** 11 / (LINK * 0.7), rel=1e-9)
    # the roofline is the ideal: the wire bytes at the full link, without the spec's 0.7 us a step
    assert float(v.roofline_s[0]) == pytest.approx(2 * 7 / 8 * 2 ** 21 / LINK, rel=1e-9)
    uncalibrated = validate([row], BARE)  # without a time model, the spec's alpha-beta on a ring: 14 steps
    assert float(uncalibrated.expected_s[0]) == pytest.approx(14 * 0.7e-6 + 2 * 7 / 8 * 2 ** 21 / LINK, rel=1e-9)
    assert v.regime == ("communication",)


PREFILL_TRUE = ClassTiming(latency_s=12e-6, compute_efficiency=0.9, memory_efficiency=0.4, overlap=0.2,
                           per_row_s=2e-8, special_overlap=0.3)


def test_prefill_attentions_exponential_overlap_and_row_cost_are_recovered():
    rng = random.Random(5)
    rows = [Measurement("prefill_attention", "bf16",
                        {"batch": rng.choice([1, 4, 16, 64, 256]), "seq_len": rng.choice([1, 64, 512, 2048, 8192]),
                         "heads": 32, "kv_heads": rng.choice([1, 8, 32]), "head_dim": rng.choice([64, 128])}, 1.0)
            for _ in range(600)]
    f = features(rows, BARE)
    noise = np.exp(np.random.default_rng(5).normal(0, 0.03, len(rows)))
    t, _ = expected(TimeModel("true", {"prefill_attention": PREFILL_TRUE}, 3.9e12),
                    work_of("prefill_attention", f))
    rows = [attrs.evolve(m, time_s=float(x)) for m, x in zip(rows, t * noise)]
    fit = calibrate(rows, BARE, holdout=0.25, seed=3, exp_rate=3.9e12).classes[0]
    assert fit.params.special_overlap == pytest.approx(0.3, abs=0.1)
    assert fit.params.per_row_s == pytest.approx(2e-8, rel=0.25)
    assert fit.params.latency_s == pytest.approx(12e-6, rel=0.1)
    assert fit.after.median < 0.04
    without = calibrate(rows, BARE, holdout=0.25, seed=3).classes[0]  # no rate: nothing to overlap, not fitted
    assert without.params.special_overlap == 1.0


def test_an_explicit_held_mask_holds_out_exactly_those_rows():
    rows = synthetic(400, seed=4)
    # the largest GEMMs and the longest decode contexts, never seen by the fit
    held = [m.shape["m"] >= 4096 if m.kind == "gemm" else m.shape["context"] == 32768 for m in rows]
    fit = calibrate(rows, BARE, held=held)
    gemm = next(c for c in fit.classes if c.kind == "gemm")
    held_gemms = sum(h for h, m in zip(held, rows) if m.kind == "gemm")
    assert gemm.after.count == held_gemms and gemm.train == sum(m.kind == "gemm" for m in rows) - held_gemms
    assert gemm.after.median < 0.05  # the model's form carries over to sizes it was not fitted on
    with pytest.raises(OpgraphError, match="held marks 3 rows; there are 400"):
        calibrate(rows, BARE, held=[True, False, True])


def test_a_vector_tables_l2_stretch_round_trips_and_other_tables_do_not_write_one(tmp_path):
    """cache_us and cache_efficiency are written where a class has an L2 stretch (the vector classes) and read back
    to the same seconds; a table without one (cache_s 0) writes neither key."""
    norm = ClassTiming(latency_s=2e-6, memory_efficiency=0.82, cache_s=3.25e-6, cache_efficiency=1.89)
    path = write(TimeModel("t", {"norm": norm, "gemm": ClassTiming(latency_s=4e-6)}), tmp_path / "c.toml")
    text = path.read_text()
    assert "cache_us = 3.25" in text and "cache_efficiency = 1.89" in text and text.count("cache_us") == 1
    back = parse(path).classes
    assert back["norm"].cache_s == pytest.approx(3.25e-6) and back["norm"].cache_efficiency == 1.89
    assert back["gemm"].cache_s == 0 and back["gemm"].cache_efficiency == 1


def test_a_moe_tables_cost_per_tile_round_trips_in_nanoseconds(tmp_path):
    path = write(TimeModel("t", {"moe": ClassTiming(latency_s=3e-5, per_tile_s=1.44e-9),
                                 "gemm": ClassTiming(latency_s=4e-6)}), tmp_path / "c.toml")
    assert "per_tile_ns = 1.44" in path.read_text() and path.read_text().count("per_tile_ns") == 1
    assert parse(path).classes["moe"].per_tile_s == pytest.approx(1.44e-9)


def test_the_cli_shows_a_vector_classs_l2_stretch_in_bytes(tmp_path):
    """Fitted on the H200's measured norms, the table shows the L2 stretch in MB: the written cache_us at the H200's
    datasheet 4,800 GB/s, and its pace as a multiple of that bandwidth."""
    import re
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "h200-opgraph.csv.gz"
    r = opgraph("calibrate", str(data), "--hardware", "h200", "--out", str(tmp_path / "c.toml"))
    assert r.returncode == 0, r.stderr
    norm = next(line for line in r.stdout.splitlines() if line.startswith("norm "))
    mb, pace = re.search(r"([\d,.]+) at ([\d.]+)x +-$", norm).groups()
    p = parse(tmp_path / "c.toml").classes["norm"]
    assert float(mb.replace(",", "")) == pytest.approx(p.cache_s * 4800e9 / 1e6, abs=0.05)
    assert float(pace) == pytest.approx(p.cache_efficiency, abs=0.005)
    gemm = next(line for line in r.stdout.splitlines() if line.startswith("gemm "))
    assert gemm.split()[-2:] == ["-", "-"]  # no L2 stretch (not a vector class), no cost per tile (not a MoE call)


# fp8 GEMMs whose kernel changes at 16 rows (as vLLM's CUTLASS dispatch on Hopper): a slow fixed cost and a low
# bandwidth share up to 16 rows, another table above
TRUE_BY_ROWS = ClassTiming(latency_s=8e-6, compute_efficiency=0.7, memory_efficiency=0.9, overlap=0.5,
                           by_rows=((16, ClassTiming(latency_s=3e-6, compute_efficiency=0.5, memory_efficiency=0.6,
                                                     overlap=0.9)),))


def fp8_gemms(n: int, seed: int = 1) -> list[Measurement]:
    """fp8 GEMMs of random shapes 'measured' as TRUE_BY_ROWS prices them, times about 3% of noise."""
    rng = random.Random(seed)
    rows = [Measurement("gemm", "fp8", {"m": rng.choice([1, 2, 4, 8, 16, 32, 128, 1024, 8192]),
                                        "n": rng.choice([1024, 4096, 14336]), "k": rng.choice([1024, 4096, 8192])}, 1.0)
            for _ in range(n)]
    f = features(rows, BARE)
    t, _ = expected(TimeModel("true", {"gemm_fp8": TRUE_BY_ROWS}), work_of("gemm_fp8", f))
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.03, len(rows)))
    return [attrs.evolve(m, time_s=float(x)) for m, x in zip(rows, t * noise)]


def test_tables_by_rows_are_each_fitted_on_their_rows_and_round_trip(tmp_path):
    rows = fp8_gemms(600)
    one = {c.kind: c for c in calibrate(rows, BARE, holdout=0.25, seed=3).classes}["gemm_fp8"]
    result = calibrate(rows, BARE, holdout=0.25, seed=3, by_rows={"gemm_fp8": (16,)})
    fit = {c.kind: c for c in result.classes}["gemm_fp8"]
    (bound, small), = fit.params.by_rows
    assert bound == 16 and fit.params.by_rows and not small.by_rows
    assert small.latency_s == pytest.approx(3e-6, rel=0.1) and fit.params.latency_s == pytest.approx(8e-6, rel=0.1)
    assert small.memory_efficiency == pytest.approx(0.6, rel=0.05)
    assert fit.after.median < 0.04 < one.after.median  # the noise floor, held out; one table cannot follow both
    back = parse(write(result.model, tmp_path / "x.toml"))
    (bound, again), = back.classes["gemm_fp8"].by_rows
    assert bound == 16 and again.latency_s == pytest.approx(small.latency_s, rel=1e-5)
    assert "[gemm_fp8.rows_16]" in (tmp_path / "x.toml").read_text()


def test_a_range_of_rows_with_too_few_rows_to_fit_is_an_error():
    with pytest.raises(OpgraphError, match="7 training rows with m 1 to 1; a table by rows needs at least 8"):
        calibrate(fp8_gemms(40), BARE, by_rows={"gemm_fp8": (1, 16)})


@pytest.mark.parametrize("arg, says", [
    ("decode_attention=16", "'decode_attention' is not a GEMM class; valid: gemm, gemm_"),
    ("gemm_fp8=64,16", "the row counts must rise"),
    ("gemm_fp8=16,a", "give each class once, with rising row counts"),
    ("gemm_fp8=0", "--by-rows must be"),
])
def test_bad_by_rows_options(tmp_path, arg, says):
    r = opgraph("calibrate", "m.csv", "--out", str(tmp_path / "f.toml"), "--by-rows", arg)
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr
