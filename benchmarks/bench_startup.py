"""Time whole `opgraph` processes, as a script calling the command line pays for them (issue 18, section 6):
`opgraph --version` and `opgraph --help` (targets: under 0.2 s) and a default `opgraph report` (under 0.5 s).

    python benchmarks/bench_startup.py            # default: 7 runs each
    python benchmarks/bench_startup.py --repeat 3

Prints each command's median and its spread; the machines are shared and noisy, so quote medians. The
process is the installed console script of the Python running this file (its bin folder first on PATH).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


COMMANDS = {("--version",): 0.2, ("--help",): 0.2, ("report",): 0.5}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per command (default: 7)")
    args = ap.parse_args()
    exe = shutil.which("opgraph", path=str(Path(sys.executable).parent)) or shutil.which("opgraph")
    if exe is None:
        print("opgraph is not installed in this environment (pip install .)")
        return 1
    worst = 0.0
    for argv, target in COMMANDS.items():
        samples = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run([exe, *argv], capture_output=True, check=True)
            samples.append(time.perf_counter() - t0)
        med = statistics.median(samples)
        worst = max(worst, med / target)
        print(f"opgraph {' '.join(argv):10s} whole process: median {med:.3f} s (min {min(samples):.3f}, max "
              f"{max(samples):.3f}, n={args.repeat}); target < {target:g} s")
    met = worst < 1.0
    print(f"every command under its target: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
