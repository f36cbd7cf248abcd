"""ModelOpt's MIXED_PRECISION checkpoints (NVIDIA's NVFP4 releases of Qwen3.6 and others): quantized_layers gives
each quantized module's algorithm by its full name, every other module stays at the model's dtype (vLLM's
ModelOptMixedPrecisionConfig). Built on the Qwen3.5-397B preset's config with a quantization_config laid out as
NVIDIA's Qwen3.6 NVFP4 one is: the experts and shared experts W4A16_NVFP4, full attention's projections and the
linear attention's out_proj FP8, lm_head W4A16_NVFP4, an FP8 KV cache."""

import copy
import json

import pytest

from opgraph import OpgraphError, Phase
from opgraph.cli import main
from opgraph.models import hf_config, presets

QWEN = json.loads((presets.CONFIG_DIR / "qwen3.5-397b-a17b.json").read_text())
TEXT = QWEN["text_config"]
P = "model.language_model.layers"
NVFP4_WO = {"quant_algo": "W4A16_NVFP4", "group_size": 16}


def listed() -> dict:
    out = {}
    for i, kind in enumerate(TEXT["layer_types"]):
        out[f"{P}.{i}.mlp.experts"] = NVFP4_WO
        out.update({f"{P}.{i}.mlp.shared_expert.{m}": NVFP4_WO for m in ("gate_proj", "up_proj", "down_proj")})
        if kind == "full_attention":
            out.update({f"{P}.{i}.self_attn.{m}": {"quant_algo": "FP8"} for m in ("q_proj", "k_proj", "v_proj",
                                                                                  "o_proj")})
        else:
            out[f"{P}.{i}.linear_attn.out_proj"] = {"quant_algo": "FP8"}
    out["lm_head"] = NVFP4_WO
    return out


def config(layers: dict | None = None, **changes) -> dict:
    q = {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "kv_cache_quant_algo": "FP8",
         "exclude_modules": ["mtp*"], "quantized_layers": listed() if layers is None else layers, **changes}
    return {**copy.deepcopy(QWEN), "quantization_config": q}


def stored(model) -> dict:
    return {b.name: {t.name.split("[")[0]: t.dtype.name for t in b.graph.weights()} for b in model.blocks}


def test_each_module_is_stored_as_its_entry_says_and_the_rest_as_the_model():
    model = hf_config.from_dict(config(), name="q", source="test").build(Phase.decode(1, 10))
    s = stored(model)
    linear, full, head = s["deltanet_layer"], s["attention_layer"], s["embed_head"]
    assert linear["linear_attn.out_proj.weight"] == "fp8" and linear["linear_attn.in_proj_qkvz.weight"] == "bf16"
    assert full["self_attn.q_proj.weight"] == full["self_attn.o_proj.weight"] == "fp8"
    for block in (linear, full):
        assert block["mlp.experts.down_proj.weight"] == block["shared.mlp.shared_expert.up_proj.weight"] == "fp4"
        assert block["mlp.gate.weight"] == "bf16"  # a router stays unquantized
    assert head["lm_head.weight"] == "fp4" and head["embed_tokens.weight"] == "bf16"


def test_lm_head_takes_its_entrys_bytes():
    """lm_head in NVFP4: half a byte an element, an fp8 scale per 16, one fp32 scale for the matrix."""
    model = hf_config.from_dict(config(), name="q", source="test").build(Phase.decode(1, 10))
    [head] = [t for b in model.blocks for t in b.graph.weights() if t.name == "lm_head.weight"]
    n = TEXT["vocab_size"] * TEXT["hidden_size"]
    assert head.nbytes == n // 2 + n // 16 + 4


def test_its_fp8_kv_cache_is_the_declared_one(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config()))

    def kv(*flags):
        assert main(["memory", str(path), "--phase", "decode", "--batch", "1", "--context", "999", "--format",
                     "json", *flags]) == 0
        return json.loads(capsys.readouterr().out)["phases"]["decode"]["kv_cache_bytes"]
    assert 2 * kv() > kv("--kv-dtype", "bf16")  # the attention layers' K and V at a byte; the states unchanged


def test_layers_of_one_kind_stored_differently_are_blocks_of_their_own():
    """The first linear-attention layer's out_proj left unlisted: bf16 there, FP8 in the other 44. That layer is
    a block of its own; the weights grow by that matrix's bf16 bytes less its FP8 ones (a byte an element and one
    fp32 scale for the matrix): hidden_size x linear_num_value_heads x linear_value_head_dim elements."""
    layers = listed()
    first_linear = TEXT["layer_types"].index("linear_attention")
    del layers[f"{P}.{first_linear}.linear_attn.out_proj"]
    model = hf_config.from_dict(config(layers), name="q", source="test").build(Phase.decode(1, 10))
    linear = [b for b in model.blocks if "deltanet" in b.name]
    assert sorted(b.count for b in linear) == [1, TEXT["layer_types"].count("linear_attention") - 1]
    out_proj = {b.count: stored(model)[b.name]["linear_attn.out_proj.weight"] for b in linear}
    assert out_proj == {1: "bf16", 44: "fp8"}
    n = TEXT["hidden_size"] * TEXT["linear_num_value_heads"] * TEXT["linear_value_head_dim"]
    base = hf_config.from_dict(config(), name="q", source="test").build(Phase.decode(1, 10))
    assert model.weight_bytes() - base.weight_bytes() == 2 * n - (n + 4)


@pytest.mark.parametrize("layers, field", [
    ({"lm_head": {"quant_algo": "W8A8_SQ"}}, "quantized_layers.lm_head.quant_algo"),
    ({"lm_head": {"quant_algo": "NVFP4", "group_size": 32}}, "quantized_layers.lm_head.group_size"),
    ({"lm_head": {"quant_algo": "FP8", "scheme": "x"}}, "quantized_layers.lm_head"),
    ({}, "quantized_layers"),
])
def test_entries_it_cannot_read_are_refused_by_name(layers, field):
    with pytest.raises(OpgraphError, match=field.replace(".", r"\.")):
        hf_config.from_dict(config(layers), name="q", source="test")
