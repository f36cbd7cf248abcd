"""Weight formats: the bytes of NVFP4, MXFP4, block-scaled fp8, AWQ and GPTQ int4, each derived by hand from the
tensors a checkpoint stores, and the dtype tables a GPU spec's fp4 rate keys into."""

import attrs
import pytest

from opgraph.core.tensor import (BF16, COMPUTE_DTYPES, DTYPES, FP4, FP8, FP8_BLOCK128, INT4, INT8, MXFP4, NVFP4,
                                 STORAGE_DTYPES, DType, Tensor, dtype, nbytes)
from opgraph.errors import OpgraphError


def test_nvfp4_square_matrix():
    # e2m1 packed two per byte + one fp8 e4m3 scale per 16 values of a row + one fp32 global scale (weight_scale_2)
    w = Tensor("w", (4096, 4096), NVFP4)
    assert w.nbytes == 4096 * 4096 // 2 + 4096 * 4096 // 16 + 4


def test_nvfp4_ragged_row():
    # a row of 100 values: 7 groups of 16 (the last short), so 7 one-byte scales per row; 50 bytes of values
    assert nbytes(3 * 100, NVFP4, 100) == 3 * 50 + 3 * 7 + 4


def test_nvfp4_expert_stack_counts_a_global_scale_per_matrix():
    # 8 experts [8, 1024, 2048]: per expert 1024*2048/2 + 1024*2048/16 + 4 bytes
    per = 1024 * 2048 // 2 + 1024 * 2048 // 16 + 4
    assert nbytes(8 * 1024 * 2048, NVFP4, 2048, matrix_rows=1024) == 8 * per
    # without matrix_rows the elements are one matrix: one global scale
    assert nbytes(8 * 1024 * 2048, NVFP4, 2048) == 8 * per - 7 * 4


def test_mxfp4_gpt_oss_expert():
    # gpt-oss-20b gate_up_proj of one expert: [5760, 2880] as *_blocks uint8 [5760, 90, 16] + *_scales uint8 [5760, 90]
    assert Tensor("w", (5760, 2880), MXFP4).nbytes == 5760 * 90 * 16 + 5760 * 90
    assert 5760 * 90 * 16 == 5760 * 2880 // 2


def test_fp8_block_scaled_deepseek_v3():
    # DeepSeek-V3 q_b_proj [24576, 1536]: fp8 bytes + fp32 weight_scale_inv [192, 12]
    assert Tensor("w", (24576, 1536), FP8_BLOCK128).nbytes == 24576 * 1536 + 192 * 12 * 4
    # kv_a_proj_with_mqa [576, 7168]: 576 rows are 4.5 blocks, so ceil -> 5 block rows
    assert Tensor("w", (576, 7168), FP8_BLOCK128).nbytes == 576 * 7168 + 5 * 56 * 4
    # a ragged column count too: [300, 200] -> ceil(300/128) = 3 by ceil(200/128) = 2 blocks
    assert nbytes(300 * 200, FP8_BLOCK128, 200) == 300 * 200 + 3 * 2 * 4


def test_fp8_block_stack_per_matrix():
    # 4 experts of [200, 256]: each ceil(200/128)=2 x 2 blocks; as one matrix of 800 rows it would be 7 x 2
    assert nbytes(4 * 200 * 256, FP8_BLOCK128, 256, matrix_rows=200) == 4 * 200 * 256 + 4 * 2 * 2 * 4
    assert nbytes(4 * 200 * 256, FP8_BLOCK128, 256) == 4 * 200 * 256 + 7 * 2 * 4


def test_awq_int4_g128():
    # AutoAWQ GEMM: qweight int32 [K, N/8], scales fp16 [K/128, N], qzeros int32 [K/128, N/8]; W is [N, K] here
    n, k = 11008, 4096
    awq = INT4.grouped(128, scale_bits=16, zero_bits=4)
    assert Tensor("w", (n, k), awq).nbytes == k * n // 8 * 4 + (k // 128) * n * 2 + (k // 128) * (n // 8) * 4


def test_gptq_int4_g128_with_g_idx():
    # GPTQ: qweight [K/8, N] int32, scales [K/128, N] fp16, qzeros [K/128, N/8] int32, g_idx [K] int32
    n, k = 4096, 11008
    gptq = attrs.evolve(INT4.grouped(128, scale_bits=16, zero_bits=4), index_bits=32)
    groups = -(-k // 128)  # 86 groups: 11008 = 86 * 128
    assert Tensor("w", (n, k), gptq).nbytes == k * n // 2 + groups * n * 2 + groups * n // 2 + k * 4


def test_per_channel_and_per_tensor_fp8():
    assert nbytes(10 * 64, attrs.evolve(FP8, scale_bits=32), 64) == 640 + 10 * 4  # one fp32 scale per row
    assert nbytes(10 * 64, attrs.evolve(FP8, tensor_bits=32), 64) == 640 + 4  # one per matrix


def test_existing_results_unchanged():
    # group-quantized types and plain types cost exactly what they did
    assert nbytes(3 * 200, INT8.grouped(128), 200) == 3 * 200 + 3 * 2 * 2
    assert Tensor("w", (4096, 4096), INT4.grouped(128)).nbytes == 4096 * 4096 // 2 + 4096 * 32 * 2
    assert Tensor("x", (3, 5), BF16).nbytes == 30
    assert nbytes(7, INT4, 7) == 4
    assert str(INT4.grouped(128)) == "int4/g128"
    assert str(BF16) == "bf16"


def test_names_and_tables():
    # nvfp4 and mxfp4 multiply as fp4 (the rate a spec gives); their labels name the format
    assert NVFP4.name == MXFP4.name == FP4.name == "fp4"
    assert (str(NVFP4), str(MXFP4), str(FP8_BLOCK128)) == ("nvfp4", "mxfp4", "fp8/b128x128")
    assert dtype("nvfp4") is NVFP4 and dtype("mxfp4") is MXFP4
    assert {"nvfp4", "mxfp4"} <= set(STORAGE_DTYPES) <= set(DTYPES)
    assert "fp4" in COMPUTE_DTYPES
    assert {DTYPES[n].name for n in STORAGE_DTYPES} <= set(COMPUTE_DTYPES)


@pytest.mark.parametrize("kwargs", [dict(bits=0), dict(bits=4, group_size=-1, scale_bits=8),
                                    dict(bits=4, group_size=16), dict(bits=8, block_rows=128)])
def test_bad_dtype_fields(kwargs):
    with pytest.raises(OpgraphError):
        DType("x", **kwargs)
