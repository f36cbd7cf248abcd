"""Check `opgraph serve` against measured serving (issue 17 §7): `opgraph validate` on the rows of
benchmarks/data/serving-measured.csv.gz (aiconfigurator-core 0.12.0's silicon_sample, Apache-2.0; see
extract_serving.py), narrowed to some GPUs, models and engines, printed by engine, GPU and model.

Nothing is fitted here, and nothing anywhere on the H100 and H200 rows: they are the held-out check (the issue
reserves them). Each row is served as opgraph.analysis.serving_validate says: its preset, GPU, tensor parallelism and
GEMM storage, its engine's scheduler, defaults and kernels, under a benchmark protocol (--protocol).

    python benchmarks/check_serving.py                          # every H100/H200 row (long: large MoE models)
    python benchmarks/check_serving.py --models llama-3-8b --limit 40
    python benchmarks/check_serving.py --gpus b200 --protocol inferencemax
    python benchmarks/check_serving.py --protocol by-source     # each campaign's client, as its tooling says
    python benchmarks/check_serving.py --protocol by-campaign   # each campaign's client, chosen on B200/GB200 rows
    python benchmarks/check_serving.py --protocol by-source --latency fitted   # and its B200-fitted request latency
    python benchmarks/check_serving.py --protocol by-source --by-tp      # and TPOT by tensor-parallel size
    python benchmarks/check_serving.py --protocol by-source --campaigns  # and each campaign's rows
    python benchmarks/check_serving.py --protocol by-source --cycles     # and what a prompt adds to a loop's cycle
    python benchmarks/check_serving.py --protocol by-source --baseline   # and aiconfigurator's own predictions

`by-source` serves each row under the client its campaign's own tooling documents, the file's client column (as
`opgraph validate` does by default; extract_serving.py writes it from source code, not from any row's error):
aiconfigurator's generated aiperf benchmark for NVIDIA's Dynamo runs (aic-auto-gap-analysis), InferenceX's client for
the database dump (aisimulate replays those points with 10 x C requests and a range ratio of 0.8) and for the dated
CSVs (the same field names and engine images: an inference), srt-slurm's sa-bench for the dump's disaggregated runs
(5 x C requests over every decode replica, lengths from 0.8 of the row's: the recipes InferenceX's configs name);
the gap-analysis CSVs name no tool and stay `steady`. A disaggregated row (its decode_workers and prefill_workers
columns) is served as `opgraph serve --disaggregate` serves it, each pool at its own layout.
`by-campaign` serves each row under the protocol benchmarks/fit_protocol.py chose for its campaign and engine on the
B200 and GB200 rows (benchmarks/data/serving-protocols.json), where it chose on at least fit_protocol.MIN_ROWS rows; a
campaign or engine with fewer is served as `by-source` serves it. `--latency fitted` adds to each row's TTFT the request latency
(each request's time outside the engine: the server's HTTP handling, tokenization and streaming) fit_protocol.py
fitted for its campaign and engine on those B200 and GB200 rows under the protocol the row is served with; a campaign
or engine with fewer than MIN_ROWS such rows gets none.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from opgraph.analysis.serving_validate import PROTOCOLS, Client, own_client, validate_serving
from opgraph.choices import serving_row
from opgraph.files import serving_measurements
from opgraph.render import render

DATA = Path(__file__).parent / "data" / "serving-measured.csv.gz"
BASELINE = Path(__file__).parent / "data" / "aiconfigurator-predictions.csv.gz"  # aiconfigurator_baseline.py
CHOSEN = Path(__file__).parent / "data" / "serving-protocols.json"
HELD_OUT = ("h100-sxm", "h200")
FIT_GPUS = ("b200", "gb200")  # the rows issue 17 lets an engine or campaign constant be fitted on
BY_CAMPAIGN = "by-campaign"
BY_SOURCE = "by-source"


def fit_of(kind: dict[int, str] | None = None):
    """row -> what fit_protocol.py fitted for its campaign and engine (benchmarks/data/serving-protocols.json), where it
    fitted on at least MIN_ROWS B200/GB200 rows; None where it had fewer (or none). `kind`: each row's campaign
    (fit_protocol.campaigns; read from the file if not given)."""
    from fit_protocol import MIN_ROWS, campaigns

    kind = kind or campaigns(DATA)
    chosen = json.loads(CHOSEN.read_text())["chosen"]

    def fit(row):
        found = chosen.get(f"{kind[row.row]}/{row.engine}")
        return found if found and found["rows"] >= MIN_ROWS else None
    return fit


def by_campaign(kind: dict[int, str] | None = None):
    """row -> the protocol fit_protocol.py chose for its campaign and engine (fit_of); where it chose none, the client
    the campaign's tooling documents (by_source)."""
    fit, documented = fit_of(kind), by_source()

    def protocol(row):
        found = fit(row)
        return found["protocol"] if found else documented(row)
    return protocol


def with_latency(client, kind: dict[int, str] | None = None):
    """row -> its protocol (`client(row)`) with the request latency fit_protocol.py fitted for its campaign and engine
    under that protocol (fit_of; none where it fitted none), as a Client."""
    fit = fit_of(kind)

    def latency(row):
        protocol, found = client(row), fit(row)
        return Client(protocol, found["request_latency_ms"][protocol] / 1e3 if found else 0.0)
    return latency


def by_source():
    """row -> the client its campaign's tooling documents (its client column; steady where it names none)."""
    return own_client


def per_row(protocol: str):
    """row -> its protocol, for a choice made row by row (by-source, by-campaign); None for one protocol for all."""
    return {BY_CAMPAIGN: by_campaign, BY_SOURCE: by_source}.get(protocol, lambda: None)()


def selected(gpus, models=None, engines=None):
    """row -> whether it is of these GPUs (and models and engines, if given)."""
    return lambda r: r.gpu in gpus and (not models or r.model in models) and (not engines or r.engine in engines)


def rows(gpus, models=None, engines=None, aggregated: bool = False) -> list:
    """The file's rows of these GPUs (and models and engines, if given; `aggregated`: those rows only, without the
    disaggregated ones)."""
    return [r for r in serving_measurements.read(DATA)
            if selected(gpus, models, engines)(r) and not (aggregated and r.disaggregated)]


def by_tp(predictions) -> str:
    """TPOT's median signed error and median gap (measured less predicted, ms) by engine, GPU, model and tensor-parallel
    size, over all the group's rows and over its rows at its lowest concurrency (where prompts weigh least)."""
    import numpy as np
    from tabulate import tabulate

    groups: dict = {}
    for p in predictions:
        groups.setdefault((p.row.engine, p.row.gpu, p.row.model, p.row.tp), []).append(p)
    out = []
    for key, ps in sorted(groups.items()):
        lowest = min(p.row.concurrency for p in ps)
        low = [p for p in ps if p.row.concurrency == lowest]
        gap = lambda qs: float(np.median([(q.row.tpot_s - q.tpot_s) * 1e3 for q in qs]))  # noqa: E731
        out.append([*key, len(ps), f"{np.median([p.tpot_error for p in ps]):+.1%}", f"{gap(ps):+.2f}",
                    lowest, f"{gap(low):+.2f}"])
    return tabulate(out, ["engine", "GPU", "model", "TP", "rows", "TPOT median signed", "gap ms (measured - predicted)",
                          "lowest concurrency", "its gap ms"], disable_numparse=True)


def cycles(predictions) -> str:
    """Each (engine, GPU, model, TP, concurrency, prompt) measured at three or more output lengths G: a closed loop's
    cycle (TTFT + (G - 1) x TPOT, measured) fitted as a + b x G, so b is a decode step and a / C what each prompt adds
    to the cycle (its prefill), and the mean TTFT, measured and predicted, in those prefills: measured columns alone
    say whether a first token waits for its own prefill or for several."""
    import numpy as np
    from tabulate import tabulate

    groups: dict = {}
    for p in predictions:
        r = p.row
        groups.setdefault((r.engine, r.gpu, r.model, r.tp, r.concurrency, r.prompt), []).append(p)
    out = []
    for key, ps in sorted(groups.items()):
        g = np.array([p.row.output for p in ps], dtype=float)
        if len(set(g)) < 3:
            continue
        ttft = np.array([p.row.ttft_s for p in ps])
        b, a = np.polyfit(g, ttft + (g - 1) * np.array([p.row.tpot_s for p in ps]), 1)
        prefill = a / key[4]
        if prefill <= 0:
            continue
        out.append([*key[:5], f"{key[5]:,}", f"{prefill * 1e3:.1f}", f"{b * 1e3:.2f}", f"{ttft.mean() / prefill:.2f}",
                    f"{np.mean([p.ttft_s for p in ps]) / prefill:.2f}"])
    return tabulate(out, ["engine", "GPU", "model", "TP", "C", "prompt", "a prompt adds ms", "a decode step ms",
                          "measured TTFT / that", "predicted TTFT / that"], disable_numparse=True)


def by_campaign_of(predictions, kind: dict[int, str] | None = None) -> str:
    """Each campaign's rows (fit_protocol.campaigns: the file's data_source_kind), then all: TPOT's and TTFT's median
    and 90th-percentile |error| and median signed error, as the README and docs/serving-checks.md quote them."""
    from tabulate import tabulate

    from opgraph.analysis.serving_validate import ServingValidation

    if kind is None:
        from fit_protocol import campaigns

        kind = campaigns(DATA)
    groups: dict = {}
    for p in predictions:
        groups.setdefault(kind[p.row.row], []).append(p)
    out = []
    for name, ps in [*sorted(groups.items()), ("all", list(predictions))]:
        tpot, ttft = (ServingValidation.stats(ps, m) for m in ("tpot", "ttft"))
        out.append([name, f"{len(ps):,}", *(f"{x:.1%}" for x in (tpot.median, tpot.p90)), f"{tpot.bias:+.1%}",
                    *(f"{x:.1%}" for x in (ttft.median, ttft.p90)), f"{ttft.bias:+.1%}"])
    return tabulate(out, ["campaign", "rows", "TPOT median |error|", "p90", "median signed", "TTFT median |error|",
                          "p90", "median signed"], disable_numparse=True)


def within(predictions, near: float = 0.08, far: float = 0.20) -> str:
    """How many rows' TPOT is within issue 17's median target (8%) and how many beyond its p90 target (20%), and the
    groups (engine, GPU, model) with the most rows beyond, as docs/serving-checks.md quotes them."""
    from collections import Counter

    errors = [abs(p.tpot_error) for p in predictions]
    beyond = Counter(f"{p.row.engine} {p.row.model} {p.row.gpu}" for p in predictions if abs(p.tpot_error) > far)
    most = ", ".join(f"{group} {n}" for group, n in beyond.most_common(6))
    return (f"TPOT within {near:.0%}: {sum(e <= near for e in errors):,} rows; beyond {far:.0%}: "
            f"{sum(e > far for e in errors):,} rows" + (f" (most: {most})" if most else ""))


def baseline(v, path: Path = BASELINE) -> str:
    """opgraph's errors (a ServingValidation's) beside aiconfigurator's own predictions of the same rows
    (aiconfigurator_baseline.py), by engine, GPU and model and over all: how many rows each predicts, and TPOT's and
    TTFT's median |error| on the rows both predict."""
    import csv
    import gzip

    from tabulate import tabulate

    from opgraph.analysis.serving_validate import ServingPrediction, ServingValidation

    with gzip.open(path, "rt", newline="") as f:
        theirs = {r["source_id"]: r for r in csv.DictReader(f) if r["tpot_ms"]}
    out = []
    for key, ps in [*v.groups().items(), (("all", "", "", ""), list(v.predictions))]:
        both = [p for p in ps if p.row.source in theirs]
        aic = [ServingPrediction(p.row, float(theirs[p.row.source]["ttft_ms"]) / 1e3,
                                 float(theirs[p.row.source]["tpot_ms"]) / 1e3) for p in both]
        cells = [f"{len(both):,}"]
        for metric in ("tpot", "ttft"):
            cells += [f"{ServingValidation.stats(qs, metric).median:.1%}" if both else "-" for qs in (both, aic)]
        out.append([*key, f"{len(ps):,}", *cells])
    used = sorted({r["aiconfigurator"] for r in theirs.values()})
    tables = sorted({r["backend_version"] for r in theirs.values()})
    return (tabulate(out, ["engine", "GPU", "model", "serving", "rows opgraph predicts", "of them aiconfigurator too",
                           "TPOT opgraph", "TPOT aiconfigurator", "TTFT opgraph", "TTFT aiconfigurator"],
                     disable_numparse=True)
            + f"\n(median |error| on the rows both predict; aiconfigurator {', '.join(used)} with its tables of engine "
            f"versions {', '.join(tables)}: {path.name})\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", default=",".join(HELD_OUT), help="GPUs whose rows to run (default: h100-sxm,h200)")
    ap.add_argument("--models", help="presets whose rows to run (default: all)")
    ap.add_argument("--engines", help="engines whose rows to run (default: all)")
    ap.add_argument("--limit", type=int, help="rows per (engine, GPU, model) at most")
    ap.add_argument("--protocol", choices=(*PROTOCOLS, BY_SOURCE, BY_CAMPAIGN), default="steady",
                    help="how each row's benchmark is run (opgraph.analysis.serving_validate; by-source: as each "
                    "campaign's tooling documents its client; by-campaign: as fit_protocol.py chose per campaign on "
                    "the B200/GB200 rows, else as by-source; default: steady)")
    ap.add_argument("--latency", choices=("none", "fitted"), default="none",
                    help="each request's time outside the engine, added to TTFT: none (default), or as fit_protocol.py "
                    "fitted it for the row's campaign and engine on the B200/GB200 rows under the row's protocol")
    ap.add_argument("--format", default="table", help="table, markdown, json or csv (default: table)")
    ap.add_argument("--by-tp", action="store_true",
                    help="also print TPOT by tensor-parallel size: each (engine, GPU, model, TP)'s median signed error "
                    "and its median measured less predicted TPOT in ms, at all concurrencies and at the lowest")
    ap.add_argument("--campaigns", action="store_true",
                    help="also print each campaign's rows (its data_source_kind: NVIDIA's Dynamo runs, InferenceX's "
                    "dated CSVs and database dump, the gap-analysis CSVs): TPOT's and TTFT's median and p90 |error| "
                    "and median signed error")
    ap.add_argument("--cycles", action="store_true",
                    help="also print, for each (engine, GPU, model, TP, concurrency, prompt) measured at three or more "
                    "output lengths, what a prompt adds to a closed loop's measured cycle (its prefill, from the "
                    "cycle's line in the output length) and the mean TTFT, measured and predicted, in such prefills")
    ap.add_argument("--baseline", action="store_true",
                    help="also print aiconfigurator's own predictions of the same rows beside opgraph's "
                    "(benchmarks/data/aiconfigurator-predictions.csv.gz, written by aiconfigurator_baseline.py)")
    args = ap.parse_args()
    split = lambda text: text.split(",") if text else None  # noqa: E731
    t0 = time.perf_counter()
    client = per_row(args.protocol)
    if args.latency == "fitted":
        client = with_latency(client or (lambda row: args.protocol))
    v = validate_serving(serving_measurements.read(DATA), serving_row, str(DATA),
                         protocol=args.protocol + (" + fitted latency" if args.latency == "fitted" else ""),
                         limit=args.limit, per_row=client,
                         where=selected(split(args.gpus), split(args.models), split(args.engines)))
    print(render(v, args.format), end="")
    if args.by_tp:
        print(by_tp(v.predictions))
    if args.cycles:
        print(cycles(v.predictions))
    if args.campaigns:
        print(by_campaign_of(v.predictions))
    if args.baseline:
        print(baseline(v))
    print(within(v.predictions))
    print(f"{len(v.predictions):,} rows predicted in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
