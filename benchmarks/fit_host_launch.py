"""Fit each serving engine's host time per kernel of an iteration that carries prompt tokens (Engine.host_launch_s:
engines replay a captured CUDA graph for decode-only iterations but launch a prompt's iteration kernel by kernel, so
it takes at least its kernels times this) on measured B200 and GB200 serving rows only, as issue 17 §7 allows for an
engine constant; the H100 and H200 rows stay held out (benchmarks/check_serving.py reports them).

Every figure of a grid serves each engine's rows (each under the client its campaign's tooling documents,
check_serving's `by-source`; a closed loop's schedule, and so its TPOT, does not depend on the time a request spends outside the
engine, so none is added), and the figure with the lowest median |TPOT error| is the engine's. TTFT is not fitted on:
it carries that time outside the engine, which fit_protocol.py fits afterwards, per campaign, with these figures in
place. The figures found go into opgraph/analysis/serve.py's HOST_LAUNCH by hand.

    python benchmarks/fit_host_launch.py --jobs 2          # about 25 minutes on 2 cores
    python benchmarks/fit_host_launch.py --engines vllm --grid 0,50,100 --limit 10

Prints, for each engine and figure, the rows predicted and their median and 90th-percentile |TPOT error| and median
signed error, then each engine's best figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from check_serving import BY_SOURCE, per_row, rows  # noqa: E402

from opgraph.analysis.serve import ENGINES  # noqa: E402
from opgraph.analysis.serving_validate import Client, predict  # noqa: E402
from opgraph.choices import serving_row  # noqa: E402
from opgraph.errors import OpgraphError  # noqa: E402

FIT_GPUS = ("b200", "gb200")
GRID_US = (0, 25, 50, 75, 100, 150)


def errors(engine: str, us: float, limit: int | None) -> list[float]:
    """Signed TPOT errors of the engine's B200 and GB200 rows served with `us` µs a launched kernel."""
    client, out, taken = per_row(BY_SOURCE), [], {}
    for r in rows(FIT_GPUS, engines=[engine]):
        if r.skip or (limit and taken.get(r.model, 0) >= limit):
            continue
        try:
            p = predict(r, serving_row, Client.of(client(r)).protocol, host_launch_s=us * 1e-6)
        except OpgraphError:
            continue
        taken[r.model] = taken.get(r.model, 0) + 1
        out.append(p.tpot_error)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"engines to fit (default: {','.join(ENGINES)})")
    ap.add_argument("--grid", default=",".join(map(str, GRID_US)),
                    help=f"figures to try, µs a kernel (default: {','.join(map(str, GRID_US))})")
    ap.add_argument("--limit", type=int, help="rows per (engine, model) at most")
    ap.add_argument("--jobs", type=int, default=1, help="processes (default: 1)")
    args = ap.parse_args()
    engines = args.engines.split(",")
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        ap.error(f"--engines: {', '.join(unknown)} not modelled; valid: {', '.join(ENGINES)}")
    grid = [float(x) for x in args.grid.split(",")]
    t0 = time.perf_counter()
    tasks = [(e, us) for e in engines for us in grid]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        found = dict(zip(tasks, pool.map(errors, *zip(*tasks), [args.limit] * len(tasks))))
    print(f"{'engine':8s} {'µs a kernel':>11s} {'rows':>5s} {'TPOT |error| median':>20s} {'p90':>7s} "
          f"{'median error':>13s}")
    for e in engines:
        best = None
        for us in grid:
            signed = found[e, us]
            if not signed:
                print(f"{e:8s} {us:11g} {0:5d} {'no rows':>20s}")
                continue
            absolute = sorted(map(abs, signed))
            median = statistics.median(absolute)
            p90 = statistics.quantiles(absolute, n=10)[-1] if len(absolute) > 1 else absolute[0]
            print(f"{e:8s} {us:11g} {len(signed):5d} {median:20.1%} {p90:7.1%} {statistics.median(signed):+13.1%}")
            if best is None or median < best[1]:
                best = (us, median)
        if best:
            print(f"{e}: {best[0]:g} µs a kernel (median |TPOT error| {best[1]:.1%})")
    print(f"{len(tasks)} runs in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
