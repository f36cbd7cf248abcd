"""Fit each serving engine's host time per kernel of an iteration that carries prompt tokens (Engine.host_launch_s:
engines replay a captured CUDA graph for decode-only iterations but launch a prompt's iteration kernel by kernel, so
it takes at least its kernels times this) on measured B200 and GB200 serving rows only, as issue 17 §7 allows for an
engine constant; the H100 and H200 rows stay held out (benchmarks/check_serving.py reports them).

Every figure of a grid serves each engine's rows, the one with the lowest median |TPOT error| is the engine's
(benchmarks/engine_grid.py says how), and it goes into opgraph/analysis/serve.py's HOST_LAUNCH by hand.

    python benchmarks/fit_host_launch.py --jobs 2          # about 15 minutes on 2 cores
    python benchmarks/fit_host_launch.py --engines vllm --grid 0,50,100 --limit 10

Prints, for each engine and figure, the rows predicted and their median and 90th-percentile |TPOT error| and median
signed error, then each engine's best figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engine_grid import engines, figures, fit, parser  # noqa: E402

GRID_US = (0, 25, 50, 75, 100, 150)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--grid", default=",".join(map(str, GRID_US)),
                    help=f"figures to try, µs a kernel (default: {','.join(map(str, GRID_US))})")
    args = ap.parse_args()
    grid = {f"{x:g}": dict(host_launch_s=x * 1e-6) for x in figures(ap, "--grid", args.grid)}
    fit(engines(ap, args), grid, "µs a kernel", args.limit, args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
