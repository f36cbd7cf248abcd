"""`opgraph validate` of measured disaggregated serving (issue 17 §4 and §7): a row that gives its prefill and decode
workers is served as `opgraph serve --disaggregate` serves the same deployment, its client's requests spread over
every decode replica. Expected figures come from `serve --disaggregate` run on the command line, a path of its own
(opgraph.runs), and the client's definition (srt-slurm's sa-bench: 5 x C requests, lengths from 0.8 of the row's)."""

import json

import pytest

from opgraph.analysis.serving_validate import load, validate_serving
from opgraph.choices import serving_row
from opgraph.errors import OpgraphError
from opgraph.files import serving_measurements
from serving_csv import serving_csv
from userland import opgraph

POOLS = "decode_workers,prefill_workers,prefill_tp,prefill_dp,prefill_ep,client"


def _serve(*args: str) -> dict:
    r = opgraph("serve", "llama-3-8b", "--hardware", "h100-sxm", "--engine", "vllm", *args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_disaggregated_row_reads_its_pools_and_spreads_its_concurrency_over_the_decode_replicas(tmp_path):
    # 2 decode workers of dp 2: 4 replicas, so a client's 32 requests are 8 a replica
    f = serving_csv(tmp_path, f"dp,{POOLS}", "qwen3-30b-a3b,h100-sxm,vllm,1,32,1000,200,90.0,9.0,2,2,1,2,1,1,steady")
    (row,) = serving_measurements.read(f)
    assert row.disaggregated and (row.decode_workers, row.prefill) == (2, (1, 2, 1, 1))
    assert (row.replicas, row.replica_concurrency) == (4, 8)


@pytest.mark.parametrize("given", ["decode_workers\n2", "prefill_workers\n1", "prefill_tp\n2"])
def test_the_pool_columns_come_together(tmp_path, given):
    header, value = given.split("\n")
    f = serving_csv(tmp_path, header, f"llama-3-8b,h100-sxm,vllm,1,16,1000,200,90.0,9.0,{value}")
    with pytest.raises(OpgraphError, match="row 1: columns decode_workers and prefill_workers: a disaggregated row "
                                           "gives both"):
        serving_measurements.read(f)


def test_a_disaggregated_row_steady_is_serves_closed_form(tmp_path):
    # 1 prefill worker of tp 1, 2 decode workers of tp 1; the client's 16 requests are 8 a decode replica
    expected = _serve("--disaggregate", "1p2d", "--prefill", "tp=1", "--decode", "tp=1", "--concurrency", "8",
                      "--prompt", "1000", "--output", "200")
    f = serving_csv(tmp_path, POOLS, "llama-3-8b,h100-sxm,vllm,1,16,1000,200,90.0,9.0,2,1,1,1,1,steady")
    (p,) = validate_serving(serving_measurements.read(f), serving_row, str(f)).predictions
    assert (p.ttft_s, p.tpot_s) == pytest.approx((expected["ttft_s"], expected["tpot_s"]), rel=1e-12)
    assert p.tpot_error == (p.tpot_s - 0.009) / 0.009


def test_sa_bench_is_five_rounds_of_every_decode_replicas_concurrency_at_drawn_lengths(tmp_path):
    f = serving_csv(tmp_path, POOLS, "llama-3-8b,h100-sxm,vllm,1,16,1000,200,90.0,9.0,2,1,1,1,1,sa-bench")
    (row,) = serving_measurements.read(f)
    # srt-slurm's sa-bench: --num-prompts concurrency x 5, --random-range-ratio 0.8, the first C sent at once
    assert load(row, "sa-bench") == dict(concurrency=8, requests=40, prompt=(800, 1000), output=(160, 200))
    expected = _serve("--disaggregate", "1p2d", "--prefill", "tp=1", "--decode", "tp=1", "--concurrency", "8",
                      "--prompt", "800:1000", "--output", "160:200", "--requests", "80")["event_run"]
    (p,) = validate_serving(serving_measurements.read(f), serving_row, str(f)).predictions
    assert (p.ttft_s, p.tpot_s) == pytest.approx((expected["ttft_s_stats"]["mean"], expected["tpot_s_stats"]["mean"]), rel=1e-12)
    assert p.protocol == "sa-bench"


def test_the_report_names_each_groups_serving_and_a_rows_workers(tmp_path):
    f = serving_csv(tmp_path, POOLS, "llama-3-8b,h100-sxm,vllm,1,16,1000,200,90.0,9.0,2,1,1,1,1,steady",
                    "llama-3-8b,h100-sxm,vllm,1,8,1000,200,90.0,9.0,,,,,,steady")
    r = opgraph("validate", str(f))
    assert r.returncode == 0, r.stderr
    assert "llama-3-8b  aggregated" in r.stdout and "llama-3-8b  disaggregated" in r.stdout
    assert "1p2d: prefill 1 GPU, decode 1 GPU, c 16, 1,000 -> 200" in r.stdout
    rows = json.loads(opgraph("validate", str(f), "--format", "json").stdout)["rows"]
    assert [(r["serving"], r["decode_workers"], r["prefill_workers"], r["prefill_tp"]) for r in rows] == [
        ("disaggregated", 2, 1, 1), ("aggregated", None, None, None)]
    csv = opgraph("validate", str(f), "--format", "csv")  # one header for both kinds of row
    assert csv.returncode == 0, csv.stderr
    header, disaggregated, aggregated = csv.stdout.splitlines()
    assert "prefill_tp" in header.split(",") and len(disaggregated.split(",")) == len(aggregated.split(","))


def test_a_prefill_worker_whose_experts_spread_over_part_of_it_is_skipped_by_name(tmp_path):
    f = serving_csv(tmp_path, POOLS, "qwen3-30b-a3b,h100-sxm,vllm,1,16,1000,200,90.0,9.0,2,1,4,1,8,steady")
    v = validate_serving(serving_measurements.read(f), serving_row, str(f))
    assert not v.predictions and v.skipped == (
        ("prefill_ep 8 over part of the prefill_tp x prefill_dp = 4 GPUs (not modelled in serving yet)", 1),)
