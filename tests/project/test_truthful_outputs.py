"""Outputs that say which time and which scope they show, and calibration files that behave (issue 18, sections 2
and 3). Expected values come from the report's own definitions checked against each other and from hand counts."""

import json
import random

import pytest

from opgraph import hardware
from opgraph.analysis.calibrate import calibrate
from opgraph.errors import OpgraphError
from opgraph.files.measurements import Measurement
from userland import opgraph


def _json(*args):
    r = opgraph(*args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _keys(tree) -> set:
    if isinstance(tree, dict):
        return set(tree) | set().union(*map(_keys, tree.values()))
    if isinstance(tree, list):
        return set().union(*map(_keys, tree)) if tree else set()
    return set()


@pytest.mark.parametrize("args", [("report", "--tp", "2"), ("sweep", "--batch", "1,8", "--context", "64"),
                                  ("compare", "--fusion", "unfused,fused"),
                                  ("generate", "--prompt", "64", "--output", "4")])
def test_json_names_both_times_and_no_bare_time(args):
    keys = _keys(_json(*args))
    assert not {"time_s", "model_time_s", "tokens_per_s", "share", "ttft_s", "tpot_s"} & keys, keys
    assert {"roofline_s", "expected_s"} <= keys or {"roofline_ttft_s", "expected_ttft_s"} <= keys


def test_every_op_kernel_block_and_model_carries_both_times():
    phase = _json("report", "--phase", "decode")["phases"]["decode"]
    for b in phase["blocks"]:
        for rec in [*b["ops"], *b["kernels"], b["totals"]]:
            assert {"roofline_s", "expected_s", "bound"} <= set(rec), rec
        # a kernel's expected time is the sum of its ops' shares (each op's share is its kernel's, by roofline time)
        for k in b["kernels"]:
            ops = [o for o in b["ops"] if o["kernel"] == k["name"]]
            assert sum(o["expected_s"] for o in ops) == pytest.approx(k["expected_s"], rel=1e-12)
            assert sum(o["roofline_s"] for o in ops) == pytest.approx(k["roofline_s"], rel=1e-12)
        assert sum(o["expected_share"] for o in b["ops"]) == pytest.approx(1.0, rel=1e-9)
    assert {"roofline_s", "expected_s", "expected_tokens_per_s", "roofline_tokens_per_s",
            "expected_tokens_per_s_per_gpu"} <= set(phase["model"])


def test_per_gpu_and_group_throughput_are_each_labelled_and_differ_by_the_gpus():
    """Llama-3-8B at --tp 8, decode at batch 32: the group of 8 makes 32 tokens per step; one GPU an eighth of them."""
    phase = _json("report", "--tp", "8", "--phase", "decode")["phases"]["decode"]
    model, group = phase["model"], phase["group"]
    assert model["expected_tokens_per_s"] == pytest.approx(32 / model["expected_s"], rel=1e-12)
    assert model["expected_tokens_per_s_per_gpu"] == pytest.approx(32 / model["expected_s"] / 8, rel=1e-12)
    assert group["expected_tokens_per_s"] == model["expected_tokens_per_s"]
    text = opgraph("report", "--tp", "8", "--phase", "decode").stdout
    per_gpu, whole = (f"{32 / model['expected_s'] / d:,.0f}" for d in (8, 1))
    assert "tokens/s per GPU" in text and "tokens/s, group of 8" in text
    summary = text.splitlines()[4]  # the decode row of the summary table
    assert per_gpu in summary and whole in summary


def test_the_report_opens_with_its_summary():
    lines = opgraph("report").stdout.splitlines()
    assert lines[0].startswith("opgraph report: llama-3-8b") and len(lines[0]) < 120
    head = "\n".join(lines[:20])
    for word in ("step, expected", "roofline", "tokens/s per GPU", "fits one GPU", "share of step, expected"):
        assert word in head
    assert lines[4].startswith("prefill 32 x 1,024") and lines[5].startswith("decode 32 at 1,024")


def test_ops_fused_away_entirely_have_their_own_verdict():
    """In the fused plan's attention kernel, rope_q and the scores never touch memory: their kernel decides."""
    ops = {o["name"]: o for o in _json("report", "--phase", "prefill")["phases"]["prefill"]["blocks"][0]["ops"]}
    assert ops["rope_q"]["bound"] == ops["qk"]["bound"] == ops["softmax"]["bound"] == "fused"
    assert ops["rope_q"]["bytes"] == 0 and ops["q_proj"]["bound"] == "compute"
    flips = _json("compare", "--fusion", "unfused,fused", "--phase", "prefill")["phases"]["prefill"]["verdict_flips"]
    assert not any("fused" in f["bound"].values() and len(set(f["bound"].values()) - {"fused"}) < 2 for f in flips)


def test_a_calibration_file_overrides_the_shipped_one_class_by_class(tmp_path):
    """A file with only a [gemm] table: GEMMs are priced by it, everything else by the shipped H100 file, and the
    report says which came from where."""
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "mine"\n[gemm]\nlatency_us = 50\n')
    shipped = hardware.load("h100-sxm").timing
    merged = hardware.load("h100-sxm", str(mine)).timing
    assert merged.classes["gemm"].latency_s == pytest.approx(50e-6)
    assert merged.classes["decode_attention"] == shipped.classes["decode_attention"]
    assert set(merged.classes) == set(shipped.classes)
    tm = _json("report", "--calibration", str(mine))["time_model"]
    assert tm["classes"]["gemm"] == str(mine) and "h100-sxm.toml" in tm["classes"]["decode_attention"]
    line = next(x for x in opgraph("report", "--calibration", str(mine)).stdout.splitlines()
                if x.startswith("expected times"))
    assert f"gemm from {mine}" in line and "from shipped h100-sxm.toml" in line


@pytest.mark.parametrize("text, says", [("[gem]\nlatency_us = 3\n", "[gem] is not a kernel class; valid tables: "),
                                        ("[gemm]\nlatency = 3\n", "[gemm]: unknown field(s) latency"),
                                        ("gemm_latency = 3\n", "unknown field 'gemm_latency'")])
def test_unknown_tables_and_keys_in_a_calibration_file_are_errors(tmp_path, text, says):
    (tmp_path / "c.toml").write_text(text)
    r = opgraph("report", "--calibration", str(tmp_path / "c.toml"))
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def _gemm_rows(n: int, seed: int = 0) -> list[Measurement]:
    rng = random.Random(seed)
    return [Measurement("gemm", "bf16", {"m": rng.choice([1, 64, 4096]), "n": 4096, "k": 4096}, rng.uniform(1e-5, 1e-4))
            for _ in range(n)]


def test_calibrate_holds_out_at_least_one_row_of_every_class():
    """A dozen rows at the default 20% hold-out: the seeded draw may hold none out; one is then held anyway."""
    hw = hardware.load("h100-sxm")
    for seed in range(6):
        fit = calibrate(_gemm_rows(12), hw, seed=seed).classes[0]
        assert fit.after.count >= 1 and fit.train + fit.after.count == 12


def test_calibrate_says_which_option_to_change():
    hw = hardware.load("h100-sxm")
    with pytest.raises(OpgraphError, match="has 8 training and 0 held-out rows.*measure at least 9 kernels of it"):
        calibrate(_gemm_rows(8), hw)
    with pytest.raises(OpgraphError, match="give a smaller --holdout"):
        calibrate(_gemm_rows(12), hw, holdout=0.9)


def test_a_registered_op_kind_without_a_class_is_named_in_the_report(tmp_path):
    (tmp_path / "scan_model.py").write_text('''
from opgraph import BF16, Block, GraphBuilder, Model
from opgraph.core import ops

SCAN = ops.register_kind("scan")
ops.register_function("scan_fn")


def build(phase, options=None):
    b = GraphBuilder(BF16, name="layer")
    x = b.input("x", (phase.batch, phase.new_tokens, 1024))
    y = b.linear("proj", x, b.weight("w", (1024, 1024)))
    b.add(ops.Op("scan", SCAN, "scan_fn", (y,), (ops.Tensor("h", y.shape, y.dtype),), 4 * y.numel))
    return Model("scan-model", phase, [Block("layer", 4, b.build())])
''')
    r = opgraph("report", f"{tmp_path / 'scan_model.py'}:build", "--phase", "decode")
    assert r.returncode == 0, r.stderr
    assert "op kind 'scan' (scan) has no kernel class of its own: its expected time is priced as elementwise" in r.stdout
