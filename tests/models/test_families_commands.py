"""Every config.json family runs through every command (report, sweep, crossover, generate, memory, plan) and
under every parallel layout its parts support (--tp, --sp, --pp, --ep), from a small config of its own
(test_config_loader.TINY), as a user runs them: exit status 0, a JSON answer, no traceback."""

import json

import pytest

from opgraph.cli import main
from test_config_loader import TINY

MOE = {"mixtral", "deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "qwen3_moe", "qwen3_next", "qwen3_5_text",
       "qwen3_5_moe_text", "gpt_oss", "llama4_text", "glm4_moe"}

COMMANDS = {
    "report": ["report", "--batch", "2", "--seq-len", "16", "--context", "40"],
    "report-tp-sp": ["report", "--tp", "2", "--sp", "--batch", "2", "--seq-len", "16", "--context", "40"],
    "report-pp": ["report", "--pp", "2", "--batch", "4", "--seq-len", "16", "--context", "40"],
    "sweep": ["sweep", "--phase", "decode", "--batch", "1,4", "--context", "8,64"],
    "crossover": ["crossover", "--phase", "decode", "--context", "64"],
    "generate": ["generate", "--prompt", "16", "--output", "8", "--batch", "2"],
    "memory": ["memory", "--phase", "decode", "--batch", "2", "--context", "64"],
    "plan": ["plan", "--gpus", "4", "--prompt", "16", "--output", "8", "--batch", "1,4"],
}


def run(capsys, tmp_path, model_type, argv):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY[model_type]))
    rc = main([argv[0], str(path), *argv[1:], "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in err, err
    return json.loads(out)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("model_type", sorted(TINY))
def test_every_family_runs_every_command(capsys, tmp_path, model_type, command):
    assert run(capsys, tmp_path, model_type, COMMANDS[command])


@pytest.mark.parametrize("model_type", sorted(MOE))
@pytest.mark.parametrize("layout", [["--tp", "2", "--ep", "2"], ["--dp", "2", "--ep", "2"]])
def test_every_moe_family_spreads_its_experts(capsys, tmp_path, model_type, layout):
    j = run(capsys, tmp_path, model_type, ["report", *layout, "--batch", "2", "--seq-len", "16", "--context", "40"])
    assert all(j["phases"][p]["model"]["flops"] > 0 for p in ("prefill", "decode"))
