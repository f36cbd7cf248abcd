"""Chunked prefill as each engine cuts it (issue 17 §2, the engines' scheduling rules). TensorRT-LLM with
enable_chunked_prefill gives each prompt, first come first served, the token budget the decodes leave, cut down to a
whole number of its chunk unit (tokens_per_block, 32) but a prompt's last chunk (MicroBatchScheduler::
setCtxRequestsChunkSize, kFIRST_COME_FIRST_SERVED, in cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp); vLLM
cuts at any token. The expected chunks follow from that rule by hand."""

import json

import attrs
import pytest

from opgraph import hardware, models, strategy
from opgraph.analysis import engine_run
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.serve import trtllm, vllm, with_chunking
from userland import opgraph

H100 = hardware.load("h100-sxm")
LLAMA = models.get("llama-3-8b")


def scheduled(engine, lengths, concurrency=2, requests=2):
    """A benchmark of `requests` requests of the given (prompt, output) lengths in turn, every one waiting at the start:
    the run (its chunks: iteration, tokens, tokens before)."""
    it = iter(lengths * requests)
    return engine_run.schedule(engine, 0, 10**6, 0, lambda p: 0, lambda: next(it), lambda tokens: None,
                               concurrency=concurrency, requests=requests, warmup=0, measure=requests)


def chunks(run) -> list[tuple[int, int, int]]:
    return list(zip(run.chunk_at, run.chunk_tokens, run.chunk_past))


def test_tensorrt_llm_cuts_chunks_to_whole_kv_blocks():
    # a budget of 8,200 tokens: 8,200 // 32 x 32 = 8,192 a cut chunk. Iteration 0: request 0 takes 8,192, request 1
    # the 8 left, under a unit: nothing. 1: request 0 8,192 more. 2: request 0's last 3,616 (20,000 - 16,384) whole,
    # request 1 the 4,584 left, cut to 4,576. 3: request 0 decodes (1 token), request 1 8,199 cut to 8,192. 4: its last
    # 20,000 - 12,768 = 7,232 whole
    engine = attrs.evolve(with_chunking(trtllm(H100), True), max_batched_tokens=8200)
    run = scheduled(engine, [(20000, 16)])
    assert chunks(run)[:6] == [(0, 8192, 0), (1, 8192, 8192), (2, 3616, 16384), (2, 4576, 0), (3, 8192, 4576),
                               (4, 7232, 12768)]
    assert run.first[:2] == [2, 4]
    # vLLM cuts at any token: 8,200 and 8,200, then 3,600 and the 4,600 left of the budget
    run = scheduled(attrs.evolve(vllm(H100), max_batched_tokens=8200), [(20000, 16)])
    assert chunks(run)[:4] == [(0, 8200, 0), (1, 8200, 8200), (2, 3600, 16400), (2, 4600, 0)]


def test_a_prompt_that_ends_behind_one_still_prefilling_gets_its_first_token_then():
    # vLLM's --chunk 512 over prompts of 4,000 and 100 tokens: the long one takes 512 an iteration (8 iterations,
    # 0-7: 7 x 512 + 416), the short one all of its 100 in iteration 0; each samples its first token in the iteration
    # that prefills its last prompt token
    run = scheduled(attrs.evolve(vllm(H100), chunk=512), [(4000, 50), (100, 50)])
    assert chunks(run)[:3] == [(0, 512, 0), (0, 100, 0), (1, 512, 512)]
    assert run.first[:2] == [7, 0]


def test_a_prompt_alone_runs_in_chunks_of_whole_units():
    # a prefill worker's prompt of 20,000 tokens under a budget of 8,200: 8,192, 8,192 and 3,616 with TensorRT-LLM's
    # units (8,200, 8,200 and 3,600 without), the last sampling
    pricer = IterationPricer(LLAMA.build, strategy("trtllm"), H100)
    expected = [pricer.price_mix(n, int(n + j == 20000), [(1, (n, j))]).expected_s
                for n, j in ((8192, 0), (8192, 8192), (3616, 16384))]
    assert pricer.prompt_chunks(20000, 8200, unit=32) == expected
    assert pricer.prompt_chunks(20000, 8200) == [pricer.price_mix(n, int(n + j == 20000), [(1, (n, j))]).expected_s
                                                 for n, j in ((8200, 0), (8200, 8200), (3600, 16400))]


def test_the_command_line_turns_chunked_prefill_on_and_off():
    common = ["serve", "--engine", "trtllm", "--concurrency", "4", "--prompt", "20000", "--output", "16"]
    r = opgraph(*common)
    assert r.returncode == 2 and "--chunked-prefill" in r.stderr and "Traceback" not in r.stderr
    r = opgraph(*common, "--chunked-prefill", "--format", "json")
    assert r.returncode == 0, r.stderr
    engine = json.loads(r.stdout)["engine"]
    assert engine["chunked_prefill"] and engine["chunk_unit_tokens"] == 32
    assert "chunked prefill on given" in engine["source"]
    for fmt in ("table", "html"):  # the scheduler's rules, in the text and on the page
        r = opgraph(*common, "--chunked-prefill", "--format", fmt)
        assert "scheduler: chunked prefill in units of 32 tokens, decodes first" in r.stdout, fmt
    # TensorRT-LLM's chunks are whole 32-token blocks: a budget below one never takes a longer prompt
    r = opgraph(*common, "--chunked-prefill", "--max-batch-tokens", "20")
    assert r.returncode == 2 and "chunks of whole 32-token units, and none fits; give at least 32" in r.stderr
    # a disaggregated prefill worker without chunked prefill takes a prompt whole too
    r = opgraph(*common, "--disaggregate", "1p1d")
    assert r.returncode == 2 and "runs a prompt whole" in r.stderr and "Traceback" not in r.stderr
    r = opgraph("serve", "--concurrency", "4", "--prompt", "20000", "--output", "16", "--no-chunked-prefill")
    assert r.returncode == 2 and "vllm without chunked prefill runs a prompt whole" in r.stderr
    for args, says in ((["--engine", "sglang", "--no-chunked-prefill"], "SGLang without chunked prefill"),
                       (["--no-chunked-prefill", "--chunk", "512"], "give one")):
        r = opgraph("serve", "--concurrency", "4", "--prompt", "2000", "--output", "16", *args)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_a_serving_plan_takes_chunked_prefill_and_says_so():
    r = opgraph("plan", "--gpus", "2", "--engine", "trtllm", "--concurrency", "4", "--prompt", "20000", "--output",
                "16", "--chunked-prefill")
    assert r.returncode == 0 and "chunked prefill in units of 32 tokens, decodes first, prompts mixed in, given " \
        "(--chunked-prefill)" in r.stdout, r.stderr
    for flag in ("--chunked-prefill", "--no-chunked-prefill"):  # either, without a load to serve, is refused
        r = opgraph("plan", "--gpus", "2", flag)
        assert r.returncode == 2 and "--chunked-prefill plans serving in flight" in r.stderr, flag


def test_a_rows_chunked_prefill_column_serves_it_so(tmp_path):
    """A TensorRT-LLM row measured with enable_chunked_prefill is served with it, as `serve --chunked-prefill` serves
    it (its 20,000-token prompts in chunks beside the decodes, where without it they would be refused, or given a
    budget that takes them whole); off for SGLang is refused naming the column."""
    from opgraph.errors import OpgraphError
    from opgraph.files import serving_measurements
    from serving_csv import predicted, serving_csv
    row = "llama-3-8b,h100-sxm,trtllm,1,4,20000,16,100,10"
    path = serving_csv(tmp_path, "chunked_prefill", f"{row},on", f"{row},")
    chunked, whole = predicted(path)
    args = ["serve", "llama-3-8b", "--engine", "trtllm", "--concurrency", "4", "--prompt", "20000", "--output", "16",
            "--format", "json"]
    # without the column, whole, with a budget of 20,003 tokens: the prompt beside the other 3 requests' decodes
    for p, given in ((chunked, ["--chunked-prefill"]), (whole, ["--max-batch-tokens", "20003"])):
        served = json.loads(opgraph(*args, *given).stdout)
        assert (p.ttft_s, p.tpot_s) == pytest.approx((served["ttft_s"], served["tpot_s"]), rel=1e-9)
    assert chunked.tpot_s != whole.tpot_s
    rows = json.loads(opgraph("validate", str(path), "--format", "json").stdout)["rows"]
    assert [r["chunked_prefill"] for r in rows] == ["on", None]
    bad = serving_csv(tmp_path, "chunked_prefill", "llama-3-8b,h100-sxm,sglang,1,4,2000,16,100,10,off")
    with pytest.raises(OpgraphError, match="row 1: column chunked_prefill: 'off' is not modelled for sglang"):
        serving_measurements.read(bad)
    bad = serving_csv(tmp_path, "chunked_prefill", f"{row},yes")
    with pytest.raises(OpgraphError, match="column chunked_prefill: 'yes' is not one of: empty, on, off"):
        serving_measurements.read(bad)


def test_a_plan_of_whole_prompts_longer_than_the_budget_says_so():
    # TensorRT-LLM without chunked prefill: no layout can run a 20,000-token prompt in 8,192 tokens an iteration,
    # which the plan says once, not as "no candidate" (it would have offered more GPUs); with a budget that takes it
    # the layouts are served, and a split's prefill workers, at the engine's own budget, are dropped saying why
    common = ["plan", "llama-3-8b", "--gpus", "2", "--engine", "trtllm", "--concurrency", "4", "--prompt", "20000",
              "--output", "16"]
    r = opgraph(*common)
    assert r.returncode == 2 and "runs a prompt whole" in r.stderr and "--chunked-prefill" in r.stderr
    r = opgraph(*common, "--max-batch-tokens", "24000", "--disaggregated", "--format", "json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["candidates"] and all(c["max_batch_tokens"] == 24000 and not c["disaggregated"]
                                      for c in plan["candidates"])
    assert any("a prefill worker's budget, the engine's own 8,192 tokens" in d["reason"] for d in plan["dropped"])
