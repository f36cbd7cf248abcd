"""Fused-MoE calls: the routed experts' GEMMs (w13, then w2), their activation and the weighted sum, one class per
compute dtype, as engines run them in one call (vLLM's and SGLang's fused_experts, TensorRT-LLM's MoE op) and as
aiconfigurator times them whole.

A kernel that multiplies by a stack of per-expert matrices ([experts, out, in], ops of the `moe` part: the routed
experts, models.pieces.moe) is this class; the shared experts beside them (plain matrices) stay GEMMs. Inside such a
kernel the activation and the weighted sum are priced with it (one fixed cost for the call, fitted whole). Its class
is that of the experts' compute dtype: `moe` for bf16 and fp16 activations and weights, `moe_w4` for 4-bit weights
(MXFP4, as OpenAI's Triton kernels run gpt-oss's experts on Hopper) at bf16 or fp16, `moe_marlin` for int4 experts
(Marlin's kernel, the one vLLM and SGLang run them with: fused_marlin_moe), `moe_<dtype>` for another compute dtype
(moe_fp8: fp8 experts times fp8 activations). Marlin reaches about half the Triton kernel's share of the peak on
thousands of tokens (measured, docs/measured-times.md), so an engine that runs MXFP4 experts through Marlin (vLLM with
VLLM_MXFP4_USE_MARLIN=1) prices them by Marlin's table (marlin()). A calibration without
a table of its own prices these kernels by the GEMM class of the same dtype (gemm, gemm_fp8). Its shape features are
the grouped GEMM's (_features): rows, every token once per expert it is routed to, and the programs its GEMMs launch
(tiles); its fitted parameters a fixed cost for the call, the achieved shares of the peaks, their overlap, a cost per
row and a cost per tile.

A measured row is one call: `tokens` tokens of `hidden` values each routed to `top_k` of `experts` experts,
balanced (every expert gets an equal share of the tokens x top_k rows, so min(experts, tokens x top_k) experts'
weights are read), through w13 [2 x inter, hidden] and w2 [hidden, inter] (inter: one GPU's share of the width under
MoE tensor parallelism), SiLU x mul between them, then the weighted sum over each token's top_k outputs. Its dtype is
the experts' weight storage: bf16, fp8 (fp8 activations too), int4 (in groups of 128 with bf16 scales, as Marlin
runs them) or mxfp4 (gpt-oss's); the activations are bf16 unless the weights are fp8. The routing (router GEMM,
softmax, top-k) is not in the row.
"""

from __future__ import annotations

import attrs

from opgraph.core.tensor import BF16, COMPUTE_DTYPES, DTYPES, Precision
from opgraph.pricing.kinds import KERNEL_PARAMS, PER_ROW, PER_TILE, KernelClass, Row
from opgraph.pricing.kinds.gemm import DTYPES as GEMM_DTYPES
from opgraph.pricing.kinds.gemm import gemm_class

MOE = "moe"
WEIGHT_ONLY = f"{MOE}_w4"  # 4-bit weights dequantized in the GEMM's main loop, 16-bit activations
# int4 experts through Marlin's kernel (vllm/model_executor/layers/fused_moe/fused_marlin_moe.py)
MARLIN = f"{MOE}_marlin"
PART = "moe"  # the part tag models.pieces.moe gives its ops
INT4_GROUP = 128  # aiconfigurator's int4_wo rows: Marlin's w4a16 with one bf16 scale per 128 (collect_moe.py)


def moe_class(dtype: str, weight_bits: int = 16, weight: str = "") -> str:
    """The class of a fused-MoE call whose experts multiply as `dtype` (op.compute_dtype.name) with weights of
    `weight_bits` stored as `weight` (a dtype name): weight-only 4-bit experts (int4 through Marlin, gpt-oss's MXFP4
    on Hopper) unpack every weight in the GEMM's main loop, so their compute runs at a share of the peak of their
    own."""
    if dtype in GEMM_DTYPES:
        if weight_bits > 4:
            return MOE
        return MARLIN if weight == "int4" else WEIGHT_ONLY
    return f"{MOE}_{dtype}"


def marlin(why: str) -> tuple[str, str, str]:
    """MXFP4 experts priced as Marlin runs them, by its table (fitted on int4 calls: the same kernel on 4-bit
    weights), as TimeModel.priced_as's arguments (an Engine's `tables` entry); `why` names the setting."""
    return WEIGHT_ONLY, MARLIN, why


def is_expert_gemm(op) -> bool:
    """A routed experts' product: a stack of per-expert matrices, in the moe part."""
    return op.fn == "linear" and op.part == PART and len(op.inputs[1].shape) == 3


def _named(ops) -> str:
    return next(moe_class(op.compute_dtype.name, op.inputs[1].dtype.bits, op.inputs[1].dtype.name)
                for op in ops if is_expert_gemm(op))


def _features(ops) -> dict:
    """The call's grouped GEMM as one: its rows are every token once per expert it goes to (the sum of the experts'
    m), its depth the hidden size, its columns the first expert GEMM's and those beside it on the same input (w13's
    gate and up). A cost per row (the routing's bookkeeping, each row gathered and scattered) is fitted on them, and
    one per tile: the programs the call's GEMMs launch (_tiles)."""
    gemms = [op for op in ops if is_expert_gemm(op)]
    first = gemms[0]
    x, w = first.inputs[0], first.inputs[1]
    rows = first.outputs[0].shape[-1] // w.shape[1]  # the groups each row of x runs through: top_k, or 1 when routed
    for d in x.shape[:-1]:
        rows = rows * d
    cols = sum(op.inputs[1].shape[1] for op in gemms if op.inputs[0].name == x.name)
    touched = first.reads[1] // (w.shape[1] * w.shape[2])  # the experts whose weights the call reads
    widths = [cols] + [op.inputs[1].shape[1] for op in gemms if op.inputs[0].name != x.name]
    return {"gemm_rows": rows, "gemm_depth": w.shape[2], "gemm_cols": cols, "tiles": _tiles(rows, touched, widths),
            "gemm_groups": touched}


# vLLM's fused_moe Triton kernel (vllm/model_executor/layers/fused_moe/fused_moe.py) runs one program per
# BLOCK_SIZE_M rows of one expert (moe_align_block_size pads each expert's rows to the block) and BLOCK_SIZE_N output
# columns, for each of its two GEMMs; its default tile at decode sizes (get_default_config, M <= E) is 16 x 32.
# Fitted on the H100's measured calls, 16 x 32, 16 x 64 and 16 x 128 fit alike (64 x 64 worse), each program
# costing 1.3-1.5 ns (H100 and H200): experts cut into narrow slivers by tensor parallelism run many programs for
# few bytes, which neither bytes nor rows count.
TILE_M, TILE_N = 16, 32


def _tiles(rows, touched, widths) -> int:
    """Programs of a call: the touched experts' rows in TILE_M blocks (rows spread evenly), times each GEMM's output
    columns in TILE_N blocks."""
    row_blocks = touched * -(-rows // (touched * TILE_M))
    return row_blocks * sum(-(-n // TILE_N) for n in widths)


def _precision(dtype: str) -> Precision:
    """A measured row's storage: its experts' weights in `dtype`, bf16 activations (fp8 with fp8 weights)."""
    if dtype == "fp8":
        return Precision.uniform(DTYPES["fp8"])
    weight = DTYPES[dtype].grouped(INT4_GROUP) if dtype == "int4" else DTYPES[dtype]
    return Precision(weight=weight, act=BF16, kv=BF16)


def _build(b, s: dict) -> list:
    tokens, d, f, k, e = s["tokens"], s["hidden"], s["inter"], s["top_k"], s["experts"]
    touched = min(e, tokens * k)  # balanced routing

    def experts(name: str, h, n: int, width: int, out: str):  # each token's rows through its top_k experts
        w = b.weight(f"mlp.experts.{name}.weight", (e, n, width))
        return b.grouped_linear(f"experts.{name}", h, w, groups=k, in_dim=width, out_dim=n,
                                weight_reads=touched * n * width, out=out)

    with b.scope(part=PART):
        x = b.input("x", (tokens, d))
        gate, up = experts("gate_proj", x, f, d, "expert_gate"), experts("up_proj", x, f, d, "expert_up")
        h = b.elementwise("experts.mul", "mul", b.elementwise("experts.act", "silu", gate, out="expert_act"), up,
                          out="expert_gated")
        y = experts("down_proj", h, d, f, "expert_out")
        b.moe_combine("combine", y, b.input("routing_weights", (tokens, k)), top_k=k, out="out")
    return []


ROW = Row("moe", ("tokens", "hidden", "inter", "top_k", "experts"),
          "a fused-MoE call over `tokens` tokens, balanced over `experts` experts, top_k each: w13, SiLU x mul, w2 of "
          "width `inter` (one GPU's), the weighted sum; dtype is the experts' weights'", _build, precision=_precision)
CLASS = KernelClass(MOE, is_expert_gemm, 35, named=_named, kinds=frozenset({"matmul"}), features=_features, rows=(ROW,),
                    # in the vector group: the activation and the weighted sum inside a call are priced with it
                    group="vector", fitted=(*KERNEL_PARAMS, PER_ROW, PER_TILE), fallback=gemm_class("bf16"),
                    by_dtype=lambda dtype: moe_class("fp8" if dtype == "fp8" else "bf16", DTYPES[dtype].bits, dtype),
                    about="fused-MoE calls (the routed experts' GEMMs, activation and weighted sum), bf16 or fp16")
# Weight-only 4-bit experts, priced by `moe`'s table where a calibration has none of their own; one class per other
# compute dtype, priced by that dtype's GEMM table.
CLASSES = (CLASS, attrs.evolve(CLASS, name=WEIGHT_ONLY, rows=(), fallback=MOE,
                               about="fused-MoE calls of 4-bit weights (MXFP4) at bf16 or fp16"),
           attrs.evolve(CLASS, name=MARLIN, rows=(), fallback=WEIGHT_ONLY,
                        about="fused-MoE calls of int4 weights at bf16 or fp16, through Marlin's kernel"),
           *(attrs.evolve(CLASS, name=moe_class(d), rows=(), fallback=gemm_class(d), about=f"fused-MoE calls in {d}")
             for d in COMPUTE_DTYPES if moe_class(d) != MOE))
