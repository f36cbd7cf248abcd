"""Time `opgraph plan` in process: every layout of the GPUs, every batch per replica from 1 to 512, and every decode
step of a 1,024-token prompt and 256 output tokens costed at its own context. Target: under 10 s per search on a
2-core machine, whatever the model (a search costs a few thousand decode steps per layout by replaying its traced
model over arrays; costing each step on its own would take minutes).

    python benchmarks/bench_plan.py              # default: 5 repetitions per search
    python benchmarks/bench_plan.py --repeat 2

Prints the median and the range; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import verdict
from opgraph import Phase, choices, hardware, models, strategy
from opgraph.analysis.plan import DEFAULT_BATCHES, DEFAULT_OUTPUT, has_experts, search
from opgraph.core.model import BuildOptions

SEARCHES = (("llama-3-8b", 8), ("llama-3-70b", 8), ("mixtral-8x7b", 8), ("llama-3.1-405b", 16), ("deepseek-v3", 16))
TARGET_S = 10.0


def one_search(name: str, gpus: int, hw, plan):
    model = models.get(name)
    moe = has_experts(model.build(Phase.decode(1, 1)))
    return search(choices.arranger(model, BuildOptions(), hw), plan, hw, gpus=gpus, moe=moe, name=name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions per search (default: 5)")
    args = ap.parse_args()
    hw, plan = hardware.load("h100-sxm"), strategy("fused")
    worst = 0.0
    for name, gpus in SEARCHES:
        samples, result = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = one_search(name, gpus, hw, plan)
            samples.append(time.perf_counter() - t0)
        med = statistics.median(samples)
        worst = max(worst, med)
        steps = result.evaluated * (DEFAULT_OUTPUT - 1)
        print(f"{name:16s} on {gpus:2d} GPUs: median {med:.2f} s (min {min(samples):.2f}, max {max(samples):.2f}, "
              f"n={args.repeat}); {result.evaluated} candidates fit of {result.evaluated + result.too_big} "
              f"(layouts x {len(DEFAULT_BATCHES)} batches), {steps:,} decode steps costed")
    return verdict(worst, TARGET_S, "s")


if __name__ == "__main__":
    raise SystemExit(main())
