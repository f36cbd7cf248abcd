"""Tensors: a name, a shape, a dtype measured in bits, and a role."""

from __future__ import annotations

import enum
import math

import attrs

from opgraph.errors import OpgraphError
from opgraph.core.sizes import is_int


@attrs.frozen
class DType:
    """A storage type. Sizes are in bits so that int4 and fp8 are first-class. A group-quantized type
    also stores one scale of `scale_bits` per `group_size` consecutive elements of a row."""

    name: str
    bits: int
    group_size: int = 0
    scale_bits: int = 0

    def __str__(self) -> str:
        return f"{self.name}/g{self.group_size}" if self.group_size else self.name

    def grouped(self, group_size: int, scale_bits: int = 16) -> "DType":
        """This type with one scale (fp16 by default) per group of `group_size` elements along each row."""
        return attrs.evolve(self, group_size=group_size, scale_bits=scale_bits)


FP64 = DType("fp64", 64)
FP32 = DType("fp32", 32)
TF32 = DType("tf32", 32)
BF16 = DType("bf16", 16)
FP16 = DType("fp16", 16)
FP8 = DType("fp8", 8)
INT8 = DType("int8", 8)
INT4 = DType("int4", 4)
INT32 = DType("int32", 32)  # token ids
INT64 = DType("int64", 64)

# The one dtype table; the lists below name subsets of it.
DTYPES: dict[str, DType] = {d.name: d for d in (FP64, FP32, TF32, BF16, FP16, FP8, INT8, INT4, INT32, INT64)}
STORAGE_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")  # what weights, activations, KV cache are stored as
COMPUTE_DTYPES = ("fp64", "tf32", *STORAGE_DTYPES)  # operand types a GPU spec may give a matrix rate for


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


@attrs.frozen
class Tensor:
    name: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    dtype: DType
    role: Role = Role.ACTIVATION

    def __attrs_post_init__(self) -> None:
        for dim in self.shape:
            if not is_int(dim) or dim <= 0:
                raise OpgraphError(f"tensor {self.name!r}: every dimension must be a positive int, got shape {self.shape}")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return nbytes(self.numel, self.dtype, self.shape[-1])

    def __str__(self) -> str:
        return f"{self.name}[{', '.join(map(str, self.shape))}]:{self.dtype}"


def nbytes(numel: int, dt: DType, row: int) -> int:
    """Bytes to store `numel` elements (whole rows of `row` elements) of `dt`. Sub-byte types pack,
    rounding up to whole bytes. Group-quantized types add ceil(row / group_size) scales per row, as
    GPTQ/AWQ-style kernels store them (a row's last group may be short)."""
    data = -(-numel * dt.bits // 8)
    if not dt.group_size:
        return data
    rows = -(-numel // row)
    return data + -(-rows * -(-row // dt.group_size) * dt.scale_bits // 8)


@attrs.frozen
class Precision:
    """Storage precision per tensor role: weights, activations (and inputs), KV cache; and the embedding tables
    and lm_head, which quantized checkpoints keep unquantized: `tables` None means the activation dtype when
    the weights are narrower than the activations (GPTQ/AWQ int4 and int8, fp8 checkpoints such as
    DeepSeek-V3's), else the weight dtype."""

    weight: DType
    act: DType
    kv: DType
    tables: DType | None = None

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
        return {Role.WEIGHT: self.weight, Role.KV_CACHE: self.kv}.get(role, self.act)
