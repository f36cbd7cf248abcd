"""Time one two-phase analysis in process (issue 18, section 6): the first of a model, and a repeated one of the
same model at new sizes. Targets: a first analysis under 3 ms, a repeated one under 0.5 ms (medians).

An analysis here is what serving and interactive views ask of each size: each phase's roofline and expected time,
FLOPs, bytes, verdict, the op that dominates and whether it fits (opgraph.analysis.sweep.Sweeper.point). The first
point of a phase is priced by the report's own path (build, fuse, cost); later points replay it (opgraph.trace), the
same numbers exactly. The second size of a phase pays for the trace once (printed apart).

    python benchmarks/bench_reprice.py            # default: 200 repetitions
    python benchmarks/bench_reprice.py --repeat 50

Prints medians and the 10th/90th percentiles; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import random
import time

from common import timed, verdict
from opgraph import hardware, models, strategy
from opgraph.analysis.sweep import Sweeper

MODELS = ("llama-3-8b", "llama-3.1-405b")
FIRST_MS, REPEAT_MS = 3.0, 0.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="timed repetitions (default: 200)")
    args = ap.parse_args()
    hw, plan = hardware.load("h100-sxm"), strategy("fused")
    worst_first = worst_repeat = 0.0
    for name in MODELS:
        build = models.get(name).build

        def first():
            prefill, decode = Sweeper(build, plan, hw, "prefill"), Sweeper(build, plan, hw, "decode")
            return prefill.point(32, 1024), decode.point(32, 1024)

        med, p10, p90 = timed(first, args.repeat)
        worst_first = max(worst_first, med)
        print(f"{name:16s} first two-phase analysis: median {med:.2f} ms (p10 {p10:.2f}, p90 {p90:.2f})")
        prefill, decode = Sweeper(build, plan, hw, "prefill"), Sweeper(build, plan, hw, "decode")
        prefill.point(32, 1024), decode.point(32, 1024)
        t0 = time.perf_counter()
        prefill.point(16, 2048), decode.point(16, 2048)  # the second size: the trace, once
        trace_ms = (time.perf_counter() - t0) * 1e3
        rng = random.Random(0)
        med, p10, p90 = timed(lambda: (prefill.point(rng.randint(1, 256), rng.randint(1, 8192)),
                                       decode.point(rng.randint(1, 256), rng.randint(1, 8192))), args.repeat)
        worst_repeat = max(worst_repeat, med)
        print(f"{name:16s} repeated at new sizes: median {med:.3f} ms (p10 {p10:.3f}, p90 {p90:.3f}); "
              f"the trace, once: {trace_ms:.0f} ms")
    return max(verdict(worst_first, FIRST_MS, "ms", "first"), verdict(worst_repeat, REPEAT_MS, "ms", "repeated"))


if __name__ == "__main__":
    raise SystemExit(main())
