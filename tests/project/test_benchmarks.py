"""The benchmark scripts run (their timings are for people; here only that they work, on small sizes)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "benchmarks"


@pytest.mark.parametrize("script, args, expect", [
    ("bench_report.py", ["--repeat", "2"], "two-phase report: median"),
    ("bench_sweep.py", ["--repeat", "1", "--points", "2500"], "2,500 points: median"),
    ("bench_html.py", ["--repeat", "1", "--side", "20"], "400 points: the HTML page written in median"),
    ("fuzz_cli.py", ["--limit", "12"], "12 inputs in"),
    ("bench_accuracy.py", ["--gpus", "a100-sxm"], "held-out vLLM kernels"),
    ("bench_plan.py", ["--repeat", "1"], "decode steps costed"),
    ("bench_load.py", ["--repeat", "1", "--only", "gpt-oss-20b"], "load + two-phase report: median"),
    ("bench_startup.py", ["--repeat", "1"], "whole process: median"),
    ("bench_reprice.py", ["--repeat", "2"], "repeated at new sizes: median"),
    ("check_serving.py", ["--models", "llama-3-8b", "--engines", "trtllm", "--limit", "1"], "rows predicted in"),
    ("bench_serving_plan.py", ["--repeat", "1", "--concurrency", "20", "--model", "llama-3-8b"], "priced a second"),
    ("bench_serve.py", ["--repeat", "1", "--concurrency", "8", "--measure", "20"], "iterations a second"),
])
def test_benchmark_script_runs(script, args, expect, tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert expect in r.stdout, r.stdout
    if script.startswith("fuzz"):
        assert r.returncode == 0 and "12 as they must be" in r.stdout, r.stdout
