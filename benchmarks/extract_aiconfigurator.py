"""Extract measured H100 SXM kernel timings from NVIDIA's aiconfigurator-core wheel into opgraph's measurement CSV.

Source: the PyPI package `aiconfigurator-core` 0.12.0 (Apache-2.0, NVIDIA; `License-Expression: Apache-2.0` in its
METADATA), tables under `aiconfigurator_core/systems/data/h100_sxm/`: kernels profiled on an "NVIDIA H100 80GB HBM3"
in each serving framework. Latencies there are in milliseconds; here in microseconds.

Kept, bf16 only (the precision the shipped calibration targets):
- `gemm`: `gemm_perf` rows with gemm_dtype bfloat16 (m x k activations times a k -> n weight);
- `prefill_attention`: `context_attention_perf`, causal, no window, bf16 KV cache (batch, seq_len = isl);
- `decode_attention`: `generation_attention_perf`, no window, bf16 KV cache; one new token attends over
  isl + step keys, so context (tokens already cached) = isl + step - 1.

vLLM's tables are the calibration set (`h100-sxm-vllm.csv.gz`, every row); TensorRT-LLM's and SGLang's are the
transfer checks (`h100-sxm-trtllm.csv.gz`, `h100-sxm-sglang.csv.gz`, every 4th row after sorting, to keep them
small). The files are gzipped CSV; opgraph reads them as they are.
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
BASE = "aiconfigurator_core/systems/data/h100_sxm/"
TABLES = {  # framework -> (gemm table, attention folder, kernel sources kept, every n-th row)
    "vllm": ("gemm/vllm/0.24.0/gemm_perf.parquet", "attention/vllm/0.24.0/", None, 1),
    "trtllm": ("gemm/trtllm/1.3.0rc20/gemm_perf.parquet", "attention/trtllm/1.3.0rc20/", None, 4),
    "sglang": ("gemm/sglang/0.5.14/gemm_perf.parquet", "attention/sglang/0.5.14/", {"sglang_torch_linear", "fa3"}, 4),
}
COLUMNS = ["class", "dtype", "m", "n", "k", "batch", "seq_len", "context", "heads", "kv_heads", "head_dim", "time_us",
           "source"]


def rows(wheel: zipfile.ZipFile, framework: str):
    import pandas as pd

    gemm_table, attention, kernels, every = TABLES[framework]
    read = lambda name: pd.read_parquet(io.BytesIO(wheel.read(BASE + name)))  # noqa: E731

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
        a = keep(read(attention + table))
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", help="the aiconfigurator_core-0.12.0 wheel file")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel:
        for framework in TABLES:
            path = OUT / f"h100-sxm-{framework}.csv.gz"
            with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as z, io.TextIOWrapper(z, newline="") as f:
                w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
                w.writeheader()
                n = 0
                for row in rows(wheel, framework):
                    if row["time_us"] > 0:
                        w.writerow(row)
                        n += 1
            print(f"{path}: {n:,} kernels ({path.stat().st_size / 1e6:.2f} MB gzipped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
