"""Extract measured norm, elementwise, rotary and embedding kernels from Liger-Kernel's published benchmark data into
opgraph's measurement CSV.

Source: the PyPI source distribution of `liger-kernel` 0.8.5 (BSD-2-Clause, Copyright 2024 LinkedIn Corporation; its
LICENSE is reproduced in benchmarks/data/LICENSE-liger-kernel), file `benchmark/data/all_benchmark_data.csv`: the
project's kernel benchmarks, each timed by triton.testing.do_bench (the median of many calls between CUDA events, the
L2 cache flushed before each, so the host's launch work overlaps the flush and is not in the time). Its times are
in milliseconds; here in microseconds.

    pip download liger-kernel==0.8.5 --no-deps --no-binary :all: -d /tmp/liger
    python benchmarks/extract_liger.py /tmp/liger/liger_kernel-0.8.5.tar.gz

Kept: forward `speed` rows of Liger's own single-kernel Triton implementations on the H100 SXM (`NVIDIA H100 80GB
HBM3`, opgraph's h100-sxm), written to benchmarks/data/h100-sxm-liger.csv in the file's order:
- rms_norm: `megatron_rms_norm`, provider `liger` (tokens S x B, hidden H; bf16: its script,
  benchmark_megatron_rms_norm.py, makes bf16 inputs);
- layer_norm: `layer_norm`, provider `liger` (tokens M, hidden N, dtype from the row's config: fp32);
- add_rms_norm: `fused_add_rms_norm`, provider `liger_fused_add_rms_norm` (the residual add and the norm in one
  kernel; fp32);
- silu_mul: `megatron_swiglu`, provider `liger` (tokens S x B, hidden ffn_local; bf16 per its script), SwiGLU's
  silu(gate) x up alone;
- relu2: `relu_squared`, provider `liger` (tokens M, hidden N; bf16).
Left out: every other provider (huggingface and torch eager run several kernels per call; megatron's and
torch.compile's are other kernels), backward and full passes (training), `liger_in_place` swiglu (the same kernel
again), `llama4_rope` (its time does not grow with the hidden size from 512 to 8,192: a fixed 82 us that is not the
rotary kernel's), and every other GPU: the A100 SXM rows (rms_norm, layer_norm, rope, embedding; its swiglu and
geglu rows time a whole MLP) are too few to fit and hold out a class each (8 rope rows), and no other shipped GPU
has rows.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).parent / "data"
MEMBER = "benchmark/data/all_benchmark_data.csv"
GPUS = {"NVIDIA H100 80GB HBM3": "h100-sxm"}
DTYPES = {"torch.bfloat16": "bf16", "torch.float16": "fp16", "torch.float32": "fp32"}
COLUMNS = ("class", "dtype", "tokens", "hidden", "time_us", "source")


def _row(r: dict) -> dict | None:
    """A Liger benchmark row as a measurement row, or None where it is left out."""
    name, x = r["kernel_name"], int(float(r["x_value"]))
    if r["metric_name"] != "speed" or r["kernel_operation_mode"] != "forward" or r["gpu_name"] not in GPUS:
        return None
    cfg = json.loads(r["extra_benchmark_config_str"] or "{}")
    dtype = DTYPES.get(cfg.get("dtype", ""), "")
    if name == "megatron_rms_norm" and r["kernel_provider"] == "liger":
        row, kind, dtype = dict(tokens=cfg["S"] * cfg["B"], hidden=x), "rms_norm", "bf16"
    elif name == "layer_norm" and r["kernel_provider"] == "liger":
        row, kind = dict(tokens=cfg["M"], hidden=x), "layer_norm"
    elif name == "fused_add_rms_norm" and r["kernel_provider"] == "liger_fused_add_rms_norm":
        row, kind = dict(tokens=cfg["M"], hidden=x), "add_rms_norm"
    elif name == "megatron_swiglu" and r["kernel_provider"] == "liger":
        row, kind, dtype = dict(tokens=cfg["S"] * cfg["B"], hidden=x), "silu_mul", "bf16"
    elif name == "relu_squared" and r["kernel_provider"] == "liger":
        row, kind = dict(tokens=cfg["M"], hidden=x), "relu2"
    else:
        return None
    if not dtype:
        raise SystemExit(f"{name}: no dtype in {cfg}")
    source = f"liger-kernel {r['liger_version']} {name} ({r['kernel_provider']}), {r['gpu_name']}"
    return {"class": kind, "dtype": dtype, **row, "time_us": f"{float(r['y_value_50']) * 1000:.4f}", "source": source,
            "gpu": GPUS[r["gpu_name"]]}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    with tarfile.open(argv[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(MEMBER))
        text = tar.extractfile(member).read().decode()
    rows = [r for r in map(_row, csv.DictReader(io.StringIO(text))) if r]
    for gpu in sorted(set(GPUS.values())):
        path = OUT / f"{gpu}-liger.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(r for r in rows if r["gpu"] == gpu)
        print(f"{path}: {sum(r['gpu'] == gpu for r in rows)} kernels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
