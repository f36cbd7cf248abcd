"""quantization_config blocks as published, read into weight formats; and the errors for what is not understood."""

import pytest

from opgraph.core.tensor import FP8, MXFP4, NVFP4
from opgraph.errors import OpgraphError
from opgraph.models.quantization import read

WHERE = "some/config.json"

# gpt-oss-20b / gpt-oss-120b config.json (openai/gpt-oss-20b on Hugging Face)
GPT_OSS = {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                                      "lm_head"], "quant_method": "mxfp4"}
# DeepSeek-V3 / DeepSeek-R1 config.json (deepseek-ai/DeepSeek-V3)
DEEPSEEK_V3 = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}
# Qwen3-*-FP8 config.json: the same block fp8 with Qwen's exclusions (lm_head, embeddings, norms, per-layer routers);
# the per-layer list below is of the published form, shortened to two layers
QWEN3_FP8 = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128],
             "modules_to_not_convert": ["lm_head", "model.embed_tokens", "model.norm",
                                        "model.layers.0.input_layernorm", "model.layers.0.mlp.gate",
                                        "model.layers.1.input_layernorm", "model.layers.1.mlp.gate"]}
# NVIDIA ModelOpt hf_quant_config.json (e.g. nvidia/DeepSeek-R1-FP4), whole file and its `quantization` block
MODELOPT_FILE = {"producer": {"name": "modelopt", "version": "0.23.0"},
                 "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None, "group_size": 16,
                                  "exclude_modules": ["lm_head", "model.layers.0.self_attn*", "model.layers.*.mlp.gate"]}}
# ModelOpt's flat config.json form (vLLM's ModelOptFp4Config reads quant_algo, group_size, ignore)
MODELOPT_FLAT = {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8",
                 "config_groups": {"group_0": {"weights": {"num_bits": 4, "group_size": 16}}},
                 "producer": {"name": "modelopt"}, "ignore": ["lm_head"]}
# AutoAWQ config.json (e.g. Qwen/Qwen2.5-7B-Instruct-AWQ)
AWQ = {"bits": 4, "group_size": 128, "modules_to_not_convert": None, "quant_method": "awq", "version": "gemm",
       "zero_point": True}
# AutoGPTQ / GPTQModel config.json (e.g. Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4)
GPTQ = {"bits": 4, "damp_percent": 0.01, "desc_act": False, "group_size": 128, "model_file_base_name": None,
        "model_name_or_path": None, "quant_method": "gptq", "static_groups": False, "sym": True,
        "true_sequential": True}
# llm-compressor W4A16 (compressed-tensors pack-quantized)
CT_W4A16 = {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
            "global_compression_ratio": None, "version": "0.9.1", "sparsity_config": {}, "kv_cache_scheme": None,
            "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None, "output_activations": None,
                                          "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                      "group_size": 128, "symmetric": True, "dynamic": False,
                                                      "observer": "minmax", "observer_kwargs": {},
                                                      "block_structure": None, "actorder": None}}}}


def test_gpt_oss_mxfp4():
    f = read(GPT_OSS, WHERE)
    assert f.dtype is MXFP4
    assert f.dtype_for("mlp.experts.gate_up_proj") is MXFP4
    assert f.dtype_for("mlp.experts.down_proj") is MXFP4
    for module in ("self_attn.q_proj", "self_attn.o_proj", "mlp.router", "embed_tokens", "lm_head"):
        assert f.dtype_for(module) is None, module
    assert not f.per_layer


def test_deepseek_v3_block_fp8():
    f = read(DEEPSEEK_V3, WHERE)
    # W8A8: vLLM's Fp8LinearMethod quantizes each GEMM's input (activation_scheme dynamic: per token group of 128)
    assert f.dtype == FP8.blocked(128, 128).with_input_quantized() and f.dtype.scale_bits == 32
    assert f.dtype_for("self_attn.q_b_proj") == f.dtype
    assert f.dtype_for("mlp.experts.0.gate_proj") == f.dtype
    # the router (mlp.gate), the embeddings and lm_head are stored bf16 in the checkpoint
    assert f.dtype_for("mlp.gate") is None and f.dtype_for("embed_tokens") is None and f.dtype_for("lm_head") is None


def test_qwen3_fp8_per_layer_exclusions():
    f = read(QWEN3_FP8, WHERE)
    assert f.per_layer
    assert f.dtype_for("self_attn.q_proj") == FP8.blocked(128, 128).with_input_quantized()
    assert f.dtype_for("mlp.experts.3.up_proj") == FP8.blocked(128, 128).with_input_quantized()
    assert f.excludes("mlp.gate", layer=1) and not f.excludes("mlp.gate", layer=2)
    assert f.excludes("mlp.gate")  # without a layer: excluded in some layer


def test_modelopt_nvfp4_whole_file_and_block():
    for q in (MODELOPT_FILE, MODELOPT_FILE["quantization"]):
        f = read(q, "hf_quant_config.json")
        w4a4 = NVFP4.with_input_quantized()  # ModelOpt's NVFP4 linears quantize their input to NVFP4 too
        assert f.dtype == w4a4 and f.kv_cache is None
        assert f.dtype_for("mlp.experts.0.down_proj") == w4a4
        assert f.dtype_for("self_attn.q_proj", layer=0) is None  # "model.layers.0.self_attn*"
        assert f.dtype_for("self_attn.q_proj", layer=5) == w4a4


def test_modelopt_flat_config():
    f = read(MODELOPT_FLAT, WHERE)
    assert f.dtype == NVFP4.with_input_quantized() and f.kv_cache == FP8
    assert f.dtype_for("lm_head") is None


@pytest.mark.parametrize("bits, kv", [(8, FP8), (4, NVFP4)])
def test_modelopt_flat_config_may_state_its_kv_cache_as_a_scheme(bits, kv):
    """The flat form may give the KV cache as a kv_cache_scheme instead of kv_cache_quant_algo (vLLM's
    get_kv_cache_quant_algo_string reads either: an 8-bit float scheme is fp8, a 4-bit one nvfp4); both together
    must agree."""
    flat = {k: v for k, v in MODELOPT_FLAT.items() if k != "kv_cache_quant_algo"}
    scheme = {"num_bits": bits, "type": "float", "dynamic": False}
    assert read({**flat, "kv_cache_scheme": scheme}, WHERE).kv_cache == kv
    assert read(flat, WHERE).kv_cache is None
    agreeing = {**flat, "kv_cache_scheme": scheme, "kv_cache_quant_algo": "FP8" if bits == 8 else "NVFP4"}
    assert read(agreeing, WHERE).kv_cache == kv


@pytest.mark.parametrize("algo,check", [
    ("FP8", lambda d: d.name == "fp8" and d.tensor_bits == 32 and not d.scale_bits and d.quantizes_input),
    ("fp8_pb_wo", lambda d: d == FP8.blocked(128, 128)),  # "WO": weight-only, bf16 activations
    ("FP8_PER_CHANNEL_PER_TOKEN", lambda d: d.scale_bits == 32 and not d.group_size and d.quantizes_input),
    ("MXFP8", lambda d: (d.group_size, d.scale_bits) == (32, 8) and d.quantizes_input),
])
def test_modelopt_other_algorithms(algo, check):
    assert check(read({"quant_algo": algo, "exclude_modules": []}, WHERE).dtype)


def test_awq():
    f = read(AWQ, WHERE)
    d = f.dtype
    assert (d.name, d.bits, d.group_size, d.scale_bits, d.zero_bits, d.index_bits) == ("int4", 4, 128, 16, 4, 0)
    assert f.dtype_for("mlp.down_proj") == d and f.dtype_for("lm_head") is None
    # AWQ's exclusions are substrings, as AutoAWQ and vLLM match them
    g = read({**AWQ, "modules_to_not_convert": ["visual", "shared_expert"]}, WHERE)
    assert g.dtype_for("mlp.shared_expert.up_proj") is None and g.dtype_for("mlp.experts.0.up_proj") == d
    assert read({**AWQ, "zero_point": False}, WHERE).dtype.zero_bits == 0


def test_gptq():
    f = read(GPTQ, WHERE)
    d = f.dtype
    assert (d.name, d.group_size, d.scale_bits, d.zero_bits, d.index_bits) == ("int4", 128, 16, 4, 32)
    assert f.dtype_for("lm_head") is None
    assert read({**GPTQ, "lm_head": True}, WHERE).dtype_for("lm_head") == d
    per_channel = read({**GPTQ, "group_size": -1, "bits": 8}, WHERE).dtype
    assert (per_channel.name, per_channel.group_size, per_channel.scale_bits, per_channel.zero_bits) == ("int8", 0, 16, 8)


def test_compressed_tensors_w4a16_and_nvfp4():
    d = read(CT_W4A16, WHERE).dtype
    assert (d.name, d.group_size, d.scale_bits, d.zero_bits, d.tensor_bits) == ("int4", 128, 16, 0, 64)
    nv = {**CT_W4A16, "format": "nvfp4-pack-quantized", "config_groups": {"group_0": {
        "targets": ["Linear"], "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                           "group_size": 16, "symmetric": True, "dynamic": False}}}}
    assert read(nv, WHERE).dtype == NVFP4  # no input_activations: NVFP4A16, weight-only
    group = nv["config_groups"]["group_0"]
    acts = {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "dynamic": "local"}
    w4a4 = {**nv, "config_groups": {"group_0": {**group, "input_activations": acts}}}
    assert read(w4a4, WHERE).dtype == NVFP4.with_input_quantized()
    assert not read(CT_W4A16, WHERE).dtype.quantizes_input


def test_compressed_tensors_activations_unlike_the_weights_are_refused():
    group = CT_W4A16["config_groups"]["group_0"]
    w4a8 = {**CT_W4A16, "config_groups": {"group_0": {**group, "input_activations": {"num_bits": 8, "type": "int"}}}}
    with pytest.raises(OpgraphError, match=r"config_groups\.group_0\.input_activations.*valid: null \(weight-only\) "
                                           r"or 4-bit int as the weights \(W4A4\)"):
        read(w4a8, WHERE)


def test_hf_naming_and_multimodal_prefixes():
    f = read({**DEEPSEEK_V3, "modules_to_not_convert": ["model.language_model.layers.*.linear_attn",
                                                        "re:.*shared_expert_gate$"]}, WHERE)
    assert f.dtype_for("linear_attn.in_proj_qkvz") is None
    assert f.dtype_for("self_attn.q_proj") == FP8.blocked(128, 128).with_input_quantized()


# -- errors --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q,field", [
    ({"quant_method": "bitsandbytes"}, "quant_method"),
    ({"quant_method": "hqq"}, "quant_method"),
    ({**DEEPSEEK_V3, "weight_block_size": [128]}, "weight_block_size"),
    ({**DEEPSEEK_V3, "weight_block_size": [0, 128]}, "weight_block_size"),
    ({**DEEPSEEK_V3, "fmt": "e3m4"}, "fmt"),
    ({**DEEPSEEK_V3, "activation_scheme": "per_token"}, "activation_scheme"),
    ({**DEEPSEEK_V3, "weight_scale_bits": 16}, "weight_scale_bits"),  # unknown: would change bytes
    ({**GPT_OSS, "dequantize": True}, "dequantize"),
    ({**GPT_OSS, "modules_to_not_convert": "lm_head"}, "modules_to_not_convert"),
    ({"quant_algo": "W4A8_AWQ"}, "quant_algo"),
    ({"quant_algo": "NVFP4", "group_size": 32}, "group_size"),
    ({"quant_algo": "NVFP4", "kv_cache_quant_algo": "INT8"}, "kv_cache_quant_algo"),
    ({**MODELOPT_FLAT, "kv_cache_scheme": {"num_bits": 4, "type": "float"}}, "kv_cache_scheme"),  # FP8 beside it
    ({**MODELOPT_FLAT, "kv_cache_scheme": {"num_bits": 8, "type": "int"}}, "kv_cache_scheme"),
    ({**CT_W4A16, "kv_cache_scheme": {"num_bits": 4, "type": "float"}}, "kv_cache_scheme"),
    ({"quant_algo": "NVFP4", "quantized_layers": {}}, "quantized_layers"),
    ({**AWQ, "bits": 3}, "bits"),
    ({**AWQ, "version": "gemv_fast"}, "version"),
    ({**AWQ, "group_size": 0}, "group_size"),
    ({**GPTQ, "bits": 3}, "bits"),
    ({**GPTQ, "checkpoint_format": "marlin"}, "checkpoint_format"),
    ({**GPTQ, "dynamic": {"-:.*lm_head": {}}}, "dynamic"),
    ({**GPTQ, "desc_act": "yes"}, "desc_act"),
    ({**CT_W4A16, "format": "float-quantized"}, "format"),
    ({**CT_W4A16, "sparsity_config": {"format": "sparse-24"}}, "sparsity_config"),
])
def test_errors_name_the_field_and_the_file(q, field):
    with pytest.raises(OpgraphError) as e:
        read(q, WHERE)
    msg = str(e.value)
    assert WHERE in msg and field in msg


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(OpgraphError) as e:
        read({"quant_method": "exl2"}, WHERE)
    assert all(m in str(e.value) for m in ("fp8", "mxfp4", "modelopt", "awq", "gptq", "compressed-tensors"))


def test_not_a_dict():
    with pytest.raises(OpgraphError):
        read(["fp8"], WHERE)


@pytest.mark.parametrize("model, stored", [("gpt-oss-120b", "mxfp4"), ("deepseek-r1", "fp8/b128x128 (w8a8)")])
def test_kv_and_activation_dtypes_leave_a_quantized_checkpoints_weights_its_own(model, stored, capsys):
    """--kv-dtype and --act-dtype change those roles alone: the weight matrices stay as the checkpoint's
    quantization_config stores them (gpt-oss's MXFP4 experts, DeepSeek-R1's 128 x 128 fp8 blocks); only --dtype or
    --weight-dtype replace them (until December 2026 any precision flag turned them into bf16, without a word)."""
    import json

    from opgraph.cli import main

    def memory(*flags):
        assert main(["memory", model, "--phase", "decode", "--batch", "4", "--context", "1000", "--tp", "8",
                     "--format", "json", *flags]) == 0
        out = json.loads(capsys.readouterr().out)
        return out["precision"]["weights"], out["phases"]["decode"]

    (w_own, own), (w_kv8, kv8) = memory(), memory("--kv-dtype", "fp8")
    assert w_own == w_kv8 == f"bf16, {stored}" and kv8["weight_bytes"] == own["weight_bytes"]
    assert 2 * kv8["kv_cache_bytes"] == own["kv_cache_bytes"]  # one byte an element where bf16 takes two
    # fp8 activations narrow the norm scales, biases and tables (stored at the activation dtype), not the matrices
    w_act8, act8 = memory("--act-dtype", "fp8")
    assert stored in w_act8.split(", ") and 0.9 * own["weight_bytes"] < act8["weight_bytes"] < own["weight_bytes"]
    w_bf16, bf16 = memory("--weight-dtype", "bf16")
    assert w_bf16 == "bf16" and bf16["weight_bytes"] > 1.5 * own["weight_bytes"]
    assert main(["report", model, "--phase", "decode", "--kv-dtype", "fp8", "--tp", "8"]) == 0
    assert "activations bf16, KV cache fp8" in capsys.readouterr().out


def test_an_fp8_checkpoint_multiplies_in_fp8_where_the_gpu_can(capsys):
    """DeepSeek-V3's fp8 experts and projections quantize their bf16 input (W8A8): on an H100 its MoE and dense GEMMs
    are the fp8 classes; an A100 has no fp8 matrix units, so there they are the bf16 ones (weight-only, as vLLM's
    Marlin fp8 kernels run them) and the report's note says why."""
    import json

    from opgraph.cli import main

    def report(gpu):
        assert main(["report", "deepseek-v3", "--tp", "8", "--hardware", gpu, "--phase", "decode", "--format",
                     "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        [phase] = out["phases"] if isinstance(out["phases"], list) else out["phases"].values()
        return phase
    h100, a100 = report("h100-sxm"), report("a100-sxm")
    assert "moe_fp8" in json.dumps(h100) and "moe_fp8" not in json.dumps(a100)
    assert any("a100-sxm has no fp8 matrix rate" in n for n in a100["notes"])
    assert not any("matrix rate" in n for n in h100["notes"])


@pytest.mark.parametrize("weight, h100_class", [("fp8", "gemm_fp8"), ("int8", "gemm"), ("int4", "gemm")])
def test_weight_dtype_fp8_is_served_as_engines_quantize_a_checkpoint(weight, h100_class, capsys):
    """--weight-dtype fp8 under bf16 activations is W8A8, as vLLM's --quantization fp8 serves a bf16 checkpoint (fp8
    GEMMs on an H100, weight-only on an A100); int8 and int4 stay weight-only (GPTQ-style, Marlin), bf16 GEMMs."""
    import json

    from opgraph.cli import main

    def kinds(gpu):
        assert main(["report", "llama-3-8b", "--weight-dtype", weight, "--hardware", gpu, "--phase", "decode",
                     "--format", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        [phase] = out["phases"] if isinstance(out["phases"], list) else out["phases"].values()
        return {k["class"] for k in phase["top_kernels"]}, out["precision"]["weights"]
    (on_h100, stored), (on_a100, _) = kinds("h100-sxm"), kinds("a100-sxm")
    assert h100_class in on_h100 and "gemm_fp8" not in on_a100
    assert stored.endswith("(w8a8)") == (weight == "fp8")
