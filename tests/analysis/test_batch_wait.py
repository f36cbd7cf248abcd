"""TensorRT-LLM's batch waiting (issue 17 §2, the engines' scheduling rules): while requests decode, new prompts are
held until the iteration's tokens would come to batch_wait_max_tokens_ratio of max_num_tokens, or until they have
been held batch_wait_timeout_iters iterations (PyExecutor._waiting_requests in tensorrt_llm/_torch/pyexecutor). The
expected iteration counts follow from that rule by hand; the serving CSV's columns and `serve --batch-wait` carry it."""

import json

import attrs
import pytest

from opgraph import hardware
from opgraph.analysis import engine_run
from opgraph.analysis.serve import trtllm
from opgraph.errors import OpgraphError
from opgraph.files import serving_measurements
from serving_csv import predicted, serving_csv
from userland import opgraph


def waits(batch_wait, prompt=100, output=400, concurrency=4, measure=12):
    """Iterations from each measured request's arrival to the iteration that prefills it (1: the next one)."""
    engine = attrs.evolve(trtllm(hardware.load("h100-sxm")), batch_wait=batch_wait)
    run = engine_run.schedule(engine, 0, 10**6, 0, lambda p: 0, lambda: (prompt, output), lambda tokens: None,
                              concurrency=concurrency, requests=None, warmup=concurrency, measure=measure)
    arrived = [r for r in range(len(run.prompt)) if run.arrival[r] >= 0 and run.first[r] >= 0]
    assert len(arrived) >= measure
    return {run.first[r] - run.arrival[r] for r in arrived}


def test_a_prompt_short_of_the_ratio_waits_the_timeout_beside_decodes():
    # 100 prompt tokens + 3 decodes never come to 0.9 x 8,192: each newcomer (arrivals ~100 iterations apart, one
    # at a time) misses the iteration built when it was sent (the client's turnaround; TensorRT-LLM admits fresh
    # arrivals, no lookahead), so it can join the second; held 20 iterations from there, it is prefilled in the 22nd
    seen = 1 + engine_run.TURNAROUND
    assert seen == 2 and trtllm(hardware.load("h100-sxm")).admission_lag == 0
    assert waits((0.0, 0)) == {seen}
    assert waits((0.9, 20)) == {seen + 20}
    assert waits((0.9, 3)) == {seen + 3}


def test_a_prompt_that_reaches_the_ratio_is_not_held():
    # 100 + 3 tokens against 0.01 x 8,192 = 81.92: the ratio is met at once
    assert waits((0.01, 20)) == {1 + engine_run.TURNAROUND}


def test_nothing_waits_when_nothing_decodes():
    # a request alone: when it finishes, its replacement arrives to an idle engine (nothing built ahead of it, nor
    # decodes to hold it beside), which takes it at once
    assert waits((0.9, 20), concurrency=1) == {1}


def _serve(*extra):
    return opgraph("serve", "llama-3-8b", "--concurrency", "4", "--prompt", "512", "--output", "256", *extra)


def test_serve_batch_wait_option_and_its_errors():
    slow, plain = (_serve("--engine", "trtllm", *extra, "--format", "json")
                   for extra in (("--batch-wait", "0.9,20"), ()))
    assert slow.returncode == plain.returncode == 0, slow.stderr + plain.stderr
    slow, plain = json.loads(slow.stdout), json.loads(plain.stdout)
    # held 20 decode iterations of about the TPOT each
    assert slow["ttft_s"] - plain["ttft_s"] == pytest.approx(20 * plain["tpot_s"], rel=0.15)
    assert slow["engine"]["batch_wait"] == {"max_tokens_ratio": 0.9, "timeout_iters": 20}
    assert plain["engine"]["batch_wait"] is None
    r = _serve("--batch-wait", "0.9,20")
    assert r.returncode == 2 and "batch waiting is TensorRT-LLM's (--engine trtllm), not vllm's" in r.stderr
    for given, message in (("0.9", "is not RATIO,ITERS"), ("0.9,x", "is not RATIO,ITERS"),
                           ("1.5,20", "--batch-wait's RATIO must be"), ("0.9,0", "--batch-wait's ITERS must be")):
        r = _serve("--engine", "trtllm", "--batch-wait", given)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


BATCH_WAIT = "batch_wait_ratio,batch_wait_iters"


def test_a_rows_batch_wait_serves_it_so(tmp_path):
    row = "llama-3-8b,h100-sxm,trtllm,1,4,512,256,50.0,10.0,"
    waited, plain = predicted(serving_csv(tmp_path, BATCH_WAIT, row + "0.9,20", row + ","))
    assert waited.row.batch_wait == (0.9, 20) and plain.row.batch_wait == (0.0, 0)
    assert waited.ttft_s - plain.ttft_s == pytest.approx(20 * plain.tpot_s, rel=0.15)


@pytest.mark.parametrize("values, message", [
    ("vllm,1,4,512,256,50.0,10.0,0.9,20", "batch waiting is TensorRT-LLM's (engine trtllm), not vllm's"),
    ("trtllm,1,4,512,256,50.0,10.0,0.9,", "give both or neither"),
    ("trtllm,1,4,512,256,50.0,10.0,1.2,20", "column batch_wait_ratio: '1.2' is a share of the token budget"),
    ("trtllm,1,4,512,256,50.0,10.0,0.9,2.5", "column batch_wait_iters: '2.5' is not an integer"),
])
def test_bad_batch_wait_columns_name_the_column(tmp_path, values, message):
    f = serving_csv(tmp_path, BATCH_WAIT, "llama-3-8b,h100-sxm," + values)
    with pytest.raises(OpgraphError, match="row 1: column") as e:
        serving_measurements.read(f)
    assert message in str(e.value)


def test_the_extract_gives_inferencex_llama_70b_trtllm_1k_rows_below_tp_8_their_recipes_batch_waiting():
    # 70b_fp8_h200_trt_slurm.sh and the B200 ones (2025-09-18 to 2025-10-29): 0.9 and 20 for 1k/1k below TP 8
    import csv
    import gzip
    from pathlib import Path
    data = Path(__file__).parents[2] / "benchmarks" / "data" / "serving-measured.csv.gz"
    rows = [r for r in csv.DictReader(gzip.open(data, "rt")) if r["engine"] == "trtllm" and r["model"] == "llama-3-70b"
            and r["gpu"] == "h200"]
    given = [r for r in rows if r["batch_wait_ratio"]]
    assert given and all((r["batch_wait_ratio"], r["batch_wait_iters"]) == ("0.9", "20") for r in given)
    assert {(r["prompt_tokens"], r["output_tokens"]) for r in given} == {("1024", "1024")}
    assert {int(r["tp"]) for r in given} == {1, 2, 4}
    assert not any(r["batch_wait_ratio"] for r in rows if r["tp"] == "8" or r["output_tokens"] != "1024")
