"""Measured expert-parallel all-to-alls (ep_dispatch, ep_combine rows): rebuilt with the ops a MoE model uses, priced
by their own time class (all_to_all) whose parameters are recovered from noisy synthetic measurements, and a
calibration without that class prices them by its all-reduce fit (collective), as before the class existed."""

import json
import random

import attrs
import numpy as np
import pytest
from userland import opgraph

from opgraph import hardware
from opgraph.analysis.calibrate import calibrate
from opgraph.analysis.validate import validate
from opgraph.core.graph import GraphBuilder
from opgraph.core.tensor import DTYPES, Precision
from opgraph.pricing.kinds import classify, op_class
from opgraph.pricing.timing import ROOFLINE, ClassTiming, TimeModel
from opgraph.files.measurements import Measurement
from opgraph.hardware.calibration import parse, write

BARE = attrs.evolve(hardware.load("h100-sxm"), timing=ROOFLINE)
LINK, STEP = 450e9, 0.7e-6  # the H100 SXM spec: NVLink 4 each way, an assumed 0.7 us a collective step
A2A_TRUE = {"latency_s": 40e-6, "link_efficiency": 0.55, "per_step_s": 2e-6}
HEADER = "class,dtype,m,gpus,elements,tokens,top_k,hidden,time_us,source\n"


def wire_bytes(gpus: int, tokens: int, top_k: int, hidden: int, width: int = 2) -> float:
    """Per GPU: (n-1)/n of its tokens x top_k rows of `hidden` values leave for the other GPUs (uniform routing)."""
    return (gpus - 1) / gpus * tokens * top_k * hidden * width


def a2a_time(gpus, tokens, top_k, hidden, latency_s, link_efficiency, per_step_s) -> float:
    """The time model's all-to-all: a fixed cost, n-1 pairwise steps, and the wire bytes at a share of the link."""
    return latency_s + (gpus - 1) * per_step_s + wire_bytes(gpus, tokens, top_k, hidden) / (LINK * link_efficiency)


def all_to_alls(n: int, seed: int = 1) -> list[Measurement]:
    """Dispatch and combine rows of random shapes within one node, timed by the true parameters x 3% lognormal noise."""
    rng, noise = random.Random(seed), np.random.default_rng(seed).normal(0, 0.03, n)
    rows = []
    for i in range(n):
        shape = {"gpus": rng.choice([2, 4, 8]), "tokens": rng.choice([2 ** p for p in range(17)]),
                 "top_k": rng.choice([1, 2, 6, 8]), "hidden": rng.choice([2048, 4096, 7168])}
        kind = rng.choice(["ep_dispatch", "ep_combine"])
        rows.append(Measurement(kind, "bf16", shape, a2a_time(**shape, **A2A_TRUE) * float(np.exp(noise[i]))))
    return rows


def test_all_to_all_parameters_are_recovered_from_noisy_measurements(tmp_path):
    result = calibrate(all_to_alls(400), BARE, holdout=0.25, seed=3)
    [fit] = result.classes  # dispatch and combine rows are fitted together, as the one class that prices them
    assert fit.kind == "all_to_all"
    assert fit.params.latency_s == pytest.approx(40e-6, rel=0.1)
    assert fit.params.link_efficiency == pytest.approx(0.55, rel=0.05)
    assert fit.params.per_step_s == pytest.approx(2e-6, rel=0.3)
    assert fit.after.median < 0.04 < fit.before.median
    back = parse(write(result.model, tmp_path / "c.toml")).classes["all_to_all"]
    assert back.link_efficiency == pytest.approx(fit.params.link_efficiency)
    assert back.latency_s == pytest.approx(fit.params.latency_s, rel=1e-4)


def test_the_all_to_all_fit_leaves_the_all_reduce_fit_as_it_was():
    """Appended all-to-all rows fit their own class: the collective's parameters and held-out rows do not move."""
    from test_calibrate import all_reduces
    alone = calibrate(all_reduces(300), BARE, holdout=0.25, seed=3)
    both = calibrate(all_reduces(300) + all_to_alls(200), BARE, holdout=0.25, seed=3)
    fits = {c.kind: c for c in both.classes}
    assert list(fits) == ["all_to_all", "collective"]
    assert fits["collective"].params == alone.classes[0].params
    assert fits["collective"].after == alone.classes[0].after


def test_an_all_to_all_rows_roofline_is_its_wire_bytes_on_the_specs_links(tmp_path):
    """8 GPUs, 128 tokens each to its top 8 experts, 7,168 bf16 values a token, on H100 SXM NVLink: the roofline is
    the ideal, 7/8 x 128 x 8 x 7,168 x 2 bytes (12.8 MB) at 450 GB/s, for dispatch and combine alike (the spec's 7
    pairwise steps of 0.7 us are latency: the expected time's); an fp8 row sends half the bytes."""
    (tmp_path / "m.csv").write_text(HEADER + "ep_dispatch,bf16,,8,,128,8,7168,60,x\n"
                                             "ep_combine,bf16,,8,,128,8,7168,50,x\n"
                                             "ep_dispatch,fp8,,8,,128,8,7168,40,x\n")
    r = opgraph("validate", str(tmp_path / "m.csv"), "--hardware", "h100-sxm", "--format", "json")
    assert r.returncode == 0, r.stderr
    dispatch, combine, fp8 = json.loads(r.stdout)["rows"]
    wire = 7 / 8 * 128 * 8 * 7168 * 2
    assert wire == 12_845_056
    assert dispatch["roofline_s"] == pytest.approx(wire / LINK, rel=1e-9)
    assert combine["roofline_s"] == pytest.approx(wire / LINK, rel=1e-9)
    assert fp8["roofline_s"] == pytest.approx(wire / 2 / LINK, rel=1e-9)
    assert dispatch["regime"] == "communication"
    # and two GPUs, one token, one expert: half a token on the wire; uncalibrated, one step more in the expected time
    v = validate([Measurement("ep_combine", "bf16", {"gpus": 2, "tokens": 1, "top_k": 1, "hidden": 4096}, 1e-5)], BARE)
    assert float(v.roofline_s[0]) == pytest.approx(4096 / LINK, rel=1e-9)
    assert float(v.expected_s[0]) == pytest.approx(STEP + 4096 / LINK, rel=1e-9)


@pytest.mark.parametrize("body, says", [
    ("ep_dispatch,bf16,,8,,,8,7168,10,\n", "row 1, column 'tokens': a ep_dispatch row needs it"),
    ("ep_combine,bf16,,8,,128,8,,10,\n", "row 1, column 'hidden': a ep_combine row needs it"),
    ("ep_dispatch,bf16,4,8,,128,8,7168,10,\n", "row 1, column 'm': a ep_dispatch row does not use it"),
    ("ep_combine,bf16,,8,1024,128,8,7168,10,\n", "row 1, column 'elements': a ep_combine row does not use it"),
    ("ep_dispatch,bf16,,1,,128,8,7168,10,\n", "row 1, column 'gpus' must be an integer from 2 to 1,024"),
    ("ep_dispatch,bf16,,8,,128,0,7168,10,\n", "row 1, column 'top_k' must be an integer from 1"),
    ("ep_dispatch,bf16,,8,,12x,8,7168,10,\n", "row 1, column 'tokens': '12x' is not a positive integer"),
    ("all_reduce,bf16,,8,1024,128,,,10,\n", "row 1, column 'tokens': a all_reduce row does not use it"),
])
def test_bad_all_to_all_rows_name_the_row_and_the_column(tmp_path, body, says):
    (tmp_path / "m.csv").write_text(HEADER + body)
    r = opgraph("validate", str(tmp_path / "m.csv"))
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_too_few_all_to_all_rows_to_fit_names_the_class_and_its_rows():
    with pytest.raises(Exception, match=r"class 'all_to_all' \(ep_combine and ep_dispatch rows\) has .* a fit needs"):
        calibrate(all_to_alls(6), BARE)


def ep_graph(group: int = 8):
    b = GraphBuilder(Precision.uniform(DTYPES["bf16"]), name="ep")
    x = b.input("x", (16, 4096))
    y = b.ep_dispatch("dispatch", x, group=group, top_k=4, rows=64, out="y")
    b.ep_combine("combine", y, group=group, top_k=4, tokens=(16,), out="back")
    b.all_reduce("ar", b.input("h", (16, 4096)), group=group, out="summed")
    return b.build()


def test_all_to_alls_are_their_own_class_and_other_collectives_stay_collective():
    ops = ep_graph().ops
    assert classify([ops["dispatch"]]) == classify([ops["combine"]]) == "all_to_all"
    assert classify([ops["ar"]]) == "collective"
    assert classify([ops["ar"], ops["dispatch"]]) == "all_to_all"
    assert [op_class(ops[n], "prefill_attention") for n in ("dispatch", "combine", "ar")] == \
        ["all_to_all", "all_to_all", "collective"]


COLLECTIVE = ClassTiming(latency_s=4e-6, link_efficiency=0.7, per_step_s=1e-7)
OWN = ClassTiming(latency_s=50e-6, link_efficiency=0.5, per_step_s=1e-6)
ROW = Measurement("ep_dispatch", "bf16", {"gpus": 8, "tokens": 128, "top_k": 8, "hidden": 7168}, 1e-4)


def priced(tm: TimeModel) -> float:
    return float(validate([ROW], attrs.evolve(BARE, timing=tm)).expected_s[0])


def test_a_calibration_file_without_an_all_to_all_table_prices_it_by_its_collective_table(tmp_path):
    (tmp_path / "old.toml").write_text("name = 'fitted before all-to-alls were measured'\n[gemm]\nlatency_us = 3\n"
                                       "[collective]\nlatency_us = 4\nlink_efficiency = 0.7\nper_step_us = 0.1\n")
    old = parse(tmp_path / "old.toml")
    assert "all_to_all" not in old.classes and old.of("all_to_all") == old.classes["collective"]
    expected = a2a_time(8, 128, 8, 7168, 4e-6, 0.7, 1e-7)
    assert priced(old) == pytest.approx(expected, rel=1e-9)
    assert priced(TimeModel("c", {"collective": COLLECTIVE})) == pytest.approx(expected, rel=1e-9)
    # its own table, where the file has one
    assert priced(TimeModel("c", {"collective": COLLECTIVE, "all_to_all": OWN})) == \
        pytest.approx(a2a_time(8, 128, 8, 7168, 50e-6, 0.5, 1e-6), rel=1e-9)
    # neither: "default", then the roofline (the spec's alpha-beta)
    assert TimeModel("d", {"default": OWN}).of("all_to_all") == OWN
    roofline = 7 * STEP + wire_bytes(8, 128, 8, 7168) / LINK
    assert priced(TimeModel("g", {"gemm": ClassTiming(latency_s=3e-6)})) == pytest.approx(roofline, rel=1e-9)


def test_a_moe_model_prices_its_dispatch_by_the_all_to_all_table_where_there_is_one(tmp_path):
    """The same --ep model under two calibrations that differ only in their [all_to_all] table (a file without one
    takes the shipped file's): only the kernels that hold the all-to-alls (the combine fuses with the weighted sum and
    the residual add after it) move."""
    base = "[gemm]\nlatency_us = 3\n[collective]\nlatency_us = 4\nlink_efficiency = 0.7\nper_step_us = 0.1\n"
    (tmp_path / "old.toml").write_text(base)
    (tmp_path / "new.toml").write_text(base + "[all_to_all]\nlatency_us = 500\nlink_efficiency = 0.5\nper_step_us = 1\n")

    def ops(calibration):
        r = opgraph("report", "mixtral-8x7b", "--ep", "8", "--dp", "8", "--phase", "decode",
                    "--calibration", str(tmp_path / calibration), "--format", "json")
        assert r.returncode == 0, r.stderr
        return {op["name"]: op for block in json.loads(r.stdout)["phases"]["decode"]["blocks"] for op in block["ops"]}

    old, new = ops("old.toml"), ops("new.toml")
    a2a_kernels = {op["kernel"] for op in old.values() if op["fn"] in ("ep_dispatch", "ep_combine")}
    moved = {name for name in old if old[name]["expected_s"] != pytest.approx(new[name]["expected_s"], rel=1e-12)}
    assert {"dispatch", "combine_back"} <= moved
    assert {old[name]["kernel"] for name in moved} == a2a_kernels
    assert new["dispatch"]["expected_s"] > old["dispatch"]["expected_s"]  # 500 us fixed against the shipped 55 us


def test_the_shipped_calibrations_with_measured_all_to_alls_state_them_and_the_others_fall_back():
    for gpu in ("h100-sxm", "h200", "b200", "gb200", "b300", "gb300"):
        tm = hardware.load(gpu).timing
        assert {"all_to_all", "collective"} <= set(tm.classes), gpu
        assert "all_to_all" in tm.fit and "DeepEP" in tm.source, gpu
        assert tm.of("all_to_all") == tm.classes["all_to_all"] != tm.classes["collective"]
    for gpu in ("a100-sxm", "l40s"):  # the package has no all-to-all table for these: their collective (if any)
        tm = hardware.load(gpu).timing
        assert "all_to_all" not in tm.classes and tm.of("all_to_all") == tm.of("collective"), gpu
