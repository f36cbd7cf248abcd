"""The KV cache a quantized checkpoint declares (ModelOpt's kv_cache_quant_algo, a kv_cache_scheme): the model's own
storage keeps it, and a serving engine serves it where its KV-cache dtype "auto" reads it (serve.DECLARED_KV: vLLM
and TensorRT-LLM read ModelOpt's fp8 and nvfp4 and compressed-tensors' fp8, SGLang ModelOpt's fp8 alone). Until
December 2026 the declaration was read and applied nowhere: an NVIDIA FP8 checkpoint's cache was costed in bf16,
twice its bytes, without a word.

Expected values by hand: Llama-3-8B's cache takes 32 layers x K and V x 8 heads x 128 = 65,536 elements a token,
one byte each in fp8, two in bf16."""

import json

import pytest

from opgraph.cli import main
from opgraph.models import presets

PER_TOKEN = 32 * 2 * 8 * 128  # Llama-3-8B's cached elements a token
MODELOPT = {"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "FP8",
            "producer": {"name": "modelopt", "version": "0.29.0"}, "exclude_modules": ["lm_head"]}
# llm-compressor's FP8 W8A8 with an fp8 KV cache (a compressed-tensors config with a kv_cache_scheme)
COMPRESSED = {"quant_method": "compressed-tensors", "format": "pack-quantized",
              "config_groups": {"group_0": {"targets": ["Linear"],
                                            "weights": {"num_bits": 8, "type": "int", "strategy": "channel",
                                                        "symmetric": True, "dynamic": False}}},
              "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False,
                                  "symmetric": True},
              "ignore": ["lm_head"]}


def checkpoint(tmp_path, quantization: dict, name: str = "ckpt") -> str:
    """Llama-3-8B's config.json with `quantization` as its quantization_config, written under tmp_path."""
    cfg = json.loads((presets.CONFIG_DIR / "llama-3-8b.json").read_text())
    path = tmp_path / name / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({**cfg, "quantization_config": quantization}))
    return str(path)


def run(capsys, *args) -> dict:
    assert main([*args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def kv_bytes(capsys, model: str, *flags) -> int:
    """The decode step's KV-cache bytes of 4 requests at a 1,000-token context, one GPU (`opgraph memory`)."""
    out = run(capsys, "memory", model, "--phase", "decode", "--batch", "4", "--context", "1000", *flags)
    return out["phases"]["decode"]["kv_cache_bytes"]


def test_the_model_keeps_the_kv_cache_its_checkpoint_declares(tmp_path, capsys):
    """memory with no flag: fp8, a byte an element; --kv-dtype bf16 or --dtype bf16 choose two bytes; --weight-dtype
    leaves the declared cache, as --kv-dtype leaves the weights."""
    model = checkpoint(tmp_path, MODELOPT)
    cached = 4 * 1001 * PER_TOKEN  # the step's new token too
    assert kv_bytes(capsys, model) == cached
    assert kv_bytes(capsys, model, "--kv-dtype", "bf16") == 2 * cached
    assert kv_bytes(capsys, model, "--dtype", "bf16") == 2 * cached
    assert kv_bytes(capsys, model, "--weight-dtype", "bf16") == cached
    assert kv_bytes(capsys, "llama-3-8b") == 2 * cached  # the preset declares none
    assert main(["report", model, "--phase", "decode"]) == 0
    assert "KV cache fp8 as the checkpoint declares" in capsys.readouterr().out


def blocks(capsys, model: str, engine: str, *flags) -> tuple[int, list[str]]:
    """serve's KV-cache blocks a GPU and notes, Llama-3-8B on one H100."""
    out = run(capsys, "serve", model, "--engine", engine, "--hardware", "h100-sxm", "--concurrency", "8",
              "--prompt", "512", "--output", "64", *flags)
    return out["kv_cache_blocks_per_gpu"], out["notes"]


@pytest.mark.parametrize("quantization, readers", [(MODELOPT, ("vllm", "sglang", "trtllm")),
                                                    (COMPRESSED, ("vllm", "trtllm"))])
def test_an_engine_serves_the_declared_cache_where_it_reads_it(tmp_path, capsys, quantization, readers):
    """The same checkpoint served with no --kv-dtype holds as many blocks as with --kv-dtype fp8 under an engine that
    reads the declaration, as many as with --kv-dtype bf16 under one that does not (SGLang and a compressed-tensors
    scheme), and says which; fp8 blocks hold twice the tokens of bf16 ones in the same memory, less the one
    iteration's activations the two reserve alike."""
    model = checkpoint(tmp_path, quantization)
    for engine in ("vllm", "sglang", "trtllm"):
        own, notes = blocks(capsys, model, engine)
        fp8, _ = blocks(capsys, model, engine, "--kv-dtype", "fp8")
        bf16, _ = blocks(capsys, model, engine, "--kv-dtype", "bf16")
        assert fp8 == pytest.approx(2 * bf16, rel=0.01)
        [said] = [n for n in notes if "the checkpoint declares an fp8 KV cache" in n]
        if engine in readers:
            assert own == fp8 and f"which {engine} serves by default" in said
        else:
            assert own == bf16 and f"which {engine} does not read" in said and "--kv-dtype fp8" in said
        _, chosen = blocks(capsys, model, engine, "--kv-dtype", "bf16")
        assert not any("declares" in n for n in chosen)  # the user chose: nothing to say


def test_sglang_reads_modelopts_fp8_declaration_alone(tmp_path, capsys):
    """An NVFP4 KV cache (ModelOpt's kv_cache_quant_algo NVFP4): vLLM and TensorRT-LLM serve it, SGLang keeps bf16."""
    model = checkpoint(tmp_path, {**MODELOPT, "quant_algo": "NVFP4", "kv_cache_quant_algo": "NVFP4",
                                  "group_size": 16})
    nvfp4, _ = blocks(capsys, model, "vllm", "--kv-dtype", "nvfp4")
    assert blocks(capsys, model, "vllm")[0] == nvfp4
    bf16, _ = blocks(capsys, model, "sglang", "--kv-dtype", "bf16")
    own, notes = blocks(capsys, model, "sglang")
    assert own == bf16 and any("nvfp4 KV cache" in n and "sglang does not read" in n for n in notes)
