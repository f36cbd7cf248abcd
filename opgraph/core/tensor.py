"""Tensors: a name, a shape, a dtype measured in bits, and a role."""

from __future__ import annotations

import enum
import math

import attrs

from opgraph.errors import OpgraphError
from opgraph.core.sizes import is_int


@attrs.frozen
class DType:
    """A storage type. Sizes are in bits so that int4 and fp8 are first-class. `name` is the operand type the
    matrix units multiply (what a GPU spec rates and the time model classes by: nvfp4 and mxfp4 are both fp4);
    `label`, when given, names the storage format (`nvfp4`) for display.

    A quantized type also stores scales, laid out as the checkpoints and kernels store them (nbytes counts them):

    - `scale_bits` > 0: one scale of that many bits per block of `block_rows` x `group_size` elements, where
      group_size runs along a row (the last, input dimension of a [out, in] weight, as GPTQ/AWQ/NVFP4/MXFP4
      group) and block_rows down the rows; group_size 0 is the whole row (per-channel scales), block_rows 0
      is one row (row groups, as `grouped`), block_rows > 0 a 2-D block (DeepSeek-V3's 128 x 128 fp8 blocks).
    - `zero_bits`: one zero point of that many bits per scale block, packed (AWQ/GPTQ's int4 qzeros).
    - `tensor_bits`: bits stored once per matrix (NVFP4's fp32 per-tensor global scale).
    - `index_bits`: bits stored per input column of each matrix (GPTQ's g_idx: an int32 group index each).

    `quantizes_input` (a weight's type): the GEMMs that read the weight quantize their activation input to the
    weight's operand type each call, so the product runs on that type's matrix units while the activations between
    kernels keep their own type (W8A8: vLLM's Fp8LinearMethod and TensorRT-LLM's fp8 linears quantize a bf16 input
    per token or per tensor; W4A4: NVFP4 on Blackwell). Without it a weight narrower than the activations is
    weight-only: dequantized in the GEMM and multiplied at the activations' type.
    """

    name: str
    bits: int
    group_size: int = 0
    scale_bits: int = 0
    block_rows: int = 0
    zero_bits: int = 0
    tensor_bits: int = 0
    index_bits: int = 0
    label: str = ""
    quantizes_input: bool = False

    def __attrs_post_init__(self) -> None:
        for f in ("bits", "group_size", "scale_bits", "block_rows", "zero_bits", "tensor_bits", "index_bits"):
            v = getattr(self, f)
            if not is_int(v) or v < 0:
                raise OpgraphError(f"dtype {self.name!r}: {f} must be a non-negative int, got {v!r}")
        if self.bits == 0:
            raise OpgraphError(f"dtype {self.name!r}: bits must be positive")
        if not self.scale_bits and (self.group_size or self.block_rows or self.zero_bits):
            raise OpgraphError(f"dtype {self.name!r}: group_size, block_rows and zero_bits need scales (scale_bits > 0)")

    def __str__(self) -> str:
        return self._format() + (f" (w{self.bits}a{self.bits})" if self.quantizes_input else "")

    def _format(self) -> str:
        if self.label:
            return self.label
        if not self.scale_bits:
            text = self.name
        elif self.block_rows:
            text = f"{self.name}/b{self.block_rows}x{self.group_size or 'row'}"
        elif self.group_size:
            text = f"{self.name}/g{self.group_size}"
        else:
            text = f"{self.name}/row"
        return text + ("+zp" if self.zero_bits else "") + ("+gidx" if self.index_bits else "") + (
            "+ts" if self.tensor_bits else "")

    def with_input_quantized(self, on: bool = True) -> "DType":
        """This weight type with its GEMMs' input quantized to it (`on`) or dequantized weight-only (see the class)."""
        return attrs.evolve(self, quantizes_input=on)

    def grouped(self, group_size: int, scale_bits: int = 16, zero_bits: int = 0) -> "DType":
        """This type with one scale (fp16 by default) per group of `group_size` elements along each row, and a
        zero point of `zero_bits` per group if given (AWQ and GPTQ: fp16 scales, packed int4 zeros)."""
        return attrs.evolve(self, group_size=group_size, scale_bits=scale_bits, zero_bits=zero_bits, label="")

    def blocked(self, block_rows: int, group_size: int, scale_bits: int = 32) -> "DType":
        """This type with one scale (fp32 by default) per 2-D block of block_rows x group_size elements:
        DeepSeek-V3's and Qwen3-FP8's fp8 weights, `weight_block_size: [128, 128]`."""
        return attrs.evolve(self, group_size=group_size, scale_bits=scale_bits, block_rows=block_rows, label="")


FP64 = DType("fp64", 64)
FP32 = DType("fp32", 32)
TF32 = DType("tf32", 32)
BF16 = DType("bf16", 16)
FP16 = DType("fp16", 16)
FP8 = DType("fp8", 8)
INT8 = DType("int8", 8)
INT4 = DType("int4", 4)
FP4 = DType("fp4", 4)  # e2m1 values alone; the matrix operand type of NVFP4 and MXFP4
INT32 = DType("int32", 32)  # token ids
INT64 = DType("int64", 64)
# NVFP4 (NVIDIA; ModelOpt and compressed-tensors checkpoints): e2m1 values, one fp8 e4m3 scale per 16 consecutive
# values of a row, and one fp32 global scale per matrix (weight_scale_2 / weight_global_scale).
NVFP4 = DType("fp4", 4, group_size=16, scale_bits=8, tensor_bits=32, label="nvfp4")
# MXFP4 (OCP Microscaling Formats v1.0; gpt-oss's *_blocks / *_scales): e2m1 values, one e8m0 scale per 32 values.
MXFP4 = DType("fp4", 4, group_size=32, scale_bits=8, label="mxfp4")
# Block-scaled fp8 as DeepSeek-V3 and Qwen3-FP8 store it: e4m3 weights, one fp32 scale (weight_scale_inv) per
# 128 x 128 block, ceil(rows/128) x ceil(cols/128) of them.
FP8_BLOCK128 = FP8.blocked(128, 128)
# DeepSeek-V4's KV-cache entry of 512 values as FlashMLA stores it, the layout its attention is trained for and vLLM
# and SGLang serve (vLLM's fp8_ds_mla; SGLang's DeepSeekV4SingleKVPool): the 448 values without rope in fp8 with a
# ue8m0 scale per 64 (7 bytes) and a pad byte, the 64 rope values in bf16; 584 bytes, counted as 512 one-byte values
# and 72 bytes more an entry (the scales, the pad and the rope values' second bytes).
FP8_DS_MLA = DType("fp8", 8, group_size=512, scale_bits=8 * 72, label="fp8_ds_mla")
# Per-tensor fp8 (vLLM's Fp8Config without weight_block_size, ModelOpt's FP8): one fp32 scale per matrix.
FP8_TENSOR = attrs.evolve(FP8, tensor_bits=32)

# The one dtype table; the lists below name subsets of it. nvfp4 and mxfp4 are keyed by their format (label);
# their `name` is fp4, the operand type (see DType).
DTYPES: dict[str, DType] = {
    **{d.name: d for d in (FP64, FP32, TF32, BF16, FP16, FP8, INT8, INT4, FP4, INT32, INT64)},
    **{d.label: d for d in (NVFP4, MXFP4)},
}
# what weights, activations, KV cache are stored as
STORAGE_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
# operand types a GPU spec may give a matrix rate for (DType.name of every storage type, plus fp64 and tf32)
COMPUTE_DTYPES = ("fp64", "tf32", "fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")


def dtype(name: str) -> DType:
    """Look a dtype up by name, with an error that lists the valid names."""
    try:
        return DTYPES[name]
    except KeyError:
        raise OpgraphError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}") from None


class Role(enum.Enum):
    WEIGHT = "weight"
    ACTIVATION = "activation"
    KV_CACHE = "kv_cache"
    INPUT = "input"
    # A fixed-size recurrent state held between steps (a state-space or linear-attention layer's conv and SSM
    # states): read from the cache, updated in place, so a step writes it whole whatever the context.
    STATE = "state"


@attrs.frozen
class Tensor:
    name: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    dtype: DType
    role: Role = Role.ACTIVATION
    # A KV-cache tensor another layer wrote and holds (DeepSeek-V4.1's kv_source_layer_ids: layers that attend to
    # an earlier layer's compressed entries), or a weight another layer holds (Zamba2's shared transformer blocks):
    # read here, held in memory once, by its owner.
    borrowed: bool = attrs.field(default=False, kw_only=True, repr=False)

    def __attrs_post_init__(self) -> None:
        for dim in self.shape:
            if not is_int(dim) or dim <= 0:
                raise OpgraphError(f"tensor {self.name!r}: every dimension must be a positive int, got shape {self.shape}")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return nbytes(self.numel, self.dtype, self.shape[-1], self.matrix_rows)

    @property
    def matrix_rows(self) -> int | None:
        """The rows of one matrix of a stack ([E, N, K] experts: N), so scales count per matrix; None: one matrix."""
        return self.shape[-2] if len(self.shape) > 2 else None

    def __str__(self) -> str:
        return f"{self.name}[{', '.join(map(str, self.shape))}]:{self.dtype}"


def nbytes(numel: int, dt: DType, row: int, matrix_rows: int | None = None) -> int:
    """Bytes to store `numel` elements (whole rows of `row` elements) of `dt`. Sub-byte types pack,
    rounding up to whole bytes. Scaled types add their scales (see DType), each kind of extra rounded up to whole
    bytes as a tensor of its own:

    - row groups (block_rows 0): ceil(row / group_size) scales per row, as GPTQ/AWQ-style kernels store them (a
      row's last group may be short); group_size 0: one scale per row;
    - 2-D blocks: ceil(rows / block_rows) x ceil(row / group_size) scales per matrix, as DeepSeek-V3's
      weight_scale_inv [ceil(N/128), ceil(K/128)] (vLLM's Fp8LinearMethod allocates the same shape);
    - zero points: zero_bits per scale, packed; tensor_bits once per matrix; index_bits per column per matrix.

    `matrix_rows` is the rows of one matrix (shape[-2]) when the elements are a stack of matrices ([E, N, K]
    experts), so that per-matrix extras and 2-D blocks count per matrix; None takes the elements as one matrix,
    which is exact for a 2-D weight and for stacks whose matrices' rows are a multiple of block_rows."""
    data = -(-numel * dt.bits // 8)
    if not (dt.scale_bits or dt.tensor_bits or dt.index_bits):
        return data
    rows = -(-numel // row)
    if matrix_rows is None:
        mats, per_matrix = 1, rows
    else:
        mats, per_matrix = -(-rows // matrix_rows), matrix_rows
    groups = -(-row // dt.group_size) if dt.group_size else 1
    blocks = (mats * -(-per_matrix // dt.block_rows) if dt.block_rows else rows) * groups
    extra = 0
    if dt.scale_bits:
        extra = extra + -(-blocks * dt.scale_bits // 8)
    if dt.zero_bits:
        extra = extra + -(-blocks * dt.zero_bits // 8)
    if dt.tensor_bits:
        extra = extra + -(-mats * dt.tensor_bits // 8)
    if dt.index_bits:
        extra = extra + -(-mats * row * dt.index_bits // 8)
    return data + extra


@attrs.frozen
class Precision:
    """Storage precision per tensor role: weights, activations (and inputs), KV cache; and the embedding tables
    and lm_head, which quantized checkpoints keep unquantized: `tables` None means the activation dtype when
    the weights are narrower than the activations (GPTQ/AWQ int4 and int8, fp8 checkpoints such as
    DeepSeek-V3's), else the weight dtype.

    `state`: the recurrent state of state-space and linear-attention layers (Role.STATE: Mamba-2's SSM state,
    Gated DeltaNet's delta-rule state). None means the activation dtype (the model's own), as vLLM keeps it by
    default (mamba_ssm_cache_dtype="auto" takes the model's dtype); transformers keeps the SSM state in fp32 instead
    (and some checkpoints ask for it, e.g. mamba_ssm_dtype="float32" in Qwen3.5's config): give fp32 to cost that.
    The short convolution's window (also Role.STATE) is not this state: vLLM keeps it at mamba_cache_dtype, the
    model's dtype, whatever mamba_ssm_cache_dtype says (MambaStateDtypeCalculator._mamba_state_dtype), so the
    layers that build it store it at the activation dtype."""

    weight: DType
    act: DType
    kv: DType
    tables: DType | None = None
    state: DType | None = None

    @property
    def table(self) -> DType:
        """What embedding tables and lm_head are stored as."""
        if self.tables is not None:
            return self.tables
        return self.act if self.weight.bits < self.act.bits else self.weight

    @classmethod
    def uniform(cls, dt: DType) -> "Precision":
        return cls(dt, dt, dt)

    def of(self, role: Role) -> DType:
        if role is Role.STATE:
            return self.act if self.state is None else self.state
        return {Role.WEIGHT: self.weight, Role.KV_CACHE: self.kv}.get(role, self.act)
