"""MLA decode attention: the absorbed latent kernel is a class of its own (opgraph.pricing.kinds.mla), rebuilt from a
measured row as the model builds it, and priced as decode attention where a calibration has no table of its own.
Expected values by hand from DeepSeek-V2's absorbed attention (section 2.1.2): every query head scores the
[latent | rope key] entries (512 + 64 wide) and sums their latent part (512) as its values."""

from pathlib import Path

import attrs
import numpy as np
import pytest

from opgraph import Phase, choices, hardware
from opgraph.analysis.validate import validate
from opgraph.files.measurements import Measurement, read
from opgraph.models import BuildOptions
from opgraph.pricing.cost import analyze
from opgraph.pricing.kinds import FALLBACK

DATA = Path(__file__).parents[2] / "benchmarks" / "data"
H200 = hardware.load("h200")
PEAK, BW, VECTOR = 989e12, 4.8e12, 67e12  # the H200's datasheet: dense bf16 matrix, HBM3e, fp32 vector


def row(batch: int, context: int, heads: int, time_s: float = 1e-4) -> Measurement:
    return Measurement("mla_decode_attention", "bf16",
                       {"batch": batch, "context": context, "heads": heads, "kv_lora_rank": 512, "rope_dim": 64},
                       time_s)


@pytest.mark.parametrize("batch, context, heads", [(1, 1023, 128), (64, 4095, 16), (256, 16383, 8)])
def test_a_measured_row_is_the_absorbed_kernel_by_hand(batch, context, heads):
    """The roofline of the rebuilt kernel, op by op: the scores read the query and every cached entry once (576
    wide, bf16), the softmax is 5 vector FLOPs a score, and the values come from those same entries (read once by
    the kernel) and write the output (512 a head)."""
    keys = context + 1
    qk = max(2 * batch * heads * keys * 576 / PEAK, 2 * (batch * heads * 576 + batch * keys * 576) / BW)
    softmax = 5 * batch * heads * keys / VECTOR
    av = max(2 * batch * heads * keys * 512 / PEAK, 2 * batch * heads * 512 / BW)
    v = validate([row(batch, context, heads)], H200)
    assert float(v.roofline_s[0]) == pytest.approx(qk + softmax + av, rel=1e-12)


def kernel_of_scores(name: str, phase: Phase, tp: int = 8) -> set[str]:
    """The classes of the kernels that hold a score product (qk), over every block."""
    model = choices.builder(choices.model(name), BuildOptions(None, tp=tp))(phase)
    blocks = analyze(model, choices.plan("sglang"), H200).blocks
    return {k.kind for block in blocks for k in block.kernel_costs() if "qk" in k.ops}


def test_the_absorbed_latent_kernel_is_its_own_class_and_other_attention_is_not():
    """DeepSeek-V3's decode reads the latent as keys and values: MLA. Its prefill decompresses (192-wide keys, 128-wide
    values: FlashAttention's prefill), and Llama-3's decode is GQA: decode attention."""
    assert kernel_of_scores("deepseek-v3", Phase.decode(8, 1024)) == {"mla_decode_attention"}
    assert kernel_of_scores("kimi-k2", Phase.decode(8, 1024)) == {"mla_decode_attention"}
    assert kernel_of_scores("deepseek-v3", Phase.prefill(1, 512)) == {"prefill_attention"}
    assert kernel_of_scores("llama-3-8b", Phase.decode(8, 1024), tp=1) == {"decode_attention"}


def test_deepseek_v4s_one_key_value_head_is_the_latent_kind():
    """DeepSeek-V4's decode reads one 512-wide head as keys and values (K = V), its CSA layers an indexer's selection
    besides: FlashMLA's sparse kernels, the MLA class, with or without the selection; DeepSeek-V3.2's selected decode
    gathers its keys and values apart, and stays decode attention."""
    assert kernel_of_scores("deepseek-v4-flash", Phase.decode(8, 4096)) == {"mla_decode_attention"}
    assert kernel_of_scores("deepseek-v3.2", Phase.decode(8, 4096)) == {"decode_attention"}


def test_a_calibration_without_its_table_prices_it_as_decode_attention():
    """The same kernel priced with the decode_attention table standing in for the MLA one, and with no MLA table at
    all (the fallback), takes exactly the same time; with the shipped MLA table it differs."""
    assert FALLBACK["mla_decode_attention"] == "decode_attention"
    classes = H200.timing.classes
    assert "mla_decode_attention" in classes
    without = attrs.evolve(H200.timing, classes={k: p for k, p in classes.items() if k != "mla_decode_attention"})
    standing_in = attrs.evolve(H200.timing, classes=classes | {"mla_decode_attention": classes["decode_attention"]})
    rows = [row(64, 4095, 16), row(1, 1023, 128)]
    fallback, stand_in, shipped = (validate(rows, attrs.evolve(H200, timing=t)).expected_s
                                   for t in (without, standing_in, H200.timing))
    assert fallback.tolist() == pytest.approx(stand_in.tolist(), rel=1e-12)
    assert not np.allclose(shipped, fallback)


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200", "b200", "gb200", "b300", "gb300"])
def test_the_mla_table_fitted_on_sglang_beats_the_fallback_on_tensorrt_llms_kernels(gpu):
    """TensorRT-LLM's MLA decode kernels (aiconfigurator-core, never fitted): the shipped table prices them closer
    at the median and p90 than the decode_attention table it would otherwise fall back to."""
    spec = hardware.load(gpu)
    checked = [m for m in read(DATA / f"{gpu}-mla.csv.gz") if m.source.startswith("trtllm")]
    assert len(checked) > 1000
    without = attrs.evolve(spec.timing, classes={k: p for k, p in spec.timing.classes.items()
                                                 if k != "mla_decode_attention"})
    fitted = validate(checked, spec).stats["expected"]["all"]["all"]
    fallback = validate(checked, attrs.evolve(spec, timing=without)).stats["expected"]["all"]["all"]
    assert fitted.median < fallback.median and fitted.p90 < fallback.p90
    # TensorRT-LLM's kernels are another engine's: within 12% at the median on the Hopper GPUs and the B200, 15% on
    # the GB200, B300 and GB300 (docs/measured-times.md, "MLA decode attention")
    assert fitted.median < (0.12 if gpu in ("h100-sxm", "h200", "b200") else 0.15)
