"""Count the instructions a serving workload takes under valgrind's callgrind: a speed that does not move with the load.

Wall time on the shared machines moves by half from one run to the next; a count of instructions does not, so it
says what a change did to the speed.

    python benchmarks/bench_instructions.py serve [--model llama-3-8b] [--engine vllm] [--concurrency 64]
    python benchmarks/bench_instructions.py plan [--model qwen3-30b-a3b] [--concurrency 400]

`serve`: bench_serve.py's event run (a closed loop of 1,024 -> 256 tokens, 2,000 requests measured, no warm-up), its
traces made first, as bench_serve.py times it. `plan`: bench_serving_plan.py's search over every layout of 8 H100s at
concurrency 1..N a replica, each run a search of its own, its traces included, as bench_serving_plan.py times it.
The workload runs in a child process under `valgrind --tool=callgrind` twice, once to its set-up only and once with
--runs runs more, each with one BLAS thread and hash seed 0, so that the count is the same from one time to the next;
printed: the difference, per run. Compare two trees by running the script in each with PYTHONPATH=<tree>. Needs
valgrind (Debian: apt install valgrind), and takes about 50 times the workload's own time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

from bench_serve import event_run
from bench_serving_plan import searching

from opgraph import models
from opgraph.analysis.serve import ENGINES

DEFAULTS = {"serve": ("llama-3-8b", 64), "plan": ("qwen3-30b-a3b", 400)}


def workload(kind: str, model: str, engine: str, concurrency: int, measure: int = 2000):
    """A function that runs the workload once, its set-up done (serve: its traces made)."""
    if kind == "serve":
        return event_run(model, engine, concurrency, measure)
    return searching(model, concurrency, engine)


def counted(args, runs: int) -> int:
    """Instructions callgrind counts for the child process that sets the workload up and runs it `runs` times."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    child = [sys.executable, os.path.abspath(__file__), args.kind, "--model", args.model, "--engine", args.engine,
             "--concurrency", str(args.concurrency), "--measure", str(args.measure), "--child", str(runs)]
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *child], env=env,
                       capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode or not found:
        raise SystemExit(f"bench_instructions.py: the child under valgrind failed:\n{r.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(DEFAULTS), help="serve: the event run; plan: the serving plan's search")
    ap.add_argument("--model", help="preset (default: llama-3-8b for serve, qwen3-30b-a3b for plan)")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="vllm")
    ap.add_argument("--concurrency", type=int, help="requests in flight (serve, default 64), or the search's largest "
                                                    "concurrency a replica (plan, default 400)")
    ap.add_argument("--measure", type=int, default=2000, help="serve: requests measured (default: 2,000)")
    ap.add_argument("--runs", type=int, default=2, help="runs counted beyond the set-up (default: 2)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)  # the process valgrind runs: set up, run N times
    args = ap.parse_args()
    args.model = DEFAULTS[args.kind][0] if args.model is None else args.model
    args.concurrency = DEFAULTS[args.kind][1] if args.concurrency is None else args.concurrency
    if args.child is not None:
        run = workload(args.kind, args.model, args.engine, args.concurrency, args.measure)
        for _ in range(args.child):
            run()
        return 0
    if shutil.which("valgrind") is None:
        print("bench_instructions.py: valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    for name in ("runs", "concurrency", "measure"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.model not in models.names():
        ap.error(f"--model {args.model!r} is not a preset; presets: {', '.join(models.names())}")
    each = (counted(args, args.runs) - counted(args, 0)) / args.runs
    print(f"{args.kind} {args.model}, {args.engine}, concurrency {args.concurrency}: {each / 1e6:,.0f} million "
          f"instructions a run (callgrind: the same count every time; {args.runs} runs, less the set-up alone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
