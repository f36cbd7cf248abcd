"""`opgraph validate` of measured serving rows (issue 17 §7): each row served as measured, its error against the
measured means, rows opgraph does not model skipped by reason, and clear errors. Expected predictions come from
`serve` run directly with the row's configuration; errors from their definition, (predicted - measured) / measured."""

import json

import attrs

import numpy as np
import pytest

from opgraph import hardware, models, strategy
from opgraph.analysis.serve import serve, sglang, trtllm, vllm
from opgraph.models import BuildOptions
from opgraph.analysis.serving_validate import validate_serving
from opgraph.choices import serving_row
from opgraph.errors import OpgraphError
from opgraph.files import serving_measurements
from userland import opgraph

HEADER = "model,gpu,engine,tp,pp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,gemm_quant_mode,flags\n"
ROWS = [
    "llama-3-8b,h100-sxm,sglang,1,1,4,500,16,50.0,10.0,,no_engine_version",  # kept: the version alone is unknown
    "llama-3-8b,h100-sxm,vllm,1,2,4,500,16,50.0,10.0,,",  # pipeline parallel: served in two lanes
    "llama-3-8b,h100-sxm,vllm,1,1,4,500,16,50.0,10.0,nvfp4,",  # other GEMM storage
    "llama-3-8b,h100-sxm,vllm,1,1,4,500,16,50.0,10.0,,replicas",  # flagged
    "not-a-model,h100-sxm,vllm,1,1,4,500,16,50.0,10.0,,",
]


@pytest.fixture
def measured(tmp_path):
    f = tmp_path / "serving.csv"
    f.write_text(HEADER + "\n".join(ROWS) + "\n")
    return f


def test_a_row_is_served_as_measured_and_the_rest_skipped_by_reason(measured):
    v = validate_serving(serving_measurements.read(measured), serving_row, str(measured))
    h100 = hardware.load("h100-sxm")
    direct = serve(models.get("llama-3-8b").build, strategy("sglang"), h100, engine=sglang(h100), concurrency=4,
                   prompt=500, output=16)
    p, piped = v.predictions
    assert (p.ttft_s, p.tpot_s) == (direct.ttft.mean, direct.tpot.mean)
    assert p.tpot_error == (direct.tpot.mean - 0.010) / 0.010 and p.ttft_error == (direct.ttft.mean - 0.050) / 0.050
    lanes = serve(lambda ph: models.get("llama-3-8b").build(ph, BuildOptions(pp=2)), strategy("vllm"), h100,
                  engine=vllm(h100), concurrency=4, prompt=500, output=16)
    assert (piped.ttft_s, piped.tpot_s) == (lanes.ttft.mean, lanes.tpot.mean)
    assert dict(v.skipped) == {"not predicted: GEMMs in nvfp4 (not built as measured)": 1, "flagged replicas": 1,
                               "not predicted: model not-a-model is not a preset": 1}
    assert v.rows == v.considered == 5


def test_the_command_line_reports_errors_by_engine_gpu_and_model(measured):
    r = opgraph("validate", str(measured), "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    rows = d["rows"]
    assert len(rows) == 2 and all(row["tpot_error"] == (row["expected_tpot_s"] - 0.010) / 0.010 for row in rows)
    assert d["stats"]["all"]["tpot"]["median_error"] == pytest.approx(np.median([row["tpot_error"] for row in rows]))
    assert d["stats"]["by_engine_gpu_model"][0]["engine"] == "sglang" and sum(d["skipped"].values()) == 3
    text = opgraph("validate", str(measured)).stdout
    assert "2 of 5 rows (5 in the file) predicted" in text and "flagged replicas x1" in text and "largest TPOT errors" in text


def test_a_file_of_rows_none_of_which_is_predicted_says_so(tmp_path):
    f = tmp_path / "serving.csv"
    f.write_text(HEADER + "\n".join(ROWS[2:]) + "\n")
    r = opgraph("validate", str(f))
    assert r.returncode == 0, r.stderr
    assert "0 of 3 rows (3 in the file) predicted" in r.stdout and "no row predicted" in r.stdout
    assert "names none;" in r.stdout and "none: ;" not in r.stdout  # no empty list of clients
    page = opgraph("validate", str(f), "--format", "html", "-o", str(tmp_path / "page.html"))
    assert page.returncode == 0, page.stderr
    assert "no row predicted" in (tmp_path / "page.html").read_text()


def test_a_benchmark_protocol_and_a_gpu_filter(measured):
    rows = serving_measurements.read(measured)
    steady = validate_serving(rows, serving_row, protocol="steady").predictions[0]
    imax = validate_serving(rows, serving_row, protocol="inferencemax").predictions[0]
    assert imax.ttft_s != steady.ttft_s  # the first wave of 4 prompts at once is counted
    with pytest.raises(OpgraphError, match="no rows of GPU h200.*its GPUs: h100-sxm"):
        validate_serving(rows, serving_row, gpu="h200")
    # the four rows not skipped for a reason of their own first (the nvfp4 row's is found only when it is built)
    assert validate_serving(rows, serving_row, limit=0).skipped[0] == ("beyond --limit 0", 4)
    # a selection: the rows it leaves out are not considered at all, the file's count stays the file's
    vllm_only = validate_serving(rows, serving_row, where=lambda r: r.engine == "vllm")
    assert (vllm_only.rows, vllm_only.considered) == (5, 4) and all(p.row.engine == "vllm" for p in vllm_only.predictions)


def test_one_wave_is_c_requests_sent_at_once_and_a_row_may_name_its_own_protocol(measured):
    rows = serving_measurements.read(measured)
    (wave, _) = validate_serving(rows, serving_row, protocol="wave").predictions
    h100 = hardware.load("h100-sxm")
    once = serve(models.get("llama-3-8b").build, strategy("sglang"), h100, engine=sglang(h100), concurrency=4,
                 requests=4, prompt=500, output=16)
    assert (wave.ttft_s, wave.tpot_s) == (once.ttft.mean, once.tpot.mean)
    mixed = validate_serving(rows, serving_row, protocol="by row",
                             per_row=lambda r: "wave" if r.engine == "sglang" else "steady").predictions
    steady = validate_serving(rows, serving_row).predictions
    assert (mixed[0].ttft_s, mixed[1].ttft_s) == (wave.ttft_s, steady[1].ttft_s)
    with pytest.raises(ValueError, match="not one of"):
        validate_serving(rows, serving_row, per_row=lambda r: "bursty")


def test_aiperf_is_twenty_rounds_of_the_concurrency_at_the_rows_own_lengths(measured):
    # aiconfigurator's generated benchmark: aiperf --concurrency C --request-count 20*C, lengths fixed
    (row, _) = validate_serving(serving_measurements.read(measured), serving_row, protocol="aiperf").predictions
    h100 = hardware.load("h100-sxm")
    run = serve(models.get("llama-3-8b").build, strategy("sglang"), h100, engine=sglang(h100), concurrency=4,
                requests=80, prompt=500, output=16)
    assert (row.ttft_s, row.tpot_s) == (run.ttft.mean, run.tpot.mean)
    assert run.measured == 80  # every request counted


def test_each_row_is_served_under_the_client_it_names_unless_one_is_given_for_all(tmp_path):
    # the client column: aiperf is 20 x C requests at the row's lengths, the first C at once; empty is steady
    f = tmp_path / "clients.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,client\n"
                 "llama-3-8b,h100-sxm,sglang,1,4,500,16,50.0,10.0,aiperf\n"
                 "llama-3-8b,h100-sxm,sglang,1,4,500,16,50.0,10.0,\n")
    rows = serving_measurements.read(f)
    assert [r.client for r in rows] == ["aiperf", ""]
    h100 = hardware.load("h100-sxm")
    run = lambda **load: serve(models.get("llama-3-8b").build, strategy("sglang"), h100,  # noqa: E731
                               engine=sglang(h100), concurrency=4, prompt=500, output=16, **load)
    rounds, steady = run(requests=80), run()
    own = validate_serving(rows, serving_row, str(f))
    assert [(p.ttft_s, p.tpot_s, p.protocol) for p in own.predictions] == [
        (rounds.ttft.mean, rounds.tpot.mean, "aiperf"), (steady.ttft.mean, steady.tpot.mean, "steady")]
    assert own.clients() == {"aiperf": 1, "steady": 1} and rounds.ttft.mean != steady.ttft.mean
    given = validate_serving(rows, serving_row, str(f), protocol="steady")
    assert {(p.ttft_s, p.protocol) for p in given.predictions} == {(steady.ttft.mean, "steady")}
    d = json.loads(opgraph("validate", str(f), "--format", "json").stdout)
    assert d["clients"] == {"aiperf": 1, "steady": 1} and [r["protocol"] for r in d["rows"]] == ["aiperf", "steady"]
    assert "each row under its own benchmark client" in opgraph("validate", str(f)).stdout
    assert "protocol wave" in opgraph("validate", str(f), "--protocol", "wave").stdout


def test_a_bad_client_names_the_column_and_the_choices(tmp_path):
    f = tmp_path / "clients.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,client\n"
                 "llama-3-8b,h100-sxm,sglang,1,4,500,16,50.0,10.0,locust\n")
    with pytest.raises(OpgraphError, match="row 1: column client: 'locust' is not one of: empty, steady, "
                                           "inferencemax, wave, aiperf, sa-bench"):
        serving_measurements.read(f)


def test_the_extract_names_each_campaigns_client_as_its_tooling_documents_it():
    # aiconfigurator's generator writes the Dynamo runs' aiperf benchmark; InferenceX's client for its dump and dated
    # CSVs, and srt-slurm's sa-bench for its disaggregated runs (the dump's); the gap-analysis CSVs name none
    import csv
    import gzip
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    clients = {(r["data_source_kind"], r["client"]) for r in csv.DictReader(gzip.open(data, "rt"))}
    assert clients == {("aic-auto-gap-analysis", "aiperf"), ("db-dump", "inferencemax"), ("db-dump", "sa-bench"),
                       ("dated-csv", "inferencemax"), ("gap-analysis-csv", "")}


LAYOUT_HEADER = "model,gpu,engine,tp,dp,moe_tp,ep,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,gemm_quant_mode\n"


def _served(tmp_path, *lines):
    f = tmp_path / "layouts.csv"
    f.write_text(LAYOUT_HEADER + "\n".join(lines) + "\n")
    return validate_serving(serving_measurements.read(f), serving_row, str(f))


def test_expert_and_data_parallel_rows_are_served_in_their_layout(tmp_path):
    v = _served(tmp_path,
                "qwen3-30b-a3b,h100-sxm,vllm,2,1,1,2,8,500,16,50.0,10.0,",  # attention tp 2, experts spread over 2
                "qwen3-30b-a3b,h100-sxm,vllm,1,2,1,2,8,500,16,50.0,10.0,",  # attention dp 2: 4 requests a replica
                "qwen3-30b-a3b,h100-sxm,vllm,2,1,1,1,8,500,16,50.0,10.0,",  # experts split by tp alone
                "qwen3-30b-a3b,h100-sxm,trtllm,4,1,2,2,8,500,16,50.0,10.0,",  # experts split 2 ways, spread 2
                "qwen3-30b-a3b,h100-sxm,vllm,4,1,2,2,8,500,16,50.0,10.0,",  # not a layout vLLM runs
                "qwen3-30b-a3b,h100-sxm,trtllm,2,2,2,2,8,500,16,50.0,10.0,",  # split across replicas
                "qwen3-30b-a3b,h100-sxm,vllm,1,2,1,2,7,500,16,50.0,10.0,")  # 7 over 2 replicas
    h100, preset = hardware.load("h100-sxm"), models.get("qwen3-30b-a3b")
    expected = [(dict(tp=2, ep=2), 8, vllm), (dict(dp=2, ep=2), 4, vllm), (dict(tp=2), 8, vllm),
                (dict(tp=4, ep=2), 8, trtllm)]
    for p, (layout, c, engine) in zip(v.predictions, expected):
        direct = serve(lambda ph, o=BuildOptions(**layout): preset.build(ph, o), strategy(engine(h100).plan), h100,
                       engine=engine(h100), concurrency=c, prompt=500, output=16)
        assert (p.ttft_s, p.tpot_s) == (direct.ttft.mean, direct.tpot.mean), layout
    assert len(v.predictions) == 4
    assert dict(v.skipped) == {"not predicted: --tp 4 --ep 2": 1,
                               "ep 2 over part of the tp x dp = 4 GPUs (not modelled in serving yet)": 1,
                               "concurrency 7 not a multiple of dp 2": 1}


def test_a_label_for_the_checkpoints_own_4_bit_weights_builds_the_checkpoint(tmp_path):
    # aiconfigurator labels gpt-oss's MXFP4 experts nvfp4: the preset's own checkpoint (bf16 activations) is served
    (p,) = _served(tmp_path, "gpt-oss-20b,h100-sxm,vllm,1,1,1,1,4,500,16,50.0,10.0,nvfp4").predictions
    h100 = hardware.load("h100-sxm")
    own = serve(models.get("gpt-oss-20b").build, strategy("vllm"), h100, engine=vllm(h100), concurrency=4,
                prompt=500, output=16)
    assert (p.ttft_s, p.tpot_s) == (own.ttft.mean, own.tpot.mean)


def test_kimi_k2_int4_rows_store_the_routed_experts_as_int4_in_groups_of_32():
    # Kimi-K2.5 / K2-Thinking's model cards: INT4 (QAT) on the MoE components; attention, the shared expert, the
    # dense first layer and lm_head stay bf16
    from opgraph.choices import CHECKPOINT_FORMATS
    from opgraph.models import quantization
    fmt = quantization.read(CHECKPOINT_FORMATS["kimi-k2", "int4_wo"], "test")
    experts = fmt.dtype_for("mlp.experts.gate_up_proj")
    assert (experts.name, experts.group_size, experts.scale_bits) == ("int4", 32, 16)
    for kept in ("self_attn.q_a_proj", "self_attn.kv_b_proj", "mlp.shared_experts.down_proj", "mlp.gate_proj",
                 "lm_head", "mlp.gate"):
        assert fmt.dtype_for(kept) is None, kept


@pytest.mark.parametrize("text, says", [
    ("model,gpu\nx,y\n", "needs the columns model, gpu, engine.*missing engine"),
    (HEADER + "llama-3-8b,h100-sxm,vllm,one,1,4,500,16,50,10,,\n", "row 1: column tp: 'one' is not an integer"),
    (HEADER + "llama-3-8b,h100-sxm,vllm,1,1,4,500,16,-5,10,,\n", "row 1: column ttft_ms: '-5' must be above 0"),
    (HEADER, "no measurements"),
])
def test_bad_serving_files_say_where(tmp_path, text, says):
    f = tmp_path / "s.csv"
    f.write_text(text)
    if "ttft_ms" not in text.splitlines()[0]:  # not recognised as serving rows: read as kernel timings
        r = opgraph("validate", str(f))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        with pytest.raises(OpgraphError, match=says):
            serving_measurements.read(f)
        return
    r = opgraph("validate", str(f))
    assert r.returncode == 2 and says.split(".*")[0].replace("\\", "") in r.stderr.replace("\\", ""), r.stderr


def test_flags_that_belong_to_serving_rows_are_refused_for_kernel_rows(tmp_path):
    f = tmp_path / "k.csv"
    f.write_text("class,dtype,time_us,m,n,k\ngemm,bf16,10,8,4096,4096\n")
    r = opgraph("validate", str(f), "--protocol", "steady")
    assert r.returncode == 2 and "--protocol applies to serving rows" in r.stderr


def test_whole_prompt_engines_get_a_budget_the_prompt_fits_in(tmp_path):
    """A TensorRT-LLM row of 8,192-token prompts at concurrency 4 runs with a budget of 8,195 tokens (the prompt beside
    the other 3 requests' decodes, one token each), as such a benchmark must be configured: the same as serving it so."""
    import attrs
    from opgraph.analysis.serve import trtllm
    from opgraph.analysis.serving_validate import configured
    f = tmp_path / "s.csv"
    f.write_text(HEADER + "llama-3-8b,h100-sxm,trtllm,1,1,4,8192,16,500,10,,\n")
    (row,) = serving_measurements.read(f)
    (p,) = validate_serving([row], serving_row).predictions
    h100 = hardware.load("h100-sxm")
    assert trtllm(h100).max_batched_tokens < 8192 + 3  # the default would not take the prompt beside the decodes
    assert configured(trtllm(h100), row).max_batched_tokens == 8192 + 3
    engine = attrs.evolve(trtllm(h100), max_batched_tokens=8192 + 3)
    direct = serve(models.get("llama-3-8b").build, strategy("trtllm"), h100, engine=engine, concurrency=4,
                   prompt=8192, output=16)
    assert (p.ttft_s, p.tpot_s) == (direct.ttft.mean, direct.tpot.mean)


def test_a_rows_token_budget_is_the_engines(tmp_path):
    # an SGLang row whose recipe set --chunked-prefill-size 32768 is served with that budget, not the engine's 8,192:
    # one wave of 16 prompts of 4,000 tokens is prefilled 8 to an iteration, not 2
    f = tmp_path / "budget.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,max_batch_tokens\n"
                 "llama-3-8b,h200,sglang,1,16,4000,16,50.0,10.0,32768\nllama-3-8b,h200,sglang,1,16,4000,16,50.0,10.0,\n")
    given, default = validate_serving(serving_measurements.read(f), serving_row, str(f), protocol="wave").predictions
    h200 = hardware.load("h200")
    for p, budget in ((given, 32768), (default, sglang(h200).max_batched_tokens)):
        engine = attrs.evolve(sglang(h200), max_batched_tokens=budget)
        s = serve(models.get("llama-3-8b").build, strategy("sglang"), h200, engine=engine, concurrency=16,
                  prompt=4000, output=16, queue=True, requests=16)
        assert (p.ttft_s, p.tpot_s) == (s.ttft.mean, s.tpot.mean)
    assert sglang(h200).max_batched_tokens == 8192 and given.ttft_s != default.ttft_s


def test_the_extract_gives_inferencex_deepseek_trtllm_rows_their_recipes_budget():
    # dsr1_fp8_h200_trt_slurm.sh: MAX_NUM_TOKENS = (CONC + ISL + 64) rounded up to 64, at least 8,192 from 2026-01-21
    import csv
    import gzip
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    rows = [r for r in csv.DictReader(gzip.open(data, "rt")) if r["engine"] == "trtllm" and r["model"] == "deepseek-r1"
            and r["gpu"] == "h200" and r["prompt_tokens"] == "1024" and r["concurrency"] in ("4", "64")]
    budgets = {(r["measured_date"], r["concurrency"]): r["max_batch_tokens"] for r in rows}
    assert budgets[("2025-11-02", "4")] == str(-(-(4 + 1024 + 64) // 64) * 64) == "1152"
    assert budgets[("2026-01-28", "64")] == "8192"  # 1,152 raised to the floor


def test_the_extract_gives_dynamo_trtllm_rows_the_generators_budget():
    # aiconfigurator's generator, aggregated TensorRT-LLM worker: max_batch_size = the batch, max_num_tokens =
    # batch + isl + 1500, chunked prefill off (rule_plugin/trtllm.rule); the campaign's TensorRT-LLM 1.0.0rc3 runs only
    import csv
    import gzip
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    rows = [r for r in csv.DictReader(gzip.open(data, "rt")) if r["data_source_kind"] == "aic-auto-gap-analysis"]
    qwen = [r for r in rows if r["engine_version"] == "1.0.0rc3" and r["model"] == "qwen3-32b" and r["tp"] == "8"
            and r["concurrency"] == "64" and r["prompt_tokens"] == "4096" and r["output_tokens"] == "512"]
    assert [r["max_batch_tokens"] for r in qwen] == ["5660"]  # 64 + 4,096 + 1,500
    assert len([r for r in rows if r["engine_version"] == "1.0.0rc3" and r["max_batch_tokens"]]) == 479
    assert not [r for r in rows if r["engine_version"] != "1.0.0rc3" and r["max_batch_tokens"]]  # vLLM, SGLang, later


def test_the_extract_gives_dynamo_rows_the_generators_kv_cache_and_memory_setting():
    # aiconfigurator's SDK keeps an fp8 KV cache whenever it picks fp8 GEMMs on the H100 and later (sdk/task.py
    # _get_quant_mode), and its generator passes that dtype to every engine; its TensorRT-LLM templates set
    # free_gpu_memory_fraction 0.80; InferenceX's rows keep their recipes' settings
    import csv
    import gzip
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    rows = list(csv.DictReader(gzip.open(data, "rt")))
    dynamo = [r for r in rows if r["data_source_kind"] == "aic-auto-gap-analysis"]
    for r in dynamo:
        assert r["kv_dtype"] == ("fp8" if r["gemm_quant_mode"] in ("fp8", "fp8_block", "nvfp4") else ""), r["source_id"]
        assert r["memory_fraction"] == ("0.8" if r["engine"] == "trtllm" else ""), r["source_id"]
    assert {r["engine"] for r in dynamo if r["kv_dtype"]} == {"vllm", "sglang", "trtllm"}
    assert not [r for r in rows if r["data_source_kind"] != "aic-auto-gap-analysis" and r["memory_fraction"]]
    llama_70b = [r for r in rows if r["data_source_kind"] == "dated-csv" and r["model"] == "llama-3-70b"
                 and r["engine"] == "vllm" and r["gpu"] == "h100-sxm"]
    assert llama_70b and all(r["kv_dtype"] == "fp8" for r in llama_70b)  # its recipe's kv-cache-dtype fp8


def test_the_extract_counts_each_measurement_once():
    # one run exported twice (InferenceX's database dump and its dated CSVs) has the same GPU, engine, layout,
    # lengths, concurrency and the same TTFT and TPOT to 0.1 us; exactly one copy of each such group stays unflagged
    import csv
    import gzip
    from collections import defaultdict
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    groups = defaultdict(list)
    for r in csv.DictReader(gzip.open(data, "rt")):
        groups[tuple(r[c] for c in ("gpu", "engine", "tp", "pp", "dp", "moe_tp", "ep", "concurrency", "prompt_tokens",
                                    "output_tokens", "ttft_ms", "tpot_ms"))].append(r)
    copies = [g for g in groups.values() if len(g) > 1]
    assert copies  # the file has such copies: the check below is not vacuous
    for g in copies:
        assert sum("duplicate" not in r["flags"].split(";") for r in g) == 1
        kept = next(r for r in g if "duplicate" not in r["flags"].split(";"))
        # a dated CSV's copy is kept over the dump's (it names the run's date and image)
        assert kept["data_source_kind"] == "dated-csv" or "dated-csv" not in {r["data_source_kind"] for r in g}
    # the dump's DeepSeek "V3" rows on the H200 are its ``dsr1_`` runs, the same as the dated CSVs' DeepSeek-R1 rows
    v3 = [r for g in copies for r in g if r["gpu"] == "h200" and r["model"] == "deepseek-v3"]
    assert v3 and all(r["source_id"].startswith("dsr1_") and "duplicate" in r["flags"] for r in v3)


def test_the_extract_flags_inferencex_deepseek_trtllm_runs_its_sources_show_ran_mtp():
    # InferenceX's sweep of 2026-01-14 (PR #392) ran only the -mtp configs; on the H200 only the MTP config goes above
    # concurrency 64; its runs of 2025-11-02 predate the MTP configs
    import csv
    import gzip
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    rows = [r for r in csv.DictReader(gzip.open(data, "rt")) if r["engine"] == "trtllm" and r["gpu"] == "h200"
            and r["model"] == "deepseek-r1"]
    mtp = lambda r: "mtp" in r["flags"].split(";")  # noqa: E731
    by_date = {d: [mtp(r) for r in rows if r["measured_date"] == d] for d in ("2025-11-02", "2026-01-14")}
    assert by_date["2026-01-14"] and all(by_date["2026-01-14"])
    assert by_date["2025-11-02"] and not any(by_date["2025-11-02"])
    assert all(mtp(r) for r in rows if int(r["concurrency"]) > 64)
    assert not any(mtp(r) for r in csv.DictReader(gzip.open(data, "rt")) if r["engine"] != "trtllm")


def test_a_duplicate_row_is_skipped_by_name(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,flags\n"
                 "llama-3-8b,h200,vllm,1,4,500,16,50.0,10.0,\nllama-3-8b,h200,vllm,1,4,500,16,50.0,10.0,duplicate\n")
    v = validate_serving(serving_measurements.read(f), serving_row, str(f))
    assert len(v.predictions) == 1 and dict(v.skipped) == {"flagged duplicate": 1}


def test_a_bad_token_budget_names_the_column(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,max_batch_tokens\n"
                 "llama-3-8b,h200,vllm,1,16,4000,16,50.0,10.0,lots\n")
    with pytest.raises(OpgraphError, match="row 1: column max_batch_tokens: 'lots' is not an integer"):
        serving_measurements.read(f)


def test_a_rows_fp8_kv_cache_is_built_and_halves_the_cache_it_reads(tmp_path):
    # the row is served with fp8 weights whose GEMMs quantize their bf16 input (W8A8, as vLLM runs an fp8 checkpoint)
    # and an fp8 KV cache; its decodes read half the KV bytes (long outputs:
    # its iterations mostly decodes, whose time that changes, not prompts' launched kernel by kernel)
    f = tmp_path / "kv.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,gemm_quant_mode,kv_dtype\n"
                 "llama-3-70b,h200,vllm,8,64,1024,1024,50.0,10.0,fp8,fp8\n"
                 "llama-3-70b,h200,vllm,8,64,1024,1024,50.0,10.0,fp8,\n"
                 "llama-3-70b,h200,vllm,8,64,1024,1024,50.0,10.0,,fp8\n")
    rows = serving_measurements.read(f)
    from opgraph.analysis.serving_validate import precision
    from opgraph.core.tensor import BF16, FP8, Precision
    w8a8 = attrs.evolve(FP8, tensor_bits=32, quantizes_input=True)  # one fp32 scale per matrix
    assert precision(rows[0]) == Precision(weight=w8a8, act=BF16, kv=FP8)
    assert precision(rows[1]) == Precision(weight=w8a8, act=BF16, kv=BF16)
    v = validate_serving(rows, serving_row, str(f))
    fp8_kv, bf16_kv = v.predictions
    assert fp8_kv.tpot_s < bf16_kv.tpot_s  # decode attention reads half the bytes
    assert dict(v.skipped) == {"not predicted: a KV cache in fp8 beside the preset's own storage (not built as "
                               "measured)": 1}


def test_the_rows_engine_settings_are_in_the_json(tmp_path):
    f = tmp_path / "settings.csv"
    f.write_text("model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms,gemm_quant_mode,"
                 "max_batch_tokens,kv_dtype\nllama-3-8b,h200,vllm,1,4,500,16,50.0,10.0,fp8,16384,fp8\n"
                 "llama-3-8b,h200,vllm,1,4,500,16,50.0,10.0,,,\n")
    r = opgraph("validate", str(f), "--format", "json")
    assert r.returncode == 0, r.stderr
    given, default = json.loads(r.stdout)["rows"]
    assert (given["max_batch_tokens"], given["kv_dtype"], given["moe_kernel"]) == (16384, "fp8", None)
    assert (default["max_batch_tokens"], default["kv_dtype"], default["moe_kernel"]) == (None, None, None)


def test_each_rows_layout_is_in_its_json_row_and_in_the_largest_errors(tmp_path):
    from opgraph.render import render
    v = _served(tmp_path, "qwen3-30b-a3b,h100-sxm,vllm,1,2,1,2,8,500,16,50.0,10.0,",
                "qwen3-30b-a3b,h100-sxm,trtllm,4,1,2,2,8,500,16,50.0,10.0,")
    rows = json.loads(render(v, "json"))["rows"]
    assert [(r["tp"], r["pp"], r["dp"], r["ep"]) for r in rows] == [(1, 1, 2, 2), (4, 1, 1, 2)]
    text = render(v, "table")
    assert "dp 2 x ep 2, c 8, 500 -> 16" in text and "tp 4 x ep 2 (2 groups of 2), c 8, 500 -> 16" in text


def test_a_rows_scheduling_column_serves_it_async_or_sync(tmp_path):
    """A row whose engine scheduled synchronously (vLLM before 0.14 without --async-scheduling) is served so: its
    engine's own time per iteration adds to each iteration's kernels where vLLM's async default hides it behind them,
    so its TPOT is longer, as `serve --scheduling sync` gives; a value other than async or sync is refused naming the
    column."""
    import json
    from serving_csv import predicted, serving_csv
    from userland import opgraph
    row = "llama-3-8b,h100-sxm,vllm,1,8,1000,200,100,10"
    path = serving_csv(tmp_path, "scheduling", f"{row},sync", f"{row},", f"{row},async")
    synced, default, given = predicted(path)
    assert default.ttft_s == given.ttft_s and default.tpot_s == given.tpot_s < synced.tpot_s
    args = ["serve", "llama-3-8b", "--concurrency", "8", "--prompt", "1000", "--output", "200", "--format", "json"]
    for p, how in ((synced, "sync"), (default, "async")):
        served = json.loads(opgraph(*args, "--scheduling", how).stdout)
        assert (p.ttft_s, p.tpot_s) == pytest.approx((served["ttft_s"], served["tpot_s"]), rel=1e-9)
    # the JSON says which rows gave a scheduling (null: the engine's default)
    rows = json.loads(opgraph("validate", str(path), "--format", "json").stdout)["rows"]
    assert [r["scheduling"] for r in rows] == ["sync", None, "async"]
    bad = serving_csv(tmp_path, "scheduling", f"{row},overlap")
    with pytest.raises(OpgraphError, match="row 1: column scheduling: 'overlap' is not one of: empty, async, sync"):
        serving_measurements.read(bad)


def test_a_rows_memory_fraction_is_its_engines_memory_setting(tmp_path):
    """A TensorRT-LLM row whose deployment set free_gpu_memory_fraction 0.8 is served with its KV cache 0.8 of what the
    weights and activations leave (as `serve --memory-fraction 0.8` gives), so a load that fits 0.9 of them queues;
    a share above 1 is refused naming the column, and the JSON row says the setting (null: the engine's default)."""
    import json
    from serving_csv import predicted, serving_csv
    from userland import opgraph
    from opgraph.analysis.serve import kv_blocks, trtllm
    from opgraph.analysis.serving_validate import configured
    h100 = hardware.load("h100-sxm")
    build = models.get("llama-3-8b").build
    at_09, per_request = kv_blocks(build, strategy("trtllm"), h100, trtllm(h100), 4096 + 256)
    # a concurrency the default cache holds but 0.8 of it does not
    c = at_09 // per_request
    assert c * per_request > at_09 * 0.8 / 0.9
    row = f"llama-3-8b,h100-sxm,trtllm,1,{c},4096,256,100,10"
    path = serving_csv(tmp_path, "memory_fraction,max_batch_tokens", f"{row},0.8,{c + 4096 + 1500}",
                       f"{row},,{c + 4096 + 1500}")
    given, default = serving_measurements.read(path)
    assert configured(trtllm(h100), given).kv_share == 0.8 and configured(trtllm(h100), default).kv_share == 0.9
    at_08, _ = kv_blocks(build, strategy("trtllm"), h100, configured(trtllm(h100), given), 4096 + 256)
    own_09, _ = kv_blocks(build, strategy("trtllm"), h100, configured(trtllm(h100), default), 4096 + 256)
    assert abs(at_08 - own_09 * 0.8 / 0.9) < 1  # the same budget (activations), the other share
    smaller, own = predicted(path)
    assert smaller.ttft_s > own.ttft_s  # the requests the smaller cache cannot hold wait for room
    rows = json.loads(opgraph("validate", str(path), "--format", "json").stdout)["rows"]
    assert [r["memory_fraction"] for r in rows] == [0.8, None]
    bad = serving_csv(tmp_path, "memory_fraction", f"{row},1.5")
    with pytest.raises(OpgraphError, match="row 1: column memory_fraction: '1.5' is a share .*, at most 1"):
        serving_measurements.read(bad)


def test_engine_figures_given_for_every_row_serve_each_as_its_engine_with_them(measured):
    """What a fit of an engine constant tries (benchmarks/engine_grid.py): the figures reach every row's engine, as
    `serve` gets them directly, and a sync host time of 10 ms an iteration adds 10 ms to each iteration a request's
    tokens span (a steady loop's schedule does not depend on how long an iteration takes): its 15 decode steps after
    the first token and, SGLang prefilling each newcomer in an iteration of its own, the prompts of the 3 others'
    successors, so 10 ms x 18 / 15 a token."""
    rows = serving_measurements.read(measured)
    figures = dict(overhead_s=0.010, overhead_per_request_s=0.0, scheduling="sync")
    p, _ = validate_serving(rows, serving_row, figures=figures).predictions
    h100 = hardware.load("h100-sxm")
    engine = attrs.evolve(sglang(h100), overhead_per_request_s=0.0, scheduling="sync")
    direct = serve(models.get("llama-3-8b").build, strategy("sglang"), h100, engine=engine, overhead_s=0.010,
                   queue=True, concurrency=4, prompt=500, output=16)
    assert (p.ttft_s, p.tpot_s) == (direct.ttft.mean, direct.tpot.mean)
    none, _ = validate_serving(rows, serving_row, figures={**figures, "overhead_s": 0.0}).predictions
    assert p.tpot_s - none.tpot_s == pytest.approx(0.010 * 18 / 15, rel=1e-9)
