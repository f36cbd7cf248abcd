"""The context window a config.json declares (max_position_embeddings): it changes no cost, but a request longer than
it is one an engine refuses by default, so every figure for one says so rather than serving it silently. The
windows below are the checkpoints' published ones (Llama-3-8B: 8,192 tokens, its model card and config.json;
DeepSeek-V3: 163,840, its config.json)."""

import json

import pytest

from opgraph import Phase
from opgraph.models import BuildOptions, hf_config
from userland import opgraph

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100}


def _config(**extra):
    return hf_config.from_dict({**LLAMA, **extra}, name="tiny", source="test")


@pytest.mark.parametrize("declared, window", [(4096, 4096), (None, None), ("4096", None), (0, None), (True, None)])
def test_the_window_is_max_position_embeddings_when_it_is_a_positive_integer(declared, window):
    extra = {} if declared is None else {"max_position_embeddings": declared}
    assert _config(**extra).context_window == window  # a malformed limit refuses nothing: it is not a cost


def test_a_phase_beyond_the_window_says_so_and_one_within_it_does_not():
    config = _config(max_position_embeddings=64)
    longer = config.phase_notes(Phase.prefill(1, 65), BuildOptions())
    assert any("65 positions exceed the model's context window of 64" in n for n in longer)
    assert not any("context window" in n for n in config.phase_notes(Phase.prefill(1, 64), BuildOptions()))
    # decode at context 63 attends over 64 keys: within; at 64, 65 keys: beyond
    assert not any("context window" in n for n in config.phase_notes(Phase.decode(1, 63), BuildOptions()))
    assert any("context window" in n for n in config.phase_notes(Phase.decode(1, 64), BuildOptions()))


def _context_notes(*args):
    run = opgraph(*args)
    assert run.returncode == 0, run.stderr
    return [line for line in run.stdout.splitlines() if "context window" in line]


def test_serve_says_when_prompt_and_output_outrun_the_window():
    # 8,000 + 193 = 8,193 tokens: one past Llama-3-8B's 8,192
    note, = _context_notes("serve", "llama-3-8b", "--concurrency", "2", "--prompt", "8000", "--output", "193")
    assert "8,193 tokens" in note and "8,192 positions" in note
    assert not _context_notes("serve", "llama-3-8b", "--concurrency", "2", "--prompt", "8000", "--output", "192")


def test_a_range_of_lengths_is_judged_by_its_longest_request():
    note, = _context_notes("serve", "llama-3-8b", "--concurrency", "2", "--prompt", "100:8000", "--output", "10:300")
    assert "8,300 tokens" in note


def test_the_serving_plan_says_so_too():
    note, = _context_notes("plan", "llama-3-8b", "--gpus", "1", "--concurrency", "2", "--prompt", "9000",
                           "--output", "100")
    assert "9,100 tokens" in note and "8,192 positions" in note


def test_a_shipped_preset_carries_its_published_window():
    from opgraph import models
    assert models.get("llama-3-8b").context_window == 8192
    assert models.get("deepseek-v3").context_window == 163840


def test_a_sweep_says_when_its_longest_point_outruns_the_window():
    # decode at context 8,192 holds 8,193 positions (the context and the step's new token); 8,191 holds 8,192
    note, = _context_notes("sweep", "llama-3-8b", "--batch", "1", "--seq-len", "512", "--context", "1024,8192")
    assert "points of up to 8,193 positions" in note
    assert not _context_notes("sweep", "llama-3-8b", "--batch", "1", "--seq-len", "512", "--context", "1024,8191")
    run = opgraph("sweep", "llama-3-8b", "--phase", "prefill", "--batch", "1", "--seq-len", "9000", "--format", "json")
    notes = json.loads(run.stdout)["notes"]
    assert len(notes) == 1 and "points of up to 9,000 positions exceed llama-3-8b's context window of 8,192" in notes[0]


def test_memory_and_report_say_so_per_phase():
    note, = _context_notes("report", "llama-3-8b", "--phase", "prefill", "--seq-len", "8193")
    assert "prefill: 8,193 positions exceed the model's context window of 8,192" in note
    assert not _context_notes("report", "llama-3-8b", "--phase", "prefill", "--seq-len", "8192")


def test_a_disaggregated_deployment_says_so_too():
    note, = _context_notes("serve", "llama-3-8b", "--disaggregate", "1p1d", "--concurrency", "4", "--prompt", "8100",
                           "--output", "100")
    assert "8,200 tokens" in note and "8,192 positions" in note
