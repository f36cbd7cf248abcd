"""Throw the whole fuzz corpus (tests/fuzzing.py: malformed and extreme options, config.json files, hardware specs
and plan files, each with what must happen) at the real `opgraph` command line, and count what went wrong:

- traceback: a Python traceback on stderr (or any exit status but 0 and 2);
- hang: still running after --timeout seconds;
- silent accept: exit 0 for an input that must be refused;
- false refusal: exit 2 for an input that must succeed;
- unclear: a refusal that is not one line starting "opgraph: error:".

    python benchmarks/fuzz_cli.py [--jobs 2] [--timeout 20] [--limit N] [--show 10]

Exits 0 only when every count is 0.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from fuzzing import BAD, OK, Case, corpus  # noqa: E402


def run(case: Case, timeout: float) -> tuple[Case, str, str]:
    """(case, outcome, detail): outcome is "pass" or the name of what went wrong."""
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "sub").mkdir()
        for name, text in case.files:
            (Path(work) / name).write_text(text, encoding="utf-8")
        try:
            r = subprocess.run([sys.executable, "-m", "opgraph", *case.argv], capture_output=True, text=True,
                               cwd=work, timeout=timeout)
        except subprocess.TimeoutExpired:
            return case, "hang", f"still running after {timeout} s"
    if "Traceback" in r.stderr or r.returncode not in (0, 2):
        return case, "traceback", r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    if r.returncode == 0 and case.expect == BAD:
        return case, "silent accept", r.stdout[:120].replace("\n", " | ")
    if r.returncode == 2 and case.expect == OK:
        return case, "false refusal", r.stderr.strip()
    if r.returncode == 2 and (r.stderr.count("\n") != 1 or not r.stderr.startswith("opgraph: error:")):
        return case, "unclear", r.stderr[:200]
    return case, "pass", ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (default: 2)")
    ap.add_argument("--timeout", type=float, default=20, help="seconds before a case counts as a hang (default: 20)")
    ap.add_argument("--limit", type=int, help="run only the first N cases")
    ap.add_argument("--show", type=int, default=10, help="failures to print (default: 10)")
    args = ap.parse_args()
    cases = corpus()[:args.limit]
    t0 = time.perf_counter()
    counts: collections.Counter = collections.Counter()
    failures = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for case, outcome, detail in pool.map(lambda c: run(c, args.timeout), cases):
            counts[outcome] += 1
            if outcome != "pass":
                failures.append((outcome, case, detail))
    for outcome, case, detail in failures[:args.show]:
        print(f"{outcome}: opgraph {' '.join(a[:40] for a in case.argv)} [{case.label}]: {detail}")
    kinds = {"traceback": "tracebacks", "hang": "hangs", "silent accept": "silent accepts",
             "false refusal": "false refusals", "unclear": "unclear refusals"}
    print(f"{len(cases):,} inputs in {time.perf_counter() - t0:,.0f} s: {counts['pass']:,} as they must be; "
          + ", ".join(f"{counts[k]} {plural}" for k, plural in kinds.items()))
    return 0 if all(counts[k] == 0 for k in kinds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
