"""Extract measured H100 SXM kernel timings from NVIDIA's aiconfigurator-core wheel into opgraph's measurement CSV.

Source: the PyPI package `aiconfigurator-core` 0.12.0 (Apache-2.0, NVIDIA; `License-Expression: Apache-2.0` in its
METADATA), tables under `aiconfigurator_core/systems/data/<gpu>/`: kernels profiled on each GPU in each serving
framework. Latencies there are in milliseconds; here in microseconds.

Kept, bf16 only (the precision the shipped calibration targets):
- `gemm`: `gemm_perf` rows with gemm_dtype bfloat16 (m x k activations times a k -> n weight);
- `prefill_attention`: `context_attention_perf`, causal, no window, bf16 KV cache (batch, seq_len = isl);
- `decode_attention`: `generation_attention_perf`, no window, bf16 KV cache; one new token attends over
  isl + step keys, so context (tokens already cached) = isl + step - 1;
- `all_reduce`: `comm/<framework>/custom_allreduce_perf`, bf16, as captured in a CUDA graph (the way serving engines
  run decode; vLLM's and SGLang's `*_graph` backends, TensorRT-LLM's own kernel), every row; its message_size is
  the number of elements (aiconfigurator sizes it tokens x hidden). These rows come last, so adding them left the
  other classes' held-out split unchanged.

vLLM's tables are the calibration sets (`<gpu>-vllm.csv.gz`, every row, for each shipped GPU the package has: the
H100 SXM, H200, A100 SXM, B200 and L40S, each from its newest vLLM version there); on the H100, TensorRT-LLM's and
SGLang's are the transfer checks (`h100-sxm-trtllm.csv.gz`, `h100-sxm-sglang.csv.gz`, every 4th row after sorting,
to keep them small). The files are gzipped CSV; opgraph reads them as they are.
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
GPUS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "a100-sxm": "a100_sxm", "b200": "b200_sxm", "l40s": "l40s"}
# (gpu, framework) -> (kernel sources kept or None for all, every n-th row)
SETS = {("h100-sxm", "vllm"): (None, 1), ("h100-sxm", "trtllm"): (None, 4),
        ("h100-sxm", "sglang"): ({"sglang_torch_linear", "fa3"}, 4),
        **{(gpu, "vllm"): (None, 1) for gpu in GPUS if gpu != "h100-sxm"}}


def newest(wheel: zipfile.ZipFile, folder: str, table: str) -> str:
    """The path of `table` under folder/<version>/ for the newest version the package has."""
    found = [n for n in wheel.namelist() if n.startswith(folder) and n.endswith("/" + table)]
    if not found:
        raise SystemExit(f"{folder}*/{table}: not in this wheel")

    def version(name: str) -> tuple:
        return tuple(int(p) if p.isdigit() else 0 for p in name[len(folder):].split("/")[0].replace("rc", ".").split("."))
    return max(found, key=version)
COLUMNS = ["class", "dtype", "m", "n", "k", "batch", "seq_len", "context", "heads", "kv_heads", "head_dim", "gpus",
           "elements", "time_us", "source"]
GRAPHED = {"vllm": "vllm_graph", "sglang": "sglang_graph", "trtllm": "trtllm"}  # the CUDA-graph all-reduce


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
        a = keep(read(newest(wheel, f"{base}attention/{framework}/", table)))
        for column, default in (("window_size", 0), ("attn_dtype", "bfloat16")):  # older tables lack them
            if column not in a:
                a[column] = default
        a = a[(a.window_size == 0) & (a.kv_cache_dtype == "bfloat16") & (a.attn_dtype == "bfloat16")]
        for r in a.itertuples():
            row = {"class": cls, "dtype": "bf16", "batch": r.batch_size, "heads": r.num_heads,
                   "kv_heads": r.num_key_value_heads, "head_dim": r.head_dim, "time_us": round(r.latency * 1e3, 4),
                   "source": f"{framework} {r.version} {r.kernel_source}"}
            if cls == "prefill_attention":
                row["seq_len"] = r.isl
            else:
                row["context"] = r.isl + r.step - 1
            yield row
    c = read(newest(wheel, f"{base}comm/{framework}/", "custom_allreduce_perf.parquet"))
    mode = c.backend if "backend" in c else c.implementation
    c = c[(mode == GRAPHED[framework]) & (c.allreduce_dtype == "bfloat16")].sort_values(["num_gpus", "message_size"])
    for r in c.itertuples():
        yield {"class": "all_reduce", "dtype": "bf16", "gpus": r.num_gpus, "elements": r.message_size,
               "time_us": round(r.latency * 1e3, 4), "source": f"{framework} {r.version} {r.kernel_source}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", help="the aiconfigurator_core-0.12.0 wheel file")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel:
        for gpu, framework in SETS:
            path = OUT / f"{gpu}-{framework}.csv.gz"
            with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as z, io.TextIOWrapper(z, newline="") as f:
                w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
                w.writeheader()
                n = 0
                for row in rows(wheel, gpu, framework):
                    if row["time_us"] > 0:
                        w.writerow(row)
                        n += 1
            print(f"{path}: {n:,} kernels ({path.stat().st_size / 1e6:.2f} MB gzipped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
