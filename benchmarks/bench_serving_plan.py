"""Time the serving plan (issue 17 §6): `opgraph plan MODEL --gpus 8 --concurrency 1:N`, every layout of 8 GPUs at
every concurrency per replica from 1 to N, each priced in closed form (opgraph.analysis.capacity). Target: at least
10,000 configurations in 5 s, i.e. 2,000 a second.

    python benchmarks/bench_serving_plan.py                 # qwen3-30b-a3b (MoE: more layouts), N = 2,000
    python benchmarks/bench_serving_plan.py --model llama-3-70b --concurrency 600

Prints the configurations priced a second (the (layout, concurrency) pairs that fit, each a steady state), and all
those considered (the pairs the KV cache cannot hold are checked too, and cost little): the median of --repeat runs,
each a whole search in process, its traces included. The target is judged on the priced ones.
"""

from __future__ import annotations

import argparse
import statistics
import time

from opgraph import choices, hardware, models
from opgraph.analysis.plan import has_experts
from opgraph.analysis.serving_plan import search_serving
from opgraph.core.model import BuildOptions
from opgraph.core.phase import Phase

TARGET = 2000  # configurations a second: 10,000 in 5 s


def searching(name: str, concurrency: int, engine: str | None = None):
    """The search this script times (a function that runs it whole, its traces included): every layout of 8 H100s
    at every concurrency a replica from 1 to `concurrency`, 1,024 -> 512 tokens, under `engine`'s rules (None: the
    search's default)."""
    model, hw = models.get(name), hardware.load("h100-sxm")
    moe = has_experts(model.build(Phase.decode(1, 1)))
    more = {} if engine is None else {"engine": engine}
    return lambda: search_serving(choices.arranger(model, BuildOptions(), hw), hw, gpus=8, moe=moe, name=model.name,
                                  prompt=1024, output=512, concurrencies=range(1, concurrency + 1), **more)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen3-30b-a3b")
    ap.add_argument("--concurrency", type=int, default=2000, help="concurrencies 1..N per replica (default: 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed searches (default: 3)")
    args = ap.parse_args()
    run = searching(args.model, args.concurrency)
    seconds, last = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        last = run()
        seconds.append(time.perf_counter() - t0)
    took = statistics.median(seconds)
    priced, considered = len(last.candidates), len(last.candidates) + last.too_big
    print(f"{args.model}, 8 GPUs, concurrency 1..{args.concurrency}: {priced:,} configurations priced of "
          f"{considered:,} considered in {took:.2f} s (median of {args.repeat}): {priced / took:,.0f} priced a second, "
          f"{considered / took:,.0f} considered a second")
    met = priced / took >= TARGET
    print(f"target >= {TARGET:,} priced configurations a second (10,000 in 5 s): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
