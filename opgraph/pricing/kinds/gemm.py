"""GEMMs: matrix products with a weight, y[m, n] = x[m, k] @ W[n, k]^T, one class per compute dtype.

A kernel that multiplies matrices (and computes no attention scores) is a GEMM. Its class is that of its first
matrix product's compute dtype (op.compute_dtype: the activations' type, the operands the matrix units multiply):
bf16 and fp16 are `gemm`, any other `gemm_<dtype>` (gemm_fp8: fp8 activations times fp8 weights on the fp8 tensor
cores, the activations fp8 throughout or quantized by the GEMM, W8A8 (DType.quantizes_input); weights quantized
weight-only multiply at the activations' type, so they stay `gemm`). The roofline already
takes that dtype's matrix peak; a class adds its own efficiencies and fixed cost, and a calibration without a
gemm_<dtype> table prices those GEMMs by its `gemm` one.

Its formula reads the m, k and n of the kernel's first product with a weight (all its outputs' columns: a matrix
whose row blocks feed several ops is one GEMM): tiles (m padded to tile_m, n to tile_n, tiles in waves of the GPU's
SMs), a cost per activation row and per input element (vLLM's fp8 layers quantize their bf16 input per token in a
kernel of their own; bf16 GEMMs fit both to 0). The fit tries rows padded to each of TILES, and, where the spec gives
its SMs, WAVE_TILES output tiles in waves: CUTLASS's and cuBLAS's common Hopper tile shapes.
"""

from __future__ import annotations

import attrs

from opgraph.core.tensor import COMPUTE_DTYPES
from opgraph.pricing.kinds import KERNEL_PARAMS, PER_ROW, KernelClass, Param, Row

GEMM = "gemm"
DTYPES = ("bf16", "fp16")  # the compute dtypes of the gemm class; any other is gemm_<dtype>
TILES = (1, 16, 32, 64, 128)
WAVE_TILES = ((64, 64), (64, 128), (128, 64), (128, 128))
PER_INPUT = Param("per_input_s", 1e-12, 0.0, 1e-9)  # per activation input element (fp8: its quantization)
# One output tile's k-loop is serial: a GEMM of few tiles takes per_depth_s a unit of k, until the library splits k
# across SMs (cuBLAS's split-K) at split_depth. Measured: bf16 m 1-512, n 128 flat at ~6 us for k >= 2,560.
PER_DEPTH = Param("per_depth_s", 1e-9, 0.0, 1e-7)
SPLIT_DEPTH = Param("split_depth", 2048.0, 64.0, 1e6)


def gemm_class(dtype: str) -> str:
    """The class of a matrix product whose operands multiply as `dtype` (op.compute_dtype.name).

    >>> gemm_class("bf16"), gemm_class("fp16"), gemm_class("fp8"), gemm_class("int8")
    ('gemm', 'gemm', 'gemm_fp8', 'gemm_int8')
    """
    return GEMM if dtype in DTYPES else f"{GEMM}_{dtype}"


def _takes(op) -> bool:
    return op.kind == "matmul"


def _named(ops) -> str:
    return next(gemm_class(op.compute_dtype.name) for op in ops if op.kind == "matmul")


def _features(ops) -> dict:
    """The m, k and n of the kernel's GEMM: its first product with a weight, and the columns of every product in the
    kernel that reads the same activation (products fused side by side, as QKV, are one GEMM over their weights)."""
    for op in ops:
        if op.fn == "linear":
            x, rows = op.inputs[0], 1
            for d in x.shape[:-1]:
                rows = rows * d
            cols = sum(y.shape[-1] for o in ops if o.fn == "linear" and o.inputs[0].name == x.name
                       for y in o.outputs)
            return {"gemm_rows": rows, "gemm_depth": x.shape[-1], "gemm_cols": cols}
    return {}


def _tilings(sms: int | None) -> list[tuple[int, int, int]]:
    """Rows padded to each of TILES; where the GPU's SM count is known, WAVE_TILES output tiles in waves of one per SM.

    >>> _tilings(132)[-1], len(_tilings(None))
    ((128, 128, 132), 5)
    """
    return [(t, 1, 0) for t in TILES] + ([(m, n, sms) for m, n in WAVE_TILES] if sms else [])


def _build(b, s: dict) -> list:
    x = b.input("x", (s["m"], s["k"]))
    b.linear("gemm", x, b.weight("w", (s["n"], s["k"])), out="y")
    return []


def _bench(torch, dt, s: dict, dev: str):
    x, w = torch.randn(s["m"], s["k"], dtype=dt, device=dev), torch.randn(s["n"], s["k"], dtype=dt, device=dev)
    return lambda: torch.nn.functional.linear(x, w)


ROW = Row("gemm", ("m", "n", "k"), "[m, k] activations times a k -> n weight (torch.nn.Linear's y = x W^T); x, W and "
          "y all of the row's dtype", _build, _bench)
CLASS = KernelClass(GEMM, _takes, 40, named=_named, kinds=frozenset({"matmul"}), features=_features, rows=(ROW,),
                    fitted=(*KERNEL_PARAMS, PER_ROW, PER_INPUT, PER_DEPTH, SPLIT_DEPTH), tilings=_tilings, by_dtype=gemm_class,
                    about="matrix products with a weight, bf16 or fp16")
# One class per other compute dtype, priced by `gemm`'s table where a calibration has none of its own.
CLASSES = (CLASS, *(attrs.evolve(CLASS, name=gemm_class(d), rows=(), fallback=GEMM, about=f"matrix products in {d}")
                    for d in COMPUTE_DTYPES if gemm_class(d) != GEMM))
