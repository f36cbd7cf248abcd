"""Fused-MoE calls through Marlin's kernel (opgraph.pricing.kinds.moe, class moe_marlin): int4 experts always (vLLM's
and SGLang's fused_marlin_moe), MXFP4 experts when the engine is told to (vLLM's VLLM_MXFP4_USE_MARLIN=1:
`--marlin-moe`, or a serving row's moe_kernel column). The evidence is measured: aiconfigurator's int4 Marlin calls on
the H100 and H200, which the moe_marlin table is fitted on and the Triton MXFP4 table (moe_w4) misses on thousands of
tokens."""

from pathlib import Path

import attrs
import pytest

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.analysis.serve import serve, vllm
from opgraph.analysis.validate import validate
from opgraph.choices import gpu
from opgraph.errors import OpgraphError
from opgraph.files import serving_measurements
from opgraph.files.measurements import read
from opgraph.pricing.kinds import time_class
from serving_csv import predicted, serving_csv
from userland import opgraph

DATA = Path(__file__).parents[2] / "benchmarks" / "data"


def _expert_kernels(hw, tokens=4096):
    model = models.get("gpt-oss-20b").build(Phase.prefill(1, tokens))
    return [k for b in analyze(model, strategy("vllm"), hw).blocks for k in b.kernel_costs()
            if "experts.down_proj" in k.ops]


def test_marlin_moe_prices_mxfp4_experts_by_the_marlin_table_and_nothing_else():
    plain, marlin = hardware.load("h200"), gpu("h200", marlin_moe=True)
    assert marlin.timing.classes["moe_w4"] == plain.timing.classes["moe_marlin"]
    assert {k: v for k, v in marlin.timing.classes.items() if k != "moe_w4"} == \
        {k: v for k, v in plain.timing.classes.items() if k != "moe_w4"}
    assert "moe_marlin's table (--marlin-moe)" == marlin.timing.origins["moe_w4"]
    before, after = _expert_kernels(plain), _expert_kernels(marlin)
    # the same class and work, a slower kernel on 4,096 tokens (Marlin reaches about a third of the bf16 peak there)
    assert [k.kind for k in before] == [k.kind for k in after] and {k.kind for k in after} == {"moe_w4"}
    assert all(b.cost.flops == a.cost.flops for b, a in zip(before, after))
    assert all(a.cost.expected_s > 1.5 * b.cost.expected_s for b, a in zip(before, after))


def test_a_gpu_without_a_marlin_table_is_refused_by_name():
    with pytest.raises(OpgraphError, match="--marlin-moe: the a100-sxm time model .* has no moe_marlin table"):
        gpu("a100-sxm", marlin_moe=True)
    with pytest.raises(OpgraphError, match="--marlin-moe: v100 has no calibration .*, so it has no moe_marlin table"):
        gpu("v100", marlin_moe=True)  # not "the v100 calibration (roofline)", which it does not have
    r = opgraph("serve", "gpt-oss-20b", "--hardware", "a100-sxm", "--concurrency", "4", "--prompt", "512",
                "--output", "32", "--marlin-moe")
    assert r.returncode == 2 and "moe_marlin" in r.stderr and "Traceback" not in r.stderr


def test_the_marlin_table_beats_the_triton_one_on_measured_marlin_calls():
    """aiconfigurator's int4 calls (vLLM 0.24.0's fused_marlin_moe, Kimi-K2.5's and other shapes) priced by the
    table fitted on them against the MXFP4 Triton table that priced them before: the fitted table is closer at the
    median, and on calls of 4,096 tokens and more (prefill) the Triton table is more than 20% fast."""
    for name in ("h100-sxm", "h200"):
        hw = hardware.load(name)
        rows = [m for m in read(DATA / f"{name}-vllm.csv.gz") if time_class(m.kind, m.dtype) ==
                "moe_marlin"]
        assert len(rows) >= 150
        triton = attrs.evolve(hw, timing=hw.timing.priced_as("moe_marlin", "moe_w4", "test"))
        own, other = (validate(rows, h).stats["expected"]["all"]["all"] for h in (hw, triton))
        assert own.median < other.median
        big = [m for m in rows if m.shape["tokens"] >= 4096]
        fast = validate(big, triton).stats["expected"]["all"]["all"]
        assert fast.bias < -0.2


KERNEL = "gemm_quant_mode,moe_kernel"


def test_a_rows_moe_kernel_serves_it_as_marlin_runs_it(tmp_path):
    row = "gpt-oss-20b,h200,vllm,1,4,2000,16,50.0,10.0,nvfp4,"
    marlin_row, plain_row = predicted(serving_csv(tmp_path, KERNEL, row + "marlin", row))
    for row, hw in ((marlin_row, gpu("h200", marlin_moe=True)), (plain_row, hardware.load("h200"))):
        s = serve(models.get("gpt-oss-20b").build, strategy("vllm"), hw, engine=vllm(hw), concurrency=4,
                  prompt=2000, output=16, queue=True)
        assert (row.ttft_s, row.tpot_s) == (s.ttft.mean, s.tpot.mean)
    assert marlin_row.ttft_s > plain_row.ttft_s


def test_a_bad_moe_kernel_names_the_column_and_the_choices(tmp_path):
    f = serving_csv(tmp_path, KERNEL, "gpt-oss-20b,h200,vllm,1,4,2000,16,50.0,10.0,,cutlass")
    with pytest.raises(OpgraphError, match="row 1: column moe_kernel: 'cutlass' is not one of: empty, marlin"):
        serving_measurements.read(f)


def test_the_extract_marks_inferencex_hopper_gpt_oss_rows_from_the_day_its_recipe_set_marlin():
    rows = serving_measurements.read(DATA / "serving-measured.csv.gz")
    marked = [r for r in rows if r.moe_kernel]
    assert marked and {(r.engine, r.model, r.gpu in ("h100-sxm", "h200")) for r in marked} == \
        {("vllm", "gpt-oss-120b", True)}
