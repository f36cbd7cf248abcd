"""Fit each serving engine's own time per iteration (scheduling, sampling, input preparation: what the GPU's kernels
do not account for) on measured B200 serving rows only, as issue 17 §7 allows; the H100 and H200 rows stay held out
(benchmarks/check_serving.py reports them with the fitted figures).

For a closed loop the schedule does not depend on time (which requests run in each iteration follows from the counts
alone), so a row's mean TPOT and TTFT are affine in the overhead o: TPOT(o) = a + b x o, with b the iterations per
output token (1 for vLLM; more for SGLang, whose decodes wait for prompt iterations). Two runs per row (o = 0 and
o = 1 ms) give a and b exactly; the row's own overhead is (measured - a) / b, and an engine's fitted overhead is the
median over its rows of the TPOT figures (TTFT, which adds the client's and server's time per request, is not
fitted). Rows: B200, aggregated, without pipeline, attention-data or expert parallelism, with bf16 or fp8 GEMMs
(opgraph's gemm and gemm_fp8; nvfp4 and int4 rows would run other storage), as check_serving.py selects them.

    python benchmarks/fit_engine_overhead.py                 # every such row (long: large MoE models)
    python benchmarks/fit_engine_overhead.py --limit 4       # at most 4 rows per (engine, model, tp)

Prints each engine's rows and fitted overhead (median, and the spread: p25 and p75 of the rows' own figures).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from check_serving import DATA, precision, skip  # noqa: E402  one selection of rows for the fit and the check

from opgraph import hardware, models, strategy  # noqa: E402
from opgraph.analysis.serve import ENGINES, serve  # noqa: E402
from opgraph.errors import OpgraphError  # noqa: E402
from opgraph.models import BuildOptions  # noqa: E402

FIT_GPUS = ("b200",)
MODELLED_GEMMS = ("", "fp8", "fp8_block")  # storage opgraph builds as measured


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="rows per (engine, model, tp) at most")
    args = ap.parse_args()
    with gzip.open(DATA, "rt", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["gpu"] in FIT_GPUS and not skip(r)
                and r["gemm_quant_mode"] in MODELLED_GEMMS]
    hw = {g: hardware.load(g) for g in FIT_GPUS}
    own, taken, t0 = defaultdict(list), defaultdict(int), time.perf_counter()
    for r in rows:
        key = (r["engine"], r["model"], r["tp"])
        if args.limit and taken[key] >= args.limit:
            continue
        taken[key] += 1
        gpu, engine = hw[r["gpu"]], ENGINES[r["engine"]](hw[r["gpu"]])
        options = BuildOptions(precision(r), tp=int(r["tp"]))
        build = lambda ph, m=r["model"], o=options: models.get(m).build(ph, o)  # noqa: E731
        run = dict(concurrency=int(r["concurrency"]), prompt=int(r["prompt_tokens"]),
                   output=int(r["output_tokens"]), engine=engine)
        try:
            a = serve(build, strategy(engine.plan), gpu, **run).tpot.mean
            b = (serve(build, strategy(engine.plan), gpu, overhead_s=1e-3, **run).tpot.mean - a) / 1e-3
        except OpgraphError as e:
            print(f"  skipped {key}: {str(e)[:90]}")
            continue
        own[r["engine"]].append((float(r["tpot_ms"]) / 1e3 - a) / b)
    print(f"{sum(map(len, own.values()))} B200 rows in {time.perf_counter() - t0:.0f} s")
    print(f"{'engine':8s} {'rows':>5s} {'overhead µs (median)':>21s} {'p25':>8s} {'p75':>8s}")
    for engine, values in sorted(own.items()):
        q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        print(f"{engine:8s} {len(values):5d} {statistics.median(values) * 1e6:21,.0f} {q[0] * 1e6:8,.0f} "
              f"{q[2] * 1e6:8,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
