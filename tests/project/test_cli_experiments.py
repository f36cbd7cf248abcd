"""The experiment commands as a user meets them: activations, compare, graph, plan files, precision flags."""

import json
import re

import pytest

from userland import opgraph


def test_activations_json_lists_every_produced_tensor():
    r = opgraph("activations", "--phase", "decode", "--format", "json")
    assert r.returncode == 0, r.stderr
    layer = json.loads(r.stdout)["phases"]["decode"]["blocks"][0]
    fates = {t["tensor"]: t["fate"] for t in layer["tensors"]}
    assert fates["scores"] == "avoided" and fates["h"] == "materialized" and fates["q"] == "fused"
    assert layer["count"] == 32


def test_activations_table_shows_the_fate_words():
    r = opgraph("activations", "--phase", "prefill")
    assert r.returncode == 0, r.stderr
    for word in ("WRITE, read 1x", "WRITE (KV cache)", "AVOIDED", "FUSED in input_layernorm..attn_residual"):
        assert word in r.stdout


def test_compare_json_savings_are_differences_of_the_plans():
    r = opgraph("compare", "--fusion", "unfused,fused,megakernel", "--format", "json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["fusions"] == ["unfused", "fused", "megakernel"]
    for phase in ("prefill", "decode"):
        plans = j["phases"][phase]["plans"]
        base = plans[0]
        for p in plans:
            assert p["bytes_saved"] == base["bytes"] - p["bytes"]
        assert plans[1]["kernels_per_block"]["layer"] == 2 and plans[2]["kernels_per_block"]["layer"] == 1
        flips = {f["op"] for f in j["phases"][phase]["verdict_flips"]}
        changes = {c["tensor"] for c in j["phases"][phase]["fate_changes"]}
        # the softmax is fused away entirely under fused and megakernel: no verdict of its own there, so no flip; the
        # megakernel's post-attention norm reads only its 8 KB scale (its input stays on chip): compute-bound
        assert "softmax" not in flips and "post_attention_layernorm" in flips
        assert {"scores", "probs", "h"} <= changes  # avoided under fusion; h no longer re-read twice


def test_compare_needs_two_plans():
    r = opgraph("compare", "--fusion", "fused")
    assert r.returncode == 2 and "at least two plans" in r.stderr


def test_graph_dot_has_one_cluster_per_kernel_and_both_edge_styles():
    r = opgraph("graph", "--fusion", "fused", "--phase", "decode")
    assert r.returncode == 0, r.stderr
    dot = r.stdout
    assert dot.startswith("digraph") and len(re.findall(r"subgraph cluster_", dot)) == 2
    assert "style=dashed" in dot and "style=solid" in dot
    # h crosses from the attention kernel to the FFN kernel: solid, labelled with its bytes (32 x 4096 x 2).
    assert re.search(r'"attn_residual" -> "post_attention_layernorm" \[label="h 0.262 MB", style=solid\]', dot)
    unfused = opgraph("graph", "--fusion", "unfused", "--phase", "decode").stdout
    assert len(re.findall(r"subgraph cluster_", unfused)) == 18 and "style=dashed" not in unfused


def test_graph_mermaid():
    r = opgraph("graph", "--format", "mermaid", "--fusion", "flash")
    assert r.returncode == 0, r.stderr
    assert "flowchart TB" in r.stdout and "-.->|scores|" in r.stdout and "subgraph" in r.stdout


def test_plan_file_through_the_cli(tmp_path):
    plan = tmp_path / "qkv.toml"
    plan.write_text('name = "qkv"\n[[group]]\nops = ["q_proj", "k_proj", "v_proj"]\n')
    r = opgraph("report", "--fusion", str(plan), "--format", "json", "--phase", "prefill")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["fusion"] == "qkv"
    assert j["phases"]["prefill"]["blocks"][0]["totals"]["kernels"] == 16


def test_int4_weights_through_the_cli():
    r = opgraph("report", "--weight-dtype", "int4", "--kv-dtype", "fp8", "--format", "json", "--phase", "decode")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)["phases"]["decode"]["blocks"][0]["totals"]
    d, kv, ffn = 4096, 1024, 14336
    matrices = [(d, d), (kv, d), (kv, d), (d, d), (ffn, d), (ffn, d), (d, ffn)]
    assert t["weight_bytes"] == sum(n * k // 2 + n * (k // 128) * 2 for n, k in matrices) + 2 * d * 2
    # fp8 cache: one byte per element; read the whole cache, write the new token's K and V.
    assert t["kv_cache_bytes"] == 2 * 32 * 1024 * kv + 2 * 32 * 1 * kv


@pytest.mark.parametrize("args, message", [
    (["report", "--group-size", "64"], "--group-size applies to int4/int8 weights"),
    (["report", "--weight-dtype", "int4", "--group-size", "0"], "--group-size must be an integer from 1 to"),
    (["report", "--act-dtype", "fp8", "--hardware", "a100-sxm"], "has no matrix rate for fp8"),
    (["report", "--kv-dtype", "fp6"], "unknown --kv-dtype 'fp6'; valid: fp32, bf16, fp16, fp8, int8, int4"),
    (["report", "--overlap", "2"], "--overlap must be a finite number >= 0 and <= 1, got 2.0"),
    (["report", "--launch-us", "-1"], "--launch-us must be a finite number >= 0 and <= 1e+06, got -1.0"),
    (["graph", "--phase", "both"], "opgraph graph draws one phase"),
    (["report", "--phase", "decode", "--seq-len", "4096"], "--seq-len applies to prefill, but --phase is decode"),
    (["graph", "--context", "4096"], "--context applies to decode, but --phase is prefill"),
    (["graph", "--block", "attn"], "unknown block 'attn'; valid: layer, embed_head"),
    (["activations", "--fusion", "nope.toml"], "fusion plan file 'nope.toml' does not exist"),
])
def test_bad_experiment_input(args, message):
    r = opgraph(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr, r.stderr


def test_launch_and_overlap_flags_change_the_expected_time_as_documented():
    """On a GPU without a calibration (the MI300X), unfused (Llama's 18 ops, 18 kernels of one op each): --launch-us
    adds its fixed cost to every kernel's expected time, --overlap 0 sums each kernel's compute and memory time; the
    roofline, the ideal, moves with neither."""
    def layer(*extra):
        r = opgraph("report", "--phase", "decode", "--hardware", "mi300x", "--fusion", "unfused", "--format", "json",
                    *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["phases"]["decode"]["blocks"][0]
    base, launched, summed = layer(), layer("--launch-us", "3"), layer("--overlap", "0")
    assert base["totals"]["expected_s"] == pytest.approx(base["totals"]["roofline_s"], rel=1e-12)
    assert launched["totals"]["expected_s"] == pytest.approx(base["totals"]["roofline_s"] + 18 * 3e-6, rel=1e-12)
    assert summed["totals"]["expected_s"] == pytest.approx(base["totals"]["compute_s"] + base["totals"]["memory_s"],
                                                           rel=1e-12)
    assert base["totals"]["roofline_s"] == launched["totals"]["roofline_s"] == summed["totals"]["roofline_s"]


def test_experts_touched_flag():
    r = opgraph("report", "mixtral-8x7b", "--phase", "decode", "--batch", "4", "--experts-touched", "3",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["phases"]["decode"]
    layer = d["blocks"][0]
    expert_weights = sum(op["weight_bytes"] for op in layer["ops"] if op["name"].startswith("experts."))
    assert expert_weights == 3 * 3 * 4096 * 14336 * 2  # gate, up, down of 3 experts, bf16
    assert any("--experts-touched 3" in n for n in d["notes"])
    bad = opgraph("report", "--experts-touched", "2")
    assert bad.returncode == 2 and "applies to mixture-of-experts models" in bad.stderr
