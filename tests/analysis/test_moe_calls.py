"""Fused-MoE calls (opgraph.pricing.kinds.moe): the routed experts' w13, activation, w2 and weighted sum are one
kernel in the engines' plans, priced by a class of its own (fitted on aiconfigurator's measured calls), with the
shared experts left as GEMMs. Expected sizes are worked out by hand from the shapes and the storage formats:
MXFP4 is 4 bits a value plus an 8-bit scale per 32 (OCP MX v1.0); Marlin's int4 rows 4 bits plus a bf16 scale per 128;
bf16 2 bytes."""

import attrs
import pytest

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.analysis.validate import ONE_KERNEL, kernel
from opgraph.core.fusion import FuseRule
from opgraph.core.tensor import FP8, Precision
from opgraph.errors import OpgraphError
from opgraph.files import planfile
from opgraph.models import BuildOptions

H200 = hardware.load("h200")
SHAPE = dict(tokens=4, hidden=2880, inter=2880, top_k=4, experts=128)  # gpt-oss-120b's experts, 4 tokens


def _only_kernel(model):
    (block,) = analyze(model, ONE_KERNEL, H200).blocks
    (k,) = block.kernel_costs()
    return k


# bytes of one 2,880-long row of a weight matrix: MXFP4 90 blocks of 32 (16 bytes of values, one byte of scale);
# Marlin's int4 1,440 bytes of values and a bf16 scale per 128 started (ceil(2,880 / 128) = 23); bf16; fp8
ROW_BYTES = {"mxfp4": 90 * (16 + 1), "int4": 1440 + 23 * 2, "bf16": 2880 * 2, "fp8": 2880}


@pytest.mark.parametrize("dtype, cls", [("mxfp4", "moe_w4"), ("int4", "moe_marlin"), ("bf16", "moe"), ("fp8", "moe_fp8")])
def test_a_measured_call_reads_the_experts_its_tokens_touch_and_multiplies_exactly(dtype, cls):
    k = _only_kernel(kernel("moe", dtype, **SHAPE))
    # balanced routing: 4 tokens x top-4 rows over 128 experts touch 16 of them, each with w13 (2 x 2,880 rows of
    # 2,880) and w2 (2,880 rows of 2,880)
    assert k.cost.traffic.weight_bytes == 16 * 3 * 2880 * ROW_BYTES[dtype]
    products = sum(analyze(kernel("moe", dtype, **SHAPE), ONE_KERNEL, H200).blocks[0].graph.ops[n].flops
                   for n in ("experts.gate_proj", "experts.up_proj", "experts.down_proj"))
    assert products == 3 * 2 * 4 * 4 * 2880 * 2880  # 2 FLOPs a multiply-add, each token through its 4 experts
    assert k.kind == cls


def test_every_expert_is_read_once_the_tokens_cover_them():
    k = _only_kernel(kernel("moe", "bf16", **{**SHAPE, "tokens": 64}))  # 256 rows over 128 experts
    assert k.cost.traffic.weight_bytes == 128 * 3 * 2880 * ROW_BYTES["bf16"]


def _work(model):
    from opgraph.pricing.cost import kernel_work
    (block,) = analyze(model, ONE_KERNEL, H200).blocks
    _, (work,) = kernel_work(list(block.graph.ops.values()), {o.name: o.cost for o in block.ops}, H200)
    return work


@pytest.mark.parametrize("tokens, touched, row_blocks", [(4, 16, 16), (64, 128, 128), (1024, 128, 256)])
def test_a_calls_tiles_are_its_experts_row_blocks_times_its_gemms_column_blocks(tokens, touched, row_blocks):
    """vLLM's fused_moe runs one program per 16 rows of an expert and 32 output columns of each GEMM: gpt-oss's
    w13 is 2 x 2,880 = 5,760 columns (180 blocks), w2 2,880 (90): 270 column blocks. 4 tokens x top-4 touch 16 experts
    with one row each (one block each); 64 tokens, 256 rows over all 128 (2 rows each: one block); 1,024 tokens, 4,096
    rows, 32 each: two blocks of 16."""
    work = _work(kernel("moe", "bf16", **{**SHAPE, "tokens": tokens}))
    assert touched * -(-(tokens * 4) // (touched * 16)) == row_blocks
    assert work.tiles == row_blocks * (180 + 90) and work.gemm_rows == tokens * 4
    assert work.gemm_groups == touched  # the grouped GEMM's problems: one per expert touched


def test_the_cost_per_tile_is_what_separates_narrow_experts():
    """Two calls with the same GEMM FLOPs and rows (experts 64 wide over 4,096 hidden, or 4,096 wide over 64 hidden,
    rows of 4 tokens x top-8 over 128 experts) launch different numbers of programs: w13's 128 columns and
    w2's 4,096 (4 + 128 blocks) against 8,192 and 64 (256 + 2). The shipped H100 fit prices the tiles at 1-2 ns each."""
    shapes = [dict(tokens=4, hidden=4096, inter=64, top_k=8, experts=128),
              dict(tokens=4, hidden=64, inter=4096, top_k=8, experts=128)]
    narrow, wide = (_work(kernel("moe", "bf16", **shape)) for shape in shapes)
    gemm_flops = [sum(op.flops for op in analyze(kernel("moe", "bf16", **shape), ONE_KERNEL, H200).blocks[0].graph.ops
                      .values() if op.fn == "linear") for shape in shapes]
    assert gemm_flops[0] == gemm_flops[1] == 3 * 2 * 32 * 4096 * 64 and narrow.gemm_rows == wide.gemm_rows == 32
    assert narrow.tiles == 32 * (4 + 128) and wide.tiles == 32 * (256 + 2)
    per_tile = hardware.load("h100-sxm").timing.classes["moe"].per_tile_s
    assert 1e-9 < per_tile < 2e-9


@pytest.mark.parametrize("plan", ["vllm", "sglang", "trtllm"])
def test_the_engines_run_the_routed_experts_as_one_call_and_the_shared_experts_as_gemms(plan):
    model = models.get("deepseek-v2-lite").build(Phase.decode(4, 128))
    block = next(b for b in analyze(model, strategy(plan), H200).blocks if b.name == "moe_layer")
    by_op = {op: k for k in block.kernel_costs() for op in k.ops}
    call = by_op["experts.gate_proj"]
    assert set(call.ops) == {"experts.gate_proj", "experts.up_proj", "experts.act", "experts.mul",
                             "experts.down_proj", "combine"} and call.kind == "moe"
    assert by_op["shared.gate_proj"].kind == by_op["shared.down_proj"].kind == "gemm"
    assert by_op["shared.gate_proj"] is not by_op["shared.down_proj"] and by_op["router"].kind == "gemm"


def test_the_class_follows_the_experts_storage():
    fp8 = models.get("deepseek-v2-lite").build(Phase.decode(4, 128), BuildOptions(Precision.uniform(FP8)))
    mxfp4 = models.get("gpt-oss-20b").build(Phase.decode(4, 128))  # its checkpoint's MXFP4 experts, bf16 activations
    for model, cls in ((fp8, "moe_fp8"), (mxfp4, "moe_w4")):
        kinds = {k.kind for b in analyze(model, strategy("vllm"), H200).blocks for k in b.kernel_costs()
                 if "experts.down_proj" in k.ops}
        assert kinds == {cls}


def test_a_calibration_without_moe_tables_prices_the_calls_by_its_gemm_tables():
    a100 = hardware.load("a100-sxm").timing  # fitted before the MoE tables existed
    assert (a100.table("moe"), a100.table("moe_w4"), a100.table("moe_marlin"), a100.table("moe_fp8")) == \
        ("gemm", "gemm", "gemm", "gemm")
    assert (H200.timing.table("moe"), H200.timing.table("moe_w4"), H200.timing.table("moe_marlin"),
            H200.timing.table("moe_fp8")) == ("moe", "moe_w4", "moe_marlin", "moe_fp8")


def test_a_call_priced_by_gemm_tables_by_rows_takes_the_table_of_one_experts_rows():
    """On a GPU whose fp8 GEMMs have one table per range of rows and no fused-MoE table (the B200's: m <= 16, <= 64,
    <= 256, more), a call's experts are GEMMs of the rows routed to each: 16 tokens x top-4 of gpt-oss's 128 experts
    are 64 rows over 64 experts, one row each, priced by the m <= 16 table, not the 17-64 one their sum falls in."""
    b200 = hardware.load("b200")
    assert b200.timing.table("moe_fp8") == "gemm_fp8"
    work = _work(kernel("moe", "fp8", **{**SHAPE, "tokens": 16}))
    assert (work.gemm_rows, work.gemm_groups) == (64, 64)
    gemm = b200.timing.classes["gemm_fp8"]
    assert gemm.for_rows(1) is not gemm.for_rows(64)
    from opgraph.pricing.timing import dispatch_rows
    assert gemm.for_rows(dispatch_rows(work)) is gemm.for_rows(1)


def test_the_stacked_rule_fuses_along_edges_only():
    with pytest.raises(OpgraphError, match="stacked"):
        FuseRule("x", siblings=True, stacked=True)


def test_a_plan_file_takes_the_stacked_flag(tmp_path):
    f = tmp_path / "plan.toml"
    f.write_text('name = "p"\n[[rule]]\nname = "experts"\nstacked = "yes"\n')
    with pytest.raises(OpgraphError, match="stacked must be true or false"):
        planfile.load(str(f))
    f.write_text('name = "p"\n[[rule]]\nname = "experts"\nproducer = ["linear", "mul"]\nstacked = true\n')
    assert attrs.asdict(planfile.load(str(f)).rules[0])["stacked"] is True
