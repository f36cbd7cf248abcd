"""The benchmark scripts run (their timings are for people; here only that they work, on small sizes)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "benchmarks"


@pytest.mark.parametrize("script, args, expect", [
    ("bench_report.py", ["--repeat", "2"], "two-phase report: median"),
    ("bench_sweep.py", ["--repeat", "1", "--points", "2500"], "2,500 points: median"),
    ("bench_html.py", ["--repeat", "1", "--side", "20"], "400 points: the HTML page written in median"),
    ("fuzz_cli.py", ["--limit", "12"], "12 inputs in"),
    ("bench_accuracy.py", ["--gpus", "a100-sxm"], "held-out vLLM kernels"),
    ("bench_plan.py", ["--repeat", "1"], "decode steps costed"),
    ("bench_load.py", ["--repeat", "1", "--only", "gpt-oss-20b"], "load + two-phase report: median"),
    ("bench_startup.py", ["--repeat", "1"], "whole process: median"),
    ("bench_reprice.py", ["--repeat", "2"], "repeated at new sizes: median"),
    ("check_serving.py", ["--models", "llama-3-8b", "--engines", "trtllm", "--limit", "1", "--campaigns"],
     "aic-auto-gap-analysis"),
    ("check_serving.py", ["--models", "llama-3-8b", "--engines", "trtllm", "--limit", "1", "--protocol", "by-campaign"],
     "protocol by-campaign"),
    ("check_serving.py", ["--models", "llama-3-8b", "--engines", "trtllm", "--limit", "1", "--baseline"],
     "of them aiconfigurator too"),
    ("bench_serving_plan.py", ["--repeat", "1", "--concurrency", "20", "--model", "llama-3-8b"], "priced a second"),
    ("bench_serve.py", ["--repeat", "1", "--concurrency", "8", "--measure", "20"], "iterations a second"),
    ("fit_host_launch.py", ["--engines", "trtllm", "--grid", "0,50", "--limit", "1"], "2 runs in"),
    ("fit_engine_overhead.py", ["--engines", "vllm", "--overhead-us", "0,3000", "--per-request-us", "50", "--limit",
                                "1"], "vllm: "),
])
def test_benchmark_script_runs(script, args, expect, tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert expect in r.stdout, r.stdout
    if script.startswith("fuzz"):
        assert r.returncode == 0 and "12 as they must be" in r.stdout, r.stdout


@pytest.mark.parametrize("args", [["serve", "--concurrency", "8", "--measure", "20"],
                                  ["plan", "--model", "llama-3-8b", "--concurrency", "10"]])
def test_instruction_counts_workloads_run_and_without_valgrind_it_says_so(args, tmp_path):
    """bench_instructions.py: the workload valgrind's child runs (set up, then run once) works, and where valgrind is
    missing (a PATH without it) the script says so and exits 2 (the count itself needs valgrind: a minute a run)."""
    import os

    script = str(BENCH / "bench_instructions.py")
    r = subprocess.run([sys.executable, script, *args, "--child", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PATH": str(tmp_path)})
    assert r.returncode == 2 and "valgrind is not installed" in r.stderr, r.stderr


def test_each_campaigns_client_is_its_fitted_choice_where_enough_rows_chose_it_else_its_documented_one():
    """check_serving.py --protocol by-source / by-campaign: the Dynamo campaign (aiconfigurator's generated aiperf
    benchmark) has 2 B200/GB200 TensorRT-LLM rows, too few to choose on, so it keeps its documented client; the dated
    CSVs' TensorRT-LLM rows take what fit_protocol.py chose on theirs, and with --latency fitted the request latency
    fitted under it."""
    import json

    from opgraph.analysis.serving_validate import Client
    sys.path.insert(0, str(BENCH))
    try:
        import check_serving
        from fit_protocol import MIN_ROWS, campaigns
    finally:
        sys.path.remove(str(BENCH))
    kind = campaigns(check_serving.DATA)
    chosen = json.loads(check_serving.CHOSEN.read_text())["chosen"]
    rows = check_serving.rows(("h100-sxm", "h200"), engines=["trtllm"])
    source, campaign = check_serving.by_source(), check_serving.by_campaign(kind)
    dynamo = [r for r in rows if kind[r.row] == "aic-auto-gap-analysis"]
    dated = [r for r in rows if kind[r.row] == "dated-csv"]
    assert dynamo and dated
    assert chosen["aic-auto-gap-analysis/trtllm"]["rows"] < MIN_ROWS <= chosen["dated-csv/trtllm"]["rows"]
    assert {source(r) for r in dynamo} == {campaign(r) for r in dynamo} == {"aiperf"}
    assert {source(r) for r in dated} == {"inferencemax"}
    fit = chosen["dated-csv/trtllm"]
    assert {campaign(r) for r in dated} == {fit["protocol"]}
    # --latency fitted: the latency fitted under the protocol each row is served with, none where too few rows fitted
    assert {check_serving.with_latency(campaign, kind)(r) for r in dated} == {
        Client(fit["protocol"], fit["request_latency_ms"][fit["protocol"]] / 1000)}
    assert {check_serving.with_latency(source, kind)(r) for r in dynamo} == {Client("aiperf", 0.0)}
    # a disaggregated row is a campaign of its own: its client and latency are not its source's aggregated rows'
    pooled = [r for r in rows if r.disaggregated]
    assert pooled and {kind[r.row] for r in pooled} == {"db-dump disaggregated"}
    assert {source(r) for r in pooled} == {"sa-bench"}
    fit = chosen["db-dump disaggregated/trtllm"]
    assert {check_serving.with_latency(source, kind)(r) for r in pooled} == {
        Client("sa-bench", fit["request_latency_ms"]["sa-bench"] / 1000)}
    assert not [r for r in check_serving.rows(("b200",), aggregated=True) if r.disaggregated]


def test_check_serving_by_tp_gives_each_groups_median_signed_tpot_error_and_gap():
    """check_serving.py --by-tp: per (engine, GPU, model, TP), TPOT's median signed error and the median measured less
    predicted TPOT in ms, over all the group's rows and over those at its lowest concurrency; worked by hand."""
    import types

    sys.path.insert(0, str(BENCH))
    try:
        import check_serving
    finally:
        sys.path.remove(str(BENCH))

    def prediction(tp, concurrency, measured_ms, predicted_ms):
        row = types.SimpleNamespace(engine="vllm", gpu="h100-sxm", model="m", tp=tp, concurrency=concurrency,
                                    tpot_s=measured_ms / 1e3)
        return types.SimpleNamespace(row=row, tpot_s=predicted_ms / 1e3, tpot_error=predicted_ms / measured_ms - 1)
    table = check_serving.by_tp([prediction(2, 8, 10.0, 9.0), prediction(2, 16, 20.0, 15.0),
                                 prediction(2, 32, 40.0, 30.0), prediction(8, 8, 5.0, 4.0)])
    tp2, tp8 = (line.split() for line in table.splitlines()[2:])
    # TP 2: errors -10%, -25%, -25% (median -25.0%); gaps 1, 5, 10 ms (median +5.00); at concurrency 8, +1.00
    assert tp2 == ["vllm", "h100-sxm", "m", "2", "3", "-25.0%", "+5.00", "8", "+1.00"]
    assert tp8 == ["vllm", "h100-sxm", "m", "8", "1", "-20.0%", "+1.00", "8", "+1.00"]


def test_check_serving_cycles_gives_what_a_prompt_adds_to_a_loops_cycle_and_ttft_in_those_units():
    """check_serving.py --cycles, worked by hand: a closed loop of C = 4 whose every prompt adds 100 ms and whose decode
    step is 10 ms has a cycle of 4 x 100 + 10 x G ms; its measured TTFT 300 ms (TPOT chosen so the cycle is exact) is 3
    prompts' worth, the predicted 150 ms 1.5. Fewer than three output lengths: no row."""
    import types

    sys.path.insert(0, str(BENCH))
    try:
        import check_serving
    finally:
        sys.path.remove(str(BENCH))

    def prediction(output, prompt=1024):
        cycle_s = 4 * 0.100 + 0.010 * output
        row = types.SimpleNamespace(engine="trtllm", gpu="h100-sxm", model="m", tp=2, concurrency=4, prompt=prompt,
                                    output=output, ttft_s=0.300, tpot_s=(cycle_s - 0.300) / (output - 1))
        return types.SimpleNamespace(row=row, ttft_s=0.150)
    table = check_serving.cycles([prediction(g) for g in (128, 256, 512)]
                                 + [prediction(g, prompt=2048) for g in (128, 256)])
    (only,) = table.splitlines()[2:]
    assert only.split() == ["trtllm", "h100-sxm", "m", "2", "4", "1,024", "100.0", "10.00", "3.00", "1.50"]


def test_check_serving_campaigns_gives_each_campaigns_errors_then_all():
    """check_serving.py --campaigns: per campaign (the file's data_source_kind) and then over all rows, TPOT's and
    TTFT's median and p90 |error| and median signed error; worked by hand."""
    import types

    sys.path.insert(0, str(BENCH))
    try:
        import check_serving
    finally:
        sys.path.remove(str(BENCH))

    def prediction(row, tpot_error, ttft_error):
        return types.SimpleNamespace(row=types.SimpleNamespace(row=row), tpot_error=tpot_error, ttft_error=ttft_error)
    kind = {1: "dated-csv", 2: "dated-csv", 3: "aic-auto-gap-analysis"}
    table = check_serving.by_campaign_of([prediction(1, -0.10, 0.20), prediction(2, 0.30, -0.40),
                                          prediction(3, 0.05, -0.50)], kind)
    dynamo, dated, everything = (line.split() for line in table.splitlines()[2:])
    # dated: |TPOT| 10%, 30%: median 20%, p90 10 + 0.9 x 20 = 28%, signed (-10 + 30) / 2 = +10%; TTFT 20%, 40%: 30%,
    # p90 38%, signed (20 - 40) / 2 = -10%
    assert dated == ["dated-csv", "2", "20.0%", "28.0%", "+10.0%", "30.0%", "38.0%", "-10.0%"]
    assert dynamo == ["aic-auto-gap-analysis", "1", "5.0%", "5.0%", "+5.0%", "50.0%", "50.0%", "-50.0%"]
    # all: |TPOT| 5, 10, 30: median 10%, p90 10 + 0.8 x 20 = 26%, signed median of -10, 30, 5 = +5%; |TTFT| 20, 40,
    # 50: median 40%, p90 40 + 0.8 x 10 = 48%, signed median of 20, -40, -50 = -40%
    assert everything == ["all", "3", "10.0%", "26.0%", "+5.0%", "40.0%", "48.0%", "-40.0%"]


def test_check_serving_baseline_sets_aiconfigurators_errors_beside_opgraphs_on_the_rows_both_predict(tmp_path):
    """check_serving.py --baseline: per (engine, GPU, model) and over all, how many rows opgraph and aiconfigurator
    predict, and each one's median |error| of TPOT and TTFT on the rows both predict; worked by hand."""
    import csv
    import gzip
    import types

    sys.path.insert(0, str(BENCH))
    try:
        import check_serving
    finally:
        sys.path.remove(str(BENCH))

    def prediction(source, model, measured_ms, ours_ms):  # (TPOT, TTFT) each
        row = types.SimpleNamespace(engine="vllm", gpu="h200", model=model, source=source, disaggregated=False,
                                    tpot_s=measured_ms[0] / 1e3, ttft_s=measured_ms[1] / 1e3)
        return types.SimpleNamespace(row=row, tpot_error=ours_ms[0] / measured_ms[0] - 1,
                                     ttft_error=ours_ms[1] / measured_ms[1] - 1)
    path = tmp_path / "aic.csv.gz"
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_id", "aiconfigurator", "backend_version", "ttft_ms", "tpot_ms", "error"])
        w.writerow(["a", "0.12.0", "0.24.0", "120", "11", ""])   # TTFT +20%, TPOT +10%
        w.writerow(["b", "0.12.0", "0.24.0", "50", "15", ""])    # TTFT -50%, TPOT -25%
        w.writerow(["c", "0.12.0", "", "", "", "PerfDataNotAvailableError: no int4_wo GEMMs"])
    from opgraph.analysis.serving_validate import ServingValidation

    predictions = (prediction("a", "m", (10, 100), (9, 90)),     # ours: TPOT -10%, TTFT -10%
                   prediction("b", "m", (20, 100), (22, 130)),    # ours: TPOT +10%, TTFT +30%
                   prediction("c", "k", (10, 100), (10, 100)))
    table = check_serving.baseline(ServingValidation("file", "steady", predictions, (), 3, 3), path)
    k, m, everything = (line.split() for line in table.splitlines()[2:5])
    assert k == ["vllm", "h200", "k", "aggregated", "1", "0", "-", "-", "-", "-"]
    # m: ours |TPOT| 10, 10 -> 10%; theirs 10, 25 -> 17.5%; ours |TTFT| 10, 30 -> 20%; theirs 20, 50 -> 35%
    assert m == ["vllm", "h200", "m", "aggregated", "2", "2", "10.0%", "17.5%", "20.0%", "35.0%"]
    assert everything == ["all", "3", "2", "10.0%", "17.5%", "20.0%", "35.0%"]
    assert "aiconfigurator 0.12.0 with its tables of engine versions 0.24.0:" in table


def test_aiconfigurator_baseline_passes_each_row_as_aiconfigurators_own_accuracy_check_does():
    """aiconfigurator_baseline.estimate_args: a silicon row's fields as cli_estimate's arguments, as aiconfigurator's
    tools/accuracy_regression_testing/predict_silicon_sample.py builds them for an aggregated row (empty fields
    left out, versions and quant modes None when empty)."""
    sys.path.insert(0, str(BENCH))
    try:
        import aiconfigurator_baseline
    finally:
        sys.path.remove(str(BENCH))
    row = dict(model_path="Qwen/Qwen3-32B", system="h100_sxm", mode="agg", backend="trtllm", backend_version="1.0.0rc3",
               isl="4096", osl="512", gemm_quant_mode="fp8", moe_quant_mode="", batch_size="8", tp_size="1",
               pp_size="1", attention_dp_size="1", moe_tp_size="", moe_ep_size="", decode_tp_size="4")
    assert aiconfigurator_baseline.estimate_args(row) == dict(
        model_path="Qwen/Qwen3-32B", system_name="h100_sxm", mode="agg", backend_name="trtllm",
        backend_version="1.0.0rc3", isl=4096, osl=512, gemm_quant_mode="fp8", moe_quant_mode=None, batch_size=8,
        tp_size=1, pp_size=1, attention_dp_size=1)
    # given the row as it ran: InferenceX's { tp: 2, ep: 2 } (the file: tp 4, moe_tp 2, ep 2), gpt-oss-120b's own
    # storage where the file names its experts' (nvfp4_wo), the deployment's fp8 KV cache and memory setting
    row.update(model_path="openai/gpt-oss-120b", gemm_quant_mode="nvfp4_wo", moe_quant_mode="nvfp4_wo", tp_size="4",
               moe_tp_size="2", moe_ep_size="2")
    run = dict(model="gpt-oss-120b", tp="2", pp="1", dp="1", moe_tp="1", ep="2", kv_dtype="fp8", memory_fraction="0.8")
    args = aiconfigurator_baseline.estimate_args(row, run)
    assert {k: args[k] for k in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")} == dict(
        tp_size=2, pp_size=1, attention_dp_size=1, moe_tp_size=1, moe_ep_size=2)
    assert (args["gemm_quant_mode"], args["moe_quant_mode"]) == ("bfloat16", "w4a16_mxfp4")
    assert (args["kvcache_quant_mode"], args["free_gpu_memory_fraction"]) == ("fp8", 0.8)
    # a row whose storage aiconfigurator prices keeps it, and nothing the run does not say is set
    row.update(gemm_quant_mode="fp8", moe_quant_mode="fp8")
    args = aiconfigurator_baseline.estimate_args(row, dict(model="gpt-oss-120b", tp="8"))
    assert (args["gemm_quant_mode"], args["moe_quant_mode"], args["tp_size"]) == ("fp8", "fp8", 8)
    assert "kvcache_quant_mode" not in args and "free_gpu_memory_fraction" not in args
    # the file's "fp8" as the checkpoint stores it: DeepSeek's 128 x 128 blocks; TensorRT-LLM's per-tensor fp8 and
    # NVIDIA's ModelOpt checkpoints with static input scales; else run-time scales, as the file says
    # (the experts too, where the checkpoint stores them in blocks)
    for source, engine, gemm, moe in (("deepseek-ai/DeepSeek-R1", "trtllm", "fp8_block", "fp8_block"),
                                      ("Qwen/Qwen3-235B-A22B-FP8", "vllm", "fp8_block", "fp8_block"),
                                      ("Qwen/Qwen3-32B", "trtllm", "fp8_static", "fp8"),
                                      ("nvidia/Llama-3.1-8B-Instruct-FP8", "vllm", "fp8_static", "fp8"),
                                      ("meta-llama/Llama-3.1-70B", "vllm", "fp8", "fp8")):
        args = aiconfigurator_baseline.estimate_args(row, dict(model="m", tp="8", model_source=source, engine=engine))
        assert (args["gemm_quant_mode"], args["moe_quant_mode"]) == (gemm, moe), source


def test_aiconfigurators_predictions_cover_every_held_out_row_once():
    """benchmarks/data/aiconfigurator-predictions.csv.gz (aiconfigurator_baseline.py): one row for each H100/H200 row of
    serving-measured.csv.gz, each either predicted (TTFT and TPOT in ms, above 0, and the engine version whose tables
    were used) or refused with aiconfigurator's error, never both."""
    import csv
    import gzip

    with gzip.open(BENCH / "data" / "serving-measured.csv.gz", "rt", newline="") as f:
        held_out = [r["source_id"] for r in csv.DictReader(f) if r["gpu"] in ("h100-sxm", "h200")]
    with gzip.open(BENCH / "data" / "aiconfigurator-predictions.csv.gz", "rt", newline="") as f:
        theirs = list(csv.DictReader(f))
    assert sorted(r["source_id"] for r in theirs) == sorted(held_out)
    for r in theirs:
        predicted = bool(r["ttft_ms"] and r["tpot_ms"])
        assert predicted != bool(r["error"]), r
        if predicted:
            assert float(r["ttft_ms"]) > 0 and float(r["tpot_ms"]) > 0 and r["backend_version"], r
    assert sum(bool(r["error"]) for r in theirs) < len(theirs) / 10


def _extract_serving():
    sys.path.insert(0, str(BENCH))
    try:
        import extract_serving
    finally:
        sys.path.remove(str(BENCH))
    return extract_serving


@pytest.mark.parametrize("kind, ids, file_layout, run", [
    # InferenceX's { tp: 2, ep: 2 } (gpt-oss on the H200, EP=TP): written tp 4, moe_tp 2, ep 2 by the conversion
    ("dated-csv", ("2", "2"), (4, 1, 2, 2), (2, 1, 1, 2)),
    ("dated-csv", ("8", "8"), (64, 1, 8, 8), (8, 1, 1, 8)),
    # { tp: 4, ep: 4, dp-attn: true }: attention data-parallel over the 4 GPUs
    ("dated-csv", ("4", "4"), (1, 16, 4, 4), (1, 4, 1, 4)),
    ("dated-csv", ("8_0", "8_0"), (8, 1, 1, 8), None),  # the id's other spelling: the file's layout is the run's
    ("dated-csv", ("4", "1"), (4, 1, 4, 1), None),  # no expert parallelism: nothing multiplied
    # vLLM's { tp: 4, ep: 4 } on one node (MiniMax-M2.5 on the H100, Kimi-K2.5 on the B200): written tp 4 x dp 4
    # with ep 16, 16 GPUs; the id says the run; a dump row of that pattern has no id and stays as written
    ("dated-csv", ("4", "4"), (4, 4, 1, 16), (4, 1, 1, 4)),
    ("db-dump", ("", ""), (4, 4, 1, 16), None),
    ("dated-csv", ("2", "2"), (4, 4, 1, 16), None),  # an id of another layout: as written
    ("db-dump", ("", ""), (16, 1, 4, 4), (4, 1, 1, 4)),  # the dump's rows have no id: the pattern alone
    ("dated-csv", ("2", "1"), (4, 1, 2, 2), None),  # an id that does not write tp M ep M
    ("aic-auto-gap-analysis", ("4", "none"), (4, 1, 2, 2), None),  # NVIDIA's own runs: experts 2 x 2 as written
])
def test_extract_serving_takes_an_inferencex_runs_layout_from_its_id(kind, ids, file_layout, run):
    assert _extract_serving().inferencex_layout(kind, *ids, *file_layout) == run


def test_extract_serving_knows_a_copy_at_either_layout():
    """A row whose id corrected its layout is the same measurement as a row of its run's layout, and as a copy that
    kept the file's (a dump row has no id to correct it by)."""
    x = _extract_serving()
    base = dict(gpu="h200", engine="trtllm", pp=1, concurrency=4, prompt_tokens=1024, output_tokens=1024,
                ttft_ms="100.0000", tpot_ms="5.0000", flags="")
    corrected = dict(base, tp=8, dp=1, moe_tp=1, ep=8, silicon_layout="tp=64;dp=1;moe_tp=8;ep=8",
                     data_source_kind="dated-csv")
    spelled = dict(base, tp=8, dp=1, moe_tp=1, ep=8, silicon_layout="", data_source_kind="dated-csv")
    dumped = dict(base, tp=64, dp=1, moe_tp=8, ep=8, silicon_layout="", data_source_kind="db-dump")
    other = dict(spelled, tpot_ms="5.0001")
    rows = [corrected, spelled, dumped, other]
    x.flag_duplicates(rows)
    assert [r["flags"] for r in rows] == ["", "duplicate", "duplicate", ""]


def test_the_shipped_serving_rows_keep_no_layout_of_the_conversions():
    """No InferenceX row of benchmarks/data/serving-measured.csv.gz is left at the conversion's layout (experts M x M
    over M x M GPUs; or, where its id says tp M ep M, tp M x dp M with ep M x M), and each corrected row keeps the
    file's layout, M x M wide, beside its own M GPUs."""
    import csv
    import gzip

    with gzip.open(BENCH / "data" / "serving-measured.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    inferencex = [r for r in rows if r["data_source_kind"] in ("db-dump", "dated-csv")]
    size = lambda r, k: int(r[k])  # noqa: E731
    left = [r for r in inferencex if size(r, "ep") > 1 and size(r, "moe_tp") == size(r, "ep")
            and size(r, "tp") * size(r, "dp") == size(r, "ep") ** 2]
    assert not left
    assert not [r for r in inferencex if size(r, "tp") == size(r, "dp") > 1 and size(r, "moe_tp") == 1
                and size(r, "ep") == size(r, "tp") ** 2 and r["id_tp"] == r["id_ep"] == r["tp"]]
    corrected = [r for r in rows if r["silicon_layout"] and not r["silicon_layout"].endswith(";ep=1")]  # recipe_layout
    assert len(corrected) == 329 + 40  # its ep 1 in the file apart
    for r in corrected:
        tp, dp, moe_tp, ep = (int(part.split("=")[1]) for part in r["silicon_layout"].split(";"))
        m = ep if moe_tp == ep else tp
        assert tp * dp == m * m and int(r["gpus_per_worker"]) == m
        assert moe_tp == ep or (dp == m and moe_tp == 1 and ep == m * m and r["id_tp"] == r["id_ep"] == str(m))
        assert (size(r, "tp") * size(r, "dp"), size(r, "moe_tp"), size(r, "ep")) == (m, 1, m)


@pytest.mark.parametrize("engine, preset, gpu, kind, measured, layout, run", [
    # InferenceX's H200 MiniMax-M2.5 recipe turned expert parallelism on for EP_SIZE >= 1 from 2026-03-05
    ("vllm", "minimax-m2.5", "h200", "dated-csv", "2026-03-27", (8, 1, 8, 1), (8, 1, 1, 8)),
    ("vllm", "minimax-m2.5", "h200", "db-dump", "2026-03-05", (4, 1, 4, 1), (4, 1, 1, 4)),
    ("vllm", "minimax-m2.5", "h200", "db-dump", "2026-03-01", (4, 1, 4, 1), None),  # its first version: -gt 1
    ("vllm", "minimax-m2.5", "h100-sxm", "dated-csv", "2026-03-27", (4, 1, 4, 1), None),  # another recipe
    ("vllm", "minimax-m2.5", "h200", "aic-auto-gap-analysis", "2026-03-27", (8, 1, 8, 1), None),  # not InferenceX
    ("vllm", "minimax-m2.5", "h200", "dated-csv", "2026-03-27", (8, 1, 1, 8), None),  # ep already given
])
def test_extract_serving_takes_expert_parallelism_from_the_recipe(engine, preset, gpu, kind, measured, layout, run):
    assert _extract_serving().recipe_layout(preset, gpu, engine, kind, measured, layout) == run


def test_the_shipped_minimax_rows_on_the_h200_ran_their_recipes_expert_parallelism():
    """Every InferenceX MiniMax-M2.5 row on the H200 measured from 2026-03-05 spreads its experts over its GPUs and
    keeps the file's ep 1 beside; the earlier ones split them, as the file says."""
    import csv
    import gzip

    with gzip.open(BENCH / "data" / "serving-measured.csv.gz", "rt") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == "minimax-m2.5" and r["gpu"] == "h200"]
    assert rows
    for r in rows:
        on = r["measured_date"] >= "2026-03-05"
        assert (r["ep"] == r["tp"], bool(r["silicon_layout"])) == (on, on), r["source_id"]


def test_check_serving_counts_the_rows_within_and_beyond_the_tpot_targets():
    """The counts docs/serving-checks.md quotes: |TPOT error| at most 8% (the median target) and above 20% (the p90
    target), with the groups that hold the most rows beyond."""
    from types import SimpleNamespace
    sys.path.insert(0, str(BENCH))
    try:
        import check_serving
    finally:
        sys.path.remove(str(BENCH))

    def p(error, model="llama-3-8b"):
        return SimpleNamespace(tpot_error=error, row=SimpleNamespace(engine="vllm", model=model, gpu="h200"))
    rows = [p(0.08), p(-0.05), p(0.0801), p(-0.2), p(0.21), p(-0.5, "qwen3-32b"), p(0.3, "qwen3-32b")]
    text = check_serving.within(rows)
    assert text.startswith("TPOT within 8%: 2 rows; beyond 20%: 3 rows")
    assert "(most: vllm qwen3-32b h200 2, vllm llama-3-8b h200 1)" in text
    assert check_serving.within([]) == "TPOT within 8%: 0 rows; beyond 20%: 0 rows"


def _disaggregated_silicon_row(**given) -> dict:
    """A disaggregated row of silicon_sample.csv as InferenceX's database dump writes one: 1 prefill worker of tp 8,
    9 decode workers of tp 8 with experts over the 8 GPUs, 8 requests on each (72 in all)."""
    row = dict(id="dsr1_h200_trtllm_fp8_disagg_1024x1024_c72_cfg303", backend="trtllm", backend_version="0.8.1.post1",
               model_path="deepseek-ai/DeepSeek-V3", system="h200_sxm", precision="fp8", mode="disagg", isl="1024",
               osl="1024", gemm_quant_mode="fp8", moe_quant_mode="fp8", batch_size="", tp_size="", pp_size="",
               attention_dp_size="", moe_tp_size="", moe_ep_size="", silicon_ttft_ms="875.5", silicon_tpot_ms="16.26",
               silicon_data_source="db-dump/2026-04-27; config_id=303; silicon_concurrency=72; "
               "measured=2026-02-14T00:00:00.000Z; nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post1")
    for pool, (workers, tp, dp, moe_tp, ep, batch) in (("prefill", (1, 8, 1, 1, 8, 1)), ("decode", (9, 8, 1, 1, 8, 8))):
        row.update({f"{pool}_num_workers": str(workers), f"{pool}_tp_size": str(tp), f"{pool}_pp_size": "1",
                    f"{pool}_attention_dp_size": str(dp), f"{pool}_moe_tp_size": str(moe_tp),
                    f"{pool}_moe_ep_size": str(ep), f"{pool}_batch_size": str(batch)})
    return {**row, **given}


def test_extract_serving_writes_a_disaggregated_rows_pools_and_its_recipes_settings():
    """A disaggregated row: the decode pool's layout in tp, dp, moe_tp and ep, the prefill pool's and both pools'
    workers in their own columns; its client srt-slurm's sa-bench and its KV cache its recipe's fp8; none of the
    aggregated recipes' settings (InferenceX's DeepSeek TensorRT-LLM budget, its MTP flag above concurrency 64)."""
    x = _extract_serving()
    out = x.convert_disaggregated(_disaggregated_silicon_row())
    assert (out["tp"], out["dp"], out["moe_tp"], out["ep"], out["decode_workers"]) == (8, 1, 1, 8, 9)
    assert (out["prefill_workers"], out["prefill_tp"], out["prefill_dp"], out["prefill_ep"]) == (1, 8, 1, 8)
    assert (out["concurrency"], out["batch_size_per_dp_rank"], out["flags"]) == (72, 8, "")
    assert (out["client"], out["kv_dtype"], out["max_batch_tokens"], out["scheduling"]) == ("sa-bench", "fp8", "", "")
    # 80 requests over 9 x 8: not one replica's batch each; a prefill worker of 16 GPUs is wider than the node
    assert x.convert_disaggregated(_disaggregated_silicon_row(
        silicon_data_source="db-dump/2026-04-27; silicon_concurrency=80"))["flags"] == "replicas"
    assert x.convert_disaggregated(_disaggregated_silicon_row(prefill_tp_size="16"))["flags"] == "width_exceeds_node"


def test_extract_serving_drops_disaggregated_rows_that_do_not_give_their_workers():
    import io

    x = _extract_serving()
    given, bare = _disaggregated_silicon_row(), _disaggregated_silicon_row(prefill_num_workers="", id="other")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(given))
    writer.writeheader()
    writer.writerows([given, bare])
    kept, dropped, _, total = x.extract(text.getvalue())
    assert [r["source_id"] for r in kept] == [given["id"]] and total == 2
    assert dropped == {"disaggregated, workers not given": 1}
