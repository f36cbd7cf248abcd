"""Only `opgraph` is installed at top level: a project with its own models.py and hardware.py keeps them."""

import subprocess
import sys

from userland import opgraph

SCRIPT = """
import models, hardware
assert models.MINE and hardware.MINE, "the project's own modules must win"
from opgraph import hardware as gpus, models as zoo, Phase, analyze, strategy
import opgraph.cli
cost = analyze(zoo.get("llama-3-8b").build(Phase.decode(1, 128)), strategy("fused"), gpus.load("h100-sxm"))
print(cost.params)
"""


def test_runs_beside_a_projects_own_models_and_hardware_modules(tmp_path):
    (tmp_path / "models.py").write_text("MINE = True\nclass BuildOptions: pass\n")
    (tmp_path / "hardware.py").write_text("MINE = True\n")
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "8030261248"  # Llama-3-8B's published parameter count
    cli = opgraph("report", "--phase", "decode", "--format", "json", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr


def test_nothing_but_opgraph_is_installed_at_top_level():
    from importlib.metadata import files
    top = {f.parts[0] for f in files("opgraph") if f.suffix == ".py" and len(f.parts) > 1
           and not f.parts[0].endswith((".dist-info", ".egg-info"))}
    assert top <= {"opgraph"}, top
