"""The command line as a user meets it: real subprocesses, exit codes, no tracebacks."""

import csv
import io
import json

import pytest


from userland import opgraph


@pytest.fixture(scope="module")
def report_json():
    r = opgraph("report", "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_bare_report_reproduces_the_reference_verdicts():
    r = opgraph("report")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "llama-3-8b" in out and "h100-sxm" in out and "fusion: fused" in out
    assert "PREFILL: batch 32 x seq_len 1024" in out and "DECODE: batch 32, context 1024" in out
    for header in ("op", "kind", "GFLOP", "read MB", "written MB", "FLOP/B", "bound", "roofline µs", "expected µs",
                   "% block"):
        assert header in out
    layer_totals = [line for line in out.splitlines() if line.startswith("layer total")]
    assert len(layer_totals) == 2
    assert " compute " in layer_totals[0] and " memory " in layer_totals[1]


def test_json_has_the_contract_shape(report_json):
    j = report_json
    assert (j["model"], j["hardware"], j["fusion"]) == ("llama-3-8b", "h100-sxm", "fused")
    pre, dec = j["phases"]["prefill"], j["phases"]["decode"]
    assert (pre["batch"], pre["seq_len"], dec["batch"], dec["context"]) == (32, 1024, 32, 1024)
    for phase in (pre, dec):
        names = [b["name"] for b in phase["blocks"]]
        assert names == ["layer", "embed_head"]
        assert [b["count"] for b in phase["blocks"]] == [32, 1]
        for b in phase["blocks"]:
            for op in b["ops"]:
                assert {"name", "kind", "flops", "bytes_read", "bytes_written", "intensity", "bound",
                        "roofline_s", "expected_s"} <= set(op)
                assert isinstance(op["flops"], int) and isinstance(op["bytes_read"], int)
            assert {"flops", "bytes", "weight_bytes", "activation_bytes", "kv_cache_bytes", "intensity", "bound",
                    "roofline_s", "expected_s"} <= set(b["totals"])
        assert {"params", "weight_bytes", "flops", "bytes", "roofline_s", "expected_s"} <= set(phase["model"])
        assert phase["model"]["params"] == 8_030_261_248
    layer_ops = {op["name"]: op for op in pre["blocks"][0]["ops"]}
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qk", "av"):
        assert layer_ops[name]["kind"] == "matmul"
    head_ops = {op["name"]: op for op in pre["blocks"][1]["ops"]}
    assert head_ops["lm_head"]["kind"] == "matmul" and head_ops["embedding"]["kind"] == "embedding"


def test_json_model_totals_are_blocks_times_counts(report_json):
    for phase in report_json["phases"].values():
        flops = sum(b["count"] * b["totals"]["flops"] for b in phase["blocks"])
        assert phase["model"]["flops"] == flops


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_single_phase_and_options(phase):
    length = ["--seq-len", "512"] if phase == "prefill" else ["--context", "2048"]
    r = opgraph("report", "llama-2-7b", "--hardware", "a100-sxm", "--phase", phase, "--batch", "4", *length,
                "--fusion", "unfused", "--format", "json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert list(j["phases"]) == [phase]
    assert (j["model"], j["hardware"], j["fusion"]) == ("llama-2-7b", "a100-sxm", "unfused")
    p = j["phases"][phase]
    assert p["batch"] == 4 and p.get("seq_len", p.get("context")) == (512 if phase == "prefill" else 2048)


def test_csv_rows_are_ops_with_exact_integers():
    r = opgraph("report", "--format", "csv", "--phase", "decode")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    qk = next(row for row in rows if row["op"] == "qk")
    assert int(qk["flops"]) == 2 * 32 * 32 * 1 * 1025 * 128
    assert {row["phase"] for row in rows} == {"decode"}


def test_markdown_renders_github_tables():
    r = opgraph("report", "--format", "markdown", "--phase", "prefill")
    assert r.returncode == 0, r.stderr
    assert "| op " in r.stdout and "|---" in r.stdout.replace(":", "-")


def test_models_and_hardware_listings():
    m = opgraph("models")
    assert m.returncode == 0 and "8,030,261,248" in m.stdout and "llama-3.1-405b" in m.stdout
    h = opgraph("hardware")
    assert h.returncode == 0
    row = next(line for line in h.stdout.splitlines() if line.startswith("h100-sxm"))
    assert row.split()[-2:] == ["295", "132"]  # ridge = 989e12 / 3350e9; the whitepaper's 132 SMs
    hj = json.loads(opgraph("hardware", "--format", "json").stdout)
    assert {x["name"] for x in hj} >= {"h100-sxm", "h100-pcie", "a100-sxm", "a100-pcie", "l40s", "a10", "v100",
                                       "h200", "b200", "mi300x", "l4"}
    assert {x["name"]: x["vendor"] for x in hj if x["name"] in ("h100-sxm", "mi300x")} == {"h100-sxm": "nvidia",
                                                                                          "mi300x": "amd"}
    assert opgraph("fusions").returncode == 0
    # every shipped plan as JSON, sets as sorted lists: the engine plans' packed projections are sets within a tuple
    fj = json.loads(opgraph("fusions", "--format", "json").stdout)
    packed = next(r["packed"] for p in fj if p["name"] == "vllm" for r in p["rules"] if r.get("packed"))
    assert packed[:2] == [["k_proj", "q_proj", "v_proj"], ["gate_proj", "up_proj"]]
    assert {p["name"] for p in fj} >= {"unfused", "fused", "flash", "vllm", "sglang", "trtllm"}


def test_user_hardware_file(tmp_path):
    spec = tmp_path / "mygpu.toml"
    spec.write_text('name = "mygpu"\ndisplay_name = "My GPU"\nmemory_bandwidth_GB_per_s = 1000\n'
                    'memory_capacity_GB = 40\nvector_TFLOP_per_s = 10\nsource = "made up"\n'
                    '[matrix_TFLOP_per_s]\nbf16 = 100\n')
    r = opgraph("report", "--hardware", str(spec), "--format", "json", "--phase", "decode")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hardware"] == "mygpu"


@pytest.mark.parametrize("args, message", [
    (["report", "gpt-5"], "unknown model 'gpt-5'; presets: deepseek-r1, deepseek-v2-lite, deepseek-v3, "),
    (["report", "gpt-5"], "trinity-mini; or the path of a Hugging Face config.json, or file.py:NAME"),
    (["report", "a" * 300], "unknown model 'aaaa"),  # a long name is a name, not a path to stat
    (["report", "--hardware", "h1000"], "unknown hardware 'h1000'; valid: a10, "),
    (["report", "--fusion", "magic"], "unknown fusion strategy 'magic'; valid: unfused, flash, fused, megakernel"),
    (["report", "--batch", "0"], "--batch must be an integer from 1 to 1,000,000,000, got 0"),
    (["report", "--seq-len", "-5"], "--seq-len must be an integer from 1 to 1,000,000,000, got -5"),
    (["report", "--context", "0"], "--context must be an integer from 1 to 1,000,000,000, got 0"),
    (["report", "--batch", "many"], "--batch: expected an integer, got 'many'"),
    (["report", "--phase", "train"], "unknown --phase 'train'; valid: prefill, decode, both"),
    (["report", "--format", "xml"], "unknown --format 'xml'; valid: table, markdown, json, csv"),
    (["report", "--hardware", "v100"], "has no matrix rate for bf16 (it has: fp16)"),
    (["report", "--hardware", "missing/spec.toml"], "hardware spec file 'missing/spec.toml' does not exist"),
    (["report", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_exit_2_no_traceback(args, message):
    r = opgraph(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_explains_every_report_option():
    r = opgraph("report", "--help")
    assert r.returncode == 0
    for flag in ("--hardware", "--phase", "--batch", "--seq-len", "--context", "--fusion", "--format", "--dtype"):
        assert flag in r.stdout
    assert "default: llama-3-8b" in " ".join(r.stdout.split())


def test_out_has_the_short_form_o(tmp_path):
    """-o FILE is --out FILE, the usual short form: the report is written there, not printed."""
    out = tmp_path / "r.json"
    r = opgraph("report", "--phase", "decode", "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["model"] == "llama-3-8b" and "wrote" in r.stdout


def test_a_sweep_plot_with_a_list_where_one_value_is_held_says_which_phase_varies_it(tmp_path):
    r = opgraph("plot", "sweep", "--batch", "1,8,64", "--context", "1024", "-o", str(tmp_path / "s.svg"))
    assert r.returncode == 2 and "--batch is held fixed in a prefill sweep plot" in r.stderr
    assert "(or --phase decode, whose plot varies --batch)" in r.stderr
