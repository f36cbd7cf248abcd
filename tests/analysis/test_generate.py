"""End-to-end generation: TTFT is the prefill report, and the decode steps are summed at their own contexts
P .. P+G-2, checked against a hand formula for how a step's time grows with its context and against a sum the
test computes itself."""

import json
import math

import pytest

import attrs

from opgraph.pricing.timing import ROOFLINE
from opgraph import hardware
from opgraph import models
from opgraph import Phase, analyze, strategy
from opgraph.cli import main
from opgraph.analysis.generate import estimate

# The hand formulas below are the roofline's: the H100 without its calibration, whose expected time is the roofline.
H100 = attrs.evolve(hardware.load("h100-sxm"), timing=ROOFLINE)
CALIBRATED = hardware.load("h100-sxm")
LLAMA = models.get("llama-3-8b")
FUSED = strategy("fused")


def decode_time(cfg, batch, context):
    return analyze(cfg.build(Phase.decode(batch, context)), FUSED, H100).totals.time_s


def test_with_a_calibration_every_time_is_the_reports_expected_time():
    g = estimate(LLAMA.build, FUSED, CALIBRATED, batch=4, prompt=300, output=4)
    pre = analyze(LLAMA.build(Phase.prefill(4, 300)), FUSED, CALIBRATED).totals
    assert (g.ttft_s, g.roofline_ttft_s) == (pre.expected_s, pre.time_s) and pre.expected_s > pre.time_s
    for s in g.steps:
        step = analyze(LLAMA.build(Phase.decode(4, s.context)), FUSED, CALIBRATED).totals
        assert (s.time_s, s.roofline_s) == (step.expected_s, step.time_s)


def test_steps_are_every_context_from_the_prompt_on():
    g = estimate(LLAMA.build, FUSED, H100, batch=2, prompt=100, output=5)
    assert [s.context for s in g.steps] == [100, 101, 102, 103]  # G-1 steps: contexts P .. P+G-2
    assert g.memory[-1].phase.past == 103  # the last step; after it the cache holds P+G-1 = 104 tokens


def test_ttft_is_the_prefill_report_including_lm_head_on_the_last_position():
    b, p = 4, 300
    g = estimate(LLAMA.build, FUSED, H100, batch=b, prompt=p, output=3)
    pre = analyze(LLAMA.build(Phase.prefill(b, p)), FUSED, H100)
    assert g.ttft_s == pre.totals.time_s
    head = next(x for x in pre.blocks if x.name == "embed_head")
    lm_head = next(o for o in head.ops if o.name == "lm_head")
    assert lm_head.cost.flops == 2 * b * 4096 * 128_256  # one position per sequence, not all 300


def test_decode_sum_matches_the_hand_formula_for_context_growth():
    """Under the fused plan, one more cached token per sequence adds, in each of the 32 layers, one K row and one
    V row to read (qk and av are memory-bound: B x 1024 x 2 bytes each) and 5 FLOPs per query head to the
    on-chip softmax (vector rate); nothing else depends on the context. So the step time is linear in the
    context and G-1 steps sum to (G-1) t(P) + delta (G-1)(G-2)/2."""
    b, p, g_out = 8, 1000, 40
    delta = 32 * (2 * b * 1024 * 2 / H100.bandwidth + 5 * b * 32 / H100.vector_flops)
    g = estimate(LLAMA.build, FUSED, H100, batch=b, prompt=p, output=g_out)
    first = decode_time(LLAMA, b, p)
    n = g_out - 1
    assert g.steps[0].time_s == first
    assert g.steps[-1].time_s == pytest.approx(first + delta * (n - 1), rel=1e-9)
    assert g.decode_s == pytest.approx(n * first + delta * n * (n - 1) / 2, rel=1e-9)
    assert g.tpot_s == pytest.approx(g.decode_s / n, rel=1e-12)
    assert g.total_s == pytest.approx(g.ttft_s + g.decode_s, rel=1e-12)
    assert g.tokens_per_s == pytest.approx(b * g_out / g.total_s, rel=1e-12)
    assert g.tokens_per_s_per_sequence == pytest.approx(g_out / g.total_s, rel=1e-12)


def test_sliding_window_steps_stop_growing_at_the_window():
    """Mistral reads at most window-1 = 4095 cached positions: steps at contexts 4095 and above cost the same,
    so no single averaged context would give this sum."""
    mistral = models.get("mistral-7b")
    g = estimate(mistral.build, FUSED, H100, batch=2, prompt=4092, output=8)
    t = {s.context: s.time_s for s in g.steps}
    assert list(t) == list(range(4092, 4099))
    assert t[4092] < t[4093] < t[4094] < t[4095]
    assert t[4095] == t[4096] == t[4097] == t[4098]
    assert g.decode_s == pytest.approx(math.fsum(decode_time(mistral, 2, c) for c in range(4092, 4099)), rel=1e-12)


def test_one_output_token_is_prefill_alone():
    g = estimate(LLAMA.build, FUSED, H100, batch=1, prompt=64, output=1)
    assert g.steps == () and g.tpot_s is None and g.total_s == g.ttft_s and len(g.memory) == 1


def run(capsys, *args):
    code = main(["generate", *args])
    return code, capsys.readouterr()


def test_cli_json(capsys):
    code, out = run(capsys, "--prompt", "500", "--output", "6", "--batch", "4", "--format", "json")
    assert code == 0
    d = json.loads(out.out)
    assert (d["model"], d["batch"], d["prompt_tokens"], d["output_tokens"]) == ("llama-3-8b", 4, 500, 6)
    # the CLI's h100-sxm carries its shipped calibration: every time is the report's expected time
    steps = [analyze(LLAMA.build(Phase.decode(4, c)), FUSED, CALIBRATED).totals.expected_s for c in range(500, 505)]
    assert d["decode"]["expected_step_s"] == steps
    assert d["decode"]["roofline_step_s"] == [decode_time(LLAMA, 4, c) for c in range(500, 505)]
    assert (d["decode"]["first_context"], d["decode"]["last_context"]) == (500, 504)
    assert d["decode"]["expected_total_s"] == pytest.approx(sum(steps), rel=1e-12)
    assert d["expected_tpot_s"] == pytest.approx(sum(steps) / 5, rel=1e-12)
    assert d["expected_total_s"] == pytest.approx(d["expected_ttft_s"] + sum(steps), rel=1e-12)
    # one GPU serves the one replica: the group's rate, one GPU's and the replica's are the same
    assert d["expected_tokens_per_s"] == d["expected_tokens_per_s_per_gpu"] == pytest.approx(4 * 6 / d["expected_total_s"], rel=1e-12)
    assert d["roofline_tokens_per_s"] == pytest.approx(4 * 6 / d["roofline_total_s"], rel=1e-12)
    assert d["fits"] is True and [m["phase"] for m in d["memory"]] == ["prefill", "decode"]


def test_cli_table_states_the_convention_and_units(capsys):
    code, out = run(capsys, "--prompt", "2000", "--output", "5", "--batch", "16")
    assert code == 0
    text = out.out
    for needle in ("time to first token", "time per output token", "contexts 2,000..2,003", "tokens/s",
                   "P, P+1, ..., P+G-2", "fits:"):
        assert needle in text


def test_cli_says_plainly_when_it_does_not_fit(capsys):
    code, out = run(capsys, "llama-3.1-405b", "--prompt", "16", "--output", "2", "--batch", "1")
    assert code == 0
    rows = {line.split("  ")[0]: line for line in out.out.splitlines()}
    assert "DOES NOT FIT" in rows["time to first token"] and "DOES NOT FIT" in rows["total time"]


BAD = {"generate": [["--prompt", "0", "--output", "3"], ["--prompt", "8", "--output", "0"], ["--prompt", "8"],
                    ["--prompt", "8", "--output", "2", "--context", "9"], ["--prompt", "8", "--output", "200000"]],
       "memory": [["--batch", "0"], ["--launch-us", "3"], ["--phase", "decode", "--seq-len", "8"],
                  ["--format", "csv"], ["--hardware", "nope"]]}


@pytest.mark.parametrize("argv", [[cmd, *args] for cmd, cases in BAD.items() for args in cases], ids=" ".join)
def test_cli_errors_are_one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


SIZES = {"generate": ["--prompt", "16", "--output", "3"], "memory": ["--seq-len", "64", "--context", "64"]}


@pytest.mark.parametrize("command", SIZES)
@pytest.mark.parametrize("preset", models.names())
def test_every_preset(capsys, preset, command):
    assert main([command, preset, *SIZES[command], "--batch", "2", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    if command == "generate":
        assert d["expected_ttft_s"] > 0 and len(d["decode"]["expected_step_s"]) == 2
    else:
        for ph in d["phases"].values():
            assert ph["kv_cache_bytes"] > 0 and ph["activation_bytes"] > 0 and ph["max_batch"]["batch"] >= 0


def test_compare_says_whether_the_step_fits_under_each_plan():
    """One GPU's memory for the step under each plan, as `opgraph memory` gives it: DeepSeek-V3's 673 GB of
    weights cannot fit one 80 GB GPU under any plan."""
    from opgraph import Phase, hardware, models, strategy
    from opgraph.analysis.compare import compare
    from opgraph.analysis.memory import footprint_of
    hw, model = hardware.load("h100-sxm"), models.get("deepseek-v3").build(Phase.decode(8, 512))
    plans = [strategy("unfused"), strategy("fused")]
    c = compare(model, plans, hw)
    assert [fp.total for fp in c.memory] == [footprint_of(model, p, hw).total for p in plans]
    assert not any(fp.fits for fp in c.memory)


def test_a_parallel_group_generates_every_replicas_batch():
    """TP 4 x DP 2 on 8 GPUs: two replicas each generate their batch in the same time, so the group's throughput
    is twice one replica's, and per GPU an eighth of that."""
    from opgraph import choices, hardware, models, strategy
    from opgraph.analysis.generate import estimate
    from opgraph.core.model import BuildOptions
    build = choices.builder(models.get("llama-3-70b"), BuildOptions(tp=4, dp=2))
    g = estimate(build, strategy("fused"), hardware.load("h100-sxm"), batch=4, prompt=64, output=3)
    assert g.group_tokens_per_s == pytest.approx(2 * 4 * 3 / g.total_s, rel=1e-12)
    assert g.tokens_per_s_per_gpu == pytest.approx(g.group_tokens_per_s / 8, rel=1e-12)
