"""Time norms, residual add + RMSNorm, SiLU x mul, rope and embeddings on a GPU over a grid of token counts, as
serving engines run them (issue 18: data for the small-kernel classes taken inside CUDA graphs).

    python3 benchmarks/measure_vector_kernels.py --out FILE.csv [--dry-run] [--device cpu --tiny]

`opgraph bench MODEL` times a model's own kernels at a few sizes; the vector classes need more: every token count
from one decode token to a long prefill chunk, at the widths today's models use one GPU's share of. Each kernel is
its measured row's own `bench` (opgraph.pricing.kinds): RMSNorm, add + RMSNorm, SiLU x mul, rope and embeddings
through torch.compile with the token count dynamic (one Triton kernel each, as vLLM's compiled model runs them);
each warmed up, captured 20 calls to a CUDA graph, the median of 5 replays per call
(opgraph.analysis.bench.measure). Rows come out in the measurement CSV that `opgraph validate` and `opgraph
calibrate` read. `--device cpu --tiny` runs a few of them on a CPU without a graph (how the script is checked where
there is no GPU; the times mean nothing).
"""

from __future__ import annotations

import argparse
import sys

from opgraph.analysis import bench
from opgraph.files.measurements import COLUMNS, SHAPES
from opgraph.render.text import to_csv

TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192, 16384)
# One GPU's widths of today's models: model widths 2,048-8,192; Qwen3's per-head q/k norms (128 wide, tokens x heads
# rows); FFN widths from Llama-3-70B at TP 8 (3,584) to Qwen3-32B (25,600); rope of 64/8, 32/8, 40/8, 16/2 and 8/1
# query/KV heads of 128 (Llama-3-70B at TP 1 and 8, Llama-3-8B, Qwen3-14B, ...); vocabularies of Llama-3 and Qwen3.
GRID = {
    "rms_norm": [{"hidden": h} for h in (2048, 4096, 5120, 7168, 8192)],
    "add_rms_norm": [{"hidden": h} for h in (2048, 4096, 5120, 7168, 8192)],
    "silu_mul": [{"hidden": h} for h in (1536, 3584, 6144, 8192, 14336, 25600)],
    "rope": [{"heads": q, "kv_heads": kv, "head_dim": 128} for q, kv in ((64, 8), (32, 8), (40, 8), (16, 2), (8, 1))],
    "embedding": [{"vocab": v, "hidden": h} for v, h in ((128256, 4096), (16032, 8192), (151936, 5120))],
}
PER_HEAD_NORM = {"hidden": 128}, 32  # q/k norms: 32 heads' rows a token


def specs(tiny: bool = False) -> list[bench.KernelSpec]:
    """Every kernel of the grid, widths then token counts, most tokens first (a narrow few with tiny): the first
    call compiles the kernel that every later token count runs, and Inductor tunes its block sizes for the size it
    sees then. vLLM compiles its model at its largest batch (its profiling run, max_num_batched_tokens), so a
    kernel tuned for many tokens is the one engines replay; tuned at 2 tokens, SiLU x mul ran 3x slower at 16,384."""
    tokens = (64, 8, 1) if tiny else TOKENS[::-1]
    out = []
    for kind, widths in GRID.items():
        for width in widths[:1] if tiny else widths:
            out += [_spec(kind, {"tokens": t, **width}) for t in tokens]
    fixed, heads = PER_HEAD_NORM
    out += [_spec("rms_norm", {"tokens": t * heads, **fixed}) for t in tokens]
    return out


def _spec(kind: str, shape: dict) -> bench.KernelSpec:
    return bench.KernelSpec(kind, "bf16", tuple((k, shape[k]) for k in SHAPES[kind]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="measurement CSV to write")
    ap.add_argument("--dry-run", action="store_true", help="list the kernels and measure nothing")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="a few kernels (to check the script on a CPU)")
    a = ap.parse_args(argv)
    todo = specs(a.tiny)
    if a.dry_run:
        for s in todo:
            print(s.kind, ", ".join(f"{k} {v:,}" for k, v in s.shape))
        print(f"{len(todo):,} kernels")
        return 0
    if not a.out:
        ap.error("--out FILE.csv (or --dry-run)")
    measure = _on_cpu if a.device == "cpu" else bench.measure
    with open(a.out, "w") as f:  # row by row, so that a run cut short keeps what it measured
        f.write(to_csv(list(COLUMNS), []))
        for i, spec in enumerate(todo):
            (row,) = measure([spec])
            f.write(to_csv(list(COLUMNS), [[row.get(c, "") for c in COLUMNS]]).split("\n", 1)[1])
            f.flush()
            print(f"\r{i + 1}/{len(todo)}", end="", file=sys.stderr)
    rows = todo
    print(f"\nwrote {len(rows):,} rows to {a.out}")
    return 0


def _on_cpu(todo) -> list[dict]:
    import time

    import torch
    rows = []
    for spec in todo:
        run = bench._kernel(torch, spec, "cpu")
        run()
        t0 = time.perf_counter()
        run()
        rows.append(spec.row(time.perf_counter() - t0, f"cpu check, torch {torch.__version__}"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
