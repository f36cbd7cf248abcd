"""Time `opgraph serve` in process (issue 17 §2): the closed loop's steady state in closed form (target: well under a
second) and the event run's iterations a second (target: at least 100,000).

Both serve llama-3-8b (or --model) on the H100 SXM with vLLM's scheduler and kernels (or --engine's): a closed loop of --concurrency
requests of 1,024 prompt and 256 output tokens. The event run is timed over --measure completions, every iteration
counted (no warm-up; its traces made by an untimed run first, as a search or a repeated call would have them); the closed form (opgraph.analysis.capacity.steady) is timed the same way, from a fresh pricer.
An open loop at --rate requests a second (serve's default 250 requests) is timed too, whole, as `plan --rate` runs one
for each candidate (no target: its prompt iterations are priced as they are scheduled).

    python benchmarks/bench_serve.py [--model llama-3-8b] [--engine vllm] [--concurrency 64] [--measure 2000]
                                     [--rate 2] [--repeat 3]

Prints medians of --repeat runs; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from opgraph import hardware, models, strategy
from opgraph.analysis.capacity import steady
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.serve import ENGINES, serve

ITERATIONS_PER_S, STEADY_S = 100_000, 0.5


def setting(model: str, engine: str) -> tuple:
    """What this script serves: (the model's build, its engine's fusion plan, the H100 SXM, the engine)."""
    hw = hardware.load("h100-sxm")
    served = ENGINES[engine](hw)
    return models.get(model).build, strategy(served.plan), hw, served


def event_run(model: str, engine: str, concurrency: int, measure: int):
    """The event run this script times, its traces made first (untimed; the models' builds are cached): a function
    that runs it with no warm-up, every iteration counted, and returns serve's result."""
    build, plan, hw, served = setting(model, engine)
    run = dict(concurrency=concurrency, prompt=1024, output=256, engine=served)
    serve(build, plan, hw, **run, measure=measure)
    return lambda: serve(build, plan, hw, **run, warmup=0, measure=measure)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3-8b")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="vllm")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--measure", type=int, default=2000, help="completions measured after the warm-up")
    ap.add_argument("--rate", type=float, default=2.0, help="the open loop's requests a second")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    event = event_run(args.model, args.engine, args.concurrency, args.measure)
    build, plan, hw, engine = setting(args.model, args.engine)
    serve(build, plan, hw, rate=args.rate, prompt=1024, output=256, engine=engine)  # untimed: the traces
    rates, closed, opened = [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        s = event()
        rates.append(s.iterations / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        steady(IterationPricer(build, plan, hw), engine, args.concurrency, 1024, 256)
        closed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        serve(build, plan, hw, rate=args.rate, prompt=1024, output=256, engine=engine)
        opened.append(time.perf_counter() - t0)
    rate, fast = statistics.median(rates), statistics.median(closed)
    print(f"{args.model}, {args.engine}, concurrency {args.concurrency}, 1,024 -> 256 tokens: event run {rate:,.0f} iterations a "
          f"second (median of {args.repeat}); closed-form steady state {fast * 1e3:,.0f} ms from a fresh pricer; an open "
          f"loop at {args.rate:g} requests a second {statistics.median(opened):.2f} s")
    met_rate, met_fast = rate >= ITERATIONS_PER_S, fast < STEADY_S
    print(f"target >= {ITERATIONS_PER_S:,} iterations a second: {'met' if met_rate else 'MISSED'}; "
          f"target < {STEADY_S:g} s a steady state: {'met' if met_fast else 'MISSED'}")
    return 0 if met_rate and met_fast else 1


if __name__ == "__main__":
    raise SystemExit(main())
