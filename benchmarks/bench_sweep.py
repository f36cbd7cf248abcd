"""Time sweeps in process: llama-3-8b (or --model) on h100-sxm under the fused plan.

1. 1,000,000 points at once (batch 1..1000 x 1000 lengths) through `Sweeper.grid`, the numpy replay of the
   traced regimes, tracing included (a fresh Sweeper each run). Target (issue 8): under 1 s per phase.
2. For scale, the same work as a loop of single reports (build, fuse and cost the model at each point), timed
   on a sample of points and quoted per point.

    python benchmarks/bench_sweep.py [--repeat 5] [--points 1000000] [--model gemma-3-27b]

Prints medians with their spread; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from common import verdict
from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.analysis.sweep import Sweeper

TARGET_S = 1.0
LENGTHS = {"decode": (100, 10_000), "prefill": (64, 6_400)}  # context / seq_len: first and last of the axis


def grid(phase: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    side = int(math.isqrt(n))
    lo, hi = LENGTHS[phase]
    b, length = np.meshgrid(np.arange(1, side + 1), np.linspace(lo, hi, side).astype(np.int64), indexing="ij")
    return b.ravel(), length.ravel()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions (default: 5)")
    ap.add_argument("--points", type=int, default=1_000_000, help="points per sweep (default: 1,000,000)")
    ap.add_argument("--model", default="llama-3-8b", help="a preset (default: llama-3-8b; models mixing layer "
                                                           "kinds: gemma-3-27b, qwen3-next-80b-a3b, nemotron-h-8b)")
    args = ap.parse_args()
    cfg, hw, plan = models.get(args.model), hardware.load("h100-sxm"), strategy("fused")
    worst = 0.0
    for phase in ("decode", "prefill"):
        batch, length = grid(phase, args.points)
        samples, regimes = [], 0
        for _ in range(args.repeat):
            sweeper = Sweeper(cfg.build, plan, hw, phase)
            t0 = time.perf_counter()
            sweeper.grid(batch, length)
            samples.append(time.perf_counter() - t0)
            regimes = sweeper.regimes
        med = statistics.median(samples)
        worst = max(worst, med)
        # The same numbers from a fresh report at each point, on 200 points spread over the grid.
        picks = np.linspace(0, len(batch) - 1, 200).astype(int)
        t0 = time.perf_counter()
        for i in picks:
            analyze(cfg.build(Phase.of(phase, int(batch[i]), int(length[i]))), plan, hw)
        per_report = (time.perf_counter() - t0) / len(picks)
        print(f"{args.model} {phase:7s} {len(batch):,} points: median {med:.3f} s ({med / len(batch) * 1e9:.0f} ns a "
              f"point; min {min(samples):.3f}, max {max(samples):.3f}, n={args.repeat}; {regimes} regime(s) traced); "
              f"a loop of single reports: {per_report * 1e3:.2f} ms a point, {per_report * len(batch):,.0f} s for "
              f"the grid ({per_report * len(batch) / med:,.0f}x slower)")
    return verdict(worst, TARGET_S, "s", f"per {args.points:,} points")


if __name__ == "__main__":
    raise SystemExit(main())
