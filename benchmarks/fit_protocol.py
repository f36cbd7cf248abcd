"""Choose each measurement campaign's benchmark client on the rows the issue lets us fit on (B200 and GB200), for
`python benchmarks/check_serving.py --protocol by-campaign` on the held-out H100 and H200 rows.

The serving rows (benchmarks/data/serving-measured.csv.gz) come from several campaigns (its `data_source_kind` column:
NVIDIA's dated CSVs, database dumps, gap analyses), each run by a client the file does not record, which decides what
TTFT counts (opgraph.analysis.serving_validate.PROTOCOLS: an endless closed loop's steady state, InferenceMAX's 10 x C
requests, one wave of C requests sent at once, or aiconfigurator's aiperf rounds of 20 x C), and each through a server
whose own time per request (HTTP handling, tokenization, streaming: `opgraph serve --request-latency-ms`) no kernel
shows. Here every protocol serves each campaign's B200 and GB200 rows (per engine where it has such rows), and the one
with the lowest median |TTFT error| is kept where at least MIN_ROWS rows were predicted; campaigns or engines with
fewer are recorded as `steady`, and check_serving.py serves them under the client their tooling documents instead (its
`by-source`). Under each protocol the request latency is fitted too: the median of measured less predicted TTFT (none
if that is negative: a time outside the engine cannot make TTFT shorter), which `check_serving.py --latency fitted`
adds to the held-out rows served under that protocol. Nothing else is fitted, and no H100 or H200 row is read. Writes
benchmarks/data/serving-protocols.json (the choices and the figures they were made on).

    python benchmarks/fit_protocol.py     # at most 40 rows per (campaign, engine, GPU, model): --limit N
    python benchmarks/fit_protocol.py --campaigns "db-dump disaggregated"   # one campaign, the others kept

A disaggregated row is a campaign of its own (`<kind> disaggregated`: another deployment and another client than its
source's aggregated rows). The protocols tried are every client opgraph.analysis.serving_validate knows; `sa-bench`
was added with the disaggregated rows (December 2026), after the aggregated campaigns' choices were made.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
from check_serving import FIT_GPUS  # the script's folder is on the path when run as a script

from opgraph.analysis.serving_validate import PROTOCOLS, validate_serving
from opgraph.choices import serving_row
from opgraph.files import serving_measurements

DATA = Path(__file__).parent / "data" / "serving-measured.csv.gz"
OUT = Path(__file__).parent / "data" / "serving-protocols.json"
MIN_ROWS = 10  # fewer predicted rows choose nothing: the campaign stays `steady`


def campaigns(path: Path = DATA) -> dict[int, str]:
    """Each row's campaign (its data_source_kind; a disaggregated row's its own, `<kind> disaggregated`: another
    deployment, and another client, than the same source's aggregated rows), by row number (1 = the first data
    row)."""
    with gzip.open(path, "rt", newline="") as f:
        return {i: row["data_source_kind"] + (" disaggregated" if row.get("decode_workers") else "")
                for i, row in enumerate(csv.DictReader(f), 1)}


class Fit(NamedTuple):
    """One protocol's figures on a campaign's rows: medians of the |errors|, and the request latency."""

    latency_s: float  # the median of measured less predicted TTFT, at least 0
    ttft_with_latency: float
    ttft: float
    tpot: float  # which the latency does not change


def fitted(seen: list[tuple[float, float, float]]) -> Fit:
    """Rows' (measured TTFT, predicted TTFT, |TPOT error|) -> their Fit."""
    measured, predicted, tpot = (np.array(c) for c in zip(*seen))
    latency = max(float(np.median(measured - predicted)), 0.0)
    return Fit(latency, float(np.median(abs(predicted + latency - measured) / measured)),
               float(np.median(abs(predicted - measured) / measured)), float(np.median(tpot)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=40,
                    help="rows per (campaign, engine, GPU, model) at most (default: 40)")
    ap.add_argument("--campaigns", help="fit only these campaigns (comma-separated, e.g. 'db-dump disaggregated'), "
                    "keeping the file's other choices as they are (default: every campaign, the file written anew)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    kind = campaigns()
    rows = [r for r in serving_measurements.read(DATA) if r.gpu in FIT_GPUS]
    every = sorted({kind[r.row] for r in rows})
    only = every if args.campaigns is None else [c.strip() for c in args.campaigns.split(",")]
    if unknown := [c for c in only if c not in every]:
        ap.error(f"--campaigns: {', '.join(unknown)} not among the fit rows' campaigns: {', '.join(every)}")
    seen: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for protocol in PROTOCOLS:
        for campaign in only:  # --limit rows of each campaign: none crowds another out
            v = validate_serving(rows, serving_row, str(DATA), protocol=protocol, limit=args.limit,
                                 where=lambda r, c=campaign: kind[r.row] == c)
            for p in v.predictions:
                seen[campaign, p.row.engine][protocol].append((p.row.ttft_s, p.ttft_s, abs(p.tpot_error)))
    chosen = {} if args.campaigns is None else {
        key: fit for key, fit in json.loads(OUT.read_text())["chosen"].items() if key.split("/")[0] not in only}
    for (campaign, engine), by in sorted(seen.items()):
        fits = {pr: fitted(es) for pr, es in by.items()}
        best = min(fits, key=lambda pr: fits[pr].ttft) if len(by["steady"]) >= MIN_ROWS else "steady"
        chosen[f"{campaign}/{engine}"] = {
            "protocol": best, "rows": len(by[best]),
            "request_latency_ms": {pr: round(f.latency_s * 1e3, 1) for pr, f in fits.items()},
            "ttft_median_error": {pr: round(f.ttft, 4) for pr, f in fits.items()},
            "ttft_median_error_with_latency": {pr: round(f.ttft_with_latency, 4) for pr, f in fits.items()},
            "tpot_median_error": {pr: round(f.tpot, 4) for pr, f in fits.items()}}
        print(f"{campaign:22s} {engine:7s} {len(by[best]):4d} rows: " + ", ".join(
            f"{pr} TTFT {f.ttft:.1%} (+{f.latency_s * 1e3:.0f} ms: {f.ttft_with_latency:.1%}) TPOT {f.tpot:.1%}"
            for pr, f in fits.items()) + f" -> {best}")
    OUT.write_text(json.dumps({"fitted_on": list(FIT_GPUS), "limit": args.limit, "source": DATA.name,
                               "chosen": dict(sorted(chosen.items()))}, indent=1) + "\n")
    print(f"wrote {OUT} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
