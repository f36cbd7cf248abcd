"""What the fits of an engine constant share (issue 17 §7 allows one, fitted on B200 and GB200 serving rows only; the
H100 and H200 rows stay held out, benchmarks/check_serving.py reports them): every point of a grid serves each
engine's B200 and GB200 rows, each under the client its campaign's tooling documents (check_serving's `by-source`),
and the point with the lowest median |TPOT error| is the engine's; of equal ones, the first. A closed loop's schedule,
and so its TPOT, does not depend on the time a request spends outside the engine, so none is added; TTFT, which
carries that time, is not fitted on (fit_protocol.py fits it afterwards, per campaign, with the figures in place)."""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from check_serving import BY_SOURCE, FIT_GPUS, per_row, rows

from opgraph.analysis.serve import ENGINES
from opgraph.analysis.serving_validate import validate_serving
from opgraph.analysis.validate import Stats
from opgraph.choices import serving_row


def parser(doc: str) -> argparse.ArgumentParser:
    """A fit's command line: the engines, the rows per model and the processes (its grid's options added after)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"engines to fit (default: {','.join(ENGINES)})")
    ap.add_argument("--limit", type=int, help="rows per (engine, GPU, model) at most")
    ap.add_argument("--jobs", type=int, default=1, help="processes (default: 1)")
    return ap


def engines(ap: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The engines --engines names, each one modelled (else the parser's error)."""
    chosen = args.engines.split(",")
    unknown = sorted(set(chosen) - set(ENGINES))
    if unknown:
        ap.error(f"--engines: {', '.join(unknown)} not modelled; valid: {', '.join(ENGINES)}")
    return chosen


def figures(ap: argparse.ArgumentParser, option: str, text: str) -> list[float]:
    """The numbers of a comma-separated grid option (else the parser's error naming it)."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        ap.error(f"{option}: {text!r} is not a comma-separated list of numbers")


def errors(engine: str, figures: dict, limit: int | None) -> list[float]:
    """Signed TPOT errors of the engine's B200 and GB200 rows served with `figures` (predict's keywords), at most
    `limit` rows per (GPU, model)."""
    # the engines' figures are fitted on aggregated rows (an engine that runs prompts and decodes together)
    v = validate_serving(rows(FIT_GPUS, engines=[engine], aggregated=True), serving_row, protocol=BY_SOURCE, limit=limit,
                         per_row=per_row(BY_SOURCE), figures=figures)
    return [p.tpot_error for p in v.predictions]


def fit(engines: list[str], grid: dict[str, dict], heading: str, limit: int | None, jobs: int) -> dict[str, str]:
    """Serve every engine's rows at every point of `grid` (a label for each point's predict keywords), print the
    errors of each, and return each engine's best point's label."""
    t0 = time.perf_counter()
    tasks = [(e, label) for e in engines for label in grid]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        found = dict(zip(tasks, pool.map(errors, [e for e, _ in tasks], [grid[label] for _, label in tasks],
                                         [limit] * len(tasks))))
    width = max(len(heading), *map(len, grid))
    print(f"{'engine':8s} {heading:>{width}s} {'rows':>5s} {'TPOT |error| median':>20s} {'p90':>7s} "
          f"{'median error':>13s}")
    best = {}
    for e in engines:
        top = None
        for label in grid:
            signed = found[e, label]
            if not signed:
                print(f"{e:8s} {label:>{width}s} {0:5d} {'no rows':>20s}")
                continue
            s = Stats.of(np.array(signed))
            print(f"{e:8s} {label:>{width}s} {s.count:5d} {s.median:20.1%} {s.p90:7.1%} {s.bias:+13.1%}")
            if top is None or s.median < top[1]:
                top = (label, s.median)
        if top:
            best[e] = top[0]
            print(f"{e}: {top[0]} ({heading}; median |TPOT error| {top[1]:.1%})")
    print(f"{len(tasks)} runs in {time.perf_counter() - t0:.0f} s")
    return best
