"""Check `opgraph serve` against measured serving (issue 17 §7): TTFT and TPOT predicted for each measured
aggregated configuration of benchmarks/data/serving-measured.csv.gz (aiconfigurator-core 0.12.0's silicon_sample,
Apache-2.0; see extract_serving.py) and the error distribution printed by engine, GPU and model.

Nothing is fitted: the H100 and H200 rows are the held-out check (the issue reserves them), and this script fits
no engine constant at all yet. What each row is run as, and what is assumed:
- its preset, GPU, concurrency, prompt and output lengths, and tensor parallelism; rows with pipeline, attention-data
  or expert parallelism (pp, dp or ep above 1) or flags other than a missing engine version are skipped, counted;
- its quantization: none given (''), the preset's own storage (bf16 for the dense models); fp8 and fp8_block, fp8
  weights and fp8 activations (opgraph's gemm_fp8: what vLLM's W8A8 layer runs); fp4/nvfp4 and int4 rows run the
  preset's own checkpoint storage (gpt-oss's MXFP4 experts: Hopper has no fp4 tensor cores), noted per row;
- each row runs its engine's scheduler, defaults and kernels (opgraph.analysis.serve.ENGINES: vllm, sglang, trtllm,
  each with its fusion plan), with no per-iteration engine overhead; the KV cache dtype is the activations' (the file
  does not give it).

    python benchmarks/check_serving.py                          # every H100/H200 row (several minutes)
    python benchmarks/check_serving.py --models llama-3-8b --limit 40
    python benchmarks/check_serving.py --gpus b200              # other GPUs, where they have a calibration

Prints, per (engine, GPU, model): rows predicted and skipped, TPOT and TTFT median |error|, p90 and median signed
error (negative: predicted too fast), then all together.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from opgraph import hardware, models, strategy
from opgraph.analysis.serve import ENGINES, serve
from opgraph.core.tensor import BF16, FP8, Precision
from opgraph.errors import OpgraphError
from opgraph.models import BuildOptions

DATA = Path(__file__).parent / "data" / "serving-measured.csv.gz"
HELD_OUT = ("h100-sxm", "h200")


def precision(row) -> Precision | None:
    """The storage the row measured, as opgraph builds it (None: the preset's own)."""
    if row["gemm_quant_mode"] in ("fp8", "fp8_block"):
        return Precision(weight=FP8, act=FP8, kv=BF16)
    return None


def skip(row) -> str:
    """Why a row is not predicted ('' if it is)."""
    if any(f and f != "no_engine_version" for f in row["flags"].split(";")):
        return f"flagged {row['flags']}"
    for key in ("pp", "dp", "ep"):
        if int(row[key]) > 1:
            return f"{key} above 1"
    if row["model_match"] == "quantized-checkpoint" and row["model"] == "kimi-k2":
        return "Kimi-K2.5 (int4 experts), not Kimi-K2"
    return ""


def error(predicted: float, measured: float) -> float:
    return predicted / measured - 1


def summary(errors: list[float]) -> str:
    if not errors:
        return "-"
    a = sorted(abs(e) for e in errors)
    p90 = a[min(len(a) - 1, int(0.9 * len(a)))]
    return f"{statistics.median(a):6.1%} {p90:6.1%} {statistics.median(errors):+6.1%}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", default=",".join(HELD_OUT), help="GPUs whose rows to run (default: h100-sxm,h200)")
    ap.add_argument("--models", help="presets whose rows to run (default: all)")
    ap.add_argument("--engines", help="engines whose rows to run (default: all)")
    ap.add_argument("--limit", type=int, help="rows per (engine, GPU, model) at most")
    ap.add_argument("--fusion", help="a fusion plan every row runs (default: each engine's own)")
    args = ap.parse_args()
    gpus = args.gpus.split(",")
    wanted_models = args.models.split(",") if args.models else None
    engines = args.engines.split(",") if args.engines else None
    with gzip.open(DATA, "rt", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["gpu"] in gpus and (not wanted_models or r["model"] in wanted_models)
                and (not engines or r["engine"] in engines)]
    hw = {g: hardware.load(g) for g in gpus}
    plans = {e: strategy(args.fusion or e) for e in ENGINES}
    tpot, ttft, skipped, taken = defaultdict(list), defaultdict(list), Counter(), Counter()
    t0 = time.perf_counter()
    for r in rows:
        key = (r["engine"], r["gpu"], r["model"])
        why = skip(r)
        if not why and args.limit and taken[key] >= args.limit:
            continue
        if why:
            skipped[why] += 1
            continue
        taken[key] += 1
        options = BuildOptions(precision(r), tp=int(r["tp"]))
        build = lambda ph, m=r["model"], o=options: models.get(m).build(ph, o)  # noqa: E731
        try:
            s = serve(build, plans[r["engine"]], hw[r["gpu"]], concurrency=int(r["concurrency"]),
                      prompt=int(r["prompt_tokens"]), output=int(r["output_tokens"]),
                      engine=ENGINES[r["engine"]](hw[r["gpu"]]))
        except OpgraphError as e:
            skipped[f"not predicted: {str(e).split(':')[0][:60]}"] += 1
            continue
        tpot[key].append(error(s.tpot.mean * 1e3, float(r["tpot_ms"])))
        ttft[key].append(error(s.ttft.mean * 1e3, float(r["ttft_ms"])))
    print(f"{sum(len(v) for v in tpot.values()):,} rows predicted in {time.perf_counter() - t0:.0f} s; skipped: "
          + ("; ".join(f"{why} x{n}" for why, n in skipped.most_common()) or "none"))
    print(f"{'engine':8s} {'gpu':9s} {'model':18s} {'rows':>5s}   TPOT |err| med   p90   bias   "
          f"TTFT |err| med   p90   bias")
    for key in sorted(tpot):
        print(f"{key[0]:8s} {key[1]:9s} {key[2]:18s} {len(tpot[key]):5d}   {summary(tpot[key])}   "
              f"{summary(ttft[key])}")
    every_tpot = [e for v in tpot.values() for e in v]
    every_ttft = [e for v in ttft.values() for e in v]
    print(f"{'all':37s} {len(every_tpot):5d}   {summary(every_tpot)}   {summary(every_ttft)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
