"""Fusion plans as files: the shipped strategies, user plans in TOML and JSON, and clear errors."""

import json

import pytest

from opgraph import models
from opgraph import Phase, apply
from opgraph.files import planfile
from opgraph.errors import OpgraphError

LAYER = models.get("llama-3-8b").layer(Phase.prefill(1, 8))


def test_shipped_strategies_are_plan_files():
    assert planfile.names() == ["unfused", "flash", "fused", "megakernel", "sglang", "trtllm", "vllm"]
    kernels = {n: len(apply(planfile.load(n), LAYER).kernels) for n in planfile.names()}
    ops = len(LAYER.ops)
    # vllm: 18 ops less QKV's 2, rope's 1, attention's 2, add+norm's 1, gate_up's 1 and silu_and_mul's 1
    engine = ops - 8  # as vLLM, SGLang and TensorRT-LLM launch a Llama layer
    assert kernels == {"unfused": ops, "flash": ops - 2, "fused": 2, "megakernel": 1, "sglang": engine, "trtllm": engine,
                       "vllm": engine}


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_plan_with_rules_and_groups(tmp_path):
    p = write(tmp_path, "qkv.toml", """
name = "qkv-and-flash"
description = "fused QKV projection and a flash attention kernel"

[[rule]]
name = "attention core"
producer = ["qk", "softmax"]
consumer = ["softmax", "av"]

[[group]]
ops = ["q_proj", "k_proj", "v_proj"]
""")
    plan = planfile.load(str(p))
    part = apply(plan, LAYER)
    assert part.kernel_of["q_proj"] == part.kernel_of["k_proj"] == part.kernel_of["v_proj"]
    assert part.kernel_of["qk"] == part.kernel_of["softmax"] == part.kernel_of["av"]
    assert plan.name == "qkv-and-flash"


def test_json_plan_is_the_same_structure(tmp_path):
    p = write(tmp_path, "plan.json", json.dumps({
        "name": "norm-prologue",
        "rule": [{"name": "norm into matmuls", "producer": ["norm"], "consumer": ["matmul"]}]}))
    part = apply(planfile.load(str(p)), LAYER)
    assert part.kernel_of["q_proj"] == part.kernel_of["input_layernorm"]
    assert part.kernel_of["gate_proj"] == part.kernel_of["post_attention_layernorm"]


def test_never_rule_in_a_file(tmp_path):
    p = write(tmp_path, "mk.toml", """
name = "megakernel-but-cache"
[[rule]]
name = "never across a KV-cache write"
tensor = ["kv_cache"]
never = true
[[rule]]
name = "everything else"
""")
    part = apply(planfile.load(str(p)), LAYER)
    assert part.kernel_of["rope_k"] != part.kernel_of["qk"]


@pytest.mark.parametrize("text, message", [
    ('[[rule]]\nname = "x"\nprodcer = ["norm"]\n', "rule 1 ('x'): unknown key prodcer"),
    ('[[rule]]\nname = "x"\nproducer = ["nrom"]\n', "rule 1 ('x'): producer has unknown name nrom; valid:"),
    ('[[rule]]\nproducer = ["norm"]\n', "rule 1 ('unnamed'): needs a 'name'"),
    ('[[rule]]\nname = "x"\nnever = "yes"\n', "rule 1 ('x'): never must be true or false"),
    ('[[rule]]\nname = "x"\ntensor = ["kv"]\n', "tensor has unknown name kv"),
    ('[[group]]\nops = ["q_proj"]\n', "group 1 needs 'ops', a list of at least two op names"),
    ('rules = []\n', "unknown key rules"),
    ('rules = []\nfusion = 1\n', "unknown keys fusion, rules; valid:"),
    ('[[rule]]\nname = "x"\nproducer = ["nrom", "nrm"]\n', "producer has unknown names nrom, nrm; valid:"),
    ('name = = "broken"\n', "not valid TOML"),
])
def test_bad_plan_files_name_the_file_and_rule(tmp_path, text, message):
    p = write(tmp_path, "bad.toml", text)
    with pytest.raises(OpgraphError) as e:
        planfile.load(str(p))
    assert str(p) in str(e.value) and message in str(e.value)


def test_unknown_plan_name_and_missing_file():
    with pytest.raises(OpgraphError, match="valid: unfused, flash, fused, megakernel"):
        planfile.load("fusedd")
    with pytest.raises(OpgraphError, match="fusion plan file 'nope/plan.toml' does not exist"):
        planfile.load("nope/plan.toml")
