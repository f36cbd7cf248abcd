"""Extract measured H100 SXM kernel timings from NVIDIA's aiconfigurator-core wheel into opgraph's measurement CSV.

Source: the PyPI package `aiconfigurator-core` 0.12.0 (Apache-2.0, NVIDIA; `License-Expression: Apache-2.0` in its
METADATA), tables under `aiconfigurator_core/systems/data/<gpu>/`: kernels profiled on each GPU in each serving
framework. Latencies there are in milliseconds; here in microseconds.

Kept, bf16 only (the precision the shipped calibration targets), except vLLM's fp8 GEMMs (below):
- `gemm`: `gemm_perf` rows with gemm_dtype bfloat16 (m x k activations times a k -> n weight);
- `prefill_attention`: `context_attention_perf`, causal, no window, bf16 KV cache (batch, seq_len = isl);
- `decode_attention`: `generation_attention_perf`, no window, bf16 KV cache; one new token attends over
  isl + step keys, so context (tokens already cached) = isl + step - 1;
- `all_reduce`: `comm/<framework>/custom_allreduce_perf`, bf16, as captured in a CUDA graph (the way serving engines
  run decode; vLLM's and SGLang's `*_graph` backends, TensorRT-LLM's own kernel), every row; its message_size is
  the number of elements (aiconfigurator sizes it tokens x hidden). These rows come last, so adding them left the
  other classes' held-out split unchanged.
- `ep_dispatch`, `ep_combine` (vLLM files only, after the all-reduces, so again no other row's split moves):
  `comm/vllm/<newest>/moe_a2a_perf`, the expert-parallel all-to-alls of vLLM 0.24.0's DeepEP prepare (dispatch)
  and finalize (combine), each timed alone between CUDA events (the mean of 10 after 3 warm-ups) on bf16 tokens with
  random top_k experts per token, no quantization (aiconfigurator's collector,
  collector/wideep/vllm/collect_moe_a2a.py: `FusedMoEQuantConfig.make(None)`, `use_fp8_dispatch=False`; the
  table's comm_dtype "default" is that bf16). Its `latency` is in microseconds (transmit_us + notify_us), not
  milliseconds. The package has it for the H100 SXM, H200, B200 and B300 (not the A100 SXM or L40S): 8 GPUs of one
  node (ep_size 8, node_num 1; collection_meta.yaml: campaign_node_counts 1, NVLink only), and for the GB200 and
  GB300 at 4 GPUs (ep_size 4, node_num 1), hidden 3072 to 7168,
  top_k 6 or 8, 256 or 384 experts (not a column here: uniform routing's mean load does not depend on it). Kept:
  every DeepEP low-latency row (`deepep_ll`, 1 to 256 tokens per GPU: the decode kernel; vLLM sizes its buffer for
  VLLM_MOE_DP_CHUNK_SIZE, 256 by default, tokens per GPU, where the table stops) and the high-throughput rows
  (`deepep_ht`, 20 SMs, 16 to 65,536 tokens) above 256 tokens per GPU (prefill): at each token count the kernel
  a deployment that decodes low-latency and prefills high-throughput (as vLLM's expert-parallel guide pairs them)
  runs. Left out: the high-throughput rows of 16 to 256 tokens (the low-latency rows' shapes, up to 5 times slower:
  a fixed cost of about 0.3 ms a dispatch that one all-to-all class cannot price beside the low-latency kernel's
  50 us), the H100's DeepEP v2 rows (`deepep_v2_*`, an overlay build of a newer DeepEP, on that GPU only), and any
  row spanning nodes or of another dtype (none in 0.12.0).
- `gemm` with dtype `fp8` (vLLM files only, last of all, so no earlier row's held-out split moves): the vLLM
  `gemm_perf` rows with gemm_dtype `fp8`, for each GPU that has them (H100 SXM, H200, B200, GB200, B300, GB300, L40S,
  RTX PRO 6000: 35,742 shapes each, 35,718 on the L40S; the A100 has no fp8 tensor cores and its table only bf16). What each mode of that table is
  (aiconfigurator's collector, collector/vllm/collect_gemm.py for vLLM 0.24.0, which records the kernel vLLM selected
  as kernel_source; the row's latency is the mean per layer of a RowParallelLinear forward on bf16 input):
  * `bfloat16` (torch.nn.functional.linear, cuBLAS): the bf16 rows above;
  * `fp8` (CutlassFP8ScaledMMLinearKernel): Fp8Config without weight blocks and with dynamic activations: e4m3
    weights with one scale per tensor, the bf16 activations quantized to e4m3 in the layer's forward with scales
    computed from them (dynamic; one per token, which vLLM's Fp8LinearMethod picks for dynamic activations where
    CUTLASS runs the GEMM), and CUTLASS's fp8 x fp8 tensor-core GEMM (scaled_mm) writing bf16;
    six layers timed in a CUDA graph. Both operands are fp8 on the fp8 tensor cores: opgraph's fp8 matmul (an op
    whose compute dtype is fp8, priced at the spec's `fp8` matrix peak), so these are kept, as dtype `fp8`.
    The time includes that quantization (a pass over the bf16 activations before the GEMM), which an opgraph fp8
    graph, whose activations are already fp8, does not have: the fitted `gemm_fp8` class absorbs it;
  * `fp8_block` (DeepGEMM, CUTLASS or FlashInfer block-scaled kernels; Triton on the L40S): DeepSeek-V3's scheme, fp8
    weights with one scale per 128 x 128 block and activations quantized per token in groups of 128. The same
    operands, but left out: the collector timed this mode eagerly (use_cuda_graph=False, one layer), so each row
    carries the host's launch gaps (its fastest row is 55 us on the H100, 151 us on the B200 and 282 us on the L40S,
    where the fp8 rows start near 5 us), which no kernel of a CUDA-graph-captured serving step pays;
  * `nvfp4` (B200 only): 4-bit e2m1 weights and activations with fp8 scales per 16 values: no opgraph dtype;
  * none of int8 (SmoothQuant `sq`), fp16 or a weight-only mode is in the vLLM tables, so no other STORAGE_DTYPES
    dtype gets rows.

- `moe` (vLLM files of the H100 SXM and H200 only, last of all, so no earlier row's held-out split moves; the two GPUs
  whose calibrations were fitted with them; and, as transfer checks, every 4th of TensorRT-LLM's and SGLang's on the
  H100: their newest tables with gated experts, TensorRT-LLM 1.3.0rc20's CUTLASS MoE and SGLang 0.5.14's Triton
  fused_moe and Marlin): `moe/vllm/<newest>/moe_perf` (vLLM 0.24.0), one fused-MoE call timed
  whole (aiconfigurator's collector, collector/vllm/collect_moe.py: `fused_experts(hidden_states, w1, w2,
  topk_weights, topk_ids)` over precomputed routing, or for MXFP4 the FusedMoE layer's forward from router logits;
  warm-ups, then replays of a CUDA graph where one captures), rows with `distribution` balanced (every expert an
  equal share of the tokens x top_k rows) and no expert parallelism (moe_ep_size 1; moe_tp_size splits the width:
  `inter` is one GPU's, inter_size / moe_tp_size). Kept, by the kernels vLLM runs for the checkpoints opgraph's zoo
  names: bf16 (`vllm_unquantizedfusedmoe_triton_tritonexperts`), block fp8 as DeepSeek's and Qwen3's FP8 checkpoints
  store it (`fp8_block`, `vllm_fp8moe_triton_tritonexperts`; dtype fp8, activations quantized to fp8 per token
  group), INT4 weight-only (`int4_wo`, Marlin, groups of 128; dtype int4) and gpt-oss's MXFP4
  (`w4a16_mxfp4`, `vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic`; dtype mxfp4). Left out: per-tensor
  fp8 (`fp8`: ModelOpt checkpoints through FlashInfer's CUTLASS MoE, which no preset here uses; 4.7 times the
  block-fp8 kernel's time at one token on the same shapes), the MXFP4 rows of a Marlin approximation
  (`..._situ_as_silu`, another model's), power-law routing and expert-parallel rows, and the shapes of Nemotron-3's
  MoE (hidden 2,688 with top-6 of 128 experts, Nano's; top-22 of 512, Super's and Ultra's: NON_GATED), whose experts
  are squared-ReLU MLPs without a gate (two matrices, not three): they measure two-thirds of a gated call's time at
  every size, and a moe row rebuilds gated experts.

- `decode_attention` over an fp8 KV cache (`<gpu>-kv8.csv.gz`, the H100 SXM and H200; dtype fp8: the cache in fp8,
  the queries and attention in bf16): `attention/<framework>/<newest>/generation_attention_perf`, rows with
  kv_cache_dtype fp8 and attn_dtype bfloat16, no window, as the bf16 decode rows above: vLLM's every row (fitted, the
  `decode_attention_fp8` class), then TensorRT-LLM's and SGLang's every fourth (a check, never fitted).

- `mla_decode_attention` (`<gpu>-mla.csv.gz`, a file of its own for each GPU whose SGLang and TensorRT-LLM tables
  both have it: the H100 SXM, H200, B200, GB200, B300, GB300, L40S and RTX PRO 6000): `mla/<framework>/<newest>/generation_mla_perf`,
  the absorbed MLA decode kernel alone, one new token per sequence over isl + step cached entries (isl is 1
  throughout, so context = step), bf16 KV cache, `num_heads` query heads on one GPU, DeepSeek-V3's geometry (latent
  512, rope 64: the collector's KV_LORA_RANK and QK_ROPE_HEAD_DIM, collector/sglang/collect_mla.py; the table names no
  model), timed in a CUDA graph (collector.helper.benchmark_with_power). SGLang 0.5.14's rows first (its default MLA
  backend on each GPU: FlashAttention-3 on Hopper, TensorRT-LLM's MLA kernel on the B200, Triton on the L40S and the
  RTX PRO 6000), which the class is fitted on, then TensorRT-LLM's newest (1.3.0rc20; 1.0.0 on the L40S), a check never fitted; one row a shape (the
  H100's SGLang table holds two runs of each, within 1% at the median: their mean). Left out: the fp8-KV rows, and
  the `wideep_` tables (DeepEP deployments' older versions).

vLLM's tables are the calibration sets (`<gpu>-vllm.csv.gz`, every row, for each shipped GPU the package has: the
H100 SXM, H200, A100 SXM, B200, GB200, B300, GB300, L40S and RTX PRO 6000 Server Edition, each from its newest vLLM
version there: 0.24.0, the GB300's all-reduces 0.27.0, 2-16 GPUs; the GB200's 2-4); on
the H100, TensorRT-LLM's and SGLang's are the transfer checks (`h100-sxm-trtllm.csv.gz`, `h100-sxm-sglang.csv.gz`,
every 4th row after sorting, to keep them small). The files are gzipped CSV; opgraph reads them as they are. The all-to-all columns (tokens,
top_k, hidden) are in a file's header only when it has such rows, so the other files are as they were.
opgraph never depends on the package: run this once, by hand, and commit the CSVs.

    pip download aiconfigurator-core==0.12.0 --no-deps -d /tmp/aic
    pip install pandas pyarrow   # to read the parquet tables; not needed by opgraph
    python benchmarks/extract_aiconfigurator.py /tmp/aic/aiconfigurator_core-0.12.0-*.whl
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import zipfile
from pathlib import Path

OUT = Path(__file__).parent / "data"
DATA = "aiconfigurator_core/systems/data/"
GPUS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "a100-sxm": "a100_sxm", "b200": "b200_sxm", "l40s": "l40s",
        "rtx-pro-6000": "rtx_pro_6000_server", "gb200": "gb200", "b300": "b300_sxm", "gb300": "gb300"}
# (gpu, framework) -> (kernel sources kept or None for all, every n-th row)
SETS = {("h100-sxm", "vllm"): (None, 1), ("h100-sxm", "trtllm"): (None, 4),
        ("h100-sxm", "sglang"): ({"sglang_torch_linear", "fa3"}, 4),
        **{(gpu, "vllm"): (None, 1) for gpu in GPUS if gpu != "h100-sxm"}}


def versions(wheel: zipfile.ZipFile, folder: str, table: str) -> list[str]:
    """The paths of `table` under folder/<version>/, newest version first."""
    found = [n for n in wheel.namelist() if n.startswith(folder) and n.endswith("/" + table)]
    if not found:
        raise SystemExit(f"{folder}*/{table}: not in this wheel")

    def version(name: str) -> tuple:
        return tuple(int(p) if p.isdigit() else 0 for p in name[len(folder):].split("/")[0].replace("rc", ".").split("."))
    return sorted(found, key=version, reverse=True)


def newest(wheel: zipfile.ZipFile, folder: str, table: str) -> str:
    """The path of `table` under folder/<version>/ for the newest version the package has."""
    return versions(wheel, folder, table)[0]
A2A_COLUMNS = ["tokens", "top_k", "hidden"]
MOE_COLUMNS = ["inter", "experts"]
OPTIONAL = {*A2A_COLUMNS, *MOE_COLUMNS}  # in a file's header only where its rows use them
COLUMNS = ["class", "dtype", "m", "n", "k", "batch", "seq_len", "context", "heads", "kv_heads", "head_dim", "gpus",
           "elements", *A2A_COLUMNS, *MOE_COLUMNS, "time_us", "source"]
KV8_COLUMNS = ["class", "dtype", "batch", "context", "heads", "kv_heads", "head_dim", "time_us", "source"]
KV8_GPUS = ("h100-sxm", "h200")
KV8_SETS = (("vllm", 1), ("trtllm", 4), ("sglang", 4))  # (framework, every nth row): vLLM's fitted, the others checked
MLA_COLUMNS = ["class", "dtype", "batch", "context", "heads", "kv_lora_rank", "rope_dim", "time_us", "source"]
# SGLang's table (fitted) and TensorRT-LLM's (checked) both there
MLA_GPUS = ("h100-sxm", "h200", "b200", "l40s", "rtx-pro-6000", "gb200", "b300", "gb300")
MLA_GEOMETRY = {"kv_lora_rank": 512, "rope_dim": 64}  # collector/sglang/collect_mla.py: DeepSeek-V3's
MOE_GPUS = {"h100-sxm", "h200"}  # the vLLM files that get MoE rows (the TensorRT-LLM and SGLang files, the H100's, too)
NON_GATED = ((2688, 6, 128), (None, 22, 512))  # Nemotron-3's experts: (hidden or any, top_k, experts)
# framework -> aiconfigurator's moe_dtype -> (the kernel that framework runs for it, opgraph's dtype of the experts'
# weights); TensorRT-LLM's and SGLang's are transfer checks, never fitted
MOE_DTYPES = {"bfloat16": "bf16", "fp8_block": "fp8", "int4_wo": "int4", "w4a16_mxfp4": "mxfp4"}
MOE_KERNELS = {
    "vllm": {"bfloat16": "vllm_unquantizedfusedmoe_triton_tritonexperts", "fp8_block": "vllm_fp8moe_triton_tritonexperts",
             "int4_wo": "vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts",
             "w4a16_mxfp4": "vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic"},
    "sglang": {"bfloat16": "sglang_fused_moe_triton", "fp8_block": "sglang_fused_moe_triton",
               "int4_wo": "sglang_marlin_moe", "w4a16_mxfp4": "sglang_fused_moe_triton"},
    "trtllm": {"bfloat16": "moe_torch_flow_cutlass", "fp8_block": "moe_torch_flow_cutlass",
               "w4a16_mxfp4": "moe_torch_flow"}}
GRAPHED = {"vllm": "vllm_graph", "sglang": "sglang_graph", "trtllm": "trtllm"}  # the CUDA-graph all-reduce
GPUS_PER_NODE = 8  # every GPU here comes as an 8-GPU HGX/DGX node
LL_CAPACITY = 256  # tokens per GPU that vLLM's DeepEP low-latency buffer holds (VLLM_MOE_DP_CHUNK_SIZE)


def rows(wheel: zipfile.ZipFile, gpu: str, framework: str):
    import pandas as pd

    kernels, every = SETS[(gpu, framework)]
    base = f"{DATA}{GPUS[gpu]}/"
    read = lambda name: pd.read_parquet(io.BytesIO(wheel.read(name)))  # noqa: E731
    gemm_table = newest(wheel, f"{base}gemm/{framework}/", "gemm_perf.parquet")

    def keep(df):
        df = df if kernels is None else df[df.kernel_source.isin(kernels)]
        return df.sort_values([c for c in df.columns if c not in ("latency",)]).iloc[::every]

    g = keep(read(gemm_table))
    g = g[g.gemm_dtype == "bfloat16"]
    for r in g.itertuples():
        yield {"class": "gemm", "dtype": "bf16", "m": r.m, "n": r.n, "k": r.k, "time_us": round(r.latency * 1e3, 4),
               "source": f"{framework} {r.version} {r.kernel_source}"}
    for table, cls in (("context_attention_perf.parquet", "prefill_attention"),
                       ("generation_attention_perf.parquet", "decode_attention")):
        yield from attention_rows(keep(read(newest(wheel, f"{base}attention/{framework}/", table))), cls,
                                  "bfloat16", framework)
    c = read(newest(wheel, f"{base}comm/{framework}/", "custom_allreduce_perf.parquet"))
    mode = c.backend if "backend" in c else c.implementation
    c = c[(mode == GRAPHED[framework]) & (c.allreduce_dtype == "bfloat16")].sort_values(["num_gpus", "message_size"])
    for r in c.itertuples():
        yield {"class": "all_reduce", "dtype": "bf16", "gpus": r.num_gpus, "elements": r.message_size,
               "time_us": round(r.latency * 1e3, 4), "source": f"{framework} {r.version} {r.kernel_source}"}
    if framework == "vllm":
        yield from all_to_alls(wheel, base)
        yield from fp8_gemms(wheel, base)
    if gpu in MOE_GPUS:
        yield from moe_calls(wheel, base, framework, every)


def all_to_alls(wheel: zipfile.ZipFile, base: str):
    """The vLLM DeepEP dispatch and combine rows kept (see the module docstring), if the GPU has the table."""
    import pandas as pd

    folder = f"{base}comm/vllm/"
    if not any(n.startswith(folder) and n.endswith("/moe_a2a_perf.parquet") for n in wheel.namelist()):
        return
    a = pd.read_parquet(io.BytesIO(wheel.read(newest(wheel, folder, "moe_a2a_perf.parquet"))))
    assert (a.latency - a.transmit_us - a.notify_us).abs().max() < 1e-6, "latency is no longer microseconds"
    within = (a.node_num == 1) & (a.ep_size <= GPUS_PER_NODE) & (a.comm_dtype == "default")
    served = (a.comm_backend == "deepep_ll") | ((a.comm_backend == "deepep_ht") & (a.num_tokens > LL_CAPACITY))
    a = a[within & served].sort_values(["phase", "comm_backend", "hidden_size", "topk", "num_experts", "num_tokens"],
                                       ascending=[False, False, True, True, True, True])
    for r in a.itertuples():
        yield {"class": f"ep_{r.phase}", "dtype": "bf16", "gpus": r.ep_size, "tokens": r.num_tokens, "top_k": r.topk,
               "hidden": r.hidden_size, "time_us": round(r.latency, 4),
               "source": f"vllm {r.version} {r.kernel_source} {r.comm_backend}, {r.num_experts} experts, "
                         f"{r.node_num} node"}


def fp8_gemms(wheel: zipfile.ZipFile, base: str):
    """The vLLM fp8 GEMM rows kept (see the module docstring): gemm_dtype fp8 only, last in the file."""
    import pandas as pd

    g = pd.read_parquet(io.BytesIO(wheel.read(newest(wheel, f"{base}gemm/vllm/", "gemm_perf.parquet"))))
    g = g[g.gemm_dtype == "fp8"]
    g = g.sort_values([c for c in g.columns if c != "latency"])
    for r in g.itertuples():
        yield {"class": "gemm", "dtype": "fp8", "m": r.m, "n": r.n, "k": r.k, "time_us": round(r.latency * 1e3, 4),
               "source": f"vllm {r.version} {r.kernel_source}"}


def moe_calls(wheel: zipfile.ZipFile, base: str, framework: str, every: int = 1):
    """A framework's fused-MoE rows kept (see the module docstring), last in the file: from its newest table that
    has them (TensorRT-LLM's newest holds only ungated rows), every `every`-th after sorting."""
    import pandas as pd

    kernels = MOE_KERNELS[framework]
    for path in versions(wheel, f"{base}moe/{framework}/", "moe_perf.parquet"):
        m = pd.read_parquet(io.BytesIO(wheel.read(path)))
        kept = m.moe_dtype.map(lambda d: kernels.get(d, "")) == m.kernel_source
        gated = ~m.apply(lambda r: any(h in (None, r.hidden_size) and (k, e) == (r.topk, r.num_experts)
                                       for h, k, e in NON_GATED), axis=1)
        m = m[kept & gated & (m.distribution == "balanced") & (m.moe_ep_size == 1)]
        if len(m):
            break
    m = m.sort_values(["moe_dtype", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "num_tokens"])
    for r in m.iloc[::every].itertuples():
        assert r.inter_size % r.moe_tp_size == 0, "a width that does not split"
        yield {"class": "moe", "dtype": MOE_DTYPES[r.moe_dtype], "tokens": r.num_tokens, "hidden": r.hidden_size,
               "inter": r.inter_size // r.moe_tp_size, "top_k": r.topk, "experts": r.num_experts,
               "time_us": round(r.latency * 1e3, 4),
               "source": f"{framework} {r.version} {r.kernel_source}, moe_tp {r.moe_tp_size}"}


def kv8_decodes(wheel: zipfile.ZipFile, gpu: str):
    """The decode attention rows over an fp8 KV cache (see the module docstring)."""
    import pandas as pd

    for framework, every in KV8_SETS:
        folder = f"{DATA}{GPUS[gpu]}/attention/{framework}/"
        a = pd.read_parquet(io.BytesIO(wheel.read(newest(wheel, folder, "generation_attention_perf.parquet"))))
        a = a.sort_values([c for c in a.columns if c != "latency"])
        yield from attention_rows(a, "decode_attention", "fp8", framework, every)


def attention_rows(a, cls: str, kv: str, framework: str, every: int = 1):
    """The rows of an attention table `a` without a window, with a `kv` cache (bfloat16 or fp8) and bf16 attention,
    as measurement rows of `cls` (every `every`th of them, in `a`'s order)."""
    for column, default in (("window_size", 0), ("attn_dtype", "bfloat16")):  # older tables lack them
        if column not in a:
            a[column] = default
    a = a[(a.window_size == 0) & (a.kv_cache_dtype == kv) & (a.attn_dtype == "bfloat16")]
    a = a.iloc[::every]
    for r in a.itertuples():
        row = {"class": cls, "dtype": "fp8" if kv == "fp8" else "bf16", "batch": r.batch_size, "heads": r.num_heads,
               "kv_heads": r.num_key_value_heads, "head_dim": r.head_dim, "time_us": round(r.latency * 1e3, 4),
               "source": f"{framework} {r.version} {r.kernel_source}"}
        if cls == "prefill_attention":
            row["seq_len"] = r.isl
        else:
            row["context"] = r.isl + r.step - 1
        yield row


def mla_decodes(wheel: zipfile.ZipFile, gpu: str):
    """The MLA decode rows kept (see the module docstring): SGLang's newest table, then TensorRT-LLM's."""
    import pandas as pd

    for framework in ("sglang", "trtllm"):
        folder = f"{DATA}{GPUS[gpu]}/mla/{framework}/"
        m = pd.read_parquet(io.BytesIO(wheel.read(newest(wheel, folder, "generation_mla_perf.parquet"))))
        assert (m.isl == 1).all(), "an isl other than 1: context is no longer step"
        shape = ["version", "kernel_source", "num_heads", "batch_size", "isl", "step"]
        m = m[m.kv_cache_dtype == "bfloat16"].groupby(shape, as_index=False).latency.mean()  # one row a shape
        for r in m.sort_values(shape).itertuples():
            yield {"class": "mla_decode_attention", "dtype": "bf16", "batch": r.batch_size,
                   "context": r.isl + r.step - 1, "heads": r.num_heads, **MLA_GEOMETRY, "time_us": round(r.latency * 1e3, 4),
                   "source": f"{framework} {r.version} {r.kernel_source}"}


def write_rows(path: Path, kept: list[dict], columns: list[str]) -> None:
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as z, io.TextIOWrapper(z, newline="") as f:
        w = csv.DictWriter(f, columns, lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
    print(f"{path}: {len(kept):,} kernels ({path.stat().st_size / 1e6:.2f} MB gzipped)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", help="the aiconfigurator_core-0.12.0 wheel file")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel:
        for gpu, framework in SETS:
            path = OUT / f"{gpu}-{framework}.csv.gz"
            kept = [row for row in rows(wheel, gpu, framework) if row["time_us"] > 0]
            write_rows(path, kept, [c for c in COLUMNS if c not in OPTIONAL or any(c in row for row in kept)])
        for gpu in KV8_GPUS:
            write_rows(OUT / f"{gpu}-kv8.csv.gz", [r for r in kv8_decodes(wheel, gpu) if r["time_us"] > 0], KV8_COLUMNS)
        for gpu in MLA_GPUS:
            write_rows(OUT / f"{gpu}-mla.csv.gz", [r for r in mla_decodes(wheel, gpu) if r["time_us"] > 0], MLA_COLUMNS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
