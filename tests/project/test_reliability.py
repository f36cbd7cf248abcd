"""Each class of bad input that once reached a traceback, a hang or a silent accept (issue 9), as a one-line
refusal (exit 2) or, for valid extremes, a correct result within seconds."""

import json

import pytest

from opgraph.cli import main
from opgraph.models import hf_config

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100}
SPEC = ('name = "g"\ndisplay_name = "G"\nmemory_bandwidth_GB_per_s = {bw}\nmemory_capacity_GB = {cap}\n'
        'vector_TFLOP_per_s = 10\nsource = "made up"\n[matrix_TFLOP_per_s]\nbf16 = 100\n')


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def refused(capsys, *argv, says: str = ""):
    rc, out, err = run(capsys, *argv)
    assert rc == 2, out[:300]
    assert err.startswith("opgraph: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert says in err, err
    return err


@pytest.mark.parametrize("argv, says", [
    (["sweep", "--launch-us", "nan"], "--launch-us must be a finite number"),
    (["report", "--launch-us", "nan"], "--launch-us must be a finite number"),
    (["plot", "roofline", "--launch-us", "inf", "--out", "r.png"], "--launch-us must be a finite number"),
    (["report", "a" * 300], "unknown model 'aaaa"),
    (["report", "--hardware", "b" * 300], "unknown hardware 'bbbb"),
    (["sweep", "--batch", "1:10000000000"], "values must be integers from 1 to 1,000,000,000"),
    (["sweep", "--batch", "1,2,...," + str(10**30)], "got a number of 31 digits"),
    (["sweep", "--batch", "1:100000000"], "gives more than 1,000,000 values"),
    (["sweep", "--seq-len", "1:100000000"], "--seq-len"),
    (["sweep", "--context", "1:100000000"], "--context"),
    (["sweep", "--batch", ""], "--batch: no values"),
])
def test_options_that_once_crashed_or_hung(capsys, tmp_path, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    refused(capsys, *argv, says=says)


@pytest.mark.parametrize("command", ["report", "activations", "compare", "graph", "sweep", "crossover", "memory",
                                     "generate"])
@pytest.mark.parametrize("option", ["--dtype", "--weight-dtype", "--act-dtype", "--kv-dtype", "--state-dtype",
                                    "--table-dtype"])
def test_an_empty_choice_is_refused_on_every_command(capsys, command, option):
    extra = ["--prompt", "8", "--output", "2"] if command == "generate" else []
    refused(capsys, command, *extra, option, "", says=f"unknown {option} ''")


@pytest.mark.parametrize("command", ["activations", "graph"])
@pytest.mark.parametrize("option, value", [("--launch-us", "nan"), ("--launch-us", "inf"), ("--launch-us", "-1"),
                                           ("--overlap", "nan"), ("--overlap", "inf"), ("--overlap", "-1"),
                                           ("--hardware", ""), ("--hardware", "H100-SXM"), ("--hardware", "h100"),
                                           ("--hardware", "ħ100")])
def test_options_a_command_would_ignore_are_not_offered(capsys, command, option, value):
    refused(capsys, command, option, value, says=f"opgraph {command}: unrecognized arguments: {option}")


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path / name)


@pytest.mark.parametrize("text, says", [
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"hidden_size": ' + "9" * 5000 + "}", "not a valid model config"),
    (json.dumps({**LLAMA, "hidden_size": 10**200}), "field 'hidden_size' must be an integer from 1 to"),
])
def test_config_files_that_once_crashed(capsys, tmp_path, text, says):
    refused(capsys, "report", write(tmp_path, "c.json", text), says=says)


@pytest.mark.parametrize("model_type", sorted(hf_config.FAMILIES))
def test_a_config_with_10_to_the_30_layers_is_refused_at_once(capsys, tmp_path, model_type):
    every_family = {"n_embd": 64, "n_head": 4, "n_positions": 1024, "num_local_experts": 4, "num_experts_per_tok": 2,
                    "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8,
                    "moe_intermediate_size": 16}
    data = {**LLAMA, **every_family, "model_type": model_type, "num_hidden_layers": 10**30, "n_layer": 10**30}
    err = refused(capsys, "report", write(tmp_path, "c.json", json.dumps(data)), says="got a number of 31 digits")
    assert "layer" in err


@pytest.mark.parametrize("bw, cap, says", [
    ("nan", "80", "memory_bandwidth_GB_per_s must be a finite number > 0"),
    ("inf", "80", "memory_bandwidth_GB_per_s must be a finite number > 0"),
    ("3350", "inf", "memory_capacity_GB must be a finite number > 0"),
    ("1e200", "80", "memory_bandwidth_GB_per_s must be a finite number > 0 and <= 1e+06"),
])
@pytest.mark.parametrize("command", ["report", "memory"])
def test_hardware_specs_with_absurd_numbers(capsys, tmp_path, bw, cap, says, command):
    refused(capsys, command, "--hardware", write(tmp_path, "g.toml", SPEC.format(bw=bw, cap=cap)), says=says)


def test_a_deeply_nested_spec_is_refused(capsys, tmp_path):
    refused(capsys, "report", "--hardware", write(tmp_path, "g.toml", "a = " + "[" * 3000 + "]" * 3000),
            says="nested too deeply")


@pytest.mark.parametrize("description", ["3", "{ a = 1 }", "[1, 2]"])
def test_a_plan_description_must_be_text(capsys, tmp_path, description):
    plan = write(tmp_path, "p.toml", f'name = "p"\ndescription = {description}\n')
    refused(capsys, "report", "--fusion", plan, says="'description' must be a string")


def test_top_k_above_the_experts_names_the_file_and_the_fields(capsys, tmp_path):
    data = {**LLAMA, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 9}
    path = write(tmp_path, "c.json", json.dumps(data))
    err = refused(capsys, "report", path, says="num_experts_per_tok")
    assert path in err and "num_local_experts" in err


@pytest.mark.parametrize("argv", [
    ["sweep", "deepseek-v3", "--batch", "1,1000000", "--context", "1,10000000", "--seq-len", "1,100", "--format", "json"],
    ["crossover", "deepseek-v3", "--context", "10000000", "--format", "json"],
])
def test_valid_extremes_give_results(capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 0, err
    assert json.loads(out)


@pytest.mark.parametrize("argv, what", [
    (["report", "--hardware", "{fifo}.toml"], "a hardware spec must be a file"),
    (["report", "--fusion", "{fifo}.toml"], "a fusion plan must be a file"),
    (["report", "--calibration", "{fifo}.toml"], "a calibration file must be a file"),
    (["report", "{fifo}.json"], "a model config must be a file"),
    (["validate", "{fifo}.csv"], "a measurement CSV must be a file"),
    (["validate", "{fifo}.json"], "a profiler trace must be a file"),
])
def test_a_pipe_given_as_a_file_is_refused_not_waited_on(capsys, tmp_path, argv, what):
    """A FIFO (or a device) would block the read forever: it is refused at once, naming what a file was wanted for."""
    import os
    suffix = argv[-1].split(".", 1)[1]
    fifo = tmp_path / f"pipe.{suffix}"
    os.mkfifo(fifo)
    refused(capsys, *[a.replace("{fifo}." + suffix, str(fifo)) for a in argv], says=f"not a regular file (a pipe or "
                                                                                    f"a device?); {what}")


@pytest.mark.parametrize("key", ["memory_bandwidth_GB_per_s", "memory_capacity_GB", "vector_TFLOP_per_s"])
@pytest.mark.parametrize("value", ["1e-300", "5e-324", "0.0001"])
def test_tiny_and_denormal_spec_figures_are_refused_with_the_floor(capsys, tmp_path, key, value):
    text = SPEC.format(bw=1000, cap=40).replace(f"{key} = 1000", f"{key} = {value}").replace(
        f"{key} = 40", f"{key} = {value}").replace(f"{key} = 10", f"{key} = {value}")
    refused(capsys, "report", "--hardware", write(tmp_path, "g.toml", text), "--phase", "decode",
            says=f"{key} must be at least 0.001")
