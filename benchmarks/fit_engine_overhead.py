"""Fit each serving engine's own time per iteration (scheduling, sampling, input preparation: what the GPU's kernels
do not account for) on measured B200 serving rows only, as issue 17 §7 allows; the H100 and H200 rows stay held out
(benchmarks/check_serving.py reports them).

The figure fitted is the time an engine leaves exposed per iteration: its rows are served under sync scheduling (the
host's time added to each iteration's), since under async scheduling (the host's hidden behind the GPU's where
shorter, serve's default) a time below the GPU's changes no row and the rows cannot say what it is. For a closed
loop the schedule does not depend on time (which requests run in each iteration follows from the counts
alone), so a row's mean TPOT is affine in the overhead o: TPOT(o) = a + b x o, with b the iterations per output
token (1 for vLLM; more for SGLang, whose decodes wait for prompt iterations). Two runs per row (o = 0 and o = 1 ms)
give a and b exactly; the row's own overhead is (measured - a) / b, and an engine's fitted overhead is the median over
its rows. TTFT, which adds the client's and server's time per request, is not fitted. Rows: B200 rows that
`opgraph validate` predicts (opgraph.analysis.serving_validate), under --protocol.

    python benchmarks/fit_engine_overhead.py --limit 4       # at most 4 rows per (engine, model)

Prints each engine's rows and fitted overhead (median, and the spread: p25 and p75 of the rows' own figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from check_serving import BY_CAMPAIGN, BY_SOURCE, per_row, rows  # noqa: E402

from opgraph.analysis.serving_validate import PROTOCOLS, Client, predict  # noqa: E402
from opgraph.choices import serving_row  # noqa: E402
from opgraph.errors import OpgraphError  # noqa: E402

FIT_GPUS = ("b200",)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="rows per (engine, model) at most")
    ap.add_argument("--models", help="presets whose rows to fit on (default: all)")
    ap.add_argument("--protocol", choices=(*PROTOCOLS, BY_SOURCE, BY_CAMPAIGN), default="steady",
                    help="how each row was benchmarked (by-source, by-campaign: as check_serving.py serves it; "
                    "default: steady)")
    args = ap.parse_args()
    own, taken, t0 = defaultdict(list), defaultdict(int), time.perf_counter()
    client = per_row(args.protocol) or (lambda row: args.protocol)
    for r in rows(FIT_GPUS, args.models.split(",") if args.models else None):
        if r.skip or (args.limit and taken[r.engine, r.model] >= args.limit):
            continue
        protocol = Client.of(client(r)).protocol  # TPOT only: a request latency does not change it
        try:
            a = predict(r, serving_row, protocol, overhead_s=0.0, scheduling="sync").tpot_s
            b = (predict(r, serving_row, protocol, overhead_s=1e-3, scheduling="sync").tpot_s - a) / 1e-3
        except OpgraphError:
            continue
        taken[r.engine, r.model] += 1
        own[r.engine].append((r.tpot_s - a) / b)
    print(f"{sum(map(len, own.values()))} B200 rows in {time.perf_counter() - t0:.0f} s ({args.protocol})")
    print(f"{'engine':8s} {'rows':>5s} {'overhead µs (median)':>21s} {'p25':>8s} {'p75':>8s}")
    for engine, values in sorted(own.items()):
        q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        print(f"{engine:8s} {len(values):5d} {statistics.median(values) * 1e6:21,.0f} {q[0] * 1e6:8,.0f} "
              f"{q[2] * 1e6:8,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
