"""Writing a sweep's HTML page in process: llama-3-8b on h100-sxm under the fused plan, decode, a batch x context
grid (100 x 100 = 10,000 points by default: batch 1..100, contexts 100..10,000).

The sweep is computed once, outside the timing; what is timed is `render(record, "html")`, the whole page as
`opgraph sweep --format html` writes it: the JSON record (serialized, read back, embedded gzip-compressed), three
charts of at most 2,000 marks each and a table of 500 rows. Target (issue 19): under 1 s.

    python benchmarks/bench_html.py [--repeat 7] [--side 100]

Prints the median with its spread and the page's size; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import verdict
from opgraph import hardware, models, strategy
from opgraph.analysis.sweep import sweep
from opgraph.render import render

TARGET_S = 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed repetitions (default: 7)")
    ap.add_argument("--side", type=int, default=100, help="batches and contexts on each side of the grid "
                                                          "(default: 100, 10,000 points)")
    args = ap.parse_args()
    batches = list(range(1, args.side + 1))
    contexts = [100 * (i + 1) for i in range(args.side)]
    t0 = time.perf_counter()
    record = sweep(models.get("llama-3-8b").build, strategy("fused"), [hardware.load("h100-sxm")], ["decode"],
                   batches, {"decode": contexts})
    swept = time.perf_counter() - t0
    render(record, "html")  # a warm-up: the renderer modules imported
    samples, size = [], 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        size = len(render(record, "html").encode())
        samples.append(time.perf_counter() - t0)
    med = statistics.median(samples)
    points = args.side ** 2
    print(f"llama-3-8b decode sweep of {points:,} points: the HTML page written in median {med:.3f} s (min "
          f"{min(samples):.3f}, max {max(samples):.3f}, n={args.repeat}); {size:,} bytes; the sweep itself "
          f"{swept:.3f} s, not timed")
    return verdict(med, TARGET_S, "s", f"per page of {points:,} points")


if __name__ == "__main__":
    raise SystemExit(main())
