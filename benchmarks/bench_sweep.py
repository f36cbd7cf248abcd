"""Time a 10,000-point sweep in process: llama-3-8b decode on h100-sxm, batch 1..100 x context
100..10,000 (100 x 100 points), and prefill batch 1..100 x seq_len 64..6,400. Target (issue 5): under
0.5 s per 10,000 points on a 2-core machine. Each run starts from a fresh Sweeper, so tracing the
regimes is included in the time.

    python benchmarks/bench_sweep.py [--repeat 7]

Prints the median and the spread of the repeats; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from opgraph import hardware
from opgraph import models
from opgraph import strategy
from opgraph.analysis.sweep import Sweeper

TARGET_S = 0.5
AXES = {"decode": range(100, 10_001, 100), "prefill": range(64, 6_401, 64)}


def one_sweep(phase: str, hw, plan) -> tuple[int, int]:
    sweeper = Sweeper(models.get("llama-3-8b").build, plan, hw, phase)
    n = 0
    for batch in range(1, 101):
        for length in AXES[phase]:
            sweeper.point(batch, length)
            n += 1
    return n, sweeper.regimes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed repetitions (default: 7)")
    args = ap.parse_args()
    hw, plan = hardware.load("h100-sxm"), strategy("fused")
    worst = 0.0
    for phase in ("decode", "prefill"):
        samples = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            n, regimes = one_sweep(phase, hw, plan)
            samples.append(time.perf_counter() - t0)
        med = statistics.median(samples)
        worst = max(worst, med)
        print(f"llama-3-8b {phase:7s} sweep of {n:,} points: median {med:.3f} s "
              f"(min {min(samples):.3f}, max {max(samples):.3f}, n={args.repeat}; {regimes} regimes traced)")
    print(f"target < {TARGET_S} s per 10,000 points: {'met' if worst < TARGET_S else 'MISSED'}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
