"""Time loading a checkpoint's config.json and reporting both phases in process, for every shipped config of
today's families (issue 16): parse the file, build each distinct layer once, apply the fusion plan, cost every
op, render the JSON. Target: under 50 ms per model on a 2-core machine.

    python benchmarks/bench_load.py             # default: 20 repetitions per config
    python benchmarks/bench_load.py --repeat 5 --only gpt-oss-20b

Prints each config's median and the 10th/90th percentiles; the machines are shared and noisy, so quote medians.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import timed, verdict
from opgraph import Phase, hardware, report, strategy
from opgraph.models import hf_config
from opgraph.render import render

CONFIGS = Path(hf_config.__file__).parent / "configs"
TARGET_MS = 50.0


def load_and_report(path: Path, hw, plan) -> str:
    cfg = hf_config.load(path)
    return render(report(cfg.build, [Phase.prefill(8, 2048), Phase.decode(32, 8192)], plan, hw), "json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="timed repetitions per config (default: 20)")
    ap.add_argument("--only", help="one config by name (the file's stem)")
    args = ap.parse_args()
    hw, plan = hardware.load("h100-sxm"), strategy("fused")
    paths = sorted(p for p in CONFIGS.glob("*.json") if p.stem != "SOURCES" and args.only in (None, p.stem))
    worst = 0.0
    for path in paths:
        med, p10, p90 = timed(lambda: load_and_report(path, hw, plan), args.repeat)
        worst = max(worst, med)
        print(f"{path.stem:24s} load + two-phase report: median {med:.1f} ms (p10 {p10:.1f}, p90 {p90:.1f}, "
              f"n={args.repeat})")
    return verdict(worst, TARGET_MS, "ms")


if __name__ == "__main__":
    raise SystemExit(main())
