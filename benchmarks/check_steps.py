"""Whole decode steps measured on a GPU against opgraph's expected step (issue 10's serving-step target: within 10%).

    python benchmarks/check_steps.py [FILE ...]     # default: every benchmarks/data/*-steps.csv

Each row is a decode step that benchmarks/measure_steps.py built in torch from a preset's shapes (random bf16 weights,
a KV cache of the row's context), captured in a CUDA graph and replayed (`sh benchmarks/device_check.sh steps` and
`wide`); its kernels are, one for one, those of opgraph's `flash` plan. Here each is priced again with today's
calibration (the file's expected_us column is what opgraph said when it was measured) and compared. Nothing is
fitted to these steps.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.render.text import table

DATA = Path(__file__).parent / "data"
TARGET = 0.10
GPUS = {"NVIDIA H200": "h200", "NVIDIA H100 80GB HBM3": "h100-sxm"}  # torch's device name -> the shipped spec


def rows(paths) -> list[dict]:
    return [r for p in paths for r in csv.DictReader(open(p))]


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(DATA.glob("*-steps.csv"))
    out, errors = [], []
    for r in rows(paths):
        gpu = GPUS[r["gpu"]]
        batch, context, measured = int(r["batch"]), int(r["context"]), float(r["step_us"]) * 1e-6
        cost = analyze(models.get(r["model"]).build(Phase.decode(batch, context)), strategy("flash"),
                       hardware.load(gpu)).totals
        err = (cost.expected_s - measured) / measured
        errors.append(err)
        out.append([r["model"], gpu, f"{batch:,}", f"{context:,}", f"{measured * 1e3:.3f}",
                    f"{cost.expected_s * 1e3:.3f}", f"{err:+.1%}", f"{(cost.time_s - measured) / measured:+.1%}"])
    print(table(out, ["model", "gpu", "batch", "context", "measured ms", "expected ms", "error", "roofline error"],
                "table"))
    worst = max(abs(e) for e in errors)
    print(f"{len(errors)} steps: median |error| {statistics.median(abs(e) for e in errors):.1%}, worst {worst:.1%}; "
          f"within {TARGET:.0%}: {sum(abs(e) <= TARGET for e in errors)} of {len(errors)}")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
