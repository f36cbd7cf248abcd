"""Every example in the README must actually work: its Python blocks run, its console commands exit 0,
and the sample report is what the program prints today."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [line[2:] for lang, code in BLOCKS if lang == "console" for line in code.splitlines()
            if line.startswith("$ ")]
# Installing is what CI itself does; the benchmark is timing, not correctness.
RUNNABLE = [c for c in COMMANDS if not c.startswith(("pip install", "python benchmarks/"))]
SPEC = next(code for lang, code in BLOCKS if lang == "toml")


def test_readme_has_examples():
    assert len(PYTHON) >= 2 and len(RUNNABLE) >= 6


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_example_runs(code, tmp_path):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


@pytest.mark.parametrize("command", RUNNABLE)
def test_console_example_runs(command, tmp_path):
    spec = tmp_path / "path" / "to" / "my-gpu.toml"
    spec.parent.mkdir(parents=True)
    spec.write_text(SPEC)
    cmd = command.replace("opgraph ", f"{sys.executable} -m opgraph.cli ").replace("python3 ", f"{sys.executable} ")
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_sample_report_is_current():
    sample = next(code for lang, code in BLOCKS if lang == "" and "DECODE: batch 32" in code)
    r = subprocess.run([sys.executable, "-m", "opgraph.cli", "report", "--phase", "decode"],
                       capture_output=True, text=True)
    actual = r.stdout.splitlines()
    rows = [line for line in sample.splitlines() if line and not line.startswith("fusion:")]
    missing = [line for line in rows if line not in actual]
    assert not missing, "README sample differs from the program's output:\n" + "\n".join(missing)
