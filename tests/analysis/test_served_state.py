"""The recurrent state as each engine keeps it (serve.STATE_KEYS, STATE_DEFAULT): vLLM reads the config's
mamba_ssm_cache_dtype (Nemotron-H) and mamba_ssm_dtype (Qwen3.5) and else keeps the model's dtype; SGLang reads
mamba_ssm_dtype and else keeps fp32; TensorRT-LLM keeps the model's dtype whatever the config says. Expected
values come from those engines' code (cited at serve.STATE_KEYS), not from opgraph: Qwen3-Next's config names no
state dtype, Nemotron-3 Nano's asks fp32 through mamba_ssm_cache_dtype, Qwen3.5's fp32 through mamba_ssm_dtype."""

import json

import pytest

from opgraph import models
from opgraph.analysis.serve import served_state_dtype
from opgraph.cli import main


@pytest.mark.parametrize("model, vllm, sglang, trtllm", [
    ("qwen3-next-80b-a3b", None, "fp32", None),  # built bf16: SGLang's default fp32 differs
    ("nemotron-3-nano-30b-a3b", None, None, "bf16"),  # built fp32: TensorRT-LLM does not read the config
    ("qwen3.5-397b-a17b", None, None, "bf16"),
    ("llama-3-8b", None, None, None),  # no recurrent state
])
def test_each_engine_keeps_the_state_its_way(model, vllm, sglang, trtllm):
    source = models.get(model)
    assert [served_state_dtype(e, source, "bf16") for e in ("vllm", "sglang", "trtllm")] == [vllm, sglang, trtllm]


def serve(capsys, *args):
    assert main(["serve", *args, "--hardware", "h100-sxm", "--tp", "8", "--concurrency", "32", "--prompt", "1000",
                 "--output", "200", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model, engine, same_as", [
    ("qwen3-next-80b-a3b", "sglang", "fp32"),
    ("nemotron-3-nano-30b-a3b", "trtllm", "bf16"),
])
def test_serve_keeps_the_engines_state_and_says_so(capsys, model, engine, same_as):
    served = serve(capsys, model, "--engine", engine)
    given = serve(capsys, model, "--engine", engine, "--state-dtype", same_as)
    said = [n for n in served.pop("notes") if "recurrent state" in n]
    assert said == [n for n in said if f"{engine} keeps the recurrent state in {same_as}" in n] and len(said) == 1
    assert not [n for n in given.pop("notes") if "recurrent state" in n]
    assert served == given
    # the state is real bytes: another dtype holds another number of KV-cache blocks
    other = serve(capsys, model, "--engine", engine, "--state-dtype", "bf16" if same_as == "fp32" else "fp32")
    assert other["kv_cache_blocks_per_gpu"] != served["kv_cache_blocks_per_gpu"]


def test_an_engine_that_keeps_the_config_says_nothing(capsys):
    served = serve(capsys, "nemotron-3-nano-30b-a3b", "--engine", "vllm")
    assert not [n for n in served["notes"] if "recurrent state" in n]
    assert served == {**serve(capsys, "nemotron-3-nano-30b-a3b", "--engine", "vllm", "--state-dtype", "fp32"),
                      "notes": served["notes"]}
