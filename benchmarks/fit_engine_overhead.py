"""Fit each serving engine's own time per iteration, a + b x the requests it runs (Engine.overhead_s and
overhead_per_request_s: scheduling, sampling, input preparation and output, the host's work the kernels do not
account for), on measured B200 and GB200 serving rows only, as issue 17 §7 allows for an engine constant; the H100
and H200 rows stay held out (benchmarks/check_serving.py reports them).

Each row is served under its engine's own scheduling (async unless the row says sync: the host's time hidden behind
the GPU's where shorter, else added), with the engine's fitted launches of a prompt's iteration in place
(fit_host_launch.py, fitted first with none of this time). Every (a, b) of a grid serves each engine's rows, the pair
with the lowest median |TPOT error| is the engine's (benchmarks/engine_grid.py says how; the first of equal ones, so
a time the rows cannot see stays 0), and it goes into opgraph/analysis/serve.py's HOST_TIME by hand.

    python benchmarks/fit_engine_overhead.py --jobs 2       # about 30 minutes on 2 cores
    python benchmarks/fit_engine_overhead.py --engines vllm --overhead-us 0,3000 --per-request-us 0,50 --limit 10

Prints, for each engine and pair, the rows predicted and their median and 90th-percentile |TPOT error| and median
signed error, then each engine's best pair.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engine_grid import engines, figures, fit, parser  # noqa: E402

OVERHEAD_US = (0, 1000, 2000, 3000, 4000)
PER_REQUEST_US = (0, 25, 50, 100)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--overhead-us", default=",".join(map(str, OVERHEAD_US)),
                    help=f"a: µs an iteration to try (default: {','.join(map(str, OVERHEAD_US))})")
    ap.add_argument("--per-request-us", default=",".join(map(str, PER_REQUEST_US)),
                    help=f"b: µs an iteration for each request it runs (default: "
                    f"{','.join(map(str, PER_REQUEST_US))})")
    args = ap.parse_args()
    grid = {f"{a:g}+{b:g}": dict(overhead_s=a * 1e-6, overhead_per_request_s=b * 1e-6)
            for a in figures(ap, "--overhead-us", args.overhead_us)
            for b in figures(ap, "--per-request-us", args.per_request_us)}
    fit(engines(ap, args), grid, "µs + µs a request", args.limit, args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
