"""Decode attention over an fp8 KV cache (opgraph.pricing.kinds.attention, class decode_attention_fp8): its own
table, fitted on vLLM 0.24.0's measured kernels (benchmarks/data/<gpu>-kv8.csv.gz), since those kernels do not run in
the half of their bf16 time that the halved bytes would give. Expected bytes by hand: K and V of context + 1 positions,
kv_heads x head_dim values each, one byte in fp8; the queries and the output in bf16."""

from pathlib import Path

import attrs
import pytest

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.analysis.validate import ONE_KERNEL, kernel, validate
from opgraph.core.tensor import FP8, Precision
from opgraph.files.measurements import read
from opgraph.models import BuildOptions

DATA = Path(__file__).parents[2] / "benchmarks" / "data"
SHAPE = dict(batch=16, context=4095, heads=8, kv_heads=1, head_dim=128)  # Llama-3-70B at TP 8, 4,096 keys


def _only_kernel(model, hw):
    (block,) = analyze(model, ONE_KERNEL, hw).blocks
    (k,) = block.kernel_costs()
    return k


@pytest.mark.parametrize("dtype, cls, width", [("bf16", "decode_attention", 2), ("fp8", "decode_attention_fp8", 1)])
def test_a_decode_row_reads_its_cache_at_its_width_and_takes_its_class(dtype, cls, width):
    k = _only_kernel(kernel("decode_attention", dtype, **SHAPE), hardware.load("h200"))
    cache = 16 * 4096 * 1 * 128 * 2 * width  # batch x keys x kv_heads x head_dim x (K and V) x bytes
    queries = 16 * 8 * 128 * 2  # one bf16 query per sequence and head
    assert k.kind == cls
    assert k.cost.traffic.kv_cache_bytes == cache
    assert k.cost.traffic.bytes_read == cache + queries


def test_a_models_decode_over_an_fp8_cache_is_the_fp8_class():
    fp8_kv = Precision(weight=FP8, act=FP8, kv=FP8)
    model = models.get("llama-3-8b").build(Phase.decode(8, 1024), BuildOptions(fp8_kv))
    kinds = {k.kind for b in analyze(model, strategy("vllm"), hardware.load("h200")).blocks for k in b.kernel_costs()
             if "qk" in k.ops}
    assert kinds == {"decode_attention_fp8"}


def test_a_calibration_without_the_table_prices_it_by_the_bf16_one():
    a100 = hardware.load("a100-sxm").timing
    assert a100.table("decode_attention_fp8") == "decode_attention"
    assert hardware.load("h200").timing.table("decode_attention_fp8") == "decode_attention_fp8"


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_the_fitted_table_beats_the_bf16_one_on_sglangs_never_fitted_kernels(gpu):
    """SGLang 0.5.14's fp8-cache decode kernels were never fitted: the shipped table is closer than the bf16 table
    on its halved bytes, which prices them more than 10% fast at the median."""
    hw = hardware.load(gpu)
    rows = [m for m in read(DATA / f"{gpu}-kv8.csv.gz") if m.source.startswith("sglang")]
    assert len(rows) > 3000
    by_bf16 = attrs.evolve(hw, timing=hw.timing.priced_as("decode_attention_fp8", "decode_attention", "test"))
    own, other = (validate(rows, h).stats["expected"]["all"]["all"] for h in (hw, by_bf16))
    assert own.median < other.median and other.bias < -0.1


def test_tensorrt_llm_prices_its_fp8_cache_decodes_by_the_bf16_table():
    """TensorRT-LLM's own decode kernels gain from an fp8 cache (0.61-0.86 of their bf16 time in aiconfigurator's
    tables), vLLM's do not: serve prices an fp8-cache decode under --engine trtllm by the bf16 table on its halved
    bytes, and under vllm by the fp8 table; a bf16 cache is priced alike by both."""
    from opgraph.analysis.serve import serve, trtllm, vllm
    h200 = hardware.load("h200")
    fp8_kv = BuildOptions(Precision(weight=FP8, act=FP8, kv=FP8))

    def build(phase):
        return models.get("llama-3-8b").build(phase, fp8_kv)

    trt = trtllm(h200)
    assert trt.timed(h200).timing.classes["decode_attention_fp8"] == h200.timing.classes["decode_attention"]
    assert vllm(h200).timed(h200) is h200
    as_trt = serve(build, strategy("vllm"), h200, engine=trt, concurrency=32, prompt=2048, output=64)
    as_vllm_table = serve(build, strategy("vllm"), h200, engine=attrs.evolve(trt, tables=()), concurrency=32,
                          prompt=2048, output=64)
    assert as_trt.tpot.mean < as_vllm_table.tpot.mean
    # no fp8 cache, nothing to re-price
    plain = serve(models.get("llama-3-8b").build, strategy("vllm"), h200, engine=trt, concurrency=8, prompt=512,
                  output=32)
    same = serve(models.get("llama-3-8b").build, strategy("vllm"), h200, engine=attrs.evolve(trt, tables=()),
                 concurrency=8, prompt=512, output=32)
    assert plain.tpot.mean == same.tpot.mean


def test_an_engines_priced_gpu_is_one_object_so_a_repeated_serve_keeps_its_pricer():
    # IterationPricer.of keeps a pricer by the hardware object's identity: an engine with tables of its own must hand
    # back the same object for the same GPU, or every later `serve` of TensorRT-LLM would trace the model again
    from opgraph.analysis.iteration import IterationPricer
    from opgraph.analysis.serve import trtllm
    h200, h100 = hardware.load("h200"), hardware.load("h100-sxm")
    trt = trtllm(h200)
    assert trt.timed(h200) is trt.timed(h200) and trt.timed(h200) is not h200
    assert trt.timed(h100) is not trt.timed(h200)
    build = models.get("llama-3-8b").build
    plan = strategy("trtllm")
    assert IterationPricer.of(build, plan, trt.timed(h200)) is IterationPricer.of(build, plan, trt.timed(h200))


@pytest.mark.parametrize("argv", [
    ["serve", "llama-3-8b", "--concurrency", "8", "--prompt", "500", "--output", "20"],
    ["serve", "llama-3-8b", "--disaggregate", "1p1d", "--concurrency", "8", "--prompt", "500", "--output", "20"],
    ["plan", "llama-3-8b", "--gpus", "2", "--concurrency", "8", "--prompt", "500", "--output", "20"],
])
def test_serving_outputs_name_the_table_their_engine_priced_an_fp8_cache_by(argv, capsys):
    """serve, serve --disaggregate and the serving plan say what prices each kernel class as the engine priced it:
    TensorRT-LLM's fp8-cache decodes by the bf16 decode table (until December 2026 their line of expected times named
    the fp8 table, which priced nothing there), vLLM's by the fp8 one."""
    from opgraph.cli import main
    for engine, by_bf16 in (("trtllm", True), ("vllm", False)):
        assert main([*argv, "--hardware", "h200", "--kv-dtype", "fp8", "--engine", engine]) == 0
        said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Times are expected")]
        assert len(said) == 1 and "expected times: h200 calibration" in said[0], said
        assert ("decode_attention_fp8 from decode_attention's table" in said[0]) == by_bf16, said


def test_serve_json_names_the_table_its_engine_priced_an_fp8_cache_by(capsys):
    import json

    from opgraph.cli import main
    assert main(["serve", "llama-3-8b", "--hardware", "h200", "--kv-dtype", "fp8", "--engine", "trtllm",
                 "--concurrency", "8", "--prompt", "500", "--output", "20", "--format", "json"]) == 0
    origin = json.loads(capsys.readouterr().out)["time_model"]["classes"]["decode_attention_fp8"]
    assert origin.startswith("decode_attention's table"), origin
