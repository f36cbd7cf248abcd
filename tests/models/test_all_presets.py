"""Every command works for every preset (in process, to keep the suite fast)."""

import json

import pytest

from opgraph import models
from opgraph.cli import main

COMMANDS = [
    ["report", "--format", "json"],
    ["report", "--format", "csv", "--fusion", "unfused"],
    ["activations", "--format", "json", "--fusion", "flash"],
    ["compare", "--fusion", "unfused,flash,fused,megakernel", "--format", "json"],
    ["graph", "--phase", "decode", "--format", "dot"],
    ["graph", "--phase", "prefill", "--format", "mermaid", "--fusion", "megakernel"],
    ["sweep", "--batch", "1,3", "--format", "json"],
    ["crossover", "--format", "json", "--phase", "decode"],
    ["memory", "--format", "json"],
]


@pytest.mark.parametrize("preset", models.names())
def test_generate_runs_for_preset(preset, capsys):
    assert main(["generate", preset, "--prompt", "64", "--output", "4", "--batch", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == preset


@pytest.mark.parametrize("preset", models.names())
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:1] + c[-2:]))
def test_command_runs_for_preset(preset, command, capsys):
    lengths = {"prefill": ["--seq-len", "64"], "decode": ["--context", "64"]}
    phase = command[command.index("--phase") + 1] if "--phase" in command else "both"
    sizes = [*lengths.get(phase, [])] if phase != "both" else [*lengths["prefill"], *lengths["decode"]]
    assert main([command[0], preset, *command[1:], "--batch", "2", *sizes]) == 0
    out = capsys.readouterr().out
    assert out
    if "json" in command:
        data = json.loads(out)
        assert data["model"] == preset


@pytest.mark.parametrize("preset", models.names())
def test_both_phases_and_verdicts_are_reported(preset, capsys):
    assert main(["report", preset, "--format", "json"]) == 0
    phases = json.loads(capsys.readouterr().out)["phases"]
    assert set(phases) == {"prefill", "decode"}
    for p in phases.values():
        assert p["model"]["flops"] > 0 and p["model"]["bytes"] > 0
        # latency: the calibrated kernel's fixed cost exceeds its compute and memory time (GPT-2's tiny norms);
        # fused: an op that moves nothing of its own inside a larger kernel (its kernel's verdict counts)
        assert all(op["bound"] in ("compute", "memory", "latency", "fused") for b in p["blocks"] for op in b["ops"])
    # At batch 32 every preset's decode is memory-bound on an H100: weights dominate the bytes.
    assert phases["decode"]["model"]["bound"] == "memory"
